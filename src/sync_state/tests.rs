//! LiveStore's 26 SyncState cases (`sync/syncstate.test.ts`, reference section 2.4), numbered
//! as in the reference, plus a few unit tests of the helpers.

use serde_json::json;

use super::strategies::{assert_in_place_agrees, e0_1, e1_0, e1_1, e1_2, e1_3, e2_0, e2_1, event};
use super::*;

const ROOT: EventSeq = EventSeq::ROOT;
const IGNORE: MergeOptions = MergeOptions::IGNORE_CLIENT_ONLY;

fn state(pending: Vec<EncodedEvent>, upstream_head: EventSeq, local_head: EventSeq) -> SyncState {
    SyncState {
        pending: pending.into(),
        upstream_head,
        local_head,
    }
}

/// LiveStore's merge as written there ([`super::reference::merge`]), and the library's
/// [`super::merge`] and in-place path on the same input, which must agree: every case below
/// checks all three.
fn merge(
    state: &SyncState,
    payload: Payload,
    options: MergeOptions,
) -> Result<MergeResult, InvariantViolation> {
    let result = super::reference::merge(state, payload.clone(), options);
    if let Ok(result) = &result {
        assert_in_place_agrees(state, payload, options, result);
    }
    result
}

fn local_push(new_events: Vec<EncodedEvent>) -> Payload {
    Payload::LocalPush { new_events }
}

fn advance(new_events: Vec<EncodedEvent>) -> Payload {
    Payload::UpstreamAdvance { new_events }
}

fn rebase(rollback_events: Vec<EncodedEvent>, new_events: Vec<EncodedEvent>) -> Payload {
    Payload::UpstreamRebase {
        rollback_events,
        new_events,
    }
}

/// The parts of an advance: (state, new events, confirmed events).
fn expect_advance(result: MergeResult) -> (SyncState, Vec<EncodedEvent>, Vec<EncodedEvent>) {
    match result {
        MergeResult::Advance {
            new_state,
            new_events,
            confirmed_events,
        } => (new_state, new_events, confirmed_events),
        other => panic!("expected advance, got {other:?}"),
    }
}

/// The parts of a rebase: (state, new events, rollback events).
fn expect_rebase(result: MergeResult) -> (SyncState, Vec<EncodedEvent>, Vec<EncodedEvent>) {
    match result {
        MergeResult::Rebase {
            new_state,
            new_events,
            rollback_events,
        } => (new_state, new_events, rollback_events),
        other => panic!("expected rebase, got {other:?}"),
    }
}

fn seqs(events: &[EncodedEvent]) -> Vec<String> {
    events.iter().map(|event| event.seq.to_string()).collect()
}

/// Merges input that breaks an invariant: in debug builds this panics (the caller of this
/// helper is a `should_panic` test); in release it must return the violation.
fn assert_dies(state: SyncState, payload: Payload, options: MergeOptions, expected: &str) {
    let result = merge(&state, payload, options);
    let error = result.expect_err("merge must refuse input that breaks an invariant");
    assert!(error.to_string().contains(expected), "{error}");
}

// upstream-rebase

#[test]
fn case_01_upstream_rebase_rolls_back_until_start() {
    let s = state(vec![e2_0()], ROOT, e2_0().seq);
    let e1_0_e2_0 = e1_0().rebased(e2_0().seq, 0);
    let e1_1_e2_1 = e1_1().rebased(e1_0_e2_0.seq, 0);
    let payload = rebase(
        vec![e1_0(), e1_1()],
        vec![e1_0_e2_0.clone(), e1_1_e2_1.clone()],
    );
    let (new_state, new_events, rollback) =
        expect_rebase(merge(&s, payload, MergeOptions::default()).unwrap());
    let e2_0_e3_0 = e2_0().rebased(e1_0_e2_0.seq, 1);
    assert_eq!(e2_0_e3_0.seq.to_string(), "e4r1");
    assert_eq!(new_state.pending, vec![e2_0_e3_0.clone()]);
    assert_eq!(new_state.upstream_head, e1_1_e2_1.seq);
    assert_eq!(new_state.local_head, e2_0_e3_0.seq);
    assert_eq!(new_events, [e1_0_e2_0, e1_1_e2_1, e2_0_e3_0]);
    assert_eq!(rollback, [e1_0(), e1_1(), e2_0()]);
}

#[test]
fn case_02_upstream_rebase_rolls_back_only_to_specified_point() {
    let s = state(vec![e2_0()], ROOT, e2_0().seq);
    let e1_1_e2_0 = e1_1().rebased(e1_0().seq, 0);
    let payload = rebase(vec![e1_1()], vec![e1_1_e2_0.clone()]);
    let (new_state, new_events, rollback) =
        expect_rebase(merge(&s, payload, MergeOptions::default()).unwrap());
    let e2_0_e3_0 = e2_0().rebased(e1_1_e2_0.seq, 1);
    assert_eq!(e2_0_e3_0.seq.to_string(), "e2r1");
    assert_eq!(new_state.pending, vec![e2_0_e3_0.clone()]);
    assert_eq!(new_state.upstream_head, e1_1_e2_0.seq);
    assert_eq!(new_state.local_head, e2_0_e3_0.seq);
    assert_eq!(new_events, [e1_1_e2_0, e2_0_e3_0]);
    assert_eq!(rollback, [e1_1(), e2_0()]);
}

#[test]
fn case_03_upstream_rebase_works_for_empty_pending() {
    let s = state(vec![], ROOT, e1_0().seq);
    let payload = rebase(vec![e1_0()], vec![e2_0()]);
    let (new_state, new_events, rollback) =
        expect_rebase(merge(&s, payload, MergeOptions::default()).unwrap());
    assert!(new_state.pending.is_empty());
    assert_eq!(new_state.upstream_head, e2_0().seq);
    assert_eq!(new_state.local_head, e2_0().seq);
    assert_eq!(new_events, [e2_0()]);
    assert_eq!(rollback, [e1_0()]);
}

// upstream-advance: advance

#[test]
#[cfg_attr(
    debug_assertions,
    should_panic(expected = "payload events must be strictly ascending")
)]
fn case_04_upstream_advance_dies_on_unsorted_client_numbers() {
    assert_dies(
        state(vec![e1_0()], ROOT, e1_0().seq),
        advance(vec![e1_1(), e1_0()]),
        MergeOptions::default(),
        "payload events must be strictly ascending",
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    should_panic(expected = "payload events must be strictly ascending")
)]
fn case_05_upstream_advance_dies_on_unsorted_global_numbers() {
    assert_dies(
        state(vec![e1_0()], ROOT, e1_0().seq),
        advance(vec![e2_0(), e1_0()]),
        MergeOptions::default(),
        "payload events must be strictly ascending",
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    should_panic(expected = "incoming events must be after the upstream head e2")
)]
fn case_06_upstream_advance_dies_on_incoming_before_upstream_head() {
    assert_dies(
        state(vec![], e2_0().seq, e2_0().seq),
        advance(vec![e1_0()]),
        MergeOptions::default(),
        "incoming events must be after the upstream head e2",
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    should_panic(expected = "incoming events must be after the upstream head e2, got [e2]")
)]
fn case_07_upstream_advance_dies_on_incoming_equal_to_upstream_head() {
    assert_dies(
        state(vec![], e2_0().seq, e2_0().seq),
        advance(vec![e2_0()]),
        MergeOptions::default(),
        "incoming events must be after the upstream head e2, got [e2]",
    );
}

#[test]
fn case_08_upstream_advance_confirms_matching_pending_event() {
    let s = state(vec![e1_0()], ROOT, e1_0().seq);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, advance(vec![e1_0()]), MergeOptions::default()).unwrap());
    assert!(new_state.pending.is_empty());
    assert_eq!(new_state.upstream_head, e1_0().seq);
    assert_eq!(new_state.local_head, e1_0().seq);
    assert!(new_events.is_empty());
    assert_eq!(confirmed, [e1_0()]);
}

#[test]
fn case_09_upstream_advance_confirms_partial_pending() {
    let s = state(vec![e1_0(), e2_0()], ROOT, e2_0().seq);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, advance(vec![e1_0()]), MergeOptions::default()).unwrap());
    assert_eq!(new_state.pending, [e2_0()]);
    assert_eq!(new_state.upstream_head, e1_0().seq);
    assert_eq!(new_state.local_head, e2_0().seq);
    assert!(new_events.is_empty());
    assert_eq!(confirmed, [e1_0()]);
}

#[test]
fn case_10_upstream_advance_confirms_pending_and_adds_new_event() {
    let s = state(vec![e1_0()], ROOT, e1_0().seq);
    let payload = advance(vec![e1_0(), e1_1()]);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, payload, MergeOptions::default()).unwrap());
    assert!(new_state.pending.is_empty());
    assert_eq!(new_state.upstream_head, e1_1().seq);
    assert_eq!(new_state.local_head, e1_1().seq);
    assert_eq!(new_events, [e1_1()]);
    assert_eq!(confirmed, [e1_0()]);
}

#[test]
fn case_11_upstream_advance_confirms_pending_and_adds_multiple_new_events() {
    let s = state(vec![e1_1()], e1_0().seq, e1_1().seq);
    let payload = advance(vec![e1_1(), e1_2(), e1_3(), e2_0(), e2_1()]);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, payload, MergeOptions::default()).unwrap());
    assert!(new_state.pending.is_empty());
    assert_eq!(new_state.upstream_head, e2_1().seq);
    assert_eq!(new_state.local_head, e2_1().seq);
    assert_eq!(new_events, [e1_2(), e1_3(), e2_0(), e2_1()]);
    assert_eq!(confirmed, [e1_1()]);
}

#[test]
fn case_12_upstream_advance_confirms_global_event_and_keeps_client_events_pending() {
    let s = state(vec![e1_0(), e1_1()], ROOT, e1_1().seq);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, advance(vec![e1_0()]), MergeOptions::default()).unwrap());
    assert_eq!(new_state.pending, [e1_1()]);
    assert_eq!(new_state.upstream_head, e1_0().seq);
    assert_eq!(new_state.local_head, e1_1().seq);
    assert!(new_events.is_empty());
    assert_eq!(confirmed, [e1_0()]);
}

#[test]
fn case_13_upstream_advance_ignores_client_events_incoming_subset_of_pending() {
    let s = state(vec![e0_1(), e1_0()], ROOT, e1_0().seq);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, advance(vec![e1_0()]), IGNORE).unwrap());
    assert!(new_state.pending.is_empty());
    assert_eq!(new_state.upstream_head, e1_0().seq);
    assert_eq!(new_state.local_head, e1_0().seq);
    assert!(new_events.is_empty());
    assert_eq!(confirmed, [e0_1(), e1_0()]);
}

#[test]
fn case_14_upstream_advance_ignores_client_events_incoming_subset_of_pending_2() {
    // As in LiveStore, the input's local head lags its pending (e1 vs e2); merge accepts it.
    let s = state(vec![e0_1(), e1_0(), e2_0()], ROOT, e1_0().seq);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, advance(vec![e1_0()]), IGNORE).unwrap());
    assert_eq!(new_state.pending, [e2_0()]);
    assert_eq!(new_state.upstream_head, e1_0().seq);
    assert_eq!(new_state.local_head, e2_0().seq);
    assert!(new_events.is_empty());
    assert_eq!(confirmed, [e0_1(), e1_0()]);
}

#[test]
fn case_15_upstream_advance_ignores_client_events_incoming_beyond_pending() {
    let s = state(vec![e0_1(), e1_0(), e1_1()], ROOT, e1_1().seq);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, advance(vec![e1_0(), e2_0()]), IGNORE).unwrap());
    assert!(new_state.pending.is_empty());
    assert_eq!(new_state.upstream_head, e2_0().seq);
    assert_eq!(new_state.local_head, e2_0().seq);
    assert_eq!(new_events, [e2_0()]);
    assert_eq!(confirmed, [e0_1(), e1_0(), e1_1()]);
}

#[test]
#[cfg_attr(
    debug_assertions,
    should_panic(expected = "incoming events must be after the upstream head e2, got [e1]")
)]
fn case_16_upstream_advance_dies_on_incoming_at_or_before_local_head() {
    assert_dies(
        state(vec![], e2_0().seq, e2_0().seq),
        advance(vec![e1_0()]),
        MergeOptions::default(),
        "incoming events must be after the upstream head e2, got [e1]",
    );
}

#[test]
fn case_17_upstream_advance_confirms_despite_key_dropped_by_json_round_trip() {
    let local = event(
        EventSeq::global(1),
        ROOT,
        json!({"id": "t1", "text": "x", "note": null}),
    );
    let wire = event(EventSeq::global(1), ROOT, json!({"text": "x", "id": "t1"}));
    let s = state(vec![local.clone()], ROOT, local.seq);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, advance(vec![wire.clone()]), MergeOptions::default()).unwrap());
    assert!(new_state.pending.is_empty());
    assert_eq!(new_state.upstream_head, wire.seq);
    assert_eq!(new_state.local_head, wire.seq);
    assert!(new_events.is_empty());
    assert_eq!(confirmed, [local]);
}

// upstream-advance: rebase

#[test]
fn case_18_upstream_advance_rebases_single_event_to_end() {
    let s = state(vec![e1_0()], ROOT, e1_0().seq);
    let (new_state, new_events, rollback) =
        expect_rebase(merge(&s, advance(vec![e1_1()]), MergeOptions::default()).unwrap());
    let e1_0_e1_2 = e1_0().rebased(e1_1().seq, 1);
    assert_eq!(e1_0_e1_2.seq.to_string(), "e2r1");
    assert_eq!(new_state.pending, vec![e1_0_e1_2.clone()]);
    assert_eq!(new_state.upstream_head, e1_1().seq);
    assert_eq!(new_state.local_head, e1_0_e1_2.seq);
    assert_eq!(rollback, [e1_0()]);
    assert_eq!(new_events, [e1_1(), e1_0_e1_2]);
}

#[test]
fn case_19_upstream_advance_rebases_different_event_with_same_id() {
    let e2_0_b = event(EventSeq::global(1), e1_0().seq, json!("1_0_b"));
    let s = state(vec![e2_0_b.clone()], ROOT, e2_0_b.seq);
    let (new_state, new_events, rollback) =
        expect_rebase(merge(&s, advance(vec![e2_0()]), MergeOptions::default()).unwrap());
    let e2_0_e3_0 = e2_0_b.rebased(e2_0().seq, 1);
    assert_eq!(e2_0_e3_0.seq.to_string(), "e3r1");
    assert_eq!(new_state.pending, vec![e2_0_e3_0.clone()]);
    assert_eq!(new_events, [e2_0(), e2_0_e3_0.clone()]);
    assert_eq!(rollback, [e2_0_b]);
    assert_eq!(new_state.upstream_head, e2_0().seq);
    assert_eq!(new_state.local_head, e2_0_e3_0.seq);
}

#[test]
fn case_20_upstream_advance_rebases_single_event_to_end_more_incoming() {
    let s = state(vec![e1_0()], ROOT, e1_0().seq);
    let payload = advance(vec![e1_1(), e1_2(), e1_3(), e2_0()]);
    let (new_state, new_events, rollback) =
        expect_rebase(merge(&s, payload, MergeOptions::default()).unwrap());
    let e1_0_e3_0 = e1_0().rebased(e2_0().seq, 1);
    assert_eq!(e1_0_e3_0.seq.to_string(), "e3r1");
    assert_eq!(new_state.pending, vec![e1_0_e3_0.clone()]);
    assert_eq!(new_state.upstream_head, e2_0().seq);
    assert_eq!(new_state.local_head, e1_0_e3_0.seq);
    assert_eq!(rollback, [e1_0()]);
    assert_eq!(new_events, [e1_1(), e1_2(), e1_3(), e2_0(), e1_0_e3_0]);
}

#[test]
fn case_21_upstream_advance_rebases_only_divergent_events_when_first_matches() {
    let s = state(vec![e1_0(), e1_1()], ROOT, e1_0().seq);
    let payload = advance(vec![e1_0(), e1_2(), e1_3(), e2_0()]);
    let (new_state, new_events, rollback) =
        expect_rebase(merge(&s, payload, MergeOptions::default()).unwrap());
    let e1_1_e2_1 = e1_1().rebased(e2_0().seq, 1);
    assert_eq!(e1_1_e2_1.seq.to_string(), "e2.1r1");
    assert_eq!(new_state.pending, vec![e1_1_e2_1.clone()]);
    assert_eq!(rollback, [e1_1()]);
    assert_eq!(new_events, [e1_2(), e1_3(), e2_0(), e1_1_e2_1.clone()]);
    assert_eq!(new_state.upstream_head, e2_0().seq);
    assert_eq!(new_state.local_head, e1_1_e2_1.seq);
}

#[test]
fn case_22_upstream_advance_rebases_all_events_when_incoming_starts_differently() {
    let s = state(vec![e1_0(), e1_1()], ROOT, e1_1().seq);
    let payload = advance(vec![e1_1(), e1_2(), e1_3(), e2_0()]);
    let (new_state, new_events, rollback) =
        expect_rebase(merge(&s, payload, MergeOptions::default()).unwrap());
    let e1_0_e2_1 = e1_0().rebased(e2_0().seq, 1);
    let e1_1_e2_2 = e1_1().rebased(e1_0_e2_1.seq, 1);
    assert_eq!(
        seqs(&[e1_0_e2_1.clone(), e1_1_e2_2.clone()]),
        ["e3r1", "e3.1r1"]
    );
    assert_eq!(new_state.pending, [e1_0_e2_1.clone(), e1_1_e2_2.clone()]);
    assert_eq!(
        new_events,
        [e1_1(), e1_2(), e1_3(), e2_0(), e1_0_e2_1, e1_1_e2_2.clone()]
    );
    assert_eq!(rollback, [e1_0(), e1_1()]);
    assert_eq!(new_state.upstream_head, e2_0().seq);
    assert_eq!(new_state.local_head, e1_1_e2_2.seq);
}

// local-push

#[test]
fn case_23_local_push_advances_with_new_events() {
    let s = state(vec![e1_0()], ROOT, e1_0().seq);
    let payload = local_push(vec![e1_1(), e1_2(), e1_3()]);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, payload, MergeOptions::default()).unwrap());
    assert_eq!(new_state.pending, [e1_0(), e1_1(), e1_2(), e1_3()]);
    assert_eq!(new_state.upstream_head, ROOT);
    assert_eq!(new_state.local_head, e1_3().seq);
    assert_eq!(new_events, [e1_1(), e1_2(), e1_3()]);
    assert!(confirmed.is_empty());
}

#[test]
fn case_24_local_push_keeps_pending_empty_for_ignored_client_only_events() {
    let s = SyncState::at(ROOT);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, local_push(vec![e0_1()]), IGNORE).unwrap());
    assert!(new_state.pending.is_empty());
    assert_eq!(new_state.upstream_head, ROOT);
    assert_eq!(new_state.local_head, ROOT);
    assert_eq!(new_events, [e0_1()]);
    assert!(confirmed.is_empty());
}

#[test]
fn case_25_local_push_appends_only_upstream_bound_events_when_ignoring_client_only() {
    let s = SyncState::at(ROOT);
    let (new_state, new_events, confirmed) =
        expect_advance(merge(&s, local_push(vec![e0_1(), e1_0()]), IGNORE).unwrap());
    assert_eq!(new_state.pending, [e1_0()]);
    assert_eq!(new_state.upstream_head, ROOT);
    assert_eq!(new_state.local_head, e1_0().seq);
    assert_eq!(new_events, [e0_1(), e1_0()]);
    assert!(confirmed.is_empty());
}

#[test]
fn case_26_local_push_rejects_events_not_after_local_head() {
    let s = state(vec![e1_0(), e1_1()], ROOT, e1_1().seq);
    let result = merge(
        &s,
        local_push(vec![e1_1(), e1_2()]),
        MergeOptions::default(),
    )
    .unwrap();
    assert_eq!(
        result,
        MergeResult::Reject {
            expected_minimum_id: e1_2().seq
        }
    );
}

// Beyond LiveStore's list.

#[test]
fn test_empty_payloads_leave_state_unchanged() {
    let s = state(vec![e1_0(), e1_1()], ROOT, e1_1().seq);
    for payload in [local_push(vec![]), advance(vec![])] {
        let (new_state, new_events, confirmed) =
            expect_advance(merge(&s, payload, MergeOptions::default()).unwrap());
        assert_eq!(new_state, s);
        assert!(new_events.is_empty() && confirmed.is_empty());
    }
}

#[test]
fn test_reject_keeps_local_head_generation() {
    let head = EventSeq::new(4, 0, 2);
    let result = merge(
        &SyncState::at(head),
        local_push(vec![event(EventSeq::global(3), ROOT, json!("a"))]),
        MergeOptions::default(),
    )
    .unwrap();
    assert_eq!(
        result,
        MergeResult::Reject {
            expected_minimum_id: EventSeq::new(4, 1, 2)
        }
    );
}

#[test]
fn test_rebase_generation_is_base_generation_plus_one() {
    // A session on top of leader-rebased events (generation 1) rebases to generation 2.
    let leader_e2 = e2_0().rebased(e1_0().seq, 1);
    let s = state(vec![e1_0()], ROOT, e1_0().seq);
    let mut upstream_e1 = e1_0();
    upstream_e1.args = json!("other");
    let (new_state, _, _) = expect_rebase(
        merge(
            &s,
            advance(vec![upstream_e1, leader_e2]),
            MergeOptions::default(),
        )
        .unwrap(),
    );
    assert_eq!(seqs(&Vec::from(new_state.pending)), ["e3r2"]);
}

#[test]
fn test_ignoring_client_only_does_not_re_emit_confirmed_events_on_rebase() {
    // Leader pending [e0.1, e1, e2]; the backend confirms e1 and has someone else's e2.
    let mut theirs = e2_0();
    theirs.client_id = "other".into();
    let s = state(vec![e0_1(), e1_0(), e2_0()], ROOT, e2_0().seq);
    let (new_state, new_events, rollback) =
        expect_rebase(merge(&s, advance(vec![e1_0(), theirs.clone()]), IGNORE).unwrap());
    let rebased = e2_0().rebased(theirs.seq, 1);
    assert_eq!(rollback, [e2_0()]);
    assert_eq!(new_events, [theirs, rebased.clone()]);
    assert_eq!(new_state.pending, [rebased]);
}

#[test]
fn test_downstream_payload_forwards_results() {
    let s = state(vec![e1_0()], ROOT, e1_0().seq);
    let result = merge(&s, advance(vec![e1_1()]), MergeOptions::default()).unwrap();
    let Some(Payload::UpstreamRebase {
        rollback_events,
        new_events,
    }) = result.downstream_payload()
    else {
        panic!("a rebase forwards an upstream rebase: {result:?}");
    };
    assert_eq!(rollback_events, [e1_0()]);
    assert_eq!(seqs(&new_events), ["e1.1", "e2r1"]);
    let reject = MergeResult::Reject {
        expected_minimum_id: ROOT,
    };
    assert_eq!(reject.downstream_payload(), None);
    assert_eq!(reject.new_state(), None);
}

#[test]
#[cfg_attr(
    debug_assertions,
    should_panic(expected = "pending event e1.2 must chain on e1.1r1 but its parent is e1.1")
)]
fn test_pending_chain_gap_is_a_violation() {
    let mut e1_1_gen1 = e1_1();
    e1_1_gen1.seq.generation = 1;
    assert_dies(
        state(vec![e1_1_gen1, e1_2()], ROOT, e1_2().seq),
        local_push(vec![]),
        MergeOptions::default(),
        "must chain on e1.1r1",
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    should_panic(expected = "on a new global must be a synced event")
)]
fn test_client_only_event_on_new_global_is_a_violation() {
    assert_dies(
        state(vec![e1_0(), e2_1()], ROOT, e2_1().seq),
        local_push(vec![]),
        MergeOptions::default(),
        "on a new global must be a synced event",
    );
}
