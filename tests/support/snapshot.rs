//! The set-ups the snapshot tests share: a writer's history with a snapshot in it, and the
//! checks that a fresh client booted from that snapshot.

use eventsync::backends::{GlobalEvent, GlobalSeq, SnapshotPut};
use eventsync::schema::Schema;
use eventsync::{SnapshotBoot, Store};

use super::{TODOS_DUMP, backend_log, commit_todos, todos_from_scratch};

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
