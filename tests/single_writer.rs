//! One writer alone on a store never meets `ServerAhead`: nobody else writes, so a refused
//! push could only be waste (events pushed twice because a shutdown left a push's outcome
//! unknown, or a push started before the pull took in what the backend already holds). Over
//! many commits, shutdowns in the middle of pushes, offline stretches and reopenings, the
//! writer pushes every event exactly once, and the backend holds each once, in commit order.
//! Runs on memory and on a folder, and on S3 when `EVENTSYNC_TEST_S3_URL` is set.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsync::backends::fault::FaultConfig;
use eventsync::{ErrorKind, Store, StoreStats};
use eventsync_todo::{TodoCreated, todo_schema};
use support::bucket::Bucket;
use support::{backend_log, fast_tuning};

async fn open(bucket: &Bucket, data: &std::path::Path, offline: bool) -> Store {
    let mut builder = Store::builder(Arc::new(todo_schema()))
        .with_data_dir(data)
        .with_client_id("writer")
        .with_tuning(fast_tuning())
        .with_offline(offline);
    if !offline {
        builder = builder.with_backend(bucket.client().await);
    }
    builder.open().await.expect("the store opens")
}

/// How one opening of the store ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Shut down right after the last commit, while its push is likely in flight.
    ShutdownAtOnce,
    /// `sync`, then shut down.
    SyncThenShutdown,
    /// Opened offline: commits stay pending until an online opening pushes them.
    Offline,
}

const ENDINGS: [Ending; 5] = [
    Ending::ShutdownAtOnce,
    Ending::ShutdownAtOnce,
    Ending::Offline,
    Ending::SyncThenShutdown,
    Ending::ShutdownAtOnce,
];

/// A memory bucket whose requests each wait up to 3 ms, like a fast disk or a near server:
/// long enough for commits to arrive while a push is in flight, and for a shutdown to find
/// one under way. With `flaky`, one request in ten also fails, and one create in ten lands
/// and then answers with an error.
fn memory(seed: u64, flaky: bool) -> Bucket {
    let mut faults = FaultConfig {
        latency: 1.0,
        max_latency: Duration::from_millis(3),
        ..FaultConfig::default()
    };
    if flaky {
        faults.transient = 0.1;
        faults.error_after_write = 0.1;
    }
    Bucket::memory("single", seed, faults)
}

/// Whether every push got its answer, so that the counters must show each event pushed
/// exactly once. A flaky store loses some answers; the events of such a push then come
/// back with the pull.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answers {
    All,
    SomeLost,
}

/// `Store::sync`, again after a transient failure (a flaky store's), up to 50 times.
async fn sync(store: &Store) {
    for _ in 0..50 {
        match store.sync().await {
            Ok(()) => return,
            Err(error) if error.kind() == ErrorKind::Unavailable => continue,
            Err(error) => panic!("sync: {error:#}"),
        }
    }
    panic!("sync failed 50 times");
}

/// Commits `per_opening` todos in each of `openings` openings of one data dir, ending them
/// in turn as [`ENDINGS`] says, then syncs once more and checks the backend and the counters.
async fn single_writer_run(bucket: Bucket, openings: usize, per_opening: usize, answers: Answers) {
    let data = tempfile::tempdir().expect("a temp dir");
    let mut stats = StoreStats::default();
    let mut ids = Vec::new();
    for opening in 0..openings {
        let ending = ENDINGS[opening % ENDINGS.len()];
        let store = open(&bucket, data.path(), matches!(ending, Ending::Offline)).await;
        {
            let session = store.session().await.expect("a session");
            for i in 0..per_opening {
                let id = format!("o{opening}-{i}");
                session
                    .commit(&TodoCreated {
                        id: id.clone(),
                        text: "single writer".into(),
                    })
                    .expect("commit");
                ids.push(id);
                // Let the leader admit and push now and then, so that commits land while a
                // push is in flight and the last push is still out at the shutdown.
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
        if matches!(ending, Ending::SyncThenShutdown) {
            sync(&store).await;
        }
        // Read after the shutdown, which waits for the push in flight.
        let handle = store.clone();
        store.shutdown().await.expect("shutdown");
        stats += &handle.stats();
    }
    let store = open(&bucket, data.path(), false).await;
    sync(&store).await;
    let handle = store.clone();
    store.shutdown().await.expect("shutdown");
    stats += &handle.stats();

    assert_eq!(
        stats.server_ahead, 0,
        "a single writer met ServerAhead: {stats:?}"
    );
    assert_eq!(stats.rebases, 0, "a single writer rebased: {stats:?}");
    if answers == Answers::All {
        assert_eq!(
            stats.pushed_events,
            ids.len() as u64,
            "every event is pushed exactly once: {stats:?}"
        );
    }
    bucket.heal();
    let log = backend_log(&bucket.client().await).await;
    let logged: Vec<&str> = log
        .iter()
        .map(|event| event.args["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(logged, ids, "the backend holds each commit once, in order");
    assert!(log.iter().all(|event| event.client_id == "writer"));
}

#[tokio::test]
async fn test_single_writer_meets_no_server_ahead_on_memory() {
    single_writer_run(memory(1, false), 25, 20, Answers::All).await;
}

/// A push whose answer was lost may have landed: the leader pulls before pushing again, and
/// takes its own events from the pull instead of pushing them twice.
#[tokio::test]
async fn test_single_writer_meets_no_server_ahead_on_a_flaky_store() {
    for seed in 1..=3 {
        single_writer_run(memory(seed, true), 10, 20, Answers::SomeLost).await;
    }
}

#[tokio::test]
async fn test_single_writer_meets_no_server_ahead_on_a_folder() {
    let folder = tempfile::tempdir().expect("a temp dir");
    let bucket = Bucket::folder(folder.path(), "single");
    single_writer_run(bucket, 25, 20, Answers::All).await;
}

#[tokio::test]
async fn test_single_writer_meets_no_server_ahead_on_s3() {
    if let Some(bucket) = Bucket::s3("test_single_writer_meets_no_server_ahead_on_s3", "single") {
        single_writer_run(bucket, 10, 20, Answers::All).await;
    }
}
