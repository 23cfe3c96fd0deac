//! A session's undo span: the events it applied that may still be rolled back, held inside
//! one open SQLite savepoint of its in-memory read model instead of a changeset each.
//!
//! Why: a changeset needs an SQLite session of its own per event, and the session extension
//! compiles the same table-info and select statements again for each one. That was three
//! quarters of a session commit (BENCHMARKS.md, "Where a session commit's time goes"). A
//! session's read model is in memory and nobody else reads it, so nothing needs its changes
//! committed: the events that may still be rolled back stay in a savepoint, and a rollback is
//! `ROLLBACK TO` it.
//!
//! The savepoint opens before the first event that may be rolled back (a commit, or a leader
//! event the backend has not confirmed) and is released (committed) once the backend has
//! confirmed every event in it. A rollback always takes a tail of the applied events (a
//! rebase undoes what the backend has not confirmed, which is a tail), but the span may start
//! before that tail: events the backend confirmed after the savepoint opened. Those are
//! applied again after the `ROLLBACK TO`, from the compact copies kept here. When such
//! confirmed events pile up behind a long unconfirmed tail, [`Span::settle`] cuts the span:
//! it commits them and opens the savepoint again after them, replaying the tail once. The
//! extra work is bounded: a cut needs four confirmed events per unconfirmed one.
//!
//! Events applied before the session started (the copy of the leader's `state.db`) are not in
//! the span: they roll back by the changesets the leader recorded (the session's journal).

use std::collections::BTreeSet;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::materialize::{self, Record};
use crate::schema::Schema;
use crate::sync_state::PendingEvent;

/// The savepoint that holds the span.
const SAVEPOINT: &str = "SAVEPOINT eventsync_span";
const RELEASE: &str = "RELEASE eventsync_span";
const ROLLBACK: &str = "ROLLBACK TO eventsync_span";

/// The fewest confirmed events a cut commits (see [`Span::settle`]).
const CUT_MIN: usize = 1024;
/// A cut replays the unconfirmed tail: it waits for this many confirmed events per tail event.
const CUT_RATIO: usize = 4;

/// The events applied since the savepoint opened, in the order applied (ascending position).
#[derive(Default)]
pub(super) struct Span {
    /// Whether the savepoint is open.
    open: bool,
    /// Compact copies of the events applied inside it, to apply again those a rollback or a
    /// cut must keep.
    events: Vec<PendingEvent>,
    /// The user tables those events wrote (a superset once some were dropped), for the
    /// subscriptions a rollback refreshes.
    tables: BTreeSet<String>,
}

impl Span {
    /// Whether the span holds no event.
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many events the span holds.
    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    /// The position of the span's first event.
    pub(super) fn start(&self) -> Option<(u64, u32)> {
        self.events.first().map(|event| event.seq.position())
    }

    /// Opens the savepoint, unless it is open: call before applying an event that may be
    /// rolled back, and before any savepoint of the event's own (which must nest inside).
    pub(super) fn begin(&mut self, connection: &Connection) -> Result<()> {
        if !self.open {
            run_cached(connection, SAVEPOINT)?;
            self.open = true;
        }
        Ok(())
    }

    /// Records `event`, applied inside the savepoint, and the tables it wrote.
    ///
    /// Positions strictly increase: every payload's new events come after what the read
    /// model keeps. (A leader's catch-up after a lazy rebase once replayed a client-only
    /// event it had not rolled back, applying it twice: issue 11, `leader/lag.rs`.)
    pub(super) fn push(&mut self, event: PendingEvent, tables: &BTreeSet<String>) {
        debug_assert!(self.open, "span: an event pushed with no savepoint open");
        debug_assert!(
            self.events
                .last()
                .is_none_or(|last| last.seq.position() < event.seq.position()),
            "span: events out of order, or one applied twice"
        );
        self.events.push(event);
        self.tables.extend(tables.iter().cloned());
    }

    /// Forgets the events from index `len` on, which a failed batch undid itself (by its own
    /// savepoint, already ended), and releases a savepoint left empty.
    pub(super) fn truncate(&mut self, connection: &Connection, len: usize) -> Result<()> {
        self.events.truncate(len);
        self.release_if_empty(connection)
    }

    /// Releases the savepoint if it holds no event (an event that failed to apply was the
    /// only reason to open it).
    pub(super) fn release_if_empty(&mut self, connection: &Connection) -> Result<()> {
        if self.open && self.events.is_empty() {
            self.close(connection)?;
        }
        Ok(())
    }

    /// Rolls back every event of the span at or after `from`, applying again those before it.
    /// Returns how many it rolled back and the tables the rollback may have changed. With
    /// nothing left in the span, the savepoint is released: events before the span can then
    /// be rolled back by their changesets without a `ROLLBACK TO` undoing that later.
    pub(super) fn roll_back(
        &mut self,
        connection: &Connection,
        schema: &Schema,
        from: (u64, u32),
    ) -> Result<(usize, BTreeSet<String>)> {
        if !self.open {
            return Ok((0, BTreeSet::new()));
        }
        let keep = self
            .events
            .partition_point(|event| event.seq.position() < from);
        let undone = self.events.len() - keep;
        if undone == 0 {
            return Ok((0, BTreeSet::new()));
        }
        run_cached(connection, ROLLBACK)?;
        self.events.truncate(keep);
        reapply(connection, schema, &self.events)?;
        let tables = if keep == 0 {
            self.close(connection)?;
            std::mem::take(&mut self.tables)
        } else {
            self.tables.clone()
        };
        Ok((undone, tables))
    }

    /// Takes in that the backend confirmed every event up to `confirmed` (synced events up to
    /// it; a client-only event on its global, e5.1 after e5, still waits): with every event of
    /// the span confirmed, the savepoint is released. When at least [`CUT_MIN`] confirmed
    /// events wait behind a tail [`CUT_RATIO`] times shorter, the span is cut there.
    pub(super) fn settle(
        &mut self,
        connection: &Connection,
        schema: &Schema,
        confirmed: u64,
    ) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        let settled = self
            .events
            .partition_point(|event| event.seq.position() <= (confirmed, 0));
        if settled == self.events.len() {
            return self.close(connection);
        }
        let tail = self.events.len() - settled;
        if settled < CUT_MIN || settled < CUT_RATIO * tail {
            return Ok(());
        }
        // State after ROLLBACK TO: the span's start. Apply the confirmed events, commit them,
        // open the savepoint again and apply the tail inside it.
        run_cached(connection, ROLLBACK)?;
        let tail_events = self.events.split_off(settled);
        reapply(connection, schema, &self.events)?;
        run_cached(connection, RELEASE)?;
        run_cached(connection, SAVEPOINT)?;
        reapply(connection, schema, &tail_events)?;
        self.events = tail_events;
        Ok(())
    }

    /// Releases the savepoint: what the span holds is committed, and the span is empty.
    fn close(&mut self, connection: &Connection) -> Result<()> {
        self.events.clear();
        self.tables.clear();
        self.open = false;
        run_cached(connection, RELEASE)
    }
}

/// Applies `events` again, without changesets: each applied before, so each applies again
/// (materializers are deterministic); an error here means the read model can no longer follow.
fn reapply(connection: &Connection, schema: &Schema, events: &[PendingEvent]) -> Result<()> {
    for pending in events {
        let event = pending.to_event();
        // Quietly: the span keeps the tables its events wrote, so none are looked up here.
        materialize::apply_event_quietly(connection, schema, &event, Record::Nothing).map_err(
            |error| {
                Error::internal(format!(
                    "session: applying {} again after a rollback: {error}",
                    event.seq
                ))
            },
        )?;
    }
    Ok(())
}

/// Runs a constant statement without parameters through the connection's statement cache,
/// so that the savepoint statements are parsed once per session, not once per commit.
pub(super) fn run_cached(connection: &Connection, sql: &str) -> Result<()> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
        .map_err(super::sqlite_error)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::{EncodedEvent, EventMeta};
    use crate::schema::{EventDef, MaterializeContext, Statement};
    use crate::seq::EventSeq;

    fn schema() -> Schema {
        Schema::builder()
            .table("items", "CREATE TABLE items (n INTEGER PRIMARY KEY)")
            .define_event(
                EventDef::synced("v1.Add"),
                |n: i64, _: &MaterializeContext<'_>| {
                    Ok(vec![Statement::new(
                        "INSERT INTO items VALUES (?1)",
                        vec![n.into()],
                    )])
                },
            )
            .build()
            .unwrap()
    }

    fn add(n: u64) -> EncodedEvent {
        EncodedEvent {
            seq: EventSeq::global(n),
            parent: EventSeq::global(n - 1),
            name: "v1.Add".into(),
            args: json!(n),
            client_id: "c1".into(),
            session_id: "s1".into(),
            meta: EventMeta::default(),
        }
    }

    /// Applies e`from`..=e`to` inside the span, as a session does.
    fn apply(span: &mut Span, connection: &Connection, schema: &Schema, from: u64, to: u64) {
        span.begin(connection).unwrap();
        for n in from..=to {
            let event = add(n);
            let applied =
                materialize::apply_event(connection, schema, &event, Record::Nothing).unwrap();
            span.push(PendingEvent::from_event(&event, None), &applied.tables);
        }
    }

    fn items(connection: &Connection) -> Vec<u64> {
        let mut statement = connection
            .prepare("SELECT n FROM items ORDER BY n")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn fresh(schema: &Schema) -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        schema.create_tables(&connection).unwrap();
        connection
    }

    #[test]
    fn test_roll_back_undoes_the_tail_and_keeps_what_came_before() {
        let schema = schema();
        let connection = fresh(&schema);
        let mut span = Span::default();
        apply(&mut span, &connection, &schema, 1, 5);
        let (undone, tables) = span.roll_back(&connection, &schema, (3, 0)).unwrap();
        assert_eq!(undone, 3);
        assert_eq!(tables, BTreeSet::from(["items".to_string()]));
        assert_eq!(items(&connection), vec![1, 2]);
        assert_eq!(span.start(), Some((1, 0)));
        // Rolled back again from its start, the span is empty and its savepoint released.
        apply(&mut span, &connection, &schema, 3, 4);
        let (undone, _) = span.roll_back(&connection, &schema, (1, 0)).unwrap();
        assert_eq!(undone, 4);
        assert!(items(&connection).is_empty());
        assert!(span.is_empty() && !span.open);
        assert!(connection.is_autocommit(), "no transaction left open");
        // Nothing of the span at or after `from`: nothing happens.
        apply(&mut span, &connection, &schema, 1, 2);
        assert_eq!(span.roll_back(&connection, &schema, (3, 0)).unwrap().0, 0);
        assert_eq!(items(&connection), vec![1, 2]);
    }

    #[test]
    fn test_settle_commits_a_span_the_backend_confirmed_whole() {
        let schema = schema();
        let connection = fresh(&schema);
        let mut span = Span::default();
        apply(&mut span, &connection, &schema, 1, 3);
        span.settle(&connection, &schema, 2).unwrap();
        assert_eq!(span.len(), 3, "e3 is not confirmed: the span stays whole");
        span.settle(&connection, &schema, 3).unwrap();
        assert!(span.is_empty() && !span.open);
        assert!(connection.is_autocommit());
        assert_eq!(items(&connection), vec![1, 2, 3]);
    }

    #[test]
    fn test_settle_cuts_a_long_confirmed_head_and_rollbacks_still_undo_the_tail() {
        let schema = schema();
        let connection = fresh(&schema);
        let mut span = Span::default();
        let (confirmed, last) = (CUT_MIN as u64 + 76, CUT_MIN as u64 + 100);
        apply(&mut span, &connection, &schema, 1, last);
        // Too few confirmed events for their tail: no cut.
        span.settle(&connection, &schema, CUT_MIN as u64 - 1)
            .unwrap();
        assert_eq!(span.start(), Some((1, 0)));
        span.settle(&connection, &schema, confirmed).unwrap();
        assert_eq!(
            span.start(),
            Some((confirmed + 1, 0)),
            "cut after the confirmed head"
        );
        assert_eq!(span.len() as u64, last - confirmed);
        let all: Vec<u64> = (1..=last).collect();
        assert_eq!(items(&connection), all, "the cut changed nothing visible");
        let (undone, _) = span
            .roll_back(&connection, &schema, (confirmed + 10, 0))
            .unwrap();
        assert_eq!(undone as u64, last - confirmed - 9);
        assert_eq!(items(&connection), all[..(confirmed + 9) as usize].to_vec());
        // Rolled back to its new start, the span leaves the committed head alone.
        span.roll_back(&connection, &schema, (confirmed + 1, 0))
            .unwrap();
        assert!(span.is_empty() && connection.is_autocommit());
        assert_eq!(items(&connection), all[..confirmed as usize].to_vec());
    }

    #[test]
    fn test_an_empty_span_releases_its_savepoint() {
        let schema = schema();
        let connection = fresh(&schema);
        let mut span = Span::default();
        span.begin(&connection).unwrap();
        assert!(!connection.is_autocommit());
        span.release_if_empty(&connection).unwrap();
        assert!(!span.open && connection.is_autocommit());
        apply(&mut span, &connection, &schema, 1, 2);
        span.truncate(&connection, 1).unwrap();
        assert!(span.open, "one event left");
        span.truncate(&connection, 0).unwrap();
        assert!(!span.open && connection.is_autocommit());
    }
}
