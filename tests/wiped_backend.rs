//! A running leader whose backend is wiped (every object of the store deleted) or replaced:
//! the next push or poll finds out, the leader applies `on_backend_id_mismatch` through the
//! same function as the open path, and the store that follows stays valid for every client.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsync::OnBackendIdMismatch;
use eventsync::backends::{GlobalSeq, OpenOptions, SegmentLogConfig, SyncBackend, open_backend};
use eventsync::{ErrorKind, Store, Tuning};
use eventsync_todo::{TodoCreated, todo_schema};
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use support::{backend_log, fast_tuning, synced, wait_until};

const STORE: &str = "wiped";

/// Where the backend lives: one `InMemory` shared by every client, or a folder.
enum Bucket {
    Memory(Arc<InMemory>),
    Folder(tempfile::TempDir),
}

impl Bucket {
    fn memory() -> Bucket {
        Bucket::Memory(Arc::new(InMemory::new()))
    }

    fn folder() -> Bucket {
        Bucket::Folder(tempfile::tempdir().expect("a temporary folder"))
    }

    fn config() -> SegmentLogConfig {
        SegmentLogConfig {
            poll_min: Duration::from_millis(5),
            poll_max: Duration::from_millis(50),
            identity_check: Duration::from_millis(50),
            ..SegmentLogConfig::default()
        }
    }

    fn url(&self) -> Option<String> {
        match self {
            Bucket::Memory(_) => None,
            Bucket::Folder(dir) => Some(format!("file://{}", dir.path().display())),
        }
    }

    /// A new client of the store (its own caches), as another process would have.
    async fn client(&self) -> Arc<dyn SyncBackend> {
        match self {
            Bucket::Memory(memory) => {
                let log = eventsync::backends::SegmentLog::new(
                    memory.clone(),
                    object_store::path::Path::from("test"),
                    STORE,
                    Bucket::config(),
                )
                .expect("a valid segment log");
                Arc::new(log)
            }
            Bucket::Folder(_) => {
                let options = OpenOptions {
                    segment_log: Bucket::config(),
                    ..OpenOptions::default()
                };
                let url = self.url().expect("a folder has a URL");
                open_backend(&url, STORE, &options)
                    .await
                    .expect("the folder opens")
            }
        }
    }

    /// Deletes every object of the store: what `rm -r` of its folder, or emptying its
    /// bucket prefix, does.
    async fn wipe(&self) {
        match self {
            Bucket::Memory(memory) => {
                let root = object_store::path::Path::from(format!("test/{STORE}"));
                let keys: Vec<_> = memory.list(Some(&root)).collect().await;
                assert!(!keys.is_empty(), "the store had objects to wipe");
                for meta in keys {
                    memory
                        .delete(&meta.expect("list").location)
                        .await
                        .expect("delete");
                }
            }
            Bucket::Folder(dir) => {
                std::fs::remove_dir_all(dir.path().join(STORE)).expect("delete the store's folder")
            }
        }
    }
}

async fn open(bucket: &Bucket, data: &std::path::Path, policy: OnBackendIdMismatch) -> Store {
    try_open(bucket, data, policy).await.expect("store opens")
}

async fn try_open(
    bucket: &Bucket,
    data: &std::path::Path,
    policy: OnBackendIdMismatch,
) -> eventsync::Result<Store> {
    Store::builder(Arc::new(todo_schema()))
        .with_backend(bucket.client().await)
        .with_store_id(STORE)
        .with_data_dir(data)
        .with_client_id("a")
        .with_tuning(Tuning {
            on_backend_id_mismatch: policy,
            ..fast_tuning()
        })
        .open()
        .await
}

fn todo(id: &str) -> TodoCreated {
    TodoCreated {
        id: id.into(),
        text: format!("todo {id}"),
    }
}

async fn todo_ids(store: &Store) -> Vec<String> {
    store
        .query_leader("SELECT id FROM todos ORDER BY id")
        .await
        .expect("query")
        .into_iter()
        .map(|row| row["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// A store with `t1`, `t2`, `t3` committed and synced; then the store is wiped, and the
/// same session commits `t4`. Returns the store, the session, the old backend id and the
/// result of the `sync()` that followed.
struct Wiped {
    store: Store,
    session: eventsync::ClientSession,
    old_id: String,
    sync: eventsync::Result<()>,
}

async fn wipe_under_a_live_leader(
    bucket: &Bucket,
    data: &std::path::Path,
    policy: OnBackendIdMismatch,
) -> Wiped {
    let store = open(bucket, data, policy).await;
    let session = store.session().await.expect("session");
    for id in ["t1", "t2", "t3"] {
        session.commit(&todo(id)).expect("commit");
    }
    store.sync().await.expect("first sync");
    let old_id = bucket
        .client()
        .await
        .backend_id()
        .await
        .expect("backend id");
    bucket.wipe().await;
    session.commit(&todo("t4")).expect("commit");
    let sync = store.sync().await;
    Wiped {
        store,
        session,
        old_id,
        sync,
    }
}

/// A fresh client (its own caches, opened by URL when the store is a folder, as another
/// process would) reads a valid store: a gapless log, equal to `expected` (by number, name
/// and args). The command line's `log` over a wiped folder store is checked in
/// `cli/tests/cli_end_to_end.rs`.
async fn assert_fresh_client_reads(bucket: &Bucket, expected: &[(u64, &str)]) {
    let fresh = bucket.client().await;
    let log = backend_log(&fresh).await;
    let got: Vec<(u64, String)> = log
        .iter()
        .map(|event| {
            (
                event.seq_num.0,
                event.args["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = expected
        .iter()
        .map(|(n, id)| (*n, (*id).to_owned()))
        .collect();
    assert_eq!(got, want, "a fresh client's log");
    assert_eq!(
        fresh.head().await.expect("head"),
        GlobalSeq(expected.len() as u64)
    );
}

/// A push into a wiped folder store is noticed, not reported as success: a store on a folder, 3 commits synced, the store's
/// folder deleted, one more commit. The push used to land `segments/…04.seg` alone in the
/// empty folder, `sync()` returned Ok, and every fresh client then failed on the missing
/// segments. Now the push finds out, the leader resets (the default policy), and the
/// folder holds a valid store.
#[tokio::test]
async fn test_folder_deleted_under_a_live_leader_leaves_a_valid_store() {
    let bucket = Bucket::folder();
    let data = tempfile::tempdir().unwrap();
    let wiped =
        wipe_under_a_live_leader(&bucket, data.path(), OnBackendIdMismatch::default()).await;
    // Whatever the sync said (the reset may fail it, or come first), the store stays valid.
    let _ = wiped.sync;
    assert_fresh_client_reads(&bucket, &[]).await;
    wait_until("the leader reset its local data", || async {
        wiped
            .store
            .eventlog()
            .await
            .is_ok_and(|events| events.is_empty())
    })
    .await;
    assert_fresh_client_reads(&bucket, &[]).await;
    wiped.store.shutdown().await.unwrap();
}

/// Syncs until the store answers `Closed` (it stops in the background), and returns that
/// message; panics after 20 s.
async fn closed_message(store: &Store) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.sync().await {
            Err(error) if error.kind() == ErrorKind::Closed => return format!("{error:#}"),
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "the store did not stop: the last sync gave {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The backend id a fresh client reads now.
async fn current_id(bucket: &Bucket) -> String {
    bucket
        .client()
        .await
        .backend_id()
        .await
        .expect("backend id")
}

/// `reset`: the leader deletes its local data (the pending `t4` too), closes the sessions
/// that hold the old state, and syncs on from the new store; the store stays open.
async fn reset_follows_the_new_store(bucket: Bucket) {
    let data = tempfile::tempdir().unwrap();
    let wiped = wipe_under_a_live_leader(&bucket, data.path(), OnBackendIdMismatch::Reset).await;
    if let Err(error) = &wiped.sync {
        assert_eq!(error.kind(), ErrorKind::Closed, "{error}");
    }
    wait_until("the session holding the old state is closed", || async {
        wiped.session.closed().is_some()
    })
    .await;
    let reason = wiped.session.closed().expect("closed");
    let new_id = current_id(&bucket).await;
    assert_ne!(new_id, wiped.old_id);
    for needle in ["reset", wiped.old_id.as_str(), new_id.as_str()] {
        assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
    }
    let refused = wiped
        .session
        .commit(&todo("t5"))
        .expect_err("a closed session cannot commit");
    assert_eq!(refused.kind(), ErrorKind::Closed);
    assert!(
        wiped.store.eventlog().await.unwrap().is_empty(),
        "local data deleted"
    );
    assert!(todo_ids(&wiped.store).await.is_empty());

    let session = wiped.store.session().await.expect("a new session");
    let rows: Vec<serde_json::Value> = session.query("SELECT id FROM todos", &[]).unwrap();
    assert!(rows.is_empty(), "a new session starts from the new store");
    session.commit(&todo("fresh")).unwrap();
    wiped
        .store
        .sync()
        .await
        .expect("syncing goes on in the new store");
    let status = wiped.store.status().await.unwrap();
    assert_eq!(status.backend_head, Some(GlobalSeq(1)));
    assert_eq!(status.pending, 0);
    assert_fresh_client_reads(&bucket, &[(1, "fresh")]).await;
    wiped.store.shutdown().await.unwrap();

    // The open path gives the same outcome: nothing to reset now, and the data is there.
    let again = open(&bucket, data.path(), OnBackendIdMismatch::Reset).await;
    assert_eq!(todo_ids(&again).await, ["fresh"]);
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_reset_follows_the_new_store_on_a_folder() {
    reset_follows_the_new_store(Bucket::folder()).await;
}

#[tokio::test]
async fn test_reset_follows_the_new_store_in_memory() {
    reset_follows_the_new_store(Bucket::memory()).await;
}

/// `shutdown`: the store stops with `Closed`, naming both ids; local data is kept; an open
/// refuses the same way; the new store stays valid (and empty).
async fn shutdown_stops_keeping_local_data(bucket: Bucket) {
    let data = tempfile::tempdir().unwrap();
    let wiped = wipe_under_a_live_leader(&bucket, data.path(), OnBackendIdMismatch::Shutdown).await;
    if let Err(error) = &wiped.sync {
        assert_eq!(error.kind(), ErrorKind::Closed, "{error}");
    }
    let message = closed_message(&wiped.store).await;
    let new_id = current_id(&bucket).await;
    for needle in ["shutdown", wiped.old_id.as_str(), new_id.as_str()] {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    // The session takes the leader's close notice on its own task: wait for it.
    wait_until("sessions are closed too", || async {
        wiped.session.closed().is_some()
    })
    .await;
    wiped.store.shutdown().await.unwrap();

    let offline = Store::builder(Arc::new(todo_schema()))
        .with_store_id(STORE)
        .with_data_dir(data.path())
        .with_client_id("a")
        .with_offline(true)
        .with_tuning(fast_tuning())
        .open()
        .await
        .unwrap();
    assert_eq!(
        todo_ids(&offline).await,
        ["t1", "t2", "t3", "t4"],
        "local data kept"
    );
    assert_eq!(offline.eventlog().await.unwrap().len(), 4);
    offline.shutdown().await.unwrap();

    let refused = try_open(&bucket, data.path(), OnBackendIdMismatch::Shutdown)
        .await
        .expect_err("an open refuses the same way");
    assert_eq!(refused.kind(), ErrorKind::Closed);
    assert!(format!("{refused:#}").contains(&new_id), "{refused}");
    assert_fresh_client_reads(&bucket, &[]).await;
}

#[tokio::test]
async fn test_shutdown_stops_keeping_local_data_on_a_folder() {
    shutdown_stops_keeping_local_data(Bucket::folder()).await;
}

#[tokio::test]
async fn test_shutdown_stops_keeping_local_data_in_memory() {
    shutdown_stops_keeping_local_data(Bucket::memory()).await;
}

/// `ignore`: the leader keeps its data and carries on in the new store: its confirmed
/// events go there first, then the pending `t4`, so the new store holds the same log.
async fn ignore_carries_on_in_the_new_store(bucket: Bucket) {
    let data = tempfile::tempdir().unwrap();
    let wiped = wipe_under_a_live_leader(&bucket, data.path(), OnBackendIdMismatch::Ignore).await;
    wiped.sync.expect("the sync goes through in the new store");
    assert_ne!(current_id(&bucket).await, wiped.old_id);
    assert_eq!(
        wiped.store.status().await.unwrap().backend_head,
        Some(GlobalSeq(4))
    );
    assert_fresh_client_reads(&bucket, &[(1, "t1"), (2, "t2"), (3, "t3"), (4, "t4")]).await;
    let local = synced(&wiped.store.eventlog().await.unwrap());
    assert_eq!(
        backend_log(&bucket.client().await).await,
        local,
        "the same log"
    );

    assert!(wiped.session.closed().is_none(), "sessions go on");
    wiped.session.commit(&todo("t5")).unwrap();
    wiped.store.sync().await.unwrap();
    wiped.store.shutdown().await.unwrap();

    // Another client of the new store sees every event.
    let other = Store::builder(Arc::new(todo_schema()))
        .with_backend(bucket.client().await)
        .with_store_id(STORE)
        .with_data_dir(data.path().join("other"))
        .with_client_id("b")
        .with_tuning(fast_tuning())
        .open()
        .await
        .unwrap();
    other.sync().await.unwrap();
    assert_eq!(todo_ids(&other).await, ["t1", "t2", "t3", "t4", "t5"]);
    other.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_ignore_carries_on_in_the_new_store_on_a_folder() {
    ignore_carries_on_in_the_new_store(Bucket::folder()).await;
}

#[tokio::test]
async fn test_ignore_carries_on_in_the_new_store_in_memory() {
    ignore_carries_on_in_the_new_store(Bucket::memory()).await;
}

/// `ignore` when the new store already holds another client's events: this client's log
/// cannot continue it, so the store stops, keeping its data, and the new store is untouched.
#[tokio::test]
async fn test_ignore_stops_when_the_new_store_holds_other_events() {
    let bucket = Bucket::memory();
    let data = tempfile::tempdir().unwrap();
    let store = open(&bucket, data.path(), OnBackendIdMismatch::Ignore).await;
    let session = store.session().await.unwrap();
    session.commit(&todo("t1")).unwrap();
    store.sync().await.unwrap();
    bucket.wipe().await;
    let other = bucket.client().await;
    let theirs = eventsync::backends::conformance::make_events(GlobalSeq::ZERO, 2, "b", 10);
    other.push(theirs.clone()).await.unwrap();

    session.commit(&todo("t2")).unwrap();
    let message = closed_message(&store).await;
    assert!(message.contains("holds other events"), "{message}");
    assert_eq!(
        backend_log(&bucket.client().await).await,
        theirs,
        "untouched"
    );
    store.shutdown().await.unwrap();
}

/// A leader that never pushes finds out too: its live pull re-reads `store.json` every
/// `identity_check` (50 ms here), and the policy (`reset`) is applied.
#[tokio::test]
async fn test_an_idle_leader_notices_a_wipe_without_pushing() {
    let bucket = Bucket::memory();
    let data = tempfile::tempdir().unwrap();
    let store = open(&bucket, data.path(), OnBackendIdMismatch::Reset).await;
    let session = store.session().await.unwrap();
    for id in ["t1", "t2", "t3"] {
        session.commit(&todo(id)).unwrap();
    }
    store.sync().await.unwrap();
    bucket.wipe().await;
    wait_until("the idle leader reset its local data", || async {
        store.eventlog().await.is_ok_and(|events| events.is_empty())
    })
    .await;
    // The leader sent the close before answering, but the session takes its messages on
    // its own task: wait for it, then check why it closed.
    wait_until("the session heard of the reset", || async {
        session.closed().is_some()
    })
    .await;
    let reason = session.closed().unwrap_or_default();
    assert!(reason.contains("reset"), "{reason}");
    assert_fresh_client_reads(&bucket, &[]).await;
    store.shutdown().await.unwrap();
}

/// `ignore` at open does what it does while running: the store, wiped while this client was
/// closed, gets the events the old store had confirmed, then the pending ones.
#[tokio::test]
async fn test_ignore_at_open_carries_on_in_the_new_store_as_while_running() {
    let bucket = Bucket::folder();
    let data = tempfile::tempdir().unwrap();
    let store = open(&bucket, data.path(), OnBackendIdMismatch::Ignore).await;
    let session = store.session().await.unwrap();
    for id in ["t1", "t2", "t3"] {
        session.commit(&todo(id)).unwrap();
    }
    store.sync().await.unwrap();
    store.shutdown().await.unwrap();
    bucket.wipe().await;
    let offline = Store::builder(Arc::new(todo_schema()))
        .with_store_id(STORE)
        .with_data_dir(data.path())
        .with_client_id("a")
        .with_offline(true)
        .with_tuning(fast_tuning())
        .open()
        .await
        .unwrap();
    let pending = offline.session().await.unwrap();
    pending.commit(&todo("t4")).unwrap();
    offline.shutdown().await.unwrap();

    let store = open(&bucket, data.path(), OnBackendIdMismatch::Ignore).await;
    store
        .sync()
        .await
        .expect("the sync goes through in the new store");
    assert_fresh_client_reads(&bucket, &[(1, "t1"), (2, "t2"), (3, "t3"), (4, "t4")]).await;
    assert_eq!(
        backend_log(&bucket.client().await).await,
        synced(&store.eventlog().await.unwrap()),
        "the same log"
    );
    store.shutdown().await.unwrap();
}
