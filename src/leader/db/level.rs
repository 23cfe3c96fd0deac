//! Bringing `state.db` level with `eventlog.db`: at boot ([`LeaderDb::level_state`], by
//! replaying what the state lacks, or rebuilding it when it cannot be a prefix of the
//! eventlog), and when the backend was wiped and recreated ([`LeaderDb::reset`]).

use eventsync_backends::GlobalSeq;
use rusqlite::{Connection, OptionalExtension, params};

use super::lag::clear_lag;
use super::{
    Commits, DbError, EVENTLOG, LeaderDb, STATE, apply_to_state, read_meta, set_state_head, sql,
    trim_changesets, write_commits,
};
use crate::event::EncodedEvent;
use crate::materialize::Record;
use crate::schema::Schema;
use crate::seq::EventSeq;

impl LeaderDb {
    /// Brings the state tables level with the eventlog (see the module doc for the crash
    /// windows this covers): rebuilds them from scratch when the schema changed or the state
    /// cannot be a prefix of the eventlog, else replays what is missing.
    ///
    /// One transaction of `state.db`: dropping the old tables, creating the schema's,
    /// recording its hash, replaying the events and moving the state head commit together or
    /// not at all. A crash (or a failing materializer) part-way leaves `state.db` as it was,
    /// so the next boot decides again from the same facts; committing the new hash before
    /// the replay would let it trust the old head over empty tables.
    pub(crate) fn level_state(&mut self, schema: &Schema) -> Result<(), DbError> {
        let recorded_hash = read_meta(&self.state, "__eventsync_meta", "schema_hash", STATE)?;
        if let Some(base) = self.lag_base()?
            && recorded_hash.as_deref() == Some(self.schema_hash.as_str())
            && self.holds_event(base)?
        {
            // The tables lag (see `lag.rs`): roll back to the base and replay from there.
            return self.level_lagging(schema, base);
        }
        let (rebuild, state_head) = self.needs_rebuild()?;
        if rebuild && self.base > GlobalSeq::ZERO {
            // The events up to the base are in no local file: the state cannot be rebuilt
            // here. Start the store over (it pulls the log again, or boots from a snapshot
            // of this schema), unless that would lose events not yet pushed.
            self.start_over()?;
        }
        let tx = self.state.unchecked_transaction().map_err(sql(STATE))?;
        let (confirmed_head, _) = self.sync_status()?;
        let replay_from = if rebuild {
            drop_user_tables(&tx)?;
            tx.execute("DELETE FROM __eventsync_runs", [])
                .map_err(sql(STATE))?;
            clear_lag(&tx)?;
            schema.create_tables(&tx).map_err(|error| DbError::Format {
                file: STATE.into(),
                message: format!("creating the schema's tables: {error}"),
            })?;
            self.record_schema_hash(&tx)?;
            EventSeq::ROOT
        } else {
            // Events confirmed while the state lagged keep no changeset.
            trim_changesets(&tx, confirmed_head)?;
            state_head
        };
        // Read inside the transaction: after a rebuild, no event has a changeset any more.
        let head = self.replay_after(&tx, schema, replay_from, confirmed_head)?;
        set_state_head(&tx, head, self.commits.last)?;
        tx.commit().map_err(sql(STATE))
    }

    /// Materializes into `tx` every eventlog event after `from`, and returns the last one's
    /// number (`from` when there is none). Events after the backend-confirmed head
    /// (client-only ones on its global too) may still be rolled back, so they keep a
    /// changeset: one run for all of them.
    pub(super) fn replay_after(
        &self,
        tx: &Connection,
        schema: &Schema,
        from: EventSeq,
        confirmed_head: GlobalSeq,
    ) -> Result<EventSeq, DbError> {
        let missing = self.events_after(from)?;
        let record = |event: &EncodedEvent| {
            if event.seq.position() <= (confirmed_head.0, 0) {
                Record::Nothing
            } else {
                Record::Changeset
            }
        };
        apply_to_state(
            tx,
            schema,
            missing.iter().map(|event| (event, record(event))),
        )?;
        Ok(missing.last().map_or(from, |event| event.seq))
    }

    /// Empties the eventlog of a store booted from a snapshot whose state must be rebuilt (the
    /// schema changed, or a crash inside the snapshot's load), so that it starts over from
    /// the backend. Refuses, naming the count, when it holds events the backend has not
    /// confirmed: they would be lost.
    fn start_over(&mut self) -> Result<(), DbError> {
        let (confirmed, _) = self.sync_status()?;
        let pending: i64 = self
            .log
            .query_row(
                "SELECT COUNT(*) FROM eventlog WHERE seq_global > ?1 OR seq_client > 0",
                [confirmed.0 as i64],
                |row| row.get(0),
            )
            .map_err(sql(EVENTLOG))?;
        if pending > 0 {
            return Err(DbError::Format {
                file: EVENTLOG.into(),
                message: format!(
                    "this store started from a snapshot at {} and its state must be rebuilt \
                     (the schema changed), but {pending} of its events are not pushed yet: \
                     open it with the schema it had and sync first",
                    self.base
                ),
            });
        }
        let commits = Commits {
            last: self.commits.last + 1,
            rewrite: self.commits.last + 1,
        };
        let log_tx = self.log.unchecked_transaction().map_err(sql(EVENTLOG))?;
        empty_eventlog(&log_tx, GlobalSeq::ZERO)?;
        write_commits(&log_tx, commits)?;
        log_tx.commit().map_err(sql(EVENTLOG))?;
        self.commits = commits;
        self.staged = commits;
        self.base = GlobalSeq::ZERO;
        Ok(())
    }

    /// Whether boot must rebuild the state from the eventlog (see the module doc), and the
    /// state head.
    fn needs_rebuild(&self) -> Result<(bool, EventSeq), DbError> {
        let recorded_hash = read_meta(&self.state, "__eventsync_meta", "schema_hash", STATE)?;
        let state_head = self.state_head()?;
        let level_with: u64 = self
            .state
            .query_row(
                "SELECT eventlog_commit FROM __eventsync_level WHERE id = 1",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map_err(sql(STATE))? as u64;
        let head_in_eventlog = self.holds_event(state_head)?;
        let rebuild = recorded_hash.as_deref() != Some(self.schema_hash.as_str())
            || level_with > self.commits.last
            || level_with < self.commits.rewrite
            || !head_in_eventlog;
        Ok((rebuild, state_head))
    }

    /// Whether the eventlog holds `seq` (same position and generation), or starts after it.
    fn holds_event(&self, seq: EventSeq) -> Result<bool, DbError> {
        if seq == EventSeq::ROOT
            || (self.base > GlobalSeq::ZERO && seq == EventSeq::from(self.base))
        {
            return Ok(true);
        }
        let generation = self
            .log
            .query_row(
                "SELECT seq_generation FROM eventlog WHERE seq_global = ?1 AND seq_client = ?2",
                params![seq.global.0 as i64, seq.client],
                |row| row.get::<_, u32>(0),
            )
            .optional()
            .map_err(sql(EVENTLOG))?;
        Ok(generation == Some(seq.generation))
    }

    /// Records that the user tables are those of this leader's schema.
    pub(super) fn record_schema_hash(&self, tx: &Connection) -> Result<(), DbError> {
        tx.execute(
            "INSERT OR REPLACE INTO __eventsync_meta VALUES ('schema_hash', ?1)",
            [&self.schema_hash],
        )
        .map(drop)
        .map_err(sql(STATE))
    }

    /// Deletes every event, changeset and user table (the backend was wiped and recreated),
    /// records the new backend id, and recreates empty tables (recording the schema's hash,
    /// so that the tables and the hash agree). See [`Self::start_afresh`] for the crash
    /// window.
    pub(crate) fn reset(&mut self, schema: &Schema, backend_id: &str) -> Result<(), DbError> {
        self.start_afresh(schema, GlobalSeq::ZERO, Some(backend_id), |_| Ok(()))
    }

    /// Starts the store over at `base` (`e0`, or a snapshot's `S`): no event, no changeset,
    /// the schema's tables made anew and filled by `fill` (nothing, or a snapshot's rows),
    /// the schema hash recorded, the state head and the backend-confirmed head at `base`,
    /// and, when given, a new backend id. Two commits in the order of
    /// [`Self::apply_batch`]; the eventlog's counts as a rewrite, so a crash between them
    /// makes the next boot rebuild the state (or, for a store with a base, start it over:
    /// see [`Self::level_state`]).
    pub(super) fn start_afresh(
        &mut self,
        schema: &Schema,
        base: GlobalSeq,
        backend_id: Option<&str>,
        fill: impl FnOnce(&Connection) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        self.commit()?;
        let commits = Commits {
            last: self.commits.last + 1,
            rewrite: self.commits.last + 1,
        };
        let state_tx = self.state.unchecked_transaction().map_err(sql(STATE))?;
        state_tx
            .execute("DELETE FROM __eventsync_runs", [])
            .map_err(sql(STATE))?;
        clear_lag(&state_tx)?;
        drop_user_tables(&state_tx)?;
        schema
            .create_tables(&state_tx)
            .map_err(|error| DbError::Format {
                file: STATE.into(),
                message: format!("creating the schema's tables: {error}"),
            })?;
        fill(&state_tx)?;
        self.record_schema_hash(&state_tx)?;
        set_state_head(&state_tx, EventSeq::from(base), commits.last)?;
        let log_tx = self.log.unchecked_transaction().map_err(sql(EVENTLOG))?;
        empty_eventlog(&log_tx, base)?;
        if let Some(backend_id) = backend_id {
            log_tx
                .execute(
                    "UPDATE sync_status SET backend_id = ?1 WHERE id = 1",
                    [backend_id],
                )
                .map_err(sql(EVENTLOG))?;
        }
        write_commits(&log_tx, commits)?;
        log_tx.commit().map_err(sql(EVENTLOG))?;
        self.commits = commits;
        self.staged = commits;
        self.base = base;
        state_tx.commit().map_err(sql(STATE))
    }
}

/// Empties the eventlog and makes it start after `base`: the backend-confirmed head is
/// `base`, and `meta` records it (or nothing, for `e0`).
fn empty_eventlog(log_tx: &Connection, base: GlobalSeq) -> Result<(), DbError> {
    log_tx
        .execute("DELETE FROM eventlog", [])
        .map_err(sql(EVENTLOG))?;
    log_tx
        .execute(
            "UPDATE sync_status SET head = ?1 WHERE id = 1",
            [base.0 as i64],
        )
        .map_err(sql(EVENTLOG))?;
    if base == GlobalSeq::ZERO {
        log_tx.execute("DELETE FROM meta WHERE key = 'base'", [])
    } else {
        log_tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('base', ?1)",
            [base.0.to_string()],
        )
    }
    .map(drop)
    .map_err(sql(EVENTLOG))
}

fn drop_user_tables(tx: &Connection) -> Result<(), DbError> {
    let names: Vec<String> = tx
        .prepare(
            "SELECT name FROM main.sqlite_schema WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__eventsync_%'",
        )
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .map_err(sql(STATE))?;
    for name in names {
        tx.execute_batch(&format!(
            "DROP TABLE main.\"{}\"",
            name.replace('"', "\"\"")
        ))
        .map_err(sql(STATE))?;
    }
    Ok(())
}
