//! Snapshots and the leader's files: starting an empty store from a snapshot's tables
//! ([`LeaderDb::load_snapshot`]), and dumping the state at the backend-confirmed head for a
//! snapshot ([`LeaderDb::dump_confirmed`]).

use eventsync_backends::GlobalSeq;

use super::{DbError, LeaderDb, STATE, sql};
use crate::event::Changeset;
use crate::materialize;
use crate::schema::Schema;

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
        self.start_afresh(schema, at, None, |state_tx| {
            crate::snapshot::load_tables(state_tx, schema, dump).map_err(|error| DbError::Format {
                file: STATE.into(),
                message: format!("loading the snapshot at {at}: {error}"),
            })
        })
    }

    /// The canonical dump of the user tables as of the backend-confirmed head: the state
    /// with the events after it rolled back by their recorded changesets
    /// ([`Self::pending_changesets`]: exactly the events the backend has not confirmed),
    /// inside a savepoint that is then undone, so `state.db` is left as it was.
    pub(crate) fn dump_confirmed(
        &mut self,
        schema: &Schema,
    ) -> Result<crate::snapshot::Dump, DbError> {
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
            crate::snapshot::dump_tables(&self.state, schema).map_err(|error| DbError::Format {
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
