//! Snapshots and the leader's files: starting an empty store from a snapshot's tables
//! ([`LeaderDb::load_snapshot`]), and dumping the state at the backend-confirmed head for a
//! snapshot ([`LeaderDb::dump_confirmed`]).

use eventsync_backends::GlobalSeq;

use super::level::drop_user_tables;
use super::{Commits, DbError, EVENTLOG, LeaderDb, STATE, set_state_head, sql, write_commits};
use crate::event::Changeset;
use crate::materialize;
use crate::schema::Schema;
use crate::seq::EventSeq;

impl LeaderDb {
    /// Makes this (empty) store start at snapshot `at`: the user tables hold `dump` (the
    /// canonical dump of the tables at `at`, made under this schema), the eventlog is empty
    /// and starts after `at`, and the backend-confirmed head is `at`. Two commits in the
    /// order of [`Self::apply_batch`], the eventlog's a rewrite: a crash between them leaves
    /// an eventlog at `at` and a state the next boot finds behind a rewrite, which it
    /// rebuilds, and a rebuild of a store with a base starts it over (see
    /// [`Self::level_state`]).
    pub(crate) fn load_snapshot(
        &mut self,
        schema: &Schema,
        at: GlobalSeq,
        dump: &[u8],
    ) -> Result<(), DbError> {
        self.commit()?;
        let commits = Commits {
            last: self.commits.last + 1,
            rewrite: self.commits.last + 1,
        };
        let state_tx = self.state.unchecked_transaction().map_err(sql(STATE))?;
        state_tx
            .execute("DELETE FROM __eventsync_changeset", [])
            .map_err(sql(STATE))?;
        drop_user_tables(&state_tx)?;
        schema
            .create_tables(&state_tx)
            .map_err(|error| DbError::Format {
                file: STATE.into(),
                message: format!("creating the schema's tables: {error}"),
            })?;
        crate::snapshot::load_tables(&state_tx, dump).map_err(|error| DbError::Format {
            file: STATE.into(),
            message: format!("loading the snapshot at {at}: {error}"),
        })?;
        self.record_schema_hash(&state_tx)?;
        set_state_head(&state_tx, EventSeq::from(at), commits.last)?;
        let log_tx = self.log.unchecked_transaction().map_err(sql(EVENTLOG))?;
        log_tx
            .execute("DELETE FROM eventlog", [])
            .map_err(sql(EVENTLOG))?;
        log_tx
            .execute(
                "UPDATE sync_status SET head = ?1 WHERE id = 1",
                [at.0 as i64],
            )
            .map_err(sql(EVENTLOG))?;
        log_tx
            .execute(
                "INSERT OR REPLACE INTO meta VALUES ('base', ?1)",
                [at.0.to_string()],
            )
            .map_err(sql(EVENTLOG))?;
        write_commits(&log_tx, commits)?;
        log_tx.commit().map_err(sql(EVENTLOG))?;
        self.commits = commits;
        self.staged = commits;
        self.base = at;
        state_tx.commit().map_err(sql(STATE))
    }

    /// The canonical dump of the user tables as of the backend-confirmed head: the state
    /// with the events after it rolled back by their recorded changesets
    /// ([`Self::pending_changesets`]: exactly the events the backend has not confirmed),
    /// inside a savepoint that is then undone, so `state.db` is left as it was.
    pub(crate) fn dump_confirmed(&mut self) -> Result<crate::snapshot::Dump, DbError> {
        self.commit()?;
        let pending: Vec<Changeset> = self
            .pending_changesets()?
            .into_iter()
            .map(|(_, changeset)| changeset)
            .collect();
        self.state
            .execute_batch("SAVEPOINT dump")
            .map_err(sql(STATE))?;
        let dumped = (|| {
            if !pending.is_empty() {
                let changesets: Vec<&Changeset> = pending.iter().collect();
                materialize::rollback(&self.state, &changesets)?;
            }
            crate::snapshot::dump_tables(&self.state).map_err(|error| DbError::Format {
                file: STATE.into(),
                message: format!("dumping the tables: {error}"),
            })
        })();
        self.state
            .execute_batch("ROLLBACK TO dump; RELEASE dump")
            .map_err(sql(STATE))?;
        dumped
    }
}
