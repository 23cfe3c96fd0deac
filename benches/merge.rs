//! Throughput of `sync_state::merge` (events per second) for its three hot paths: a local
//! push, an upstream advance that confirms pending events, and one that rebases them.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eventsync::sync_state::{MergeOptions, Payload, SyncState, merge};
use eventsync::{EncodedEvent, EventMeta, EventSeq};
use serde_json::json;

/// `count` synced events after `base`, committed by `client`.
fn events(base: EventSeq, count: usize, client: &str) -> Vec<EncodedEvent> {
    let mut previous = base;
    (0..count)
        .map(|n| {
            let pair = previous.next_pair(false, 0);
            previous = pair.seq;
            EncodedEvent {
                seq: pair.seq,
                parent: pair.parent,
                name: "v1.TodoCreated".into(),
                args: json!({"id": format!("{client}-{n}"), "text": "buy milk", "note": null}),
                client_id: client.into(),
                session_id: "s1".into(),
                meta: EventMeta::default(),
            }
        })
        .collect()
}

fn pending_state(pending: Vec<EncodedEvent>) -> SyncState {
    let local_head = pending.last().map_or(EventSeq::ROOT, |event| event.seq);
    SyncState {
        pending: pending.into(),
        upstream_head: EventSeq::ROOT,
        local_head,
    }
}

fn run(c: &mut Criterion, group: &str, cases: &[(String, usize, SyncState, Payload)]) {
    let mut group = c.benchmark_group(group);
    for (name, elements, state, payload) in cases {
        group.throughput(Throughput::Elements(*elements as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || payload.clone(),
                |payload| merge(state, payload, MergeOptions::default()).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn bench_merge(c: &mut Criterion) {
    let local_push = [(1, 0), (10, 0), (100, 0), (10, 1000)].map(|(batch, pending)| {
        let state = pending_state(events(EventSeq::ROOT, pending, "me"));
        let new_events = events(state.local_head, batch, "me");
        (
            format!("{batch}_onto_{pending}_pending"),
            batch,
            state,
            Payload::LocalPush { new_events },
        )
    });
    run(c, "merge/local_push", &local_push);

    let confirm = [10, 100, 1000].map(|n| {
        let mine = events(EventSeq::ROOT, n, "me");
        (
            n.to_string(),
            n,
            pending_state(mine.clone()),
            Payload::UpstreamAdvance { new_events: mine },
        )
    });
    run(c, "merge/advance_confirm", &confirm);

    let rebase = [10, 100, 1000].map(|n| {
        let theirs = events(EventSeq::ROOT, 1, "them");
        let state = pending_state(events(EventSeq::ROOT, n, "me"));
        (
            n.to_string(),
            n,
            state,
            Payload::UpstreamAdvance { new_events: theirs },
        )
    });
    run(c, "merge/advance_rebase", &rebase);

    // What the leader does on every confirmed push: 100 of its pending events confirmed,
    // the rest staying. `merge` copies and validates the whole backlog; the in-place path
    // (`SyncState::plan`, as the leader and the sessions merge, then `apply`) touches the
    // 100 only. The copy the in-place path starts from is made outside the timing.
    let mut group = c.benchmark_group("merge/confirm_100_of_pending");
    for pending in [1_000, 10_000, 100_000] {
        let mine = events(EventSeq::ROOT, pending, "me");
        let state = pending_state(mine.clone());
        let payload = Payload::UpstreamAdvance {
            new_events: mine[..100].to_vec(),
        };
        group.throughput(Throughput::Elements(100));
        group.bench_function(BenchmarkId::new("merge", pending), |b| {
            b.iter_batched(
                || payload.clone(),
                |payload| merge(&state, payload, MergeOptions::default()).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("in_place", pending), |b| {
            b.iter_batched(
                || (state.clone(), payload.clone()),
                |(mut state, payload)| {
                    state
                        .merge_in_place(payload, MergeOptions::default())
                        .unwrap();
                    state
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_merge);
criterion_main!(benches);
