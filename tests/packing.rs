//! A leader packs the backend's log by itself (`Tuning::pack_after_events`): once the
//! confirmed head has moved that far, it packs every complete window after the last pack,
//! and again as the log grows; at 0 it never packs. Two leaders that write and pack one log
//! at once leave a log that `verify` passes, packs included, with the same events in both
//! (on memory, a folder, and S3 when `EVENTSYNC_TEST_S3_URL` is set).

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsync::backends::conformance::not_run::test_name;
use eventsync::backends::conformance::{S3_NOT_CONFIGURED, in_ci, make_events, report_not_run};
use eventsync::backends::copy::StoreLocation;
use eventsync::backends::verify::{PackAudit, verify_store};
use eventsync::backends::{
    GlobalSeq, OpenOptions, SegmentLog, SegmentLogConfig, SyncBackend, SyncBackendExt,
    open_object_store,
};
use eventsync::{Store, Tuning};
use eventsync_todo::{TodoCreated, todo_schema};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use support::{backend_log, fast_tuning, open_store_tuned, synced, wait_until};

const STORE: &str = "packing";

/// A client of the store at `place` packing in windows of 8 events.
fn client(place: &StoreLocation) -> SegmentLog {
    let config = SegmentLogConfig {
        pack_window_events: 8,
        poll_min: Duration::from_millis(5),
        poll_max: Duration::from_millis(50),
        ..SegmentLogConfig::default()
    };
    SegmentLog::new(
        place.store.clone(),
        place.prefix.clone(),
        &place.store_id,
        config,
    )
    .expect("a segment log")
}

fn memory() -> StoreLocation {
    StoreLocation {
        store: Arc::new(object_store::memory::InMemory::new()),
        prefix: Path::from("test"),
        store_id: STORE.into(),
    }
}

fn packing_every(events: u64) -> Tuning {
    Tuning {
        pack_after_events: events,
        ..fast_tuning()
    }
}

async fn open(place: &StoreLocation, dir: &std::path::Path, client_id: &str, every: u64) -> Store {
    let backend: Arc<dyn SyncBackend> = Arc::new(client(place));
    open_store_tuned(
        &Arc::new(todo_schema()),
        dir,
        client_id,
        backend,
        packing_every(every),
    )
    .await
}

/// The packs in the store at `place`, as (first, last), sorted.
async fn packs(place: &StoreLocation) -> Vec<(u64, u64)> {
    let paths = client(place).log_paths().await.expect("the log's keys");
    let keys: Vec<Path> = place
        .store
        .list(Some(paths.packs_dir()))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .expect("a listing");
    let mut packs: Vec<(u64, u64)> = keys
        .iter()
        .filter_map(|key| paths.parse_pack(key))
        .map(|(first, last)| (first.0, last.0))
        .collect();
    packs.sort_unstable();
    packs
}

/// The last event of the chain of packs from `e1` (0 without one).
fn packed_through(packs: &[(u64, u64)]) -> u64 {
    let mut through = 0;
    for &(first, last) in packs {
        if first == through + 1 {
            through = last;
        }
    }
    through
}

async fn commit_todos(store: &Store, client_id: &str, count: usize) {
    let session = store.session().await.expect("a session");
    for n in 0..count {
        session
            .commit(&TodoCreated {
                id: format!("{client_id}-{n}"),
                text: format!("todo {n} of {client_id}"),
            })
            .expect("commit");
        store.sync().await.expect("sync");
    }
}

/// A store that pulled 30 events (10 segments) packs the complete windows (1-9, 10-18,
/// 19-24) by itself; after 10 more of its own commits it packs the next window too.
#[tokio::test]
async fn test_a_leader_packs_by_itself_as_the_log_grows() {
    let place = memory();
    let writer = client(&place);
    for batch in make_events(GlobalSeq::ZERO, 30, "writer", 20).chunks(3) {
        writer.push(batch.to_vec()).await.expect("push");
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = open(&place, dir.path(), "reader", 8).await;
    store.sync().await.expect("sync");
    wait_until("the leader packed the 3 complete windows", || {
        let place = &place;
        async move { packed_through(&packs(place).await) >= 24 }
    })
    .await;
    assert_eq!(packs(&place).await, [(1, 9), (10, 18), (19, 24)]);

    commit_todos(&store, "reader", 10).await;
    wait_until("the leader packed the window 25-32", || {
        let place = &place;
        async move { packed_through(&packs(place).await) >= 32 }
    })
    .await;
    store.shutdown().await.expect("shutdown");
    let report = verify_store(&place, &[&PackAudit], &|_, _| ())
        .await
        .expect("verify");
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.head, 40);
    assert_eq!(report.families[0].checked, 4, "{report:?}");
}

/// `pack_after_events = 0`: the leader never packs.
#[tokio::test]
async fn test_a_leader_with_packing_off_never_packs() {
    let place = memory();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = open(&place, dir.path(), "quiet", 0).await;
    commit_todos(&store, "quiet", 30).await;
    store.shutdown().await.expect("shutdown");
    let log = client(&place).read_all_checked().await.expect("the log");
    assert_eq!(log.len(), 30);
    assert_eq!(packs(&place).await, []);
}

/// Two leaders on one log, each committing 20 todos (syncing after each) and packing every
/// 8 confirmed events: the log verifies (every pack against its segments), the packs chain
/// from `e1` over every complete window, and both stores hold the backend's 40 events.
async fn two_leaders_packing_at_once_leave_a_valid_log(place: StoreLocation) {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(&place, dir_a.path(), "a", 8).await;
    let b = open(&place, dir_b.path(), "b", 8).await;
    futures::join!(commit_todos(&a, "a", 20), commit_todos(&b, "b", 20));
    a.sync().await.expect("sync");
    b.sync().await.expect("sync");
    let log = backend_log(&(Arc::new(client(&place)) as Arc<dyn SyncBackend>)).await;
    assert_eq!(log.len(), 40);
    // The windows 1-8 .. 25-32 are complete once the log goes past 32: the leaders pack
    // them as their heads pass multiples of 8.
    wait_until("the leaders packed through e32", || {
        let place = &place;
        async move { packed_through(&packs(place).await) >= 32 }
    })
    .await;
    for store in [&a, &b] {
        assert_eq!(synced(&store.eventlog().await.expect("eventlog")), log);
    }
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
    let report = verify_store(&place, &[&PackAudit], &|_, _| ())
        .await
        .expect("verify");
    assert!(report.is_sound(), "{report:?}");
    assert!(report.families[0].checked >= 4, "{report:?}");
}

#[tokio::test]
async fn test_two_leaders_packing_at_once_leave_a_valid_log_on_memory() {
    two_leaders_packing_at_once_leave_a_valid_log(memory()).await;
}

#[tokio::test]
async fn test_two_leaders_packing_at_once_leave_a_valid_log_on_a_folder() {
    let bucket = tempfile::tempdir().expect("a temp dir");
    let url = format!("file://{}", bucket.path().display());
    let (store, prefix) = open_object_store(&url, &OpenOptions::default()).expect("a folder");
    two_leaders_packing_at_once_leave_a_valid_log(StoreLocation {
        store,
        prefix,
        store_id: STORE.into(),
    })
    .await;
}

#[tokio::test]
async fn test_two_leaders_packing_at_once_leave_a_valid_log_on_s3() {
    let Ok(url) = std::env::var("EVENTSYNC_TEST_S3_URL") else {
        assert!(!in_ci(), "CI requires the S3 run, but {S3_NOT_CONFIGURED}");
        report_not_run(
            &test_name(
                "eventsync",
                "packing",
                "test_two_leaders_packing_at_once_leave_a_valid_log_on_s3",
            ),
            S3_NOT_CONFIGURED,
        );
        return;
    };
    let (store, prefix) = open_object_store(&url, &OpenOptions::default()).expect("S3");
    let run = eventsync::backends::Entropy::from_os().hex::<4>();
    two_leaders_packing_at_once_leave_a_valid_log(StoreLocation {
        store,
        prefix: prefix.join(format!("packing-{run}")),
        store_id: STORE.into(),
    })
    .await;
}
