//! Against a real S3 server (`EVENTSYNC_TEST_S3_URL` plus the `AWS_*` variables): the rate
//! of conditional PUTs (`If-None-Match: *`) beside plain PUTs of the same 4 kB objects, GETs
//! of them, and a segment-log push. Without the variable it prints why and measures nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use eventsync_backends::conformance::make_events;
use eventsync_backends::{
    GlobalSeq, OpenOptions, SegmentLog, SegmentLogConfig, SyncBackend, open_object_store,
};
use object_store::{ObjectStoreExt, PutMode, PutPayload};

fn s3(c: &mut Criterion) {
    let Ok(url) = std::env::var("EVENTSYNC_TEST_S3_URL") else {
        eprintln!("s3 bench skipped: EVENTSYNC_TEST_S3_URL is not set (see scripts/s3-local)");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (store, prefix) = open_object_store(&url, &OpenOptions::default()).expect("open S3");
    let run = eventsync_backends::Entropy::from_os().hex::<4>();
    let dir = prefix.join(format!("bench-{run}"));
    let body = PutPayload::from(vec![7u8; 4096]);
    let counter = AtomicU64::new(0);
    let key = |kind: &str| {
        dir.clone().join(format!(
            "{kind}-{}",
            counter.fetch_add(1, Ordering::Relaxed)
        ))
    };

    let mut group = c.benchmark_group("s3");
    group.sample_size(20);
    group.bench_function("put_create_4kB", |b| {
        b.to_async(&runtime).iter(|| {
            let (store, key, body) = (store.clone(), key("create"), body.clone());
            async move {
                store
                    .put_opts(&key, body, PutMode::Create.into())
                    .await
                    .expect("create");
            }
        })
    });
    group.bench_function("put_plain_4kB", |b| {
        b.to_async(&runtime).iter(|| {
            let (store, key, body) = (store.clone(), key("plain"), body.clone());
            async move {
                store.put(&key, body).await.expect("put");
            }
        })
    });
    let fixed = dir.clone().join("fixed");
    runtime
        .block_on(store.put(&fixed, body.clone()))
        .expect("put fixed");
    group.bench_function("get_4kB", |b| {
        b.to_async(&runtime).iter(|| {
            let (store, fixed) = (store.clone(), fixed.clone());
            async move {
                store
                    .get(&fixed)
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("body");
            }
        })
    });
    let log = SegmentLog::new(
        store.clone(),
        dir.clone(),
        "bench",
        SegmentLogConfig::default(),
    )
    .expect("log");
    let head = AtomicU64::new(0);
    group.bench_function("segment_log_push_10x200B", |b| {
        b.to_async(&runtime).iter(|| {
            let parent = GlobalSeq(head.fetch_add(10, Ordering::Relaxed));
            let log = log.clone();
            async move {
                log.push(make_events(parent, 10, "bench", 200))
                    .await
                    .expect("push");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, s3);
criterion_main!(benches);
