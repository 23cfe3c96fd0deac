//! Materialization throughput on the todo schema, in events per second, batched 1000 events
//! per transaction on an in-memory database (CPU cost only, no disk):
//!
//! - `changeset`: `apply_event` with `Record::Changeset` (a session per event);
//! - `nothing`: `apply_event` with `Record::Nothing`;
//! - `raw_insert`: the same rows through one prepared `INSERT`: the limit.
//!
//! Each measured batch starts from a fresh database (created outside the measurement).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use eventsync::Event;
use eventsync::materialize::{Record, apply_event};
use eventsync::schema::Schema;
use eventsync::{EncodedEvent, EventMeta, EventSeq};
use eventsync_todo::{TodoCreated, todo_schema};
use rusqlite::Connection;

const BATCH: u64 = 1000;

fn events() -> Vec<EncodedEvent> {
    (1..=BATCH)
        .map(|global| EncodedEvent {
            seq: EventSeq::global(global),
            parent: EventSeq::global(global - 1),
            name: TodoCreated::NAME.to_string(),
            args: serde_json::to_value(TodoCreated {
                id: format!("todo-{global:06}"),
                text: format!("buy item number {global}"),
            })
            .unwrap(),
            client_id: "bench".into(),
            session_id: "bench".into(),
            meta: EventMeta::default(),
        })
        .collect()
}

fn fresh(schema: &Schema) -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory database");
    schema.create_tables(&conn).expect("create tables");
    conn
}

fn apply_batch(conn: &Connection, schema: &Schema, events: &[EncodedEvent], record: Record) {
    let tx = conn.unchecked_transaction().expect("begin");
    for event in events {
        apply_event(conn, schema, event, record).expect("apply");
    }
    tx.commit().expect("commit");
}

fn raw_batch(conn: &Connection, rows: &[(String, String, i64)]) {
    let tx = conn.unchecked_transaction().expect("begin");
    {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO todos (id, text, completed, deleted_at, created_seq) \
                 VALUES (?1, ?2, 0, NULL, ?3)",
            )
            .expect("prepare");
        for (id, text, seq) in rows {
            insert.execute((id, text, seq)).expect("insert");
        }
    }
    tx.commit().expect("commit");
}

fn bench_materialize(c: &mut Criterion) {
    let schema = todo_schema();
    let events = events();
    let rows: Vec<(String, String, i64)> = events
        .iter()
        .map(|event| {
            let args: TodoCreated = serde_json::from_value(event.args.clone()).expect("args");
            (args.id, args.text, event.seq.global.0 as i64)
        })
        .collect();

    let mut group = c.benchmark_group("materialize");
    group.throughput(Throughput::Elements(BATCH));
    for (label, record) in [
        ("changeset", Record::Changeset),
        ("nothing", Record::Nothing),
    ] {
        group.bench_function(label, |b| {
            b.iter_batched(
                || fresh(&schema),
                |conn| {
                    apply_batch(&conn, &schema, &events, record);
                    conn
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.bench_function("raw_insert", |b| {
        b.iter_batched(
            || fresh(&schema),
            |conn| {
                raw_batch(&conn, &rows);
                conn
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_materialize);
criterion_main!(benches);
