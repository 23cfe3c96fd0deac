//! The auditor: after quiescence, checks the system's invariants on the backend, every
//! leader and every live session. Returns violations as sentences; none means the seed passed.
//!
//! Against the ledger (every commit a session acknowledged, see `ledger.rs`), session by
//! session and in commit order: the backend holds each synced commit exactly once (none if
//! it was lost in a crash before its leader admitted it) and nothing else; each leader's
//! eventlog holds each client-only commit of its client exactly once and none of another
//! client's; no client-only event is in the backend. Each leader's and session's client-only
//! tables are those its eventlog's client-only events make (see `tally.rs`).

use std::collections::BTreeMap;

use eventsync::Event;
use eventsync::backends::copy::StoreLocation;
use eventsync::backends::verify::{PackAudit, SnapshotAudit, VerifyError, verify_store};
use eventsync::backends::{
    GlobalEvent, GlobalSeq, ReadAllError, SegmentLog, SegmentLogConfig, SyncBackend, SyncBackendExt,
};
use eventsync::canonical_args;
use eventsync::materialize::{Record, apply_event};
use eventsync::schema::Schema;
use eventsync::snapshot::ReplayCheck;
use eventsync::{EncodedEvent, EventSeq};
use eventsync_todo::UiStateSet;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use serde_json::{Value, json};

use super::ledger::{BySession, Ledger, event_key};
use super::tally::{TALLY_SQL, expected_tally};
use super::world::{STORE_ID, World};

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
    check_packs(world, &mut violations).await;
    check_chain(&world.schema, &log, &mut violations);
    check_backend(&world.ledger, &world.schema, &log, &mut violations);
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
        check_eventlog(&who, &eventlog, &log, node.base, &mut violations);
        check_client_only(
            &who,
            &world.ledger,
            &node.client_id,
            &eventlog,
            &mut violations,
        );
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
        let tally = expected_tally(&eventlog);
        match store.query_leader(TALLY_SQL).await {
            Ok(rows) if rows == tally => {}
            Ok(rows) => violations.push(format!(
                "{who}: leader tally {rows:?} is not the fold of its eventlog's TallyBumped {tally:?}"
            )),
            Err(error) => violations.push(format!("{who}: leader tally query: {error}")),
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
            match session.query::<Value>(TALLY_SQL, &[]) {
                Ok(rows) if rows == tally => {}
                Ok(rows) => violations.push(format!(
                    "{who} session {number}: tally {rows:?} is not the fold of the leader's eventlog's TallyBumped {tally:?}"
                )),
                Err(error) => violations.push(format!("{who} session {number}: tally query: {error}")),
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
    clean.read_all_checked().await.map_err(|error| match error {
        ReadAllError::Gap(gap) => format!("backend log: not one gapless chain: {gap}"),
        ReadAllError::Backend(error) => format!("auditor: pull from the backend failed: {error}"),
    })
}

/// `eventsync verify --snapshots`' audit of the whole store: every pack the pack actions
/// wrote (some of them while faults hit) holds exactly the segments it covers, and every
/// snapshot the snapshot actions wrote sits on the chain and holds the state a replay of the
/// log makes at its `S` (client-only tables left out).
async fn check_packs(world: &mut World, violations: &mut Vec<String>) {
    let place = StoreLocation {
        store: world.memory.clone(),
        prefix: StorePath::from("sim"),
        store_id: STORE_ID.to_string(),
    };
    let store: std::sync::Arc<dyn ObjectStore> = world.memory.clone();
    let clean: std::sync::Arc<dyn SyncBackend> = match SegmentLog::new(
        store,
        StorePath::from("sim"),
        STORE_ID,
        SegmentLogConfig::default(),
    ) {
        Ok(log) => std::sync::Arc::new(log),
        Err(error) => {
            violations.push(format!("auditor: cannot make a clean client: {error}"));
            return;
        }
    };
    let replay = match ReplayCheck::new(world.schema.clone(), clean) {
        Ok(replay) => replay,
        Err(error) => {
            violations.push(format!("auditor: cannot make a replay: {error}"));
            return;
        }
    };
    let snapshots = SnapshotAudit {
        content: Some(&replay),
    };
    match verify_store(&place, &[&PackAudit, &snapshots], &|_, _| {}).await {
        Ok(report) => {
            violations.extend(
                report
                    .faults
                    .iter()
                    .map(|fault| format!("verify: {}: {}", fault.key, fault.message)),
            );
            world.stats.snapshots_verified = report
                .families
                .iter()
                .find(|family| family.name == "snapshots")
                .map_or(0, |family| family.checked);
        }
        // A store no client created has nothing to verify; the other checks say the rest.
        Err(VerifyError::NoStore { .. }) => {}
        Err(error) => violations.push(format!("verify: {error}")),
    }
}

/// No client-only event in the backend log. (That the log is one gapless chain `e1..en` is
/// checked as it is read, by `read_all_checked`; the hash chain by the segment reader.)
fn check_chain(schema: &Schema, log: &[GlobalEvent], violations: &mut Vec<String>) {
    for event in log {
        if is_client_only(schema, &event.name) {
            violations.push(format!(
                "backend log: client-only event {} {} {} from {}/{} reached the backend",
                event.seq_num, event.name, event.args, event.client_id, event.session_id
            ));
        }
    }
}

fn is_client_only(schema: &Schema, name: &str) -> bool {
    schema
        .event_def(name)
        .is_some_and(|definition| definition.is_client_only())
}

/// The backend holds, session by session in commit order, exactly the synced commits of the
/// ledger not lost in a crash: each once, nothing pushed twice, nothing nobody committed.
/// (Client-only events there are reported by [`check_chain`].)
pub fn check_backend(
    ledger: &Ledger,
    schema: &Schema,
    log: &[GlobalEvent],
    violations: &mut Vec<String>,
) {
    let expected = ledger.expected(|commit| !commit.client_only);
    let mut found = BySession::new();
    for event in log.iter().filter(|e| !is_client_only(schema, &e.name)) {
        found
            .entry((event.client_id.clone(), event.session_id.clone()))
            .or_default()
            .push(event_key(&event.name, &event.args));
    }
    compare_sessions("the backend", &expected, &found, violations);
}

/// A leader's eventlog holds, session by session in commit order, exactly the client-only
/// commits of its own client not lost in a crash, and no other client's.
pub fn check_client_only(
    who: &str,
    ledger: &Ledger,
    client_id: &str,
    eventlog: &[EncodedEvent],
    violations: &mut Vec<String>,
) {
    let expected = ledger.expected(|commit| commit.client_only && commit.client_id == client_id);
    let mut found = BySession::new();
    for event in eventlog.iter().filter(|e| e.is_client_only()) {
        found
            .entry((event.client_id.clone(), event.session_id.clone()))
            .or_default()
            .push(event_key(&event.name, &event.args));
    }
    compare_sessions(&format!("{who}'s eventlog"), &expected, &found, violations);
}

/// Compares what `place` holds of each session with what it should hold: each event as
/// often as committed (an extra copy is an event pushed twice, a missing one an event lost),
/// and in commit order.
fn compare_sessions(
    place: &str,
    expected: &BySession,
    found: &BySession,
    violations: &mut Vec<String>,
) {
    let none = Vec::new();
    let sessions: std::collections::BTreeSet<_> = expected.keys().chain(found.keys()).collect();
    for session in sessions {
        let (client, session_id) = session;
        let want = expected.get(session).unwrap_or(&none);
        let have = found.get(session).unwrap_or(&none);
        if want == have {
            continue;
        }
        let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for key in want {
            counts.entry(key).or_default().0 += 1;
        }
        for key in have {
            counts.entry(key).or_default().1 += 1;
        }
        let mut miscounted = false;
        for (key, (expected, held)) in counts {
            if held == expected {
                continue;
            }
            miscounted = true;
            let what = if expected == 0 {
                "never committed, or lost in a crash before its leader admitted it"
            } else if held > expected {
                "pushed twice"
            } else {
                "an acknowledged commit is missing"
            };
            violations.push(format!(
                "{place} holds {key} from {client}/{session_id} {held} times, expected {expected} ({what})"
            ));
        }
        if !miscounted {
            violations.push(format!(
                "{place} holds the events of {client}/{session_id} out of commit order: {have:?}, expected {want:?}"
            ));
        }
    }
}

/// A leader's eventlog, without client-only events, is the backend log after `base` (0, or
/// the `S` of the snapshot the leader booted from).
fn check_eventlog(
    who: &str,
    eventlog: &[EncodedEvent],
    log: &[GlobalEvent],
    base: u64,
    violations: &mut Vec<String>,
) {
    let Some(log) = log.get(base as usize..) else {
        violations.push(format!(
            "{who}: booted from a snapshot at e{base}, past the backend's head e{}",
            log.len()
        ));
        return;
    };
    let global: Vec<&EncodedEvent> = eventlog.iter().filter(|e| !e.is_client_only()).collect();
    if global.len() != log.len() {
        violations.push(format!(
            "{who}: eventlog has {} global events, the backend {}",
            global.len(),
            log.len()
        ));
    }
    for (local, remote) in global.iter().zip(log) {
        let same = local.seq.same_position(&EventSeq::from(remote.seq_num))
            && local.parent.global == remote.parent_seq_num
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

#[cfg(test)]
mod tests {
    use eventsync_todo::{TodoCompleted, TodoCreated, TodoFilter, todo_schema};

    use super::super::ledger::{Commit, Fate};
    use super::*;

    /// A session's commit, as the world records it.
    fn commit(session: &str, name: &str, args: &Value, client_only: bool) -> Commit {
        Commit {
            node: 0,
            incarnation: 1,
            client_id: "c0".into(),
            session_id: session.into(),
            key: event_key(name, args),
            client_only,
            fate: Fate::Confirmed,
        }
    }

    fn created(id: &str) -> Value {
        serde_json::to_value(TodoCreated {
            id: id.into(),
            text: format!("todo {id}"),
        })
        .unwrap()
    }

    fn completed(id: &str) -> Value {
        serde_json::to_value(TodoCompleted { id: id.into() }).unwrap()
    }

    fn filter(filter: TodoFilter) -> Value {
        serde_json::to_value(UiStateSet { filter }).unwrap()
    }

    /// The backend log holding these `(session, name, args)` events, numbered from e1.
    fn log(events: &[(&str, &str, &Value)]) -> Vec<GlobalEvent> {
        events
            .iter()
            .enumerate()
            .map(|(index, (session, name, args))| GlobalEvent {
                seq_num: GlobalSeq(index as u64 + 1),
                parent_seq_num: GlobalSeq(index as u64),
                name: (*name).into(),
                args: (*args).clone(),
                client_id: "c0".into(),
                session_id: (*session).into(),
            })
            .collect()
    }

    /// Session `s1` committed t1, then completed t1 twice (the same args), then set a filter;
    /// session `s2` completed t1 once.
    fn ledger() -> Ledger {
        let mut ledger = Ledger::default();
        ledger.record(commit("s1", TodoCreated::NAME, &created("t1"), false));
        ledger.record(commit("s1", TodoCompleted::NAME, &completed("t1"), false));
        ledger.record(commit("s1", TodoCompleted::NAME, &completed("t1"), false));
        ledger.record(commit(
            "s1",
            UiStateSet::NAME,
            &filter(TodoFilter::Active),
            true,
        ));
        ledger.record(commit("s2", TodoCompleted::NAME, &completed("t1"), false));
        ledger
    }

    /// What the auditor says of a backend log, given [`ledger`].
    fn audit_backend(ledger: &Ledger, log: &[GlobalEvent]) -> Vec<String> {
        let schema = todo_schema();
        let mut violations = Vec::new();
        check_chain(&schema, log, &mut violations);
        check_backend(ledger, &schema, log, &mut violations);
        violations
    }

    #[test]
    fn test_auditor_accepts_the_backend_log_the_ledger_expects() {
        let (t1, done) = (created("t1"), completed("t1"));
        let good = log(&[
            ("s1", TodoCreated::NAME, &t1),
            ("s2", TodoCompleted::NAME, &done),
            ("s1", TodoCompleted::NAME, &done),
            ("s1", TodoCompleted::NAME, &done),
        ]);
        assert_eq!(audit_backend(&ledger(), &good), Vec::<String>::new());
    }

    #[test]
    fn test_auditor_reports_an_event_pushed_twice() {
        let (t1, done) = (created("t1"), completed("t1"));
        // s2's one TodoCompleted is in the log twice; every event still has its own number.
        let doubled = log(&[
            ("s1", TodoCreated::NAME, &t1),
            ("s2", TodoCompleted::NAME, &done),
            ("s1", TodoCompleted::NAME, &done),
            ("s2", TodoCompleted::NAME, &done),
            ("s1", TodoCompleted::NAME, &done),
        ]);
        let violations = audit_backend(&ledger(), &doubled);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("c0/s2 2 times, expected 1 (pushed twice)"),
            "{violations:?}"
        );
    }

    #[test]
    fn test_auditor_reports_a_missing_commit_whose_args_repeat() {
        let (t1, done) = (created("t1"), completed("t1"));
        // s1 completed t1 twice; one of them is missing (s2's identical event is there).
        let dropped = log(&[
            ("s1", TodoCreated::NAME, &t1),
            ("s2", TodoCompleted::NAME, &done),
            ("s1", TodoCompleted::NAME, &done),
        ]);
        let violations = audit_backend(&ledger(), &dropped);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("c0/s1 1 times, expected 2"),
            "{violations:?}"
        );
    }

    #[test]
    fn test_auditor_reports_a_client_only_event_in_the_backend() {
        let (t1, done, active) = (created("t1"), completed("t1"), filter(TodoFilter::Active));
        let leaked = log(&[
            ("s1", TodoCreated::NAME, &t1),
            ("s2", TodoCompleted::NAME, &done),
            ("s1", TodoCompleted::NAME, &done),
            ("s1", UiStateSet::NAME, &active),
            ("s1", TodoCompleted::NAME, &done),
        ]);
        let violations = audit_backend(&ledger(), &leaked);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("client-only event e4 v1.UiStateSet"),
            "{violations:?}"
        );
    }

    #[test]
    fn test_auditor_reports_a_commit_lost_in_a_crash_that_reached_the_backend() {
        let mut ledger = Ledger::default();
        let t1 = created("t1");
        let mut lost = commit("s1", TodoCreated::NAME, &t1, false);
        lost.fate = Fate::LostInCrash;
        ledger.record(lost);
        assert_eq!(audit_backend(&ledger, &[]), Vec::<String>::new());
        let violations = audit_backend(&ledger, &log(&[("s1", TodoCreated::NAME, &t1)]));
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("expected 0"), "{violations:?}");
    }

    #[test]
    fn test_auditor_reports_reordered_events_of_a_session() {
        let (t1, done) = (created("t1"), completed("t1"));
        let reordered = log(&[
            ("s1", TodoCompleted::NAME, &done),
            ("s1", TodoCreated::NAME, &t1),
            ("s2", TodoCompleted::NAME, &done),
            ("s1", TodoCompleted::NAME, &done),
        ]);
        let violations = audit_backend(&ledger(), &reordered);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("out of commit order"),
            "{violations:?}"
        );
    }

    /// `c0`'s eventlog with these client-only `(session, args)` events after e1.
    fn eventlog(client_only: &[(&str, &str, &Value)]) -> Vec<EncodedEvent> {
        let mut events = vec![EncodedEvent::from_global(
            log(&[("s1", TodoCreated::NAME, &created("t1"))]).remove(0),
        )];
        for (index, (client, session, args)) in client_only.iter().enumerate() {
            let mut event = events[0].clone();
            event.seq = EventSeq::new(1, index as u32 + 1, 0);
            event.parent = EventSeq::new(1, index as u32, 0);
            event.name = UiStateSet::NAME.into();
            event.args = (*args).clone();
            event.client_id = (*client).into();
            event.session_id = (*session).into();
            events.push(event);
        }
        events
    }

    fn audit_eventlog(eventlog: &[EncodedEvent]) -> Vec<String> {
        let mut violations = Vec::new();
        check_client_only("node 0", &ledger(), "c0", eventlog, &mut violations);
        violations
    }

    #[test]
    fn test_auditor_checks_client_only_events_in_their_clients_eventlog() {
        let active = filter(TodoFilter::Active);
        assert_eq!(
            audit_eventlog(&eventlog(&[("c0", "s1", &active)])),
            Vec::<String>::new()
        );
        let missing = audit_eventlog(&eventlog(&[]));
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(
            missing[0].contains("node 0's eventlog holds v1.UiStateSet"),
            "{missing:?}"
        );
        assert!(missing[0].contains("0 times, expected 1"), "{missing:?}");
        let doubled = audit_eventlog(&eventlog(&[("c0", "s1", &active), ("c0", "s1", &active)]));
        assert_eq!(doubled.len(), 1, "{doubled:?}");
        assert!(doubled[0].contains("2 times, expected 1"), "{doubled:?}");
        let foreign = audit_eventlog(&eventlog(&[("c0", "s1", &active), ("c1", "s9", &active)]));
        assert_eq!(foreign.len(), 1, "{foreign:?}");
        assert!(
            foreign[0].contains("from c1/s9 1 times, expected 0"),
            "{foreign:?}"
        );
    }
}
