//! Materialization against the todo app's schema: rolling back the last k events leaves the
//! state of the first n - k, rolling back and replaying rebased events equals materializing
//! the final order from scratch, and `apply_event` reports args errors, changesets and the
//! tables it touched.

use std::collections::BTreeSet;

use eventsync::Event;
use eventsync::materialize::{MaterializeError, Record, apply_event, rollback};
use eventsync::schema::{EventDef, MaterializeContext, Schema, Statement};
use eventsync::{Changeset, EncodedEvent, EventMeta, EventSeq};
use eventsync_todo::{
    self as todo, TodoCompleted, TodoCreated, TodoDeleted, TodoUncompleted, UiStateSet,
};
use proptest::prelude::*;
use rusqlite::Connection;
use rusqlite::types::Value;
use serde_json::json;

/// One random todo-app event, before numbering.
#[derive(Debug, Clone)]
enum Op {
    Create(u8, u8),
    Complete(u8),
    Uncomplete(u8),
    Delete(u8, i64),
    Filter(u8),
}

const FILTERS: [&str; 3] = ["all", "active", "completed"];

impl Op {
    fn name_args(&self) -> (&'static str, serde_json::Value) {
        let id = |n: &u8| format!("t{n}");
        match self {
            Op::Create(n, text) => (
                TodoCreated::NAME,
                json!({"id": id(n), "text": format!("text {text}")}),
            ),
            Op::Complete(n) => (TodoCompleted::NAME, json!({"id": id(n)})),
            Op::Uncomplete(n) => (TodoUncompleted::NAME, json!({"id": id(n)})),
            Op::Delete(n, at) => (TodoDeleted::NAME, json!({"id": id(n), "deletedAt": at})),
            Op::Filter(f) => (
                UiStateSet::NAME,
                json!({"filter": FILTERS[usize::from(*f % 3)]}),
            ),
        }
    }

    fn is_client_only(&self) -> bool {
        matches!(self, Op::Filter(_))
    }
}

fn op(synced_only: bool) -> impl Strategy<Value = Op> {
    let id = 0u8..6;
    let synced = prop_oneof![
        3 => (id.clone(), any::<u8>()).prop_map(|(n, t)| Op::Create(n, t)),
        2 => id.clone().prop_map(Op::Complete),
        1 => id.clone().prop_map(Op::Uncomplete),
        1 => (id, 0i64..1000).prop_map(|(n, at)| Op::Delete(n, at)),
    ];
    if synced_only {
        synced.boxed()
    } else {
        prop_oneof![6 => synced, 1 => (0u8..3).prop_map(Op::Filter)].boxed()
    }
}

/// Numbers `ops` as a chain of events after `head`.
fn number(ops: &[Op], mut head: EventSeq) -> Vec<EncodedEvent> {
    ops.iter()
        .map(|op| {
            let pair = head.next_pair(op.is_client_only(), 0);
            head = pair.seq;
            let (name, args) = op.name_args();
            EncodedEvent {
                seq: pair.seq,
                parent: pair.parent,
                name: name.to_string(),
                args,
                client_id: "c1".into(),
                session_id: "s1".into(),
                meta: EventMeta::default(),
            }
        })
        .collect()
}

/// Renumbers `events` onto `head`, as a rebase does.
fn rebase(events: &[EncodedEvent], mut head: EventSeq) -> Vec<EncodedEvent> {
    events
        .iter()
        .map(|event| {
            let rebased = event.rebased(head, head.generation + 1);
            head = rebased.seq;
            rebased
        })
        .collect()
}

fn head_of(events: &[EncodedEvent], default: EventSeq) -> EventSeq {
    events.last().map_or(default, |event| event.seq)
}

fn fresh(schema: &Schema) -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    schema.create_tables(&conn).unwrap();
    conn
}

/// Every user table's rows (rowid excluded), each table's rows sorted.
fn dump(conn: &Connection, schema: &Schema) -> Vec<(String, Vec<String>)> {
    let mut tables: Vec<_> = schema
        .tables()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    tables.sort();
    tables
        .into_iter()
        .map(|table| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
            let columns = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |row| {
                    let values = (0..columns)
                        .map(|i| row.get::<_, Value>(i))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(format!("{values:?}"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort();
            (table, rows)
        })
        .collect()
}

/// Applies `events` in one transaction; returns their changesets.
fn apply_all(
    conn: &Connection,
    schema: &Schema,
    events: &[EncodedEvent],
    record: Record,
) -> Vec<Changeset> {
    let tx = conn.unchecked_transaction().unwrap();
    let changesets = events
        .iter()
        .map(|event| apply_event(conn, schema, event, record).unwrap().changeset)
        .collect();
    tx.commit().unwrap();
    changesets
}

fn scratch(schema: &Schema, events: &[EncodedEvent]) -> Connection {
    let conn = fresh(schema);
    apply_all(&conn, schema, events, Record::Nothing);
    conn
}

proptest! {
    #[test]
    fn test_rollback_last_k_equals_first_n_minus_k(
        ops in prop::collection::vec(op(false), 0..40),
        k_seed in any::<usize>(),
    ) {
        let schema = todo::todo_schema();
        let events = number(&ops, EventSeq::ROOT);
        let k = k_seed % (events.len() + 1);
        let conn = fresh(&schema);
        let changesets = apply_all(&conn, &schema, &events, Record::Changeset);
        let tail: Vec<&Changeset> = changesets[events.len() - k..].iter().collect();
        let tx = conn.unchecked_transaction().unwrap();
        let touched = rollback(&conn, &tail).unwrap();
        tx.commit().unwrap();
        let expected = scratch(&schema, &events[..events.len() - k]);
        prop_assert_eq!(dump(&conn, &schema), dump(&expected, &schema));
        prop_assert_eq!(todo::list_todos(&conn).unwrap(), todo::list_todos(&expected).unwrap());
        let any_data = tail.iter().any(|c| matches!(c, Changeset::Data(_)));
        prop_assert_eq!(any_data, !touched.is_empty());
    }

    #[test]
    fn test_rollback_then_replay_rebased_equals_final_order(
        base in prop::collection::vec(op(false), 0..15),
        local in prop::collection::vec(op(false), 0..15),
        upstream in prop::collection::vec(op(true), 0..15),
    ) {
        let schema = todo::todo_schema();
        let base = number(&base, EventSeq::ROOT);
        let base_head = head_of(&base, EventSeq::ROOT);
        let local = number(&local, base_head);
        let upstream = number(&upstream, base_head);
        let rebased = rebase(&local, head_of(&upstream, base_head));

        let conn = fresh(&schema);
        apply_all(&conn, &schema, &base, Record::Nothing);
        let changesets = apply_all(&conn, &schema, &local, Record::Changeset);
        let tx = conn.unchecked_transaction().unwrap();
        rollback(&conn, &changesets.iter().collect::<Vec<_>>()).unwrap();
        for event in upstream.iter().chain(&rebased) {
            apply_event(&conn, &schema, event, Record::Changeset).unwrap();
        }
        tx.commit().unwrap();

        let order: Vec<EncodedEvent> =
            base.iter().chain(&upstream).chain(&rebased).cloned().collect();
        let expected = scratch(&schema, &order);
        prop_assert_eq!(dump(&conn, &schema), dump(&expected, &schema));
        prop_assert_eq!(todo::list_todos(&conn).unwrap(), todo::list_todos(&expected).unwrap());
    }
}

fn one(global: u64, name: &str, args: serde_json::Value) -> EncodedEvent {
    EncodedEvent {
        seq: EventSeq::global(global),
        parent: EventSeq::global(global.saturating_sub(1)),
        name: name.into(),
        args,
        client_id: "c1".into(),
        session_id: "s1".into(),
        meta: EventMeta::default(),
    }
}

fn created(global: u64, id: &str) -> EncodedEvent {
    one(global, TodoCreated::NAME, json!({"id": id, "text": "x"}))
}

#[test]
fn test_invalid_args_name_event_and_field() {
    let schema = todo::todo_schema();
    let conn = fresh(&schema);
    let bad_type = one(1, TodoCreated::NAME, json!({"id": "a", "text": 5}));
    match apply_event(&conn, &schema, &bad_type, Record::Changeset).unwrap_err() {
        MaterializeError::InvalidArgs { event, path, .. } => {
            assert_eq!(event, TodoCreated::NAME);
            assert_eq!(path, "text");
        }
        other => panic!("unexpected {other:?}"),
    }
    let missing = one(1, TodoDeleted::NAME, json!({"id": "a"}));
    let error = apply_event(&conn, &schema, &missing, Record::Nothing).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(TodoDeleted::NAME) && text.contains("deletedAt"),
        "{text}"
    );
    let bad_filter = one(1, UiStateSet::NAME, json!({"filter": "weird"}));
    let error = apply_event(&conn, &schema, &bad_filter, Record::Nothing).unwrap_err();
    assert!(
        matches!(&error, MaterializeError::InvalidArgs { path, .. } if path == "filter"),
        "{error}"
    );
}

#[test]
fn test_record_nothing_gives_unset_and_reports_tables() {
    let schema = todo::todo_schema();
    let conn = fresh(&schema);
    let applied = apply_event(&conn, &schema, &created(1, "a"), Record::Nothing).unwrap();
    assert_eq!(applied.changeset, Changeset::Unset);
    assert_eq!(applied.tables, BTreeSet::from(["todos".to_string()]));
    // Cached second time: same answer.
    let applied = apply_event(&conn, &schema, &created(2, "b"), Record::Nothing).unwrap();
    assert_eq!(applied.tables, BTreeSet::from(["todos".to_string()]));
    let filter = one(2, UiStateSet::NAME, json!({"filter": "active"}));
    let applied = apply_event(&conn, &schema, &filter, Record::Nothing).unwrap();
    assert_eq!(applied.tables, BTreeSet::from(["ui_state".to_string()]));
    let nothing = one(3, TodoCompleted::NAME, json!({"id": "missing"}));
    let applied = apply_event(&conn, &schema, &nothing, Record::Nothing).unwrap();
    assert!(applied.tables.is_empty());
}

#[test]
fn test_record_changeset_reports_tables_and_noop() {
    let schema = todo::todo_schema();
    let conn = fresh(&schema);
    let applied = apply_event(&conn, &schema, &created(1, "a"), Record::Changeset).unwrap();
    assert!(matches!(applied.changeset, Changeset::Data(ref bytes) if !bytes.is_empty()));
    assert_eq!(applied.tables, BTreeSet::from(["todos".to_string()]));
    let nothing = one(2, TodoCompleted::NAME, json!({"id": "missing"}));
    let applied = apply_event(&conn, &schema, &nothing, Record::Changeset).unwrap();
    assert_eq!(applied.changeset, Changeset::NoOp);
    assert!(applied.tables.is_empty());
}

#[test]
fn test_rollback_refuses_unset_and_skips_noop() {
    let schema = todo::todo_schema();
    let conn = fresh(&schema);
    let recorded = apply_event(&conn, &schema, &created(1, "a"), Record::Changeset).unwrap();
    let error = rollback(&conn, &[&recorded.changeset, &Changeset::Unset]).unwrap_err();
    assert!(
        matches!(error, MaterializeError::Rollback { index: 1, .. }),
        "{error}"
    );
    // Nothing was undone by the refused call.
    assert_eq!(todo::list_todos(&conn).unwrap().len(), 1);
    let tables = rollback(&conn, &[&recorded.changeset, &Changeset::NoOp]).unwrap();
    assert_eq!(tables, BTreeSet::from(["todos".to_string()]));
    assert!(todo::list_todos(&conn).unwrap().is_empty());
}

#[test]
fn test_rollback_conflict_is_an_error() {
    let schema = todo::todo_schema();
    let conn = fresh(&schema);
    let recorded = apply_event(&conn, &schema, &created(1, "a"), Record::Changeset).unwrap();
    // A write the changeset does not know of: the row no longer matches.
    conn.execute("UPDATE todos SET text = 'changed' WHERE id = 'a'", [])
        .unwrap();
    let error = rollback(&conn, &[&recorded.changeset]).unwrap_err();
    assert!(
        matches!(error, MaterializeError::Rollback { index: 0, .. }),
        "{error}"
    );
}

/// A schema whose `prefs` table is client-only; `v1.NoteAdded` (synced) writes `notes`,
/// `v1.PrefLeaked` (synced, a bug) writes `prefs`, `v1.PrefSet` (client-only) writes `prefs`.
fn prefs_schema() -> Schema {
    #[derive(serde::Deserialize)]
    struct Text {
        text: String,
    }
    let insert = |sql: &'static str| {
        move |args: Text, _: &MaterializeContext<'_>| {
            Ok(vec![Statement::new(sql, vec![args.text.into()])])
        }
    };
    Schema::builder()
        .table("notes", "CREATE TABLE notes (text TEXT PRIMARY KEY)")
        .client_only_table("prefs", "CREATE TABLE prefs (text TEXT PRIMARY KEY)")
        .define_event(
            EventDef::synced("v1.NoteAdded"),
            insert("INSERT INTO notes (text) VALUES (?1)"),
        )
        .define_event(
            EventDef::synced("v1.PrefLeaked"),
            insert("INSERT INTO prefs (text) VALUES (?1)"),
        )
        .define_event(
            EventDef::client_only("v1.PrefSet"),
            insert("INSERT OR REPLACE INTO prefs (text) VALUES (?1)"),
        )
        .build()
        .unwrap()
}

/// A synced event whose materializer writes a client-only table is refused before any of its
/// statements runs, in both recording modes, with the event and the table named; synced
/// events writing shared tables and client-only events writing the client-only table pass.
#[test]
fn test_synced_event_may_not_write_a_client_only_table() {
    let schema = prefs_schema();
    let conn = fresh(&schema);
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    };
    for record in [Record::Changeset, Record::Nothing] {
        let leaked = one(1, "v1.PrefLeaked", json!({"text": "dark"}));
        let error = apply_event(&conn, &schema, &leaked, record).unwrap_err();
        assert!(
            matches!(&error, MaterializeError::ClientOnlyTable { event, table, .. }
                if event == "v1.PrefLeaked" && table == "prefs"),
            "{record:?}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("v1.PrefLeaked") && message.contains("`prefs`"),
            "{message}"
        );
        assert_eq!(
            count("prefs"),
            0,
            "{record:?}: the refused event wrote nothing"
        );
    }
    let note = one(1, "v1.NoteAdded", json!({"text": "hello"}));
    let applied = apply_event(&conn, &schema, &note, Record::Changeset).unwrap();
    assert_eq!(applied.tables, BTreeSet::from(["notes".to_string()]));
    let pref = one(2, "v1.PrefSet", json!({"text": "dark"}));
    let applied = apply_event(&conn, &schema, &pref, Record::Nothing).unwrap();
    assert_eq!(applied.tables, BTreeSet::from(["prefs".to_string()]));
    assert_eq!((count("notes"), count("prefs")), (1, 1));
}
