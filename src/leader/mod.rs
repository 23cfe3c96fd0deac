//! The leader: one per client and store. It owns `eventlog.db` and `state.db`, admits the
//! sessions' pushes, materializes them, fans results out to every session, pushes to the
//! backend with group commit (one segment per push, one push in flight), pulls from the
//! backend, and rebases its pending events when the backend has moved.
//!
//! It runs as one task (an actor) that owns the databases; sessions, the pull task and the
//! push futures talk to it through channels, so the databases need no lock and every change
//! of the leader's [`SyncState`] happens in one place. Pulled pages have precedence over
//! session pushes, as in LiveStore.

mod admit;
pub(crate) mod db;
pub(crate) mod identity;
mod messages;
mod pull;
mod push;
mod reseed;

pub use messages::StoreStats;
pub(crate) use messages::{
    Command, Counters, LeaderHeads, PushRequest, SessionKey, SessionMessage, SessionSeed,
};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use eventsync_backends::{BackendError, Entropy, GlobalEvent, GlobalSeq, SyncBackend};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::data_dir::DirLock;
use crate::error::{Error, ErrorKind};
use crate::event::EncodedEvent;
use crate::materialize::Record;
use crate::schema::Schema;
use crate::seq::EventSeq;
use crate::settings::Tuning;
use crate::sync_state::{MergeOptions, MergeResult, Payload, SyncState, merge};
use db::{LeaderDb, NewEvent};
use identity::{AtOpen, Identity};
use pull::{Backoff, PullEvent, Restart};
use reseed::ReseedError;

struct SessionLink {
    sender: mpsc::UnboundedSender<SessionMessage>,
    /// Pushes with a lower epoch are stale: an earlier push of this session was refused, and
    /// a later event of the old numbering must never overtake it (LiveStore's prefix fence).
    min_epoch: u64,
}

struct SyncWaiter {
    reply: oneshot::Sender<Result<(), Error>>,
    committed: u64,
    pull_epoch: u64,
    pulled_current: bool,
}

struct PushDone {
    batch: Vec<GlobalEvent>,
    result: Result<(), BackendError>,
}

/// What the leader's background tasks report when they end.
enum TaskDone {
    /// A push to the backend.
    Push(PushDone),
    /// `ignore`'s reseed of a new store (see `reseed.rs`).
    Reseeded(Result<(), ReseedError>),
}

/// The sync side of an online leader.
struct Online {
    backend: Arc<dyn SyncBackend>,
    restarts: mpsc::UnboundedSender<Restart>,
    pull_epoch: u64,
    push_in_flight: bool,
    push_retry_at: Option<Instant>,
    push_backoff: Backoff,
    tasks_done: mpsc::UnboundedSender<TaskDone>,
    /// The recorded backend id.
    backend_id: Option<String>,
    /// Whether `backend_id` is known to be the backend's (see `identity.rs`).
    identity: Identity,
}

/// The leader actor's state.
pub(crate) struct Leader {
    schema: Arc<Schema>,
    db: LeaderDb,
    state: SyncState,
    state_head: EventSeq,
    /// Ordered, so that every walk over the sessions (advances, close) has one order.
    sessions: BTreeMap<SessionKey, SessionLink>,
    next_session: SessionKey,
    online: Option<Online>,
    waiters: Vec<SyncWaiter>,
    counters: Arc<Counters>,
    tuning: Tuning,
    closed: Option<String>,
    /// The data dir's lock. The leader holds it, not the store handle: a dropped handle
    /// leaves the leader running until its sessions' commits are admitted, and a second
    /// leader on the same files must wait until then. Last field: dropped after `db`.
    _lock: DirLock,
}

/// Everything [`Leader::boot`] needs.
pub(crate) struct BootArgs {
    pub schema: Arc<Schema>,
    pub db: LeaderDb,
    pub backend: Option<Arc<dyn SyncBackend>>,
    /// Where the open left the backend's identity.
    pub at_open: AtOpen,
    pub counters: Arc<Counters>,
    pub tuning: Tuning,
    pub lock: DirLock,
    /// Where retry jitter comes from.
    pub entropy: Entropy,
}

impl Leader {
    /// Builds the leader's sync state from its databases and starts it; returns the command
    /// channel. The task ends after a `Shutdown` command or when every sender is dropped.
    pub(crate) fn boot(
        args: BootArgs,
    ) -> Result<(mpsc::UnboundedSender<Command>, tokio::task::JoinHandle<()>), Error> {
        let BootArgs {
            schema,
            mut db,
            backend,
            at_open,
            counters,
            tuning,
            lock,
            entropy,
        } = args;
        db.level_state(&schema).map_err(db_error)?;
        let (backend_head, _) = db.sync_status().map_err(db_error)?;
        let upstream_head = EventSeq::global(backend_head.0);
        let local_head = db.eventlog_head().map_err(db_error)?;
        if upstream_head.is_after(&local_head) {
            return Err(Error::new(
                ErrorKind::Data,
                format!(
                    "eventlog.db: backend-confirmed head {upstream_head} is after the last event {local_head}"
                ),
            ));
        }
        let pending = db.events_after(upstream_head).map_err(db_error)?;
        let state = SyncState {
            pending,
            upstream_head,
            local_head: EventSeq::max_position(upstream_head, local_head),
        };
        let state_head = db.state_head().map_err(db_error)?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (pull_tx, pull_rx) = mpsc::channel(4);
        let (tasks_done, tasks_done_rx) = mpsc::unbounded_channel();
        let online = backend.map(|backend| {
            let (restarts, restart_rx) = mpsc::unbounded_channel();
            let start = Restart {
                cursor: backend_head,
                epoch: 0,
                reread_id: !at_open.verified,
            };
            let backoff = Backoff::new(entropy.fork());
            tokio::spawn(pull::run(
                backend.clone(),
                start,
                restart_rx,
                pull_tx,
                backoff,
            ));
            Online {
                backend,
                restarts,
                pull_epoch: 0,
                push_in_flight: false,
                push_retry_at: None,
                push_backoff: Backoff::new(entropy.fork()),
                tasks_done,
                backend_id: at_open.backend_id,
                identity: if at_open.verified {
                    Identity::Verified
                } else {
                    Identity::Unverified
                },
            }
        });
        let mut leader = Leader {
            schema,
            db,
            state,
            state_head,
            sessions: BTreeMap::new(),
            next_session: 1,
            online,
            waiters: Vec::new(),
            counters,
            tuning,
            closed: None,
            _lock: lock,
        };
        if at_open.reseed && leader.online.is_some() {
            leader.start_reseed();
        }
        let task = tokio::spawn(leader.run(command_rx, pull_rx, tasks_done_rx));
        Ok((commands, task))
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut pulled: mpsc::Receiver<PullEvent>,
        mut tasks_done: mpsc::UnboundedReceiver<TaskDone>,
    ) {
        loop {
            self.maybe_start_push();
            self.maybe_recheck();
            let retry_at = self.online.as_ref().and_then(|online| online.push_retry_at);
            tokio::select! {
                biased;
                Some(event) = pulled.recv(), if self.online.is_some() && self.closed.is_none() => {
                    self.on_pull_event(event);
                }
                Some(done) = tasks_done.recv() => match done {
                    TaskDone::Push(done) => self.on_push_done(done),
                    TaskDone::Reseeded(result) => self.on_reseeded(result),
                },
                _ = sleep_until(retry_at), if retry_at.is_some() => {
                    if let Some(online) = &mut self.online {
                        online.push_retry_at = None;
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.drain(&mut commands);
                        self.close("the store was shut down");
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => {
                        let mut batch = vec![command];
                        while let Ok(more) = commands.try_recv() {
                            let stop = matches!(more, Command::Shutdown { .. });
                            batch.push(more);
                            if stop { break; }
                        }
                        let mut shutdown = None;
                        self.on_commands(batch, &mut shutdown);
                        if let Some(reply) = shutdown {
                            self.drain(&mut commands);
                            self.close("the store was shut down");
                            let _ = reply.send(());
                            return;
                        }
                    }
                    None => {
                        self.close("the store was dropped");
                        return;
                    }
                },
            }
            self.check_waiters();
        }
    }

    /// Processes what is still queued (session pushes are persisted; other requests answered).
    fn drain(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) {
        let mut batch = Vec::new();
        while let Ok(command) = commands.try_recv() {
            batch.push(command);
        }
        let mut ignored = None;
        self.on_commands(batch, &mut ignored);
        if let Some(reply) = ignored {
            let _ = reply.send(());
        }
    }

    fn on_commands(&mut self, commands: Vec<Command>, shutdown: &mut Option<oneshot::Sender<()>>) {
        let mut pushes = Vec::new();
        for command in commands {
            match command {
                Command::SessionPush(push) => pushes.push(push),
                other => {
                    // Keep order: admit the pushes queued before any other request.
                    self.admit(std::mem::take(&mut pushes));
                    match other {
                        Command::OpenSession { reply } => {
                            let _ = reply.send(self.open_session());
                        }
                        Command::CloseSession { session } => {
                            self.sessions.remove(&session);
                        }
                        Command::Sync { committed, reply } => self.on_sync(committed, reply),
                        Command::Status { reply } => {
                            let _ = reply.send(self.heads());
                        }
                        Command::Events { reply } => {
                            let _ = reply.send(self.db.all_events().map_err(db_error));
                        }
                        Command::Query { sql, reply } => {
                            let rows = crate::rows::read_json(self.db.connection(), &sql, &[]);
                            let _ = reply.send(rows.map_err(Error::from));
                        }
                        Command::Shutdown { reply } => *shutdown = Some(reply),
                        Command::SessionPush { .. } => unreachable!("handled above"),
                    }
                }
            }
        }
        self.admit(pushes);
    }

    fn heads(&self) -> LeaderHeads {
        LeaderHeads {
            leader_head: self.state.local_head,
            backend_head: GlobalSeq(self.state.upstream_head.global),
            leader_pending: self.synced_pending(),
        }
    }

    fn synced_pending(&self) -> usize {
        self.state
            .pending
            .iter()
            .filter(|event| !event.is_client_only())
            .count()
    }

    fn send(&mut self, session: SessionKey, message: SessionMessage) {
        if let Some(link) = self.sessions.get(&session)
            && link.sender.send(message).is_err()
        {
            self.sessions.remove(&session);
        }
    }

    fn broadcast(&mut self, payload: Payload) {
        let heads = self.heads();
        self.sessions.retain(|_, link| {
            link.sender
                .send(SessionMessage::Payload {
                    payload: payload.clone(),
                    heads,
                })
                .is_ok()
        });
    }

    fn on_pull_event(&mut self, event: PullEvent) {
        match event {
            PullEvent::BackendId(id) => self.on_backend_id(id),
            PullEvent::Page { .. }
                if self
                    .online
                    .as_ref()
                    .is_some_and(|online| online.identity != Identity::Verified) =>
            {
                // From a store this leader has not reconciled with (yet): the pull is
                // restarted once it has.
            }
            PullEvent::Page { epoch, page } => {
                let upstream = self.state.upstream_head.global;
                let fresh: Vec<GlobalEvent> = page
                    .events
                    .into_iter()
                    .filter(|event| event.seq_num.0 > upstream)
                    .collect();
                if let Some(first) = fresh.first()
                    && first.parent_seq_num.0 != upstream
                {
                    // Pages queued before a restart can skip ahead of what we hold: pull again.
                    self.restart_pull();
                    return;
                }
                if !fresh.is_empty() {
                    self.counters
                        .pulled
                        .fetch_add(fresh.len() as u64, Ordering::Relaxed);
                    self.integrate_upstream(
                        fresh.into_iter().map(EncodedEvent::from_global).collect(),
                    );
                }
                if page.page_info == eventsync_backends::PageInfo::NoMore {
                    for waiter in &mut self.waiters {
                        if epoch >= waiter.pull_epoch {
                            waiter.pulled_current = true;
                        }
                    }
                }
            }
            PullEvent::Failed {
                error: error @ BackendError::BackendIdMismatch { .. },
            } => self.on_identity_lost(&error),
            PullEvent::Failed { error, .. } => {
                // Transient failures are routine (offline); `sync()` waiters get the error.
                if error.is_retryable() {
                    tracing::info!(%error, "pull from the backend failed; retrying");
                } else {
                    tracing::warn!(%error, "pull from the backend failed; retrying");
                }
                self.fail_waiters(&Error::from(error));
            }
        }
    }

    /// Merges events the backend confirmed (pulled, or our own push that succeeded) into
    /// the leader: confirms pending events, appends new ones, or rolls back and replays.
    fn integrate_upstream(&mut self, incoming: Vec<EncodedEvent>) {
        let Some(last) = incoming.last() else { return };
        let backend_head = GlobalSeq(last.seq.global);
        let options = MergeOptions {
            ignore_client_only: true,
        };
        let result = match merge(
            &self.state,
            Payload::UpstreamAdvance {
                new_events: incoming,
            },
            options,
        ) {
            Ok(result) => result,
            Err(violation) => return self.fail_internal(&violation.to_string()),
        };
        match result {
            MergeResult::Advance {
                new_state,
                mut new_events,
                ..
            } => {
                let state_head = new_events
                    .last()
                    .map(|event| EventSeq::max_position(self.state_head, event.seq));
                let state_head = state_head.unwrap_or(self.state_head);
                let mut items: Vec<NewEvent<'_>> = new_events
                    .iter_mut()
                    .map(|event| NewEvent {
                        event,
                        record: Record::Nothing,
                    })
                    .collect();
                if let Err(error) = self.db.apply_batch(
                    &self.schema,
                    &[],
                    &mut items,
                    state_head,
                    Some(backend_head),
                ) {
                    return self.fail(db_error(error));
                }
                self.state = new_state;
                self.state_head = state_head;
                self.broadcast(Payload::UpstreamAdvance { new_events });
            }
            MergeResult::Rebase {
                new_state,
                mut new_events,
                rollback_events,
            } => {
                self.counters.rebases.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    rolled_back = rollback_events.len(),
                    new = new_events.len(),
                    head = %new_state.local_head,
                    "rebasing pending events on the backend's new head"
                );
                let upstream_count = new_events.len() - new_state.pending.len();
                let state_head = new_events
                    .last()
                    .map(|event| event.seq)
                    .unwrap_or(self.state_head);
                let mut items: Vec<NewEvent<'_>> = new_events
                    .iter_mut()
                    .enumerate()
                    .map(|(index, event)| NewEvent {
                        event,
                        record: if index < upstream_count {
                            Record::Nothing
                        } else {
                            Record::Changeset
                        },
                    })
                    .collect();
                if let Err(error) = self.db.apply_batch(
                    &self.schema,
                    &rollback_events,
                    &mut items,
                    state_head,
                    Some(backend_head),
                ) {
                    return self.fail(db_error(error));
                }
                self.state = new_state;
                for (pending, applied) in self
                    .state
                    .pending
                    .iter_mut()
                    .zip(&new_events[upstream_count..])
                {
                    pending.meta.changeset = applied.meta.changeset.clone();
                }
                self.state_head = state_head;
                if let Some(online) = &mut self.online {
                    online.push_retry_at = None;
                    online.push_backoff.reset();
                }
                self.broadcast(Payload::UpstreamRebase {
                    rollback_events,
                    new_events,
                });
            }
            MergeResult::Reject { .. } => self.fail_internal("an upstream advance was rejected"),
        }
    }

    fn restart_pull(&mut self) {
        self.restart_pull_with(false);
    }

    /// Restarts the pull from the backend-confirmed head; with `reread_id`, the pull task
    /// first re-reads the backend's id and reports it.
    fn restart_pull_with(&mut self, reread_id: bool) {
        if let Some(online) = &mut self.online {
            online.pull_epoch += 1;
            let cursor = GlobalSeq(self.state.upstream_head.global);
            let _ = online.restarts.send(Restart {
                cursor,
                epoch: online.pull_epoch,
                reread_id,
            });
        }
    }

    fn on_sync(&mut self, committed: u64, reply: oneshot::Sender<Result<(), Error>>) {
        if let Some(reason) = &self.closed {
            let _ = reply.send(Err(Error::new(ErrorKind::Closed, reason.clone())));
            return;
        }
        if self.online.is_none() {
            let _ = reply.send(Err(Error::invalid(
                "the store is offline: open it online to sync",
            )));
            return;
        }
        self.restart_pull();
        let pull_epoch = self
            .online
            .as_ref()
            .map(|online| online.pull_epoch)
            .unwrap_or(0);
        self.waiters.push(SyncWaiter {
            reply,
            committed,
            pull_epoch,
            pulled_current: false,
        });
    }

    fn check_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let idle = self.synced_pending() == 0
            && self
                .online
                .as_ref()
                .is_some_and(|online| !online.push_in_flight);
        if !idle {
            return;
        }
        // Events of sessions the leader closed were never admitted, and never will be.
        let admitted = self.counters.admitted.load(Ordering::Relaxed)
            + self.counters.abandoned.load(Ordering::Relaxed);
        let (done, waiting): (Vec<_>, Vec<_>) = self
            .waiters
            .drain(..)
            .partition(|waiter| waiter.pulled_current && admitted >= waiter.committed);
        self.waiters = waiting;
        for waiter in done {
            let _ = waiter.reply.send(Ok(()));
        }
    }

    fn fail_waiters(&mut self, error: &Error) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter
                .reply
                .send(Err(Error::new(error.kind(), error.to_string())));
        }
    }

    fn fail_internal(&mut self, message: &str) {
        self.fail(Error::internal(format!("leader: {message}")));
    }

    /// Stops the leader after an error it cannot recover from; the data on disk is kept.
    fn fail(&mut self, error: Error) {
        tracing::error!(%error, "leader stopped");
        self.fail_waiters(&error);
        self.close(&error.to_string());
    }

    fn close(&mut self, reason: &str) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason.to_owned());
        for waiter in self.waiters.drain(..) {
            let _ = waiter
                .reply
                .send(Err(Error::new(ErrorKind::Closed, reason.to_owned())));
        }
        for link in self.sessions.values() {
            let _ = link.sender.send(SessionMessage::Closed {
                reason: reason.to_owned(),
            });
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn db_error(error: db::DbError) -> Error {
    let kind = match &error {
        db::DbError::Format { .. } => ErrorKind::Data,
        db::DbError::Materialize(_) | db::DbError::Event { .. } => ErrorKind::Invalid,
        db::DbError::Sqlite { .. } => ErrorKind::Data,
    };
    Error::new(kind, error.to_string()).with_source(error)
}
