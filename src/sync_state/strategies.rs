//! Test helpers for the merge tests: LiveStore's fixtures (`e0_1`, `e1_0`, … all named `a`
//! with one client and session id) and the proptest strategies of the sync simulation.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{MergeOptions, MergeResult, Merged, Payload, Pending, PendingEvent, SyncState};
use crate::event::{EncodedEvent, EventMeta};
use crate::seq::EventSeq;

/// The client id of every fixture event.
pub(super) const CLIENT: &str = "static-local-id";
/// The session id of every fixture event.
pub(super) const SESSION: &str = "static-session-id";

/// An event named `a` from the fixture client and session.
pub(super) fn event(seq: EventSeq, parent: EventSeq, args: Value) -> EncodedEvent {
    EncodedEvent {
        seq,
        parent,
        name: "a".into(),
        args,
        client_id: CLIENT.into(),
        session_id: SESSION.into(),
        meta: EventMeta::default(),
    }
}

fn fixture(global: u64, client: u32, parent: EventSeq) -> EncodedEvent {
    event(EventSeq::new(global, client, 0), parent, json!("a"))
}

/// Client-only `e0.1` on the root.
pub(super) fn e0_1() -> EncodedEvent {
    fixture(0, 1, EventSeq::ROOT)
}
/// Synced `e1` on the root.
pub(super) fn e1_0() -> EncodedEvent {
    fixture(1, 0, EventSeq::ROOT)
}
/// Client-only `e1.1` on `e1`.
pub(super) fn e1_1() -> EncodedEvent {
    fixture(1, 1, e1_0().seq)
}
/// Client-only `e1.2` on `e1.1`.
pub(super) fn e1_2() -> EncodedEvent {
    fixture(1, 2, e1_1().seq)
}
/// Client-only `e1.3` on `e1.2`.
pub(super) fn e1_3() -> EncodedEvent {
    fixture(1, 3, e1_2().seq)
}
/// Synced `e2` on `e1`.
pub(super) fn e2_0() -> EncodedEvent {
    fixture(2, 0, e1_0().seq)
}
/// Client-only `e2.1` on `e2`.
pub(super) fn e2_1() -> EncodedEvent {
    fixture(2, 1, e2_0().seq)
}

/// One step of the sync simulation in `proptests`.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// A replica commits events locally (`true` = client-only).
    Commit { replica: usize, kinds: Vec<bool> },
    /// Another writer appends events to the upstream log (`true` = client-only).
    Foreign { kinds: Vec<bool> },
    /// A replica pushes its pending events; accepted only if it has pulled everything.
    Push { replica: usize },
    /// A replica pulls up to `max` events from the upstream log.
    Pull { replica: usize, max: usize },
}

/// A batch of event kinds; client-only events only where the upstream can hold them.
fn kinds(client_only_allowed: bool) -> impl Strategy<Value = Vec<bool>> {
    let kind = if client_only_allowed {
        prop_oneof![3 => Just(false), 1 => Just(true)].boxed()
    } else {
        Just(false).boxed()
    };
    prop::collection::vec(kind, 1..4)
}

/// A random simulation of `replicas` replicas against one upstream. With
/// `ignore_client_only` the upstream is a backend: replicas commit client-only events, but
/// foreign writers never add any to the log.
pub(super) fn ops(replicas: usize, ignore_client_only: bool) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (0..replicas, kinds(true)).prop_map(|(replica, kinds)| Op::Commit { replica, kinds }),
        2 => kinds(!ignore_client_only).prop_map(|kinds| Op::Foreign { kinds }),
        2 => (0..replicas).prop_map(|replica| Op::Push { replica }),
        3 => (0..replicas, 1..6usize).prop_map(|(replica, max)| Op::Pull { replica, max }),
    ];
    prop::collection::vec(op, 0..30)
}

/// Sizes in which a log is delivered: each chunk holds 1 to 5 events.
pub(super) fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..6usize, 1..20)
}

/// Runs `payload` through the library's [`merge`](super::merge) and its in-place path
/// ([`SyncState::merge_in_place`]) on a copy of `before`, and checks that both give what
/// LiveStore's reference gave (`result`): the same events, the same confirmed prefix, the
/// same state after.
pub(super) fn assert_in_place_agrees(
    before: &SyncState,
    payload: Payload,
    options: MergeOptions,
    result: &MergeResult,
) {
    let merged = super::merge(before, payload.clone(), options)
        .expect("the library's merge accepts what the reference accepts");
    assert_eq!(&merged, result, "merge and the reference agree");
    let mut state = before.clone();
    let merged = state
        .merge_in_place(payload.clone(), options)
        .expect("the in-place path accepts what merge accepts");
    assert_lazy_agrees(before, payload, options, &merged, &state);
    match (result, &merged) {
        (
            MergeResult::Advance {
                new_state,
                new_events,
                confirmed_events,
            },
            Merged::Advance {
                new_events: in_place,
                confirmed,
            },
        ) => {
            assert_eq!(in_place, new_events, "new events");
            assert_eq!(*confirmed, confirmed_events.len(), "confirmed count");
            assert!(
                before.pending.iter().take(*confirmed).eq(confirmed_events),
                "confirmed events are the oldest pending ones"
            );
            assert_eq!(&state, new_state, "state after an advance");
        }
        (
            MergeResult::Rebase {
                new_state,
                new_events,
                rollback_events,
            },
            Merged::Rebase {
                new_events: in_place,
                rollback_events: rolled_back,
            },
        ) => {
            assert_eq!(in_place, new_events, "new events");
            assert_eq!(rolled_back, rollback_events, "rollback events");
            assert_eq!(&state, new_state, "state after a rebase");
        }
        (
            MergeResult::Reject {
                expected_minimum_id,
            },
            Merged::Reject {
                expected_minimum_id: in_place,
            },
        ) => {
            assert_eq!(in_place, expected_minimum_id);
            assert_eq!(&state, before, "a reject leaves the state");
        }
        _ => panic!("merge gave {result:?}, the in-place path {merged:?}"),
    }
}

/// The same merge on `before` with every pending event known by its numbers only, as a
/// leader's boot holds them: loading the bodies [`SyncState::bodies_needed`] names (from
/// `before`, as the leader reads them from its eventlog) must be enough for the merge, and
/// give the same result and, once the untouched events are loaded too, the same state.
fn assert_lazy_agrees(
    before: &SyncState,
    payload: Payload,
    options: MergeOptions,
    merged: &Merged,
    after: &SyncState,
) {
    let mut lazy = SyncState {
        pending: before
            .pending
            .iter()
            .map(|event| PendingEvent::unloaded(event.seq, event.parent))
            .collect(),
        ..before.clone()
    };
    for _ in 0..3 {
        let range = lazy.bodies_needed(&payload, options);
        if lazy.pending.unloaded_span(range.clone()).is_none() {
            break;
        }
        load_bodies(&mut lazy.pending, before.pending.range(range));
    }
    let needed = lazy.bodies_needed(&payload, options);
    assert_eq!(
        lazy.pending.unloaded_span(needed),
        None,
        "at most three loads cover what the merge reads"
    );
    let lazily = lazy
        .merge_in_place(payload, options)
        .expect("the merge accepts a state loaded as far as it reads");
    assert_eq!(&lazily, merged, "a lazily loaded state merges the same");
    load_bodies(&mut lazy.pending, after.pending.iter());
    assert_eq!(&lazy, after, "the state after, its untouched events loaded");
}

/// Gives the events of `pending` with the numbers of `source` their bodies.
fn load_bodies<'a>(pending: &mut Pending, source: impl Iterator<Item = &'a PendingEvent>) {
    for event in source {
        let body = (
            event.name(),
            event.args_json(),
            event.client_id(),
            event.session_id(),
        );
        let (Some(name), Some(args), Some(client_id), Some(session_id)) = body else {
            panic!("source event {} is not loaded", event.seq);
        };
        pending
            .load_body(event.seq, name, args.to_owned(), client_id, session_id)
            .expect("valid JSON");
    }
}
