//! The simulation's schema (`commit_and_rebase.rs` uses it too): the todo app's, plus a
//! client-only event whose materializer is not idempotent, so that an event applied twice (or
//! undone and not applied again) shows.
//!
//! `sim.TallyBumped { tag }` adds one to the client-only `tally` row's `count` and appends
//! its tag to `trail`. The todo app's only client-only event, `UiStateSet`, is an upsert:
//! applying it twice leaves the same row, so a leader that replayed a client-only event it
//! had not rolled back went unnoticed (issue 11, seed 24). What a client's tables must hold
//! follows from LiveStore's rules: a client-only event is never pushed; it stays in its
//! client's eventlog, rebased along with that client's pending events when they are, so
//! relative order is kept. The row is therefore the fold of the eventlog's `TallyBumped`
//! events in eventlog order, each once (that the eventlog holds exactly the commits the
//! sessions kept, in each session's commit order, is checked against the ledger).

use eventsync::EncodedEvent;
use eventsync::Event;
use eventsync::schema::{MaterializeContext, Schema, Statement};
use eventsync_todo::todo_schema_builder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The client-only `tally` table: one row, a count and the tags in the order applied.
const TALLY_DDL: &str = "CREATE TABLE tally (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL,
    trail TEXT NOT NULL
)";

/// The query the auditor compares, on a leader and on each session.
pub const TALLY_SQL: &str = "SELECT count, trail FROM tally";

/// `sim.TallyBumped` (client-only): counts one and appends `tag` to the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyBumped {
    /// Names the commit (unique within a run).
    pub tag: String,
}
impl Event for TallyBumped {
    const NAME: &'static str = "sim.TallyBumped";
    const CLIENT_ONLY: bool = true;
}

/// The todo schema plus `tally` and [`TallyBumped`].
pub fn sim_schema() -> Schema {
    todo_schema_builder()
        .client_only_table("tally", TALLY_DDL)
        .event(|args: TallyBumped, _: &MaterializeContext<'_>| {
            Ok(vec![Statement::new(
                "INSERT INTO tally (id, count, trail) VALUES (1, 1, ?1) \
                     ON CONFLICT (id) DO UPDATE SET count = count + 1, \
                     trail = trail || ' ' || excluded.trail",
                vec![args.tag.into()],
            )])
        })
        .build()
        .expect("the simulation's schema is valid")
}

/// The rows [`TALLY_SQL`] must return on a replica of `eventlog`: the fold of its
/// `TallyBumped` events in eventlog order (no row when there is none).
pub fn expected_tally(eventlog: &[EncodedEvent]) -> Vec<Value> {
    let tags: Vec<&str> = eventlog
        .iter()
        .filter(|event| event.name == TallyBumped::NAME)
        .map(|event| event.args.get("tag").and_then(Value::as_str).unwrap_or("?"))
        .collect();
    if tags.is_empty() {
        return Vec::new();
    }
    vec![json!({ "count": tags.len(), "trail": tags.join(" ") })]
}

#[cfg(test)]
mod tests {
    use eventsync::materialize::{Record, apply_event};
    use eventsync::{EventMeta, EventSeq};

    use super::*;

    fn bump(client: u32, tag: &str) -> EncodedEvent {
        EncodedEvent {
            seq: EventSeq::new(0, client, 0),
            parent: EventSeq::new(0, client - 1, 0),
            name: TallyBumped::NAME.into(),
            args: serde_json::to_value(TallyBumped { tag: tag.into() }).unwrap(),
            client_id: "c0".into(),
            session_id: "s1".into(),
            meta: EventMeta::default(),
        }
    }

    fn tally(conn: &rusqlite::Connection) -> Vec<Value> {
        let mut statement = conn.prepare(TALLY_SQL).unwrap();
        statement
            .query_map([], |row| {
                Ok(json!({ "count": row.get::<_, i64>(0)?, "trail": row.get::<_, String>(1)? }))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The materializer counts every application (applying an event twice shows), and the
    /// expected row is the fold in eventlog order.
    #[test]
    fn test_tally_counts_each_application_in_order() {
        let schema = sim_schema();
        assert!(
            schema
                .event_def(TallyBumped::NAME)
                .unwrap()
                .is_client_only()
        );
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        schema.create_tables(&conn).unwrap();
        let events = [bump(1, "b1"), bump(2, "b2")];
        assert_eq!(expected_tally(&[]), Vec::<Value>::new());
        for event in &events {
            apply_event(&conn, &schema, event, Record::Nothing).unwrap();
        }
        assert_eq!(tally(&conn), expected_tally(&events));
        assert_eq!(tally(&conn), [json!({ "count": 2, "trail": "b1 b2" })]);
        apply_event(&conn, &schema, &events[1], Record::Nothing).unwrap();
        assert_ne!(
            tally(&conn),
            expected_tally(&events),
            "a double apply shows"
        );
    }
}
