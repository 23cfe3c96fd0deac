//! `SyncState` and `merge`: the one function that runs at both sync boundaries
//! (session → leader and leader → backend). STUB: being implemented.

use crate::event::EncodedEvent;
use crate::seq::EventSeq;

/// What a node knows about its sync position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncState {
    /// Local events not yet confirmed by the next node upstream, ascending.
    pub pending: Vec<EncodedEvent>,
    /// What this node believes the upstream node's head is.
    pub upstream_head: EventSeq,
    /// The last event this node has: `pending.last()` when pending is non-empty.
    pub local_head: EventSeq,
}

/// Input of [`merge`].
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// New events committed downstream of this node.
    LocalPush { new_events: Vec<EncodedEvent> },
    /// Upstream appended events.
    UpstreamAdvance { new_events: Vec<EncodedEvent> },
    /// Upstream itself rebased: roll back `rollback_events`, then apply `new_events`.
    UpstreamRebase {
        rollback_events: Vec<EncodedEvent>,
        new_events: Vec<EncodedEvent>,
    },
}

/// Output of [`merge`].
#[derive(Debug, Clone, PartialEq)]
pub enum MergeResult {
    /// Events appended; nothing rolled back.
    Advance {
        new_state: SyncState,
        new_events: Vec<EncodedEvent>,
        confirmed_events: Vec<EncodedEvent>,
    },
    /// Pending events rolled back and replayed (renumbered) on a new head.
    Rebase {
        new_state: SyncState,
        new_events: Vec<EncodedEvent>,
        rollback_events: Vec<EncodedEvent>,
    },
    /// A local push that does not extend the local head.
    Reject { expected_minimum_id: EventSeq },
}

/// Options of [`merge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeOptions {
    /// Keep client-only events out of pending and out of divergence checks (the leader's
    /// pull path: the backend never sees client-only events).
    pub ignore_client_only: bool,
}

/// A broken invariant of [`merge`]'s input: a bug in the caller, never an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sync state invariant violated: {0}")]
pub struct InvariantViolation(pub String);

/// Merges `payload` into `state`. STUB.
pub fn merge(
    _state: &SyncState,
    _payload: Payload,
    _options: MergeOptions,
) -> Result<MergeResult, InvariantViolation> {
    unimplemented!("sync_state::merge is being implemented")
}
