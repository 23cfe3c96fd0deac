//! Snapshot format version 2, whose body is an SQLite image of the snapshot tables: a client
//! booted from one holds exactly (the canonical dump of its `state.db`) what a client that
//! replayed the whole log holds; an image that is not SQLite, is damaged, or holds an object
//! the schema does not make (a trigger, a view, another table) is refused with its key named,
//! and the client falls back to the older snapshot; `verify --snapshots` names an image whose
//! tables are not the state its header claims; a version-1 snapshot (a compressed dump) still
//! boots.

mod support;

use std::path::Path;
use std::sync::Arc;

use eventsync::backends::verify::SnapshotContentCheck;
use eventsync::backends::{FoundSnapshot, GlobalSeq, SnapshotContent, SnapshotPut};
use eventsync::schema::Schema;
use eventsync::snapshot::{Dump, ReplayCheck, SnapshotState, dump_tables, image};
use eventsync::{SnapshotBoot, Store, Tuning};
use eventsync_todo::todo_schema;
use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, path::Path as Key};
use rusqlite::Connection;
use support::snapshot::{History, assert_booted_from, temp_dirs, write_history};
use support::{
    TODOS_DUMP, fast_tuning, memory_backend, open_store_tuned, replayed, todos_from_scratch,
};

const STORE: &str = "image";

/// The newest snapshot of `schema` in the bucket; panics when there is none.
async fn newest_snapshot(memory: &Arc<InMemory>, schema: &Schema) -> FoundSnapshot {
    memory_backend(memory, STORE)
        .latest_snapshot(&schema.hash(), None)
        .await
        .expect("the bucket answers")
        .found
        .expect("a snapshot")
}

async fn open(
    memory: &Arc<InMemory>,
    schema: &Arc<Schema>,
    dir: &Path,
    client: &str,
    from_snapshot: bool,
) -> Store {
    let tuning = Tuning {
        boot_from_snapshot: from_snapshot,
        ..fast_tuning()
    };
    open_store_tuned(schema, dir, client, memory_backend(memory, STORE), tuning).await
}

/// `state.db` of the store in `dir` (the store id is the builder's default).
fn state_db(dir: &Path) -> std::path::PathBuf {
    dir.join("default").join("state.db")
}

/// The canonical dump of the user tables of the (shut down) store in `dir`.
fn state_dump(dir: &Path, schema: &Schema) -> Dump {
    let path = state_db(dir);
    let conn = Connection::open(&path).expect("state.db opens");
    dump_tables(&conn, schema).expect("a dump")
}

/// `image` with `sql` run on it (a writer's extra objects or rows).
fn altered(image: &[u8], sql: &str) -> Vec<u8> {
    let mut conn = Connection::open_in_memory().expect("a database");
    conn.deserialize_read_exact("main", image, image.len(), false)
        .expect("the image loads");
    conn.execute_batch(sql).expect("the change applies");
    conn.serialize("main").expect("serializes").to_vec()
}

/// Writes a version-2 snapshot at `at` whose header claims `claim`'s state and whose body
/// encodes the image `image` (what a buggy or hostile writer with bucket credentials can do).
async fn put_body(
    memory: &Arc<InMemory>,
    schema: &Schema,
    at: GlobalSeq,
    claim: &SnapshotState,
    image: Vec<u8>,
) -> SnapshotPut {
    put_raw_body(memory, schema, at, claim, image::encode(&image)).await
}

/// [`put_body`] with the body as it is, not an encoded image.
async fn put_raw_body(
    memory: &Arc<InMemory>,
    schema: &Schema,
    at: GlobalSeq,
    claim: &SnapshotState,
    body: Vec<u8>,
) -> SnapshotPut {
    memory_backend(memory, STORE)
        .put_snapshot(
            &schema.hash(),
            at,
            SnapshotContent {
                version: eventsync::backends::snapshot::FORMAT_VERSION,
                content_hash: claim.dump_hash,
                content_len: claim.dump_len,
                body,
                writer: "mallory".into(),
            },
        )
        .await
        .expect("the backend takes it: it cannot tell")
}

#[tokio::test]
async fn test_a_client_booted_from_an_image_holds_exactly_the_replayed_state() {
    let memory = Arc::new(InMemory::new());
    let schema = Arc::new(todo_schema());
    let dirs = temp_dirs(3);
    let writer = open(&memory, &schema, dirs[0].path(), "writer", true).await;
    let History { at, put, log } = write_history(writer, 60, 20, 4, true).await;
    let put = put.expect("a snapshot");

    // What the bucket holds: a version-2 snapshot whose body encodes an SQLite image, smaller
    // than the image.
    let found = newest_snapshot(&memory, &schema).await;
    assert_eq!(found.key, put.key);
    assert_eq!(found.snapshot.version, 2);
    let image = image::decode(&found.snapshot.body).expect("the body inflates");
    assert!(image.starts_with(b"SQLite format 3\0"));
    assert!(found.snapshot.body.len() < image.len());

    let fresh = open(&memory, &schema, dirs[1].path(), "fresh", true).await;
    assert_eq!(
        fresh.snapshot_boot(),
        &SnapshotBoot::Loaded {
            key: put.key.clone(),
            at: at.0,
            refused: vec![],
        }
    );
    let replayer = open(&memory, &schema, dirs[2].path(), "replayer", false).await;
    for store in [&fresh, &replayer] {
        store.sync().await.expect("sync");
        assert_eq!(
            store.status().await.expect("status").local_head.global.0,
            log.len() as u64
        );
    }
    assert_eq!(fresh.stats().pulled, log.len() as u64 - at.0);
    fresh.shutdown().await.expect("shutdown");
    replayer.shutdown().await.expect("shutdown");

    let booted = state_dump(dirs[1].path(), &schema);
    let replay = state_dump(dirs[2].path(), &schema);
    assert_eq!(
        booted, replay,
        "the booted client's tables are the replay's"
    );
    assert_eq!(
        replay,
        dump_tables(&replayed(&schema, &log), &schema).expect("a dump")
    );
    // Not an empty state: the todos are there.
    let conn = Connection::open(state_db(dirs[1].path())).expect("opens");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM todos", [], |row| row.get(0))
        .expect("a count");
    assert_eq!(rows, 80);
    // The image left nothing behind in state.db: no attached database, the same objects.
    let objects: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE tbl_name NOT LIKE '__eventsync_%' ORDER BY name",
        )
        .expect("prepares")
        .query_map([], |row| row.get(0))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("names");
    assert_eq!(objects, ["sqlite_autoindex_todos_1", "todos", "ui_state"]);
}

/// Each bad image is written at a newer event than a good snapshot; a fresh client refuses
/// it, naming its key and why, boots from the good one, and ends with the log's state.
#[tokio::test]
async fn test_a_bad_image_is_refused_naming_its_key_and_the_client_falls_back() {
    let memory = Arc::new(InMemory::new());
    let schema = Arc::new(todo_schema());
    let writer_dir = tempfile::tempdir().expect("a temp dir");
    let writer = open(&memory, &schema, writer_dir.path(), "writer", true).await;
    let History {
        at: good_at,
        put: good,
        log,
    } = write_history(writer, 20, 10, 4, true).await;
    let good = good.expect("a snapshot");
    let at = GlobalSeq(log.len() as u64);
    let state_at = |at: GlobalSeq| {
        image::state_of(&replayed(&schema, &log[..at.0 as usize]), &schema).expect("a state")
    };
    let right = state_at(at);
    let page_size = usize::from(u16::from_be_bytes([right.image[16], right.image[17]]));
    assert!(right.image.len() >= 3 * page_size, "a few pages at least");

    let mut damaged_page = right.image.clone();
    // The b-tree page header of page 2 (a table or index root): an invalid page type.
    damaged_page[page_size..page_size + 8].fill(0x6b);
    let mut cut = right.image.clone();
    cut.truncate(right.image.len() - page_size / 2);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not SQLite",
            b"a snapshot body that is not a database".repeat(40),
            "not an SQLite image",
        ),
        ("cut off", cut, "whole pages"),
        ("a damaged page", damaged_page, "snapshot at"),
        (
            "a trigger",
            altered(
                &right.image,
                "CREATE TRIGGER spy AFTER INSERT ON todos BEGIN SELECT 1; END;",
            ),
            "trigger \"spy\"",
        ),
        (
            "a view",
            altered(&right.image, "CREATE VIEW peek AS SELECT id FROM todos"),
            "view \"peek\"",
        ),
        (
            "another table",
            altered(&right.image, "CREATE TABLE extra (x)"),
            "table \"extra\"",
        ),
        (
            "an index of its own",
            altered(&right.image, "CREATE INDEX by_text ON todos (text)"),
            "index \"by_text\"",
        ),
        (
            "a table made by other SQL",
            altered(
                &right.image,
                "DROP TABLE todos; CREATE TABLE todos (id TEXT PRIMARY KEY, text TEXT NOT NULL, \
                 completed INTEGER NOT NULL DEFAULT 0, deleted_at INTEGER, created_seq INTEGER NOT NULL)",
            ),
            "not made by the schema's DDL",
        ),
        (
            "a client-only table",
            altered(
                &right.image,
                "CREATE TABLE ui_state (id INTEGER PRIMARY KEY CHECK (id = 1), filter TEXT)",
            ),
            "table \"ui_state\"",
        ),
    ];
    let mut cases: Vec<(&str, Vec<u8>, &str)> = cases
        .into_iter()
        .map(|(case, bad_image, why)| (case, image::encode(&bad_image), why))
        .collect();
    // A body that is not DEFLATE at all (its first block has the reserved type).
    cases.push((
        "a body that does not inflate",
        b"not deflate".repeat(40),
        "does not inflate",
    ));
    for (case, body, why) in cases {
        let bad = put_raw_body(&memory, &schema, at, &right, body).await;
        assert!(bad.created, "{case}");
        let dir = tempfile::tempdir().expect("a temp dir");
        let fresh = open(&memory, &schema, dir.path(), "fresh", true).await;
        match fresh.snapshot_boot() {
            SnapshotBoot::Loaded {
                key,
                at: loaded_at,
                refused,
            } => {
                assert_eq!((key, *loaded_at), (&good.key, good_at.0), "{case}");
                assert_eq!(refused.len(), 1, "{case}: {refused:?}");
                assert_eq!(refused[0].key, bad.key, "{case}");
                assert!(
                    refused[0].message.contains(why),
                    "{case}: {}",
                    refused[0].message
                );
            }
            other => panic!("{case}: the client did not fall back: {other:?}"),
        }
        fresh.sync().await.expect("sync");
        assert_eq!(
            fresh.query_leader(TODOS_DUMP).await.expect("query"),
            todos_from_scratch(&schema, &log),
            "{case}"
        );
        fresh.shutdown().await.expect("shutdown");
        memory
            .delete(&Key::from(bad.key.as_str()))
            .await
            .expect("delete");
    }
}

/// A well-formed image whose tables are not the state its header claims (the claim is the
/// log's): the boot cannot tell without a dump, `verify --snapshots` names it.
#[tokio::test]
async fn test_verify_with_replay_names_an_image_that_does_not_hold_its_claimed_state() {
    let memory = Arc::new(InMemory::new());
    let schema = Arc::new(todo_schema());
    let dir = tempfile::tempdir().expect("a temp dir");
    let writer = open(&memory, &schema, dir.path(), "writer", true).await;
    let History { log, .. } = write_history(writer, 12, 0, 4, false).await;
    let at = GlobalSeq(log.len() as u64);
    let right = image::state_of(&replayed(&schema, &log), &schema).expect("a state");
    let body = altered(
        &right.image,
        "INSERT INTO todos (id, text, completed, created_seq) VALUES ('x', 'forged', 0, 1)",
    );
    let put = put_body(&memory, &schema, at, &right, body).await;
    let check = ReplayCheck::new(schema.clone(), memory_backend(&memory, STORE)).expect("a check");
    let found = newest_snapshot(&memory, &schema).await;
    assert_eq!(found.key, put.key);
    let fault = check
        .check(&found.snapshot)
        .await
        .expect("the log reads")
        .expect("a fault");
    assert!(
        fault.contains("does not hold the state it claims"),
        "{fault}"
    );
    // The right image passes.
    let mut honest = found.snapshot.clone();
    honest.body = image::encode(&right.image);
    assert_eq!(check.check(&honest).await.expect("the log reads"), None);
}

/// A version-1 snapshot (the compressed canonical dump) written by an older build still
/// boots a fresh client, and `verify --snapshots` passes it.
#[tokio::test]
async fn test_a_version_1_snapshot_still_boots() {
    let memory = Arc::new(InMemory::new());
    let schema = Arc::new(todo_schema());
    let dirs = temp_dirs(2);
    let writer = open(&memory, &schema, dirs[0].path(), "writer", true).await;
    let History { at, log, .. } = write_history(writer, 15, 5, 4, false).await;
    let dump = dump_tables(&replayed(&schema, &log[..at.0 as usize]), &schema).expect("a dump");
    let put = memory_backend(&memory, STORE)
        .put_snapshot(
            &schema.hash(),
            at,
            SnapshotContent {
                version: 1,
                content_hash: dump.hash,
                content_len: dump.bytes.len() as u64,
                body: eventsync::snapshot::compress(&dump.bytes),
                writer: "old".into(),
            },
        )
        .await
        .expect("put");
    let fresh = open(&memory, &schema, dirs[1].path(), "fresh", true).await;
    assert_booted_from(&fresh, &schema, &put.key, at, &log).await;
    fresh.shutdown().await.expect("shutdown");
    let found = newest_snapshot(&memory, &schema).await;
    assert_eq!(found.snapshot.version, 1);
    let check = ReplayCheck::new(schema.clone(), memory_backend(&memory, STORE)).expect("a check");
    assert_eq!(
        check.check(&found.snapshot).await.expect("the log reads"),
        None
    );
}
