//! What a long history costs the leader: commits N todos from one session on a store with a
//! folder backend, and reports the process's memory once the leader has them all, the time
//! of a reopen until its first query (with every event confirmed, and on an offline store
//! whose N events are all pending), and a rebase of R pending events under one pulled event.
//!
//! ```text
//! cargo build --release --example history
//! target/release/examples/history 100000 1000
//! ```
//!
//! Figures only, no verdicts: the goals of issue 11 are ≤ 100 MiB, ≤ 100 ms and ≤ 20 ms.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventsync::backends::{SegmentLog, SegmentLogConfig, SyncBackend};
use eventsync::{ClientSession, Store};
use eventsync_todo::{TodoCreated, todo_schema};
use object_store::local::LocalFileSystem;
use tokio::time::Instant;

fn todo(n: u64) -> TodoCreated {
    TodoCreated {
        id: format!("t{n}"),
        text: format!("todo number {n}"),
    }
}

/// (VmRSS, VmHWM) of this process in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn backend(folder: &Path) -> Arc<dyn SyncBackend> {
    std::fs::create_dir_all(folder).expect("the backend folder");
    let store = LocalFileSystem::new_with_prefix(folder).expect("a folder object store");
    Arc::new(
        SegmentLog::new(
            Arc::new(store),
            "prefix".into(),
            "history",
            SegmentLogConfig::default(),
        )
        .expect("a segment log"),
    )
}

async fn open(dir: &Path, client: &str, backend: Option<Arc<dyn SyncBackend>>) -> Store {
    let builder = Store::builder(Arc::new(todo_schema()))
        .with_store_id("history")
        .with_data_dir(dir)
        .with_client_id(client);
    match backend {
        Some(backend) => builder.with_backend(backend),
        None => builder.with_offline(true),
    }
    .open()
    .await
    .expect("the store opens")
}

/// Commits todos `range` and waits until the leader has them all.
async fn commit_all(session: &ClientSession, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        session.commit(&todo(n)).expect("a commit");
    }
    while session.sync_status().pending > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Opens, then a first query on a new session: the time, and the todos it counted.
async fn reopen(dir: &Path, backend: Option<Arc<dyn SyncBackend>>) -> (Duration, u64) {
    let start = Instant::now();
    let store = open(dir, "writer", backend).await;
    let session = store.session().await.expect("a session");
    let rows: Vec<serde_json::Value> = session
        .query("SELECT count(*) AS n FROM todos", &[])
        .expect("the first query");
    let elapsed = start.elapsed();
    drop(session);
    store.shutdown().await.expect("shutdown");
    (elapsed, rows[0]["n"].as_u64().unwrap_or(0))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: u64 = args.next().map_or(100_000, |arg| arg.parse().expect("N"));
    let pending: u64 = args.next().map_or(1_000, |arg| arg.parse().expect("R"));
    let temp = tempfile::tempdir().expect("a temp dir");
    let folder = temp.path().join("backend");

    // N commits, confirmed.
    let dir = temp.path().join("writer");
    let store = open(&dir, "writer", Some(backend(&folder))).await;
    let session = store.session().await.expect("a session");
    let start = Instant::now();
    commit_all(&session, 1..=count).await;
    let durable = start.elapsed();
    let (rss, hwm) = memory();
    store.sync().await.expect("sync");
    let confirmed = start.elapsed();
    println!(
        "{count} commits: durable in the leader {:.2} s, confirmed {:.2} s; then VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB",
        durable.as_secs_f64(),
        confirmed.as_secs_f64()
    );
    drop(session);
    store.shutdown().await.expect("shutdown");

    let (online, seen) = reopen(&dir, Some(backend(&folder))).await;
    println!(
        "reopen with {count} confirmed events, online, until the first query: {:.1} ms ({seen} todos)",
        online.as_secs_f64() * 1e3
    );
    let (offline, seen) = reopen(&dir, None).await;
    println!(
        "the same offline: {:.1} ms ({seen} todos)",
        offline.as_secs_f64() * 1e3
    );

    // N commits on an offline store: all pending at the reopen.
    let lonely = temp.path().join("lonely");
    let store = open(&lonely, "writer", None).await;
    let session = store.session().await.expect("a session");
    commit_all(&session, 1..=count).await;
    drop(session);
    store.shutdown().await.expect("shutdown");
    let (elapsed, seen) = reopen(&lonely, None).await;
    println!(
        "reopen with {count} pending events, offline, until the first query: {:.1} ms ({seen} todos)",
        elapsed.as_secs_f64() * 1e3
    );

    // A rebase: R pending events against a baseline of 1, timed from the open until the
    // leader merged the one pulled event.
    let base = rebase(temp.path(), "base", 1).await;
    let full = rebase(temp.path(), "full", pending).await;
    println!(
        "open, pull and rebase of 1 pending event: {:.1} ms; of {pending}: {:.1} ms; difference {:.1} ms",
        base.as_secs_f64() * 1e3,
        full.as_secs_f64() * 1e3,
        (full.as_secs_f64() - base.as_secs_f64()) * 1e3
    );
}

/// A client with `pending` events committed offline opens on a backend holding one event of
/// another client: it pulls that event, rolls its pending events back and replays them. The
/// time from the open until the leader had merged the pulled event.
async fn rebase(temp: &Path, tag: &str, pending: u64) -> Duration {
    let dir = temp.join(format!("rebasing-{tag}"));
    let store = open(&dir, "writer", None).await;
    let session = store.session().await.expect("a session");
    commit_all(&session, 1..=pending).await;
    drop(session);
    store.shutdown().await.expect("shutdown");
    let folder = temp.join(format!("backend-{tag}"));
    let other = open(
        &temp.join(format!("other-{tag}")),
        "other",
        Some(backend(&folder)),
    )
    .await;
    let session = other.session().await.expect("a session");
    session.commit(&todo(pending + 1)).expect("a commit");
    drop(session);
    other.sync().await.expect("sync");
    other.shutdown().await.expect("shutdown");
    let start = Instant::now();
    let store = open(&dir, "writer", Some(backend(&folder))).await;
    while store
        .status()
        .await
        .expect("status")
        .backend_confirmed_head
        .global
        .0
        == 0
    {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    let elapsed = start.elapsed();
    assert!(
        store.stats().rebases > 0,
        "the pulled event rebased the pending ones"
    );
    store.shutdown().await.expect("shutdown");
    elapsed
}
