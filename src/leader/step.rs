//! The leader's core step ([`Leader::apply_step`]: one durable batch, changesets onto
//! pending, the state head, every session told), which admission, advance and rebase share,
//! and the merge of what the backend confirmed ([`Leader::integrate_upstream`]).

use std::sync::atomic::Ordering;

use eventsync_backends::GlobalSeq;

use super::db::NewEvent;
use super::{Leader, db_error};
use crate::error::Error;
use crate::event::EncodedEvent;
use crate::seq::EventSeq;
use crate::sync_state::{MergeOptions, Merged, Payload, PendingEvent, StateChange};

/// How the leader's [`SyncState`] moves in a [core step](Leader::apply_step).
pub(super) enum NextState {
    /// Session events were admitted: they join pending as the sessions sent them
    /// ([`SyncState::push_local_compact`]), their bodies shared with the sessions' copies.
    Admitted(Vec<PendingEvent>),
    /// A merge of what the backend confirmed moves the state so
    /// ([`SyncState::plan`](crate::sync_state::SyncState::plan)), once its step is written.
    Merged(StateChange),
}

impl Leader {
    /// Merges events the backend confirmed (pulled, or our own push that succeeded) into
    /// the leader: confirms pending events, appends new ones, or rolls back and replays.
    pub(super) fn integrate_upstream(&mut self, incoming: Vec<EncodedEvent>) {
        let Some(last) = incoming.last() else { return };
        let confirmed_head = last.seq.global;
        let many = incoming.len() > 1;
        // Whether this merge may move the eventlog alone (see `lag.rs`): only if every
        // incoming event decodes; if one does not, lagging tables catch up first (which may
        // admit queued session pushes, so before planning) and the page is taken the usual
        // way, which names the event that cannot be applied.
        let mut may_defer = self.may_defer();
        if may_defer && !self.all_decode(&incoming) {
            self.catch_up();
            if self.closed.is_some() {
                return;
            }
            may_defer = false;
        }
        // A page of many segments that holds an event this client cannot apply is taken
        // again one event at a time, so that the events before that one are taken, as they
        // would be one segment a page. With nothing pending the merge is a pure advance whose
        // payload holds the page's events as they came, and a failed step hands them back;
        // otherwise they are copied here.
        let page = (many && !self.state.pending.is_empty()).then(|| incoming.clone());
        let payload = Payload::UpstreamAdvance {
            new_events: incoming,
        };
        // Boot left pending events' bodies in the eventlog: read those the merge compares
        // or rolls back.
        if let Err(error) = self.load_bodies_for(&payload, MergeOptions::IGNORE_CLIENT_ONLY) {
            return self.fail(error);
        }
        // Planned, not applied: the state moves only once the step is written, so that a
        // page retried one event at a time below starts from the state as it was.
        let (merged, change) = match self.state.plan(payload, MergeOptions::IGNORE_CLIENT_ONLY) {
            Ok(planned) => planned,
            Err(violation) => return self.fail_internal(&violation.to_string()),
        };
        let rebase = match &merged {
            Merged::Advance { .. } => false,
            Merged::Rebase {
                new_events,
                rollback_events,
            } => {
                self.counters.rebases.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    rolled_back = rollback_events.len(),
                    new = new_events.len(),
                    head = %change.local_head(),
                    "rebasing pending events on the backend's new head"
                );
                true
            }
            Merged::Reject { .. } => return,
        };
        if may_defer && (rebase || self.lags()) {
            if let Err(error) = self.defer_step(merged, change, confirmed_head) {
                return self.fail(error);
            }
            if rebase && let Some(online) = &mut self.online {
                online.push_retry_at = None;
                online.push_backoff.reset();
            }
            return self.maybe_start_pack();
        }
        let Some(downstream) = merged.into_downstream_payload() else {
            return self.fail_internal("an upstream advance was rejected");
        };
        if let Err((error, downstream)) =
            self.try_step(NextState::Merged(change), downstream, Some(confirmed_head))
        {
            let page = match (page, downstream) {
                (Some(page), _) => page,
                (None, Payload::UpstreamAdvance { new_events }) if many => new_events,
                _ => return self.fail(error),
            };
            // Again one event at a time: the events before the one that fails are taken,
            // and that one stops the leader with its own error.
            for event in page {
                self.integrate_upstream(vec![event]);
                if self.closed.is_some() {
                    return;
                }
            }
            return;
        }
        if rebase && let Some(online) = &mut self.online {
            // The rebased events are new: push them without waiting out an old backoff.
            online.push_retry_at = None;
            online.push_backoff.reset();
        }
        self.maybe_start_pack();
    }

    /// Loads from the eventlog the bodies of the pending events that the merge of
    /// `payload` reads ([`SyncState::bodies_needed`](crate::sync_state::SyncState::bodies_needed)):
    /// boot holds pending events by their numbers only.
    ///
    /// # Errors
    ///
    /// The eventlog cannot be read, or does not hold a pending event.
    pub(super) fn load_bodies_for(
        &mut self,
        payload: &Payload,
        options: MergeOptions,
    ) -> Result<(), Error> {
        loop {
            let range = self.state.bodies_needed(payload, options);
            if self.state.pending.unloaded_span(range.clone()).is_none() {
                return Ok(());
            }
            // Loads every unloaded event in `range` or fails, so this ends.
            self.db
                .load_bodies(&mut self.state.pending, range)
                .map_err(db_error)?;
        }
    }

    /// The leader's core step, shared by admission, advance and rebase. In one batch of
    /// [`LeaderDb::apply_batch`] (the eventlog commits first, then the state): rolls back the payload's rollback events, materializes its new
    /// events (recording a changeset for each one the new state holds pending, as it may
    /// still be rolled back), moves the state head, and records `confirmed_head` when given.
    /// Then the sync state moves (`next`); the recorded changesets stay in `state.db` only
    /// (rollback reads them there, and new sessions seed their journal from there), and the
    /// payload is queued for every session until the step is durable. On error nothing moved in memory; the caller
    /// stops the leader.
    pub(super) fn apply_step(
        &mut self,
        next: NextState,
        payload: Payload,
        confirmed_head: Option<GlobalSeq>,
    ) -> Result<(), Error> {
        self.try_step(next, payload, confirmed_head)
            .map_err(|(error, _)| error)
    }

    /// [`Self::apply_step`], which on an error also hands back the payload, its events as
    /// they came (the batch reads them, it does not change them), for a retry.
    fn try_step(
        &mut self,
        next: NextState,
        mut payload: Payload,
        confirmed_head: Option<GlobalSeq>,
    ) -> Result<(), (Error, Payload)> {
        let upstream_head = match &next {
            NextState::Admitted(_) => self.state.upstream_head,
            NextState::Merged(change) => change.upstream_head(),
        };
        let (rollback, new_events) = match &mut payload {
            Payload::UpstreamAdvance { new_events } => (&[][..], new_events),
            Payload::UpstreamRebase {
                rollback_events,
                new_events,
            } => (&rollback_events[..], new_events),
            Payload::LocalPush { .. } => {
                let error = Error::internal("leader: a local push is not a payload for sessions");
                return Err((error, payload));
            }
        };
        let state_head = match new_events.last() {
            None => self.state_head,
            // Appended only: a confirmed client-only event can leave the state head ahead.
            Some(last) if rollback.is_empty() => EventSeq::max_position(self.state_head, last.seq),
            Some(last) => last.seq,
        };
        let mut items: Vec<NewEvent<'_>> = new_events
            .iter_mut()
            .map(|event| NewEvent::after_upstream(event, upstream_head))
            .collect();
        let written = self.db.apply_batch(
            &self.schema,
            rollback,
            &mut items,
            state_head,
            confirmed_head,
        );
        drop(items);
        let restored = match written {
            Ok(restored) => restored,
            Err(error) => return Err((db_error(error), payload)),
        };
        match next {
            NextState::Admitted(admitted) => {
                if !self.state.push_local_compact(admitted) {
                    let error = Error::internal(
                        "leader: an admitted push does not extend the leader's head",
                    );
                    return Err((error, payload));
                }
            }
            NextState::Merged(change) => {
                self.state.apply(change);
            }
        }
        self.state_head = state_head;
        self.broadcast(payload, restored);
        Ok(())
    }
}

/// Payloads of this many events or more that no session takes are freed on a thread of
/// their own ([`drop_aside`]).
const DROP_ASIDE_EVENTS: usize = 256;

/// Drops `payload`, a large one on a short-lived thread: freeing the thousands of events of
/// a cold pull's wake-up costs the leader's thread (its critical path) several percent of its
/// time, and nothing waits for it. Where no thread can be started, it is dropped here.
pub(super) fn drop_aside(payload: Payload) {
    let events = match &payload {
        Payload::LocalPush { new_events } | Payload::UpstreamAdvance { new_events } => {
            new_events.len()
        }
        Payload::UpstreamRebase {
            rollback_events,
            new_events,
        } => rollback_events.len() + new_events.len(),
    };
    if events < DROP_ASIDE_EVENTS {
        return;
    }
    // A failed spawn drops the closure, and the payload with it, on this thread.
    let _ = std::thread::Builder::new()
        .name("eventsync-drop".into())
        .spawn(move || drop(payload));
}
