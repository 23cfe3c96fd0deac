//! Conformance checks of the contract itself: LiveStore's provider suite where it applies,
//! plus concurrent pushers and several clients.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use rand::{Rng, SeedableRng};

use super::{
    Fixture, assert_gapless_from, make_events, pull_events, pull_items, push_in_batches, read_all,
};
use crate::{BackendError, GlobalSeq, PageInfo, PullPage, PullStream, SyncBackend};

/// How long a live pull may take to deliver an event that was pushed.
const LIVE_DELIVERY: Duration = Duration::from_secs(60);

async fn next_page(stream: &mut PullStream, what: &str) -> PullPage {
    match tokio::time::timeout(LIVE_DELIVERY, stream.next()).await {
        Ok(Some(Ok(page))) => page,
        Ok(Some(Err(e))) => panic!("{what}: the live pull failed: {e}"),
        Ok(None) => panic!("{what}: the live pull ended"),
        Err(_) => panic!("{what}: nothing arrived within {LIVE_DELIVERY:?}"),
    }
}

/// Asserts that `head` is the backend's head and that a non-live pull from it yields exactly
/// one page, empty and `NoMore`.
async fn assert_caught_up_at(backend: &dyn SyncBackend, head: GlobalSeq) {
    let items = pull_items(backend, head).await;
    assert_eq!(items.len(), 1, "expected exactly one page: {items:?}");
    let page = items
        .into_iter()
        .next()
        .and_then(Result::ok)
        .expect("an Ok page");
    assert!(page.events.is_empty());
    assert_eq!(page.page_info, PageInfo::NoMore);
    assert_eq!(backend.head().await.expect("head"), head);
}

/// LiveStore 4: a non-live pull of an empty store yields exactly one page, empty, `NoMore`.
pub async fn empty_pull_gives_one_no_more_page(backend: &dyn SyncBackend) {
    assert_caught_up_at(backend, GlobalSeq::ZERO).await;
}

/// LiveStore 5: the first item of a live pull of an empty store is an empty `NoMore` page.
pub async fn live_pull_starts_with_no_more_page(backend: &dyn SyncBackend) {
    let mut stream = backend
        .pull(GlobalSeq::ZERO, true)
        .await
        .expect("live pull");
    let page = next_page(&mut stream, "first live page").await;
    assert!(page.events.is_empty());
    assert_eq!(page.page_info, PageInfo::NoMore);
}

/// LiveStore 7: push one event, pull it; pulling after it gives one empty `NoMore` page.
pub async fn pull_with_cursor(backend: &dyn SyncBackend) {
    let events = make_events(GlobalSeq::ZERO, 1, "client-a", 10);
    backend.push(events.clone()).await.expect("push");
    assert_eq!(pull_events(backend, GlobalSeq::ZERO).await, events);
    assert_caught_up_at(backend, GlobalSeq(1)).await;
}

/// LiveStore 6: a live pull idles 800 ms, then a push arrives as a page of exactly one.
pub async fn live_pull_survives_idle_and_receives_later_event(backend: &dyn SyncBackend) {
    let mut stream = backend
        .pull(GlobalSeq::ZERO, true)
        .await
        .expect("live pull");
    let first = next_page(&mut stream, "first live page").await;
    assert_eq!(first.page_info, PageInfo::NoMore);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let events = make_events(GlobalSeq::ZERO, 1, "client-a", 10);
    backend.push(events.clone()).await.expect("push");
    let page = next_page(&mut stream, "the pushed event").await;
    assert_eq!(page.events, events);
}

/// LiveStore 9: 60 events of 120 kB pushed in batches of 6 all come back, in order.
pub async fn streams_dozens_of_large_events(backend: &dyn SyncBackend) {
    let events = make_events(GlobalSeq::ZERO, 60, "client-a", 120_000);
    push_in_batches(backend, &events, 6).await;
    let pulled = pull_events(backend, GlobalSeq::ZERO).await;
    assert_eq!(pulled.len(), 60);
    assert!(pulled == events, "pulled events differ from pushed ones");
}

/// LiveStore 10: 1,800 events of 1 kB pushed in batches of 90 come back in several pages.
pub async fn streams_thousands_of_small_events(backend: &dyn SyncBackend) {
    let events = make_events(GlobalSeq::ZERO, 1800, "client-a", 1000);
    push_in_batches(backend, &events, 90).await;
    let items = pull_items(backend, GlobalSeq::ZERO).await;
    let pages: Vec<PullPage> = items.into_iter().map(|i| i.expect("page")).collect();
    assert!(pages.len() > 1, "1,800 events in one page");
    assert_eq!(pages.last().map(|p| p.page_info), Some(PageInfo::NoMore));
    let pulled: Vec<_> = pages.into_iter().flat_map(|p| p.events).collect();
    assert!(pulled == events, "pulled events differ from pushed ones");
}

/// LiveStore 16: 10,000 events in batches of 100; every page but the last is non-empty and
/// says more follow (a page may gather many segments: a cold reader lists once and reads
/// ahead); a pull from a middle cursor (inside a segment, and on a segment boundary) yields
/// exactly the events after it.
pub async fn paginates_ten_thousand_events_from_a_middle_cursor(backend: &dyn SyncBackend) {
    let events = make_events(GlobalSeq::ZERO, 10_000, "client-a", 20);
    push_in_batches(backend, &events, 100).await;
    let pages: Vec<PullPage> = pull_items(backend, GlobalSeq::ZERO)
        .await
        .into_iter()
        .map(|i| i.expect("page"))
        .collect();
    for page in &pages[..pages.len() - 1] {
        assert!(!page.events.is_empty(), "an empty page before the last");
        assert!(matches!(page.page_info, PageInfo::More { .. }));
    }
    assert_eq!(pages.last().map(|p| p.page_info), Some(PageInfo::NoMore));
    let all: Vec<_> = pages.into_iter().flat_map(|p| p.events).collect();
    assert_eq!(all.len(), 10_000);
    assert_gapless_from(GlobalSeq(1), &all);
    for cursor in [5_050, 5_000, 9_999, 10_000] {
        let after = pull_events(backend, GlobalSeq(cursor)).await;
        assert_eq!(after.len() as u64, 10_000 - cursor, "from cursor {cursor}");
        assert_gapless_from(GlobalSeq(cursor + 1), &after);
    }
}

/// LiveStore 8: 8 concurrent single-event pushes on the root: one wins, 7 get `ServerAhead`,
/// and the log holds one event.
pub async fn concurrent_pushes_sharing_a_parent_have_one_winner(backend: &dyn SyncBackend) {
    let pushes = (0..8).map(|i| {
        let events = make_events(GlobalSeq::ZERO, 1, &format!("client-{i}"), 10);
        async move { backend.push(events).await }
    });
    let results = join_all(pushes).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for result in &results {
        match result {
            Ok(()) => {}
            Err(BackendError::ServerAhead { head }) => assert_eq!(*head, GlobalSeq(1)),
            Err(e) => panic!("a losing push failed with {e}, not ServerAhead"),
        }
    }
    assert_eq!(pull_events(backend, GlobalSeq::ZERO).await.len(), 1);
}

/// A push whose first parent is behind the head gets `ServerAhead` with the head.
pub async fn push_behind_head_gives_server_ahead(backend: &dyn SyncBackend) {
    backend
        .push(make_events(GlobalSeq::ZERO, 3, "client-a", 10))
        .await
        .expect("push");
    for parent in [0, 1, 2] {
        match backend
            .push(make_events(GlobalSeq(parent), 1, "client-b", 10))
            .await
        {
            Err(BackendError::ServerAhead { head }) => assert_eq!(head, GlobalSeq(3)),
            other => panic!("push on e{parent} gave {other:?}, not ServerAhead"),
        }
    }
    assert_eq!(pull_events(backend, GlobalSeq::ZERO).await.len(), 3);
}

/// Empty, misnumbered and over-long batches are refused as `Invalid` and change nothing.
pub async fn malformed_batches_are_invalid(backend: &dyn SyncBackend) {
    let mut gap = make_events(GlobalSeq::ZERO, 3, "client-a", 10);
    gap.remove(1);
    let mut bad_parent = make_events(GlobalSeq::ZERO, 1, "client-a", 10);
    bad_parent[0].parent_seq_num = GlobalSeq(5);
    let too_many = make_events(
        GlobalSeq::ZERO,
        backend.info().capabilities.max_events_per_push + 1,
        "client-a",
        1,
    );
    for (what, batch) in [
        ("empty", Vec::new()),
        ("gap", gap),
        ("bad parent", bad_parent),
        ("too many", too_many),
    ] {
        match backend.push(batch).await {
            Err(BackendError::Invalid { .. }) => {}
            other => panic!("{what} batch gave {other:?}, not Invalid"),
        }
    }
    assert_eq!(backend.head().await.expect("head"), GlobalSeq::ZERO);
}

/// One event larger than a push may be is `Invalid`, with a message naming it.
pub async fn oversize_event_is_invalid(backend: &dyn SyncBackend) {
    let limit = backend.info().capabilities.max_bytes_per_push;
    let events = make_events(GlobalSeq::ZERO, 1, "client-a", limit + 1);
    match backend.push(events).await {
        Err(BackendError::Invalid { message }) => {
            assert!(message.contains("e1"), "{message}");
            assert!(message.contains("never"), "{message}");
        }
        other => panic!("oversize event gave {other:?}, not Invalid"),
    }
    assert_eq!(backend.head().await.expect("head"), GlobalSeq::ZERO);
}

/// `info()` names the store and stays free of credentials.
pub async fn backend_info_names_the_store(backend: &dyn SyncBackend) {
    let info = backend.info();
    assert!(!info.store_id.is_empty());
    assert!(info.capabilities.live_pull);
    assert!(!info.url.contains('@'), "credentials in {}", info.url);
    backend.ping().await.expect("ping");
}

/// N clients (separate caches) each push 20 events in batches of 1 to 5, retrying on
/// `ServerAhead`; the log ends as one gapless chain holding every event exactly once, each
/// client's events in their order.
pub async fn concurrent_pushers_build_one_gapless_chain(fixture: &Fixture) {
    const PER_PUSHER: usize = 20;
    let store_id = fixture.store_id("chain");
    let pushers = (0..fixture.pushers).map(|p| {
        let client = fixture.client(&store_id);
        async move {
            let name = format!("pusher-{p}");
            let mut rng = rand::rngs::SmallRng::seed_from_u64(p as u64);
            let mut head = GlobalSeq::ZERO;
            let mut sent = 0;
            while sent < PER_PUSHER {
                let n = rng.random_range(1..=5).min(PER_PUSHER - sent);
                loop {
                    let mut batch = make_events(head, n, &name, 10);
                    for (i, event) in batch.iter_mut().enumerate() {
                        event.args = serde_json::json!({ "n": sent + i });
                    }
                    match client.push(batch).await {
                        Ok(()) => {
                            head = GlobalSeq(head.0 + n as u64);
                            sent += n;
                            break;
                        }
                        Err(BackendError::ServerAhead { head: newer }) => {
                            assert!(newer > head, "ServerAhead must report a newer head");
                            head = newer;
                            let jitter = rng.random_range(0..3);
                            tokio::time::sleep(Duration::from_millis(jitter)).await;
                        }
                        Err(e) if e.is_retryable() => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("{name}: push failed: {e}"),
                    }
                }
            }
        }
    });
    join_all(pushers).await;
    let reader = fixture.client(&store_id);
    let events = read_all(&reader).await;
    assert_eq!(events.len(), fixture.pushers * PER_PUSHER);
    let mut by_pusher: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in &events {
        let n = event.args["n"].as_u64().expect("n");
        by_pusher.entry(&event.client_id).or_default().push(n);
    }
    assert_eq!(by_pusher.len(), fixture.pushers);
    let expected: Vec<u64> = (0..PER_PUSHER as u64).collect();
    for (name, ns) in by_pusher {
        assert_eq!(
            ns, expected,
            "{name}'s events are missing, doubled or reordered"
        );
    }
}

/// A live pull delivers events another client pushed, after backlog and idle.
pub async fn live_pull_sees_other_clients(fixture: &Fixture) {
    let store_id = fixture.store_id("live-others");
    let reader = fixture.client(&store_id);
    let writer = fixture.client(&store_id);
    let backlog = make_events(GlobalSeq::ZERO, 4, "writer", 10);
    push_in_batches(&writer, &backlog, 2).await;
    let mut stream = reader.pull(GlobalSeq(1), true).await.expect("live pull");
    let mut seen = Vec::new();
    loop {
        let page = next_page(&mut stream, "backlog").await;
        seen.extend(page.events);
        if page.page_info == PageInfo::NoMore {
            break;
        }
    }
    assert_eq!(seen, backlog[1..].to_vec());
    let later = make_events(GlobalSeq(4), 3, "writer", 10);
    writer.push(later.clone()).await.expect("push");
    let page = next_page(&mut stream, "events pushed by another client").await;
    assert_eq!(page.events, later);
}

/// A client that knows nothing finds the tail (cold start), pushes on it, and a client
/// with a stale cache gets `ServerAhead` with the true head.
pub async fn cold_client_finds_the_tail(fixture: &Fixture) {
    let store_id = fixture.store_id("cold");
    let first = fixture.client(&store_id);
    let events = make_events(GlobalSeq::ZERO, 10, "first", 10);
    push_in_batches(&first, &events, 2).await;
    let cold = fixture.client(&store_id);
    assert_eq!(cold.head().await.expect("head"), GlobalSeq(10));
    cold.push(make_events(GlobalSeq(10), 2, "cold", 10))
        .await
        .expect("push on the discovered tail");
    match first.push(make_events(GlobalSeq(10), 1, "first", 10)).await {
        Err(BackendError::ServerAhead { head }) => assert_eq!(head, GlobalSeq(12)),
        other => panic!("stale push gave {other:?}, not ServerAhead"),
    }
    assert_eq!(first.head().await.expect("head"), GlobalSeq(12));
    let all = read_all(&fixture.client(&store_id)).await;
    assert_eq!(all.len(), 12);
}
