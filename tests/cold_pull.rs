//! A cold pull: a fresh client reads a log of many small segments in pages of many segments
//! each (one leader transaction a page, not one a segment) and ends with the backend's log
//! and the state it builds; a damaged segment stops the pull there, with the client holding
//! exactly the checked events before it, nothing of the damaged segment or after. A fresh
//! client of a packed log reads the packs, then the segments after them, and ends identical
//! to one that read the segments; a corrupt pack costs it only the segments of its range.

mod support;

use std::sync::Arc;

use futures::StreamExt;

use eventsync::backends::conformance::make_events;
use eventsync::backends::fault::RecordingStore;
use eventsync::backends::{
    BackendError, BackendInfo, GlobalEvent, GlobalSeq, PullStream, SegmentLog, SegmentLogConfig,
    SyncBackend,
};
use eventsync::{ErrorKind, Tuning};
use eventsync_todo::todo_schema;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use support::{
    TODOS_DUMP, backend_log, fast_tuning, memory_backend, open_store, open_store_tuned, synced,
    todos_from_scratch, wait_until,
};

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

/// A segment log of the test store over `store` that packs in windows of `window` events.
fn packing_client(store: Arc<dyn ObjectStore>, window: u64) -> SegmentLog {
    let config = SegmentLogConfig {
        pack_window_events: window,
        poll_min: std::time::Duration::from_millis(5),
        poll_max: std::time::Duration::from_millis(50),
        ..SegmentLogConfig::default()
    };
    SegmentLog::new(store, object_store::path::Path::from("test"), STORE, config)
        .expect("a segment log")
}

/// Test tuning for a leader that never packs by itself: the packs of these tests are the
/// packer's, so that a test knows them, and the objects a fresh client fetches are its cold
/// reader's alone (a leader's packing attempt also reads the newest pack).
fn no_packing() -> Tuning {
    Tuning {
        pack_after_events: 0,
        ..fast_tuning()
    }
}

/// Opens a fresh store over `counting` and lets its cold pull take the whole log (`events`
/// events); returns its events, its tables and the segments and packs it fetched. It waits
/// for the pull the store starts when it opens, without `sync()`: a sync restarts the pull
/// (so that it sees the backend's head as of the call), and a pull dropped while it reads
/// ahead has fetched objects for nothing; this measures the cold reader alone.
async fn fresh_pull(
    schema: &Arc<eventsync::schema::Schema>,
    counting: &Arc<RecordingStore>,
    events: u64,
) -> (Vec<GlobalEvent>, Vec<serde_json::Value>, Vec<String>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let backend: Arc<dyn SyncBackend> = Arc::new(packing_client(counting.clone(), 256));
    let store = open_store_tuned(schema, dir.path(), "fresh", backend, no_packing()).await;
    wait_until("the cold pull took the log", || {
        let pulled = store.stats().pulled;
        async move { pulled >= events }
    })
    .await;
    let fetched = counting
        .fetched()
        .into_iter()
        .filter(|key| key.ends_with(".seg") || key.ends_with(".pack"))
        .collect();
    let taken = synced(&store.eventlog().await.expect("eventlog"));
    let state = store.query_leader(TODOS_DUMP).await.expect("query");
    store.shutdown().await.expect("shutdown");
    (taken, state, fetched)
}

/// A fresh client of a packed log (600 segments, 1,200 events, packs of 256-event windows)
/// ends with the same events, in the same order, and the same tables as a client that read
/// the segments before the log was packed; it fetched each pack and each segment after the
/// last pack once, and nothing else. With a pack corrupted, it reads that pack's segments
/// instead and still ends identical.
#[tokio::test]
async fn test_cold_pull_through_packs_ends_identical_to_one_through_segments() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let log = write_log(&memory, 600, &[1, 3, 1, 2, 3]).await;

    // A client that reads the segments, before there are packs.
    let dir = tempfile::tempdir().expect("a temp dir");
    let segments_reader = open_store_tuned(
        &schema,
        dir.path(),
        "segments",
        memory_backend(&memory, STORE),
        no_packing(),
    )
    .await;
    segments_reader.sync().await.expect("sync");
    let by_segments = synced(&segments_reader.eventlog().await.expect("eventlog"));
    let state_by_segments = segments_reader
        .query_leader(TODOS_DUMP)
        .await
        .expect("query");
    segments_reader.shutdown().await.expect("shutdown");
    assert_eq!(by_segments, log);

    let packer = packing_client(memory.clone(), 256);
    let report = packer.compact().await.expect("compact");
    // Windows 1-256 .. 769-1024 are complete (the log goes on to 1,200).
    assert_eq!(report.written, 4, "{report:?}");
    let paths = packer.log_paths().await.expect("the log's keys");
    let tail: Vec<String> = memory
        .list(Some(paths.segments_dir()))
        .map(|meta| meta.expect("a listed key").location)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .filter(|key| paths.parse_segment(key).expect("a segment key").0 > report.packed_through)
        .map(|key| key.to_string())
        .collect();
    assert!(!tail.is_empty());

    let counting = Arc::new(RecordingStore::new(memory.clone()));
    let (events, state, fetched) = fresh_pull(&schema, &counting, log.len() as u64).await;
    assert_eq!(events, by_segments);
    assert_eq!(state, state_by_segments);
    assert_eq!(state, todos_from_scratch(&schema, &log));
    let packs = fetched.iter().filter(|key| key.ends_with(".pack")).count();
    assert_eq!(packs, 4, "{fetched:?}");
    let segments: Vec<&String> = fetched.iter().filter(|key| key.ends_with(".seg")).collect();
    assert!(
        segments.iter().all(|key| tail.contains(key)),
        "a segment inside a pack was fetched: {segments:?}"
    );
    assert!(
        fetched.len() <= 4 + tail.len(),
        "{} objects fetched for 4 packs and {} tail segments",
        fetched.len(),
        tail.len()
    );

    // The second pack corrupted: its segments serve instead.
    let mut packs = memory
        .list(Some(paths.packs_dir()))
        .map(|meta| meta.expect("a listed key").location)
        .collect::<Vec<_>>()
        .await;
    packs.sort();
    let second = &packs[1];
    let mut bytes = memory
        .get(second)
        .await
        .expect("the pack")
        .bytes()
        .await
        .expect("its bytes")
        .to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    memory
        .put(second, PutPayload::from(bytes))
        .await
        .expect("overwrite");
    let counting = Arc::new(RecordingStore::new(memory.clone()));
    let (events, state, fetched) = fresh_pull(&schema, &counting, log.len() as u64).await;
    assert_eq!(events, by_segments);
    assert_eq!(state, state_by_segments);
    assert_eq!(
        fetched.iter().filter(|key| key.ends_with(".pack")).count(),
        4,
        "{fetched:?}"
    );
    let (first, last) = paths.parse_pack(second).expect("a pack key");
    let segments: Vec<&String> = fetched.iter().filter(|key| key.ends_with(".seg")).collect();
    assert!(
        segments.contains(&&paths.segment(first).to_string()),
        "{fetched:?}"
    );
    // The refused pack's segments and the tail: none of the other packs' segments.
    assert!(
        segments.iter().all(|key| {
            let at = paths
                .parse_segment(&Path::from(key.as_str()))
                .expect("a segment key");
            (first <= at && at <= last) || tail.contains(key)
        }),
        "{segments:?}"
    );
}

/// A backend whose pull streams deliver a page only while the test allows it: `allow(n)`
/// lets `n` pages out in all (over every stream), `open()` all of them. A stream waiting for
/// its turn has read its page already, so the test can stop a cold pull with objects
/// fetched that the leader has not taken yet.
struct PageGate {
    inner: Arc<dyn SyncBackend>,
    allowed: Arc<tokio::sync::watch::Sender<u64>>,
    delivered: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for PageGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageGate").finish_non_exhaustive()
    }
}

impl PageGate {
    fn new(inner: Arc<dyn SyncBackend>, allowed: u64) -> Arc<PageGate> {
        Arc::new(PageGate {
            inner,
            allowed: Arc::new(tokio::sync::watch::channel(allowed).0),
            delivered: Arc::default(),
        })
    }

    fn open(&self) {
        self.allowed.send_replace(u64::MAX);
    }
}

#[async_trait::async_trait]
impl SyncBackend for PageGate {
    async fn push(&self, batch: Vec<GlobalEvent>) -> Result<(), BackendError> {
        self.inner.push(batch).await
    }
    async fn pull(&self, cursor: GlobalSeq, live: bool) -> Result<PullStream, BackendError> {
        use std::sync::atomic::Ordering;
        let stream = self.inner.pull(cursor, live).await?;
        let (allowed, delivered) = (self.allowed.clone(), self.delivered.clone());
        Ok(stream
            .then(move |page| {
                let (allowed, delivered) = (allowed.clone(), delivered.clone());
                async move {
                    let number = delivered.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = allowed
                        .subscribe()
                        .wait_for(|allowed| *allowed >= number)
                        .await;
                    page
                }
            })
            .boxed())
    }
    async fn head(&self) -> Result<GlobalSeq, BackendError> {
        self.inner.head().await
    }
    async fn ping(&self) -> Result<(), BackendError> {
        self.inner.ping().await
    }
    async fn backend_id(&self) -> Result<String, BackendError> {
        self.inner.backend_id().await
    }
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }
}

/// A `sync()` during a cold pull does not fetch again what the pull fetched already: the
/// pull runs on to the end of the log, and only then looks once more for the backend's head.
/// Here the cold pull is held with the first pack read and two of its pages taken by the
/// leader. A pull restarted from the leader's cursor (what `sync()` did before) fetched that
/// pack's segments one by one, then every segment after it, one GET at a time, and none of
/// the other packs.
#[tokio::test]
async fn test_sync_during_a_cold_pull_fetches_no_pack_twice() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let log = write_log(&memory, 600, &[1, 3, 1, 2, 3]).await;
    let packer = packing_client(memory.clone(), 256);
    let report = packer.compact().await.expect("compact");
    assert_eq!(report.written, 4, "{report:?}");

    let counting = Arc::new(RecordingStore::new(memory.clone()));
    let config = SegmentLogConfig {
        pack_window_events: 256,
        page_events: 16,
        poll_min: std::time::Duration::from_millis(5),
        poll_max: std::time::Duration::from_millis(50),
        ..SegmentLogConfig::default()
    };
    let reader = SegmentLog::new(counting.clone(), Path::from("test"), STORE, config)
        .expect("a segment log");
    let gate = PageGate::new(Arc::new(reader), 2);
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = open_store_tuned(&schema, dir.path(), "fresh", gate.clone(), no_packing()).await;
    wait_until("the leader took the pages let out", || {
        let pulled = store.stats().pulled;
        async move { pulled > 0 }
    })
    .await;
    let before = store.stats().pulled;
    assert!(before < 256, "the first pack is not all taken: {before}");
    let (synced_now, ()) = tokio::join!(store.sync(), async {
        // The leader answers in order: once this query is answered, it has taken the sync
        // (and told the pull task) before the gate opens.
        store.query_leader("SELECT 1").await.expect("query");
        gate.open();
    });
    synced_now.expect("sync");
    assert_eq!(synced(&store.eventlog().await.expect("eventlog")), log);
    let fetched = counting.fetched();
    let packs: Vec<&String> = fetched
        .iter()
        .filter(|key| key.ends_with(".pack"))
        .collect();
    assert_eq!(
        packs.len(),
        4,
        "each of the 4 packs fetched once, and no more: {packs:?}"
    );
    let segments: Vec<&String> = fetched.iter().filter(|key| key.ends_with(".seg")).collect();
    let paths = packer.log_paths().await.expect("the log's keys");
    for key in &segments {
        let at = paths
            .parse_segment(&Path::from(key.as_str()))
            .expect("a segment key");
        assert!(
            at.0 > report.packed_through,
            "{key} was fetched although a pack holds it: {segments:?}"
        );
    }
    let mut unique = segments.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), segments.len(), "a segment fetched twice");
    store.shutdown().await.expect("shutdown");
}
