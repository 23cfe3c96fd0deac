//! Materialization: applying an event to the read model by running its materializer's
//! statements, optionally inside an SQLite session that records a changeset, and rolling
//! recorded events back by applying the inverted changesets in reverse order.
//!
//! Why two modes ([`Record`]): an event that may still be rolled back (pending, or not yet
//! confirmed by the backend) needs a changeset, but a session per event costs several times
//! SQLite's plain insert rate (see `benches/materialize.rs`). Events pulled from the backend
//! are final, so the leader materializes them without one.
//!
//! Neither function opens a transaction: the caller wraps a batch of events in one (and its
//! bookkeeping rows with them). An event whose materializer returns several statements runs
//! inside a savepoint, so an event that fails leaves no partial writes; a single statement is
//! atomic by itself in SQLite.
//!
//! Contract for materializers: write only the schema's tables. Sessions record only those,
//! so a write elsewhere would survive a rollback. An event defined as synced does not write a
//! client-only table (snapshots leave those out): [`apply_event`] refuses one before any of
//! its statements runs ([`MaterializeError::ClientOnlyTable`]). Finding the tables a statement
//! writes, for that check and with [`Record::Nothing`], briefly installs an SQLite authorizer
//! (the first time each SQL text is seen), which replaces any authorizer the caller had set on
//! the connection.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::fallible_streaming_iterator::FallibleStreamingIterator;
use rusqlite::session::{Changegroup, ChangesetIter, ConflictAction, ConflictType, Session};

use crate::event::{Changeset, EncodedEvent};
pub use crate::schema::MaterializeError;
use crate::schema::{MaterializeContext, Schema, Statement, UnknownEventPolicy};

/// Whether [`apply_event`] records a changeset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Record one: the event may still be rolled back (pending, or unconfirmed upstream).
    Changeset,
    /// Record nothing: the event is confirmed by the backend and will never be rolled back.
    Nothing,
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// With [`Record::Changeset`]: `Data` (the SQLite changeset), or `NoOp` when the event
    /// changed nothing. With [`Record::Nothing`]: `Unset`.
    pub changeset: Changeset,
    /// The user tables the event wrote, for reactive queries.
    ///
    /// With [`Record::Changeset`] these are exactly the tables in the changeset. With
    /// [`Record::Nothing`] they are the user tables that the statements which changed at
    /// least one row write to (as SQLite's authorizer reports them when the statement is
    /// compiled, triggers included). An update that sets a row to its current values counts
    /// as a change here, so this set can be larger than the changeset's, never smaller.
    pub tables: BTreeSet<String>,
}

/// Materializes `event`: decodes its args, runs its materializer and executes the
/// statements (prepared and cached by SQL text), recording a changeset if `record` says so.
///
/// Unknown events follow the schema's [`UnknownEventPolicy`]: with `Warn` (warned once per
/// name) and `Ignore` nothing runs and the result is `NoOp`/`Unset` with no tables.
pub fn apply_event(
    conn: &Connection,
    schema: &Schema,
    event: &EncodedEvent,
    record: Record,
) -> Result<Applied, MaterializeError> {
    apply(conn, schema, event, record, true)
}

/// [`apply_event`] for a caller that does not read [`Applied::tables`] (the leader's
/// `state.db`, a replay): with [`Record::Nothing`] the tables each statement wrote are not
/// looked up, which is most of the per-event work besides SQLite's own. Returns the changeset.
pub(crate) fn apply_event_quietly(
    conn: &Connection,
    schema: &Schema,
    event: &EncodedEvent,
    record: Record,
) -> Result<Changeset, MaterializeError> {
    apply(conn, schema, event, record, false).map(|applied| applied.changeset)
}

/// [`apply_event`], reporting the tables written with [`Record::Nothing`] only when `tables`.
fn apply(
    conn: &Connection,
    schema: &Schema,
    event: &EncodedEvent,
    record: Record,
    tables: bool,
) -> Result<Applied, MaterializeError> {
    let Some(def) = schema.event_def(&event.name) else {
        return unknown_event(schema, event, record);
    };
    let ctx = MaterializeContext::new(conn, event, def);
    let statements = match schema.materialize(&ctx) {
        Some(result) => result?,
        None => return unknown_event(schema, event, record),
    };
    let sql_error = |source| MaterializeError::Sql {
        event: event.name.clone(),
        seq: event.seq,
        source,
    };
    if !def.is_client_only() && schema.has_client_only_tables() {
        refuse_client_only_writes(conn, schema, event, &statements)?;
    }
    match record {
        Record::Changeset => apply_recorded(conn, schema, &statements).map_err(sql_error),
        Record::Nothing => apply_unrecorded(conn, schema, &statements, tables).map_err(sql_error),
    }
}

/// Refuses an event the schema defines as synced whose statements write a client-only
/// table, before any of them runs.
///
/// The check is on what each statement may write (SQLite's authorizer at compile time,
/// triggers included, cached by SQL text), not on the rows it happens to change: the
/// contract is about the materializer, and a write that changes nothing today may change
/// rows on another client's state.
fn refuse_client_only_writes(
    conn: &Connection,
    schema: &Schema,
    event: &EncodedEvent,
    statements: &[Statement],
) -> Result<(), MaterializeError> {
    for statement in statements {
        let targets = schema
            .write_targets(conn, &statement.sql)
            .map_err(|source| MaterializeError::Sql {
                event: event.name.clone(),
                seq: event.seq,
                source,
            })?;
        if let Some(table) = targets
            .iter()
            .find(|table| schema.is_client_only_table(table))
        {
            return Err(MaterializeError::ClientOnlyTable {
                event: event.name.clone(),
                seq: event.seq,
                table: table.clone(),
            });
        }
    }
    Ok(())
}

fn unknown_event(
    schema: &Schema,
    event: &EncodedEvent,
    record: Record,
) -> Result<Applied, MaterializeError> {
    match schema.unknown_event_policy() {
        UnknownEventPolicy::Fail => {
            return Err(MaterializeError::UnknownEvent {
                name: event.name.clone(),
            });
        }
        UnknownEventPolicy::Warn => {
            if schema.first_warning(&event.name) {
                tracing::warn!(
                    event = %event.name,
                    seq = %event.seq,
                    "event not in the schema: kept in the log, not materialized"
                );
            }
        }
        UnknownEventPolicy::Ignore => {}
    }
    let changeset = match record {
        Record::Changeset => Changeset::NoOp,
        Record::Nothing => Changeset::Unset,
    };
    Ok(Applied {
        changeset,
        tables: BTreeSet::new(),
    })
}

/// Runs the statements inside a session on the user tables, and returns its changeset.
fn apply_recorded(
    conn: &Connection,
    schema: &Schema,
    statements: &[Statement],
) -> rusqlite::Result<Applied> {
    let mut session = Session::new(conn)?;
    let user_tables = Arc::clone(schema.user_tables());
    session.table_filter(Some(move |table: &str| user_tables.contains(table)));
    session.attach(None::<&str>)?;
    in_savepoint(conn, statements.len() > 1, || {
        for statement in statements {
            execute(conn, statement)?;
        }
        Ok(())
    })?;
    if session.is_empty() {
        return Ok(Applied {
            changeset: Changeset::NoOp,
            tables: BTreeSet::new(),
        });
    }
    let mut bytes = Vec::new();
    session.changeset_strm(&mut bytes)?;
    drop(session);
    let tables = changeset_tables(&bytes)?;
    // A session is non-empty when a row changed and changed back; its changeset is empty.
    let changeset = if tables.is_empty() {
        Changeset::NoOp
    } else {
        Changeset::Data(bytes)
    };
    Ok(Applied { changeset, tables })
}

/// Runs the statements without a session; reports the tables written by those that changed
/// rows (when `report`).
fn apply_unrecorded(
    conn: &Connection,
    schema: &Schema,
    statements: &[Statement],
    report: bool,
) -> rusqlite::Result<Applied> {
    let mut tables = BTreeSet::new();
    in_savepoint(conn, statements.len() > 1, || {
        for statement in statements {
            if execute(conn, statement)? > 0 && report {
                for table in schema.write_targets(conn, &statement.sql)?.iter() {
                    tables.insert(table.clone());
                }
            }
        }
        Ok(())
    })?;
    Ok(Applied {
        changeset: Changeset::Unset,
        tables,
    })
}

fn execute(conn: &Connection, statement: &Statement) -> rusqlite::Result<usize> {
    let mut prepared = conn.prepare_cached(&statement.sql)?;
    prepared.execute(rusqlite::params_from_iter(statement.params.iter()))
}

/// Runs `body`, inside a savepoint when `needed`, so that a failure undoes all of it.
fn in_savepoint(
    conn: &Connection,
    needed: bool,
    body: impl FnOnce() -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    if !needed {
        return body();
    }
    conn.prepare_cached("SAVEPOINT eventsync_materialize")?
        .execute([])?;
    match body() {
        Ok(()) => {
            conn.prepare_cached("RELEASE eventsync_materialize")?
                .execute([])?;
            Ok(())
        }
        Err(error) => {
            // Undo this event's writes; the caller's transaction stays open.
            conn.execute_batch("ROLLBACK TO eventsync_materialize; RELEASE eventsync_materialize")?;
            Err(error)
        }
    }
}

/// The tables a changeset touches.
fn changeset_tables(bytes: &[u8]) -> rusqlite::Result<BTreeSet<String>> {
    let mut tables = BTreeSet::new();
    let mut input: &[u8] = bytes;
    let reader: &mut dyn Read = &mut input;
    let mut iter = ChangesetIter::start_strm(&reader)?;
    while let Some(item) = iter.next()? {
        let op = item.op()?;
        if !tables.contains(op.table_name()) {
            tables.insert(op.table_name().to_string());
        }
    }
    Ok(tables)
}

/// Rolls back recorded events: `changesets` in event order, inverted and applied in reverse
/// order. Returns the tables touched. `NoOp` entries are skipped; an `Unset` entry (an event
/// materialized without recording) is an error, checked before anything is changed.
///
/// A conflict (a row not in the state the changeset left it in) aborts with
/// [`MaterializeError::Rollback`]: it means the state holds writes that were not rolled
/// back first. Changesets applied before the failure stay applied; the caller's transaction
/// decides.
pub fn rollback(
    conn: &Connection,
    changesets: &[&Changeset],
) -> Result<BTreeSet<String>, MaterializeError> {
    if let Some(index) = changesets
        .iter()
        .position(|changeset| matches!(changeset, Changeset::Unset))
    {
        return Err(MaterializeError::Rollback {
            index,
            message: "the event was materialized without recording a changeset".to_string(),
        });
    }
    let tables = Arc::new(Mutex::new(BTreeSet::new()));
    let recorded: Vec<(usize, &[u8])> = changesets
        .iter()
        .enumerate()
        .filter_map(|(index, changeset)| match changeset {
            Changeset::Data(bytes) => Some((index, bytes.as_slice())),
            _ => None,
        })
        .collect();
    if recorded.len() > 1 {
        // One changeset for all of them, inverted and applied once: SQLite prepares its
        // statements per apply, so one apply per event costs that many times over. Only if
        // it fails are they undone one by one again, to name the event that conflicts.
        if let Ok(combined) = combine(&recorded) {
            conn.execute_batch("SAVEPOINT eventsync_rollback")
                .map_err(|error| MaterializeError::Rollback {
                    index: 0,
                    message: format!("SQLite: {error}"),
                })?;
            match undo_one(conn, &combined, &tables) {
                Ok(()) => {
                    conn.execute_batch("RELEASE eventsync_rollback")
                        .map_err(|error| MaterializeError::Rollback {
                            index: 0,
                            message: format!("SQLite: {error}"),
                        })?;
                    // Changes that cancel out are not in the combined changeset; the tables
                    // touched are still those of every event's own.
                    let mut touched = tables.lock().map(|t| t.clone()).unwrap_or_default();
                    for &(index, bytes) in &recorded {
                        touched.extend(changeset_tables(bytes).map_err(|error| {
                            MaterializeError::Rollback {
                                index,
                                message: format!("SQLite: {error}"),
                            }
                        })?);
                    }
                    return Ok(touched);
                }
                Err(_) => {
                    conn.execute_batch(
                        "ROLLBACK TO eventsync_rollback; RELEASE eventsync_rollback",
                    )
                    .map_err(|error| MaterializeError::Rollback {
                        index: 0,
                        message: format!("SQLite: {error}"),
                    })?;
                }
            }
        }
    }
    for &(index, bytes) in recorded.iter().rev() {
        undo_one(conn, bytes, &tables)
            .map_err(|message| MaterializeError::Rollback { index, message })?;
    }
    let tables = tables.lock().map(|t| t.clone()).unwrap_or_default();
    Ok(tables)
}

/// The changesets of consecutive events as one: what they changed together, in order.
fn combine(recorded: &[(usize, &[u8])]) -> rusqlite::Result<Vec<u8>> {
    let mut group = Changegroup::new()?;
    for &(_, bytes) in recorded {
        let mut input: &[u8] = bytes;
        group.add_stream(&mut input)?;
    }
    let mut combined = Vec::new();
    group.output_strm(&mut combined)?;
    Ok(combined)
}

/// Inverts one changeset and applies it, collecting the table names it touches.
fn undo_one(
    conn: &Connection,
    bytes: &[u8],
    tables: &Arc<Mutex<BTreeSet<String>>>,
) -> Result<(), String> {
    let mut inverse = Vec::with_capacity(bytes.len());
    let mut input: &[u8] = bytes;
    rusqlite::session::invert_strm(&mut input, &mut inverse)
        .map_err(|error| format!("cannot invert: {error}"))?;
    let seen = Arc::clone(tables);
    let filter = move |table: &str| {
        if let Ok(mut seen) = seen.lock() {
            seen.insert(table.to_string());
        }
        true
    };
    let conflict = Arc::new(Mutex::new(None::<String>));
    let conflict_seen = Arc::clone(&conflict);
    let on_conflict = move |kind: ConflictType, _item| {
        if let Ok(mut slot) = conflict_seen.lock() {
            slot.get_or_insert_with(|| format!("{kind:?}"));
        }
        ConflictAction::SQLITE_CHANGESET_ABORT
    };
    let mut input: &[u8] = &inverse;
    let result = conn.apply_strm(&mut input, Some(filter), on_conflict);
    let conflict = conflict.lock().ok().and_then(|mut slot| slot.take());
    match (result, conflict) {
        (_, Some(kind)) => Err(format!(
            "conflict {kind}: the state does not match what the event left"
        )),
        (Err(error), None) => Err(format!("SQLite: {error}")),
        (Ok(()), None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::EventMeta;
    use crate::schema::{EventDef, MaterializerError};
    use crate::seq::EventSeq;

    fn fresh(schema: &Schema) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        schema.create_tables(&conn).unwrap();
        conn
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

    #[test]
    fn test_unknown_event_policies() {
        let unknown = one(1, "v9.Unknown", json!({}));
        for policy in [UnknownEventPolicy::Warn, UnknownEventPolicy::Ignore] {
            let schema = Schema::builder().unknown_events(policy).build().unwrap();
            let conn = fresh(&schema);
            let applied = apply_event(&conn, &schema, &unknown, Record::Changeset).unwrap();
            assert_eq!(applied.changeset, Changeset::NoOp);
            assert!(applied.tables.is_empty());
            let applied = apply_event(&conn, &schema, &unknown, Record::Nothing).unwrap();
            assert_eq!(applied.changeset, Changeset::Unset);
        }
        let schema = Schema::builder()
            .unknown_events(UnknownEventPolicy::Fail)
            .build()
            .unwrap();
        let conn = fresh(&schema);
        let error = apply_event(&conn, &schema, &unknown, Record::Changeset).unwrap_err();
        assert!(matches!(error, MaterializeError::UnknownEvent { name } if name == "v9.Unknown"));
    }

    #[test]
    fn test_materializer_error_and_failed_statement_leave_nothing() {
        let schema = Schema::builder()
            .table("items", "CREATE TABLE items (id TEXT PRIMARY KEY)")
            .define_event(
                EventDef::synced("v1.Pair"),
                |args: Vec<String>, _: &MaterializeContext<'_>| {
                    Ok(args
                        .into_iter()
                        .map(|id| Statement::new("INSERT INTO items VALUES (?1)", vec![id.into()]))
                        .collect())
                },
            )
            .define_event(
                EventDef::synced("v1.Refused"),
                |_: serde_json::Value, _: &MaterializeContext<'_>| {
                    Err(MaterializerError::new("no way"))
                },
            )
            .build()
            .unwrap();
        let conn = fresh(&schema);
        let tx = conn.unchecked_transaction().unwrap();
        for record in [Record::Changeset, Record::Nothing] {
            // The second insert violates the primary key; the first must be undone too.
            let pair = one(1, "v1.Pair", json!(["x", "x"]));
            let error = apply_event(&conn, &schema, &pair, record).unwrap_err();
            assert!(matches!(error, MaterializeError::Sql { ref event, .. } if event == "v1.Pair"));
            let count: i64 = conn
                .query_row("SELECT count(*) FROM items", [], |row| row.get(0))
                .unwrap();
            assert_eq!(count, 0);
        }
        let refused = one(2, "v1.Refused", json!(null));
        let error = apply_event(&conn, &schema, &refused, Record::Changeset).unwrap_err();
        assert!(
            matches!(&error, MaterializeError::Materializer { event, message } if event == "v1.Refused" && message == "no way")
        );
        // The caller's transaction is still usable.
        let pair = one(3, "v1.Pair", json!(["x", "y"]));
        apply_event(&conn, &schema, &pair, Record::Changeset).unwrap();
        tx.commit().unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM items", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 2);
    }
}
