//! Conformance checks of a wiped or replaced store: every object of the store deleted (what
//! `rm -r` of its folder or emptying its bucket prefix does), maybe recreated by another
//! client, while a client still holds the old identity and tail in its caches.

use std::time::Duration;

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use super::{Fixture, make_events, pull_events, pull_items, push_in_batches, read_all};
use crate::segment_log::{SegmentLog, SegmentLogConfig};
use crate::{BackendError, GlobalSeq, PageInfo, SyncBackend};

/// How long a live pull may take to notice a wipe: many times its `identity_check`.
const NOTICE_WITHIN: Duration = Duration::from_secs(60);

/// Deletes every object of a store (what "wiping the bucket prefix" does).
async fn wipe(fixture: &Fixture, log: &SegmentLog) {
    let keys: Vec<_> = fixture.store.list(Some(log.paths().root())).collect().await;
    assert!(!keys.is_empty(), "{}: nothing to wipe", fixture.name);
    for meta in keys {
        let meta = meta.expect("list store objects");
        fixture.store.delete(&meta.location).await.expect("delete");
    }
}

/// Asserts that `result` is a `BackendIdMismatch` from `expected` to `found`.
fn assert_mismatch<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, BackendError>,
    expected: &str,
    found: Option<&str>,
) {
    match result {
        Err(BackendError::BackendIdMismatch {
            expected: e,
            found: f,
        }) => {
            assert_eq!(e, expected, "{what}: the id it worked with");
            assert_eq!(f.as_deref(), found, "{what}: the id it found");
        }
        other => panic!("{what} gave {other:?}, not BackendIdMismatch"),
    }
}

/// Wiping a store and using it again gives a new backend id, to new clients, and to an old
/// client once it re-reads the id explicitly ([`SyncBackend::backend_id`]); the old client
/// then forgets what it knew of the old log.
pub async fn wiped_store_changes_backend_id(fixture: &Fixture) {
    let store_id = fixture.store_id("wiped");
    let old = fixture.client(&store_id);
    old.push(make_events(GlobalSeq::ZERO, 2, "old", 10))
        .await
        .expect("push");
    let before = old.backend_id().await.expect("backend id");
    assert_eq!(
        old.backend_id().await.expect("backend id"),
        before,
        "stable"
    );
    wipe(fixture, &old).await;
    let fresh = fixture.client(&store_id);
    let after = fresh.backend_id().await.expect("backend id");
    assert_ne!(before, after, "a recreated store must get a new backend id");
    assert_eq!(fresh.head().await.expect("head"), GlobalSeq::ZERO);
    assert_eq!(old.backend_id().await.expect("backend id"), after);
    assert_eq!(old.head().await.expect("head"), GlobalSeq::ZERO);
}

/// A client with a cached identity and tail pushes after its store was wiped: the push is a
/// `BackendIdMismatch` (found: none), it does not recreate `store.json`, and a fresh client
/// reads a valid, empty store. After the store is recreated, the stale client's pushes,
/// pulls and tail discovery say `BackendIdMismatch` with the new id, its segment is nowhere
/// in the new store, and an explicit re-read of the id moves it to the new store.
pub async fn push_after_wipe_is_backend_id_mismatch(fixture: &Fixture) {
    let store_id = fixture.store_id("stale-writer");
    let stale = fixture.client(&store_id);
    push_in_batches(&stale, &make_events(GlobalSeq::ZERO, 3, "stale", 10), 2).await;
    let old_id = stale.backend_id().await.expect("backend id");
    wipe(fixture, &stale).await;

    let late = make_events(GlobalSeq(3), 1, "stale", 10);
    assert_mismatch(
        "a push after the wipe",
        stale.push(late.clone()).await,
        &old_id,
        None,
    );
    match fixture.store.head(&stale.paths().store_json()).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => panic!("a push recreated (or could not tell about) store.json: {other:?}"),
    }
    assert_mismatch(
        "tail discovery after the wipe",
        stale.head().await,
        &old_id,
        None,
    );

    let fresh = fixture.client(&store_id);
    let new_id = fresh
        .backend_id()
        .await
        .expect("a fresh client recreates the store");
    assert_ne!(new_id, old_id, "a recreated store gets a new backend id");
    assert!(pull_events(&fresh, GlobalSeq::ZERO).await.is_empty());
    assert_eq!(fresh.head().await.expect("head"), GlobalSeq::ZERO);

    assert_mismatch(
        "a push after the store was recreated",
        stale.push(late.clone()).await,
        &old_id,
        Some(&new_id),
    );
    assert_mismatch(
        "a push on the new store's head",
        stale
            .push(make_events(GlobalSeq::ZERO, 1, "stale", 10))
            .await,
        &old_id,
        Some(&new_id),
    );
    let items = pull_items(&stale, GlobalSeq(3)).await;
    assert_eq!(items.len(), 1, "the error ends the pull: {items:?}");
    assert_mismatch(
        "a pull after the store was recreated",
        items.into_iter().next().expect("an item"),
        &old_id,
        Some(&new_id),
    );

    let mine = make_events(GlobalSeq::ZERO, 2, "fresh", 10);
    fresh
        .push(mine.clone())
        .await
        .expect("push on the new store");
    let reader = fixture.client(&store_id);
    let events = read_all(&reader).await;
    assert_eq!(events, mine, "only the new store's events");

    assert_eq!(stale.backend_id().await.expect("re-read"), new_id);
    assert_eq!(stale.head().await.expect("head"), GlobalSeq(2));
    stale
        .push(make_events(GlobalSeq(2), 1, "stale", 10))
        .await
        .expect("after the re-read, pushes go to the new store");
    assert_eq!(pull_events(&reader, GlobalSeq::ZERO).await.len(), 3);
}

/// A live pull that only reads (it never pushes) notices that its store was wiped and
/// recreated: after its `identity_check`, the stream yields `BackendIdMismatch` and ends.
pub async fn live_pull_notices_a_wiped_store(fixture: &Fixture) {
    let store_id = fixture.store_id("wiped-reader");
    let writer = fixture.client(&store_id);
    push_in_batches(&writer, &make_events(GlobalSeq::ZERO, 2, "writer", 10), 1).await;
    let config = SegmentLogConfig {
        identity_check: Duration::from_millis(100),
        ..fixture.config.clone()
    };
    let reader = match SegmentLog::new(
        fixture.store.clone(),
        fixture.prefix.clone(),
        &store_id,
        config,
    ) {
        Ok(reader) => reader,
        Err(e) => panic!("{}: cannot make a reader: {e}", fixture.name),
    };
    let old_id = reader.backend_id().await.expect("backend id");
    let mut stream = reader.pull(GlobalSeq::ZERO, true).await.expect("live pull");
    let mut seen = 0;
    loop {
        let page = stream.next().await.expect("an item").expect("the backlog");
        seen += page.events.len();
        if page.page_info == PageInfo::NoMore {
            break;
        }
    }
    assert_eq!(seen, 2);

    wipe(fixture, &writer).await;
    let new_id = fixture
        .client(&store_id)
        .backend_id()
        .await
        .expect("another client recreates the store");
    let item = match tokio::time::timeout(NOTICE_WITHIN, stream.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("the live pull ended without an error"),
        Err(_) => panic!("the live pull did not notice the wipe within {NOTICE_WITHIN:?}"),
    };
    // It may look between the wipe and the re-creation (no store.json) or after it.
    match item {
        Err(BackendError::BackendIdMismatch { expected, found }) => {
            assert_eq!(expected, old_id);
            assert!(
                found.is_none() || found.as_deref() == Some(new_id.as_str()),
                "found {found:?}"
            );
        }
        other => panic!("the live pull gave {other:?}, not BackendIdMismatch"),
    }
    assert!(stream.next().await.is_none(), "the error ends the stream");
}
