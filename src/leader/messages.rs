//! What flows between the leader, its sessions and the store handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eventsync_backends::{GlobalSeq, RequestCounts};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::event::EncodedEvent;
use crate::seq::EventSeq;
use crate::sync_state::{Payload, PendingEvent};

/// Identifies a session registered with the leader.
pub(crate) type SessionKey = u64;

/// Requests to the leader.
pub(crate) enum Command {
    /// Events committed by a session, numbered on what it knew of the leader's head.
    SessionPush(PushRequest),
    /// Register a new session; the reply seeds its read model.
    OpenSession {
        reply: oneshot::Sender<Result<SessionSeed, Error>>,
    },
    /// A session went away.
    CloseSession { session: SessionKey },
    /// Reply once the leader has admitted `committed` session events, everything pending is
    /// confirmed by the backend, and a fresh pull found nothing newer.
    Sync {
        committed: u64,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Where the leader stands.
    Status { reply: oneshot::Sender<LeaderHeads> },
    /// Every event of the eventlog (for audits and tests).
    Events {
        reply: oneshot::Sender<Result<Vec<EncodedEvent>, Error>>,
    },
    /// The canonical dump of the state at the backend-confirmed head, and that head.
    DumpConfirmed {
        reply:
            oneshot::Sender<Result<(eventsync_backends::GlobalSeq, crate::snapshot::Dump), Error>>,
    },
    /// A read-only query of the leader's state tables, rows as JSON objects.
    Query {
        sql: String,
        reply: oneshot::Sender<Result<Vec<serde_json::Value>, Error>>,
    },
    /// Admit what is queued, wait (a bounded time) until every committed session event is
    /// admitted, then stop and reply.
    Shutdown { reply: oneshot::Sender<()> },
}

/// A session's push: its events and what they were numbered on.
#[derive(Debug)]
pub(crate) struct PushRequest {
    pub session: SessionKey,
    /// The session's push epoch (see `SessionLink::min_epoch`).
    pub epoch: u64,
    /// The head the session numbered these events on: the event before the first of them
    /// in the session's view. The leader admits the push only when this is its own head, so
    /// a session never skips an event it has not seen (a synced event's parent cannot tell:
    /// it always has client 0, even after another session's client-only event).
    pub base: EventSeq,
    /// The events, in the compact form the session holds them pending.
    pub events: Vec<PendingEvent>,
}

/// What the leader sends to its sessions.
#[derive(Debug)]
pub(crate) enum SessionMessage {
    /// A merge result to apply (LiveStore's `payloadFromMergeResult`), with the leader's heads.
    Payload {
        payload: Payload,
        heads: LeaderHeads,
        /// With a rebase: the events before the rolled-back ones that the leader applied
        /// again because they shared a changeset run with them (the run is undone whole).
        /// A session that copied that run with `state.db` undoes it whole too, and applies
        /// these again; one that applied them itself ignores them.
        restored: Arc<Vec<EncodedEvent>>,
    },
    /// The session's push of `epoch` was refused; it must re-push after catching up.
    Rejected { epoch: u64, reason: Refusal },
    /// The leader stopped; the session can no longer commit.
    Closed { reason: String },
}

/// Why the leader refused a session's push. The session catches up (it waits for the
/// leader's next payload) and pushes its pending events again, renumbered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The session is not registered (it was closed).
    #[error("unknown session")]
    UnknownSession,
    /// The epoch fence: an earlier push of this session was refused, and a later event of
    /// the old numbering must never overtake it (LiveStore's prefix fence).
    #[error("stale push of epoch {epoch} (fenced at {fenced_at})")]
    StaleEpoch {
        /// The push's epoch.
        epoch: u64,
        /// The session's lowest accepted epoch.
        fenced_at: u64,
    },
    /// A push without events.
    #[error("empty push")]
    Empty,
    /// The session numbered its events on another head than the leader's: it has not seen
    /// an event the leader holds.
    #[error("the session numbered {first} on {base} but the leader's head is {head}")]
    BaseMismatch {
        /// The push's first event.
        first: EventSeq,
        /// The head the session numbered on.
        base: EventSeq,
        /// The leader's head.
        head: EventSeq,
    },
    /// The first event is of an older rebase generation than the leader's head.
    #[error("stale rebase generation: {first} is older than the leader head {head}")]
    StaleGeneration {
        /// The push's first event.
        first: EventSeq,
        /// The leader's head.
        head: EventSeq,
    },
    /// The first event is not after the leader's head.
    #[error("leader is ahead: {first} is not after the leader head {head}")]
    LeaderAhead {
        /// The push's first event.
        first: EventSeq,
        /// The leader's head.
        head: EventSeq,
    },
    /// An event of the push is not after the one before it.
    #[error("non-monotonic push: {seq} is not after {previous}")]
    NonMonotonic {
        /// The offending event.
        seq: EventSeq,
        /// The event before it (or the leader's head).
        previous: EventSeq,
    },
    /// An event of the push does not follow the one before it (a gap, or a wrong parent).
    #[error("non-contiguous push: {seq} (parent {parent}) does not follow {previous}")]
    NotContiguous {
        /// The offending event.
        seq: EventSeq,
        /// Its parent.
        parent: EventSeq,
        /// The event before it (or the leader's head).
        previous: EventSeq,
    },
}

/// Where the leader stands: its heads, as sent to sessions and reported by `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaderHeads {
    /// The leader's local head: the last event of its eventlog.
    pub leader_head: EventSeq,
    /// The backend-confirmed head: the last event the backend confirmed to this leader (not
    /// the backend head, which the backend may have moved since).
    pub confirmed_head: GlobalSeq,
    /// The leader's pending synced events.
    pub leader_pending: usize,
}

/// What a new session starts from.
pub(crate) struct SessionSeed {
    pub key: SessionKey,
    /// A copy of `state.db`, whose `__eventsync_runs` table holds the changeset runs of the
    /// leader's events the backend has not confirmed (the session reads them when it first
    /// rolls back).
    pub connection: rusqlite::Connection,
    pub heads: LeaderHeads,
    pub messages: mpsc::UnboundedReceiver<SessionMessage>,
}

/// Counters of what a store's leader did, for reports such as `demo`'s table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Events committed by this client's sessions.
    pub committed: u64,
    /// Segments this leader wrote to the backend (one PUT each).
    pub pushes: u64,
    /// Events in those segments: `pushed_events / pushes` is the group commit's batch size.
    pub pushed_events: u64,
    /// Pushes refused because the backend's head was past the batch's parent: another
    /// client got there first, or (waste) this client pushed events the backend already had.
    pub server_ahead: u64,
    /// Times this leader rolled back pending events and replayed them on a new head.
    pub rebases: u64,
    /// Of those, the rebases that moved the eventlog alone, the tables lagging
    /// ([`Tuning::lazy_rebase`](crate::Tuning::lazy_rebase)).
    pub deferred_rebases: u64,
    /// Steps that brought lagging tables level: one rollback and replay each, however many
    /// deferred rebases came before it.
    pub catch_ups: u64,
    /// Events pulled from the backend.
    pub pulled: u64,
    /// Pulls this leader started ([`SyncBackend::pull`](eventsync_backends::SyncBackend::pull)
    /// calls: at boot, after a `ServerAhead`, a `sync`, a failure). A pull that runs on, live,
    /// makes its own requests; the backend counts those.
    pub pull_starts: u64,
    /// Pages the pulls delivered.
    pub pulled_pages: u64,
    /// Durable leader batches: commits of `eventlog.db` (one fsync of its WAL each), each
    /// holding everything one wake-up of the leader took (admitted session events, pulled
    /// pages, confirmed pushes). `committed / durable_batches` is the leader's group commit.
    pub durable_batches: u64,
    /// The requests the backend made of its object store, by kind
    /// ([`SyncBackend::requests`](eventsync_backends::SyncBackend::requests)): since the
    /// backend was made, so they include those of whoever else shares it. `None` when the
    /// store is offline or its backend does not count them.
    pub requests: Option<RequestCounts>,
}

impl std::ops::AddAssign<&StoreStats> for StoreStats {
    /// Adds every counter: the totals over several openings of a store.
    fn add_assign(&mut self, other: &StoreStats) {
        let StoreStats {
            committed,
            pushes,
            pushed_events,
            server_ahead,
            rebases,
            deferred_rebases,
            catch_ups,
            pulled,
            pull_starts,
            pulled_pages,
            durable_batches,
            requests,
        } = other;
        self.committed += committed;
        self.pushes += pushes;
        self.pushed_events += pushed_events;
        self.server_ahead += server_ahead;
        self.rebases += rebases;
        self.deferred_rebases += deferred_rebases;
        self.catch_ups += catch_ups;
        self.pulled += pulled;
        self.pull_starts += pull_starts;
        self.pulled_pages += pulled_pages;
        self.durable_batches += durable_batches;
        if let Some(requests) = requests {
            *self.requests.get_or_insert_default() += requests;
        }
    }
}

/// Counters shared between the leader and the store handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Events committed by sessions.
    pub committed: AtomicU64,
    /// Session events the leader admitted (each committed event is admitted once, possibly
    /// after its session re-pushed it renumbered).
    pub admitted: AtomicU64,
    /// Session events that will never be admitted: they were pending in a session when the
    /// leader closed it (a `reset` after the backend was replaced, or a shutdown).
    pub abandoned: AtomicU64,
    pub pushes: AtomicU64,
    pub pushed_events: AtomicU64,
    pub server_ahead: AtomicU64,
    pub rebases: AtomicU64,
    pub deferred_rebases: AtomicU64,
    pub catch_ups: AtomicU64,
    pub pulled: AtomicU64,
    pub pull_starts: AtomicU64,
    pub pulled_pages: AtomicU64,
    /// Commits of `eventlog.db` by [`Leader::make_durable`](super::Leader).
    pub durable_batches: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            committed: self.committed.load(Ordering::Relaxed),
            pushes: self.pushes.load(Ordering::Relaxed),
            pushed_events: self.pushed_events.load(Ordering::Relaxed),
            server_ahead: self.server_ahead.load(Ordering::Relaxed),
            rebases: self.rebases.load(Ordering::Relaxed),
            deferred_rebases: self.deferred_rebases.load(Ordering::Relaxed),
            catch_ups: self.catch_ups.load(Ordering::Relaxed),
            pulled: self.pulled.load(Ordering::Relaxed),
            pull_starts: self.pull_starts.load(Ordering::Relaxed),
            pulled_pages: self.pulled_pages.load(Ordering::Relaxed),
            durable_batches: self.durable_batches.load(Ordering::Relaxed),
            requests: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use eventsync_backends::RequestCounts;

    use super::StoreStats;

    #[test]
    fn test_adding_stats_adds_every_counter() {
        let one = StoreStats {
            committed: 1,
            pushes: 2,
            pushed_events: 3,
            server_ahead: 4,
            rebases: 5,
            deferred_rebases: 4,
            catch_ups: 3,
            pulled: 6,
            pull_starts: 7,
            pulled_pages: 8,
            durable_batches: 9,
            requests: Some(RequestCounts {
                puts: 1,
                gets: 2,
                heads: 0,
                lists: 3,
                deletes: 0,
            }),
        };
        let mut total = one.clone();
        total += &one;
        assert_eq!(
            total,
            StoreStats {
                committed: 2,
                pushes: 4,
                pushed_events: 6,
                server_ahead: 8,
                rebases: 10,
                deferred_rebases: 8,
                catch_ups: 6,
                pulled: 12,
                pull_starts: 14,
                pulled_pages: 16,
                durable_batches: 18,
                requests: Some(RequestCounts {
                    puts: 2,
                    gets: 4,
                    heads: 0,
                    lists: 6,
                    deletes: 0,
                }),
            }
        );
        // A store without counted requests adds nothing to them.
        total += &StoreStats::default();
        assert_eq!(total.requests.unwrap().total(), 12);
    }
}
