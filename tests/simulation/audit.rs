//! The auditor: after quiescence, checks the invariants of issue 5 on the backend, every
//! leader and every live session. Returns violations as sentences; none means the seed passed.

use std::collections::BTreeMap;

use eventsync::backends::{GlobalEvent, GlobalSeq, SegmentLog, SegmentLogConfig, SyncBackend};
use eventsync::event::canonical_args;
use eventsync::materialize::{Record, apply_event};
use eventsync::schema::Schema;
use eventsync::todo::{TodoCompleted, TodoCreated, UiStateSet};
use eventsync::{EncodedEvent, EventSeq};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use serde_json::{Value, json};

use super::world::{Fate, STORE_ID, World, event_key};

/// The todos as the auditor compares them: every column, every row (deleted ones too).
pub const TODOS_SQL: &str =
    "SELECT id, text, completed, deleted_at, created_seq FROM todos ORDER BY id";

/// Runs every check; appends violations to `world.violations`.
pub async fn audit(world: &mut World) {
    let mut violations = Vec::new();
    let log = match read_backend(world).await {
        Ok(log) => log,
        Err(message) => {
            world.violations.push(message);
            return;
        }
    };
    world.stats.backend_events = log.len() as u64;
    check_chain(&log, &mut violations);
    check_exactly_once(world, &log, &mut violations);
    let expected = materialize(&world.schema, &log, &mut violations);
    for node in &world.nodes {
        let Some(store) = &node.store else {
            violations.push(format!("node {}: not running at the audit", node.index));
            continue;
        };
        let who = format!("node {} ({})", node.index, node.client_id);
        let eventlog = match store.eventlog().await {
            Ok(events) => events,
            Err(error) => {
                violations.push(format!("{who}: eventlog: {error}"));
                continue;
            }
        };
        check_eventlog(&who, &eventlog, &log, &mut violations);
        match store.query_leader(TODOS_SQL).await {
            Ok(rows) if rows == expected => {}
            Ok(rows) => violations.push(format!(
                "{who}: leader todos differ from a materialization of the backend log: {}",
                diff(&rows, &expected)
            )),
            Err(error) => violations.push(format!("{who}: leader query: {error}")),
        }
        let filter = last_filter(&eventlog);
        match store.query_leader("SELECT filter FROM ui_state").await {
            Ok(rows) if rows.first().map(|row| row["filter"].clone()) == filter => {}
            Ok(rows) => violations.push(format!(
                "{who}: leader ui_state {rows:?} is not the last client-only UiStateSet {filter:?}"
            )),
            Err(error) => violations.push(format!("{who}: leader ui_state query: {error}")),
        }
        for (number, session) in node.sessions.iter().enumerate() {
            match session.query::<Value>(TODOS_SQL, &[]) {
                Ok(rows) if rows == expected => {}
                Ok(rows) => violations.push(format!(
                    "{who} session {number}: todos differ from a materialization of the backend log: {}",
                    diff(&rows, &expected)
                )),
                Err(error) => violations.push(format!("{who} session {number}: query: {error}")),
            }
            match session.query::<Value>("SELECT filter FROM ui_state", &[]) {
                Ok(rows) if rows.first().map(|row| row["filter"].clone()) == filter => {}
                Ok(rows) => violations.push(format!(
                    "{who} session {number}: ui_state {rows:?} is not the leader's last UiStateSet {filter:?}"
                )),
                Err(error) => violations.push(format!("{who} session {number}: query: {error}")),
            }
        }
    }
    if !violations.is_empty() {
        world.trace.push("backend log at the audit:".into());
        for event in &log {
            world.trace.push(format!(
                "  {} {} {} {}/{}",
                event.seq_num, event.name, event.args, event.client_id, event.session_id
            ));
        }
    }
    world.violations.extend(violations);
}

/// The whole backend log, read through a fault-free client over the same `InMemory`.
async fn read_backend(world: &World) -> Result<Vec<GlobalEvent>, String> {
    let store: std::sync::Arc<dyn ObjectStore> = world.memory.clone();
    let clean = SegmentLog::new(
        store,
        StorePath::from("sim"),
        STORE_ID,
        SegmentLogConfig::default(),
    )
    .map_err(|error| format!("auditor: cannot make a clean client: {error}"))?;
    let mut pages = clean
        .pull(GlobalSeq::ZERO, false)
        .await
        .map_err(|error| format!("auditor: pull from the backend failed: {error}"))?;
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|error| format!("auditor: pull failed after e{}: {error}", events.len()))?;
        events.extend(page.events);
    }
    Ok(events)
}

/// One gapless chain `e1..en`, each the parent of the next (the hash chain is checked by
/// the segment reader: a break is a pull error).
fn check_chain(log: &[GlobalEvent], violations: &mut Vec<String>) {
    for (index, event) in log.iter().enumerate() {
        let expected = index as u64 + 1;
        if event.seq_num.0 != expected || event.parent_seq_num.0 != expected - 1 {
            violations.push(format!(
                "backend log: event {index} is {} with parent {}; expected e{expected} with parent e{}",
                event.seq_num,
                event.parent_seq_num,
                expected - 1
            ));
            return;
        }
        if event.name == UiStateSet::NAME {
            violations.push(format!(
                "backend log: client-only event {} reached the backend",
                event.seq_num
            ));
        }
    }
}

/// Every tracked commit appears as often as its fate says (once, or never if its leader
/// crashed before admitting it); no event is in the log twice; every TodoCreated id once.
fn check_exactly_once(world: &World, log: &[GlobalEvent], violations: &mut Vec<String>) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut identities: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
    let mut created: BTreeMap<String, u64> = BTreeMap::new();
    for event in log {
        *counts
            .entry(event_key(&event.name, &event.args))
            .or_default() += 1;
        let identity = (
            event.client_id.clone(),
            event.session_id.clone(),
            event.name.clone(),
            canonical_args(&event.args).to_string(),
        );
        // TodoCompleted may be committed twice on purpose; every other kind is unique.
        if event.name != TodoCompleted::NAME
            && let Some(first) = identities.insert(identity, event.seq_num.0)
        {
            violations.push(format!(
                "backend log: {} duplicates e{first} ({} {} from {}/{})",
                event.seq_num, event.name, event.args, event.client_id, event.session_id
            ));
        }
        if event.name == TodoCreated::NAME
            && let Some(id) = event.args.get("id").and_then(Value::as_str)
            && let Some(first) = created.insert(id.to_owned(), event.seq_num.0)
        {
            violations.push(format!(
                "backend log: todo {id} created twice, at e{first} and {}",
                event.seq_num
            ));
        }
    }
    for (key, commit) in &world.ledger {
        let found = counts.get(key).copied().unwrap_or(0);
        let expected = usize::from(commit.fate != Fate::LostInCrash);
        if found != expected {
            violations.push(format!(
                "{key} (node {}, incarnation {}, {:?}) is in the backend {found} times, expected {expected}",
                commit.node, commit.incarnation, commit.fate
            ));
        }
    }
}

/// A leader's eventlog, without client-only events, is the backend log.
fn check_eventlog(
    who: &str,
    eventlog: &[EncodedEvent],
    log: &[GlobalEvent],
    violations: &mut Vec<String>,
) {
    let global: Vec<&EncodedEvent> = eventlog.iter().filter(|e| !e.is_client_only()).collect();
    if global.len() != log.len() {
        violations.push(format!(
            "{who}: eventlog has {} global events, the backend {}",
            global.len(),
            log.len()
        ));
    }
    for (local, remote) in global.iter().zip(log) {
        let same = local.seq.same_position(&EventSeq::global(remote.seq_num.0))
            && local.parent.global == remote.parent_seq_num.0
            && local.name == remote.name
            && canonical_args(&local.args) == canonical_args(&remote.args)
            && local.client_id == remote.client_id
            && local.session_id == remote.session_id;
        if !same {
            violations.push(format!(
                "{who}: eventlog differs from the backend at {}: local {} {} {} vs backend {} {} {}",
                remote.seq_num,
                local.seq,
                local.name,
                local.args,
                remote.seq_num,
                remote.name,
                remote.args
            ));
            return;
        }
    }
}

/// The todos of a from-scratch materialization of `log` on a fresh in-memory database.
fn materialize(schema: &Schema, log: &[GlobalEvent], violations: &mut Vec<String>) -> Vec<Value> {
    let conn = match rusqlite::Connection::open_in_memory() {
        Ok(conn) => conn,
        Err(error) => {
            violations.push(format!("auditor: in-memory database: {error}"));
            return Vec::new();
        }
    };
    if let Err(error) = schema.create_tables(&conn) {
        violations.push(format!("auditor: creating tables: {error}"));
        return Vec::new();
    }
    for event in log {
        let event = EncodedEvent::from_global(event.clone());
        if let Err(error) = apply_event(&conn, schema, &event, Record::Nothing) {
            violations.push(format!("auditor: materializing {}: {error}", event.seq));
        }
    }
    let mut statement = match conn.prepare(TODOS_SQL) {
        Ok(statement) => statement,
        Err(error) => {
            violations.push(format!("auditor: {error}"));
            return Vec::new();
        }
    };
    let rows = statement.query_map([], |row| {
        Ok(json!({
            "id": row.get::<_, String>(0)?,
            "text": row.get::<_, String>(1)?,
            "completed": row.get::<_, i64>(2)?,
            "deleted_at": row.get::<_, Option<i64>>(3)?,
            "created_seq": row.get::<_, i64>(4)?,
        }))
    });
    match rows.and_then(|rows| rows.collect::<Result<Vec<_>, _>>()) {
        Ok(rows) => rows,
        Err(error) => {
            violations.push(format!("auditor: reading todos: {error}"));
            Vec::new()
        }
    }
}

/// The filter of the last client-only UiStateSet in an eventlog (by position).
fn last_filter(eventlog: &[EncodedEvent]) -> Option<Value> {
    eventlog
        .iter()
        .rev()
        .find(|event| event.name == UiStateSet::NAME)
        .and_then(|event| event.args.get("filter").cloned())
}

/// The first row that differs, for the message.
fn diff(rows: &[Value], expected: &[Value]) -> String {
    if rows.len() != expected.len() {
        return format!("{} rows, expected {}", rows.len(), expected.len());
    }
    rows.iter()
        .zip(expected)
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("{a} vs expected {b}"))
        .unwrap_or_default()
}
