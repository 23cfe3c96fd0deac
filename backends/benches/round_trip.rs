//! A push and a pull of the pushed events through `SegmentLog` on `InMemory`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use eventsync_backends::conformance::{make_events, pull_events};
use eventsync_backends::{GlobalSeq, SegmentLog, SegmentLogConfig, SyncBackend};
use object_store::memory::InMemory;
use object_store::path::Path;

fn round_trip(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("memory_round_trip");
    for batch in [1usize, 100] {
        let log = SegmentLog::new(
            Arc::new(InMemory::new()),
            Path::from("bench"),
            "bench",
            SegmentLogConfig::default(),
        )
        .expect("log");
        let head = AtomicU64::new(0);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("push_pull/{batch}x200B"), |b| {
            b.to_async(&runtime).iter_batched(
                || {
                    let parent = GlobalSeq(head.fetch_add(batch as u64, Ordering::Relaxed));
                    (parent, make_events(parent, batch, "client-a", 200))
                },
                |(parent, events)| {
                    let log = &log;
                    async move {
                        log.push(events).await.expect("push");
                        let pulled = pull_events(log, parent).await;
                        assert_eq!(pulled.len(), batch);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
