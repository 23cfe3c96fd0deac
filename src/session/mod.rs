//! Client sessions: an in-memory SQLite read model per session (a window, a thread, a
//! request handler), updated at once on commit.
//!
//! A session numbers its commits on its own head, materializes them, and queues them to the
//! leader. The leader answers every session with the same payloads (advance or rebase), which
//! the session merges with [`merge`]: its own events are confirmed, others' are applied, and
//! when the leader rebased, the session rolls back and replays. Every event the backend has
//! not confirmed may still be rolled back (the leader may roll it back), so the session keeps
//! those inside one open savepoint of its read model (the [`span`]), not a changeset each.
//! Only the events copied with the leader's `state.db` roll back by changesets: the runs
//! the leader recorded (the journal), each undone whole; the events before a rollback of a
//! run it cuts come again with the leader's payload (`restored`).

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use eventsync_backends::{Entropy, GlobalSeq};
use rusqlite::Connection;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Changeset, EncodedEvent, Event, EventMeta};
use crate::leader::{
    Command, Counters, LeaderHeads, PushRequest, SessionKey, SessionMessage, SessionSeed,
};
use crate::materialize::{self, Record};
use crate::rows;
use crate::schema::Schema;
use crate::seq::EventSeq;
use crate::sync_state::{LocalPush, MergeOptions, Merged, Payload, PendingEvent, SyncState};
use span::{Span, run_cached};

mod span;

/// A value bound to an SQL parameter.
pub(crate) type SqlValue = rusqlite::types::Value;

/// One client session. Cheap to clone; all clones share the session.
///
/// Dropping the last clone does not lose commits: the session's task keeps it alive until
/// the leader has admitted every pending event (re-pushing them if the leader asks to).
#[derive(Clone)]
pub struct ClientSession {
    inner: Arc<SessionInner>,
    _handle: Arc<HandleGuard>,
}

/// Names the session; the read model and its pending events are behind a lock, so they are
/// left out (see [`ClientSession::sync_status`]).
impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("client_id", &self.inner.client_id)
            .field("session_id", &self.inner.session_id)
            .finish_non_exhaustive()
    }
}

/// Tells the session's task when the last user handle is gone.
struct HandleGuard {
    inner: Arc<SessionInner>,
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        self.inner.dropped.store(true, Ordering::Release);
        self.inner.wake.notify_one();
    }
}

struct SessionInner {
    schema: Arc<Schema>,
    client_id: String,
    session_id: String,
    key: SessionKey,
    leader: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    core: Mutex<SessionCore>,
    /// Set when every user handle is gone; the task then ends once nothing is pending.
    dropped: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

/// The session's mutable state, behind one lock: commits and leader payloads never interleave.
struct SessionCore {
    connection: Connection,
    state: SyncState,
    /// The events this session applied that the backend has not confirmed (and those after
    /// them), inside an open savepoint: what a rollback undoes.
    span: Span,
    /// Changeset runs of the events copied with `state.db` that the backend has not
    /// confirmed (the leader's, recorded when it applied them), by their first event's
    /// position, each with its last event's.
    journal: BTreeMap<(u64, u32), ((u64, u32), Changeset)>,
    /// Whether the changesets that came with the copy of `state.db` (the leader's events
    /// the backend had not confirmed when this session started) were read into `journal`.
    /// They are read at the first rollback, not at the start: opening a session on a store
    /// with a long unconfirmed backlog stays O(1) in it, and most sessions never roll back.
    journal_seeded: bool,
    /// The leader's backend-confirmed head, from its last message.
    confirmed_head: GlobalSeq,
    leader_pending: usize,
    /// Bumped each time the session re-pushes its pending events; the leader fences by it.
    epoch: u64,
    subscriptions: Vec<SubscriptionEntry>,
    closed: Option<String>,
}

struct SubscriptionEntry {
    tables: BTreeSet<String>,
    /// Runs the query and sends the result; false once the receiver is gone.
    refresh: Box<dyn FnMut(&Connection) -> bool + Send>,
}

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// The session's last event.
    pub local_head: EventSeq,
    /// The leader's head as this session last heard it.
    pub leader_head: EventSeq,
    /// The leader's backend-confirmed head as this session last heard it.
    pub backend_confirmed_head: EventSeq,
    /// Events of this session the leader has not confirmed.
    pub pending: usize,
    /// Events of the leader the backend has not confirmed.
    pub leader_pending: usize,
}

impl ClientSession {
    /// Starts a session from the leader's seed; spawns the task applying leader payloads.
    pub(crate) fn start(
        seed: SessionSeed,
        schema: Arc<Schema>,
        client_id: String,
        leader: mpsc::UnboundedSender<Command>,
        counters: Arc<Counters>,
        entropy: &Entropy,
    ) -> ClientSession {
        let SessionSeed {
            key,
            connection,
            heads,
            mut messages,
        } = seed;
        let state = SyncState::at(heads.leader_head);
        let core = SessionCore {
            connection,
            state,
            span: Span::default(),
            journal: BTreeMap::new(),
            journal_seeded: false,
            confirmed_head: heads.confirmed_head,
            leader_pending: heads.leader_pending,
            epoch: 0,
            subscriptions: Vec::new(),
            closed: None,
        };
        let inner = Arc::new(SessionInner {
            schema,
            client_id,
            session_id: format!("s{key}-{}", entropy.alphanumeric(6)),
            key,
            leader,
            counters,
            core: Mutex::new(core),
            dropped: std::sync::atomic::AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        });
        let task_inner = inner.clone();
        tokio::spawn(async move {
            let inner = task_inner;
            loop {
                if inner.dropped.load(Ordering::Acquire) && inner.lock().state.pending.is_empty() {
                    break;
                }
                tokio::select! {
                    // Biased (the leader's messages first), so that one seed replays one
                    // interleaving.
                    biased;
                    message = messages.recv() => match message {
                        Some(message) => inner.on_leader_message(message),
                        None => break,
                    },
                    _ = inner.wake.notified() => {}
                }
            }
            // Dropping the task's `inner`, the last one once every handle is gone, tells the
            // leader the session closed (`SessionInner::drop`).
        });
        let handle = Arc::new(HandleGuard {
            inner: inner.clone(),
        });
        ClientSession {
            inner,
            _handle: handle,
        }
    }

    /// Commits an event: numbers it, materializes it (reads see it at once, inside the
    /// session's undo span), and queues it to the leader. Returns its sequence number.
    ///
    /// Fails, with nothing changed, when the event is not in the schema, its args do not fit
    /// the type its materializer decodes, its materializer fails, or the store was closed.
    pub fn commit<E: Event>(&self, event: &E) -> Result<EventSeq> {
        self.commit_dynamic(E::NAME, event)
    }

    /// Commits the event named `name` with `args`: [`ClientSession::commit`] for callers
    /// whose event names are data (a generic tool, an import), not types. The schema decides
    /// what the name means; args that do not decode as its type are refused.
    pub fn commit_dynamic(&self, name: &str, args: &impl Serialize) -> Result<EventSeq> {
        let inner = &self.inner;
        let args = serde_json::to_value(args).map_err(|error| {
            Error::invalid(format!("event {name}: args do not serialize: {error}"))
        })?;
        let definition = inner
            .schema
            .event_def(name)
            .ok_or_else(|| Error::invalid(format!("event {name} is not in the schema")))?;
        let client_only = definition.is_client_only();
        if definition.is_deprecated() && inner.schema.first_warning(name) {
            tracing::warn!(event = name, "committing a deprecated event");
        }
        // The args are decoded once, by the materializer below: args that do not fit its
        // type fail there, before any statement runs, with the same `InvalidArgs` error.
        let mut core = inner.lock();
        if let Some(reason) = &core.closed {
            return Err(Error::new(ErrorKind::Closed, reason.clone()));
        }
        let head = core.state.local_head;
        let pair = head.next_pair(client_only, head.generation);
        let event = EncodedEvent {
            seq: pair.seq,
            parent: pair.parent,
            name: name.to_owned(),
            args,
            client_id: inner.client_id.clone(),
            session_id: inner.session_id.clone(),
            meta: EventMeta::default(),
        };
        let applied = {
            let core = &mut *core;
            let connection = &core.connection;
            core.span.begin(connection)?;
            // No savepoint of the commit's own: `apply_event` leaves nothing of an event that
            // fails (its materializer runs before any statement, and several statements run
            // inside a savepoint of their own). One here would copy each page the commit
            // touches into SQLite's sub-journal, which grows until the span is released.
            match materialize::apply_event(connection, &inner.schema, &event, Record::Nothing) {
                Ok(applied) => applied,
                Err(error) => {
                    core.span.release_if_empty(connection)?;
                    return Err(Error::invalid(error.to_string()));
                }
            }
        };
        // Numbered on the local head, so the push always extends it. `push_local` keeps a
        // compact copy as pending; a copy of that one goes to the leader (a session that
        // commits faster than the leader admits queues it, and the compact form is a
        // fraction of the event's size), and one to the span.
        let events: Vec<PendingEvent> = match core
            .state
            .push_local(vec![event], MergeOptions::default())
        {
            LocalPush::Advance { .. } => core.state.pending.back().cloned().into_iter().collect(),
            LocalPush::Reject { .. } => {
                return Err(Error::internal(format!(
                    "session commit of {} was not after the head",
                    pair.seq
                )));
            }
        };
        if let Some(event) = events.first() {
            core.span.push(event.clone(), &applied.tables);
        }
        let epoch = core.epoch;
        inner.send_to_leader(epoch, head, events);
        inner.counters.committed.fetch_add(1, Ordering::Relaxed);
        core.notify(&applied.tables);
        Ok(pair.seq)
    }

    /// Runs a read query; each row becomes a `T` through serde (columns by name; integers,
    /// reals, text and nulls as JSON; blobs as arrays of bytes).
    ///
    /// Only reads: anything but one statement that reads (a write, with or without
    /// `RETURNING`, a transaction or savepoint statement, `ATTACH`, a PRAGMA that sets
    /// something) is refused with [`ErrorKind::Invalid`], naming the statement, and nothing
    /// runs. A write here would make the read model diverge from the events.
    pub fn query<T: DeserializeOwned>(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<T>> {
        let core = self.inner.lock();
        let rows = rows::read_json(&core.connection, sql, params)?;
        rows_as::<T>(sql, rows)
    }

    /// A reactive query: yields the result now, then again whenever a table the query reads
    /// changes (by a commit of this session or an event from the leader), and not when
    /// unrelated tables change. Refuses what [`ClientSession::query`] refuses.
    pub fn subscribe<T: DeserializeOwned + Send + 'static>(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Subscription<T>> {
        let mut core = self.inner.lock();
        let tables = rows::tables_read(&core.connection, sql)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let sql = sql.to_owned();
        let params = params.to_vec();
        let refresh = move |connection: &Connection| {
            let rows = rows::read_json(connection, &sql, &params)
                .map_err(Error::from)
                .and_then(|rows| rows_as::<T>(&sql, rows));
            sender.send(rows).is_ok()
        };
        refresh(&core.connection);
        core.subscriptions.push(SubscriptionEntry {
            tables,
            refresh: Box::new(refresh),
        });
        Ok(Subscription { receiver })
    }

    /// This session's sync position.
    pub fn sync_status(&self) -> SyncStatus {
        let core = self.inner.lock();
        SyncStatus {
            local_head: core.state.local_head,
            leader_head: core.state.upstream_head,
            backend_confirmed_head: EventSeq::from(core.confirmed_head),
            pending: core.state.pending.len(),
            leader_pending: core.leader_pending,
        }
    }

    /// The events this session committed that the leader has not confirmed yet.
    pub fn pending(&self) -> Vec<EncodedEvent> {
        self.inner.lock().state.pending.to_events()
    }

    /// Why this session is closed, or `None` while it is open. The leader closes its
    /// sessions when the store shuts down or stops, and when it reset the local data to
    /// follow a replaced backend (`on_backend_id_mismatch = reset`): the session's read model
    /// holds the old state then, and a new session must be opened. A closed session's
    /// commits fail with [`ErrorKind::Closed`] and this reason.
    pub fn closed(&self) -> Option<String> {
        self.inner.lock().closed.clone()
    }

    /// This session's id.
    pub fn session_id(&self) -> &str {
        &self.inner.session_id
    }
}

/// The one place a session tells its leader it closed: when its last handle and its task are
/// gone (also when the runtime dropped the task without running it to the end).
impl Drop for SessionInner {
    fn drop(&mut self) {
        let _ = self
            .leader
            .send(Command::CloseSession { session: self.key });
    }
}

impl SessionInner {
    fn lock(&self) -> MutexGuard<'_, SessionCore> {
        // A panic while holding the lock leaves nothing half-written (SQLite savepoints), so
        // the state is still usable.
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `events`, numbered on `base`, to the leader.
    fn send_to_leader(&self, epoch: u64, base: EventSeq, events: Vec<PendingEvent>) {
        if events.is_empty() {
            return;
        }
        let _ = self.leader.send(Command::SessionPush(PushRequest {
            session: self.key,
            epoch,
            base,
            events,
        }));
    }

    fn on_leader_message(&self, message: SessionMessage) {
        let mut core = self.lock();
        match message {
            SessionMessage::Closed { reason } => {
                if core.closed.is_none() {
                    // The leader admits nothing of this session any more: account for what
                    // is pending here, so that `Store::sync` does not wait for it.
                    self.counters
                        .abandoned
                        .fetch_add(core.state.pending.len() as u64, Ordering::Relaxed);
                }
                core.closed = Some(reason);
            }
            SessionMessage::Rejected { epoch, reason } => {
                tracing::debug!(session = %self.session_id, epoch, %reason, "leader refused a push");
                // A stopped session re-pushes nothing: its pending events can no longer be
                // numbered on the leader's head, and the leader would refuse them forever.
                if core.closed.is_none() && epoch >= core.epoch && !core.state.pending.is_empty() {
                    // Everything the leader had sent before refusing is applied by now, so the
                    // pending events are numbered on the latest head: push them all again.
                    core.epoch = epoch + 1;
                    let (epoch, base) = (core.epoch, core.state.upstream_head);
                    self.send_to_leader(epoch, base, core.state.pending.iter().cloned().collect());
                }
            }
            SessionMessage::Payload {
                payload,
                heads,
                restored,
            } => {
                if let Err(error) = self.apply_payload(&mut core, payload, heads, &restored) {
                    let report = format!("{error:#}");
                    tracing::error!(session = %self.session_id, error = %report, "session stopped");
                    core.closed = Some(report);
                }
            }
        }
    }

    fn apply_payload(
        &self,
        core: &mut SessionCore,
        payload: Payload,
        heads: LeaderHeads,
        restored: &[EncodedEvent],
    ) -> Result<()> {
        // The journal was last trimmed to this head (at the end of the previous payload).
        let trimmed_to = core.confirmed_head;
        core.confirmed_head = heads.confirmed_head;
        core.leader_pending = heads.leader_pending;
        // Planned, then applied once the events are materialized: the session's pending
        // events are not copied (see `SyncState::plan`).
        let (merged, change) = core
            .state
            .plan(payload, MergeOptions::default())
            .map_err(|violation| Error::internal(format!("session: {violation}")))?;
        let mut tables = BTreeSet::new();
        match merged {
            Merged::Advance { new_events, .. } => {
                self.materialize(core, &new_events, &mut tables)?;
                core.state.apply(change);
            }
            Merged::Rebase {
                new_events,
                rollback_events,
            } => {
                self.roll_back(core, &rollback_events, trimmed_to, restored, &mut tables)?;
                self.materialize(core, &new_events, &mut tables)?;
                core.state.apply(change);
                if !core.state.pending.is_empty() {
                    core.epoch += 1;
                    let (epoch, base) = (core.epoch, core.state.upstream_head);
                    self.send_to_leader(epoch, base, core.state.pending.iter().cloned().collect());
                }
            }
            Merged::Reject { .. } => {
                return Err(Error::internal("session: a leader payload was rejected"));
            }
        }
        // Commit what the backend confirmed, and drop the runs of copied events it confirmed
        // whole, oldest first: the work is in proportion to what is dropped.
        core.span
            .settle(&core.connection, &self.schema, heads.confirmed_head.0)?;
        let confirmed = (heads.confirmed_head.0, 0);
        while let Some(entry) = core.journal.first_entry()
            && entry.get().0 <= confirmed
        {
            entry.remove();
        }
        core.notify(&tables);
        Ok(())
    }

    /// Rolls back `events`, a tail of what the read model holds: those in the span by its
    /// savepoint, those copied with `state.db` (before the span) by the leader's changeset
    /// runs that hold them, each undone whole; the events of a run before `events` are then
    /// applied again from `restored` (the leader did the same).
    fn roll_back(
        &self,
        core: &mut SessionCore,
        events: &[EncodedEvent],
        trimmed_to: GlobalSeq,
        restored: &[EncodedEvent],
        tables: &mut BTreeSet<String>,
    ) -> Result<()> {
        let Some(from) = events.iter().map(|event| event.seq.position()).min() else {
            return Ok(());
        };
        let span_start = core.span.start();
        let (undone, touched) = core.span.roll_back(&core.connection, &self.schema, from)?;
        tables.extend(touched);
        let copied: Vec<&EncodedEvent> = events
            .iter()
            .filter(|event| span_start.is_none_or(|start| event.seq.position() < start))
            .collect();
        if undone + copied.len() != events.len() {
            return Err(Error::internal(format!(
                "session: asked to roll back {} events from {}, but {undone} of them were applied \
                 here since the session started and {} before",
                events.len(),
                EventSeq::new(from.0, from.1, 0),
                copied.len()
            )));
        }
        if copied.is_empty() {
            return Ok(());
        }
        seed_journal(core, trimmed_to)?;
        let (Some(from), Some(to)) = (
            copied.iter().map(|event| event.seq.position()).min(),
            copied.iter().map(|event| event.seq.position()).max(),
        ) else {
            return Ok(());
        };
        // The runs holding an event at or after `from`: the first whose last event is there,
        // and every one after it.
        let first = core
            .journal
            .iter()
            .find(|(_, (last, _))| *last >= from)
            .map(|(first, _)| *first);
        let undone = match first {
            Some(first) => core.journal.split_off(&first),
            None => BTreeMap::new(),
        };
        if undone
            .values()
            .next_back()
            .is_none_or(|(last, _)| *last < to)
        {
            return Err(Error::internal(format!(
                "session: no changeset to roll back {}",
                EventSeq::new(to.0, to.1, 0)
            )));
        }
        // The events of the first run before `from`, undone with it, to apply again.
        let again: Vec<EncodedEvent> = match first {
            Some(first) if first < from => {
                let again: Vec<EncodedEvent> = restored
                    .iter()
                    .filter(|event| (first..from).contains(&event.seq.position()))
                    .cloned()
                    .collect();
                if again.first().map(|event| event.seq.position()) != Some(first) {
                    return Err(Error::internal(format!(
                        "session: the leader did not restore {} before {}",
                        EventSeq::new(first.0, first.1, 0),
                        EventSeq::new(from.0, from.1, 0)
                    )));
                }
                again
            }
            _ => Vec::new(),
        };
        let changesets: Vec<Changeset> = undone
            .into_values()
            .map(|(_, changeset)| changeset)
            .collect();
        let refs: Vec<&Changeset> = changesets.iter().collect();
        let tx = core
            .connection
            .unchecked_transaction()
            .map_err(sqlite_error)?;
        tables.extend(
            materialize::rollback(&tx, &refs)
                .map_err(|error| Error::internal(format!("session: {error}")))?,
        );
        tx.commit().map_err(sqlite_error)?;
        self.materialize(core, &again, tables)
    }

    /// Materializes leader events as one batch (all or none). Those the backend has not
    /// confirmed (the leader may still roll them back), and any after them, go into the span.
    fn materialize(
        &self,
        core: &mut SessionCore,
        events: &[EncodedEvent],
        tables: &mut BTreeSet<String>,
    ) -> Result<()> {
        let confirmed = core.confirmed_head;
        let is_final =
            |event: &EncodedEvent| event.seq.global <= confirmed && !event.is_client_only();
        // The events before the first one that may be rolled back need no span, unless one
        // is open already (everything after a span's start is in it).
        let first_kept = if core.span.is_empty() {
            events
                .iter()
                .position(|event| !is_final(event))
                .unwrap_or(events.len())
        } else {
            0
        };
        let (settled, kept) = events.split_at(first_kept);
        let connection = &core.connection;
        if !settled.is_empty() {
            run_cached(connection, "SAVEPOINT eventsync_batch")?;
            let result = settled.iter().try_for_each(|event| {
                let applied = self.apply(connection, event)?;
                tables.extend(applied.tables);
                Ok(())
            });
            finish_batch(connection, result)?;
        }
        if kept.is_empty() {
            return Ok(());
        }
        // The span's savepoint first, the batch's inside it: releasing the batch must not
        // release the span.
        core.span.begin(connection)?;
        let span_len = core.span.len();
        run_cached(connection, "SAVEPOINT eventsync_batch")?;
        let result = kept.iter().try_for_each(|event| {
            let applied = self.apply(connection, event)?;
            tables.extend(applied.tables.iter().cloned());
            core.span
                .push(PendingEvent::from_event(event, None), &applied.tables);
            Ok(())
        });
        let outcome = finish_batch(connection, result);
        if outcome.is_err() {
            core.span.truncate(connection, span_len)?;
        }
        outcome
    }

    /// Applies one leader event, without a changeset.
    fn apply(&self, connection: &Connection, event: &EncodedEvent) -> Result<materialize::Applied> {
        materialize::apply_event(connection, &self.schema, event, Record::Nothing)
            .map_err(|error| Error::new(ErrorKind::Invalid, format!("session: {error}")))
    }
}

impl SessionCore {
    fn notify(&mut self, tables: &BTreeSet<String>) {
        if tables.is_empty() {
            return;
        }
        let connection = &self.connection;
        self.subscriptions
            .retain_mut(|entry| entry.tables.is_disjoint(tables) || (entry.refresh)(connection));
    }
}

/// A stream of query results, from [`ClientSession::subscribe`].
pub struct Subscription<T> {
    receiver: mpsc::UnboundedReceiver<Result<Vec<T>>>,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("closed", &self.receiver.is_closed())
            .finish_non_exhaustive()
    }
}

impl<T> futures::Stream for Subscription<T> {
    type Item = Result<Vec<T>>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(context)
    }
}

/// Reads the changesets copied with `state.db` into the journal, once (see
/// `SessionCore::journal_seeded`): as if they had been there from the start, so those the
/// journal would have dropped by now (up to `trimmed_to`, the confirmed head it was last
/// trimmed to) are left out, and a position the journal holds keeps its own (none can: every
/// event this session materialized since it started is numbered after the copy's).
fn seed_journal(core: &mut SessionCore, trimmed_to: GlobalSeq) -> Result<()> {
    if core.journal_seeded {
        return Ok(());
    }
    let copied = crate::leader::db::recorded_runs(&core.connection).map_err(sqlite_error)?;
    let confirmed = (trimmed_to.0, 0);
    for run in copied {
        let last = run.last.position();
        if last > confirmed {
            core.journal
                .entry(run.first)
                .or_insert((last, run.changeset));
        }
    }
    core.journal_seeded = true;
    Ok(())
}

/// Ends a batch's savepoint: released when `result` is Ok, else rolled back (the batch leaves
/// nothing) and `result`'s error returned.
fn finish_batch(connection: &Connection, result: Result<()>) -> Result<()> {
    match result {
        Ok(()) => run_cached(connection, "RELEASE eventsync_batch"),
        Err(error) => {
            connection
                .execute_batch("ROLLBACK TO eventsync_batch; RELEASE eventsync_batch")
                .map_err(sqlite_error)?;
            Err(error)
        }
    }
}

/// A query's rows (JSON objects) as `T`s.
fn rows_as<T: DeserializeOwned>(sql: &str, rows: Vec<serde_json::Value>) -> Result<Vec<T>> {
    rows.into_iter()
        .map(|row| {
            serde_json::from_value(row).map_err(|error| {
                Error::invalid(format!(
                    "query {sql:?}: a row does not fit the result type: {error}"
                ))
            })
        })
        .collect()
}

fn sqlite_error(error: rusqlite::Error) -> Error {
    Error::internal(format!("session database: {error}"))
}
