//! A cold pull: a fresh client reads a log of many small segments in pages of many segments
//! each (one leader transaction a page, not one a segment) and ends with the backend's log
//! and the state it builds; a damaged segment stops the pull there, with the client holding
//! exactly the checked events before it, nothing of the damaged segment or after.

mod support;

use std::sync::Arc;

use eventsync::ErrorKind;
use eventsync::backends::conformance::make_events;
use eventsync::backends::{GlobalEvent, GlobalSeq, SegmentLog};
use eventsync_todo::todo_schema;
use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload};
use support::{TODOS_DUMP, backend_log, memory_backend, open_store, synced, todos_from_scratch};

const STORE: &str = "cold";

/// Writes `segments` segments to a new log in `memory`: `sizes` events each, in turn.
async fn write_log(memory: &Arc<InMemory>, segments: usize, sizes: &[usize]) -> Vec<GlobalEvent> {
    let writer = memory_backend(memory, STORE);
    let mut head = GlobalSeq::ZERO;
    for index in 0..segments {
        let batch = make_events(head, sizes[index % sizes.len()], "writer", 20);
        head = batch.last().expect("an event").seq_num;
        writer.push(batch).await.expect("push");
    }
    backend_log(&writer).await
}

#[tokio::test]
async fn test_cold_pull_reads_many_segments_a_page() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    // 600 segments of 1 to 3 events: 1,200 events.
    let log = write_log(&memory, 600, &[1, 3, 1, 2, 3]).await;
    assert_eq!(log.len(), 1_200);

    let dir = tempfile::tempdir().expect("a temp dir");
    let store = open_store(
        &schema,
        dir.path(),
        "reader",
        memory_backend(&memory, STORE),
    )
    .await;
    store.sync().await.expect("sync");
    let stats = store.stats();
    assert_eq!(stats.pulled, 1_200);
    // Pages of up to `page_events` (1,000) events: two or three pages hold them all, where
    // a page per segment would take 600.
    assert!(
        stats.pulled_pages <= 4,
        "{} pages for 600 segments",
        stats.pulled_pages
    );
    assert_eq!(synced(&store.eventlog().await.expect("eventlog")), log);
    let state = store.query_leader(TODOS_DUMP).await.expect("query");
    assert_eq!(state, todos_from_scratch(&schema, &log));
    store.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn test_cold_pull_stops_at_a_damaged_segment_keeping_what_came_before() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let log = write_log(&memory, 300, &[1, 2]).await;
    // Damage the segment at e100 (segments start at e1, e2, e4, e5, ... : 3k+1 and 3k+2).
    let damaged = GlobalSeq(100);
    let log_paths = SegmentLog::new(
        memory.clone(),
        object_store::path::Path::from("test"),
        STORE,
        Default::default(),
    )
    .expect("a segment log")
    .log_paths()
    .await
    .expect("the log's keys");
    let key = log_paths.segment(damaged);
    let mut bytes = memory
        .get(&key)
        .await
        .expect("the segment")
        .bytes()
        .await
        .expect("its bytes")
        .to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    memory
        .put(&key, PutPayload::from(bytes))
        .await
        .expect("overwrite");

    let dir = tempfile::tempdir().expect("a temp dir");
    let store = open_store(
        &schema,
        dir.path(),
        "reader",
        memory_backend(&memory, STORE),
    )
    .await;
    let error = store
        .sync()
        .await
        .expect_err("the damaged segment fails the sync");
    assert_eq!(error.kind(), ErrorKind::Data, "{error:#}");
    assert!(format!("{error:#}").contains(key.as_ref()), "{error:#}");
    // Exactly the events before the damaged segment: none of it, none after it.
    let before: Vec<GlobalEvent> = log
        .iter()
        .take_while(|event| event.seq_num < damaged)
        .cloned()
        .collect();
    let held = synced(&store.eventlog().await.expect("eventlog"));
    assert_eq!(held, before);
    let state = store.query_leader(TODOS_DUMP).await.expect("query");
    assert_eq!(state, todos_from_scratch(&schema, &before));
    store.shutdown().await.expect("shutdown");

    // Reopened, the store holds the same, and the damage still stops it.
    let store = open_store(
        &schema,
        dir.path(),
        "reader",
        memory_backend(&memory, STORE),
    )
    .await;
    assert_eq!(synced(&store.eventlog().await.expect("eventlog")), before);
    assert!(store.sync().await.is_err());
    store.shutdown().await.expect("shutdown");
}
