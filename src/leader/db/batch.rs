//! The leader's writes: steps staged in one open transaction per file
//! ([`LeaderDb::apply_batch`]) and committed once, the eventlog first ([`LeaderDb::commit`]);
//! see the parent module's doc for the order and what a crash leaves.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use eventsync_backends::GlobalSeq;

use super::{
    Commits, DbError, EVENTLOG, LeaderDb, NewEvent, STATE, UNKNOWN_EVENT_HASH, apply_to_state,
    changeset_row, set_state_head, sql, trim_changesets, write_commits,
};
use crate::event::{Changeset, EncodedEvent, json_text};
use crate::materialize::{self, Record};
use crate::schema::Schema;
use crate::seq::EventSeq;

impl LeaderDb {
    /// Stages one step: rolls back `rollback` (by the recorded runs that hold them, deleting
    /// them from the eventlog; see [`roll_back_from`]), materializes and appends `new`
    /// (recording the events to record as one run), moves the state head to `state_head`,
    /// and when `confirmed_head` is given records it and trims the runs it confirms.
    ///
    /// Returns the events the rollback applied again (those before `rollback` of a run it
    /// cut, read from the eventlog): sessions that copied that run need them.
    ///
    /// Steps accumulate in one open transaction per file until [`Self::commit`], so that
    /// everything the leader took in one wake-up costs one durable commit. Each step is a
    /// savepoint: a step that fails is undone alone, and the steps before it stay staged.
    pub(crate) fn apply_batch(
        &mut self,
        schema: &Schema,
        rollback: &[EncodedEvent],
        new: &mut [NewEvent<'_>],
        state_head: EventSeq,
        confirmed_head: Option<GlobalSeq>,
    ) -> Result<Vec<EncodedEvent>, DbError> {
        if new.len() >= PARALLEL_STEP_EVENTS
            && rollback.is_empty()
            && confirmed_head.is_some()
            && new.iter().all(|item| item.record == Record::Nothing)
        {
            self.enter_bulk();
        }
        let events = new.len();
        let mut restored = Vec::new();
        self.step(|db| {
            let commits = db.next_commits(!rollback.is_empty());
            let rollback = db.rollback_of(rollback, confirmed_head)?;
            if new.len() < PARALLEL_STEP_EVENTS {
                db.stage_state(schema, &rollback, new, confirmed_head)?;
                set_state_head(&db.state, state_head, commits.last)?;
                db.stage_log(rollback.events, new, confirmed_head, commits)?;
                restored = rollback.restored();
                return Ok(commits);
            }
            // The two files are written through two connections that share nothing, so a
            // large step writes the eventlog on a second thread while this one writes the
            // state: the same statements on each file as one after the other, so the same
            // files, whatever the timing. Both commit later, in their order (see `commit`).
            let LeaderDb {
                state,
                log,
                event_hashes,
                ..
            } = db;
            let (state, hashes, new): (&Connection, &_, &[NewEvent<'_>]) =
                (state, event_hashes, new);
            let events = rollback.events;
            let (staged, logged) = std::thread::scope(|scope| {
                let logged = scope
                    .spawn(move || stage_log_in(log, hashes, events, new, confirmed_head, commits));
                let staged = stage_state_in(state, schema, &rollback, new, confirmed_head)
                    .and_then(|()| set_state_head(state, state_head, commits.last));
                let logged = logged
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (staged, logged)
            });
            // The state's error first, as when the state is staged first.
            staged.and(logged)?;
            restored = rollback.restored();
            Ok(commits)
        })?;
        self.staged_events += events;
        Ok(restored)
    }

    /// The rollback of `events` (a tail of what the tables hold, ascending): from the first
    /// one's position, with what it must apply again (see [`Self::to_restore`]).
    pub(super) fn rollback_of<'r>(
        &self,
        events: &'r [EncodedEvent],
        confirmed_head: Option<GlobalSeq>,
    ) -> Result<Rollback<'r>, DbError> {
        let restore = match events.iter().map(|event| event.seq.position()).min() {
            Some(from) => self.to_restore(from, confirmed_head)?,
            None => Vec::new(),
        };
        Ok(Rollback { events, restore })
    }

    /// Runs one step's writes inside a savepoint of both files (opening the transactions
    /// first): a step that fails is undone in both, and the steps staged before it stay.
    /// `writes` returns the commit numbers the step leaves.
    pub(super) fn step(
        &mut self,
        writes: impl FnOnce(&mut Self) -> Result<Commits, DbError>,
    ) -> Result<(), DbError> {
        self.begin()?;
        savepoint(&self.state, STATE, "SAVEPOINT step")?;
        if let Err(error) = savepoint(&self.log, EVENTLOG, "SAVEPOINT step") {
            let _ = savepoint(&self.state, STATE, "ROLLBACK TO step; RELEASE step");
            return Err(error);
        }
        match writes(self) {
            Ok(staged) => {
                savepoint(&self.state, STATE, "RELEASE step")?;
                savepoint(&self.log, EVENTLOG, "RELEASE step")?;
                self.staged = staged;
                Ok(())
            }
            Err(error) => {
                let _ = savepoint(&self.state, STATE, "ROLLBACK TO step; RELEASE step");
                let _ = savepoint(&self.log, EVENTLOG, "ROLLBACK TO step; RELEASE step");
                Err(error)
            }
        }
    }

    /// Whether steps are staged and not committed yet.
    pub(crate) fn has_staged(&self) -> bool {
        self.open
    }

    /// How many new events the staged steps of [`Self::apply_batch`] hold.
    pub(crate) fn staged_events(&self) -> usize {
        self.staged_events
    }

    /// Makes the staged steps durable: the eventlog commits first (one fsync, the durable
    /// point), then the state (no fsync); see the module doc. On an error the staged steps
    /// are rolled back (those the eventlog did not commit are lost; a state behind is
    /// levelled at the next boot).
    pub(crate) fn commit(&mut self) -> Result<(), DbError> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        self.staged_events = 0;
        if let Err(error) = self.log.execute_batch("COMMIT") {
            let _ = self.log.execute_batch("ROLLBACK");
            let _ = self.state.execute_batch("ROLLBACK");
            self.staged = self.commits;
            return Err(sql(EVENTLOG)(error));
        }
        self.commits = self.staged;
        self.state.execute_batch("COMMIT").map_err(|error| {
            let _ = self.state.execute_batch("ROLLBACK");
            sql(STATE)(error)
        })?;
        self.settle_bulk();
        Ok(())
    }

    /// Opens the transactions of both files, unless they are open.
    fn begin(&mut self) -> Result<(), DbError> {
        if self.open {
            return Ok(());
        }
        self.state.execute_batch("BEGIN").map_err(sql(STATE))?;
        if let Err(error) = self.log.execute_batch("BEGIN") {
            let _ = self.state.execute_batch("ROLLBACK");
            return Err(sql(EVENTLOG)(error));
        }
        self.open = true;
        Ok(())
    }

    /// The commit numbers after the staged ones, for a step that deletes events (`rewrite`)
    /// or only appends.
    pub(super) fn next_commits(&self, rewrite: bool) -> Commits {
        Commits {
            last: self.staged.last + 1,
            rewrite: if rewrite {
                self.staged.last + 1
            } else {
                self.staged.rewrite
            },
        }
    }

    /// A step's writes to `state.db`, inside the open transaction: rolls back `rollback`
    /// (by their changesets), materializes `new`, and trims the changesets `confirmed_head`
    /// confirms. The state head is the caller's to set.
    pub(super) fn stage_state(
        &self,
        schema: &Schema,
        rollback: &Rollback<'_>,
        new: &[NewEvent<'_>],
        confirmed_head: Option<GlobalSeq>,
    ) -> Result<(), DbError> {
        stage_state_in(&self.state, schema, rollback, new, confirmed_head)
    }

    /// A step's writes to `eventlog.db`, inside the open transaction: deletes `rollback`,
    /// appends `new`, records `confirmed_head` when given, and the commit numbers.
    pub(super) fn stage_log(
        &self,
        rollback: &[EncodedEvent],
        new: &[NewEvent<'_>],
        confirmed_head: Option<GlobalSeq>,
        commits: Commits,
    ) -> Result<(), DbError> {
        stage_log_in(
            &self.log,
            &self.event_hashes,
            rollback,
            new,
            confirmed_head,
            commits,
        )
    }
}

/// Steps from this many new events on stage the two files on two threads (see
/// [`LeaderDb::apply_batch`]); smaller ones are not worth a thread.
const PARALLEL_STEP_EVENTS: usize = 256;

/// A step's rollback: the events it rolls back, and the events before them that it applies
/// again, each with whether to record it.
pub(crate) struct Rollback<'r> {
    /// The events rolled back, ascending (a tail of what the tables hold).
    pub events: &'r [EncodedEvent],
    /// The events before them, in a run that holds some of them too, to apply again.
    pub restore: Vec<(EncodedEvent, Record)>,
}

impl Rollback<'_> {
    /// The events applied again, for the sessions.
    fn restored(&self) -> Vec<EncodedEvent> {
        self.restore
            .iter()
            .map(|(event, _)| event.clone())
            .collect()
    }
}

/// [`LeaderDb::stage_state`] on the connection of `state.db`.
fn stage_state_in(
    state: &Connection,
    schema: &Schema,
    rollback: &Rollback<'_>,
    new: &[NewEvent<'_>],
    confirmed_head: Option<GlobalSeq>,
) -> Result<(), DbError> {
    if let Some(from) = rollback
        .events
        .iter()
        .map(|event| event.seq.position())
        .min()
    {
        let to = rollback
            .events
            .iter()
            .map(|event| event.seq.position())
            .max()
            .unwrap_or(from);
        roll_back_from(state, from, to)?;
        apply_to_state(
            state,
            schema,
            rollback
                .restore
                .iter()
                .map(|(event, record)| (event, *record)),
        )?;
    }
    apply_to_state(
        state,
        schema,
        new.iter().map(|item| (&*item.event, item.record)),
    )?;
    if let Some(head) = confirmed_head {
        trim_changesets(state, head)?;
    }
    Ok(())
}

/// [`LeaderDb::stage_log`] on the connection of `eventlog.db`, with the schema's event
/// hashes by name.
fn stage_log_in(
    log: &Connection,
    event_hashes: &BTreeMap<String, String>,
    rollback: &[EncodedEvent],
    new: &[NewEvent<'_>],
    confirmed_head: Option<GlobalSeq>,
    commits: Commits,
) -> Result<(), DbError> {
    if !rollback.is_empty() {
        let mut delete = log
            .prepare_cached("DELETE FROM eventlog WHERE seq_global = ?1 AND seq_client = ?2")
            .map_err(sql(EVENTLOG))?;
        for event in rollback {
            delete
                .execute(params![event.seq.global.0 as i64, event.seq.client])
                .map_err(sql(EVENTLOG))?;
        }
    }
    if !new.is_empty() {
        // One statement for the step's events: the cache's lookup by SQL text is per step.
        let mut insert = log.prepare_cached(INSERT_EVENT).map_err(sql(EVENTLOG))?;
        for item in new {
            insert_event(&mut insert, event_hashes, item.event)?;
        }
    }
    if let Some(head) = confirmed_head {
        log.prepare_cached("UPDATE sync_status SET head = ?1 WHERE id = 1")
            .and_then(|mut update| update.execute([head.0 as i64]))
            .map_err(sql(EVENTLOG))?;
    }
    write_commits(log, commits)
}

/// The eventlog's insert of one event.
const INSERT_EVENT: &str =
    "INSERT INTO eventlog VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

fn insert_event(
    insert: &mut rusqlite::CachedStatement<'_>,
    event_hashes: &BTreeMap<String, String>,
    event: &EncodedEvent,
) -> Result<(), DbError> {
    let hash = event_hashes
        .get(&event.name)
        .map(String::as_str)
        .unwrap_or(UNKNOWN_EVENT_HASH);
    let sync_metadata = event.meta.sync_metadata.as_ref().map(json_text);
    insert
        .execute(params![
            event.seq.global.0 as i64,
            event.seq.client,
            event.seq.generation,
            event.parent.global.0 as i64,
            event.parent.client,
            event.parent.generation,
            event.name,
            json_text(&event.args),
            event.client_id,
            event.session_id,
            hash,
            sync_metadata,
        ])
        .map(drop)
        .map_err(sql(EVENTLOG))
}

/// Undoes in the state every recorded run that holds an event at or after `from` (their
/// changesets combined, inverted and applied once; see [`materialize::rollback`]) and
/// deletes them. The events of those runs before `from` are undone too: the caller applies
/// them again ([`LeaderDb::to_restore`]). `to`, the last position rolled back, must be in a
/// run: an event without a changeset cannot be rolled back.
pub(super) fn roll_back_from(
    tx: &Connection,
    from: (u64, u32),
    to: (u64, u32),
) -> Result<(), DbError> {
    let key = params![from.0 as i64, from.1];
    let mut changesets = Vec::new();
    let mut last = None;
    {
        let mut select = tx
            .prepare_cached(
                "SELECT changeset, last_global, last_client FROM __eventsync_runs
                 WHERE (last_global, last_client) >= (?1, ?2)
                 ORDER BY first_global, first_client",
            )
            .map_err(sql(STATE))?;
        let mut rows = select.query(key).map_err(sql(STATE))?;
        while let Some(row) = rows.next().map_err(sql(STATE))? {
            let blob: Option<Vec<u8>> = row.get(0).map_err(sql(STATE))?;
            changesets.push(changeset_row(Some(blob)));
            last = Some((
                row.get::<_, i64>(1).map_err(sql(STATE))? as u64,
                row.get::<_, u32>(2).map_err(sql(STATE))?,
            ));
        }
    }
    if last.is_none_or(|last| last < to) {
        return Err(DbError::Materialize(
            materialize::MaterializeError::Rollback {
                index: changesets.len(),
                message: format!(
                    "event e{}.{} was materialized without recording a changeset",
                    to.0, to.1
                ),
            },
        ));
    }
    let refs: Vec<&Changeset> = changesets.iter().collect();
    materialize::rollback(tx, &refs)?;
    tx.prepare_cached("DELETE FROM __eventsync_runs WHERE (last_global, last_client) >= (?1, ?2)")
        .and_then(|mut delete| delete.execute(key))
        .map(drop)
        .map_err(sql(STATE))
}

/// Runs a savepoint statement on one file.
fn savepoint(conn: &Connection, file: &str, statement: &str) -> Result<(), DbError> {
    conn.execute_batch(statement).map_err(sql(file))
}
