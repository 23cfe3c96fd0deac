//! How many objects a cold reader fetches for a packed log: writes EVENTS events in
//! segments of PER_SEGMENT events to an in-memory store, packs it (`SegmentLog::compact`,
//! default windows of 256 events merged 16 to a level), then pulls the whole log with a fresh client and
//! counts the objects it fetched (GETs that found one) and its LISTs.
//!
//! `cargo run --release -p eventsync-backends --example cold_read_objects -- EVENTS PER_SEGMENT`

use std::sync::Arc;

use eventsync_backends::conformance::make_events;
use eventsync_backends::fault::RecordingStore;
use eventsync_backends::object_store::memory::InMemory;
use eventsync_backends::object_store::path::Path;
use eventsync_backends::{GlobalSeq, SegmentLog, SegmentLogConfig, SyncBackend};
use futures::StreamExt;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut number = |default: u64| {
        args.next()
            .map(|arg| arg.parse().expect("EVENTS and PER_SEGMENT are numbers"))
            .unwrap_or(default)
    };
    let (events, per_segment) = (number(100_000), number(1).max(1));
    let memory = Arc::new(InMemory::new());
    let log = |store: Arc<dyn eventsync_backends::object_store::ObjectStore>| {
        SegmentLog::new(store, Path::from("m"), "s", SegmentLogConfig::default())
            .expect("a segment log")
    };
    let writer = log(memory.clone());
    let all = make_events(GlobalSeq::ZERO, events as usize, "writer", 20);
    for batch in all.chunks(per_segment as usize) {
        writer.push(batch.to_vec()).await.expect("push");
    }
    let report = writer.compact().await.expect("compact");
    let recording = Arc::new(RecordingStore::new(memory.clone()));
    let reader = log(recording.clone());
    let mut pull = reader.pull(GlobalSeq::ZERO, false).await.expect("pull");
    let mut pulled = 0;
    while let Some(page) = pull.next().await {
        pulled += page.expect("a page").events.len() as u64;
    }
    assert_eq!(pulled, events, "the reader got every event");
    let fetched = recording.fetched();
    let packs = fetched.iter().filter(|key| key.ends_with(".pack")).count();
    let segments = fetched.iter().filter(|key| key.ends_with(".seg")).count();
    println!(
        "{events} events in {} segments of {per_segment}: {} packs ({} merged) through e{}; a cold reader fetched {} objects ({packs} packs, {segments} segments, {} other), {} GETs found nothing, {} LISTs",
        events.div_ceil(per_segment),
        report.written,
        report.merged,
        report.packed_through,
        fetched.len(),
        fetched.len() - packs - segments,
        recording.missed(),
        recording.listings().len()
    );
}
