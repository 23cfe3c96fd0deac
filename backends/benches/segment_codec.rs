//! Segment encode/decode throughput (MB/s of segment bytes).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventsync_backends::GlobalSeq;
use eventsync_backends::conformance::make_events;
use eventsync_backends::segment::{self, SegmentDigest, SegmentWriter, WriterNonce};

fn codec(c: &mut Criterion) {
    let writer = SegmentWriter {
        nonce: WriterNonce([1; 16]),
        prev_digest: SegmentDigest::ROOT,
        backend_id: "0123456789abcdef0123456789abcdef",
        client_id: "client-a",
    };
    let mut group = c.benchmark_group("segment_codec");
    for (count, payload) in [(100, 1000), (1000, 100)] {
        let events = make_events(GlobalSeq::ZERO, count, "client-a", payload);
        let encoded = segment::encode(&writer, &events).expect("encode");
        group.throughput(Throughput::Bytes(encoded.bytes.len() as u64));
        group.bench_function(format!("encode/{count}x{payload}B"), |b| {
            b.iter(|| segment::encode(&writer, black_box(&events)).expect("encode"))
        });
        group.bench_function(format!("decode/{count}x{payload}B"), |b| {
            b.iter(|| segment::decode(black_box(&encoded.bytes)).expect("decode"))
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
