//! Snapshots and the leader's files: starting an empty store from a snapshot's tables
//! ([`LeaderDb::load_snapshot_image`] for an image, [`LeaderDb::load_snapshot`] for a
//! version-1 dump), and dumping the state at the backend-confirmed head for a
//! snapshot ([`LeaderDb::dump_confirmed`]).

use eventsync_backends::GlobalSeq;
use rusqlite::Connection;

use super::{DbError, LeaderDb, STATE, apply_to_state, sql};
use crate::event::Changeset;
use crate::materialize::{self, Record};
use crate::schema::Schema;

impl LeaderDb {
    /// Makes this (empty) store start at snapshot `at`: the user tables hold `dump` (the
    /// canonical dump of the tables at `at`, made under this schema), the eventlog is empty
    /// and starts after `at`, and the backend-confirmed head is `at`. Two commits in the
    /// order of [`Self::apply_batch`], the eventlog's a rewrite: a crash between them leaves
    /// an eventlog at `at` and a state the next boot finds behind a rewrite, which it
    /// rebuilds, and a rebuild of a store with a base starts it over (see
    /// [`Self::level_state`]).
    ///
    /// The rows are written in `state.db`'s rollback-journal mode with a larger page cache
    /// ([`BulkMode`]): pages appended to a file need no journal, so each is written once,
    /// where the WAL would write it twice (to the WAL, then to the file at the checkpoint
    /// that follows the commit). The transaction is as atomic and durable either way; the
    /// file goes back to WAL mode after it.
    pub(crate) fn load_snapshot(
        &mut self,
        schema: &Schema,
        at: GlobalSeq,
        dump: &[u8],
    ) -> Result<(), DbError> {
        self.commit()?;
        let bulk = BulkMode::enter(&self.state);
        let loaded = self.start_afresh(schema, at, None, |state_tx| {
            crate::snapshot::load_tables(state_tx, schema, dump).map_err(|error| DbError::Format {
                file: STATE.into(),
                message: format!("loading the snapshot at {at}: {error}"),
            })
        });
        let left = bulk.leave(&self.state);
        loaded.and(left)
    }

    /// Makes this (empty) store start at snapshot `at` from `image`, a version-2 body (an
    /// SQLite image of the snapshot tables under this schema): the image is attached and
    /// checked ([`crate::snapshot::image::attach`]: its schema must be exactly the snapshot
    /// tables', in SQLite's defensive settings), then its tables are copied into the user
    /// tables inside [`Self::start_afresh`] (records as they are, no row insert) and it is
    /// detached. The same commits, crash behaviour and [`BulkMode`] as
    /// [`Self::load_snapshot`]; an image that fails a check changes nothing.
    pub(crate) fn load_snapshot_image(
        &mut self,
        schema: &Schema,
        at: GlobalSeq,
        image: &[u8],
    ) -> Result<(), DbError> {
        use crate::snapshot::image;
        let refused = |error: crate::snapshot::DumpError| DbError::Format {
            file: STATE.into(),
            message: format!("loading the snapshot at {at}: {error}"),
        };
        self.commit()?;
        let bulk = BulkMode::enter(&self.state);
        let loaded = match image::attach(&mut self.state, schema, image) {
            Ok(saved) => {
                let copied = self.start_afresh(schema, at, None, |state_tx| {
                    image::copy_tables(state_tx, schema).map_err(refused)
                });
                let detached = image::detach(&self.state, saved).map_err(refused);
                copied.and(detached)
            }
            Err(error) => Err(refused(error)),
        };
        let left = bulk.leave(&self.state);
        loaded.and(left)
    }

    /// The canonical dump of the user tables as of the backend-confirmed head: the state
    /// with the events after it rolled back by their recorded runs (the confirmed events of
    /// a run confirmed in part applied again from the eventlog), inside a savepoint that is
    /// then undone, so `state.db` is left as it was.
    pub(crate) fn dump_confirmed(
        &mut self,
        schema: &Schema,
    ) -> Result<crate::snapshot::Dump, DbError> {
        self.commit()?;
        let (confirmed, _) = self.sync_status()?;
        // The first position after the confirmed head.
        let from = (confirmed.0, 1);
        let restore = self.to_restore(from, Some(confirmed))?;
        let pending: Vec<Changeset> = self
            .pending_runs()?
            .into_iter()
            .filter(|run| run.last.position() >= from)
            .map(|run| run.changeset)
            .collect();
        self.state
            .execute_batch("SAVEPOINT dump")
            .map_err(sql(STATE))?;
        let dumped = (|| {
            if !pending.is_empty() {
                let changesets: Vec<&Changeset> = pending.iter().collect();
                materialize::rollback(&self.state, &changesets)?;
                apply_to_state(
                    &self.state,
                    schema,
                    restore.iter().map(|(event, _)| (event, Record::Nothing)),
                )?;
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

/// `state.db` set up for writing many rows in one transaction: the rollback journal instead
/// of the WAL, and a page cache of [`BulkMode::CACHE_KIB`], so that the rows do not spill
/// from the cache before the commit. Entered with no transaction open; a file that refuses
/// to leave WAL mode (another connection has it open) stays in it, which is slower only.
struct BulkMode {
    /// The `cache_size` to restore.
    cache_size: i64,
    /// Whether the file left WAL mode, and must go back to it.
    left_wal: bool,
}

impl BulkMode {
    /// The page cache during the load, in KiB.
    const CACHE_KIB: i64 = 64 * 1024;

    fn enter(state: &Connection) -> BulkMode {
        let cache_size = state
            .query_row("PRAGMA cache_size", [], |row| row.get(0))
            .unwrap_or(-2000);
        let left_wal = state
            .query_row("PRAGMA journal_mode = DELETE", [], |row| {
                row.get::<_, String>(0)
            })
            .is_ok_and(|mode| mode.eq_ignore_ascii_case("delete"));
        let _ = state.execute_batch(&format!("PRAGMA cache_size = -{}", Self::CACHE_KIB));
        BulkMode {
            cache_size,
            left_wal,
        }
    }

    /// Back to WAL mode (as [`LeaderDb::open`] left the file) and the cache size before.
    fn leave(self, state: &Connection) -> Result<(), DbError> {
        state
            .execute_batch(&format!("PRAGMA cache_size = {}", self.cache_size))
            .map_err(sql(STATE))?;
        if self.left_wal {
            let mode: String = state
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(sql(STATE))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(
                    mode,
                    "state.db did not go back to WAL mode after a snapshot load"
                );
            }
        }
        Ok(())
    }
}
