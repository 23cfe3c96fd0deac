//! The cold reader reads packs: a fresh client of a packed log fetches the packs and then
//! only the segments after the last pack (a LIST that starts there), and ends with the log a
//! reader of the segments gets; a pack that is corrupt or does not chain is refused with its
//! key named in a warning, and the client reads the segments of its range instead. On
//! memory, a folder, and S3 when `EVENTSYNC_TEST_S3_URL` is set (otherwise those tests
//! report that they did not run, and fail under CI).

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use eventsync_backends::copy::StoreLocation;
use eventsync_backends::fault::RecordingStore;
use eventsync_backends::object_store::ObjectStore;
use eventsync_backends::object_store::path::Path as Key;
use eventsync_backends::segment::{SegmentDigest, SegmentWriter, WriterNonce};
use eventsync_backends::{
    GlobalEvent, GlobalSeq, SegmentLog, SegmentLogConfig, SyncBackend, pack, segment,
};
use futures::StreamExt;
use support::{events, folder, memory, s3};

/// A client packing in windows of 8 events, over `store`.
fn client_over(place: &StoreLocation, store: Arc<dyn ObjectStore>) -> SegmentLog {
    let config = SegmentLogConfig {
        pack_window_events: 8,
        page_events: 7,
        ..SegmentLogConfig::default()
    };
    SegmentLog::new(store, place.prefix.clone(), &place.store_id, config).unwrap()
}

fn client(place: &StoreLocation) -> SegmentLog {
    client_over(place, place.store.clone())
}

/// 30 events in segments of 3 (keys 1, 4, ... 28), packed in windows of 8: packs 1-9,
/// 10-18 and 19-24; segments 25 and 28 are the tail.
async fn packed_log(place: &StoreLocation) -> Vec<GlobalEvent> {
    let log = client(place);
    let all = events(1, 30, "x");
    for chunk in all.chunks(3) {
        log.push(chunk.to_vec()).await.unwrap();
    }
    let report = log.compact().await.unwrap();
    assert_eq!((report.written, report.packed_through), (3, 24));
    all
}

/// Everything a non-live pull from `cursor` delivers.
async fn pull_all(log: &SegmentLog, cursor: u64) -> Vec<GlobalEvent> {
    let mut pages = log.pull(GlobalSeq(cursor), false).await.unwrap();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        events.extend(page.unwrap().events);
    }
    events
}

/// A fresh client over a counting store, and the store.
fn fresh(place: &StoreLocation) -> (SegmentLog, Arc<RecordingStore>) {
    let counting = Arc::new(RecordingStore::new(place.store.clone()));
    (client_over(place, counting.clone()), counting)
}

/// The names (last path part) of the segments and packs `counting` fetched.
fn fetched_objects(counting: &RecordingStore) -> Vec<String> {
    counting
        .fetched()
        .iter()
        .filter(|key| key.ends_with(".seg") || key.ends_with(".pack"))
        .map(|key| key.rsplit('/').next().unwrap().to_owned())
        .collect()
}

fn seg(first: u64) -> String {
    format!("{first:020}.seg")
}

fn pack_name(first: u64, last: u64) -> String {
    format!("{first:020}-{last:020}.pack")
}

async fn pack_key(place: &StoreLocation, first: u64, last: u64) -> Key {
    let paths = client(place).log_paths().await.unwrap();
    paths.pack(GlobalSeq(first), GlobalSeq(last))
}

/// A fresh reader fetches the 3 packs and the 2 tail segments (5 objects for 10 segments),
/// lists the segments only from after the last pack, and gets the whole log; so does one
/// whose cursor is inside a pack, from there.
async fn a_fresh_reader_reads_packs_then_the_tail(place: StoreLocation) {
    let all = packed_log(&place).await;
    let (reader, counting) = fresh(&place);
    assert_eq!(pull_all(&reader, 0).await, all);
    let mut fetched = fetched_objects(&counting);
    fetched.sort();
    assert_eq!(
        fetched,
        [
            pack_name(1, 9),
            pack_name(10, 18),
            pack_name(19, 24),
            seg(25),
            seg(28)
        ],
        "objects fetched: the packs, then the tail"
    );
    let segments_dir = client(&place).log_paths().await.unwrap();
    let segments_dir = segments_dir.segments_dir().to_string();
    let after_packs = format!("{segments_dir}/{}", seg(24));
    for listing in counting.listings() {
        if listing.prefix == segments_dir {
            let offset = listing.offset.expect("no full listing of the segments");
            assert!(offset >= after_packs, "listed from {offset}");
        }
    }

    // A cursor inside the second pack: that pack and the next, then the tail.
    let (reader, counting) = fresh(&place);
    assert_eq!(pull_all(&reader, 12).await, all[12..]);
    let mut fetched = fetched_objects(&counting);
    fetched.sort();
    assert_eq!(
        fetched,
        [pack_name(10, 18), pack_name(19, 24), seg(25), seg(28)]
    );
}

#[tokio::test]
async fn test_a_fresh_reader_reads_packs_then_the_tail_on_memory() {
    a_fresh_reader_reads_packs_then_the_tail(memory()).await;
}

#[tokio::test]
async fn test_a_fresh_reader_reads_packs_then_the_tail_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    a_fresh_reader_reads_packs_then_the_tail(folder(&dir.path().join("f"))).await;
}

#[tokio::test]
async fn test_a_fresh_reader_reads_packs_then_the_tail_on_s3() {
    let Some(place) = s3(
        "test_a_fresh_reader_reads_packs_then_the_tail_on_s3",
        "pack-pull",
    ) else {
        return;
    };
    a_fresh_reader_reads_packs_then_the_tail(place).await;
}

/// A `tracing` writer into a shared buffer: what a test's warnings said.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs a fresh pull of the whole log with warnings captured; returns the events, the
/// objects fetched and the warnings.
async fn pull_capturing(place: &StoreLocation) -> (Vec<GlobalEvent>, Vec<String>, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The tests run on tokio's current-thread runtime: the pull runs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (reader, counting) = fresh(place);
    let events = pull_all(&reader, 0).await;
    (events, fetched_objects(&counting), captured.text())
}

/// A pack with a flipped byte is refused, named in a warning; the reader reads the three
/// segments of its range instead, and the next pack still serves the rest.
async fn a_corrupt_pack_is_named_and_the_segments_serve(place: StoreLocation) {
    let all = packed_log(&place).await;
    let key = pack_key(&place, 10, 18).await;
    support::flip_a_byte(&place, &key).await;

    let (events, mut fetched, warnings) = pull_capturing(&place).await;
    assert_eq!(events, all);
    assert!(warnings.contains(key.as_ref()), "{warnings}");
    assert!(warnings.contains("checksum"), "{warnings}");
    fetched.sort();
    let mut expected = vec![
        pack_name(1, 9),
        pack_name(10, 18),
        pack_name(19, 24),
        seg(10),
        seg(13),
        seg(16),
        seg(25),
        seg(28),
    ];
    expected.sort();
    assert_eq!(
        fetched, expected,
        "the refused pack's segments, then the next pack"
    );
}

#[tokio::test]
async fn test_a_corrupt_pack_is_named_and_the_segments_serve_on_memory() {
    a_corrupt_pack_is_named_and_the_segments_serve(memory()).await;
}

#[tokio::test]
async fn test_a_corrupt_pack_is_named_and_the_segments_serve_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    a_corrupt_pack_is_named_and_the_segments_serve(folder(&dir.path().join("f"))).await;
}

#[tokio::test]
async fn test_a_corrupt_pack_is_named_and_the_segments_serve_on_s3() {
    let Some(place) = s3(
        "test_a_corrupt_pack_is_named_and_the_segments_serve_on_s3",
        "pack-pull",
    ) else {
        return;
    };
    a_corrupt_pack_is_named_and_the_segments_serve(place).await;
}

/// A pack that is valid on its own (checksum, numbering, this store's backend id) but whose
/// first segment does not name the digest of the segment before it is refused, named; the
/// reader delivers the log's own events, not the pack's.
async fn a_pack_that_does_not_chain_is_refused(place: StoreLocation) {
    let all = packed_log(&place).await;
    let backend_id = client(&place).backend_id().await.unwrap();
    let forged = segment::encode(
        &SegmentWriter {
            nonce: WriterNonce([7; 16]),
            prev_digest: SegmentDigest([9; 32]),
            backend_id: &backend_id,
            client_id: "c",
        },
        &events(10, 18, "forged"),
    )
    .unwrap();
    let key = pack_key(&place, 10, 18).await;
    let bytes = pack::encode(&[forged.bytes.as_ref()]).unwrap();
    support::put(&place, &key, bytes).await;

    let (events, fetched, warnings) = pull_capturing(&place).await;
    assert_eq!(events, all);
    assert!(warnings.contains(key.as_ref()), "{warnings}");
    assert!(warnings.contains("does not chain"), "{warnings}");
    assert!(fetched.contains(&seg(10)), "{fetched:?}");
}

#[tokio::test]
async fn test_a_pack_that_does_not_chain_is_refused_on_memory() {
    a_pack_that_does_not_chain_is_refused(memory()).await;
}

#[tokio::test]
async fn test_a_pack_that_does_not_chain_is_refused_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    a_pack_that_does_not_chain_is_refused(folder(&dir.path().join("f"))).await;
}

#[tokio::test]
async fn test_a_pack_that_does_not_chain_is_refused_on_s3() {
    let Some(place) = s3(
        "test_a_pack_that_does_not_chain_is_refused_on_s3",
        "pack-pull",
    ) else {
        return;
    };
    a_pack_that_does_not_chain_is_refused(place).await;
}
