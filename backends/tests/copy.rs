//! `copy_store` between real object stores: a folder to memory and to another folder, a
//! resumed copy after a partial one, and the refusals (no source, another store at the
//! target, an object at the target with other bytes). S3 runs when `EVENTSYNC_TEST_S3_URL`
//! is set (otherwise it reports that it did not run, and fails under CI).

mod support;

use eventsync_backends::conformance::{S3_NOT_CONFIGURED, in_ci, report_not_run};
use eventsync_backends::copy::{CopyError, StoreLocation, copy_store};
use eventsync_backends::object_store::path::Path as Key;
use eventsync_backends::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use eventsync_backends::{
    GlobalEvent, GlobalSeq, OpenOptions, SegmentLog, SegmentLogConfig, SyncBackend, SyncBackendExt,
    open_object_store,
};
use futures::TryStreamExt;
use support::{events, folder, memory};

fn client(place: &StoreLocation) -> SegmentLog {
    let config = SegmentLogConfig {
        max_events_per_segment: 7,
        ..SegmentLogConfig::default()
    };
    SegmentLog::new(
        place.store.clone(),
        place.prefix.clone(),
        &place.store_id,
        config,
    )
    .unwrap()
}

/// Pushes `count` events into the store at `place`, in pushes of up to 4 (several segments).
async fn fill(place: &StoreLocation, count: u64) -> Vec<GlobalEvent> {
    let log = client(place);
    let events = events(1, count, "x");
    for chunk in events.chunks(4) {
        log.push(chunk.to_vec()).await.unwrap();
    }
    events
}

async fn keys(place: &StoreLocation) -> Vec<Key> {
    let mut keys: Vec<Key> = place
        .store
        .list(Some(&place.prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn segment_keys(place: &StoreLocation) -> Vec<Key> {
    keys(place)
        .await
        .into_iter()
        .filter(|key| key.as_ref().ends_with(".seg"))
        .collect()
}

/// Copies `from` (filled with 23 events: 6 segments) to `to` and checks the copy is the same
/// store: same backend id, same events, same segment bytes.
async fn copies_whole_store(from: StoreLocation, to: StoreLocation) {
    let events = fill(&from, 23).await;
    let report = copy_store(&from, &to, &|_, _| ()).await.unwrap();
    assert_eq!(report.copied, 1 + 6, "store.json and 6 segments");
    assert_eq!(report.already_there, 0);
    assert_eq!(report.verified_events, 23);
    let copy = client(&to);
    assert_eq!(
        copy.backend_id().await.unwrap(),
        client(&from).backend_id().await.unwrap()
    );
    assert_eq!(report.backend_id, copy.backend_id().await.unwrap());
    assert_eq!(copy.read_all_checked().await.unwrap(), events);
    // The copy is the same store: a client of it goes on pushing at e24.
    copy.push(vec![GlobalEvent {
        seq_num: GlobalSeq(24),
        parent_seq_num: GlobalSeq(23),
        ..events[0].clone()
    }])
    .await
    .unwrap();
}

#[tokio::test]
async fn test_copy_folder_to_memory() {
    let dir = tempfile::tempdir().unwrap();
    copies_whole_store(folder(&dir.path().join("a")), memory()).await;
}

#[tokio::test]
async fn test_copy_folder_to_folder() {
    let dir = tempfile::tempdir().unwrap();
    copies_whole_store(folder(&dir.path().join("a")), folder(&dir.path().join("b"))).await;
}

#[tokio::test]
async fn test_copy_folder_to_s3() {
    let Ok(url) = std::env::var("EVENTSYNC_TEST_S3_URL") else {
        assert!(!in_ci(), "CI requires the S3 run, but {S3_NOT_CONFIGURED}");
        report_not_run(
            "eventsync-backends --test copy test_copy_folder_to_s3",
            S3_NOT_CONFIGURED,
        );
        return;
    };
    let (store, prefix) = open_object_store(&url, &OpenOptions::default()).unwrap();
    let run = eventsync_backends::Entropy::from_os().hex::<4>();
    let to = StoreLocation {
        store,
        prefix: prefix.join(format!("copy-{run}")),
        store_id: "s".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    copies_whole_store(folder(&dir.path().join("a")), to).await;
}

/// A copy that stopped part way (here: segments missing at the target, as a kill leaves it)
/// is finished by running it again, which writes only what is missing.
#[tokio::test]
async fn test_a_partial_copy_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (folder(&dir.path().join("a")), folder(&dir.path().join("b")));
    let events = fill(&from, 23).await;
    copy_store(&from, &to, &|_, _| ()).await.unwrap();
    let segments = segment_keys(&to).await;
    assert_eq!(segments.len(), 6);
    for key in [&segments[1], &segments[4], &segments[5]] {
        to.store.delete(key).await.unwrap();
    }
    let mut calls = Vec::new();
    let seen = std::sync::Mutex::new(&mut calls);
    let report = copy_store(&from, &to, &|done, total| {
        seen.lock().unwrap().push((done, total))
    })
    .await
    .unwrap();
    assert_eq!((report.copied, report.already_there), (3, 1 + 3));
    assert_eq!(report.verified_events, 23);
    assert_eq!(calls.last(), Some(&(6, 6)));
    assert_eq!(client(&to).read_all_checked().await.unwrap(), events);
    // Once complete, another run writes nothing.
    let report = copy_store(&from, &to, &|_, _| ()).await.unwrap();
    assert_eq!((report.copied, report.already_there), (0, 7));
}

#[tokio::test]
async fn test_copy_refuses_a_missing_source_and_writes_nothing() {
    let (from, to) = (memory(), memory());
    match copy_store(&from, &to, &|_, _| ()).await {
        Err(CopyError::NoSource { key, .. }) => assert_eq!(key, "s/store.json"),
        other => panic!("expected NoSource, got {other:?}"),
    }
    assert_eq!(keys(&to).await, Vec::<Key>::new());
    assert_eq!(
        keys(&from).await,
        Vec::<Key>::new(),
        "the source was created"
    );
}

#[tokio::test]
async fn test_copy_refuses_a_target_holding_another_store() {
    let (from, to) = (memory(), memory());
    fill(&from, 3).await;
    fill(&to, 2).await;
    let before = keys(&to).await;
    match copy_store(&from, &to, &|_, _| ()).await {
        Err(CopyError::OtherStore {
            expected, found, ..
        }) => {
            assert_eq!(expected, client(&from).backend_id().await.unwrap());
            assert_eq!(found, client(&to).backend_id().await.unwrap());
        }
        other => panic!("expected OtherStore, got {other:?}"),
    }
    assert_eq!(keys(&to).await, before);
}

#[tokio::test]
async fn test_copy_never_overwrites_an_object_with_other_bytes() {
    let (from, to) = (memory(), memory());
    fill(&from, 10).await;
    copy_store(&from, &to, &|_, _| ()).await.unwrap();
    let segments = segment_keys(&to).await;
    to.store
        .put(&segments[1], PutPayload::from_static(b"damaged"))
        .await
        .unwrap();
    match copy_store(&from, &to, &|_, _| ()).await {
        Err(CopyError::Differs { key }) => assert_eq!(key, segments[1].to_string()),
        other => panic!("expected Differs, got {other:?}"),
    }
    let kept = to
        .store
        .get(&segments[1])
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&kept[..], b"damaged", "the target object was overwritten");
}
