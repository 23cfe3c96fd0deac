//! The leader's two SQLite files, each on its own connection, both in WAL mode:
//! `eventlog.db` (every event, the backend-confirmed head, the backend id) is the source of
//! truth, and `state.db` (the user's tables, the changesets of events the backend has not
//! confirmed, the state head) is a cache of it that boot can always bring level.
//!
//! The changesets are kept by *run* ([`Run`], the table `__eventsync_runs`): one SQLite
//! session, and one row, for the events a step materializes that may still be rolled back,
//! since a session per event costs its statements' compilation every time. A rollback from
//! an event undoes every run that holds it or a later one, whole, and applies the earlier
//! events of the run it cuts again from the eventlog ([`LeaderDb::to_restore`]); a run stays
//! until the backend confirmed all of it. A file of the layout before runs (one changeset
//! per event, `__eventsync_changeset`) is moved into runs of one at open.
//!
//! # Two commits in a fixed order
//!
//! In WAL mode SQLite does not commit a transaction over two files atomically (each file
//! commits on its own), so the files are not one transaction: each durable batch
//! ([`LeaderDb::commit`] of the steps staged by [`LeaderDb::apply_batch`], or a
//! [`LeaderDb::reset`]) is two, in this order:
//!
//! 1. the `state.db` transaction does all the work that can fail on the user's side
//!    (materializing, rolling back by changesets), each step in a savepoint of both files;
//!    a step that fails is undone in both and nothing of it reaches either file;
//! 2. the `eventlog.db` transaction writes the events and the heads and **commits first**,
//!    with `synchronous = FULL`: one fsync of its WAL. This is the durable point of a batch;
//! 3. the `state.db` transaction commits, with `synchronous = NORMAL`: no fsync (its WAL is
//!    synced at checkpoints). A process kill cannot lose it once committed; a power loss can
//!    lose the last few state commits, never the eventlog's.
//!
//! So a crash leaves `state.db` level with `eventlog.db` or *behind* it, never ahead. Each
//! eventlog commit bumps a commit number (`eventlog.commits`), and a commit that deletes
//! events (a rebase's rollback, a reset) records itself as the last *rewrite*; the state
//! commit records the eventlog commit it matches (`__eventsync_level`). Boot
//! ([`LeaderDb::level_state`]) compares the two in O(1) (plus one indexed lookup):
//!
//! - schema changed, state ahead of the eventlog (a lost or replaced `eventlog.db`), a
//!   rewrite the state has not seen, or a state head the eventlog lacks: rebuild the state
//!   from the eventlog (O(history), only after a crash inside a rebase's window or a lost
//!   file);
//! - otherwise the state is behind by appends only: replay the events after the state head
//!   (nothing when level) and drop the changesets of events confirmed meanwhile.
//!
//! Checkpoints (`wal_autocheckpoint`, SQLite's default of 1,000 pages) copy a WAL back into
//! its database and fsync both; that is two fsyncs per 1,000 pages written, amortized over
//! many batches.
//!
//! One exception to WAL mode: a snapshot's rows are loaded into an empty `state.db` with the
//! rollback journal (`db/snapshot.rs`), each page written once rather than to the WAL and
//! again at the checkpoint; the file is back in WAL mode before anything else runs.

use std::collections::BTreeMap;
use std::ops::Range;

use eventsync_backends::GlobalSeq;
use rusqlite::{Connection, OptionalExtension, params};

use crate::data_dir::StoreDir;
use crate::event::{Changeset, EncodedEvent, EventMeta};
use crate::materialize::{self, Record};
use crate::schema::Schema;
use crate::seq::EventSeq;
use crate::sync_state::{Pending, PendingEvent};

/// Version of the on-disk layout of `eventlog.db`; a change needs a migration.
const EVENTLOG_FORMAT: i64 = 1;
/// The schema hash recorded for events whose name the schema does not know.
const UNKNOWN_EVENT_HASH: &str = "unknown";
/// The file names in errors.
const STATE: &str = "state.db";
const EVENTLOG: &str = "eventlog.db";

/// Errors of the leader's databases.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// SQLite failed on one of the files.
    #[error("{file}")]
    Sqlite {
        /// Which file.
        file: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Materializing or rolling back an event failed.
    #[error(transparent)]
    Materialize(#[from] materialize::MaterializeError),
    /// Materializing the event numbered `seq` failed (its name is in the source's message).
    #[error("event {seq}")]
    Event {
        /// The event's number.
        seq: EventSeq,
        /// Why it could not be materialized.
        #[source]
        source: materialize::MaterializeError,
    },
    /// A file holds something this version cannot read.
    #[error("{file}: {message}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

fn sql(file: &str) -> impl FnOnce(rusqlite::Error) -> DbError + '_ {
    move |source| DbError::Sqlite {
        file: file.to_owned(),
        source,
    }
}

/// Where the eventlog's commits stand (the `eventlog.commits` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Commits {
    /// The number of the last commit that changed the events or the heads.
    last: u64,
    /// The number of the last commit that deleted events (0: none).
    rewrite: u64,
}

/// The leader's databases.
pub(crate) struct LeaderDb {
    /// `state.db`: the user's tables, changesets, the state head and its level mark.
    state: Connection,
    /// `eventlog.db`: the events, the sync status and the commit numbers.
    log: Connection,
    /// The eventlog's commit numbers as last committed (only this leader writes them).
    commits: Commits,
    /// The commit numbers the staged steps leave (`commits` when nothing is staged).
    staged: Commits,
    /// Whether both files' transactions are open, with steps staged in them.
    open: bool,
    /// The new events of the steps staged (0 when nothing is).
    staged_events: usize,
    /// Bulk mode: checkpoints deferred during a pull of many events (`db/bulk.rs`).
    bulk: bulk::Bulk,
    event_hashes: BTreeMap<String, String>,
    schema_hash: String,
    /// The event the eventlog starts after: 0, or `S` for a store booted from a snapshot
    /// at `S` (its events up to `S` are in the tables, not in the eventlog). Recorded in
    /// `eventlog.db`'s `meta` as `base`.
    base: GlobalSeq,
}

/// An event to materialize in a batch, and whether to keep its changeset.
pub(crate) struct NewEvent<'a> {
    pub event: &'a mut EncodedEvent,
    pub record: Record,
}

impl<'a> NewEvent<'a> {
    /// `event`, keeping its changeset when it is after `upstream`: the backend has not
    /// confirmed it, so it may still be rolled back.
    pub(crate) fn after_upstream(event: &'a mut EncodedEvent, upstream: EventSeq) -> Self {
        let record = if event.seq.is_after(&upstream) {
            Record::Changeset
        } else {
            Record::Nothing
        };
        NewEvent { event, record }
    }
}

/// Dirty pages a transaction may hold in the page cache before SQLite spills them to the
/// WAL in the middle of it (`PRAGMA cache_spill`; its default is the cache size, 2,000 KiB).
/// A cold pull's wake-up writes thousands of events in one transaction: with the default,
/// `perf` found about a fifth of the two files' staging in spills (each spilled page is
/// written to the WAL, copied into the savepoint's journal first, and written again when it
/// changes before the commit). Pages past the cache size are freed once the commit makes
/// them clean, so this bounds the memory of one very large transaction, not the cache.
const SPILL_PAGES: u32 = 4096;

/// The most a WAL file keeps of its size once it is restarted from its beginning (`PRAGMA
/// journal_size_limit`): a cold pull's WAL (see `db/bulk.rs`) grows to hundreds of MiB, which
/// SQLite would otherwise keep on disk, unused, until the store is closed.
const WAL_KEEP_BYTES: u64 = 64 * 1024 * 1024;

/// Opens one of the files in WAL mode with `synchronous` as given. A file system that
/// cannot hold a WAL (no shared memory) keeps its rollback journal: slower, still correct,
/// since the two commits are ordered either way.
fn open_file(path: &std::path::Path, file: &str, synchronous: &str) -> Result<Connection, DbError> {
    let conn = Connection::open(path).map_err(sql(file))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sql(file))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            file,
            mode,
            "SQLite refused WAL mode; every commit costs more fsyncs"
        );
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000;
         PRAGMA cache_spill = {SPILL_PAGES}; PRAGMA journal_size_limit = {WAL_KEEP_BYTES};"
    ))
    .map_err(sql(file))?;
    Ok(conn)
}

impl LeaderDb {
    /// Opens (creating if needed) `state.db` and `eventlog.db` in `dir`.
    pub(crate) fn open(dir: &StoreDir, schema: &Schema) -> Result<LeaderDb, DbError> {
        let state = open_file(&dir.state_db(), STATE, "NORMAL")?;
        let log = open_file(&dir.eventlog_db(), EVENTLOG, "FULL")?;
        log.execute_batch(
            "CREATE TABLE IF NOT EXISTS eventlog (
                seq_global INTEGER NOT NULL, seq_client INTEGER NOT NULL, seq_generation INTEGER NOT NULL,
                parent_global INTEGER NOT NULL, parent_client INTEGER NOT NULL, parent_generation INTEGER NOT NULL,
                name TEXT NOT NULL, args_json TEXT NOT NULL, client_id TEXT NOT NULL, session_id TEXT NOT NULL,
                schema_hash TEXT NOT NULL, sync_metadata_json TEXT,
                PRIMARY KEY (seq_global, seq_client));
             CREATE TABLE IF NOT EXISTS sync_status (
                id INTEGER PRIMARY KEY CHECK (id = 1), head INTEGER NOT NULL, backend_id TEXT);
             INSERT OR IGNORE INTO sync_status (id, head, backend_id) VALUES (1, 0, NULL);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS commits (
                id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL, rewrite INTEGER NOT NULL);
             INSERT OR IGNORE INTO commits VALUES (1, 0, 0);",
        )
        .map_err(sql(EVENTLOG))?;
        state
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS __eventsync_state_head (
                    id INTEGER PRIMARY KEY CHECK (id = 1), seq_global INTEGER NOT NULL,
                    seq_client INTEGER NOT NULL, seq_generation INTEGER NOT NULL);
                 INSERT OR IGNORE INTO __eventsync_state_head VALUES (1, 0, 0, 0);
                 CREATE TABLE IF NOT EXISTS __eventsync_level (
                    id INTEGER PRIMARY KEY CHECK (id = 1), eventlog_commit INTEGER NOT NULL);
                 INSERT OR IGNORE INTO __eventsync_level VALUES (1, 0);
                 CREATE TABLE IF NOT EXISTS __eventsync_runs (
                    first_global INTEGER NOT NULL, first_client INTEGER NOT NULL,
                    last_global INTEGER NOT NULL, last_client INTEGER NOT NULL,
                    last_generation INTEGER NOT NULL, events INTEGER NOT NULL, changeset BLOB,
                    PRIMARY KEY (first_global, first_client));
                 CREATE TABLE IF NOT EXISTS __eventsync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS __eventsync_lag (
                    id INTEGER PRIMARY KEY CHECK (id = 1), seq_global INTEGER NOT NULL,
                    seq_client INTEGER NOT NULL, seq_generation INTEGER NOT NULL);",
            )
            .map_err(sql(STATE))?;
        migrate_changesets(&state)?;
        match read_meta(&log, "meta", "format", EVENTLOG)? {
            None => {
                log.execute(
                    "INSERT INTO meta VALUES ('format', ?1)",
                    [EVENTLOG_FORMAT.to_string()],
                )
                .map_err(sql(EVENTLOG))?;
            }
            Some(found) if found == EVENTLOG_FORMAT.to_string() => {}
            Some(found) => {
                return Err(DbError::Format {
                    file: EVENTLOG.into(),
                    message: format!(
                        "format version {found} is not supported (this build reads {EVENTLOG_FORMAT})"
                    ),
                });
            }
        }
        let commits = read_commits(&log)?;
        let event_hashes = schema.event_hashes().into_iter().collect();
        let base = match read_meta(&log, "meta", "base", EVENTLOG)? {
            None => GlobalSeq::ZERO,
            Some(text) => GlobalSeq(text.parse().map_err(|_| DbError::Format {
                file: EVENTLOG.into(),
                message: format!("meta base {text:?} is not a number"),
            })?),
        };
        Ok(LeaderDb {
            state,
            log,
            commits,
            staged: commits,
            open: false,
            staged_events: 0,
            bulk: bulk::Bulk::new(dir.state_db(), dir.eventlog_db()),
            event_hashes,
            schema_hash: schema.hash(),
            base,
        })
    }

    /// The backend-confirmed head and the recorded backend id.
    pub(crate) fn sync_status(&self) -> Result<(GlobalSeq, Option<String>), DbError> {
        self.log
            .query_row(
                "SELECT head, backend_id FROM sync_status WHERE id = 1",
                [],
                |row| Ok((GlobalSeq(row.get::<_, i64>(0)? as u64), row.get(1)?)),
            )
            .map_err(sql(EVENTLOG))
    }

    /// Records the backend's id (first contact, or after a reset).
    pub(crate) fn set_backend_id(&self, backend_id: &str) -> Result<(), DbError> {
        self.log
            .execute(
                "UPDATE sync_status SET backend_id = ?1 WHERE id = 1",
                [backend_id],
            )
            .map(drop)
            .map_err(sql(EVENTLOG))
    }

    /// The last event of the eventlog by position: when it holds none, its base (`ROOT`,
    /// or the snapshot's `S` it starts after).
    pub(crate) fn eventlog_head(&self) -> Result<EventSeq, DbError> {
        self.log
            .query_row(
                "SELECT seq_global, seq_client, seq_generation FROM eventlog
                 ORDER BY seq_global DESC, seq_client DESC LIMIT 1",
                [],
                read_seq(0),
            )
            .optional()
            .map(|head| head.unwrap_or(EventSeq::from(self.base)))
            .map_err(sql(EVENTLOG))
    }

    /// The event the eventlog starts after (see the field's doc): `e0`, or a snapshot's `S`.
    pub(crate) fn base(&self) -> GlobalSeq {
        self.base
    }

    /// Whether this store holds nothing yet: no event, nothing confirmed, no snapshot. Only
    /// such a store boots from a snapshot.
    pub(crate) fn is_empty(&self) -> Result<bool, DbError> {
        let (confirmed, _) = self.sync_status()?;
        Ok(self.base == GlobalSeq::ZERO
            && confirmed == GlobalSeq::ZERO
            && self.eventlog_head()? == EventSeq::ROOT)
    }

    /// The events after `after` (by position), ascending, without changesets: those stay in
    /// `state.db` ([`Self::pending_runs`]).
    pub(crate) fn events_after(&self, after: EventSeq) -> Result<Vec<EncodedEvent>, DbError> {
        self.read_events(
            "SELECT seq_global, seq_client, seq_generation, parent_global, parent_client,
                    parent_generation, name, args_json, client_id, session_id, sync_metadata_json
             FROM eventlog WHERE (seq_global, seq_client) > (?1, ?2)
             ORDER BY seq_global, seq_client",
            params![after.global.0 as i64, after.client],
        )
    }

    /// The events a query of the eventlog selects (the columns of [`Self::events_after`]).
    fn read_events(
        &self,
        query: &str,
        key: impl rusqlite::Params,
    ) -> Result<Vec<EncodedEvent>, DbError> {
        let mut statement = self.log.prepare_cached(query).map_err(sql(EVENTLOG))?;
        let rows = statement
            .query_map(key, |row| {
                let args: String = row.get(7)?;
                let sync_metadata: Option<String> = row.get(10)?;
                Ok((
                    EncodedEvent {
                        seq: read_seq(0)(row)?,
                        parent: read_seq(3)(row)?,
                        name: row.get(6)?,
                        args: serde_json::Value::Null,
                        client_id: row.get(8)?,
                        session_id: row.get(9)?,
                        meta: EventMeta::default(),
                    },
                    args,
                    sync_metadata,
                ))
            })
            .map_err(sql(EVENTLOG))?;
        let mut events = Vec::new();
        for row in rows {
            let (mut event, args, sync_metadata) = row.map_err(sql(EVENTLOG))?;
            event.args = parse_json(&args, &event.seq)?;
            event.meta.sync_metadata = sync_metadata
                .map(|text| parse_json(&text, &event.seq))
                .transpose()?;
            events.push(event);
        }
        Ok(events)
    }

    /// The events after `after` (by position) as pending events known by their numbers
    /// only: a boot with 100,000 pending events would otherwise spend most of its time
    /// reading bodies it may never need. [`Self::load_bodies`] reads them when needed.
    pub(crate) fn pending_after(&self, after: EventSeq) -> Result<Pending, DbError> {
        let key = params![after.global.0 as i64, after.client];
        let mut statement = self
            .log
            .prepare_cached(
                "SELECT seq_global, seq_client, seq_generation, parent_global, parent_client,
                        parent_generation
                 FROM eventlog WHERE (seq_global, seq_client) > (?1, ?2)
                 ORDER BY seq_global, seq_client",
            )
            .map_err(sql(EVENTLOG))?;
        let mut rows = statement.query(key).map_err(sql(EVENTLOG))?;
        let mut pending = Pending::default();
        while let Some(row) = rows.next().map_err(sql(EVENTLOG))? {
            let seq = read_seq(0)(row).map_err(sql(EVENTLOG))?;
            let parent = read_seq(3)(row).map_err(sql(EVENTLOG))?;
            pending.push(PendingEvent::unloaded(seq, parent));
        }
        Ok(pending)
    }

    /// Loads the bodies of the unloaded events among `pending[range]` from the eventlog
    /// (one read of the rows from the first to the last of them), their args kept as the
    /// stored JSON text, checked but not parsed.
    ///
    /// # Errors
    ///
    /// A pending event that the eventlog does not hold with the same number (generation
    /// included), or args that are not JSON: the files do not agree with the leader.
    pub(crate) fn load_bodies(
        &self,
        pending: &mut Pending,
        range: Range<usize>,
    ) -> Result<(), DbError> {
        let Some((first, last)) = pending.unloaded_span(range) else {
            return Ok(());
        };
        let seq_at = |pending: &Pending, index: usize| pending.get(index).map(|event| event.seq);
        let (Some(from), Some(to)) = (seq_at(pending, first), seq_at(pending, last)) else {
            return Ok(());
        };
        let mut statement = self
            .log
            .prepare_cached(
                "SELECT seq_global, seq_client, seq_generation, name, args_json, client_id,
                        session_id
                 FROM eventlog
                 WHERE (seq_global, seq_client) >= (?1, ?2) AND (seq_global, seq_client) <= (?3, ?4)
                 ORDER BY seq_global, seq_client",
            )
            .map_err(sql(EVENTLOG))?;
        let key = params![
            from.global.0 as i64,
            from.client,
            to.global.0 as i64,
            to.client
        ];
        let mut rows = statement.query(key).map_err(sql(EVENTLOG))?;
        while let Some(row) = rows.next().map_err(sql(EVENTLOG))? {
            let seq = read_seq(0)(row).map_err(sql(EVENTLOG))?;
            let text = |index: usize| {
                row.get_ref(index)
                    .and_then(|value| Ok(value.as_str()?))
                    .map_err(sql(EVENTLOG))
            };
            let (name, client_id, session_id) = (text(3)?, text(5)?, text(6)?);
            let args: String = row.get(4).map_err(sql(EVENTLOG))?;
            pending
                .load_body(seq, name, args, client_id, session_id)
                .map_err(|error| DbError::Format {
                    file: EVENTLOG.into(),
                    message: format!("event {seq}: stored JSON does not parse: {error}"),
                })?;
        }
        match pending.unloaded_span(first..last + 1) {
            None => Ok(()),
            Some((missing, _)) => Err(DbError::Format {
                file: EVENTLOG.into(),
                message: format!(
                    "pending event {} is not in the eventlog",
                    seq_at(pending, missing).unwrap_or(from)
                ),
            }),
        }
    }

    /// The recorded runs of the events the backend has not confirmed (every event that may
    /// still be rolled back, and the confirmed ones that share a run with them), oldest first.
    pub(crate) fn pending_runs(&self) -> Result<Vec<Run>, DbError> {
        recorded_runs(&self.state).map_err(sql(STATE))
    }

    /// The events of the eventlog from `from` (included) to `to` (excluded), by position,
    /// ascending.
    pub(crate) fn events_between(
        &self,
        from: (u64, u32),
        to: (u64, u32),
    ) -> Result<Vec<EncodedEvent>, DbError> {
        self.read_events(
            "SELECT seq_global, seq_client, seq_generation, parent_global, parent_client,
                    parent_generation, name, args_json, client_id, session_id, sync_metadata_json
             FROM eventlog WHERE (seq_global, seq_client) >= (?1, ?2)
                AND (seq_global, seq_client) < (?3, ?4)
             ORDER BY seq_global, seq_client",
            params![from.0 as i64, from.1, to.0 as i64, to.1],
        )
    }

    /// What a rollback from `from` (every run holding an event at or after it undone) must
    /// apply again: the events before `from` of the run that straddles it, read from the
    /// eventlog, each with whether to record it (a run of its own) because the backend has
    /// not confirmed it (by `confirmed`, else the recorded confirmed head).
    pub(super) fn to_restore(
        &self,
        from: (u64, u32),
        confirmed: Option<GlobalSeq>,
    ) -> Result<Vec<(EncodedEvent, Record)>, DbError> {
        let first: Option<(u64, u32)> = self
            .state
            .prepare_cached(
                "SELECT first_global, first_client FROM __eventsync_runs
                 WHERE (last_global, last_client) >= (?1, ?2)
                 ORDER BY first_global, first_client LIMIT 1",
            )
            .and_then(|mut select| {
                select
                    .query_row(params![from.0 as i64, from.1], |row| {
                        Ok((row.get::<_, i64>(0)? as u64, row.get(1)?))
                    })
                    .optional()
            })
            .map_err(sql(STATE))?;
        let Some(first) = first.filter(|first| *first < from) else {
            return Ok(Vec::new());
        };
        let events = self.events_between(first, from)?;
        if events.first().map(|event| event.seq.position()) != Some(first) {
            return Err(DbError::Format {
                file: EVENTLOG.into(),
                message: format!(
                    "the changeset run starting at e{}.{} holds an event the eventlog lacks",
                    first.0, first.1
                ),
            });
        }
        let confirmed = match confirmed {
            Some(head) => head,
            None => self.sync_status()?.0,
        };
        Ok(events
            .into_iter()
            .map(|event| {
                let record = if event.seq.position() > (confirmed.0, 0) {
                    Record::Changeset
                } else {
                    Record::Nothing
                };
                (event, record)
            })
            .collect())
    }

    /// The seq number of the last event reflected in the state tables.
    pub(crate) fn state_head(&self) -> Result<EventSeq, DbError> {
        self.state
            .query_row(
                "SELECT seq_global, seq_client, seq_generation FROM __eventsync_state_head WHERE id = 1",
                [],
                read_seq(0),
            )
            .map_err(sql(STATE))
    }

    /// Copies the state tables into `target` (a session's in-memory database).
    pub(crate) fn copy_state_into(&self, target: &mut Connection) -> Result<(), DbError> {
        let backup = rusqlite::backup::Backup::new(&self.state, target).map_err(sql(STATE))?;
        backup
            .run_to_completion(1024, std::time::Duration::ZERO, None)
            .map_err(sql(STATE))
    }

    /// Every event of the eventlog, ascending (for audits and tests).
    pub(crate) fn all_events(&self) -> Result<Vec<EncodedEvent>, DbError> {
        self.events_after(EventSeq::ROOT)
    }

    /// The connection of `state.db`, for read queries of the state tables (through
    /// `crate::rows`, which refuses anything that would write).
    pub(crate) fn connection(&self) -> &Connection {
        &self.state
    }
}

/// One changeset for a *run*: consecutive events materialized in one step under one SQLite
/// session (a row of `state.db`'s `__eventsync_runs`). One session per run rather than per
/// event: a session compiles its table-info and select statements each time, which made a
/// rebase's replay of 1,000 events cost about 25 ms (`BENCHMARKS.md`, the rebase figure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    /// The position of its first event.
    pub first: (u64, u32),
    /// Its last event.
    pub last: EventSeq,
    /// What the run changed: `Data`, or `NoOp` when it changed nothing.
    pub changeset: Changeset,
}

/// The runs recorded in `conn`'s `__eventsync_runs` table, oldest first: in `state.db`, or
/// in a session's copy of it (which reads them when it first rolls back).
pub(crate) fn recorded_runs(conn: &Connection) -> rusqlite::Result<Vec<Run>> {
    conn.prepare_cached(
        "SELECT first_global, first_client, last_global, last_client, last_generation, changeset
         FROM __eventsync_runs ORDER BY first_global, first_client",
    )?
    .query_map([], |row| {
        Ok(Run {
            first: (row.get::<_, i64>(0)? as u64, row.get(1)?),
            last: read_seq(2)(row)?,
            changeset: changeset_row(Some(row.get(5)?)),
        })
    })?
    .collect()
}

/// Drops the runs whose every event `head` confirms: synced events up to it (a client-only
/// event on the head's global, e5.1 after e5, may still be pending). A run confirmed in part
/// stays whole until it is confirmed whole, or cut by a rollback (`batch::roll_back_from`).
fn trim_changesets(tx: &Connection, head: GlobalSeq) -> Result<(), DbError> {
    tx.prepare_cached(
        "DELETE FROM __eventsync_runs
         WHERE last_global < ?1 OR (last_global = ?1 AND last_client = 0)",
    )
    .and_then(|mut delete| delete.execute([head.0 as i64]))
    .map(drop)
    .map_err(sql(STATE))
}

/// Moves the rows of the table of one changeset per event (`__eventsync_changeset`, the
/// layout before runs) into `__eventsync_runs`, each a run of one, and drops it: one
/// transaction, at open, before anything reads the runs.
fn migrate_changesets(state: &Connection) -> Result<(), DbError> {
    let old: i64 = state
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '__eventsync_changeset'",
            [],
            |row| row.get(0),
        )
        .map_err(sql(STATE))?;
    if old == 0 {
        return Ok(());
    }
    let tx = state.unchecked_transaction().map_err(sql(STATE))?;
    tx.execute_batch(
        "INSERT OR REPLACE INTO __eventsync_runs
            SELECT seq_global, seq_client, seq_global, seq_client, seq_generation, 1, changeset
            FROM __eventsync_changeset;
         DROP TABLE __eventsync_changeset;",
    )
    .map_err(sql(STATE))?;
    tx.commit().map_err(sql(STATE))
}

fn read_commits(log: &Connection) -> Result<Commits, DbError> {
    log.query_row(
        "SELECT last, rewrite FROM commits WHERE id = 1",
        [],
        |row| {
            Ok(Commits {
                last: row.get::<_, i64>(0)? as u64,
                rewrite: row.get::<_, i64>(1)? as u64,
            })
        },
    )
    .map_err(sql(EVENTLOG))
}

fn write_commits(tx: &Connection, commits: Commits) -> Result<(), DbError> {
    tx.prepare_cached("UPDATE commits SET last = ?1, rewrite = ?2 WHERE id = 1")
        .and_then(|mut update| update.execute(params![commits.last as i64, commits.rewrite as i64]))
        .map(drop)
        .map_err(sql(EVENTLOG))
}

/// Materializes `items` in order: each stretch of consecutive events to record as one run
/// (one SQLite session, one row of `__eventsync_runs`), the others without a changeset.
fn apply_to_state<'e>(
    tx: &Connection,
    schema: &Schema,
    items: impl IntoIterator<Item = (&'e EncodedEvent, Record)>,
) -> Result<(), DbError> {
    let mut run: Vec<&EncodedEvent> = Vec::new();
    for (event, record) in items {
        match record {
            Record::Changeset => run.push(event),
            Record::Nothing => {
                record_run(tx, schema, &run)?;
                run.clear();
                apply_one(tx, schema, event)?;
            }
        }
    }
    record_run(tx, schema, &run)
}

/// Materializes one event without a changeset.
fn apply_one(tx: &Connection, schema: &Schema, event: &EncodedEvent) -> Result<(), DbError> {
    materialize::apply_event_quietly(tx, schema, event, Record::Nothing)
        .map(drop)
        .map_err(|source| DbError::Event {
            seq: event.seq,
            source,
        })
}

/// Materializes `run` (consecutive events, ascending) under one SQLite session on the user
/// tables and records its changeset as one row. Nothing for an empty run.
fn record_run(tx: &Connection, schema: &Schema, run: &[&EncodedEvent]) -> Result<(), DbError> {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return Ok(());
    };
    let mut session = rusqlite::session::Session::new(tx).map_err(sql(STATE))?;
    let user_tables = std::sync::Arc::clone(schema.user_tables());
    session.table_filter(Some(move |table: &str| user_tables.contains(table)));
    session.attach(None::<&str>).map_err(sql(STATE))?;
    for event in run {
        apply_one(tx, schema, event)?;
    }
    let mut bytes = Vec::new();
    if !session.is_empty() {
        session.changeset_strm(&mut bytes).map_err(sql(STATE))?;
    }
    drop(session);
    // A row changed and changed back leaves a session that is not empty and no change.
    let blob = (!bytes.is_empty()).then_some(bytes.as_slice());
    tx.prepare_cached("INSERT OR REPLACE INTO __eventsync_runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .and_then(|mut insert| {
            insert.execute(params![
                first.seq.global.0 as i64,
                first.seq.client,
                last.seq.global.0 as i64,
                last.seq.client,
                last.seq.generation,
                run.len() as i64,
                blob
            ])
        })
        .map(drop)
        .map_err(sql(STATE))
}

/// A row of `__eventsync_runs` as a changeset: no row means the events were never
/// recorded, a NULL blob means they changed nothing.
fn changeset_row(row: Option<Option<Vec<u8>>>) -> Changeset {
    match row {
        None => Changeset::Unset,
        Some(None) => Changeset::NoOp,
        Some(Some(bytes)) => Changeset::Data(bytes),
    }
}

/// The value of `key` in a key-value `table` of `file` (`None` when it is not recorded).
fn read_meta(
    conn: &Connection,
    table: &str,
    key: &str,
    file: &str,
) -> Result<Option<String>, DbError> {
    conn.query_row(
        &format!("SELECT value FROM {table} WHERE key = ?1"),
        [key],
        |row| row.get(0),
    )
    .optional()
    .map_err(sql(file))
}

/// Moves the state head, and records the eventlog commit the state is level with.
fn set_state_head(tx: &Connection, head: EventSeq, eventlog_commit: u64) -> Result<(), DbError> {
    tx.prepare_cached(
        "UPDATE __eventsync_state_head SET seq_global = ?1, seq_client = ?2, seq_generation = ?3 WHERE id = 1",
    )
    .and_then(|mut update| update.execute(params![head.global.0 as i64, head.client, head.generation]))
    .and_then(|_| {
        tx.prepare_cached("UPDATE __eventsync_level SET eventlog_commit = ?1 WHERE id = 1")?
            .execute([eventlog_commit as i64])
    })
    .map(drop)
    .map_err(sql(STATE))
}

fn read_seq(first: usize) -> impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<EventSeq> {
    move |row| {
        Ok(EventSeq::new(
            row.get::<_, i64>(first)? as u64,
            row.get(first + 1)?,
            row.get(first + 2)?,
        ))
    }
}

fn parse_json(text: &str, seq: &EventSeq) -> Result<serde_json::Value, DbError> {
    serde_json::from_str(text).map_err(|error| DbError::Format {
        file: EVENTLOG.into(),
        message: format!("event {seq}: stored JSON does not parse: {error}"),
    })
}

mod batch;
pub(crate) mod bench;
mod bulk;
mod lag;
mod level;
mod snapshot;

#[cfg(test)]
mod tests;
