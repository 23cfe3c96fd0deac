//! The set-ups the snapshot tests share: a writer's history with a snapshot in it, and the
//! checks that a fresh client booted from that snapshot, and the bucket the snapshot tests
//! run on (memory, a folder, S3).

use std::sync::Arc;

use eventsync::backends::copy::StoreLocation;
use eventsync::backends::verify::{
    ObjectAudit, PackAudit, SnapshotAudit, SnapshotContentCheck, VerifyReport, verify_store,
};
use eventsync::backends::{
    GlobalEvent, GlobalSeq, OpenOptions, SegmentLog, SnapshotPut, SyncBackend, open_object_store,
};
use eventsync::schema::Schema;
use eventsync::snapshot::ReplayCheck;
use eventsync::{SnapshotBoot, Store, Tuning};
use eventsync_todo::todo_schema_builder;
use object_store::ObjectStore;
use object_store::path::Path;
use serde_json::Value;

use super::{TODOS_DUMP, backend_log, commit_todos, fast_tuning, todos_from_scratch};

/// `count` temporary folders (data dirs, or a folder bucket).
pub fn temp_dirs(count: usize) -> Vec<tempfile::TempDir> {
    (0..count)
        .map(|_| tempfile::tempdir().expect("a temp dir"))
        .collect()
}

/// The backend-confirmed head of `store`.
pub async fn confirmed(store: &Store) -> GlobalSeq {
    store
        .status()
        .await
        .expect("status")
        .backend_confirmed_head
        .global
}

/// What [`write_history`] left in the bucket.
pub struct History {
    /// The confirmed head after the first todos: where the snapshot is, if one was written.
    pub at: GlobalSeq,
    /// The snapshot written at `at` (`None` when none was asked for).
    pub put: Option<SnapshotPut>,
    /// The whole log afterwards.
    pub log: Vec<GlobalEvent>,
}

/// Has `writer` commit `before` todos (every `delete_every`-th deleted), write a snapshot at
/// its confirmed head when `snapshot`, commit `after` more (the tail), and shut down.
pub async fn write_history(
    writer: Store,
    before: usize,
    after: usize,
    delete_every: usize,
    snapshot: bool,
) -> History {
    commit_todos(&writer, 0, before, delete_every).await;
    let put = if snapshot {
        let put = writer.snapshot().await.expect("a snapshot");
        assert!(put.created, "{put:?}");
        Some(put)
    } else {
        None
    };
    let at = confirmed(&writer).await;
    commit_todos(&writer, before, after, delete_every).await;
    let log = backend_log(&writer.backend().expect("online")).await;
    writer.shutdown().await.expect("shutdown");
    History { at, put, log }
}

/// Asserts that `fresh` booted from the snapshot `key` at `at` (none refused), then syncs it
/// and asserts that it pulled only the tail of `log` and holds `log`'s state.
pub async fn assert_booted_from(
    fresh: &Store,
    schema: &Schema,
    key: &str,
    at: GlobalSeq,
    log: &[GlobalEvent],
) {
    assert_eq!(
        fresh.snapshot_boot(),
        &SnapshotBoot::Loaded {
            key: key.to_owned(),
            at: at.0,
            refused: vec![],
        }
    );
    fresh.sync().await.expect("sync");
    assert_eq!(
        fresh.stats().pulled,
        log.len() as u64 - at.0,
        "only the tail is pulled"
    );
    assert_eq!(
        fresh.query_leader(TODOS_DUMP).await.expect("query"),
        todos_from_scratch(schema, log)
    );
}

/// Where the log lives: an object store, a prefix and a store id. Each [`Bucket::client`]
/// is a new client with its own caches, as another process would have.
pub struct Bucket {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// The key prefix.
    pub prefix: Path,
    /// The store id.
    pub store_id: String,
}

impl Bucket {
    /// A fresh memory bucket.
    pub fn memory() -> Bucket {
        Bucket {
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: Path::from("test"),
            store_id: "snap".into(),
        }
    }

    /// A bucket over `store` (a wrapper of a memory store, say), under prefix `test`.
    pub fn over(store: Arc<dyn ObjectStore>, store_id: &str) -> Bucket {
        Bucket {
            store,
            prefix: Path::from("test"),
            store_id: store_id.into(),
        }
    }

    /// A folder bucket in `dir`, for `store_id`.
    pub fn folder(dir: &std::path::Path, store_id: &str) -> Bucket {
        Bucket::url(&format!("file://{}", dir.display()), store_id.into())
    }

    /// The S3 bucket of `EVENTSYNC_TEST_S3_URL`, for a new store id of this run, or `None`
    /// (reported; a failure under `CI=true`): see [`s3_run`](super::bucket::s3_run).
    pub fn s3(test: &str, store_prefix: &str) -> Option<Bucket> {
        let (url, store_id) = super::bucket::s3_run(test, store_prefix)?;
        Some(Bucket::url(&url, store_id))
    }

    /// The store at `url` (a folder, or S3), for `store_id`.
    pub fn url(url: &str, store_id: String) -> Bucket {
        let (store, prefix) =
            open_object_store(url, &OpenOptions::default()).expect("the object store opens");
        Bucket {
            store,
            prefix,
            store_id,
        }
    }

    /// A new client of the bucket (a segment log with short polls).
    pub fn client(&self) -> Arc<dyn SyncBackend> {
        Arc::new(
            SegmentLog::new(
                self.store.clone(),
                self.prefix.clone(),
                &self.store_id,
                super::bucket::fast_polls(),
            )
            .expect("a valid segment log"),
        )
    }

    /// Where the store is, for `verify` and `copy`.
    pub fn location(&self) -> StoreLocation {
        StoreLocation {
            store: self.store.clone(),
            prefix: self.prefix.clone(),
            store_id: self.store_id.clone(),
        }
    }

    /// `eventsync verify`, with `--snapshots` when `replay`.
    pub async fn verify(&self, schema: &Arc<Schema>, replay: bool) -> VerifyReport {
        let check = ReplayCheck::new(schema.clone(), self.client()).expect("a replay");
        let audit = SnapshotAudit {
            content: replay.then_some(&check as &dyn SnapshotContentCheck),
        };
        let hooks: Vec<&dyn ObjectAudit> = vec![&PackAudit, &audit];
        verify_store(&self.location(), &hooks, &|_, _| {})
            .await
            .expect("the audit runs")
    }

    /// A client that never boots from a snapshot: it replays the whole log.
    pub async fn open_replayer(&self, schema: &Arc<Schema>, dir: &std::path::Path) -> Store {
        let tuning = Tuning {
            boot_from_snapshot: false,
            ..fast_tuning()
        };
        self.open(schema, dir, tuning).await
    }

    /// Opens a store in `dir` on a new client of the bucket.
    pub async fn open(&self, schema: &Arc<Schema>, dir: &std::path::Path, tuning: Tuning) -> Store {
        Store::builder(schema.clone())
            .with_backend(self.client())
            .with_data_dir(dir)
            .with_client_id(format!(
                "c{}",
                dir.file_name().unwrap().to_string_lossy().len()
            ))
            .with_tuning(tuning)
            .open()
            .await
            .expect("the store opens")
    }
}

/// The todo schema with one more table: another schema hash, the same events.
pub fn changed_schema() -> Arc<Schema> {
    Arc::new(
        todo_schema_builder()
            .table("notes", "CREATE TABLE notes (id TEXT PRIMARY KEY)")
            .build()
            .expect("a valid schema"),
    )
}

/// The rows of `todos` of `store`'s leader.
pub async fn todos(store: &Store) -> Vec<Value> {
    store.query_leader(TODOS_DUMP).await.expect("query")
}
