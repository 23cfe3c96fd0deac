//! The whole store, session to backend, each figure next to its limit measured in the same run:
//!
//! - `commit_latency/{memory,file}`: `session.commit(TodoCreated)` then `session.query` of
//!   that row, on a running store (leader and backend busy in the background). Limit:
//!   `raw_insert_select`, the same row inserted and read back on an in-memory SQLite
//!   connection. Criterion reports means; p50/p99 over 2,000 commits are printed too.
//! - `ingest/{memory,file}/N`: commit N events on one session, then `store.sync()` until the
//!   backend confirmed them all (events/s). Limits: `raw_sqlite_file` (the same rows into a
//!   file database, journal DELETE + synchronous FULL as the leader, one transaction per push
//!   batch) and `raw_put_{memory,file}` (one conditional PUT of a segment-sized object per
//!   push batch).

#![allow(clippy::disallowed_methods, reason = "a benchmark measures real time")]

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use eventsync::{ClientSession, Store, Tuning};
use eventsync_backends::conformance::make_events;
use eventsync_backends::segment::{self, SegmentDigest, SegmentWriter, WriterNonce};
use eventsync_backends::{GlobalSeq, OpenOptions, SegmentLog, SyncBackend, open_object_store};
use eventsync_todo::{TodoCreated, todo_schema};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, memory::InMemory};
use rusqlite::Connection;
use tokio::runtime::Runtime;

const SAMPLES: usize = 2000;
const INSERT: &str =
    "INSERT INTO todos (id, text, completed, deleted_at, created_seq) VALUES (?1, ?2, 0, NULL, ?3)";

fn todo(n: u64) -> TodoCreated {
    TodoCreated {
        id: format!("todo-{n:06}"),
        text: format!("buy item number {n}"),
    }
}

/// A store on a fresh backend (`memory` or a `file` folder in `dir`), its data dir in `dir`.
async fn open_store(kind: &str, dir: &FsPath) -> Store {
    let backend: Arc<dyn SyncBackend> = match kind {
        "memory" => Arc::new(
            SegmentLog::new(
                Arc::new(InMemory::new()),
                Path::from("bench"),
                "bench",
                Default::default(),
            )
            .expect("memory backend"),
        ),
        _ => {
            let url = format!("file://{}", dir.join("backend").display());
            eventsync_backends::open_backend(&url, "bench", &OpenOptions::default())
                .await
                .expect("file backend")
        }
    };
    Store::builder(Arc::new(todo_schema()))
        .with_backend(backend)
        .with_data_dir(dir.join("data"))
        .with_client_id("bench")
        .open()
        .await
        .expect("open store")
}

fn commit_and_read(session: &ClientSession, n: u64) {
    let todo = todo(n);
    session.commit(&todo).expect("commit");
    let rows: Vec<serde_json::Value> = session
        .query(
            "SELECT 1 AS one FROM todos WHERE id = ?1",
            &[todo.id.into()],
        )
        .expect("query");
    assert_eq!(rows.len(), 1);
}

fn raw_insert_select(conn: &Connection, n: u64) {
    let todo = todo(n);
    conn.prepare_cached(INSERT)
        .and_then(|mut s| s.execute((&todo.id, &todo.text, n as i64)))
        .expect("insert");
    let one: i64 = conn
        .prepare_cached("SELECT 1 AS one FROM todos WHERE id = ?1")
        .and_then(|mut s| s.query_row([&todo.id], |row| row.get(0)))
        .expect("select");
    assert_eq!(one, 1);
}

/// Runs `op` SAMPLES times, timing each call, and prints p50/p99/max.
fn print_percentiles(label: &str, mut op: impl FnMut()) {
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| (Instant::now(), op()).0.elapsed())
        .collect();
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{label}: p50 {:?}  p99 {:?}  max {:?}  ({SAMPLES} commits)",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn commit_latency(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("commit_latency");
    group.throughput(Throughput::Elements(1));
    for kind in ["memory", "file"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = runtime.block_on(open_store(kind, dir.path()));
        let session = runtime.block_on(store.session()).expect("session");
        let mut n = 0;
        print_percentiles(&format!("commit_latency/{kind}"), || {
            (n += 1, commit_and_read(&session, n)).1
        });
        let leader = runtime.block_on(store.status()).expect("status").pending;
        let session_pending = session.sync_status().pending;
        println!(
            "  then: {session_pending} not admitted by the leader, {leader} not confirmed by the backend"
        );
        group.bench_function(kind, |b| {
            b.iter(|| (n += 1, commit_and_read(&session, n)).1)
        });
        runtime.block_on(store.shutdown()).expect("shutdown");
    }
    let conn = Connection::open_in_memory().expect("in-memory database");
    todo_schema().create_tables(&conn).expect("tables");
    let mut n = 0;
    print_percentiles("commit_latency/raw_insert_select", || {
        (n += 1, raw_insert_select(&conn, n)).1
    });
    group.bench_function("raw_insert_select", |b| {
        b.iter(|| (n += 1, raw_insert_select(&conn, n)).1)
    });
    group.finish();
}

/// Commits `count` events on a fresh store, then syncs: the time from first commit to synced.
fn ingest_once(runtime: &Runtime, kind: &str, count: u64) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = runtime.block_on(open_store(kind, dir.path()));
    let session = runtime.block_on(store.session()).expect("session");
    let todos: Vec<TodoCreated> = (1..=count).map(todo).collect();
    let start = Instant::now();
    for todo in &todos {
        session.commit(todo).expect("commit");
    }
    runtime.block_on(store.sync()).expect("sync");
    let elapsed = start.elapsed();
    assert_eq!(runtime.block_on(store.status()).expect("status").pending, 0);
    runtime.block_on(store.shutdown()).expect("shutdown");
    elapsed
}

/// The same rows into a file database set up like the leader's, `batch` rows a transaction.
fn raw_sqlite_file(count: u64, batch: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = Connection::open(dir.path().join("raw.db")).expect("open");
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;")
        .expect("pragmas");
    todo_schema().create_tables(&conn).expect("tables");
    let todos: Vec<TodoCreated> = (1..=count).map(todo).collect();
    let start = Instant::now();
    for (index, chunk) in todos.chunks(batch).enumerate() {
        let tx = conn.unchecked_transaction().expect("begin");
        for (offset, todo) in chunk.iter().enumerate() {
            let seq = (index * batch + offset) as i64;
            tx.prepare_cached(INSERT)
                .and_then(|mut s| s.execute((&todo.id, &todo.text, seq)))
                .expect("insert");
        }
        tx.commit().expect("commit");
    }
    start.elapsed()
}

/// `puts` conditional creates of one segment-sized object each, on a fresh object store.
fn raw_puts(runtime: &Runtime, kind: &str, segment: &bytes::Bytes, puts: u64) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn ObjectStore> = match kind {
        "memory" => Arc::new(InMemory::new()),
        _ => {
            open_object_store(
                &format!("file://{}", dir.path().display()),
                &OpenOptions::default(),
            )
            .expect("folder")
            .0
        }
    };
    runtime.block_on(async {
        let start = Instant::now();
        for index in 1..=puts {
            let key = Path::from(format!("raw/segments/{index:020}.seg"));
            store
                .put_opts(&key, segment.clone().into(), PutMode::Create.into())
                .await
                .expect("put");
        }
        start.elapsed()
    })
}

/// The sum of `iters` runs of `run`, each timing itself (setup excluded).
fn timed(iters: u64, run: impl Fn() -> Duration) -> Duration {
    (0..iters).map(|_| run()).sum()
}

fn ingest(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let batch = Tuning::default().push_batch_events;
    let events = make_events(GlobalSeq(0), batch, "bench", "buy item number 1000".len());
    let writer = SegmentWriter {
        nonce: WriterNonce::draw(&eventsync::Entropy::seeded(1)),
        prev_digest: SegmentDigest::ROOT,
        backend_id: "0123456789abcdef0123456789abcdef",
        client_id: "bench",
    };
    let segment = segment::encode(&writer, &events).expect("segment").bytes;
    println!(
        "ingest: push batch {batch} events, segment {} bytes",
        segment.len()
    );
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    // One timed run at 10,000 (criterion's 10 samples would take minutes: ingest is
    // superlinear in the number of unconfirmed events, see BENCHMARKS.md).
    for kind in ["memory", "file"] {
        let elapsed = ingest_once(&runtime, kind, 10_000);
        let rate = 10_000.0 / elapsed.as_secs_f64();
        println!("ingest/{kind}/10000 (one run): {elapsed:?}, {rate:.0} events/s");
    }
    for count in [100u64, 1_000] {
        group.throughput(Throughput::Elements(count));
        let puts = count.div_ceil(batch as u64);
        for kind in ["memory", "file"] {
            group.bench_function(BenchmarkId::new(kind, count), |b| {
                b.iter_custom(|iters| timed(iters, || ingest_once(&runtime, kind, count)))
            });
            group.bench_function(BenchmarkId::new(format!("raw_put_{kind}"), count), |b| {
                b.iter_custom(|iters| timed(iters, || raw_puts(&runtime, kind, &segment, puts)))
            });
        }
        group.bench_function(BenchmarkId::new("raw_sqlite_file", count), |b| {
            b.iter_custom(|iters| timed(iters, || raw_sqlite_file(count, batch)))
        });
    }
    group.finish();
}

criterion_group!(benches, commit_latency, ingest);
criterion_main!(benches);
