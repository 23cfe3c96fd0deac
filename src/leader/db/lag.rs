//! A lagging state (see [`Tuning::lazy_rebase`](crate::settings::Tuning::lazy_rebase)):
//! steps that write the eventlog alone while the tables stay as they were
//! ([`LeaderDb::apply_log_batch`]), the one step that brings the tables level again
//! ([`LeaderDb::apply_catch_up`]), and the same at boot ([`LeaderDb::level_lagging`]).
//!
//! While it lags, `state.db` holds the events up to the *lag base* (the eventlog's event
//! before the first one pending when the lag began: the confirmed head, or a client-only
//! event after it that is no longer pending), and after it the events that were pending when
//! the lag began, each with its changeset; its `__eventsync_lag` row names the base. Nothing else writes the tables meanwhile, so
//! rolling back every changeset after the base and replaying the eventlog's events after it
//! brings them level, at any time and at boot. The mark is staged with the first
//! eventlog-only step: a crash before the state's commit leaves no mark and a rewrite the
//! state has not seen, which rebuilds the state, as after a crash inside any rebase.

use rusqlite::{Connection, OptionalExtension, params};

use eventsync_backends::GlobalSeq;

use super::{
    DbError, EVENTLOG, LeaderDb, NewEvent, STATE, apply_to_state, read_seq, recorded_runs,
    set_state_head, sql,
};
use crate::event::{Changeset, EncodedEvent};
use crate::materialize;
use crate::schema::Schema;
use crate::seq::EventSeq;

impl LeaderDb {
    /// Stages a step of the eventlog alone (deletes `rollback`, appends `new`, records
    /// `confirmed_head`), and marks the state as lagging from `lag_base` (kept if marked).
    /// The tables and their changesets do not change.
    pub(crate) fn apply_log_batch(
        &mut self,
        rollback: &[EncodedEvent],
        new: &[NewEvent<'_>],
        confirmed_head: Option<GlobalSeq>,
        lag_base: EventSeq,
    ) -> Result<(), DbError> {
        self.step(|db| {
            mark_lag(&db.state, lag_base)?;
            let commits = db.next_commits(!rollback.is_empty());
            db.stage_log(rollback, new, confirmed_head, commits)?;
            Ok(commits)
        })
    }

    /// Stages the step that brings a lagging state level: rolls back `materialized` (the
    /// events after the lag base that the tables hold, ascending), materializes `new` (the
    /// eventlog's events after the base), trims the changesets `confirmed_head` confirms,
    /// moves the state head and clears the mark. The eventlog does not change. Returns the
    /// events applied again, as [`Self::apply_batch`] does.
    pub(crate) fn apply_catch_up(
        &mut self,
        schema: &Schema,
        materialized: &[EncodedEvent],
        new: &mut [NewEvent<'_>],
        state_head: EventSeq,
        confirmed_head: GlobalSeq,
    ) -> Result<Vec<EncodedEvent>, DbError> {
        let mut restored = Vec::new();
        self.step(|db| {
            let rollback = db.rollback_of(materialized, Some(confirmed_head))?;
            db.stage_state(schema, &rollback, new, Some(confirmed_head))?;
            set_state_head(&db.state, state_head, db.staged.last)?;
            clear_lag(&db.state)?;
            restored = rollback
                .restore
                .into_iter()
                .map(|(event, _)| event)
                .collect();
            Ok(db.staged)
        })?;
        Ok(restored)
    }

    /// The eventlog's last event before `position` (by position): when it holds none, its
    /// base (`ROOT`, or the snapshot's `S` it starts after). A lag begins at the one before
    /// the first pending event, which may be a client-only event after the confirmed head.
    pub(crate) fn last_event_before(&self, position: EventSeq) -> Result<EventSeq, DbError> {
        self.log
            .prepare_cached(
                "SELECT seq_global, seq_client, seq_generation FROM eventlog
                 WHERE (seq_global, seq_client) < (?1, ?2)
                 ORDER BY seq_global DESC, seq_client DESC LIMIT 1",
            )
            .and_then(|mut select| {
                select
                    .query_row(
                        params![position.global.0 as i64, position.client],
                        read_seq(0),
                    )
                    .optional()
            })
            .map(|last| last.unwrap_or(EventSeq::from(self.base())))
            .map_err(sql(EVENTLOG))
    }

    /// The lag base, when the state is marked as lagging.
    pub(super) fn lag_base(&self) -> Result<Option<EventSeq>, DbError> {
        self.state
            .query_row(
                "SELECT seq_global, seq_client, seq_generation FROM __eventsync_lag WHERE id = 1",
                [],
                read_seq(0),
            )
            .optional()
            .map_err(sql(STATE))
    }

    /// Boot of a lagging state (same schema): one transaction of `state.db` that rolls back
    /// every run holding an event after `base` (applying again those of its events up to
    /// `base`), replays the eventlog's events after it (recording a run of those the backend
    /// has not confirmed), moves the state head and clears the mark. A failure leaves
    /// `state.db` as it was.
    pub(super) fn level_lagging(&mut self, schema: &Schema, base: EventSeq) -> Result<(), DbError> {
        let (confirmed_head, _) = self.sync_status()?;
        let from = (base.global.0, base.client + 1);
        let restore = self.to_restore(from, Some(confirmed_head))?;
        let tx = self.state.unchecked_transaction().map_err(sql(STATE))?;
        let undo: Vec<Changeset> = recorded_runs(&tx)
            .map_err(sql(STATE))?
            .into_iter()
            .filter(|run| run.last.position() >= from)
            .map(|run| run.changeset)
            .collect();
        let refs: Vec<&Changeset> = undo.iter().collect();
        materialize::rollback(&tx, &refs)?;
        tx.execute("DELETE FROM __eventsync_runs", [])
            .map_err(sql(STATE))?;
        apply_to_state(
            &tx,
            schema,
            restore.iter().map(|(event, record)| (event, *record)),
        )?;
        let head = self.replay_after(&tx, schema, base, confirmed_head)?;
        set_state_head(&tx, head, self.commits.last)?;
        clear_lag(&tx)?;
        tx.commit().map_err(sql(STATE))
    }
}

/// Marks the state as lagging from `base`, unless it is marked already (the base is where
/// the lag began).
fn mark_lag(tx: &Connection, base: EventSeq) -> Result<(), DbError> {
    tx.prepare_cached("INSERT OR IGNORE INTO __eventsync_lag VALUES (1, ?1, ?2, ?3)")
        .and_then(|mut insert| {
            insert.execute(params![base.global.0 as i64, base.client, base.generation])
        })
        .map(drop)
        .map_err(sql(STATE))
}

/// Clears the lag mark: the tables are level with the eventlog.
pub(super) fn clear_lag(tx: &Connection) -> Result<(), DbError> {
    tx.prepare_cached("DELETE FROM __eventsync_lag")
        .and_then(|mut delete| delete.execute([]))
        .map(drop)
        .map_err(sql(STATE))
}
