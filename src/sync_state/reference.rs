//! LiveStore's `SyncState.merge` as LiveStore writes it, for the tests only: a pure function
//! that copies pending into a new state on every call, on plain [`EncodedEvent`]s. The
//! library's [`merge`](super::merge) is [`SyncState::plan`] and [`SyncState::apply`] on a
//! copy; the 26 LiveStore cases and the property tests check that it agrees with this one.

use super::{
    InvariantViolation, MergeOptions, MergeResult, Payload, SyncState, check_after_upstream,
    rebase_events, validate_merge_result, validate_payload, validate_sync_state,
};
use crate::event::EncodedEvent;
use crate::seq::EventSeq;

/// LiveStore's `merge`: see [`super::merge`] for the rules.
pub(super) fn merge(
    state: &SyncState,
    payload: Payload,
    options: MergeOptions,
) -> Result<MergeResult, InvariantViolation> {
    validate_sync_state(state)?;
    validate_payload(&payload)?;
    let pending = state.pending.to_events();
    let result = match payload {
        Payload::LocalPush { new_events } => local_push(state, &pending, new_events, options),
        Payload::UpstreamAdvance { new_events } => {
            upstream_advance(state, &pending, new_events, options)?
        }
        Payload::UpstreamRebase {
            rollback_events,
            new_events,
        } => upstream_rebase(state, &pending, rollback_events, new_events),
    };
    validate_merge_result(state, &result)?;
    Ok(result)
}

fn state_of(
    pending: Vec<EncodedEvent>,
    upstream_head: EventSeq,
    local_head: EventSeq,
) -> SyncState {
    SyncState {
        pending: pending.into(),
        upstream_head,
        local_head,
    }
}

fn local_push(
    state: &SyncState,
    pending: &[EncodedEvent],
    new_events: Vec<EncodedEvent>,
    options: MergeOptions,
) -> MergeResult {
    let Some(first) = new_events.first() else {
        return unchanged(state);
    };
    if !first.seq.is_after(&state.local_head) {
        let head = state.local_head;
        return MergeResult::Reject {
            expected_minimum_id: head.next_pair(true, head.generation).seq,
        };
    }
    let mut kept = pending.to_vec();
    kept.extend(
        new_events
            .iter()
            .filter(|event| !(options.ignore_client_only && event.is_client_only()))
            .cloned(),
    );
    let local_head = kept.last().map_or_else(
        || EventSeq::max_position(state.local_head, state.upstream_head),
        |event| event.seq,
    );
    MergeResult::Advance {
        new_state: state_of(kept, state.upstream_head, local_head),
        new_events,
        confirmed_events: Vec::new(),
    }
}

fn upstream_advance(
    state: &SyncState,
    pending: &[EncodedEvent],
    incoming: Vec<EncodedEvent>,
    options: MergeOptions,
) -> Result<MergeResult, InvariantViolation> {
    let (Some(first), Some(last)) = (incoming.first(), incoming.last()) else {
        return Ok(unchanged(state));
    };
    check_after_upstream(state.upstream_head, first, &incoming)?;
    let new_upstream_head = last.seq;
    let ignore = |event: &&EncodedEvent| !(options.ignore_client_only && event.is_client_only());

    // findDivergencePoint: the first pending event (client-only ones skipped when ignored)
    // whose counterpart in incoming is not the same event.
    let divergence = pending
        .iter()
        .enumerate()
        .filter(|(_, event)| ignore(event))
        .zip(&incoming)
        .enumerate()
        .find(|(_, ((_, existing), incoming))| !existing.is_same_as(incoming))
        .map(|(incoming_index, ((pending_index, _), _))| (pending_index, incoming_index));
    match divergence {
        None => {
            let new_events: Vec<EncodedEvent> = incoming
                .iter()
                .filter(|event| {
                    !pending
                        .iter()
                        .any(|existing| existing.seq.same_position(&event.seq))
                })
                .cloned()
                .collect();
            // splitWhere: pending events with a counterpart in incoming are confirmed.
            let split = pending
                .iter()
                .enumerate()
                .filter(|(_, event)| ignore(event))
                .nth(incoming.len())
                .map_or(pending.len(), |(index, _)| index);
            let remaining = pending[split..].to_vec();
            let local_head = remaining.last().map_or_else(
                || EventSeq::max_position(state.local_head, new_upstream_head),
                |event| event.seq,
            );
            Ok(MergeResult::Advance {
                new_state: state_of(remaining, new_upstream_head, local_head),
                new_events,
                confirmed_events: pending[..split].to_vec(),
            })
        }
        Some((pending_index, incoming_index)) => {
            let rollback_events = pending[pending_index..].to_vec();
            let rebased = rebase_events(&rollback_events, new_upstream_head);
            // `rollback_events` is non-empty, so `rebased` is too.
            let local_head = rebased.last().map_or(new_upstream_head, |event| event.seq);
            let mut new_events = incoming;
            new_events.drain(..incoming_index);
            new_events.extend(rebased.iter().cloned());
            Ok(MergeResult::Rebase {
                new_state: state_of(rebased, new_upstream_head, local_head),
                new_events,
                rollback_events,
            })
        }
    }
}

fn upstream_rebase(
    state: &SyncState,
    pending: &[EncodedEvent],
    mut rollback_events: Vec<EncodedEvent>,
    mut new_events: Vec<EncodedEvent>,
) -> MergeResult {
    rollback_events.extend(pending.iter().cloned());
    let upstream_head = new_events
        .last()
        .map_or(state.upstream_head, |event| event.seq);
    let rebased = rebase_events(pending, upstream_head);
    let local_head = rebased.last().map_or(upstream_head, |event| event.seq);
    new_events.extend(rebased.iter().cloned());
    MergeResult::Rebase {
        new_state: state_of(rebased, upstream_head, local_head),
        new_events,
        rollback_events,
    }
}

fn unchanged(state: &SyncState) -> MergeResult {
    MergeResult::Advance {
        new_state: state.clone(),
        new_events: Vec::new(),
        confirmed_events: Vec::new(),
    }
}
