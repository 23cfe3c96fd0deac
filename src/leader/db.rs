//! The leader's two SQLite files, opened on one connection so that a batch commits
//! atomically across both: `state.db` is the main database (the user's tables, the
//! changesets of events the backend has not confirmed, the state head) and `eventlog.db` is
//! attached as `eventlog` (every event, and the backend-confirmed head and backend id).
//!
//! SQLite commits a transaction over attached databases atomically when they use a rollback
//! journal (not WAL), so the eventlog and the state never disagree after a crash. Boot still
//! levels the state with the eventlog (replaying what it lacks, or rebuilding it when the
//! schema changed): the eventlog is the source of truth.

use std::collections::BTreeMap;

use eventsync_backends::GlobalSeq;
use rusqlite::{Connection, OptionalExtension, params};

use crate::data_dir::StoreDir;
use crate::event::{Changeset, EncodedEvent, EventMeta};
use crate::materialize::{self, Record};
use crate::schema::Schema;
use crate::seq::EventSeq;

/// Version of the on-disk layout of `eventlog.db`; a change needs a migration.
const EVENTLOG_FORMAT: i64 = 1;
/// The schema hash recorded for events whose name the schema does not know.
const UNKNOWN_EVENT_HASH: &str = "unknown";

/// Errors of the leader's databases.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// SQLite failed on one of the files.
    #[error("{file}")]
    Sqlite {
        /// Which file (or `state.db + eventlog.db` for a transaction over both).
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

const BOTH: &str = "state.db + eventlog.db";

/// The leader's databases.
pub(crate) struct LeaderDb {
    conn: Connection,
    event_hashes: BTreeMap<String, String>,
    schema_hash: String,
}

/// An event to materialize in a batch, and whether to keep its changeset.
pub(crate) struct NewEvent<'a> {
    pub event: &'a mut EncodedEvent,
    pub record: Record,
}

impl LeaderDb {
    /// Opens (creating if needed) `state.db` and `eventlog.db` in `dir`.
    pub(crate) fn open(dir: &StoreDir, schema: &Schema) -> Result<LeaderDb, DbError> {
        let conn = Connection::open(dir.state_db()).map_err(sql("state.db"))?;
        conn.execute(
            "ATTACH DATABASE ?1 AS eventlog",
            [dir.eventlog_db().to_string_lossy()],
        )
        .map_err(sql("eventlog.db"))?;
        conn.execute_batch(
            "PRAGMA main.journal_mode = DELETE; PRAGMA eventlog.journal_mode = DELETE;
             PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(sql(BOTH))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS eventlog.eventlog (
                seq_global INTEGER NOT NULL, seq_client INTEGER NOT NULL, seq_generation INTEGER NOT NULL,
                parent_global INTEGER NOT NULL, parent_client INTEGER NOT NULL, parent_generation INTEGER NOT NULL,
                name TEXT NOT NULL, args_json TEXT NOT NULL, client_id TEXT NOT NULL, session_id TEXT NOT NULL,
                schema_hash TEXT NOT NULL, sync_metadata_json TEXT,
                PRIMARY KEY (seq_global, seq_client));
             CREATE TABLE IF NOT EXISTS eventlog.sync_status (
                id INTEGER PRIMARY KEY CHECK (id = 1), head INTEGER NOT NULL, backend_id TEXT);
             INSERT OR IGNORE INTO eventlog.sync_status (id, head, backend_id) VALUES (1, 0, NULL);
             CREATE TABLE IF NOT EXISTS eventlog.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS main.__eventsync_state_head (
                id INTEGER PRIMARY KEY CHECK (id = 1), seq_global INTEGER NOT NULL,
                seq_client INTEGER NOT NULL, seq_generation INTEGER NOT NULL);
             INSERT OR IGNORE INTO main.__eventsync_state_head VALUES (1, 0, 0, 0);
             CREATE TABLE IF NOT EXISTS main.__eventsync_changeset (
                seq_global INTEGER NOT NULL, seq_client INTEGER NOT NULL, seq_generation INTEGER NOT NULL,
                changeset BLOB, PRIMARY KEY (seq_global, seq_client));
             CREATE TABLE IF NOT EXISTS main.__eventsync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(sql(BOTH))?;
        let format = read_meta(&conn, "eventlog.meta", "format", "eventlog.db")?;
        match format {
            None => {
                conn.execute(
                    "INSERT INTO eventlog.meta VALUES ('format', ?1)",
                    [EVENTLOG_FORMAT.to_string()],
                )
                .map_err(sql("eventlog.db"))?;
            }
            Some(found) if found == EVENTLOG_FORMAT.to_string() => {}
            Some(found) => {
                return Err(DbError::Format {
                    file: "eventlog.db".into(),
                    message: format!(
                        "format version {found} is not supported (this build reads {EVENTLOG_FORMAT})"
                    ),
                });
            }
        }
        let event_hashes = schema.event_hashes().into_iter().collect();
        Ok(LeaderDb {
            conn,
            event_hashes,
            schema_hash: schema.hash(),
        })
    }

    /// The backend-confirmed head and the recorded backend id.
    pub(crate) fn sync_status(&self) -> Result<(GlobalSeq, Option<String>), DbError> {
        self.conn
            .query_row(
                "SELECT head, backend_id FROM eventlog.sync_status WHERE id = 1",
                [],
                |row| Ok((GlobalSeq(row.get::<_, i64>(0)? as u64), row.get(1)?)),
            )
            .map_err(sql("eventlog.db"))
    }

    /// Records the backend's id (first contact, or after a reset).
    pub(crate) fn set_backend_id(&self, backend_id: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE eventlog.sync_status SET backend_id = ?1 WHERE id = 1",
                [backend_id],
            )
            .map(drop)
            .map_err(sql("eventlog.db"))
    }

    /// The last event of the eventlog by position (`ROOT` when empty).
    pub(crate) fn eventlog_head(&self) -> Result<EventSeq, DbError> {
        self.conn
            .query_row(
                "SELECT seq_global, seq_client, seq_generation FROM eventlog.eventlog
                 ORDER BY seq_global DESC, seq_client DESC LIMIT 1",
                [],
                read_seq(0),
            )
            .optional()
            .map(|head| head.unwrap_or(EventSeq::ROOT))
            .map_err(sql("eventlog.db"))
    }

    /// The events after `after` (by position), ascending, with their changesets.
    pub(crate) fn events_after(&self, after: EventSeq) -> Result<Vec<EncodedEvent>, DbError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT e.seq_global, e.seq_client, e.seq_generation, e.parent_global, e.parent_client,
                        e.parent_generation, e.name, e.args_json, e.client_id, e.session_id,
                        e.sync_metadata_json, c.changeset, c.seq_global IS NOT NULL
                 FROM eventlog.eventlog e
                 LEFT JOIN main.__eventsync_changeset c
                   ON c.seq_global = e.seq_global AND c.seq_client = e.seq_client
                 WHERE (e.seq_global, e.seq_client) > (?1, ?2)
                 ORDER BY e.seq_global, e.seq_client",
            )
            .map_err(sql(BOTH))?;
        let rows = statement
            .query_map(params![after.global.0 as i64, after.client], |row| {
                let args: String = row.get(7)?;
                let sync_metadata: Option<String> = row.get(10)?;
                let changeset = changeset_row(
                    row.get::<_, bool>(12)?
                        .then(|| row.get::<_, Option<Vec<u8>>>(11))
                        .transpose()?,
                );
                Ok((
                    EncodedEvent {
                        seq: read_seq(0)(row)?,
                        parent: read_seq(3)(row)?,
                        name: row.get(6)?,
                        args: serde_json::Value::Null,
                        client_id: row.get(8)?,
                        session_id: row.get(9)?,
                        meta: EventMeta {
                            changeset,
                            sync_metadata: None,
                        },
                    },
                    args,
                    sync_metadata,
                ))
            })
            .map_err(sql(BOTH))?;
        let mut events = Vec::new();
        for row in rows {
            let (mut event, args, sync_metadata) = row.map_err(sql(BOTH))?;
            event.args = parse_json(&args, &event.seq)?;
            event.meta.sync_metadata = sync_metadata
                .map(|text| parse_json(&text, &event.seq))
                .transpose()?;
            events.push(event);
        }
        Ok(events)
    }

    /// The seq number of the last event reflected in the state tables.
    pub(crate) fn state_head(&self) -> Result<EventSeq, DbError> {
        self.conn
            .query_row(
                "SELECT seq_global, seq_client, seq_generation FROM main.__eventsync_state_head WHERE id = 1",
                [],
                read_seq(0),
            )
            .map_err(sql("state.db"))
    }

    /// Brings the state tables level with the eventlog: rebuilds them from scratch when the
    /// schema changed or the state does not match the eventlog, else replays what is missing.
    ///
    /// One transaction: dropping the old tables, creating the schema's, recording its hash,
    /// replaying the events and moving the state head commit together or not at all. A crash
    /// (or a failing materializer) part-way leaves `state.db` as it was, so the next boot
    /// decides again from the same facts; committing the new hash before the replay would
    /// let it trust the old head over empty tables.
    pub(crate) fn level_state(&mut self, schema: &Schema) -> Result<(), DbError> {
        let tx = self.conn.unchecked_transaction().map_err(sql(BOTH))?;
        let recorded_hash = read_meta(&tx, "main.__eventsync_meta", "schema_hash", "state.db")?;
        let state_head = self.state_head()?;
        let matches_eventlog = state_head == EventSeq::ROOT
            || tx
                .query_row(
                    "SELECT seq_generation FROM eventlog.eventlog WHERE seq_global = ?1 AND seq_client = ?2",
                    params![state_head.global.0 as i64, state_head.client],
                    |row| row.get::<_, u32>(0),
                )
                .optional()
                .map_err(sql("eventlog.db"))?
                == Some(state_head.generation);
        let rebuild =
            recorded_hash.as_deref() != Some(self.schema_hash.as_str()) || !matches_eventlog;
        let (confirmed_head, _) = self.sync_status()?;
        let replay_from = if rebuild {
            drop_user_tables(&tx)?;
            tx.execute("DELETE FROM main.__eventsync_changeset", [])
                .map_err(sql("state.db"))?;
            schema.create_tables(&tx).map_err(|error| DbError::Format {
                file: "state.db".into(),
                message: format!("creating the schema's tables: {error}"),
            })?;
            self.record_schema_hash(&tx)?;
            EventSeq::ROOT
        } else {
            state_head
        };
        // Read inside the transaction: after a rebuild, no event has a changeset any more.
        let mut missing = self.events_after(replay_from)?;
        for event in &mut missing {
            // Events after the backend-confirmed head (client-only ones on its global too) may
            // still be rolled back, so they keep a changeset.
            let record = if event.seq.position() <= (confirmed_head.0, 0) {
                Record::Nothing
            } else {
                Record::Changeset
            };
            apply_to_state(&tx, schema, event, record)?;
        }
        let head = missing.last().map(|event| event.seq).unwrap_or(replay_from);
        set_state_head(&tx, head)?;
        tx.commit().map_err(sql(BOTH))
    }

    /// Records that the user tables are those of this leader's schema.
    fn record_schema_hash(&self, tx: &Connection) -> Result<(), DbError> {
        tx.execute(
            "INSERT OR REPLACE INTO main.__eventsync_meta VALUES ('schema_hash', ?1)",
            [&self.schema_hash],
        )
        .map(drop)
        .map_err(sql("state.db"))
    }

    /// In one transaction over both files: rolls back `rollback` (by their recorded
    /// changesets, newest first, deleting them from the eventlog), materializes and appends
    /// `new` (recording changesets as asked), moves the state head to `state_head`, and when
    /// `confirmed_head` is given records it and trims the changesets it confirms.
    pub(crate) fn apply_batch(
        &mut self,
        schema: &Schema,
        rollback: &[EncodedEvent],
        new: &mut [NewEvent<'_>],
        state_head: EventSeq,
        confirmed_head: Option<GlobalSeq>,
    ) -> Result<(), DbError> {
        let tx = self.conn.unchecked_transaction().map_err(sql(BOTH))?;
        if !rollback.is_empty() {
            let mut changesets = Vec::with_capacity(rollback.len());
            {
                let mut select = tx
                    .prepare_cached(
                        "SELECT changeset FROM main.__eventsync_changeset WHERE seq_global = ?1 AND seq_client = ?2",
                    )
                    .map_err(sql("state.db"))?;
                for event in rollback {
                    let row: Option<Option<Vec<u8>>> = select
                        .query_row(
                            params![event.seq.global.0 as i64, event.seq.client],
                            |row| row.get(0),
                        )
                        .optional()
                        .map_err(sql("state.db"))?;
                    changesets.push(changeset_row(row));
                }
            }
            let refs: Vec<&Changeset> = changesets.iter().collect();
            materialize::rollback(&tx, &refs)?;
            let mut delete_changeset = tx
                .prepare_cached("DELETE FROM main.__eventsync_changeset WHERE seq_global = ?1 AND seq_client = ?2")
                .map_err(sql("state.db"))?;
            let mut delete_event = tx
                .prepare_cached(
                    "DELETE FROM eventlog.eventlog WHERE seq_global = ?1 AND seq_client = ?2",
                )
                .map_err(sql("eventlog.db"))?;
            for event in rollback {
                let key = params![event.seq.global.0 as i64, event.seq.client];
                delete_changeset.execute(key).map_err(sql("state.db"))?;
                delete_event.execute(key).map_err(sql("eventlog.db"))?;
            }
        }
        for item in new.iter_mut() {
            apply_to_state(&tx, schema, item.event, item.record)?;
            self.insert_event(&tx, item.event)?;
        }
        set_state_head(&tx, state_head)?;
        if let Some(head) = confirmed_head {
            tx.execute(
                "UPDATE eventlog.sync_status SET head = ?1 WHERE id = 1",
                [head.0 as i64],
            )
            .map_err(sql("eventlog.db"))?;
            // Confirmed: synced events up to the head. Client-only events on the head's global
            // (e5.1 after e5) may still be pending and keep their changesets.
            tx.execute(
                "DELETE FROM main.__eventsync_changeset
                 WHERE seq_global < ?1 OR (seq_global = ?1 AND seq_client = 0)",
                [head.0 as i64],
            )
            .map_err(sql("state.db"))?;
        }
        tx.commit().map_err(sql(BOTH))
    }

    fn insert_event(&self, tx: &Connection, event: &EncodedEvent) -> Result<(), DbError> {
        let hash = self
            .event_hashes
            .get(&event.name)
            .map(String::as_str)
            .unwrap_or(UNKNOWN_EVENT_HASH);
        let sync_metadata = event
            .meta
            .sync_metadata
            .as_ref()
            .map(|value| value.to_string());
        tx.prepare_cached(
            "INSERT INTO eventlog.eventlog VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                event.seq.global.0 as i64,
                event.seq.client,
                event.seq.generation,
                event.parent.global.0 as i64,
                event.parent.client,
                event.parent.generation,
                event.name,
                event.args.to_string(),
                event.client_id,
                event.session_id,
                hash,
                sync_metadata,
            ])
        })
        .map(drop)
        .map_err(sql("eventlog.db"))
    }

    /// Deletes every event, changeset and user table (the backend was wiped and recreated),
    /// records the new backend id, and recreates empty tables (recording the schema's hash,
    /// so that the tables and the hash agree). One transaction, like [`Self::level_state`].
    pub(crate) fn reset(&mut self, schema: &Schema, backend_id: &str) -> Result<(), DbError> {
        let tx = self.conn.unchecked_transaction().map_err(sql(BOTH))?;
        tx.execute_batch(
            "DELETE FROM eventlog.eventlog; DELETE FROM main.__eventsync_changeset;
             UPDATE eventlog.sync_status SET head = 0 WHERE id = 1;",
        )
        .map_err(sql(BOTH))?;
        tx.execute(
            "UPDATE eventlog.sync_status SET backend_id = ?1 WHERE id = 1",
            [backend_id],
        )
        .map_err(sql("eventlog.db"))?;
        drop_user_tables(&tx)?;
        schema.create_tables(&tx).map_err(|error| DbError::Format {
            file: "state.db".into(),
            message: format!("creating the schema's tables: {error}"),
        })?;
        self.record_schema_hash(&tx)?;
        set_state_head(&tx, EventSeq::ROOT)?;
        tx.commit().map_err(sql(BOTH))
    }

    /// Copies the state tables into `target` (a session's in-memory database).
    pub(crate) fn copy_state_into(&self, target: &mut Connection) -> Result<(), DbError> {
        let backup = rusqlite::backup::Backup::new(&self.conn, target).map_err(sql("state.db"))?;
        backup
            .run_to_completion(1024, std::time::Duration::ZERO, None)
            .map_err(sql("state.db"))
    }

    /// Every event of the eventlog, ascending (for audits and tests).
    pub(crate) fn all_events(&self) -> Result<Vec<EncodedEvent>, DbError> {
        self.events_after(EventSeq::ROOT)
    }

    /// The connection, for read queries of the state tables (through `crate::rows`, which
    /// refuses anything that would write).
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn apply_to_state(
    tx: &Connection,
    schema: &Schema,
    event: &mut EncodedEvent,
    record: Record,
) -> Result<(), DbError> {
    let applied =
        materialize::apply_event(tx, schema, event, record).map_err(|source| DbError::Event {
            seq: event.seq,
            source,
        })?;
    if record == Record::Changeset {
        let blob = match &applied.changeset {
            Changeset::Data(bytes) => Some(bytes.as_slice()),
            _ => None,
        };
        tx.prepare_cached(
            "INSERT OR REPLACE INTO main.__eventsync_changeset VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                event.seq.global.0 as i64,
                event.seq.client,
                event.seq.generation,
                blob
            ])
        })
        .map_err(sql("state.db"))?;
    }
    event.meta.changeset = applied.changeset;
    Ok(())
}

/// A row of `__eventsync_changeset` as a changeset: no row means the event was never
/// recorded, a NULL blob means it changed nothing.
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

fn set_state_head(tx: &Connection, head: EventSeq) -> Result<(), DbError> {
    tx.prepare_cached(
        "UPDATE main.__eventsync_state_head SET seq_global = ?1, seq_client = ?2, seq_generation = ?3 WHERE id = 1",
    )
    .and_then(|mut update| update.execute(params![head.global.0 as i64, head.client, head.generation]))
    .map(drop)
    .map_err(sql("state.db"))
}

fn drop_user_tables(tx: &Connection) -> Result<(), DbError> {
    let names: Vec<String> = tx
        .prepare(
            "SELECT name FROM main.sqlite_schema WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__eventsync_%'",
        )
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .map_err(sql("state.db"))?;
    for name in names {
        tx.execute_batch(&format!(
            "DROP TABLE main.\"{}\"",
            name.replace('"', "\"\"")
        ))
        .map_err(sql("state.db"))?;
    }
    Ok(())
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
        file: "eventlog.db".into(),
        message: format!("event {seq}: stored JSON does not parse: {error}"),
    })
}
