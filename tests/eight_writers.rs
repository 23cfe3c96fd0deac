//! Eight writers on one log: eight stores, each with its own data dir and client id, commit
//! concurrently through one backend. Every push races seven others for the same key; the
//! losers pull, rebase and push again. At the end the backend's log holds every committed
//! event exactly once, as one gapless chain, and every store holds exactly that log and the
//! state it materializes to. Runs on memory, on a folder, and on S3 when
//! `EVENTSYNC_TEST_S3_URL` is set (a failure under `CI=true` when it is not).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eventsync::backends::fault::FaultConfig;
use eventsync::{Store, StoreStats, Tuning};
use eventsync_todo::{Todo, TodoCreated, list_todos_sql, todo_schema};
use support::bucket::Bucket;
use support::{TODOS_DUMP, backend_log, fast_tuning, synced, todos_from_scratch};

const WRITERS: usize = 8;
const COMMITS_PER_WRITER: usize = 40;

/// A memory bucket whose requests each wait up to 1 ms, so that pushes overlap as they do on
/// a real store.
fn memory() -> Bucket {
    let faults = FaultConfig {
        latency: 1.0,
        max_latency: Duration::from_millis(1),
        ..FaultConfig::default()
    };
    Bucket::memory("eight", 8, faults)
}

async fn eight_writers_run(bucket: Bucket) {
    eight_writers_run_with(bucket, fast_tuning()).await;
}

async fn eight_writers_run_with(bucket: Bucket, tuning: Tuning) {
    let schema = Arc::new(todo_schema());
    let dirs: Vec<_> = (0..WRITERS).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut stores = Vec::new();
    for (index, dir) in dirs.iter().enumerate() {
        let store = Store::builder(schema.clone())
            .with_backend(bucket.client().await)
            .with_data_dir(dir.path())
            .with_client_id(format!("w{index}"))
            .with_tuning(tuning.clone())
            .open()
            .await
            .expect("the store opens");
        stores.push(store);
    }
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(index, store)| {
            let store = store.clone();
            tokio::spawn(async move {
                let session = store.session().await.expect("a session");
                for n in 0..COMMITS_PER_WRITER {
                    session
                        .commit(&TodoCreated {
                            id: format!("w{index}-{n}"),
                            text: format!("writer {index}, todo {n}"),
                        })
                        .expect("commit");
                    // Now and then let the leader push, so that commits keep arriving while
                    // pushes race.
                    if n % 4 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                store.sync().await.expect("sync");
                session
            })
        })
        .collect();
    let mut sessions = Vec::new();
    for task in tasks {
        sessions.push(task.await.expect("a writer task"));
    }
    // Every writer's own events are in the log; one more round takes in the others'.
    for store in &stores {
        store.sync().await.expect("sync");
    }

    let log = backend_log(&bucket.client().await).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for event in &log {
        let id = event.args["id"].as_str().expect("a todo id").to_owned();
        *counts.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "events in the log more than once: {twice:?}"
    );
    assert_eq!(
        log.len(),
        WRITERS * COMMITS_PER_WRITER,
        "the log holds every committed event"
    );
    let expected = todos_from_scratch(&schema, &log);
    let mut total = StoreStats::default();
    for store in &stores {
        let eventlog = store.eventlog().await.expect("the eventlog");
        assert_eq!(
            synced(&eventlog),
            log,
            "{} holds the backend's log, in its order",
            store.client_id()
        );
        assert_eq!(
            store.query_leader(TODOS_DUMP).await.expect("query"),
            expected,
            "{}'s state is the log's",
            store.client_id()
        );
        let session = store.session().await.expect("a session");
        let todos: Vec<Todo> = session.query(list_todos_sql(), &[]).expect("query");
        assert_eq!(todos.len(), log.len(), "{}'s session", store.client_id());
        total += &store.stats();
    }
    // The sessions that committed all along end on the log too (the leader's payloads, a
    // lazy rebase's catch-up among them, reach them asynchronously: wait for the last).
    let last = log.last().expect("a log").seq_num;
    for (store, session) in stores.iter().zip(&sessions) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while session.sync_status().local_head.global != last
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let todos: Vec<Todo> = session.query(list_todos_sql(), &[]).expect("query");
        assert_eq!(
            todos.len(),
            log.len(),
            "{}'s committing session ({:?})",
            store.client_id(),
            session.sync_status()
        );
        assert_eq!(session.sync_status().pending, 0);
    }
    // For the record (how often pushes lose races depends on timing).
    eprintln!("{WRITERS} writers × {COMMITS_PER_WRITER}: {total:?}");
    if tuning.lazy_rebase {
        // Every event here is synced and decodes: each rebase moves the eventlog alone, and
        // the tables catch up later, at most once per rebase.
        assert_eq!(total.deferred_rebases, total.rebases, "{total:?}");
        assert!(
            (total.rebases == 0) == (total.catch_ups == 0)
                && total.catch_ups <= total.deferred_rebases,
            "{total:?}"
        );
    } else {
        assert_eq!((total.deferred_rebases, total.catch_ups), (0, 0));
    }
    for store in stores {
        store.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_eight_writers_on_memory() {
    eight_writers_run(memory()).await;
}

/// The same without the wait after a lost race (`Tuning::race_wait` off): losers rebase and
/// push again at once, and nothing pulled is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_eight_writers_on_memory_without_race_wait() {
    let tuning = Tuning {
        race_wait: false,
        ..fast_tuning()
    };
    eight_writers_run_with(memory(), tuning).await;
}

/// The same without the fresh look at the head after a lost race's wait
/// (`Tuning::race_probe` off): the leader rebases and pushes on what its live pull found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_eight_writers_on_memory_without_race_probe() {
    let tuning = Tuning {
        race_probe: false,
        ..fast_tuning()
    };
    eight_writers_run_with(memory(), tuning).await;
}

/// The same with every rebase materialized at once (`Tuning::lazy_rebase` off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_eight_writers_on_memory_without_lazy_rebase() {
    let tuning = Tuning {
        lazy_rebase: false,
        ..fast_tuning()
    };
    eight_writers_run_with(memory(), tuning).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_eight_writers_on_a_folder() {
    let folder = tempfile::tempdir().expect("a temp dir");
    eight_writers_run(Bucket::folder(folder.path(), "eight")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_eight_writers_on_s3() {
    if let Some(bucket) = Bucket::s3("test_eight_writers_on_s3", "eight") {
        eight_writers_run(bucket).await;
    }
}
