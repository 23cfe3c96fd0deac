//! An idle store costs one request per live poll, and its polls back off to `poll_max`.
//!
//! The store has pulled the log's one event, written by another client; nothing else writes. Its live
//! pull then probes key `head+1` (one GET, a 404) after `poll_min`, doubling the delay up to
//! `poll_max`. The test counts the requests the backend made (`StoreStats::requests`) after
//! every millisecond of virtual time, on tokio's paused clock with the leader inline
//! (`support::paused_clock_tuning`), so the figures are the system's own, however loaded the
//! machine; no wall time is asserted.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsync::Store;
use eventsync::backends::{
    GlobalEvent, GlobalSeq, RequestCounts, SegmentLog, SegmentLogConfig, SyncBackend,
};
use eventsync_todo::todo_schema;
use object_store::memory::InMemory;
use support::{open_store_tuned, paused_clock_tuning};
use tokio::time::Instant;

const POLL_MIN: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_secs(2);
const IDENTITY_CHECK: Duration = Duration::from_secs(30);

fn requests(store: &Store) -> RequestCounts {
    store
        .stats()
        .requests
        .expect("a segment log counts its requests")
}

/// One change of the request counters seen while idle: when, and what was asked.
#[derive(Debug)]
struct Poll {
    at: Duration,
    requests: RequestCounts,
}

#[tokio::test(start_paused = true)]
async fn test_idle_store_makes_one_request_per_poll_backing_off_to_the_maximum() {
    let memory = Arc::new(InMemory::new());
    let config = SegmentLogConfig {
        poll_min: POLL_MIN,
        poll_max: POLL_MAX,
        identity_check: IDENTITY_CHECK,
        ..SegmentLogConfig::default()
    };
    let client = |config: &SegmentLogConfig| {
        SegmentLog::new(memory.clone(), "test".into(), "idle", config.clone()).unwrap()
    };
    // Another client wrote the log's one event; this store pulls it and then has nothing to
    // pull and nothing to push (its own push would be echoed by its pull once).
    let event = GlobalEvent {
        seq_num: GlobalSeq(1),
        parent_seq_num: GlobalSeq::ZERO,
        name: "v1.TodoCreated".into(),
        args: serde_json::json!({"id": "t1", "text": "milk"}),
        client_id: "other".into(),
        session_id: "s".into(),
    };
    client(&config).push(vec![event]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store_tuned(
        &Arc::new(todo_schema()),
        dir.path(),
        "a",
        Arc::new(client(&config)),
        paused_clock_tuning(),
    )
    .await;
    store.sync().await.unwrap();
    assert_eq!(store.stats().pulled, 1);

    // Watch the counters for 65 s of virtual time, a millisecond at a time.
    let start = Instant::now();
    let mut last = requests(&store);
    let mut polls = Vec::new();
    while start.elapsed() < Duration::from_secs(65) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let now = requests(&store);
        if now != last {
            polls.push(Poll {
                at: start.elapsed(),
                requests: now - last,
            });
            last = now;
        }
    }

    // Every poll is GETs only: no PUT, LIST, HEAD or DELETE while idle.
    for poll in &polls {
        let RequestCounts { gets, .. } = poll.requests;
        assert_eq!(
            poll.requests,
            RequestCounts {
                gets,
                ..RequestCounts::default()
            },
            "an idle poll asked more than GETs: {polls:?}"
        );
    }
    // One GET a poll, except the polls that also re-read `store.json` (every
    // `identity_check`, so that a reader that never pushes learns of a wiped store): two of
    // them in 65 s, both after 30 s.
    let doubles: Vec<&Poll> = polls.iter().filter(|p| p.requests.gets != 1).collect();
    assert_eq!(doubles.len(), 2, "{polls:?}");
    for poll in doubles {
        assert_eq!(poll.requests.gets, 2, "{polls:?}");
        assert!(poll.at >= IDENTITY_CHECK, "{polls:?}");
    }
    // The delay doubles from the first poll's on until `poll_max`, and stays there.
    let gaps: Vec<Duration> = polls.windows(2).map(|w| w[1].at - w[0].at).collect();
    let tolerance = Duration::from_millis(1);
    assert!(
        gaps[0] <= 2 * POLL_MIN + tolerance,
        "the first polls come soon after the last activity: {gaps:?}"
    );
    for pair in gaps.windows(2) {
        let expected = (pair[0] * 2).min(POLL_MAX);
        assert!(
            pair[1].abs_diff(expected) <= tolerance,
            "each delay doubles up to the maximum: {gaps:?}"
        );
    }
    let at_max = gaps
        .iter()
        .filter(|gap| gap.abs_diff(POLL_MAX) <= tolerance)
        .count();
    assert!(at_max >= 25, "{at_max} polls at the maximum: {gaps:?}");
    assert!(gaps.last().unwrap().abs_diff(POLL_MAX) <= tolerance);
    store.shutdown().await.unwrap();
}
