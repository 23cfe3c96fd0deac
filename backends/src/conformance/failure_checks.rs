//! Conformance checks of failure handling: ambiguous writes, damaged and foreign segments,
//! racing creators, bad store ids, and stores that ignore preconditions. Wiped stores are in
//! `wipe_checks.rs`.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::join_all;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{
    CheckThenWriteStore, CreateFault, FaultStore, Fixture, make_events, pull_events, pull_items,
    push_in_batches, read_all,
};
use crate::probe::probe_with;
use crate::segment_log::SegmentLog;
use crate::{BackendError, GlobalSeq, SyncBackend};

/// Every injected ambiguity (reply lost after the write, `AlreadyExists` from a retry of
/// our own write, failure before the write) ends in exactly one copy of the batch.
pub async fn ambiguous_writes_succeed_exactly_once(fixture: &Fixture) {
    let store_id = fixture.store_id("ambiguous");
    let faults = Arc::new(FaultStore::new(fixture.store.clone()));
    let client = fixture.client_over(faults.clone(), &store_id);
    client
        .backend_id()
        .await
        .expect("create store.json before injecting");
    let mut head = GlobalSeq::ZERO;
    for fault in [
        CreateFault::LoseReply,
        CreateFault::ExistsAfterWrite,
        CreateFault::FailBeforeWrite,
    ] {
        faults.inject(fault);
        let batch = make_events(head, 3, "client-a", 10);
        client
            .push(batch)
            .await
            .unwrap_or_else(|e| panic!("push under {fault:?} failed: {e}"));
        assert_eq!(faults.pending_faults(), 0, "{fault:?} was not exercised");
        head = GlobalSeq(head.0 + 3);
    }
    let reader = fixture.client(&store_id);
    let events = read_all(&reader).await;
    assert_eq!(events.len(), 9, "each batch exactly once");
    assert_eq!(reader.head().await.expect("head"), GlobalSeq(9));
}

/// An ambiguous create whose key turns out to hold another writer's segment is a lost race:
/// `ServerAhead`, and only the winner's events are in the log.
pub async fn lost_race_after_ambiguous_write_is_server_ahead(fixture: &Fixture) {
    let store_id = fixture.store_id("ambiguous-lost");
    let faults = Arc::new(FaultStore::new(fixture.store.clone()));
    let loser = fixture.client_over(faults.clone(), &store_id);
    let winner = fixture.client(&store_id);
    loser.head().await.expect("warm the loser's cache at e0");
    let won = make_events(GlobalSeq::ZERO, 2, "winner", 10);
    winner.push(won.clone()).await.expect("winner push");
    // The loser's create fails before writing and its read-back finds the winner's segment.
    faults.inject(CreateFault::FailBeforeWrite);
    match loser
        .push(make_events(GlobalSeq::ZERO, 1, "loser", 10))
        .await
    {
        Err(BackendError::ServerAhead { head }) => assert_eq!(head, GlobalSeq(2)),
        other => panic!("lost ambiguous push gave {other:?}, not ServerAhead"),
    }
    assert_eq!(pull_events(&winner, GlobalSeq::ZERO).await, won);
}

/// Writes three segments (e1-e2, e3-e4, e5-e6), replaces the middle one via `damage`, and
/// checks that a fresh client's pull yields e1-e2, then `Corrupt` naming the key, then ends.
async fn damaged_middle_segment_fails_pull(
    fixture: &Fixture,
    label: &str,
    damage: impl AsyncFnOnce(&Arc<dyn ObjectStore>, &object_store::path::Path),
) {
    let store_id = fixture.store_id(label);
    let writer = fixture.client(&store_id);
    push_in_batches(&writer, &make_events(GlobalSeq::ZERO, 6, "writer", 50), 2).await;
    let key = writer
        .log_paths()
        .await
        .expect("the log's keys")
        .segment(GlobalSeq(3));
    damage(&fixture.store, &key).await;

    let reader = fixture.client(&store_id);
    let items = pull_items(&reader, GlobalSeq::ZERO).await;
    let mut delivered = Vec::new();
    let mut error = None;
    for (i, item) in items.iter().enumerate() {
        match item {
            Ok(page) => {
                assert!(error.is_none(), "a page followed the error");
                delivered.extend(page.events.iter().map(|e| e.seq_num));
            }
            Err(e) => {
                assert_eq!(i, items.len() - 1, "the error must end the stream");
                error = Some(e);
            }
        }
    }
    assert_eq!(
        delivered,
        vec![GlobalSeq(1), GlobalSeq(2)],
        "events before the damage"
    );
    match error {
        Some(BackendError::Corrupt { key: named, .. }) => assert_eq!(*named, key.to_string()),
        other => panic!("{label}: expected Corrupt naming {key}, got {other:?}"),
    }
    // A live pull fails the same way, after the same good events.
    let mut live = reader.pull(GlobalSeq::ZERO, true).await.expect("live pull");
    let first = live.next().await.expect("an item").expect("the good page");
    assert_eq!(first.events.len(), 2);
    match live.next().await {
        Some(Err(BackendError::Corrupt { key: named, .. })) => assert_eq!(named, key.to_string()),
        other => panic!("{label}: live pull gave {other:?}, not Corrupt"),
    }
}

async fn read(store: &Arc<dyn ObjectStore>, key: &object_store::path::Path) -> Vec<u8> {
    let result = store.get(key).await.expect("read segment");
    result.bytes().await.expect("read segment body").to_vec()
}

async fn overwrite(store: &Arc<dyn ObjectStore>, key: &object_store::path::Path, bytes: Vec<u8>) {
    store
        .put(key, PutPayload::from(bytes))
        .await
        .expect("overwrite segment");
}

/// A segment with one flipped byte fails the pull, naming its key, after the good events.
pub async fn corrupted_segment_fails_pull_naming_key(fixture: &Fixture) {
    damaged_middle_segment_fails_pull(fixture, "corrupt", async |store, key| {
        let mut bytes = read(store, key).await;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        overwrite(store, key, bytes).await;
    })
    .await;
}

/// A truncated segment fails the pull, naming its key, after the good events.
pub async fn truncated_segment_fails_pull_naming_key(fixture: &Fixture) {
    damaged_middle_segment_fails_pull(fixture, "truncated", async |store, key| {
        let mut bytes = read(store, key).await;
        bytes.truncate(bytes.len() * 2 / 3);
        overwrite(store, key, bytes).await;
    })
    .await;
}

/// A valid segment of another store, copied in at the right number, fails the pull, naming
/// its key, after the good events.
pub async fn foreign_segment_fails_pull_naming_key(fixture: &Fixture) {
    let other_id = fixture.store_id("foreign-source");
    let other = fixture.client(&other_id);
    push_in_batches(&other, &make_events(GlobalSeq::ZERO, 6, "writer", 50), 2).await;
    let foreign_key = other
        .log_paths()
        .await
        .expect("the log's keys")
        .segment(GlobalSeq(3));
    let foreign = read(&fixture.store, &foreign_key).await;
    damaged_middle_segment_fails_pull(fixture, "foreign", async move |store, key| {
        overwrite(store, key, foreign).await;
    })
    .await;
}

/// A segment deleted from the middle of the log (append-only stores never do this, so
/// someone tampered with it) fails a fresh client's pull, naming the missing key, after the
/// good events: the gap is not taken for the end of the log.
pub async fn missing_segment_fails_pull_naming_key(fixture: &Fixture) {
    damaged_middle_segment_fails_pull(fixture, "missing", async |store, key| {
        store.delete(key).await.expect("delete segment");
    })
    .await;
}

/// 16 clients creating a store at once agree on one backend id.
pub async fn racing_creators_share_one_backend_id(fixture: &Fixture) {
    let store_id = fixture.store_id("creators");
    let clients: Vec<_> = (0..16).map(|_| fixture.client(&store_id)).collect();
    let ids = join_all(clients.iter().map(|c| c.backend_id())).await;
    let ids: Vec<String> = ids.into_iter().map(|r| r.expect("backend id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "creators diverged: {ids:?}"
    );
}

/// Store ids that are not one safe key segment are refused, naming the id.
pub async fn invalid_store_id_is_refused(fixture: &Fixture) {
    for id in ["../x", "", "a/b", ".hidden", "nul\0byte"] {
        match SegmentLog::new(
            fixture.store.clone(),
            fixture.prefix.clone(),
            id,
            fixture.config.clone(),
        ) {
            Err(BackendError::Invalid { message }) => {
                assert!(
                    message.contains(&id.escape_default().to_string()),
                    "{message}"
                );
            }
            other => panic!("store id {id:?} gave {other:?}"),
        }
    }
}

/// The capability probe passes on this store.
pub async fn probe_accepts_the_store(fixture: &Fixture) {
    let report = probe_with(fixture.store.clone(), &fixture.prefix, fixture.probe).await;
    assert!(report.passed(), "{}: probe failed:\n{report}", fixture.name);
    let leftovers: Vec<_> = fixture
        .store
        .list(Some(&fixture.prefix.clone().join(crate::paths::PROBE_DIR)))
        .collect()
        .await;
    assert!(
        leftovers.is_empty(),
        "the probe left {} keys",
        leftovers.len()
    );
}

/// The probe refuses the same store behind a wrapper that turns Create into Overwrite.
pub async fn probe_refuses_a_store_that_ignores_create(fixture: &Fixture) {
    let broken: Arc<dyn ObjectStore> = Arc::new(FaultStore::ignoring_create(fixture.store.clone()));
    let report = probe_with(broken, &fixture.prefix, fixture.probe).await;
    assert!(
        !report.passed(),
        "the probe accepted a broken store:\n{report}"
    );
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.passed).collect();
    assert_eq!(failed[0].name, "create-twice", "{report}");
    assert!(report.to_string().contains("FAIL"));
}

/// The probe refuses the same store behind a wrapper whose creates are a check, then a
/// write: right one at a time (create-twice passes), wrong when creates race (create-race
/// fails). The window between check and write (100 ms) makes racers on a store with real
/// latency overlap; the probe stops at the first round with more than one winner.
pub async fn probe_refuses_a_store_that_checks_then_writes(fixture: &Fixture) {
    let broken: Arc<dyn ObjectStore> = Arc::new(
        CheckThenWriteStore::new(fixture.store.clone())
            .with_window(std::time::Duration::from_millis(100)),
    );
    let report = probe_with(broken, &fixture.prefix, fixture.probe).await;
    assert!(
        !report.passed(),
        "{}: the probe accepted a check-then-write store:\n{report}",
        fixture.name
    );
    let outcomes: Vec<_> = report
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.passed))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("create", true),
            ("create-twice", true),
            ("create-race", false)
        ],
        "{}: {report}",
        fixture.name
    );
    assert!(
        report.checks[2]
            .detail
            .contains("concurrent creates on one key succeeded"),
        "{report}"
    );
}
