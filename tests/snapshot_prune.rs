//! Snapshot retention: a prune keeps exactly the newest `keep` snapshots of each schema hash
//! and deletes the rest; a fresh client, `verify` and `copy` work after it; a leader prunes
//! after each snapshot it writes, while fresh clients boot; a snapshot deleted between a
//! reader's LIST and its GET is skipped, not a fault: the boot falls back to the next one
//! (or the log), `verify` passes, `copy` skips it. The prune scenario runs on memory, on a
//! folder, and on S3 when `EVENTSYNC_TEST_S3_URL` is set.

mod support;

use std::sync::Arc;

use eventsync::backends::copy::copy_store;
use eventsync::backends::{BackendError, GlobalSeq, SnapshotPut};
use eventsync::{SnapshotBoot, Store, Tuning};
use eventsync_todo::todo_schema;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use support::snapshot::{Bucket, assert_booted_from, changed_schema, temp_dirs, todos};
use support::vanishing::VanishingStore;
use support::{backend_log, commit_todos, fast_tuning, todos_from_scratch, wait_until};

/// Every snapshot key of the bucket's store, sorted.
async fn snapshot_keys(bucket: &Bucket) -> Vec<String> {
    let mut keys: Vec<String> = bucket
        .store
        .list(Some(&bucket.prefix.clone().join(bucket.store_id.as_str())))
        .map_ok(|meta| meta.location.to_string())
        .try_collect::<Vec<_>>()
        .await
        .expect("the bucket lists")
        .into_iter()
        .filter(|key| key.ends_with(".snap"))
        .collect();
    keys.sort();
    keys
}

/// `rounds` times: commits todos on `writer`, then writes a snapshot; the puts, oldest first.
async fn snapshots(writer: &Store, from: usize, rounds: usize) -> Vec<SnapshotPut> {
    let mut puts = Vec::new();
    for round in 0..rounds {
        commit_todos(writer, from + round * 10, 10, 5).await;
        let put = writer.snapshot().await.expect("a snapshot");
        assert!(put.created, "{put:?}");
        puts.push(put);
    }
    puts
}

fn sorted(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut keys: Vec<String> = keys.into_iter().collect();
    keys.sort();
    keys
}

/// The whole prune scenario on one bucket.
async fn prune_run(bucket: Bucket) {
    let schema = Arc::new(todo_schema());
    let dirs = temp_dirs(4);
    let writer = bucket.open(&schema, dirs[0].path(), fast_tuning()).await;
    let puts = snapshots(&writer, 0, 4).await;
    // Another schema (another version of the app) has snapshots of its own.
    let other_schema = changed_schema();
    let other = bucket
        .open(&other_schema, dirs[1].path(), fast_tuning())
        .await;
    let mut others = Vec::new();
    for round in 0..2 {
        commit_todos(&writer, 100 + round * 5, 5, 5).await;
        other.sync().await.expect("sync");
        others.push(other.snapshot().await.expect("a snapshot"));
    }
    other.shutdown().await.expect("shutdown");
    let log = backend_log(&writer.backend().expect("online")).await;
    assert_eq!(snapshot_keys(&bucket).await.len(), 6);

    // The newest 2 of each schema stay; the 2 oldest of the todo schema go.
    let pruned = bucket.client().prune_snapshots(2).await.expect("a prune");
    let kept = sorted(puts[2..].iter().chain(&others).map(|put| put.key.clone()));
    assert_eq!(sorted(pruned.kept.clone()), kept);
    assert_eq!(
        pruned.deleted,
        [puts[0].key.clone(), puts[1].key.clone()],
        "oldest first"
    );
    assert_eq!(snapshot_keys(&bucket).await, kept);
    // Again: nothing more to delete.
    let again = bucket.client().prune_snapshots(2).await.expect("a prune");
    assert!(again.deleted.is_empty(), "{again:?}");
    assert_eq!(sorted(again.kept), kept);
    // Keeping none is refused: it would delete every snapshot.
    let error = bucket
        .client()
        .prune_snapshots(0)
        .await
        .expect_err("refused");
    assert!(matches!(error, BackendError::Invalid { .. }), "{error}");
    assert_eq!(snapshot_keys(&bucket).await, kept);

    // A fresh client boots from the newest; verify (with a replay) and copy pass.
    let fresh = bucket.open(&schema, dirs[2].path(), fast_tuning()).await;
    assert_booted_from(&fresh, &schema, &puts[3].key, puts[3].at, &log).await;
    fresh.shutdown().await.expect("shutdown");
    for replay in [false, true] {
        let report = bucket.verify(&schema, replay).await;
        assert!(report.is_sound(), "{:?}", report.faults);
        assert_eq!(report.families[1].checked, 4);
    }
    let target = Bucket::memory();
    let copied = copy_store(&bucket.location(), &target.location(), &|_, _| {})
        .await
        .expect("the copy");
    assert_eq!(copied.vanished, 0);
    assert_eq!(copied.verified_events, log.len() as u64);
    assert_eq!(snapshot_keys(&target).await.len(), 4);
    let report = target.verify(&schema, true).await;
    assert!(report.is_sound(), "{:?}", report.faults);
    let moved = target.open(&schema, dirs[3].path(), fast_tuning()).await;
    match moved.snapshot_boot() {
        SnapshotBoot::Loaded { at, refused, .. } => {
            assert_eq!((*at, refused.len()), (puts[3].at.0, 0));
        }
        other => panic!("the copy's client did not boot from the newest snapshot: {other:?}"),
    }
    moved.sync().await.expect("sync");
    assert_eq!(todos(&moved).await, todos_from_scratch(&schema, &log));
    moved.shutdown().await.expect("shutdown");
    writer.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn test_prune_on_memory() {
    prune_run(Bucket::memory()).await;
}

#[tokio::test]
async fn test_prune_on_a_folder() {
    let folder = tempfile::tempdir().expect("a temp dir");
    prune_run(Bucket::folder(folder.path(), "prune")).await;
}

#[tokio::test]
async fn test_prune_on_s3() {
    if let Some(bucket) = Bucket::s3("test_prune_on_s3", "prune") {
        prune_run(bucket).await;
    }
}

#[tokio::test]
async fn test_a_leader_prunes_after_it_writes_while_clients_boot() {
    let bucket = Bucket::memory();
    let schema = Arc::new(todo_schema());
    let dirs = temp_dirs(7);
    let tuning = Tuning {
        snapshot_every: 4,
        snapshot_keep: 2,
        ..fast_tuning()
    };
    let writer = bucket.open(&schema, dirs[0].path(), tuning).await;
    let backend = writer.backend().expect("online");
    let mut booted = Vec::new();
    for round in 0..12 {
        commit_todos(&writer, round * 3, 3, 5).await;
        if round % 2 == 1 {
            let dir = dirs[1 + round / 2].path();
            booted.push(bucket.open(&schema, dir, fast_tuning()).await);
        }
    }
    let log = backend_log(&backend).await;
    wait_until("the leader pruned to 2 snapshots", || async {
        snapshot_keys(&bucket).await.len() == 2
    })
    .await;
    let requests = backend.requests().expect("counted");
    assert!(requests.deletes >= 1, "{requests:?}");
    for store in booted {
        assert!(
            matches!(
                store.snapshot_boot(),
                SnapshotBoot::Loaded { refused, .. } if refused.is_empty()
            ) || store.snapshot_boot() == &SnapshotBoot::NoneFound,
            "{:?}",
            store.snapshot_boot()
        );
        store.sync().await.expect("sync");
        wait_until("the client has the whole log", || async {
            store.status().await.expect("status").local_head.global.0 == log.len() as u64
        })
        .await;
        assert_eq!(todos(&store).await, todos_from_scratch(&schema, &log));
        store.shutdown().await.expect("shutdown");
    }
    writer.shutdown().await.expect("shutdown");
    let report = bucket.verify(&schema, true).await;
    assert!(report.is_sound(), "{:?}", report.faults);
    assert_eq!(report.families[1].checked, 2);
}

/// A snapshot deleted between a reader's LIST and its GET: a booting client skips it (not a
/// refusal) and boots from the next older one, or replays the log when every one it listed
/// is gone, unless a newer one was written after its LIST: it lists again; `verify` reports
/// no fault; `copy` skips it and says so.
#[tokio::test]
async fn test_a_snapshot_deleted_between_list_and_get() {
    let vanishing = Arc::new(VanishingStore::new(Arc::new(InMemory::new())));
    let bucket = Bucket::over(vanishing.clone(), "vanish");
    let schema = Arc::new(todo_schema());
    let dirs = temp_dirs(4);
    let writer = bucket.open(&schema, dirs[0].path(), fast_tuning()).await;
    let puts = snapshots(&writer, 0, 3).await;
    let log = backend_log(&writer.backend().expect("online")).await;

    vanishing.arm(1);
    let fresh = bucket.open(&schema, dirs[1].path(), fast_tuning()).await;
    assert!(vanishing.fired());
    assert_booted_from(&fresh, &schema, &puts[1].key, puts[1].at, &log).await;
    fresh.shutdown().await.expect("shutdown");

    vanishing.arm(2);
    let replayer = bucket.open(&schema, dirs[2].path(), fast_tuning()).await;
    assert!(vanishing.fired());
    assert_eq!(replayer.snapshot_boot(), &SnapshotBoot::NoneFound);
    replayer.sync().await.expect("sync");
    assert_eq!(replayer.stats().pulled, log.len() as u64);
    assert_eq!(todos(&replayer).await, todos_from_scratch(&schema, &log));
    replayer.shutdown().await.expect("shutdown");

    // Every snapshot a booting client listed is gone, and a newer one was written meanwhile
    // (after its LIST): it lists again and boots from the newer one, not from the log.
    let puts = snapshots(&writer, 50, 2).await;
    let newer = Path::from(puts[1].key.as_str());
    let bytes = vanishing
        .get(&newer)
        .await
        .expect("the newer snapshot")
        .bytes()
        .await
        .expect("its bytes");
    vanishing
        .delete(&newer)
        .await
        .expect("hidden until the LIST");
    vanishing.arm_replacing(1, newer, bytes);
    let log = backend_log(&writer.backend().expect("online")).await;
    let relisted = bucket.open(&schema, dirs[3].path(), fast_tuning()).await;
    assert!(vanishing.fired());
    assert_booted_from(&relisted, &schema, &puts[1].key, puts[1].at, &log).await;
    relisted.shutdown().await.expect("shutdown");

    // Two snapshots again; verify lists both, one is gone when read.
    vanishing
        .delete(&Path::from(puts[1].key.as_str()))
        .await
        .expect("a clean slate");
    let puts = snapshots(&writer, 100, 2).await;
    vanishing.arm(1);
    let report = bucket.verify(&schema, true).await;
    assert!(vanishing.fired());
    assert!(report.is_sound(), "{:?}", report.faults);
    assert_eq!(report.families[1].checked, 1);
    assert_eq!(snapshot_keys(&bucket).await, [puts[0].key.clone()]);

    // A copy whose source loses a snapshot after listing it: skipped, counted, verified.
    let _ = snapshots(&writer, 200, 1).await;
    vanishing.arm(1);
    let target = Bucket::memory();
    let copied = copy_store(&bucket.location(), &target.location(), &|_, _| {})
        .await
        .expect("the copy");
    assert!(vanishing.fired());
    assert_eq!(copied.vanished, 1);
    let log = backend_log(&writer.backend().expect("online")).await;
    assert_eq!(copied.verified_events, log.len() as u64);
    assert_eq!(snapshot_keys(&target).await.len(), 1);
    let report = target.verify(&schema, true).await;
    assert!(report.is_sound(), "{:?}", report.faults);
    writer.shutdown().await.expect("shutdown");
    let _: GlobalSeq = puts[0].at;
}
