//! The checks of [`merge`](super::merge)'s input and output: LiveStore's
//! `validateSyncState`, `validatePayload` and `validateMergeResult`, and the upstream-head
//! check of an advance. Each broken invariant is an [`InvariantViolation`] made by
//! [`violation`] (a panic in debug builds).

use super::{InvariantViolation, MergeResult, Payload, PendingEvent, SyncState, violation};
use crate::event::EncodedEvent;
use crate::seq::EventSeq;

/// An upstream advance must start after the upstream head. As LiveStore: "not after" is
/// judged by position, "equal" by full identity, so an incoming event at the upstream
/// head's position but another generation passes.
pub(super) fn check_after_upstream(
    upstream_head: EventSeq,
    first: &EncodedEvent,
    incoming: &[EncodedEvent],
) -> Result<(), InvariantViolation> {
    if upstream_head.is_after(&first.seq) || upstream_head == first.seq {
        return Err(violation(format!(
            "incoming events must be after the upstream head {upstream_head}, got [{}]",
            seq_list(incoming.iter().map(|event| event.seq))
        )));
    }
    Ok(())
}

/// A pending event's (number, parent): what the chain checks look at.
pub(super) fn links(event: &PendingEvent) -> (EventSeq, EventSeq) {
    (event.seq, event.parent)
}

/// LiveStore's `validateSyncState`: pending strictly ascending; a pending event on a new
/// global is a synced one (`client == 0`); one on the same global chains on its predecessor
/// exactly (parent == predecessor, generation included).
pub(super) fn validate_sync_state(state: &SyncState) -> Result<(), InvariantViolation> {
    validate_pending(state.pending.iter().map(links))
}

/// Pending events, given as (number, parent), are strictly ascending, and chain where they
/// share a global.
pub(super) fn validate_pending<I>(pending: I) -> Result<(), InvariantViolation>
where
    I: Iterator<Item = (EventSeq, EventSeq)> + Clone,
{
    for (index, ((previous, _), (next, parent))) in
        pending.clone().zip(pending.clone().skip(1)).enumerate()
    {
        if !next.is_after(&previous) {
            return Err(violation(format!(
                "pending events must be strictly ascending, got {previous} then {next} at index {} of [{}]",
                index + 1,
                seq_list(pending.clone().map(|(seq, _)| seq))
            )));
        }
        if next.global > previous.global {
            if next.client != 0 {
                return Err(violation(format!(
                    "pending event {next} on a new global must be a synced event (client 0), \
                     after {previous}"
                )));
            }
        } else if parent != previous {
            return Err(violation(format!(
                "pending event {next} must chain on {previous} but its parent is {parent}"
            )));
        }
    }
    Ok(())
}

/// LiveStore's `validatePayload`: the payload's new events are strictly ascending.
pub(super) fn validate_payload(payload: &Payload) -> Result<(), InvariantViolation> {
    let events = payload.new_events();
    if events
        .windows(2)
        .any(|pair| !pair[1].seq.is_after(&pair[0].seq))
    {
        return Err(violation(format!(
            "payload events must be strictly ascending, got [{}]",
            seq_list(events.iter().map(|event| event.seq))
        )));
    }
    Ok(())
}

/// LiveStore's `validateMergeResult`: the new state is valid, its upstream head is not past
/// its local head, and neither head moved backwards (all by position).
pub(super) fn validate_merge_result(
    before: &SyncState,
    result: &MergeResult,
) -> Result<(), InvariantViolation> {
    let Some(after) = result.new_state() else {
        return Ok(());
    };
    validate_sync_state(after)?;
    validate_heads(
        (before.local_head, before.upstream_head),
        (after.local_head, after.upstream_head),
    )
}

/// The heads after a merge, as `(local, upstream)`: the upstream head is not past the local
/// head, and neither moved backwards from `before` (all by position).
pub(super) fn validate_heads(
    (local_before, upstream_before): (EventSeq, EventSeq),
    (local, upstream): (EventSeq, EventSeq),
) -> Result<(), InvariantViolation> {
    if upstream.is_after(&local) {
        return Err(violation(format!(
            "upstream head {upstream} must not be after local head {local}"
        )));
    }
    if local_before.is_after(&local) {
        return Err(violation(format!(
            "local head moved backwards from {local_before} to {local}"
        )));
    }
    if upstream_before.is_after(&upstream) {
        return Err(violation(format!(
            "upstream head moved backwards from {upstream_before} to {upstream}"
        )));
    }
    Ok(())
}

pub(super) fn seq_list(seqs: impl IntoIterator<Item = EventSeq>) -> String {
    seqs.into_iter()
        .map(|seq| seq.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
