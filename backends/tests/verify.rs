//! `verify_store` over real object stores: a sound log passes; a corrupted segment, a
//! missing one (a gap), and a segment of another store are each named by key, and the
//! segments after a bad one are still checked. S3 runs when `EVENTSYNC_TEST_S3_URL` is set
//! (otherwise it reports that it did not run, and fails under CI).

mod support;

use eventsync_backends::copy::StoreLocation;
use eventsync_backends::object_store::path::Path as Key;
use eventsync_backends::object_store::{ObjectStoreExt, PutPayload};
use eventsync_backends::verify::{VerifyError, VerifyReport, verify_store};
use eventsync_backends::{GlobalEvent, GlobalSeq, SegmentLog, SegmentLogConfig, SyncBackend};
use support::{events, folder, memory, s3};

fn client(place: &StoreLocation) -> SegmentLog {
    SegmentLog::new(
        place.store.clone(),
        place.prefix.clone(),
        &place.store_id,
        SegmentLogConfig::default(),
    )
    .unwrap()
}

/// Pushes `count` events into the store at `place`, in pushes of 4 (several segments).
async fn fill(place: &StoreLocation, count: u64) -> Vec<GlobalEvent> {
    let log = client(place);
    let events = events(1, count, "x");
    for chunk in events.chunks(4) {
        log.push(chunk.to_vec()).await.unwrap();
    }
    events
}

async fn segment_key(place: &StoreLocation, first: u64) -> Key {
    client(place)
        .log_paths()
        .await
        .unwrap()
        .segment(GlobalSeq(first))
}

async fn verify(place: &StoreLocation) -> VerifyReport {
    verify_store(place, &[], &|_, _| ()).await.unwrap()
}

fn keys_of(report: &VerifyReport) -> Vec<&str> {
    report.faults.iter().map(|f| f.key.as_str()).collect()
}

/// A sound log of 22 events in 6 segments passes, with progress up to 6 of 6.
async fn sound_log_passes(place: StoreLocation) {
    fill(&place, 22).await;
    let calls = std::sync::Mutex::new(Vec::new());
    let report = verify_store(&place, &[], &|done, total| {
        calls.lock().unwrap().push((done, total))
    })
    .await
    .unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!((report.segments, report.events, report.head), (6, 22, 22));
    assert_eq!(calls.lock().unwrap().last(), Some(&(6, 6)));
    assert_eq!(
        report.backend_id,
        client(&place).backend_id().await.unwrap()
    );
}

/// One flipped byte in segment 5 (events 5-8) is named by key; the segments after it are
/// still read, and the head stops before it.
async fn corrupted_segment_is_named(place: StoreLocation) {
    fill(&place, 22).await;
    let key = segment_key(&place, 5).await;
    support::flip_a_byte(&place, &key).await;
    let report = verify(&place).await;
    assert_eq!(keys_of(&report), [key.as_ref()], "{report:?}");
    assert!(
        report.faults[0].message.contains("checksum"),
        "{:?}",
        report.faults
    );
    assert_eq!((report.segments, report.head), (6, 4));
    assert_eq!(
        report.events,
        22 - 4,
        "the corrupt segment's events are not counted"
    );
}

#[tokio::test]
async fn test_a_sound_log_passes_on_memory() {
    sound_log_passes(memory()).await;
}

#[tokio::test]
async fn test_a_sound_log_passes_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    sound_log_passes(folder(&dir.path().join("f"))).await;
}

#[tokio::test]
async fn test_a_corrupted_segment_is_named_on_memory() {
    corrupted_segment_is_named(memory()).await;
}

#[tokio::test]
async fn test_a_corrupted_segment_is_named_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    corrupted_segment_is_named(folder(&dir.path().join("f"))).await;
}

#[tokio::test]
async fn test_verify_on_s3() {
    let Some(place) = s3("test_verify_on_s3", "verify") else {
        return;
    };
    sound_log_passes(place.clone()).await;
    let Some(other) = s3("test_verify_on_s3", "verify") else {
        return;
    };
    corrupted_segment_is_named(other).await;
}

/// A deleted segment is a gap, named at the segment after it; a cut-off one is named too.
#[tokio::test]
async fn test_a_gap_and_a_truncated_segment_are_named() {
    let place = memory();
    fill(&place, 22).await;
    let gone = segment_key(&place, 9).await;
    place.store.delete(&gone).await.unwrap();
    let cut = segment_key(&place, 17).await;
    let bytes = place.store.get(&cut).await.unwrap().bytes().await.unwrap();
    place
        .store
        .put(&cut, PutPayload::from(bytes.slice(..bytes.len() - 3)))
        .await
        .unwrap();
    let report = verify(&place).await;
    let after_gap = segment_key(&place, 13).await;
    assert_eq!(
        keys_of(&report),
        [after_gap.as_ref(), cut.as_ref()],
        "{report:?}"
    );
    assert!(
        report.faults[0].message.contains("gap") && report.faults[0].message.contains("e9"),
        "{:?}",
        report.faults
    );
    assert!(
        report.faults[1].message.contains("truncated"),
        "{:?}",
        report.faults
    );
    assert_eq!(report.head, 8);
}

/// A segment of another store (another backend id) put in this store's folder at the right
/// key is refused by name, though its bytes are a valid segment.
#[tokio::test]
async fn test_a_segment_of_another_store_is_named() {
    let (place, other) = (memory(), memory());
    fill(&place, 8).await;
    fill(&other, 8).await;
    let theirs = segment_key(&other, 5).await;
    let bytes = other
        .store
        .get(&theirs)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let ours = segment_key(&place, 5).await;
    support::put(&place, &ours, bytes).await;
    let report = verify(&place).await;
    assert_eq!(keys_of(&report), [ours.as_ref()], "{report:?}");
    assert!(
        report.faults[0].message.contains("another store"),
        "{:?}",
        report.faults
    );
}

#[tokio::test]
async fn test_no_store_is_an_error_not_an_empty_report() {
    let place = memory();
    match verify_store(&place, &[], &|_, _| ()).await {
        Err(VerifyError::NoStore { key, .. }) => assert!(key.ends_with("store.json"), "{key}"),
        other => panic!("{other:?}"),
    }
    // An empty store is sound.
    client(&place).backend_id().await.unwrap();
    let report = verify(&place).await;
    assert!(report.is_sound());
    assert_eq!((report.segments, report.head), (0, 0));
}
