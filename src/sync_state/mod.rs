//! `SyncState` and [`merge`]: how a sync node combines its own pending events with what its
//! upstream node says, exactly as LiveStore's `SyncState.merge`.
//!
//! Every node keeps optimistic local events ("pending") on top of what it believes its
//! upstream has confirmed. When something happens (a local commit, new events pulled from
//! upstream, or an upstream rebase) the node calls [`merge`], a pure function that returns
//! what to do: append events and drop the confirmed ones ([`MergeResult::Advance`]), roll back
//! pending events and replay them renumbered on the new upstream head ([`MergeResult::Rebase`]),
//! or refuse a local push that does not extend the local head ([`MergeResult::Reject`]). The
//! same function runs at both boundaries: a client session merges its own commits
//! (`LocalPush`) and the leader's payloads (`UpstreamAdvance` / `UpstreamRebase`); the leader
//! merges session pushes (`LocalPush`) and backend pulls (`UpstreamAdvance` with
//! [`MergeOptions::ignore_client_only`], because the backend never sees client-only events),
//! and forwards its own results to its sessions with [`MergeResult::downstream_payload`].
//!
//! Whether an event is client-only is read from its number ([`EncodedEvent::is_client_only`]:
//! `client > 0`), where LiveStore asks the schema. The two agree because numbers are only
//! assigned by [`EventSeq::next_pair`], which gives client-only events `client + 1` and synced
//! events `client 0`.
//!
//! Broken invariants of the input or the output (unsorted events, a pending chain with a gap,
//! a head moving backwards, an upstream head past the local head) are bugs in the caller,
//! never an outcome: they panic in debug builds and return [`InvariantViolation`] in release.

use std::ops::Range;

use crate::event::EncodedEvent;
use crate::seq::EventSeq;

mod pending;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod strategies;
#[cfg(test)]
mod tests;
mod validate;

use validate::{
    check_after_upstream, links, validate_heads, validate_merge_result, validate_payload,
    validate_pending, validate_sync_state,
};

pub use pending::{Pending, PendingEvent};

/// What a node knows about its sync position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncState {
    /// Local events not yet confirmed by the next node upstream, ascending, held compactly
    /// (see [`Pending`]: a backlog of 100,000 events must not cost 100 KiB each thousand).
    pub pending: Pending,
    /// What this node believes the upstream node's head is.
    pub upstream_head: EventSeq,
    /// The last event this node has: `pending.last()` when pending is non-empty.
    pub local_head: EventSeq,
}

impl SyncState {
    /// A node with nothing pending whose local and upstream heads are both `head` (a fresh
    /// node is `SyncState::at(EventSeq::ROOT)`, a booted one starts at its confirmed head).
    pub fn at(head: EventSeq) -> SyncState {
        SyncState {
            pending: Pending::default(),
            upstream_head: head,
            local_head: head,
        }
    }
}

/// Input of [`merge`].
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// New events committed downstream of this node.
    LocalPush {
        /// The events, numbered after the local head.
        new_events: Vec<EncodedEvent>,
    },
    /// Upstream appended events.
    UpstreamAdvance {
        /// The appended events, ascending.
        new_events: Vec<EncodedEvent>,
    },
    /// Upstream itself rebased: roll back `rollback_events`, then apply `new_events`.
    UpstreamRebase {
        /// Upstream's events that are no longer in its log, ascending.
        rollback_events: Vec<EncodedEvent>,
        /// Upstream's events that replace them, ascending.
        new_events: Vec<EncodedEvent>,
    },
}

impl Payload {
    /// The events the payload adds (for `UpstreamRebase`, the ones applied after the
    /// rollback).
    pub fn new_events(&self) -> &[EncodedEvent] {
        match self {
            Payload::LocalPush { new_events }
            | Payload::UpstreamAdvance { new_events }
            | Payload::UpstreamRebase { new_events, .. } => new_events,
        }
    }
}

/// Output of [`merge`].
#[derive(Debug, Clone, PartialEq)]
pub enum MergeResult {
    /// Events appended; nothing rolled back.
    Advance {
        /// The state after the merge.
        new_state: SyncState,
        /// The events to materialize, ascending.
        new_events: Vec<EncodedEvent>,
        /// Pending events that upstream confirmed (now no longer pending).
        confirmed_events: Vec<EncodedEvent>,
    },
    /// Pending events rolled back and replayed (renumbered) on a new head.
    Rebase {
        /// The state after the merge.
        new_state: SyncState,
        /// The events to materialize after the rollback: upstream's, then the replayed
        /// pending ones, ascending.
        new_events: Vec<EncodedEvent>,
        /// The events to roll back, ascending (undone newest first).
        rollback_events: Vec<EncodedEvent>,
    },
    /// A local push that does not extend the local head.
    Reject {
        /// The lowest number the push's first event could have had.
        expected_minimum_id: EventSeq,
    },
}

impl MergeResult {
    /// The state after the merge; `None` for a rejected push (the state is unchanged).
    pub fn new_state(&self) -> Option<&SyncState> {
        match self {
            MergeResult::Advance { new_state, .. } | MergeResult::Rebase { new_state, .. } => {
                Some(new_state)
            }
            MergeResult::Reject { .. } => None,
        }
    }

    /// The payload that forwards this result to the node's downstream (LiveStore's
    /// `payloadFromMergeResult`): an advance becomes `UpstreamAdvance`, a rebase becomes
    /// `UpstreamRebase`; a reject forwards nothing.
    pub fn downstream_payload(&self) -> Option<Payload> {
        match self {
            MergeResult::Advance { new_events, .. } => Some(Payload::UpstreamAdvance {
                new_events: new_events.clone(),
            }),
            MergeResult::Rebase {
                new_events,
                rollback_events,
                ..
            } => Some(Payload::UpstreamRebase {
                rollback_events: rollback_events.clone(),
                new_events: new_events.clone(),
            }),
            MergeResult::Reject { .. } => None,
        }
    }
}

/// Options of [`merge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeOptions {
    /// Keep client-only events out of pending and out of divergence checks (the leader's
    /// pull path: the backend never sees client-only events).
    pub ignore_client_only: bool,
}

impl MergeOptions {
    /// Options with [`ignore_client_only`](Self::ignore_client_only) set: for merging what
    /// the backend delivers, which never holds client-only events.
    pub const IGNORE_CLIENT_ONLY: MergeOptions = MergeOptions {
        ignore_client_only: true,
    };
}

/// A broken invariant of [`merge`]'s input: a bug in the caller, never an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sync state invariant violated: {0}")]
pub struct InvariantViolation(pub String);

/// Merges `payload` into `state` and says what the node must do; `state` is not changed
/// (apply [`MergeResult::new_state`] yourself).
///
/// - `LocalPush`: appends the events to pending if the first one is after the local head,
///   else rejects with `expected_minimum_id` = the local head's client-only successor. With
///   `ignore_client_only`, client-only events are returned in `new_events` but kept out of
///   pending.
/// - `UpstreamAdvance`: pending events matched position by position by identical upstream
///   events ([`EncodedEvent::is_same_as`]) are confirmed. If all of pending that the
///   incoming events reach matches, the result is an advance; from the first mismatch on,
///   pending is rolled back and rebased on the new upstream head (generation = head's + 1).
/// - `UpstreamRebase`: all of pending is rolled back (after the upstream's own rollback
///   events) and rebased on the last new event.
///
/// # Errors
///
/// [`InvariantViolation`] when the input breaks merge's preconditions (or the output would
/// break its postconditions). This is a bug in the caller; debug builds panic instead.
///
/// It is [`SyncState::plan`] and [`SyncState::apply`] on a copy of the state, with
/// LiveStore's checks of the whole state before and after; the tests keep LiveStore's
/// algorithm as it is written there as a reference and check that both agree.
pub fn merge(
    state: &SyncState,
    payload: Payload,
    options: MergeOptions,
) -> Result<MergeResult, InvariantViolation> {
    validate_sync_state(state)?;
    let (merged, change) = state.plan(payload, options)?;
    let mut new_state = state.clone();
    let result = match merged {
        Merged::Advance {
            new_events,
            confirmed,
        } => {
            new_state.apply(change);
            MergeResult::Advance {
                new_state,
                new_events,
                confirmed_events: state
                    .pending
                    .range(..confirmed)
                    .map(PendingEvent::to_event)
                    .collect(),
            }
        }
        Merged::Rebase {
            new_events,
            rollback_events,
        } => {
            new_state.apply(change);
            MergeResult::Rebase {
                new_state,
                new_events,
                rollback_events,
            }
        }
        Merged::Reject {
            expected_minimum_id,
        } => MergeResult::Reject {
            expected_minimum_id,
        },
    };
    validate_merge_result(state, &result)?;
    Ok(result)
}

/// The one place an [`InvariantViolation`] is made: panics in debug builds (so the bug shows
/// up in tests at the point of violation), returns the error in release.
fn violation(message: String) -> InvariantViolation {
    debug_assert!(false, "sync state invariant violated: {message}");
    InvariantViolation(message)
}

/// The outcome of [`SyncState::push_local`]: `merge`'s local-push results without the copy
/// of the state.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalPush {
    /// Appended; the state was updated in place.
    Advance {
        /// The appended events.
        new_events: Vec<EncodedEvent>,
    },
    /// Not after the local head; the state is unchanged.
    Reject {
        /// The lowest number the push's first event could have had.
        expected_minimum_id: EventSeq,
    },
}

impl SyncState {
    /// The local-push case of [`merge`], applied in place: the same rules and the same
    /// results, without copying `pending` (which costs time in proportion to the backlog on
    /// every commit): [`SyncState::plan`] of the push, then [`SyncState::apply`].
    pub fn push_local(
        &mut self,
        new_events: Vec<EncodedEvent>,
        options: MergeOptions,
    ) -> LocalPush {
        let (merged, change) = self.plan_local_push(new_events, options);
        match merged {
            Merged::Advance { new_events, .. } => {
                debug_assert!(
                    self.validate_change(&change).is_ok(),
                    "a local push broke the pending chain"
                );
                self.apply(change);
                LocalPush::Advance { new_events }
            }
            Merged::Reject {
                expected_minimum_id,
            } => LocalPush::Reject {
                expected_minimum_id,
            },
            Merged::Rebase { .. } => unreachable!("a local push never rebases"),
        }
    }
}

/// What a merge does to a [`SyncState`], kept apart from the merge so that a caller can do
/// the merge's work first (materialize, write) and move its state only once that succeeded
/// ([`SyncState::apply`]). It names only what changes: moving the state costs time in
/// proportion to the events confirmed, rolled back or added, never to the events that stay
/// pending.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// How many pending events leave pending, oldest first (confirmed, or rolled back).
    drop_front: usize,
    /// The events that join pending after them (a local push's, a rebase's replayed ones).
    append: Vec<PendingEvent>,
    /// The upstream head after the merge.
    upstream_head: EventSeq,
    /// The local head after the merge.
    local_head: EventSeq,
}

impl StateChange {
    /// The upstream head the state will have.
    pub fn upstream_head(&self) -> EventSeq {
        self.upstream_head
    }

    /// The local head the state will have.
    pub fn local_head(&self) -> EventSeq {
        self.local_head
    }
}

/// What [`SyncState::plan`] says a merge does: [`MergeResult`] without the new state (see
/// [`StateChange`] for that).
#[derive(Debug, Clone, PartialEq)]
pub enum Merged {
    /// Events appended; nothing rolled back.
    Advance {
        /// The events to materialize, ascending.
        new_events: Vec<EncodedEvent>,
        /// How many pending events, oldest first, upstream confirmed.
        confirmed: usize,
    },
    /// Pending events rolled back and replayed (renumbered) on a new head.
    Rebase {
        /// The events to materialize after the rollback: upstream's, then the replayed
        /// pending ones, ascending.
        new_events: Vec<EncodedEvent>,
        /// The events to roll back, ascending (undone newest first).
        rollback_events: Vec<EncodedEvent>,
    },
    /// A local push that does not extend the local head.
    Reject {
        /// The lowest number the push's first event could have had.
        expected_minimum_id: EventSeq,
    },
}

impl Merged {
    /// The payload that forwards this result downstream, as
    /// [`MergeResult::downstream_payload`], taking the events instead of copying them.
    pub fn into_downstream_payload(self) -> Option<Payload> {
        match self {
            Merged::Advance { new_events, .. } => Some(Payload::UpstreamAdvance { new_events }),
            Merged::Rebase {
                new_events,
                rollback_events,
            } => Some(Payload::UpstreamRebase {
                rollback_events,
                new_events,
            }),
            Merged::Reject { .. } => None,
        }
    }
}

impl SyncState {
    /// [`merge`] without the copy of the state: the same rules and results, as a
    /// [`Merged`] (what to materialize) and a [`StateChange`] (how the state moves, applied
    /// with [`SyncState::apply`]). `merge` copies `pending` and validates all of it on every
    /// call, which costs time in proportion to the backlog; this touches only what the
    /// payload confirms, rolls back or adds, and validates only that part. The leader and
    /// the sessions merge this way; `merge` is this on a copy of the state.
    ///
    /// # Errors
    ///
    /// [`InvariantViolation`] when the payload breaks merge's preconditions against this
    /// state, or the change would break its postconditions (debug builds panic instead).
    pub fn plan(
        &self,
        payload: Payload,
        options: MergeOptions,
    ) -> Result<(Merged, StateChange), InvariantViolation> {
        validate_payload(&payload)?;
        let planned = match payload {
            Payload::LocalPush { new_events } => self.plan_local_push(new_events, options),
            Payload::UpstreamAdvance { new_events } => {
                self.plan_upstream_advance(new_events, options)?
            }
            Payload::UpstreamRebase {
                rollback_events,
                new_events,
            } => self.plan_upstream_rebase(rollback_events, new_events)?,
        };
        self.validate_change(&planned.1)?;
        Ok(planned)
    }

    /// Moves the state as `change` says (from [`SyncState::plan`] on this same state).
    pub fn apply(&mut self, change: StateChange) {
        debug_assert!(change.drop_front <= self.pending.len());
        self.pending.drop_front(change.drop_front);
        self.pending.extend(change.append);
        self.upstream_head = change.upstream_head;
        self.local_head = change.local_head;
    }

    /// [`SyncState::plan`], then [`SyncState::apply`] when it succeeded.
    ///
    /// # Errors
    ///
    /// As [`SyncState::plan`]; the state is then unchanged.
    pub fn merge_in_place(
        &mut self,
        payload: Payload,
        options: MergeOptions,
    ) -> Result<Merged, InvariantViolation> {
        let (merged, change) = self.plan(payload, options)?;
        self.apply(change);
        Ok(merged)
    }

    /// The pending events (indices) whose bodies [`SyncState::plan`] of `payload` reads,
    /// as far as the bodies loaded so far tell: an upstream advance compares the pending
    /// events it reaches, and a divergence among them rolls back everything from there on;
    /// an upstream rebase rolls back all; a local push reads none. A node whose pending
    /// events are not all loaded (a leader after boot) loads these, asks again until every
    /// one is loaded (twice at most: the second answer covers a divergence found among the
    /// first), and then plans.
    pub fn bodies_needed(&self, payload: &Payload, options: MergeOptions) -> Range<usize> {
        match payload {
            Payload::LocalPush { .. } => 0..0,
            Payload::UpstreamRebase { .. } => 0..self.pending.len(),
            Payload::UpstreamAdvance { new_events } => {
                let reached = confirmed_prefix_len(&self.pending, new_events, options);
                if self.pending.unloaded_span(0..reached).is_some() {
                    return 0..reached;
                }
                match find_divergence(&self.pending, new_events, options.ignore_client_only) {
                    Some(divergence) => divergence.pending_index..self.pending.len(),
                    None => 0..reached,
                }
            }
        }
    }

    /// A broken invariant unless every pending event in `range` has its body (see
    /// [`SyncState::bodies_needed`]).
    fn check_loaded(&self, range: Range<usize>) -> Result<(), InvariantViolation> {
        match self.pending.unloaded_span(range) {
            None => Ok(()),
            Some((first, _)) => Err(violation(format!(
                "pending event {} is needed by the merge but its body is not loaded",
                self.pending
                    .get(first)
                    .map_or(self.local_head, |event| event.seq)
            ))),
        }
    }

    /// [`Self::push_local`] with the default options, of events already in compact form (a
    /// session's push, which the leader admits): they join pending as they are, their bodies
    /// shared with the sender's copies rather than their args written as text again. Returns
    /// `false`, and changes nothing, when the first is not after the local head.
    pub(crate) fn push_local_compact(&mut self, events: Vec<PendingEvent>) -> bool {
        let Some(last) = events.last().map(|event| event.seq) else {
            return true;
        };
        if !events[0].seq.is_after(&self.local_head) {
            return false;
        }
        let change = StateChange {
            drop_front: 0,
            append: events,
            upstream_head: self.upstream_head,
            local_head: last,
        };
        debug_assert!(
            self.validate_change(&change).is_ok(),
            "a local push broke the pending chain"
        );
        self.apply(change);
        true
    }

    fn unchanged(&self) -> StateChange {
        StateChange {
            drop_front: 0,
            append: Vec::new(),
            upstream_head: self.upstream_head,
            local_head: self.local_head,
        }
    }

    fn plan_local_push(
        &self,
        new_events: Vec<EncodedEvent>,
        options: MergeOptions,
    ) -> (Merged, StateChange) {
        let Some(first) = new_events.first() else {
            let merged = Merged::Advance {
                new_events,
                confirmed: 0,
            };
            return (merged, self.unchanged());
        };
        if !first.seq.is_after(&self.local_head) {
            let head = self.local_head;
            let merged = Merged::Reject {
                expected_minimum_id: head.next_pair(true, head.generation).seq,
            };
            return (merged, self.unchanged());
        }
        let mut append: Vec<PendingEvent> = Vec::with_capacity(new_events.len());
        for event in new_events
            .iter()
            .filter(|event| !(options.ignore_client_only && event.is_client_only()))
        {
            let neighbour = append.last().or(self.pending.back());
            append.push(PendingEvent::from_event(event, neighbour));
        }
        let local_head = append.last().or(self.pending.back()).map_or_else(
            || EventSeq::max_position(self.local_head, self.upstream_head),
            |event| event.seq,
        );
        let change = StateChange {
            drop_front: 0,
            append,
            upstream_head: self.upstream_head,
            local_head,
        };
        let merged = Merged::Advance {
            new_events,
            confirmed: 0,
        };
        (merged, change)
    }

    fn plan_upstream_advance(
        &self,
        incoming: Vec<EncodedEvent>,
        options: MergeOptions,
    ) -> Result<(Merged, StateChange), InvariantViolation> {
        let (Some(first), Some(last)) = (incoming.first(), incoming.last()) else {
            let merged = Merged::Advance {
                new_events: incoming,
                confirmed: 0,
            };
            return Ok((merged, self.unchanged()));
        };
        check_after_upstream(self.upstream_head, first, &incoming)?;
        let upstream_head = last.seq;
        self.check_loaded(0..confirmed_prefix_len(&self.pending, &incoming, options))?;
        match find_divergence(&self.pending, &incoming, options.ignore_client_only) {
            None => {
                let confirmed = confirmed_prefix_len(&self.pending, &incoming, options);
                let local_head = match self.pending.back() {
                    Some(last) if confirmed < self.pending.len() => last.seq,
                    _ => EventSeq::max_position(self.local_head, upstream_head),
                };
                // The incoming events move on, but for those pending already holds (a
                // pure advance with nothing pending, such as a cold pull, keeps them all).
                let new_events: Vec<EncodedEvent> = if self.pending.is_empty() {
                    incoming
                } else {
                    incoming
                        .into_iter()
                        .filter(|event| self.pending.binary_search_position(event.seq).is_err())
                        .collect()
                };
                let change = StateChange {
                    drop_front: confirmed,
                    append: Vec::new(),
                    upstream_head,
                    local_head,
                };
                Ok((
                    Merged::Advance {
                        new_events,
                        confirmed,
                    },
                    change,
                ))
            }
            Some(divergence) => {
                self.check_loaded(divergence.pending_index..self.pending.len())?;
                let rolled_back = self.pending.range(divergence.pending_index..);
                let rollback_events: Vec<EncodedEvent> =
                    rolled_back.clone().map(PendingEvent::to_event).collect();
                let rebased = rebase_events(&rollback_events, upstream_head);
                // `rollback_events` is non-empty, so `rebased` is too.
                let local_head = rebased.last().map_or(upstream_head, |event| event.seq);
                let mut new_events = incoming;
                new_events.drain(..divergence.incoming_index);
                new_events.extend(rebased);
                let change = StateChange {
                    drop_front: self.pending.len(),
                    append: rebase_events(rolled_back, upstream_head),
                    upstream_head,
                    local_head,
                };
                Ok((
                    Merged::Rebase {
                        new_events,
                        rollback_events,
                    },
                    change,
                ))
            }
        }
    }

    fn plan_upstream_rebase(
        &self,
        mut rollback_events: Vec<EncodedEvent>,
        mut new_events: Vec<EncodedEvent>,
    ) -> Result<(Merged, StateChange), InvariantViolation> {
        self.check_loaded(0..self.pending.len())?;
        let rolled_back = rollback_events.len();
        rollback_events.extend(self.pending.iter().map(PendingEvent::to_event));
        let upstream_head = new_events
            .last()
            .map_or(self.upstream_head, |event| event.seq);
        let rebased = rebase_events(&rollback_events[rolled_back..], upstream_head);
        let local_head = rebased.last().map_or(upstream_head, |event| event.seq);
        new_events.extend(rebased);
        let change = StateChange {
            drop_front: self.pending.len(),
            append: rebase_events(&self.pending, upstream_head),
            upstream_head,
            local_head,
        };
        let merged = Merged::Rebase {
            new_events,
            rollback_events,
        };
        Ok((merged, change))
    }

    /// `merge`'s postconditions for `change`, checked on what it touches: the appended
    /// events chain on the pending event they follow, and the heads are in order and did
    /// not move backwards.
    fn validate_change(&self, change: &StateChange) -> Result<(), InvariantViolation> {
        let kept = self.pending.len().saturating_sub(change.drop_front);
        let joined = if kept > 0 { self.pending.back() } else { None };
        validate_pending(joined.into_iter().chain(&change.append).map(links))?;
        validate_heads(
            (self.local_head, self.upstream_head),
            (change.local_head, change.upstream_head),
        )
    }
}

/// Where pending and incoming part ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Divergence {
    /// Index in pending of the first pending event that differs from its counterpart.
    pending_index: usize,
    /// Index in incoming of that counterpart: the incoming events before it matched pending
    /// events and are already materialized here.
    incoming_index: usize,
}

/// LiveStore's `findDivergencePoint` on pending: the first pending event whose positional
/// counterpart in `incoming` exists and is not the same event. Pending events past the end of
/// `incoming` never diverge. With `ignore_client_only`, client-only pending events are left
/// out of the pairing (the backend never has them).
///
/// LiveStore finds the incoming side by a second scan (incoming against unfiltered pending).
/// Without `ignore_client_only` that scan gives the same index; with it, the second scan
/// would pair incoming events with client-only pending events and re-emit already confirmed
/// events, so the index comes from the first scan instead: the count of matched incoming
/// events.
fn find_divergence(
    pending: &Pending,
    incoming: &[EncodedEvent],
    ignore_client_only: bool,
) -> Option<Divergence> {
    pending
        .iter()
        .enumerate()
        .filter(|(_, event)| !(ignore_client_only && event.is_client_only()))
        .zip(incoming)
        .enumerate()
        .find(|(_, ((_, existing), incoming))| !existing.is_same_as(incoming))
        .map(|(incoming_index, ((pending_index, _), _))| Divergence {
            pending_index,
            incoming_index,
        })
}

/// How many pending events `incoming` confirms, given that they do not diverge (LiveStore's
/// `splitWhere` walk): pending[i] pairs with incoming[i - skipped], where client-only pending
/// events are skipped (and count as confirmed) under `ignore_client_only`, and the walk stops
/// at the first pending event without a counterpart. Without divergence every pair is the
/// same event (the pairing is [`find_divergence`]'s), so only the counterpart's existence is
/// left to check.
fn confirmed_prefix_len(
    pending: &Pending,
    incoming: &[EncodedEvent],
    options: MergeOptions,
) -> usize {
    pending
        .iter()
        .enumerate()
        .filter(|(_, event)| !(options.ignore_client_only && event.is_client_only()))
        .nth(incoming.len())
        .map_or(pending.len(), |(index, _)| index)
}

/// An event [`rebase_events`] renumbers: an [`EncodedEvent`] (to materialize) or a
/// [`PendingEvent`] (to hold).
trait Renumber: Sized {
    fn seq(&self) -> EventSeq;
    fn rebased(&self, parent: EventSeq, generation: u32) -> Self;
}

impl Renumber for EncodedEvent {
    fn seq(&self) -> EventSeq {
        self.seq
    }
    fn rebased(&self, parent: EventSeq, generation: u32) -> Self {
        EncodedEvent::rebased(self, parent, generation)
    }
}

impl Renumber for PendingEvent {
    fn seq(&self) -> EventSeq {
        self.seq
    }
    fn rebased(&self, parent: EventSeq, generation: u32) -> Self {
        PendingEvent::rebased(self, parent, generation)
    }
}

/// LiveStore's `rebaseEvents`: renumbers `events` one after the other starting on `base`,
/// each keeping its client-only-ness, all with generation `base.generation + 1`.
fn rebase_events<'a, E: Renumber + 'a>(
    events: impl IntoIterator<Item = &'a E>,
    base: EventSeq,
) -> Vec<E> {
    let generation = base.generation.saturating_add(1);
    let mut previous = base;
    events
        .into_iter()
        .map(|event| {
            let rebased = event.rebased(previous, generation);
            previous = rebased.seq();
            rebased
        })
        .collect()
}
