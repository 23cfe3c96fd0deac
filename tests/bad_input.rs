//! Bad input through the whole system is refused with a typed error that names it, and
//! changes nothing: damaged, foreign and misnumbered
//! segments pulled by a leader; args that do not fit their event, at commit and arriving
//! from the backend; unknown events from a newer client; unsafe store ids; bad URLs and
//! config files; wrong S3 credentials; an unreachable S3 endpoint.
//!
//! Each case must give a clear error naming what was wrong and where, never panic, and leave
//! the local store as it was: the leader's eventlog and state tables are compared before
//! and after. The segment cases write good segments with one client (a raw `SegmentLog`, so
//! the segment boundaries are known), damage one object directly in the shared `InMemory`
//! store, and let a second client's leader pull it.

use std::sync::Arc;
use std::time::Duration;

use eventsync::backends::{
    BackendError, GlobalEvent, GlobalSeq, SegmentLog, SegmentLogConfig, SyncBackend,
};
use eventsync::schema::{EventDef, MaterializeContext, Schema, Statement, UnknownEventPolicy};
use eventsync::{ErrorKind, Event, Store, Tuning};
use eventsync_todo::{TodoCreated, todo_schema};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The store id every segment case uses.
const STORE: &str = "shop";

/// One backend (an `InMemory` object store) shared by a writer and any number of readers.
struct Shared {
    store: Arc<dyn ObjectStore>,
    dir: tempfile::TempDir,
    /// How the stores it opens run their leader (`Tuning::leader_thread`).
    leader_thread: bool,
}

impl Shared {
    /// For a test on the real clock: leaders run on their own thread, the default.
    fn new() -> Shared {
        Shared {
            store: Arc::new(object_store::memory::InMemory::new()),
            dir: tempfile::tempdir().unwrap(),
            leader_thread: Tuning::default().leader_thread,
        }
    }

    /// For a test on tokio's paused clock: leaders run inline, as tasks of the test's
    /// runtime. A leader on its own thread works while the runtime sees every task idle, so
    /// virtual time jumps ahead and the test's 60 s wait for the sync's error fires before
    /// the leader could pull anything.
    fn on_paused_clock() -> Shared {
        Shared {
            leader_thread: false,
            ..Shared::new()
        }
    }

    /// A backend client of store `store_id` in the shared object store.
    fn log_of(&self, store_id: &str) -> SegmentLog {
        SegmentLog::new(
            self.store.clone(),
            Path::from("prefix"),
            store_id,
            SegmentLogConfig::default(),
        )
        .unwrap()
    }

    fn log(&self) -> SegmentLog {
        self.log_of(STORE)
    }

    /// The key of the segment whose first event is `first` (in the log of the store's
    /// current backend id).
    async fn key(&self, first: u64) -> Path {
        self.log()
            .log_paths()
            .await
            .unwrap()
            .segment(GlobalSeq(first))
    }

    /// Opens the leader of client `name` (its own data dir) over the shared backend.
    async fn open(&self, name: &str, schema: Schema) -> Store {
        Store::builder(Arc::new(schema))
            .with_backend(Arc::new(self.log()))
            .with_store_id(STORE)
            .with_data_dir(self.dir.path().join(name))
            .with_client_id(name)
            .with_tuning(Tuning {
                leader_thread: self.leader_thread,
                ..Tuning::default()
            })
            .open()
            .await
            .unwrap()
    }

    async fn read(&self, key: &Path) -> Vec<u8> {
        let result = self.store.get(key).await.unwrap();
        result.bytes().await.unwrap().to_vec()
    }

    async fn write(&self, key: &Path, bytes: Vec<u8>) {
        self.store.put(key, PutPayload::from(bytes)).await.unwrap();
    }
}

/// `v1.TodoCreated` of todo `t{seq}` at `seq`, committed by a client called `writer`.
fn created(seq: u64) -> GlobalEvent {
    event(
        seq,
        TodoCreated::NAME,
        json!({"id": format!("t{seq}"), "text": format!("todo {seq}")}),
    )
}

fn event(seq: u64, name: &str, args: Value) -> GlobalEvent {
    GlobalEvent {
        seq_num: GlobalSeq(seq),
        parent_seq_num: GlobalSeq(seq - 1),
        name: name.into(),
        args,
        client_id: "writer".into(),
        session_id: "writer-session".into(),
    }
}

/// `count` todo creations from `first` on.
fn batch(first: u64, count: u64) -> Vec<GlobalEvent> {
    (first..first + count).map(created).collect()
}

/// What a leader holds: its eventlog as (global seq, name, args), and its todos.
type Snapshot = (Vec<(u64, String, Value)>, Vec<Value>);

async fn snapshot(store: &Store) -> Snapshot {
    let events = store
        .eventlog()
        .await
        .unwrap()
        .into_iter()
        .map(|event| (event.seq.global.0, event.name, event.args))
        .collect();
    let todos = store
        .query_leader("SELECT id, text, completed, created_seq FROM todos ORDER BY created_seq, id")
        .await
        .unwrap();
    (events, todos)
}

/// `store.sync()`, which must fail. The tests that call it run on tokio's paused clock, so
/// the guard against a hang is 60 s of virtual time: it passes only while the leader waits
/// on its own timers (polls, backoff), never because the machine is slow (their stores run
/// the leader inline for that: see [`Shared::on_paused_clock`]).
async fn sync_error(store: &Store) -> eventsync::Error {
    tokio::time::timeout(Duration::from_secs(60), store.sync())
        .await
        .expect("sync must end (with an error), not hang")
        .expect_err("sync must fail")
}

/// The segment's body without its trailer, resealed: total length patched, SHA-256 appended.
/// Damage behind the checksum is then only caught by the checks that follow it.
fn reseal(mut body: Vec<u8>) -> Vec<u8> {
    let total = (body.len() + 32) as u64;
    body[12..20].copy_from_slice(&total.to_le_bytes());
    let digest: [u8; 32] = Sha256::digest(&body).into();
    body.extend_from_slice(&digest);
    body
}

/// The header part of a segment (everything before the first event's length), per
/// docs/FORMAT.md: 81 fixed bytes, the backend id, a u16 length and the writer client id.
fn header_of(segment: &[u8]) -> Vec<u8> {
    let backend_len = segment[80] as usize;
    let at = 81 + backend_len;
    let client_len = u16::from_le_bytes([segment[at], segment[at + 1]]) as usize;
    segment[..at + 2 + client_len].to_vec()
}

/// A resealed segment with `header` and these raw event bodies.
fn segment_with_events(header: Vec<u8>, events: &[Vec<u8>]) -> Vec<u8> {
    let mut body = header;
    for json in events {
        body.extend_from_slice(&(json.len() as u32).to_le_bytes());
        body.extend_from_slice(json);
    }
    reseal(body)
}

/// Writes e1-e2 (one segment), lets a reader sync them, writes e3-e4 and e5-e6 (a segment
/// each), damages the segment at e3 with `damage`, and checks that the reader's sync and a
/// fresh client's sync both fail naming the key, holding exactly e1-e2 afterwards.
/// Returns the reader's error message.
async fn damaged_segment_stops_the_pull(
    label: &str,
    damage: impl AsyncFnOnce(&Shared, &Path),
) -> String {
    let shared = Shared::on_paused_clock();
    let writer = shared.log();
    writer.push(batch(1, 2)).await.unwrap();
    let reader = shared.open("reader", todo_schema()).await;
    reader.sync().await.unwrap();
    let before = snapshot(&reader).await;
    assert_eq!(before.0.len(), 2, "{label}: {before:?}");
    assert_eq!(before.1.len(), 2, "{label}: {before:?}");
    writer.push(batch(3, 2)).await.unwrap();
    writer.push(batch(5, 2)).await.unwrap();
    let key = shared.key(3).await;
    damage(&shared, &key).await;

    let error = sync_error(&reader).await;
    let message = format!("{error:#}");
    assert_eq!(error.kind(), ErrorKind::Data, "{label}: {message}");
    // Every waiting sync gets the backend's typed error as the cause, not a copy of its text.
    let cause = std::error::Error::source(&error).and_then(|cause| cause.downcast_ref());
    assert!(
        matches!(cause, Some(BackendError::Corrupt { .. })),
        "{label}: {error:?}"
    );
    assert!(message.contains(key.as_ref()), "{label}: {message}");
    assert_eq!(
        snapshot(&reader).await,
        before,
        "{label}: the reader changed"
    );
    // The damage is not transient: a second sync fails the same way.
    let again = sync_error(&reader).await;
    assert!(
        format!("{again:#}").contains(key.as_ref()),
        "{label}: {again}"
    );

    let fresh = shared.open("fresh", todo_schema()).await;
    let error = sync_error(&fresh).await;
    assert_eq!(error.kind(), ErrorKind::Data, "{label}: {error}");
    assert!(
        format!("{error:#}").contains(key.as_ref()),
        "{label}: {error}"
    );
    assert_eq!(
        snapshot(&fresh).await,
        before,
        "{label}: a fresh client must hold exactly the events before the damaged segment"
    );
    reader.shutdown().await.unwrap();
    fresh.shutdown().await.unwrap();
    message
}

#[tokio::test(start_paused = true)]
async fn test_flipped_bit_in_a_pulled_segment_fails_sync_naming_the_key() {
    let message = damaged_segment_stops_the_pull("flipped bit", async |shared, key| {
        let mut bytes = shared.read(key).await;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x04;
        shared.write(key, bytes).await;
    })
    .await;
    assert!(message.contains("checksum"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn test_every_flipped_bit_of_a_header_is_caught_through_the_leader() {
    // One bit in each byte of the fixed header (81 bytes): a leader must never take it.
    let shared = Shared::on_paused_clock();
    let writer = shared.log();
    writer.push(batch(1, 2)).await.unwrap();
    let key = shared.key(1).await;
    let good = shared.read(&key).await;
    for index in 0..81 {
        let mut bytes = good.clone();
        bytes[index] ^= 1 << (index % 8);
        shared.write(&key, bytes).await;
        let reader = shared.open(&format!("reader-{index}"), todo_schema()).await;
        let error = sync_error(&reader).await;
        assert_eq!(error.kind(), ErrorKind::Data, "byte {index}: {error}");
        assert!(
            format!("{error:#}").contains(key.as_ref()),
            "byte {index}: {error}"
        );
        assert_eq!(snapshot(&reader).await, (vec![], vec![]), "byte {index}");
        reader.shutdown().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn test_truncated_segment_fails_sync_naming_the_key() {
    let message = damaged_segment_stops_the_pull("truncated", async |shared, key| {
        let mut bytes = shared.read(key).await;
        bytes.truncate(bytes.len() * 2 / 3);
        shared.write(key, bytes).await;
    })
    .await;
    assert!(message.contains("truncated"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn test_empty_segment_object_fails_sync_naming_the_key() {
    damaged_segment_stops_the_pull("empty object", async |shared, key| {
        shared.write(key, Vec::new()).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn test_wrong_magic_fails_sync_naming_the_key() {
    let message = damaged_segment_stops_the_pull("wrong magic", async |shared, key| {
        let mut bytes = shared.read(key).await;
        bytes[..8].copy_from_slice(b"PK\x03\x04zip!");
        shared.write(key, bytes).await;
    })
    .await;
    assert!(message.contains("magic"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn test_future_format_version_fails_sync_asking_for_an_upgrade() {
    let message = damaged_segment_stops_the_pull("future version", async |shared, key| {
        let mut bytes = shared.read(key).await;
        bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
        shared.write(key, bytes).await;
    })
    .await;
    assert!(message.contains("version 2"), "{message}");
    assert!(message.contains("upgrade"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn test_numbering_gap_inside_a_segment_fails_sync_naming_the_key() {
    // e3 then e5 (parent e4): a valid checksum, so only the numbering check can catch it.
    let message = damaged_segment_stops_the_pull("numbering gap", async |shared, key| {
        let bytes = shared.read(key).await;
        let events = [
            serde_json::to_vec(&created(3)).unwrap(),
            serde_json::to_vec(&created(5)).unwrap(),
        ];
        shared
            .write(key, segment_with_events(header_of(&bytes), &events))
            .await;
    })
    .await;
    assert!(message.contains("e5"), "{message}");
    assert!(message.contains("expected e4"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn test_event_that_is_not_json_fails_sync_naming_the_key() {
    let message = damaged_segment_stops_the_pull("event not JSON", async |shared, key| {
        let bytes = shared.read(key).await;
        let events = [
            serde_json::to_vec(&created(3)).unwrap(),
            b"{\"seqNum\": 4, \"name\": ".to_vec(),
        ];
        shared
            .write(key, segment_with_events(header_of(&bytes), &events))
            .await;
    })
    .await;
    assert!(message.contains("event 1"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn test_broken_hash_chain_fails_sync_naming_the_key() {
    let message = damaged_segment_stops_the_pull("broken chain", async |shared, key| {
        let bytes = shared.read(key).await;
        let mut body = bytes[..bytes.len() - 32].to_vec();
        body[48..80].copy_from_slice(&[0xab; 32]);
        shared.write(key, reseal(body)).await;
    })
    .await;
    assert!(message.contains("chain"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn test_segment_at_the_wrong_key_fails_sync_naming_the_key() {
    // A valid segment of this store (e5-e6) copied over the key of e3.
    let message = damaged_segment_stops_the_pull("wrong key", async |shared, key| {
        let later = shared.read(&shared.key(5).await).await;
        shared.write(key, later).await;
    })
    .await;
    assert!(message.contains("starts at e5"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn test_segment_of_another_store_fails_sync_naming_the_key() {
    let message = damaged_segment_stops_the_pull("foreign store", async |shared, key| {
        // Another store in the same bucket, with its own backend id, numbered the same.
        let other = shared.log_of("other-shop");
        other.push(batch(1, 2)).await.unwrap();
        other.push(batch(3, 2)).await.unwrap();
        let foreign_key = other.log_paths().await.unwrap().segment(GlobalSeq(3));
        let foreign = shared.read(&foreign_key).await;
        shared.write(key, foreign).await;
    })
    .await;
    assert!(message.contains("another store"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn test_damaged_store_json_fails_a_fresh_client_naming_it() {
    for (label, body, needle) in [
        (
            "not JSON",
            b"<html>not found</html>".to_vec(),
            "not a store.json",
        ),
        (
            "future version",
            br#"{"formatVersion": 7, "backendId": "abc", "storeId": "shop"}"#.to_vec(),
            "upgrade eventsync",
        ),
        (
            "old layout",
            br#"{"formatVersion": 1, "backendId": "abc", "storeId": "shop"}"#.to_vec(),
            "layout version 1",
        ),
        (
            "empty backend id",
            br#"{"formatVersion": 2, "backendId": "", "storeId": "shop"}"#.to_vec(),
            "backend id",
        ),
        (
            "backend id that climbs out of the store's folder",
            br#"{"formatVersion": 2, "backendId": "../x", "storeId": "shop"}"#.to_vec(),
            "backend id",
        ),
    ] {
        let shared = Shared::on_paused_clock();
        shared.log().push(batch(1, 2)).await.unwrap();
        let key = shared.log().paths().store_json();
        shared.write(&key, body).await;
        let fresh = shared.open("fresh", todo_schema()).await;
        let error = sync_error(&fresh).await;
        assert_eq!(error.kind(), ErrorKind::Data, "{label}: {error}");
        assert!(
            format!("{error:#}").contains(key.as_ref()),
            "{label}: {error}"
        );
        assert!(format!("{error:#}").contains(needle), "{label}: {error}");
        assert_eq!(snapshot(&fresh).await, (vec![], vec![]), "{label}");
        fresh.shutdown().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn test_missing_segment_object_is_reported_not_skipped() {
    // A segment object deleted from the middle of the log (the store was tampered with: the
    // log is append-only). Readers must not silently stop before it as if the log ended.
    let shared = Shared::on_paused_clock();
    let writer = shared.log();
    writer.push(batch(1, 2)).await.unwrap();
    writer.push(batch(3, 2)).await.unwrap();
    writer.push(batch(5, 2)).await.unwrap();
    let key = shared.key(3).await;
    shared.store.delete(&key).await.unwrap();

    let fresh = shared.open("fresh", todo_schema()).await;
    let error = sync_error(&fresh).await;
    assert_eq!(error.kind(), ErrorKind::Data, "{error}");
    assert!(format!("{error:#}").contains(key.as_ref()), "{error}");
    let (events, _) = snapshot(&fresh).await;
    let seqs: Vec<u64> = events.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(
        seqs,
        [1, 2],
        "exactly the events before the missing segment"
    );
    fresh.shutdown().await.unwrap();
}

/// Writes e1-e2, lets a reader sync them, then writes `bad` (one segment) and e{n+1} after
/// it; the reader's sync must fail naming `needle`, holding exactly e1-e2.
async fn bad_upstream_event_stops_the_leader(label: &str, bad: GlobalEvent, needles: &[&str]) {
    let shared = Shared::new();
    let writer = shared.log();
    writer.push(batch(1, 2)).await.unwrap();
    let reader = shared.open("reader", todo_schema()).await;
    reader.sync().await.unwrap();
    let before = snapshot(&reader).await;
    writer.push(vec![bad]).await.unwrap();
    writer.push(batch(4, 1)).await.unwrap();

    let error = sync_error(&reader).await;
    for needle in needles {
        assert!(format!("{error:#}").contains(needle), "{label}: {error}");
    }
    assert_eq!(
        snapshot(&reader).await,
        before,
        "{label}: the reader changed"
    );

    let fresh = shared.open("fresh", todo_schema()).await;
    let error = sync_error(&fresh).await;
    for needle in needles {
        assert!(format!("{error:#}").contains(needle), "{label}: {error}");
    }
    assert_eq!(snapshot(&fresh).await, before, "{label}: fresh client");
    reader.shutdown().await.unwrap();
    fresh.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_pulled_event_whose_args_do_not_fit_stops_the_leader_naming_event_and_field() {
    for (label, args, field) in [
        ("id is a number", json!({"id": 42, "text": "x"}), "id"),
        ("text missing", json!({"id": "t3"}), "text"),
        ("args a string", json!("t3"), "v1.TodoCreated"),
        ("args null", Value::Null, "v1.TodoCreated"),
    ] {
        let bad = event(3, TodoCreated::NAME, args);
        bad_upstream_event_stops_the_leader(label, bad, &[TodoCreated::NAME, field, "e3"]).await;
    }
}

#[tokio::test]
async fn test_session_commit_with_args_that_do_not_fit_changes_nothing() {
    let shared = Shared::new();
    let store = shared.open("client", todo_schema()).await;
    let session = store.session().await.unwrap();
    session
        .commit(&TodoCreated {
            id: "a".into(),
            text: "milk".into(),
        })
        .unwrap();
    store.sync().await.unwrap();
    let before = snapshot(&store).await;
    let todos_before: Vec<Value> = session.query("SELECT * FROM todos", &[]).unwrap();
    for (args, field) in [
        (json!({"id": 1, "text": "x"}), "id"),
        (json!({"id": "b"}), "text"),
        (json!({"id": "b", "text": ["x"]}), "text"),
        (json!("b"), "v1.TodoCreated"),
        (json!([1, 2]), "v1.TodoCreated"),
        (Value::Null, "v1.TodoCreated"),
    ] {
        let error = session
            .commit_dynamic(TodoCreated::NAME, &args)
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid, "{args}: {error}");
        assert!(format!("{error:#}").contains(TodoCreated::NAME), "{error}");
        assert!(format!("{error:#}").contains(field), "{args}: {error}");
    }
    // Not in the schema at all.
    let error = session.commit_dynamic("v9.Nope", &json!({})).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert!(format!("{error:#}").contains("v9.Nope"), "{error}");
    // Args that are not JSON at all: a map with non-string keys does not serialize.
    let not_json: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let error = session
        .commit_dynamic(TodoCreated::NAME, &not_json)
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert!(format!("{error:#}").contains("serialize"), "{error}");

    assert!(session.pending().is_empty(), "nothing was queued");
    let todos_after: Vec<Value> = session.query("SELECT * FROM todos", &[]).unwrap();
    assert_eq!(todos_after, todos_before, "the session's state changed");
    store.sync().await.unwrap();
    assert_eq!(snapshot(&store).await, before, "the leader changed");
    assert_eq!(shared.log().head().await.unwrap(), GlobalSeq(1));
    // The session still works.
    let seq = session
        .commit(&TodoCreated {
            id: "b".into(),
            text: "bread".into(),
        })
        .unwrap();
    assert_eq!(seq.global.0, 2);
    store.sync().await.unwrap();
    assert_eq!(shared.log().head().await.unwrap(), GlobalSeq(2));
    drop(session);
    store.shutdown().await.unwrap();
}

/// A todo schema of an older client: it knows only `v1.TodoCreated`.
fn old_schema(policy: UnknownEventPolicy) -> Schema {
    Schema::builder()
        .table(
            "todos",
            "CREATE TABLE todos (id TEXT PRIMARY KEY, text TEXT NOT NULL, \
             completed INTEGER NOT NULL DEFAULT 0, created_seq INTEGER NOT NULL)",
        )
        .define_event(
            EventDef::synced(TodoCreated::NAME),
            |args: TodoCreated, ctx: &MaterializeContext<'_>| {
                Ok(vec![Statement::new(
                    "INSERT INTO todos (id, text, created_seq) VALUES (?1, ?2, ?3)",
                    vec![
                        args.id.into(),
                        args.text.into(),
                        (ctx.event().seq.global.0 as i64).into(),
                    ],
                )])
            },
        )
        .unknown_events(policy)
        .build()
        .unwrap()
}

/// e1 (known), then e2 `v2.TodoArchived` (unknown to the old schema) and e3 (known) in one
/// segment, as a newer client would write them.
async fn newer_client_log(shared: &Shared) {
    let writer = shared.log();
    writer.push(batch(1, 1)).await.unwrap();
    writer
        .push(vec![
            event(2, "v2.TodoArchived", json!({"id": "t1", "archivedAt": 5})),
            created(3),
        ])
        .await
        .unwrap();
}

#[tokio::test]
async fn test_unknown_events_with_warn_or_ignore_are_kept_but_not_materialized() {
    for policy in [UnknownEventPolicy::Warn, UnknownEventPolicy::Ignore] {
        let shared = Shared::new();
        newer_client_log(&shared).await;
        let old = shared.open("old", old_schema(policy)).await;
        old.sync().await.unwrap();
        let (events, todos) = snapshot(&old).await;
        let names: Vec<&str> = events.iter().map(|(_, name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [TodoCreated::NAME, "v2.TodoArchived", TodoCreated::NAME],
            "{policy:?}: the unknown event is kept in the eventlog"
        );
        let ids: Vec<&str> = todos.iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["t1", "t3"], "{policy:?}");
        let status = old.status().await.unwrap();
        assert_eq!(
            status.local_head.global.0, 3,
            "{policy:?}: the head advances"
        );
        assert_eq!(status.backend_confirmed_head.global.0, 3, "{policy:?}");
        // The old client keeps working on top of it.
        let session = old.session().await.unwrap();
        let seq = session
            .commit(&TodoCreated {
                id: "t4".into(),
                text: "after".into(),
            })
            .unwrap();
        assert_eq!(seq.global.0, 4, "{policy:?}");
        old.sync().await.unwrap();
        drop(session);
        old.shutdown().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn test_unknown_events_with_fail_stop_the_sync_naming_the_event() {
    let shared = Shared::on_paused_clock();
    let writer = shared.log();
    writer.push(batch(1, 1)).await.unwrap();
    let old = shared
        .open("old", old_schema(UnknownEventPolicy::Fail))
        .await;
    old.sync().await.unwrap();
    let before = snapshot(&old).await;
    writer
        .push(vec![
            event(2, "v2.TodoArchived", json!({"id": "t1"})),
            created(3),
        ])
        .await
        .unwrap();
    let error = sync_error(&old).await;
    assert!(format!("{error:#}").contains("v2.TodoArchived"), "{error}");
    assert!(format!("{error:#}").contains("e2"), "{error}");
    assert_eq!(snapshot(&old).await, before, "the old client changed");
    old.shutdown().await.unwrap();
}

/// Store ids that must be refused: traversal, separators, NUL, 10 kB, empty, hidden.
fn unsafe_ids() -> Vec<String> {
    vec![
        "..".into(),
        "../escape".into(),
        "a/b".into(),
        "/abs".into(),
        "a\\b".into(),
        "nul\0byte".into(),
        "x".repeat(10_000),
        String::new(),
        ".hidden".into(),
        "new\nline".into(),
    ]
}

#[tokio::test]
async fn test_unsafe_store_and_client_ids_are_refused_before_touching_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for id in unsafe_ids() {
        let shown: String = id.escape_default().to_string().chars().take(40).collect();
        let store = Store::builder(Arc::new(todo_schema()))
            .with_offline(true)
            .with_data_dir(&data)
            .with_store_id(id.clone())
            .open()
            .await;
        let error = store.expect_err("an unsafe store id must be refused");
        assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
        assert!(format!("{error:#}").contains(&shown), "{error}");
        assert!(!format!("{error:#}").contains('\0'), "{error}");
        assert!(
            format!("{error:#}").len() < 400,
            "the message stays short: {error}"
        );

        let store = Store::builder(Arc::new(todo_schema()))
            .with_offline(true)
            .with_data_dir(&data)
            .with_client_id(id.clone())
            .open()
            .await;
        assert_eq!(store.err().map(|e| e.kind()), Some(ErrorKind::Invalid));

        let options = eventsync::backends::OpenOptions::default();
        match eventsync::backends::open_backend("memory://", &id, &options).await {
            Err(BackendError::Invalid { message }) => {
                assert!(message.contains(&shown), "{message}");
                assert!(message.len() < 400, "the message stays short: {message}");
            }
            other => panic!("{id:?} gave {other:?}"),
        }
    }
    // Only the valid client-id probe's store dir may exist: nothing named after a bad id.
    let created: Vec<String> = std::fs::read_dir(&data)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        created.iter().all(|name| name == "default"),
        "created {created:?}"
    );
}

#[tokio::test]
async fn test_secret_looking_query_of_an_accepted_url_is_not_shown() {
    let options = eventsync::backends::OpenOptions::default();
    let backend = eventsync::backends::open_backend("memory://?token=hunter22", "s", &options)
        .await
        .unwrap();
    assert!(!format!("{:?}", backend.info()).contains("hunter22"));
    assert!(!format!("{backend:?}").contains("hunter22"));
}

#[tokio::test]
async fn test_bad_backend_urls_are_refused_naming_them() {
    let options = eventsync::backends::OpenOptions::default();
    for url in [
        "",
        "ftp://host/x",
        "http://127.0.0.1:9000/bucket",
        "s3://",
        "s3:///prefix",
        "s3://user:hunter22@bucket/x",
        "unknown-scheme://x",
        "://nothing",
        "s3://bucket/a//b",
        "file://remote-host/x",
    ] {
        match eventsync::backends::open_backend(url, "s", &options).await {
            Err(BackendError::Invalid { message }) => {
                assert!(!message.contains("hunter22"), "{url}: {message}");
                assert!(!message.is_empty());
            }
            Ok(backend) => panic!("{url:?} was accepted as {:?}", backend.info()),
            Err(other) => panic!("{url:?} gave {other:?}, not Invalid"),
        }
    }
}
