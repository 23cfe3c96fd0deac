//! Property tests of [`merge`]: replicas commit, push and pull against a simulated upstream
//! log, and every merge result is checked against what must hold whatever the history.

use proptest::prelude::*;
use serde_json::json;

use super::strategies::{Op, assert_in_place_agrees, chunk_sizes, ops};
use super::*;
use crate::event::EventMeta;

/// The upstream node: a log every replica pulls from in order.
struct Upstream {
    log: Vec<EncodedEvent>,
    /// Keep the generation of pushed events (a leader does; a backend stores generation 0).
    keep_generation: bool,
    /// Foreign events written so far (for unique args).
    foreign: usize,
}

impl Upstream {
    fn new(keep_generation: bool) -> Upstream {
        Upstream {
            log: Vec::new(),
            keep_generation,
            foreign: 0,
        }
    }

    fn head(&self) -> EventSeq {
        self.log.last().map_or(EventSeq::ROOT, |event| event.seq)
    }

    /// Another writer appends events with the given kinds (`true` = client-only).
    fn write_foreign(&mut self, kinds: &[bool]) {
        for &client_only in kinds {
            let pair = self.head().next_pair(client_only, 0);
            self.foreign += 1;
            self.log.push(EncodedEvent {
                seq: pair.seq,
                parent: pair.parent,
                name: "a".into(),
                args: json!({"foreign": self.foreign}),
                client_id: "foreign".into(),
                session_id: "foreign".into(),
                meta: EventMeta::default(),
            });
        }
    }
}

/// A node with its sync state and the sequence of events it has materialized (what its
/// read model reflects, in order).
struct Replica {
    id: String,
    state: SyncState,
    materialized: Vec<EncodedEvent>,
    /// How many events of the upstream log this replica has pulled.
    delivered: usize,
    options: MergeOptions,
    commits: usize,
}

impl Replica {
    fn new(id: &str, options: MergeOptions) -> Replica {
        Replica {
            id: id.into(),
            state: SyncState::at(EventSeq::ROOT),
            materialized: Vec::new(),
            delivered: 0,
            options,
            commits: 0,
        }
    }

    /// Numbers and commits events, as a session does: from the local head, in its generation.
    fn commit(&mut self, kinds: &[bool]) {
        let mut previous = self.state.local_head;
        let events = kinds
            .iter()
            .map(|&client_only| {
                let pair = previous.next_pair(client_only, self.state.local_head.generation);
                previous = pair.seq;
                self.commits += 1;
                EncodedEvent {
                    seq: pair.seq,
                    parent: pair.parent,
                    name: "a".into(),
                    args: json!({"by": self.id, "n": self.commits}),
                    client_id: self.id.clone(),
                    session_id: "s".into(),
                    meta: EventMeta::default(),
                }
            })
            .collect();
        // Local pushes never ignore client-only events (the leader keeps them pending).
        let result = self.merge(
            Payload::LocalPush { new_events: events },
            MergeOptions::default(),
        );
        assert!(matches!(result, MergeResult::Advance { .. }), "{result:?}");
    }

    /// Pushes pending upstream-bound events; the upstream accepts only if this replica has
    /// pulled its whole log (otherwise it is "server ahead" and nothing happens).
    fn push(&self, upstream: &mut Upstream) {
        if self.delivered != upstream.log.len() {
            return;
        }
        for event in &self.state.pending {
            if self.options.ignore_client_only && event.is_client_only() {
                continue;
            }
            assert!(
                event.seq.is_after(&upstream.head()),
                "push must extend the log"
            );
            let mut sent = event.to_event();
            sent.meta = EventMeta::default();
            if !upstream.keep_generation {
                sent.seq.generation = 0;
                sent.parent.generation = 0;
            }
            upstream.log.push(sent);
        }
    }

    /// Pulls up to `max` events from the upstream log as one `UpstreamAdvance`.
    fn pull(&mut self, upstream: &Upstream, max: usize) {
        let end = upstream.log.len().min(self.delivered.saturating_add(max));
        if end == self.delivered {
            return;
        }
        let chunk = upstream.log[self.delivered..end].to_vec();
        self.delivered = end;
        self.merge(Payload::UpstreamAdvance { new_events: chunk }, self.options);
    }

    fn pull_all(&mut self, upstream: &Upstream) {
        self.pull(upstream, usize::MAX);
    }

    /// Merges, checks the properties of the step, applies the result.
    fn merge(&mut self, payload: Payload, options: MergeOptions) -> MergeResult {
        let before = self.state.clone();
        let result = super::reference::merge(&before, payload.clone(), options)
            .expect("merge of a valid history");
        // The leader and the sessions merge in place: it must agree at every step.
        assert_in_place_agrees(&before, payload, options, &result);
        match &result {
            MergeResult::Advance {
                new_state,
                new_events,
                ..
            } => {
                self.materialized.extend(new_events.iter().cloned());
                self.state = new_state.clone();
            }
            MergeResult::Rebase {
                new_state,
                new_events,
                rollback_events,
            } => {
                let keep = self.materialized.len() - rollback_events.len();
                assert_eq!(
                    &self.materialized[keep..],
                    rollback_events.as_slice(),
                    "rollback events are the materialized tail"
                );
                // The rolled-back events are the old pending tail, replayed on the new head.
                assert!(Vec::from(before.pending.clone()).ends_with(rollback_events));
                let rebased = Vec::from(new_state.pending.clone());
                assert_rebased(rollback_events, &rebased, new_state.upstream_head);
                self.materialized.truncate(keep);
                self.materialized.extend(new_events.iter().cloned());
                self.state = new_state.clone();
            }
            MergeResult::Reject { .. } => {}
        }
        assert_heads_monotonic(&before, &self.state);
        result
    }

    /// The materialized events the upstream log can hold (without this replica's
    /// client-only events when the upstream never gets them).
    fn upstream_view<'a>(&self, events: &'a [EncodedEvent]) -> Vec<&'a EncodedEvent> {
        events
            .iter()
            .filter(|event| !(self.options.ignore_client_only && event.is_client_only()))
            .collect()
    }

    /// The replica holds exactly the upstream events it pulled, in order, followed by its
    /// pending events.
    fn assert_consistent(&self, upstream: &Upstream) {
        let pending = Vec::from(self.state.pending.clone());
        assert!(self.materialized.ends_with(&pending));
        let view = self.upstream_view(&self.materialized);
        let pending = self.upstream_view(&pending);
        let expected: Vec<&EncodedEvent> = upstream.log[..self.delivered]
            .iter()
            .chain(pending)
            .collect();
        assert_eq!(
            view.len(),
            expected.len(),
            "materialized vs upstream + pending"
        );
        for (have, want) in view.iter().zip(&expected) {
            assert!(have.is_same_as(want), "materialized {have:?} vs {want:?}");
        }
    }
}

/// Neither head moved backwards, and the upstream head is not past the local head.
fn assert_heads_monotonic(before: &SyncState, after: &SyncState) {
    assert!(after.local_head.is_at_or_after(&before.local_head));
    assert!(after.upstream_head.is_at_or_after(&before.upstream_head));
    assert!(after.local_head.is_at_or_after(&after.upstream_head));
}

/// `rebased` is `original` renumbered contiguously from `base`: same events, same
/// client-only-ness, generation `base + 1`, each numbered right after its predecessor.
fn assert_rebased(original: &[EncodedEvent], rebased: &[EncodedEvent], base: EventSeq) {
    assert_eq!(original.len(), rebased.len());
    let mut previous = base;
    for (before, after) in original.iter().zip(rebased) {
        assert_eq!(after.seq.generation, base.generation + 1);
        assert_eq!(after.is_client_only(), before.is_client_only());
        assert_eq!(
            (
                &after.name,
                &after.args,
                &after.client_id,
                &after.session_id
            ),
            (
                &before.name,
                &before.args,
                &before.client_id,
                &before.session_id
            )
        );
        if after.is_client_only() {
            assert_eq!(
                after.seq.position(),
                (previous.global.0, previous.client + 1)
            );
            assert_eq!(after.parent, previous);
        } else {
            assert_eq!(after.seq.position(), (previous.global.0 + 1, 0));
            assert_eq!(after.parent.position(), (previous.global.0, 0));
        }
        previous = after.seq;
    }
}

fn run(ops: &[Op], replicas: &mut [Replica], upstream: &mut Upstream) {
    for op in ops {
        match op {
            Op::Commit { replica, kinds } => replicas[*replica].commit(kinds),
            Op::Foreign { kinds } => upstream.write_foreign(kinds),
            Op::Push { replica } => replicas[*replica].push(upstream),
            Op::Pull { replica, max } => replicas[*replica].pull(upstream, *max),
        }
        for replica in replicas.iter() {
            replica.assert_consistent(upstream);
        }
    }
}

fn options(ignore_client_only: bool) -> MergeOptions {
    MergeOptions { ignore_client_only }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any history of commits, pushes and pulls: every merge is valid, heads never move
    /// backwards, rebases renumber contiguously, and each replica always holds the upstream
    /// events it pulled (in order) plus its pending events. After a final sync both replicas
    /// hold the same events as the upstream and nothing synced is pending. (With
    /// `ignore_client_only`, client-only events committed after the last upstream event stay
    /// pending: upstream never sees them, and only a later upstream event passes them.)
    #[test]
    fn prop_sync_histories_converge(
        (ignore, history) in any::<bool>().prop_flat_map(|ignore| (Just(ignore), ops(2, ignore))),
        keep_generation in any::<bool>(),
    ) {
        let mut upstream = Upstream::new(keep_generation && !ignore);
        let mut replicas = [Replica::new("A", options(ignore)), Replica::new("B", options(ignore))];
        run(&history, &mut replicas, &mut upstream);

        for replica in &mut replicas {
            replica.pull_all(&upstream);
            replica.push(&mut upstream);
        }
        for replica in &mut replicas {
            replica.pull_all(&upstream);
            replica.assert_consistent(&upstream);
            prop_assert!(
                replica.state.pending.iter().all(|event| ignore && event.is_client_only()),
                "{:?}",
                replica.state
            );
            prop_assert_eq!(replica.state.upstream_head, upstream.head());
        }
        let [a, b] = &replicas;
        let (a, b) = (a.upstream_view(&a.materialized), b.upstream_view(&b.materialized));
        prop_assert_eq!(a.len(), upstream.log.len());
        prop_assert_eq!(b.len(), upstream.log.len());
        for ((x, y), want) in a.iter().zip(&b).zip(&upstream.log) {
            prop_assert!(x.is_same_as(y) && x.is_same_as(want));
        }
    }

    /// Two replicas with different pending events, fed the same upstream events in different
    /// chunks, end with the same upstream head and the same confirmed prefix (the upstream
    /// log), each followed by its own pending events rebased after it.
    #[test]
    fn prop_same_upstream_gives_same_confirmed_prefix(
        ignore in any::<bool>(),
        pending_a in prop::collection::vec(any::<bool>(), 0..6),
        pending_b in prop::collection::vec(any::<bool>(), 0..6),
        foreign in prop::collection::vec(any::<bool>(), 1..12),
        chunks_a in chunk_sizes(),
        chunks_b in chunk_sizes(),
    ) {
        let mut upstream = Upstream::new(false);
        let foreign: Vec<bool> = foreign.into_iter().map(|co| co && !ignore).collect();
        upstream.write_foreign(&foreign);
        let mut a = Replica::new("A", options(ignore));
        let mut b = Replica::new("B", options(ignore));
        a.commit(&pending_a.iter().copied().chain([false]).collect::<Vec<_>>());
        b.commit(&pending_b.iter().copied().chain([false]).collect::<Vec<_>>());
        for (replica, chunks) in [(&mut a, &chunks_a), (&mut b, &chunks_b)] {
            for &size in chunks.iter().cycle().take(upstream.log.len()) {
                replica.pull(&upstream, size);
                replica.assert_consistent(&upstream);
            }
            prop_assert_eq!(replica.delivered, upstream.log.len());
            prop_assert_eq!(replica.state.upstream_head, upstream.head());
            prop_assert!(!replica.state.pending.is_empty());
        }
        let (view_a, view_b) = (a.upstream_view(&a.materialized), b.upstream_view(&b.materialized));
        for ((x, y), want) in view_a.iter().zip(&view_b).zip(&upstream.log) {
            prop_assert!(x.is_same_as(y) && x.is_same_as(want));
        }
    }

    /// A local push whose first event is not after the local head is rejected with the local
    /// head's client-only successor; one that is after it is appended.
    #[test]
    fn prop_local_push_rejects_exactly_when_not_after_local_head(
        head_global in 0u64..4, head_client in 0u32..3, generation in 0u32..3,
        first_global in 0u64..5, first_client in 0u32..3,
    ) {
        let head = EventSeq::new(head_global, head_client, generation);
        let first = EventSeq::new(first_global, first_client, generation);
        let parent = EventSeq::ROOT;
        let pushed = EncodedEvent {
            seq: first,
            parent,
            name: "a".into(),
            args: json!({}),
            client_id: "c".into(),
            session_id: "s".into(),
            meta: EventMeta::default(),
        };
        let result = merge(
            &SyncState::at(head),
            Payload::LocalPush { new_events: vec![pushed] },
            MergeOptions::default(),
        ).unwrap();
        if first.is_after(&head) {
            let state = result.new_state().expect("advance");
            prop_assert_eq!(state.local_head, first);
            prop_assert_eq!(state.upstream_head, head);
        } else {
            prop_assert_eq!(
                result,
                MergeResult::Reject { expected_minimum_id: EventSeq::new(head_global, head_client + 1, generation) }
            );
        }
    }
}
