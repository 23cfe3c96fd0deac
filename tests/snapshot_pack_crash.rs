//! `kill -9` in the middle of writing a snapshot and a pack loses nothing, and no partial
//! object is ever taken for a whole one.
//!
//! The bucket is a folder. A child process writes a snapshot (or packs the log) through a
//! store that writes the object *torn*: the first half of its bytes at its final key, as a
//! store without atomic puts (or a crash on one) would leave it. The child then tells the
//! parent (a marker file) and blocks there; the parent kills it with SIGKILL. Afterwards:
//! the log verifies, and `verify` names the torn object and nothing else; a fresh client
//! refuses the torn object by its checksum and falls back (to the older snapshot, or to the
//! segments of the torn pack's range), ending with the log's state; the child's store
//! reopens with every event it had; and running the operation again replaces the torn
//! object, after which `verify` finds the store sound.

mod support;

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventsync::backends::copy::StoreLocation;
use eventsync::backends::verify::{
    ObjectAudit, PackAudit, SnapshotAudit, SnapshotContentCheck, VerifyReport, verify_store,
};
use eventsync::backends::{
    OpenOptions, SegmentLog, SegmentLogConfig, SyncBackend, open_object_store,
};
use eventsync::snapshot::ReplayCheck;
use eventsync::{SnapshotBoot, Store, Tuning};
use eventsync_todo::{TodoCreated, todo_schema};
use futures::stream::BoxStream;
use object_store::path::Path as StorePath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use support::{TODOS_DUMP, backend_log, fast_tuning, todos_from_scratch};

/// The store id in the bucket.
const STORE: &str = "crash";
/// Events per pack window: small, so that a short log has several packs.
const WINDOW: u64 = 6;
/// Tells the forked child where the test's folder is.
const CHILD_DIR_ENV: &str = "EVENTSYNC_TEST_HISTORY_CRASH_DIR";
/// The marker the child writes once the torn object is in the bucket.
const MARKER: &str = "torn";

/// Wraps a store; forwards everything, except that the `skip + 1`-th put of a key whose path
/// holds `folder` writes only the first half of its bytes, at the final key, then writes the
/// marker and blocks the thread until the process is killed.
struct TearingStore {
    inner: Arc<dyn ObjectStore>,
    folder: &'static str,
    skip: std::sync::atomic::AtomicUsize,
    marker: PathBuf,
}

impl fmt::Debug for TearingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TearingStore({})", self.folder)
    }
}

impl fmt::Display for TearingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TearingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for TearingStore {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        use std::sync::atomic::Ordering;
        if location.as_ref().contains(self.folder)
            && self
                .skip
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
        {
            let bytes: Bytes = payload.into_iter().flatten().collect();
            let torn = PutPayload::from(bytes.slice(..bytes.len() / 2));
            self.inner.put(location, torn).await?;
            // Written whole, then renamed into place: the parent kills this process as soon
            // as the marker exists, and must never read it half-written (empty).
            let partial = self.marker.with_extension("partial");
            std::fs::write(&partial, location.as_ref()).expect("write the marker");
            std::fs::rename(&partial, &self.marker).expect("move the marker into place");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &StorePath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<StorePath>>,
    ) -> BoxStream<'static, object_store::Result<StorePath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&StorePath>,
        offset: &StorePath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// The test's folder: the bucket and the data dirs.
struct Setup {
    root: PathBuf,
}

impl Setup {
    fn bucket_url(&self) -> String {
        format!("file://{}", self.root.join("bucket").display())
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The bucket's object store and prefix, as a client opens them.
    fn object_store(&self) -> (Arc<dyn ObjectStore>, StorePath) {
        open_object_store(&self.bucket_url(), &OpenOptions::default()).expect("the folder opens")
    }

    /// A client of the log over `store` (the folder itself, or a tearing wrapper of it).
    fn backend_over(&self, store: Arc<dyn ObjectStore>) -> SegmentLog {
        let (_, prefix) = self.object_store();
        let config = SegmentLogConfig {
            max_events_per_segment: 2,
            pack_window_events: WINDOW,
            poll_min: Duration::from_millis(5),
            poll_max: Duration::from_millis(50),
            ..SegmentLogConfig::default()
        };
        SegmentLog::new(store, prefix, STORE, config).expect("a valid segment log")
    }

    fn backend(&self) -> Arc<dyn SyncBackend> {
        Arc::new(self.backend_over(self.object_store().0))
    }

    async fn open(&self, name: &str, backend: Arc<dyn SyncBackend>) -> Store {
        Store::builder(Arc::new(todo_schema()))
            .with_backend(backend)
            .with_store_id(STORE)
            .with_data_dir(self.data_dir(name))
            .with_client_id(name)
            .with_tuning(Tuning {
                // Segments of one or two events, and no packing by the leaders.
                push_batch_events: 2,
                pack_after_events: 0,
                ..fast_tuning()
            })
            .open()
            .await
            .expect("the store opens")
    }

    /// `eventsync verify --snapshots`.
    async fn verify(&self) -> VerifyReport {
        let (store, prefix) = self.object_store();
        let check = ReplayCheck::new(Arc::new(todo_schema()), self.backend()).expect("a replay");
        let snapshots = SnapshotAudit {
            content: Some(&check as &dyn SnapshotContentCheck),
        };
        let hooks: Vec<&dyn ObjectAudit> = vec![&PackAudit, &snapshots];
        let place = StoreLocation {
            store,
            prefix,
            store_id: STORE.into(),
        };
        verify_store(&place, &hooks, &|_, _| {})
            .await
            .expect("the audit runs")
    }
}

async fn commit_todos(store: &Store, from: usize, count: usize) {
    let session = store.session().await.expect("a session");
    for i in from..from + count {
        session
            .commit(&TodoCreated {
                id: format!("t{i}"),
                text: format!("todo {i}"),
            })
            .expect("commit");
    }
    store.sync().await.expect("sync");
}

async fn todos(store: &Store) -> Vec<serde_json::Value> {
    store.query_leader(TODOS_DUMP).await.expect("query")
}

/// The parent's preparation: a writer commits 30 todos in segments of one or two events and
/// writes a snapshot after the first 20 (the older, good one).
async fn prepare(setup: &Setup) -> String {
    let writer = setup.open("writer", setup.backend()).await;
    commit_todos(&writer, 0, 20).await;
    let put = writer.snapshot().await.expect("a snapshot");
    assert!(put.created);
    commit_todos(&writer, 20, 10).await;
    writer.shutdown().await.expect("shutdown");
    put.key
}

/// The store at the end: a fresh client ends with the log's state; returns how it booted.
async fn fresh_client_converges(setup: &Setup, name: &str) -> SnapshotBoot {
    let fresh = setup.open(name, setup.backend()).await;
    fresh.sync().await.expect("sync");
    let log = backend_log(&setup.backend()).await;
    assert_eq!(
        todos(&fresh).await,
        todos_from_scratch(&todo_schema(), &log),
        "{name} holds the log's state"
    );
    let boot = fresh.snapshot_boot().clone();
    fresh.shutdown().await.expect("shutdown");
    boot
}

/// Runs `child` in a forked process, waits for its marker, kills it with SIGKILL, and
/// returns the torn key the marker names.
fn kill_in_the_middle(
    name: &str,
    setup: &std::cell::OnceCell<(tempfile::TempDir, String)>,
    runtime: &tokio::runtime::Runtime,
    child: impl FnOnce(Setup),
) -> String {
    let mut torn = String::new();
    rusty_fork::fork(
        name,
        rusty_fork::rusty_fork_id!(),
        |command| {
            let (root, _) = setup.get_or_init(|| {
                let root = tempfile::tempdir().expect("a temp dir");
                let older = runtime.block_on(prepare(&Setup {
                    root: root.path().to_path_buf(),
                }));
                (root, older)
            });
            command.env(CHILD_DIR_ENV, root.path());
        },
        |process, _output| {
            let root = setup.get().expect("prepared before the child").0.path();
            let marker = root.join(MARKER);
            // Up to 120 s (12,000 waits of 10 ms) for the child to get there.
            let mut waits = 0;
            while !marker.exists() {
                if let Some(status) = process.try_wait().expect("the child's status") {
                    panic!("the child ended before writing the torn object: {status}");
                }
                waits += 1;
                assert!(waits < 12_000, "the child never wrote the torn object");
                std::thread::sleep(Duration::from_millis(10));
            }
            process.kill().expect("kill");
            let status = process.wait().expect("wait");
            assert_eq!(
                status.unix_signal(),
                Some(9),
                "killed with SIGKILL: {status}"
            );
            torn = std::fs::read_to_string(&marker).expect("the marker names the key");
        },
        || {
            let root = PathBuf::from(std::env::var_os(CHILD_DIR_ENV).expect("the parent's dir"));
            child(Setup { root });
        },
    )
    .expect("the fork runs");
    torn
}

fn tearing(setup: &Setup, folder: &'static str, skip: usize) -> Arc<dyn SyncBackend> {
    let store = Arc::new(TearingStore {
        inner: setup.object_store().0,
        folder,
        skip: std::sync::atomic::AtomicUsize::new(skip),
        marker: setup.root.join(MARKER),
    });
    Arc::new(setup.backend_over(store))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Killed while writing a snapshot: the child (a client that booted from the older snapshot
/// and committed more) is killed with half of its snapshot in the bucket.
#[cfg(unix)]
#[test]
fn test_kill_during_a_snapshot_loses_nothing_and_the_torn_snapshot_is_refused() {
    let runtime = runtime();
    let setup = std::cell::OnceCell::new();
    let torn = kill_in_the_middle(
        rusty_fork::rusty_fork_test_name!(
            test_kill_during_a_snapshot_loses_nothing_and_the_torn_snapshot_is_refused
        ),
        &setup,
        &runtime,
        |setup| {
            runtime.block_on(async {
                let child = setup.open("child", tearing(&setup, "/snapshots/", 0)).await;
                commit_todos(&child, 100, 7).await;
                let result = child.snapshot().await;
                panic!("the snapshot was not torn: {result:?}");
            })
        },
    );
    let (root, older) = setup.get().expect("prepared");
    let setup = Setup {
        root: root.path().to_path_buf(),
    };
    runtime.block_on(async {
        assert!(torn.contains("/snapshots/") && torn != *older, "{torn}");
        // The log verifies; the torn snapshot is the one fault, named.
        let report = setup.verify().await;
        let log = backend_log(&setup.backend()).await;
        assert_eq!(report.head, log.len() as u64, "the segments are sound");
        assert_eq!(log.len(), 37, "every event of the writer and the child");
        assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
        assert_eq!(report.faults[0].key, torn);

        // A fresh client refuses it and falls back to the older snapshot.
        match fresh_client_converges(&setup, "fresh1").await {
            SnapshotBoot::Loaded { key, refused, .. } => {
                assert_eq!(&key, older);
                assert_eq!(refused.len(), 1, "{refused:?}");
                assert_eq!(refused[0].key, torn);
            }
            other => panic!("the torn snapshot was not passed over: {other:?}"),
        }

        // The child reopens with all it had, and its snapshot can be written again: the
        // torn object is replaced.
        let child = setup.open("child", setup.backend()).await;
        child.sync().await.expect("sync");
        assert_eq!(
            todos(&child).await,
            todos_from_scratch(&todo_schema(), &log)
        );
        let again = child.snapshot().await.expect("the snapshot again");
        assert_eq!(again.key, torn, "the same event");
        assert!(again.created, "the torn object was replaced: {again:?}");
        child.shutdown().await.expect("shutdown");
        let report = setup.verify().await;
        assert!(report.is_sound(), "{:?}", report.faults);
        match fresh_client_converges(&setup, "fresh2").await {
            SnapshotBoot::Loaded { key, refused, .. } => {
                assert_eq!(key, torn);
                assert!(refused.is_empty(), "{refused:?}");
            }
            other => panic!("the rewritten snapshot was not used: {other:?}"),
        }
    });
}

/// Killed while packing: the second pack of the run is torn. A cold reader uses the first
/// pack, refuses the torn one and reads the segments of its range; packing again replaces it.
#[cfg(unix)]
#[test]
fn test_kill_during_a_pack_loses_nothing_and_the_torn_pack_is_refused() {
    let runtime = runtime();
    let setup = std::cell::OnceCell::new();
    let torn = kill_in_the_middle(
        rusty_fork::rusty_fork_test_name!(
            test_kill_during_a_pack_loses_nothing_and_the_torn_pack_is_refused
        ),
        &setup,
        &runtime,
        |setup| {
            runtime.block_on(async {
                let result = tearing(&setup, "/packs/", 1).pack().await;
                panic!("the pack was not torn: {result:?}");
            })
        },
    );
    let (root, _) = setup.get().expect("prepared");
    let setup = Setup {
        root: root.path().to_path_buf(),
    };
    runtime.block_on(async {
        assert!(torn.contains("/packs/"), "{torn}");
        let report = setup.verify().await;
        let log = backend_log(&setup.backend()).await;
        assert_eq!(report.head, log.len() as u64, "the segments are sound");
        assert_eq!(log.len(), 30);
        assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
        assert_eq!(report.faults[0].key, torn);
        assert_eq!(
            report.families[0].checked, 2,
            "the good pack and the torn one"
        );

        // A cold reader of the whole log (no snapshot: another data dir, boot off) refuses
        // the torn pack, reads its segments, and ends with the log's state.
        let cold = Store::builder(Arc::new(todo_schema()))
            .with_backend(setup.backend())
            .with_store_id(STORE)
            .with_data_dir(setup.data_dir("cold"))
            .with_client_id("cold")
            .with_tuning(Tuning {
                boot_from_snapshot: false,
                ..fast_tuning()
            })
            .open()
            .await
            .expect("the store opens");
        cold.sync().await.expect("sync");
        assert_eq!(cold.stats().pulled, 30);
        assert_eq!(todos(&cold).await, todos_from_scratch(&todo_schema(), &log));
        cold.shutdown().await.expect("shutdown");

        // Packing again replaces the torn pack and packs on; the store is then sound.
        let written = setup.backend().pack().await.expect("pack again");
        assert!(written >= 1, "the torn pack was rewritten");
        let report = setup.verify().await;
        assert!(report.is_sound(), "{:?}", report.faults);
        assert!(report.families[0].checked >= 3, "{:?}", report.families);
        fresh_client_converges(&setup, "fresh").await;
    });
}
