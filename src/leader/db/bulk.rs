//! A pull of many confirmed events (a fresh client's cold pull, or one far behind): the WAL
//! checkpoints wait until it has caught up, then run on a thread of their own.
//!
//! SQLite checkpoints a WAL in the connection that commits, once the WAL holds
//! `wal_autocheckpoint` pages (1,000 by default): during a cold pull that is the leader's
//! thread, which copies every page of both files back into its database and fsyncs it while
//! the pull waits (about 15 % of that thread's time at 200,000 events, `perf`). In bulk mode
//! the limit is [`BULK_CHECKPOINT_PAGES`] instead, so that the pages are written once to the
//! WAL during the pull; when the pull has caught up and its last steps are committed, the
//! limit is back to SQLite's default and one passive checkpoint of each file runs on a
//! short-lived thread with its own connections (a passive checkpoint never blocks the
//! leader's writes or reads; the leader's own next checkpoint, if it comes first, is the
//! same work).
//!
//! What this changes for a crash (`RELIABILITY.md`): nothing for `eventlog.db`, whose WAL is
//! fsynced at every commit. `state.db` (`synchronous = NORMAL`) has its WAL fsynced only at a
//! checkpoint, so a power loss during a cold pull can lose the state's commits of the whole
//! pull rather than of the last 1,000 pages; boot brings it level from the eventlog as
//! always, by replaying the events it lacks.

use std::path::PathBuf;

use rusqlite::Connection;

use super::{EVENTLOG, LeaderDb, STATE};

/// The WAL size, in pages, at which a file is checkpointed in bulk mode (256 MiB of 4 KiB
/// pages): a bound on the WAL of a pull that never catches up, above what a cold pull of
/// 1,000,000 todos writes (about 190 MiB to the eventlog's WAL).
const BULK_CHECKPOINT_PAGES: u32 = 65_536;

/// SQLite's default `wal_autocheckpoint`, restored when bulk mode ends.
const DEFAULT_CHECKPOINT_PAGES: u32 = 1_000;

/// Where bulk mode stands, and the files' paths for the checkpoint thread.
pub(super) struct Bulk {
    state_path: PathBuf,
    log_path: PathBuf,
    mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Checkpoints as SQLite does them.
    Off,
    /// Checkpoints deferred to [`BULK_CHECKPOINT_PAGES`].
    On,
    /// The pull caught up: bulk mode ends once the staged steps are committed.
    Leaving,
}

impl Bulk {
    /// Bulk mode off, for the files at these paths.
    pub(super) fn new(state_path: PathBuf, log_path: PathBuf) -> Bulk {
        Bulk {
            state_path,
            log_path,
            mode: Mode::Off,
        }
    }
}

impl LeaderDb {
    /// Enters bulk mode (see the module doc) before a step of many confirmed events.
    pub(super) fn enter_bulk(&mut self) {
        if self.bulk.mode == Mode::Off {
            tracing::debug!("many confirmed events: checkpoints wait until the pull caught up");
            self.set_checkpoint_pages(BULK_CHECKPOINT_PAGES);
        }
        self.bulk.mode = Mode::On;
    }

    /// The pull has caught up: bulk mode ends now, or once the steps staged are committed
    /// ([`Self::settle_bulk`]), and the files are checkpointed on a thread of their own.
    pub(crate) fn end_bulk(&mut self) {
        if self.bulk.mode == Mode::On {
            self.bulk.mode = Mode::Leaving;
        }
        self.settle_bulk();
    }

    /// Ends bulk mode if it is leaving and nothing is staged (called after each commit).
    pub(super) fn settle_bulk(&mut self) {
        if self.bulk.mode != Mode::Leaving || self.open {
            return;
        }
        self.bulk.mode = Mode::Off;
        self.set_checkpoint_pages(DEFAULT_CHECKPOINT_PAGES);
        checkpoint_aside(vec![
            (STATE, self.bulk.state_path.clone()),
            (EVENTLOG, self.bulk.log_path.clone()),
        ]);
    }

    /// Sets `wal_autocheckpoint` on both connections. A failure only costs speed (the
    /// setting stays as it was), so it is logged, not returned.
    fn set_checkpoint_pages(&self, pages: u32) {
        for (file, conn) in [(STATE, &self.state), (EVENTLOG, &self.log)] {
            if let Err(error) = conn.execute_batch(&format!("PRAGMA wal_autocheckpoint = {pages}"))
            {
                tracing::warn!(file, %error, pages, "could not set wal_autocheckpoint");
            }
        }
    }
}

/// Runs one passive checkpoint of each file on a short-lived thread, each with a connection
/// of its own. Errors are logged: a checkpoint not done here is done by the leader's next
/// one, or when the last connection closes.
fn checkpoint_aside(files: Vec<(&'static str, PathBuf)>) {
    let spawned = std::thread::Builder::new()
        .name("eventsync-checkpoint".into())
        .spawn(move || {
            for (file, path) in files {
                let done = Connection::open(&path).and_then(|conn| {
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                    })
                });
                match done {
                    Ok((log, checkpointed)) => {
                        tracing::debug!(file, log, checkpointed, "checkpointed after a bulk pull");
                    }
                    Err(error) => {
                        tracing::info!(file, %error, "checkpoint after a bulk pull failed");
                    }
                }
            }
        });
    if let Err(error) = spawned {
        tracing::info!(%error, "could not start the checkpoint thread; SQLite checkpoints later");
    }
}
