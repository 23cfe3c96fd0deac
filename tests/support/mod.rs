//! Helpers shared by the library's integration tests: a backend over one shared
//! `InMemory`, a gate that holds pushes, stores opened on temp dirs, and audits.

#![allow(dead_code)]

pub mod bucket;
pub mod snapshot;
pub mod vanishing;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventsync::backends::{
    BackendError, BackendInfo, GlobalEvent, GlobalSeq, PullStream, SegmentLog, SyncBackend,
    SyncBackendExt,
};
use eventsync::materialize::{Record, apply_event};
use eventsync::schema::Schema;
use eventsync::{EncodedEvent, Store, Tuning};
use object_store::memory::InMemory;
use serde_json::Value;

/// A segment log for `store_id` over `memory`; several of them act as several clients.
pub fn memory_backend(memory: &Arc<InMemory>, store_id: &str) -> Arc<dyn SyncBackend> {
    let log = SegmentLog::new(
        memory.clone(),
        object_store::path::Path::from("test"),
        store_id,
        bucket::fast_polls(),
    )
    .expect("a valid segment log");
    Arc::new(log)
}

/// Tuning for tests: a short lock wait (the polls are the backend's: see `memory_backend`).
pub fn fast_tuning() -> Tuning {
    Tuning {
        lock_timeout: Duration::from_secs(2),
        ..Tuning::default()
    }
}

/// Tuning for a test on tokio's paused clock: `fast_tuning` with the leader inline, as a task
/// of the test's runtime. A leader on its own thread (the default) works while the test's
/// runtime sees every task idle, so virtual time jumps ahead and the test's timeouts fire
/// before the leader could answer.
pub fn paused_clock_tuning() -> Tuning {
    Tuning {
        leader_thread: false,
        ..fast_tuning()
    }
}

/// Opens a store for `client_id` in `dir` on `backend`.
pub async fn open_store(
    schema: &Arc<Schema>,
    dir: &Path,
    client_id: &str,
    backend: Arc<dyn SyncBackend>,
) -> Store {
    open_store_tuned(schema, dir, client_id, backend, fast_tuning()).await
}

/// Opens a store for `client_id` in `dir` on `backend`, with `tuning`.
pub async fn open_store_tuned(
    schema: &Arc<Schema>,
    dir: &Path,
    client_id: &str,
    backend: Arc<dyn SyncBackend>,
    tuning: Tuning,
) -> Store {
    Store::builder(schema.clone())
        .with_backend(backend)
        .with_data_dir(dir)
        .with_client_id(client_id)
        .with_tuning(tuning)
        .open()
        .await
        .expect("store opens")
}

/// Waits until `condition` holds, polling every 5 ms; panics with `what` after 20 s.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A backend wrapper that holds every push whose first event is at or past a limit until the
/// limit moves past it (pulls are not held): closed (limit 0) it holds every push, open
/// (`u64::MAX`) none, and a limit lets one push through and holds the next.
#[derive(Debug)]
pub struct GatedBackend {
    inner: Arc<dyn SyncBackend>,
    limit: tokio::sync::watch::Sender<u64>,
}

impl GatedBackend {
    pub fn new(inner: Arc<dyn SyncBackend>, open: bool) -> Arc<GatedBackend> {
        Self::with_limit(inner, if open { u64::MAX } else { 0 })
    }

    /// A gate that lets through the pushes whose first event is below `limit`.
    pub fn with_limit(inner: Arc<dyn SyncBackend>, limit: u64) -> Arc<GatedBackend> {
        Arc::new(GatedBackend {
            inner,
            limit: tokio::sync::watch::channel(limit).0,
        })
    }

    pub fn set_open(&self, open: bool) {
        self.set_limit(if open { u64::MAX } else { 0 });
    }

    /// Lets through the pushes whose first event is below `limit`.
    pub fn set_limit(&self, limit: u64) {
        self.limit.send_replace(limit);
    }
}

#[async_trait::async_trait]
impl SyncBackend for GatedBackend {
    async fn push(&self, batch: Vec<GlobalEvent>) -> Result<(), BackendError> {
        let first = batch.first().map_or(0, |event| event.seq_num.0);
        let mut limit = self.limit.subscribe();
        let _ = limit.wait_for(|limit| first < *limit).await;
        self.inner.push(batch).await
    }
    async fn pull(&self, cursor: GlobalSeq, live: bool) -> Result<PullStream, BackendError> {
        self.inner.pull(cursor, live).await
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
    fn requests(&self) -> Option<eventsync::backends::RequestCounts> {
        self.inner.requests()
    }
}

/// Every event of the backend, read with a non-live pull and checked to be one gapless
/// chain `e1..en` ([`SyncBackendExt::read_all_checked`]); panics otherwise.
pub async fn backend_log(backend: &Arc<dyn SyncBackend>) -> Vec<GlobalEvent> {
    match backend.read_all_checked().await {
        Ok(events) => events,
        Err(error) => panic!("the backend log: {error}"),
    }
}

/// The synced events of a leader's eventlog in wire form.
pub fn synced(eventlog: &[EncodedEvent]) -> Vec<GlobalEvent> {
    eventlog
        .iter()
        .filter(|event| !event.is_client_only())
        .map(EncodedEvent::to_global)
        .collect()
}

/// A database holding the state of `log` alone (a replay under `schema`).
pub fn replayed(schema: &Schema, log: &[GlobalEvent]) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open_in_memory().expect("in-memory db");
    schema.create_tables(&connection).expect("tables");
    for event in log {
        apply_event(
            &connection,
            schema,
            &EncodedEvent::from_global(event.clone()),
            Record::Nothing,
        )
        .expect("materializes");
    }
    connection
}

/// The rows of `todos` (all columns, by id) of a database built from `log` alone.
pub fn todos_from_scratch(schema: &Schema, log: &[GlobalEvent]) -> Vec<Value> {
    let connection = replayed(schema, log);
    let mut statement = connection.prepare(TODOS_DUMP).expect("prepares");
    let rows = statement
        .query_map([], |row| {
            Ok(serde_json::json!({
                "id": row.get::<_, String>(0)?, "text": row.get::<_, String>(1)?,
                "completed": row.get::<_, i64>(2)?, "deleted_at": row.get::<_, Option<i64>>(3)?,
                "created_seq": row.get::<_, i64>(4)?,
            }))
        })
        .expect("queries");
    rows.map(|row| row.expect("a row")).collect()
}

/// Every column of `todos`, in a stable order: the state tables compared across replicas.
pub const TODOS_DUMP: &str =
    "SELECT id, text, completed, deleted_at, created_seq FROM todos ORDER BY id";

/// Commits todos `t{from}` to `t{from + count - 1}` on `store`, completes every third and
/// deletes every `delete_every`-th, then syncs: a state with updates and deletions as well as
/// inserts, for the snapshot tests.
pub async fn commit_todos(store: &Store, from: usize, count: usize, delete_every: usize) {
    use eventsync_todo::{TodoCompleted, TodoCreated, TodoDeleted};
    let session = store.session().await.expect("a session");
    for i in from..from + count {
        let id = format!("t{i}");
        session
            .commit(&TodoCreated {
                id: id.clone(),
                text: format!("todo {i}"),
            })
            .expect("commit");
        if i % 3 == 0 {
            session
                .commit(&TodoCompleted { id: id.clone() })
                .expect("commit");
        }
        if i % delete_every == 0 {
            session
                .commit(&TodoDeleted {
                    id,
                    deleted_at: i as i64,
                })
                .expect("commit");
        }
    }
    store.sync().await.expect("sync");
}
