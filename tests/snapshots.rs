//! Snapshots in the bucket: a fresh client boots from the newest snapshot of its schema and
//! pulls only the tail, ending with exactly the state of a client that replayed the whole
//! log; a client of another schema ignores it; a damaged snapshot is refused, named, and the
//! client falls back to the next older snapshot, or replays the log when none is good; two clients snapshotting the same event leave one valid
//! snapshot; a leader with `snapshot_every` writes them by itself. Each scenario runs on
//! memory, on a folder, and on S3 when `EVENTSYNC_TEST_S3_URL` is set.

mod support;

use std::sync::Arc;

use eventsync::backends::GlobalSeq;
use eventsync::backends::conformance::make_events;
use eventsync::{SnapshotBoot, Tuning};
use eventsync_todo::todo_schema;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::Value;
use support::snapshot::{Bucket, assert_booted_from, changed_schema, confirmed, temp_dirs, todos};
use support::{backend_log, commit_todos, fast_tuning, todos_from_scratch, wait_until};

/// Flips a byte in the middle of the object at `key` (a damaged snapshot).
async fn damage(bucket: &Bucket, key: &str) {
    let key = Path::from(key);
    let mut bytes = bucket
        .store
        .get(&key)
        .await
        .expect("the snapshot")
        .bytes()
        .await
        .expect("its bytes")
        .to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    bucket
        .store
        .put(&key, PutPayload::from(bytes))
        .await
        .expect("damage it");
}

/// The whole scenario on one bucket.
async fn snapshot_run(bucket: Bucket) {
    let schema = Arc::new(todo_schema());
    let dirs = temp_dirs(6);

    // A writer commits, snapshots at its confirmed head, and goes on (the tail).
    let writer = bucket.open(&schema, dirs[0].path(), fast_tuning()).await;
    commit_todos(&writer, 0, 40, 5).await;
    let put = writer.snapshot().await.expect("a snapshot");
    assert!(put.created, "{put:?}");
    assert!(
        put.key.ends_with(".snap") && put.key.contains("/snapshots/"),
        "{}",
        put.key
    );
    let at = confirmed(&writer).await;
    // A second snapshot at the same event writes nothing.
    assert!(!writer.snapshot().await.expect("again").created);
    commit_todos(&writer, 40, 15, 5).await;
    let log = backend_log(&writer.backend().expect("online")).await;
    assert!(log.len() as u64 > at.0);

    // A fresh client boots from the snapshot and pulls the tail only.
    let fresh = bucket.open(&schema, dirs[1].path(), fast_tuning()).await;
    assert_booted_from(&fresh, &schema, &put.key, at, &log).await;
    let expected = todos_from_scratch(&schema, &log);
    assert_eq!(todos(&writer).await, expected);
    // Its eventlog starts after the snapshot; its heads are the log's.
    let eventlog = fresh.eventlog().await.expect("eventlog");
    assert_eq!(eventlog.first().map(|e| e.seq.global), Some(at.next()));
    let status = fresh.status().await.expect("status");
    assert_eq!(status.local_head.global.0, log.len() as u64);
    assert_eq!(status.backend_head, Some(GlobalSeq(log.len() as u64)));

    // A client that replays the whole log ends identical.
    let replayer = bucket.open_replayer(&schema, dirs[2].path()).await;
    replayer.sync().await.expect("sync");
    assert_eq!(replayer.snapshot_boot(), &SnapshotBoot::NotTried);
    assert_eq!(todos(&replayer).await, expected);

    // The snapshot-booted client writes on (its pending events rebase on others' work), and
    // every replica converges; reopened, it keeps its state without a second boot.
    commit_todos(&fresh, 100, 5, 5).await;
    commit_todos(&replayer, 200, 5, 5).await;
    for store in [&writer, &fresh, &replayer] {
        store.sync().await.expect("sync");
    }
    let log = backend_log(&writer.backend().expect("online")).await;
    let expected = todos_from_scratch(&schema, &log);
    for store in [&writer, &fresh, &replayer] {
        wait_until("the replica has the whole log", || async {
            store.status().await.expect("status").local_head.global.0 == log.len() as u64
        })
        .await;
        assert_eq!(todos(store).await, expected);
    }
    fresh.shutdown().await.expect("shutdown");
    let fresh = bucket.open(&schema, dirs[1].path(), fast_tuning()).await;
    assert_eq!(fresh.snapshot_boot(), &SnapshotBoot::NotTried);
    fresh.sync().await.expect("sync");
    assert_eq!(todos(&fresh).await, expected);
    fresh.shutdown().await.expect("shutdown");

    // Another schema ignores the todo schema's snapshots and replays the log.
    let other = changed_schema();
    assert_ne!(other.hash(), schema.hash());
    let changed = bucket.open(&other, dirs[3].path(), fast_tuning()).await;
    assert_eq!(changed.snapshot_boot(), &SnapshotBoot::NoneFound);
    changed.sync().await.expect("sync");
    assert_eq!(changed.stats().pulled, log.len() as u64);
    assert_eq!(todos(&changed).await, expected);
    changed.shutdown().await.expect("shutdown");

    // Two clients snapshot the same event: one creates it, the other moves on.
    writer.sync().await.expect("sync");
    replayer.sync().await.expect("sync");
    let (a, b) = tokio::join!(writer.snapshot(), replayer.snapshot());
    let (a, b) = (a.expect("a snapshot"), b.expect("a snapshot"));
    assert_eq!(a.key, b.key);
    assert!(
        a.created != b.created,
        "exactly one created it: {a:?} {b:?}"
    );

    // A damaged newest snapshot is refused, named, and the client falls back to the next
    // older snapshot of its schema (the first one), not to a replay of the whole log.
    damage(&bucket, &a.key).await;
    let fallback = bucket.open(&schema, dirs[4].path(), fast_tuning()).await;
    match fallback.snapshot_boot() {
        SnapshotBoot::Loaded {
            key,
            at: loaded_at,
            refused,
        } => {
            assert_eq!((key, *loaded_at), (&put.key, at.0));
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].key, a.key);
            assert!(refused[0].message.contains("checksum"), "{refused:?}");
        }
        other => panic!("the client did not fall back to the older snapshot: {other:?}"),
    }
    fallback.sync().await.expect("sync");
    assert_eq!(fallback.stats().pulled, log.len() as u64 - at.0);
    assert_eq!(todos(&fallback).await, expected);
    fallback.shutdown().await.expect("shutdown");
    // verify names it.
    let report = bucket.verify(&schema, false).await;
    assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
    assert_eq!(report.faults[0].key, a.key);

    // With every snapshot damaged, each is refused and named, and the client replays the log.
    damage(&bucket, &put.key).await;
    let refused = bucket.open(&schema, dirs[5].path(), fast_tuning()).await;
    match refused.snapshot_boot() {
        SnapshotBoot::Refused { refused } => {
            let keys: Vec<&str> = refused.iter().map(|r| r.key.as_str()).collect();
            assert_eq!(keys, [a.key.as_str(), put.key.as_str()], "newest first");
        }
        other => panic!("the damaged snapshots were not refused: {other:?}"),
    }
    refused.sync().await.expect("sync");
    assert_eq!(refused.stats().pulled, log.len() as u64);
    assert_eq!(todos(&refused).await, expected);
    refused.shutdown().await.expect("shutdown");

    writer.shutdown().await.expect("shutdown");
    replayer.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn test_snapshots_on_memory() {
    snapshot_run(Bucket::memory()).await;
}

#[tokio::test]
async fn test_snapshots_on_a_folder() {
    let folder = tempfile::tempdir().expect("a temp dir");
    snapshot_run(Bucket::folder(folder.path(), "snap")).await;
}

#[tokio::test]
async fn test_snapshots_on_s3() {
    if let Some(bucket) = Bucket::s3("test_snapshots_on_s3", "snap") {
        snapshot_run(bucket).await;
    }
}

#[tokio::test]
async fn test_a_leader_writes_a_snapshot_every_n_confirmed_events() {
    let bucket = Bucket::memory();
    let schema = Arc::new(todo_schema());
    let dir = tempfile::tempdir().expect("a temp dir");
    let tuning = Tuning {
        snapshot_every: 10,
        ..fast_tuning()
    };
    let writer = bucket.open(&schema, dir.path(), tuning).await;
    commit_todos(&writer, 0, 30, 5).await;
    let backend = writer.backend().expect("online");
    wait_until("a snapshot was written", || async {
        backend
            .latest_snapshot(&schema.hash(), None)
            .await
            .expect("the bucket answers")
            .found
            .is_some_and(|found| found.snapshot.at.0 >= 10)
    })
    .await;
    writer.shutdown().await.expect("shutdown");
    let fresh_dir = tempfile::tempdir().expect("a temp dir");
    let fresh = bucket.open(&schema, fresh_dir.path(), fast_tuning()).await;
    assert!(
        matches!(fresh.snapshot_boot(), SnapshotBoot::Loaded { .. }),
        "{:?}",
        fresh.snapshot_boot()
    );
    fresh.sync().await.expect("sync");
    let log = backend_log(&backend).await;
    assert_eq!(todos(&fresh).await, todos_from_scratch(&schema, &log));
    fresh.shutdown().await.expect("shutdown");
}

/// A snapshot whose state is not the log's (written by a buggy or hostile client with
/// bucket credentials) passes the checks that need no replay, and `verify --snapshots`
/// names it. A snapshot cannot claim an event that does not end a segment.
#[tokio::test]
async fn test_verify_with_replay_finds_a_snapshot_whose_state_is_not_the_logs() {
    let bucket = Bucket::memory();
    let schema = Arc::new(todo_schema());
    let dir = tempfile::tempdir().expect("a temp dir");
    let writer = bucket.open(&schema, dir.path(), fast_tuning()).await;
    commit_todos(&writer, 0, 12, 5).await;
    let at = confirmed(&writer).await;
    // The state of another history: one todo the log never created.
    let other = rusqlite::Connection::open_in_memory().expect("a database");
    schema.create_tables(&other).expect("tables");
    other
        .execute(
            "INSERT INTO todos (id, text, completed, created_seq) VALUES ('x', 'forged', 0, 1)",
            [],
        )
        .expect("insert");
    let forged = eventsync::snapshot::image::state_of(&other, &schema).expect("a state");
    let backend = bucket.client();
    let put = eventsync::snapshot::put(&*backend, &schema.hash(), at, forged.clone(), "liar")
        .await
        .expect("the backend takes it: it cannot tell");
    assert!(put.created);
    let report = bucket.verify(&schema, false).await;
    assert!(report.is_sound(), "{:?}", report.faults);
    let report = bucket.verify(&schema, true).await;
    assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
    assert_eq!(report.faults[0].key, put.key);
    assert!(
        report.faults[0].message.contains("not the log's"),
        "{}",
        report.faults[0].message
    );
    writer.shutdown().await.expect("shutdown");

    // Not at a segment's end (e2 of a segment of three): refused, nothing written.
    let bucket = Bucket::memory();
    let backend = bucket.client();
    backend
        .push(make_events(GlobalSeq::ZERO, 3, "w", 10))
        .await
        .expect("push");
    let error = eventsync::snapshot::put(&*backend, &schema.hash(), GlobalSeq(2), forged, "w")
        .await
        .expect_err("not a segment boundary");
    assert!(
        error.to_string().contains("does not end a segment"),
        "{error}"
    );
    assert!(
        backend
            .latest_snapshot(&schema.hash(), None)
            .await
            .expect("the bucket answers")
            .found
            .is_none()
    );
}

/// A snapshot holds the state every client shares, not a client's own: the todo app's
/// `ui_state` (a client-only table, written by the client-only `UiStateSet`) is kept out.
/// `verify --snapshots` passes it (a replay of the log, which holds no client-only event,
/// has that table empty), a client booted from it starts with its own `ui_state` empty, as a
/// client that replays the log does, and the writer keeps its filter.
#[tokio::test]
async fn test_snapshots_leave_out_client_only_tables() {
    use eventsync_todo::{TodoFilter, UiStateSet};
    let bucket = Bucket::memory();
    let schema = Arc::new(todo_schema());
    assert!(schema.is_client_only_table("ui_state") && !schema.is_client_only_table("todos"));
    let dirs = temp_dirs(3);
    let writer = bucket.open(&schema, dirs[0].path(), fast_tuning()).await;
    let session = writer.session().await.expect("a session");
    session
        .commit(&UiStateSet {
            filter: TodoFilter::Completed,
        })
        .expect("commit");
    commit_todos(&writer, 0, 8, 5).await;
    let put = writer.snapshot().await.expect("a snapshot");
    assert!(put.created);
    let filter = "SELECT filter FROM ui_state";
    let writer_filter = writer.query_leader(filter).await.expect("query");
    assert_eq!(writer_filter.len(), 1, "the writer keeps its filter");

    let report = bucket.verify(&schema, true).await;
    assert!(report.is_sound(), "{:?}", report.faults);
    assert_eq!(report.families[1].checked, 1);

    let fresh = bucket.open(&schema, dirs[1].path(), fast_tuning()).await;
    assert!(
        matches!(fresh.snapshot_boot(), SnapshotBoot::Loaded { .. }),
        "{:?}",
        fresh.snapshot_boot()
    );
    let replayer = bucket.open_replayer(&schema, dirs[2].path()).await;
    replayer.sync().await.expect("sync");
    fresh.sync().await.expect("sync");
    for store in [&fresh, &replayer] {
        assert_eq!(
            store.query_leader(filter).await.expect("query"),
            Vec::<Value>::new()
        );
        assert_eq!(todos(store).await, todos(&writer).await);
    }
    assert_eq!(
        writer.query_leader(filter).await.expect("query"),
        writer_filter
    );
    for store in [writer, fresh, replayer] {
        store.shutdown().await.expect("shutdown");
    }
}
