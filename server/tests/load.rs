//! The load generator of `eventsync bench --serve`, run small and checked, on memory and on
//! a folder: several WebSocket clients on one store (racing for its head) and one client on
//! each of several stores. The generator's clients check as they go that every push gets
//! one answer, every own event is acknowledged once and comes back once, and each live
//! pull delivers its store's events in order with no gap; here the stores are then read
//! back directly: each holds exactly the events its clients committed, once each. No
//! timing is asserted (the figures are `eventsync bench --serve`'s).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use eventsync_backends::object_store::ObjectStore;
use eventsync_backends::object_store::memory::InMemory;
use eventsync_backends::object_store::path::Path;
use eventsync_backends::{
    GlobalSeq, OpenOptions, SegmentLog, SyncBackend, conformance, open_object_store,
};
use eventsync_server::load::{LoadError, LoadPlan, run};
use eventsync_server::{Limits, Opener, SyncServer};

mod support;
use support::config;

/// A hang guard for a whole run, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(300);

fn log(bucket: &Arc<dyn ObjectStore>, store: &str) -> SegmentLog {
    SegmentLog::new(bucket.clone(), Path::default(), store, config()).unwrap()
}

/// A server over `bucket` on 127.0.0.1; its URL and a sender that stops it.
async fn serve(bucket: Arc<dyn ObjectStore>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let opener: Opener = Arc::new(move |store_id| {
        let backend: Arc<dyn SyncBackend> = Arc::new(log(&bucket, store_id.as_str()));
        Box::pin(async move { Ok(backend) })
    });
    let server = SyncServer::new(opener, Limits::default(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    (format!("ws://{addr}/sync"), stop)
}

/// Runs `clients` clients over `stores` stores, `events` each, and checks the report and
/// the stores read back directly.
async fn check(bucket: Arc<dyn ObjectStore>, clients: usize, stores: usize, events: u64) {
    let (url, stop) = serve(Arc::clone(&bucket)).await;
    let plan = LoadPlan {
        url,
        stores: (0..stores).map(|s| format!("load-{s}")).collect(),
        clients,
        events_per_client: events,
        interval: Duration::from_millis(5),
        patience: PATIENCE,
    };
    let report = run(&plan).await.unwrap_or_else(|e| panic!("{e}"));
    let total = clients as u64 * events;
    assert_eq!(report.events, total);
    assert_eq!(
        report.echo.len() as u64,
        total,
        "every event came back once"
    );
    // Each client got every event of its store: the store's events × its clients.
    let per_store = |s: usize| (0..clients).filter(|c| c % stores == s).count() as u64;
    let delivered: u64 = (0..stores).map(|s| per_store(s).pow(2) * events).sum();
    assert_eq!(report.delivered, delivered);
    assert!(report.pushes >= total.div_ceil(100));
    for s in 0..stores {
        let store = format!("load-{s}");
        let expected = per_store(s) * events;
        assert_eq!(report.heads[&store], expected);
        // The log itself: gapless, and each client's numbers 0..events once.
        let logged = conformance::pull_events(&log(&bucket, &store), GlobalSeq::ZERO).await;
        assert_eq!(logged.len() as u64, expected, "{store}");
        let mut seen = BTreeSet::new();
        for (i, event) in logged.iter().enumerate() {
            assert_eq!(event.seq_num, GlobalSeq(i as u64 + 1), "{store}");
            let key = (event.client_id.clone(), event.args["n"].as_u64().unwrap());
            assert!(seen.insert(key.clone()), "{store}: {key:?} twice");
        }
        for client in (0..clients).filter(|c| c % stores == s) {
            for n in 0..events {
                assert!(
                    seen.contains(&(format!("load-{client}"), n)),
                    "{store}: event {n} of client {client} is missing"
                );
            }
        }
    }
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_clients_racing_on_one_store_memory() {
    check(Arc::new(InMemory::new()), 12, 1, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_one_client_on_each_of_many_stores_memory() {
    check(Arc::new(InMemory::new()), 40, 40, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_several_clients_on_several_stores_folder() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("backend").display());
    let (bucket, prefix) = open_object_store(&url, &OpenOptions::default()).unwrap();
    assert_eq!(prefix, Path::default());
    check(bucket, 15, 5, 5).await;
}

#[tokio::test]
async fn test_a_plan_without_stores_or_a_server_is_refused() {
    let plan = LoadPlan {
        url: "ws://127.0.0.1:9/sync".into(),
        stores: Vec::new(),
        clients: 1,
        events_per_client: 1,
        interval: Duration::from_millis(5),
        patience: PATIENCE,
    };
    assert!(matches!(run(&plan).await, Err(LoadError::Plan(_))));
    // Nothing listens on the discard port of 127.0.0.1.
    let plan = LoadPlan {
        stores: vec!["s".into()],
        ..plan
    };
    assert!(matches!(run(&plan).await, Err(LoadError::Connect { .. })));
}
