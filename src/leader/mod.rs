//! The leader: one per client and store. It owns `eventlog.db` and `state.db`, admits the
//! sessions' pushes, materializes them, fans results out to every session, pushes to the
//! backend with group commit (one segment per push, one push in flight), pulls from the
//! backend, and rebases its pending events when the backend has moved.
//!
//! It runs as one task (an actor) that owns the databases; sessions, the pull task and the
//! push futures talk to it through channels, so the databases need no lock and every change
//! of the leader's [`SyncState`] happens in one place. Pulled pages have precedence over
//! session pushes, as in LiveStore.
//!
//! Each wake-up takes everything that is ready (pulled pages, ended pushes, session
//! commands), merges each in turn as before (one core step per admitted drain, per page, per
//! confirmed push), but stages the steps in one open transaction per file and commits them
//! once ([`Leader::make_durable`]): one fsync for all of it. Sessions hear of a step, and a
//! request queued behind it is answered, only after that commit.
//!
//! # Layout
//!
//! - `mod.rs`: the actor ([`Leader`]): boot, the run loop, one durable commit per wake-up,
//!   pulled pages, backend failures, shutdown and close.
//! - `step.rs`: the core step ([`Leader::apply_step`]: one durable batch, changesets onto
//!   pending, the state head, every session told) that admission, advance and rebase share,
//!   and merging what the backend confirmed.
//! - `waiters.rs`: callers of `Store::sync` and when they are answered.
//! - `task.rs`: [`LeaderTask`], where the actor runs (its own thread, or inline).
//! - `admit.rs`: session pushes: the pure admission check with its typed refusal, new sessions.
//! - `push.rs`: group commit to the backend and the outcome of a push.
//! - `race.rs`: lost races: the jittered wait after one, and pulled events held meanwhile.
//! - `pull.rs`: the pull task and the retry backoff.
//! - `identity.rs`: the backend id policy, at open and while running.
//! - `reseed.rs`: `ignore`'s copy of the confirmed events into a new store.
//! - `db.rs`: the two SQLite files and every statement on them.
//! - `messages.rs`: what flows between the leader, its sessions and the store handle.
//!
//! # Where blocking SQLite work runs, and why
//!
//! Every SQLite call of the leader (materializing a batch, rolling back, reading events)
//! runs inside the actor, which owns the connections, so no lock and no second copy of the
//! state are needed. Where the actor runs is [`Tuning::leader_thread`]:
//!
//! - `true` (the default): an OS thread of its own, with a current-thread runtime
//!   ([`LeaderTask`]), so a wake-up's work and its one commit (one fsync of `eventlog.db`'s
//!   WAL) never block a worker of the caller's runtime. Push, pull and reseed tasks still run
//!   on the caller's runtime (`Leader::io`, a captured `Handle`); channels connect the two.
//! - `false` (inline): a task on the caller's runtime, blocking its worker for that time.
//!   The seeded simulation selects it: it runs every client on one current-thread runtime,
//!   where one task at a time gives one interleaving per seed. So do tests on a paused
//!   clock, whose runtime advances virtual time whenever its own tasks all wait (work on
//!   another thread would let their timeouts fire early).

mod admit;
pub(crate) mod db;
pub(crate) mod identity;
mod lag;
mod messages;
mod pack;
mod pull;
mod pulled;
mod push;
mod race;
mod reseed;
mod step;
mod task;
mod waiters;

pub use messages::StoreStats;
pub(crate) use messages::{
    Command, Counters, LeaderHeads, PushRequest, SessionKey, SessionMessage, SessionSeed,
};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use eventsync_backends::{BackendError, Entropy, GlobalEvent, GlobalSeq, SyncBackend};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

use crate::data_dir::DirLock;
use crate::error::{Error, ErrorKind};
use crate::event::EncodedEvent;
use crate::schema::Schema;
use crate::seq::EventSeq;
use crate::settings::Tuning;
use crate::sync_state::{Payload, SyncState};
use db::LeaderDb;
use identity::{AtOpen, Identity};
use pull::{Backoff, PullEvent, Restart};
use reseed::ReseedError;
use step::NextState;
pub(crate) use task::LeaderTask;
use waiters::SyncWaiter;

/// A session the leader serves.
struct SessionLink {
    /// Where the leader's payloads, refusals and the close notice go.
    sender: mpsc::UnboundedSender<SessionMessage>,
    /// Pushes with a lower epoch are stale: an earlier push of this session was refused, and
    /// a later event of the old numbering must never overtake it (LiveStore's prefix fence).
    min_epoch: u64,
}

/// A push to the backend that ended.
struct PushDone {
    /// The events it carried, in wire form.
    batch: Vec<GlobalEvent>,
    /// What the backend answered.
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
    /// The backend every client of the store syncs through.
    backend: Arc<dyn SyncBackend>,
    /// Restarts the pull task (from the backend-confirmed head, tagged with a pull epoch).
    restarts: mpsc::UnboundedSender<Restart>,
    /// The epoch of the latest pull restart; pages carry the epoch of the pull they came from.
    pull_epoch: u64,
    /// One push at a time: set while a push task runs, cleared by its `TaskDone::Push`.
    push_in_flight: bool,
    /// No push before this instant (after a failure, or a `ServerAhead` until the pull
    /// catches up); `None` when a push may start now.
    push_retry_at: Option<Instant>,
    /// Delays between failed pushes.
    push_backoff: Backoff,
    /// Pushes wait until a pull of this epoch or a later one reached the backend's head
    /// (`PageInfo::NoMore`): at boot, after a `ServerAhead` and after the store's identity
    /// was settled. A push before that would chain on a head the backend may have moved
    /// past (with events of another client, or this client's own segment whose outcome a
    /// shutdown did not wait for), and meet a certain `ServerAhead`. `None`: no wait.
    push_after_pull: Option<u64>,
    /// Where push and reseed tasks report (the other end is in [`Leader::run`]).
    tasks_done: mpsc::UnboundedSender<TaskDone>,
    /// The recorded backend id.
    backend_id: Option<String>,
    /// Whether `backend_id` is known to be the backend's (see `identity.rs`).
    identity: Identity,
    /// Packing by itself (see `pack.rs`).
    packer: pack::Packer,
    /// Races for the next segment key: the wait after a lost one, and the pulled events
    /// held meanwhile (see `race.rs`).
    race: race::Race,
}

/// Which transfer with the backend failed (see [`Leader::on_backend_error`]).
#[derive(Debug, Clone, Copy)]
enum Transfer {
    Push,
    Pull,
}

/// A wake-up takes no more pulled pages once its staged steps hold this many events: a pull
/// faster than the leader would otherwise keep one transaction open for the whole of it, its
/// pages spilling from SQLite's cache and its commit a long stall at the end.
const WAKE_UP_EVENTS: usize = 16_384;

/// A wake-up takes no more session pushes once its staged steps hold this many events. A
/// session that commits faster than the leader admits queues its pushes; taking a backlog of
/// 100,000 at once held every event parsed (about 1 KiB each for a todo) until the wake-up's
/// commit, and the RSS after 100,000 commits went from 99 to 195 MiB. Admitted events cost
/// no network round trip, so a smaller batch than a pull's costs only a commit (one fsync)
/// per 4,096 events.
const WAKE_UP_PUSHED_EVENTS: usize = 4_096;

/// How long a shutting-down leader waits for committed session events to be admitted (a
/// session whose push was refused re-pushes it after catching up), as LiveStore's shutdown
/// drain does. Past it, what is still missing stays in its session and is lost.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A shutdown under way: the leader keeps working until every committed session event is
/// admitted or `deadline` passes, then stops and answers every caller.
struct Stopping {
    /// The callers of `Store::shutdown` (a cloned store can ask twice).
    replies: Vec<oneshot::Sender<()>>,
    /// When the leader stops even with session events missing.
    deadline: Instant,
}

/// A message to sessions, held until the steps it reports are durable (see
/// [`Leader::make_durable`]).
enum Outgoing {
    /// A payload for every session, with the heads after its step.
    Payload {
        payload: Payload,
        heads: LeaderHeads,
        /// The events its rollback applied again (see [`SessionMessage::Payload`]).
        restored: Arc<Vec<EncodedEvent>>,
    },
    /// A message for one session (a refusal, or the closed notice of one push).
    To(SessionKey, SessionMessage),
}

/// The leader actor's state.
pub(crate) struct Leader {
    /// The user's schema: tables and materializers.
    schema: Arc<Schema>,
    /// `state.db` and `eventlog.db`, each on its own connection.
    db: LeaderDb,
    /// The leader's sync state against the backend: `pending` holds the events the backend
    /// has not confirmed (client-only ones too), `upstream_head` the backend-confirmed head,
    /// `local_head` the last event of the eventlog.
    state: SyncState,
    /// The state head: the last event materialized in `state.db`'s tables, as recorded
    /// there (boot levels the tables from it). `state.local_head` is the sync state's last
    /// event, which `merge` moves; each core step moves both, this one from the events it
    /// materialized.
    state_head: EventSeq,
    /// The sessions, by key. Ordered, so that every walk over the sessions (advances,
    /// close) has one order.
    sessions: BTreeMap<SessionKey, SessionLink>,
    /// The key the next session gets.
    next_session: SessionKey,
    /// The sync side; `None` for a store opened offline.
    online: Option<Online>,
    /// Callers of `Store::sync` waiting for their answer.
    waiters: Vec<SyncWaiter>,
    /// Counters shared with the store handle and the sessions.
    counters: Arc<Counters>,
    /// Batch limits and the backend-id policy.
    tuning: Tuning,
    /// Why the leader stopped, once it has: every later request gets this reason.
    closed: Option<String>,
    /// The caller's runtime, where push, pull and reseed tasks run.
    io: tokio::runtime::Handle,
    /// What sessions will be told once the staged steps are durable, in order.
    outbox: Vec<Outgoing>,
    /// A shutdown under way.
    stopping: Option<Stopping>,
    /// This client's id (the writer named in the snapshots it writes).
    client_id: String,
    /// The backend-confirmed head at the last automatic snapshot (or at boot).
    last_snapshot: GlobalSeq,
    /// Tables lagging behind the eventlog after a lazy rebase (see `lag.rs`).
    lag: Option<lag::Lag>,
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
    /// This client's id.
    pub client_id: String,
}

impl Leader {
    /// Builds the leader's sync state from its databases and starts it; returns the command
    /// channel. The task ends after a `Shutdown` command or when every sender is dropped.
    pub(crate) fn boot(
        args: BootArgs,
    ) -> Result<(mpsc::UnboundedSender<Command>, LeaderTask), Error> {
        let BootArgs {
            schema,
            mut db,
            backend,
            at_open,
            counters,
            tuning,
            lock,
            entropy,
            client_id,
        } = args;
        let leader_thread = tuning.leader_thread;
        // Every log line of this leader, its pushes and its pull names the client: several
        // stores in one process (a bench, a test) are told apart.
        let span = tracing::debug_span!("leader", client = %client_id);
        db.level_state(&schema).map_err(db_error)?;
        let (confirmed_head, _) = db.sync_status().map_err(db_error)?;
        let upstream_head = EventSeq::from(confirmed_head);
        let local_head = db.eventlog_head().map_err(db_error)?;
        if upstream_head.is_after(&local_head) {
            return Err(Error::new(
                ErrorKind::Data,
                format!(
                    "eventlog.db: backend-confirmed head {upstream_head} is after the last event {local_head}"
                ),
            ));
        }
        let pending = db.pending_after(upstream_head).map_err(db_error)?;
        let state = SyncState {
            pending,
            upstream_head,
            local_head: EventSeq::max_position(upstream_head, local_head),
        };
        let state_head = db.state_head().map_err(db_error)?;
        // Pushes and pulls run on the caller's runtime, wherever the actor runs.
        let io = tokio::runtime::Handle::current();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (pull_tx, pull_rx) = mpsc::channel(4);
        let (tasks_done, tasks_done_rx) = mpsc::unbounded_channel();
        let online = backend.map(|backend| {
            let (restarts, restart_rx) = mpsc::unbounded_channel();
            let start = Restart {
                cursor: confirmed_head,
                epoch: 0,
                reread_id: !at_open.verified,
                refresh: false,
            };
            let backoff = Backoff::new(entropy.fork());
            io.spawn(
                pull::run(
                    backend.clone(),
                    start,
                    restart_rx,
                    pull_tx,
                    backoff,
                    counters.clone(),
                )
                .instrument(span.clone()),
            );
            Online {
                backend,
                restarts,
                pull_epoch: 0,
                push_in_flight: false,
                push_retry_at: None,
                push_backoff: Backoff::new(entropy.fork()),
                push_after_pull: Some(0),
                tasks_done,
                backend_id: at_open.backend_id,
                identity: if at_open.verified {
                    Identity::Verified
                } else {
                    Identity::Unverified
                },
                packer: pack::Packer::default(),
                race: race::Race::new(entropy.fork(), tuning.race_wait, tuning.race_probe),
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
            io,
            outbox: Vec::new(),
            stopping: None,
            client_id,
            last_snapshot: confirmed_head,
            lag: None,
            _lock: lock,
        };
        if at_open.reseed && leader.online.is_some() {
            leader.start_reseed();
        }
        let run = leader
            .run(command_rx, pull_rx, tasks_done_rx)
            .instrument(span);
        let task = if leader_thread {
            LeaderTask::thread(run)?
        } else {
            LeaderTask::Inline(tokio::spawn(run))
        };
        Ok((commands, task))
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut pulled: mpsc::Receiver<PullEvent>,
        mut tasks_done: mpsc::UnboundedReceiver<TaskDone>,
    ) {
        loop {
            if self.stop_is_due() {
                return self.stop(&mut commands);
            }
            self.maybe_start_push();
            self.maybe_recheck();
            let retry_at = self.online.as_ref().and_then(|online| online.push_retry_at);
            let race_until = self.online.as_ref().and_then(|online| online.race.until());
            let hold_until = self
                .online
                .as_ref()
                .and_then(|online| online.race.held_in_flight_until(online.push_in_flight));
            let stop_at = self.stopping.as_ref().map(|stopping| stopping.deadline);
            let lag_until = self.lag_until();
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
                _ = sleep_until(race_until), if race_until.is_some() => self.end_race_wait(),
                _ = sleep_until(hold_until), if hold_until.is_some() => self.release_held(),
                _ = sleep_until(stop_at), if stop_at.is_some() => {}
                _ = sleep_until(lag_until), if lag_until.is_some() => {}
                command = commands.recv() => match command {
                    Some(command) => self.on_commands(vec![command]),
                    None => {
                        self.close("the store was dropped");
                        self.answer_stopping();
                        return;
                    }
                },
            }
            self.take_ready(&mut pulled, &mut tasks_done, &mut commands);
            self.catch_up_if_due();
            self.make_durable();
            self.check_waiters();
            self.maybe_snapshot();
        }
    }

    /// Takes everything else that is ready now (pulled pages first, then ended tasks, then
    /// commands, the precedence of [`Leader::run`]'s select), so that one wake-up stages it
    /// all and [`Leader::make_durable`] commits it once.
    fn take_ready(
        &mut self,
        pulled: &mut mpsc::Receiver<PullEvent>,
        tasks_done: &mut mpsc::UnboundedReceiver<TaskDone>,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) {
        while self.online.is_some()
            && self.closed.is_none()
            && self.db.staged_events() < WAKE_UP_EVENTS
            && let Ok(event) = pulled.try_recv()
        {
            self.on_pull_event(event);
        }
        while let Ok(done) = tasks_done.try_recv() {
            match done {
                TaskDone::Push(done) => self.on_push_done(done),
                TaskDone::Reseeded(result) => self.on_reseeded(result),
            }
        }
        // Commands past the bound stay queued, in order, for the next wake-up.
        let mut batch = Vec::new();
        let mut events = self.db.staged_events();
        while events < WAKE_UP_PUSHED_EVENTS
            && let Ok(command) = commands.try_recv()
        {
            if let Command::SessionPush(push) = &command {
                events += push.events.len();
            }
            batch.push(command);
        }
        self.on_commands(batch);
    }

    /// Commits the staged steps (one durable batch, see `db.rs`), then tells the sessions
    /// what they did, in order: a session hears of an event only once it is durable. A
    /// failing commit stops the leader, and the sessions hear nothing of those steps.
    fn make_durable(&mut self) {
        if self.db.has_staged() {
            if let Err(error) = self.db.commit() {
                self.outbox.clear();
                return self.fail(db_error(error));
            }
            self.counters
                .durable_batches
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!("committed the steps of this wake-up");
        }
        for outgoing in std::mem::take(&mut self.outbox) {
            match outgoing {
                Outgoing::Payload { payload, .. } if self.sessions.is_empty() => {
                    step::drop_aside(payload);
                }
                Outgoing::Payload {
                    payload,
                    heads,
                    restored,
                } => {
                    // Each session but the last gets a copy; the last takes the payload.
                    let mut payload = Some(payload);
                    let mut left = self.sessions.len();
                    self.sessions.retain(|_, link| {
                        left -= 1;
                        let payload = if left == 0 {
                            payload.take()
                        } else {
                            payload.clone()
                        };
                        payload.is_some_and(|payload| {
                            link.sender
                                .send(SessionMessage::Payload {
                                    payload,
                                    heads,
                                    restored: Arc::clone(&restored),
                                })
                                .is_ok()
                        })
                    });
                }
                Outgoing::To(session, message) => {
                    if let Some(link) = self.sessions.get(&session)
                        && link.sender.send(message).is_err()
                    {
                        self.sessions.remove(&session);
                    }
                }
            }
        }
    }

    /// Whether a shutdown under way may stop now: every committed session event was
    /// admitted (or abandoned: it will never be) and the push in flight has its answer, or
    /// the grace period is over. A push left without its answer may still land, and the
    /// next opening would then hold as pending events the backend already has.
    fn stop_is_due(&self) -> bool {
        let Some(stopping) = &self.stopping else {
            return false;
        };
        let counters = &self.counters;
        let settled = counters.admitted.load(Ordering::Relaxed)
            + counters.abandoned.load(Ordering::Relaxed)
            >= counters.committed.load(Ordering::Relaxed);
        let pushing = self
            .online
            .as_ref()
            .is_some_and(|online| online.push_in_flight);
        (settled && !pushing) || Instant::now() >= stopping.deadline
    }

    /// Ends a shutdown: processes what is still queued (session pushes are persisted, other
    /// requests answered), closes, and answers every caller of `Store::shutdown`.
    fn stop(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) {
        let mut batch = Vec::new();
        while let Ok(command) = commands.try_recv() {
            batch.push(command);
        }
        // The tables are level again before the queued pushes are taken and the files closed.
        self.catch_up();
        self.on_commands(batch);
        self.close("the store was shut down");
        self.answer_stopping();
    }

    fn answer_stopping(&mut self) {
        for reply in self
            .stopping
            .take()
            .into_iter()
            .flat_map(|stopping| stopping.replies)
        {
            let _ = reply.send(());
        }
    }

    fn on_commands(&mut self, commands: Vec<Command>) {
        let mut pushes = Vec::new();
        for command in commands {
            match command {
                Command::SessionPush(push) => pushes.push(push),
                other => {
                    // Keep order: admit the pushes queued before any other request, and
                    // answer it only once they are durable.
                    self.admit(std::mem::take(&mut pushes));
                    if matches!(
                        other,
                        Command::OpenSession { .. }
                            | Command::Query { .. }
                            | Command::DumpConfirmed { .. }
                    ) {
                        // These read the tables: they catch up first (see `lag.rs`).
                        self.catch_up();
                    }
                    self.make_durable();
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
                        Command::DumpConfirmed { reply } => {
                            let _ = reply.send(self.dump_confirmed().map_err(db_error));
                        }
                        Command::Query { sql, reply } => {
                            let rows = crate::rows::read_json(self.db.connection(), &sql, &[]);
                            let _ = reply.send(rows.map_err(Error::from));
                        }
                        Command::Shutdown { reply } => {
                            let deadline = Instant::now() + SHUTDOWN_GRACE;
                            self.stopping
                                .get_or_insert_with(|| Stopping {
                                    replies: Vec::new(),
                                    deadline,
                                })
                                .replies
                                .push(reply);
                        }
                        Command::SessionPush { .. } => unreachable!("handled above"),
                    }
                }
            }
        }
        self.admit(pushes);
    }

    /// The state at the backend-confirmed head (pending events rolled back inside a
    /// savepoint; see [`LeaderDb::dump_confirmed`]), and that head.
    fn dump_confirmed(&mut self) -> Result<(GlobalSeq, crate::snapshot::Dump), db::DbError> {
        let confirmed = self.state.upstream_head.global;
        let dump = self.db.dump_confirmed(&self.schema)?;
        Ok((confirmed, dump))
    }

    /// Writes a snapshot in the background when the backend confirmed
    /// [`Tuning::snapshot_every`] events since the last one this leader wrote (or since it
    /// booted), then prunes the older ones but the newest [`Tuning::snapshot_keep`]. The dump
    /// is made here, on the leader, between two durable batches; the upload and the prune
    /// run on the caller's runtime and a failure is logged, never fatal.
    fn maybe_snapshot(&mut self) {
        let every = self.tuning.snapshot_every;
        let Some(online) = &self.online else {
            return;
        };
        let confirmed = self.state.upstream_head.global;
        if every == 0
            || self.closed.is_some()
            || self.lag.is_some()
            || confirmed.0 < self.last_snapshot.0 + every
        {
            return;
        }
        self.last_snapshot = confirmed;
        let backend = online.backend.clone();
        let dumped = self.dump_confirmed();
        let (at, dump) = match dumped {
            Ok(dumped) => dumped,
            Err(error) => {
                tracing::warn!(%error, "could not dump the state for a snapshot");
                return;
            }
        };
        let schema = self.schema.clone();
        let writer = self.client_id.clone();
        let keep = self.tuning.snapshot_keep;
        self.io.spawn(async move {
            match crate::snapshot::write(&*backend, schema, at, dump, &writer).await {
                Ok(put) => tracing::debug!(key = %put.key, created = put.created, "snapshot"),
                Err(error) => {
                    tracing::warn!(%error, "could not write a snapshot");
                    return;
                }
            }
            crate::snapshot::prune(&*backend, keep).await;
        });
    }

    fn heads(&self) -> LeaderHeads {
        LeaderHeads {
            leader_head: self.state.local_head,
            confirmed_head: self.state.upstream_head.global,
            leader_pending: self.synced_pending(),
        }
    }

    /// The pending events bound for the backend: O(1), counted as they come and go.
    fn synced_pending(&self) -> usize {
        self.state.pending.synced_len()
    }

    /// Queues a message for one session, behind the payloads staged before it.
    fn send(&mut self, session: SessionKey, message: SessionMessage) {
        self.outbox.push(Outgoing::To(session, message));
    }

    /// Queues `payload` for every session, sent once its step is durable, with the events its
    /// rollback applied again (`restored`: those before the rolled-back ones of a changeset
    /// run it cut).
    fn broadcast(&mut self, payload: Payload, restored: Vec<EncodedEvent>) {
        let heads = self.heads();
        self.outbox.push(Outgoing::Payload {
            payload,
            heads,
            restored: Arc::new(restored),
        });
    }

    /// A push or the pull failed. A changed store starts the identity recheck; anything else
    /// is retried (a push after its backoff, the pull by its own task) and reported to the
    /// `sync()` waiters. Transient failures are routine (offline), so they log at info.
    fn on_backend_error(&mut self, transfer: Transfer, error: BackendError) {
        if let BackendError::BackendIdMismatch { .. } = error {
            // A pushed segment is not in the store (it sits in the old one's folder, at
            // best): the events stay pending while the leader reconciles with the new store.
            return self.on_identity_lost(&error);
        }
        let delay = match (transfer, &mut self.online) {
            (Transfer::Push, Some(online)) => {
                let delay = online.push_backoff.next();
                online.push_retry_at = Some(Instant::now() + delay);
                Some(delay)
            }
            _ => None,
        };
        if let Transfer::Push = transfer {
            // The failed push may have landed all the same (its answer was lost): the pull
            // finds out, and confirms its events, before they are pushed a second time.
            self.restart_pull_before_pushing();
        }
        if error.is_retryable() {
            tracing::info!(%error, ?transfer, ?delay, "transfer with the backend failed; retrying");
        } else {
            tracing::warn!(%error, ?transfer, ?delay, "transfer with the backend failed; retrying");
        }
        self.fail_waiters(&Error::from(error));
    }

    fn fail_internal(&mut self, message: &str) {
        self.fail(Error::internal(format!("leader: {message}")));
    }

    /// Stops the leader after an error it cannot recover from; the data on disk is kept.
    fn fail(&mut self, error: Error) {
        let report = format!("{error:#}");
        tracing::error!(error = %report, "leader stopped");
        self.fail_waiters(&error);
        self.close(&report);
    }

    fn close(&mut self, reason: &str) {
        if self.closed.is_some() {
            return;
        }
        // What succeeded before the stop is kept, and its sessions hear of it first.
        self.make_durable();
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
    Error::wrap(kind, error)
}
