//! The leader's life: one per data dir, state rebuilt from the eventlog at boot (also when
//! the schema changed), changesets trimmed once confirmed, and a wiped backend.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsync::Event;
use eventsync::OnBackendIdMismatch;
use eventsync::schema::{EventDef, MaterializeContext, Schema, Statement};
use eventsync::{ErrorKind, Store, Tuning};
use eventsync_todo::{TodoCreated, todo_schema};
use object_store::memory::InMemory;
use serde_json::json;
use support::{fast_tuning, memory_backend, open_store};

async fn commit_todos(store: &Store, ids: &[&str]) {
    let session = store.session().await.unwrap();
    for id in ids {
        session
            .commit(&TodoCreated {
                id: (*id).into(),
                text: format!("todo {id}"),
            })
            .unwrap();
    }
}

async fn ids(store: &Store) -> Vec<serde_json::Value> {
    store
        .query_leader("SELECT id FROM todos ORDER BY id")
        .await
        .unwrap()
}

#[tokio::test]
async fn test_second_leader_on_the_same_data_dir_waits_then_fails_clearly() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let first = open_store(&schema, dir.path(), "a", memory_backend(&memory, "lock")).await;
    let started = tokio::time::Instant::now();
    let second = Store::builder(schema.clone())
        .with_backend(memory_backend(&memory, "lock"))
        .with_data_dir(dir.path())
        .with_client_id("a")
        .with_tuning(Tuning {
            lock_timeout: Duration::from_millis(300),
            ..fast_tuning()
        })
        .open()
        .await;
    let error = second.expect_err("a second leader on the same files is refused");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert!(
        format!("{error:#}").contains("another eventsync process"),
        "{error}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited for the lock first"
    );
    // Once the first is gone, the data dir opens again.
    first.shutdown().await.unwrap();
    let again = open_store(&schema, dir.path(), "a", memory_backend(&memory, "lock")).await;
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_state_is_rebuilt_from_the_eventlog_when_state_db_is_lost() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&schema, dir.path(), "a", memory_backend(&memory, "rebuild")).await;
    commit_todos(&store, &["t1", "t2"]).await;
    store.sync().await.unwrap();
    commit_todos(&store, &["t3"]).await; // pending: kept with its changeset on rebuild
    let before = ids(&store).await;
    store.shutdown().await.unwrap();

    std::fs::remove_file(dir.path().join("default").join("state.db")).unwrap();
    let store = open_store(&schema, dir.path(), "a", memory_backend(&memory, "rebuild")).await;
    assert_eq!(ids(&store).await, before);
    assert_eq!(
        before,
        vec![
            json!({"id": "t1"}),
            json!({"id": "t2"}),
            json!({"id": "t3"})
        ]
    );
    store.sync().await.unwrap();
    assert_eq!(store.status().await.unwrap().pending, 0);
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_state_is_rebuilt_when_the_schema_changed() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(
        &Arc::new(todo_schema()),
        dir.path(),
        "a",
        memory_backend(&memory, "schema"),
    )
    .await;
    commit_todos(&store, &["t1", "t2"]).await;
    store.sync().await.unwrap();
    store.shutdown().await.unwrap();

    // Version 2 of the app keeps the text upper-cased in a new table layout.
    let v2 = Arc::new(
        Schema::builder()
            .table(
                "todos",
                "CREATE TABLE todos (id TEXT PRIMARY KEY, shout TEXT NOT NULL)",
            )
            .define_event(
                EventDef::synced(TodoCreated::NAME),
                |args: TodoCreated, _: &MaterializeContext<'_>| {
                    Ok(vec![Statement::new(
                        "INSERT INTO todos (id, shout) VALUES (?1, upper(?2))",
                        vec![args.id.into(), args.text.into()],
                    )])
                },
            )
            .build()
            .unwrap(),
    );
    let store = open_store(&v2, dir.path(), "a", memory_backend(&memory, "schema")).await;
    let rows = store
        .query_leader("SELECT id, shout FROM todos ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"id": "t1", "shout": "TODO T1"}),
            json!({"id": "t2", "shout": "TODO T2"})
        ]
    );
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_changesets_are_trimmed_once_the_backend_confirms() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let offline = Store::builder(schema.clone())
        .with_data_dir(dir.path())
        .with_client_id("a")
        .with_offline(true)
        .with_tuning(fast_tuning())
        .open()
        .await
        .unwrap();
    commit_todos(&offline, &["t1", "t2", "t3"]).await;
    let count = "SELECT coalesce(sum(events), 0) AS n FROM __eventsync_runs";
    assert_eq!(
        offline.query_leader(count).await.unwrap(),
        vec![json!({"n": 3})],
        "pending events keep changesets"
    );
    assert!(
        offline.sync().await.is_err(),
        "an offline store cannot sync"
    );
    offline.shutdown().await.unwrap();

    let store = open_store(&schema, dir.path(), "a", memory_backend(&memory, "trim")).await;
    store.sync().await.unwrap();
    assert_eq!(
        store.query_leader(count).await.unwrap(),
        vec![json!({"n": 0})],
        "confirmed events need none"
    );
    assert_eq!(ids(&store).await.len(), 3);
    store.shutdown().await.unwrap();
}

async fn open_with_policy(
    schema: &Arc<Schema>,
    dir: &std::path::Path,
    memory: &Arc<InMemory>,
    policy: OnBackendIdMismatch,
) -> eventsync::Result<Store> {
    Store::builder(schema.clone())
        .with_backend(memory_backend(memory, "wiped"))
        .with_data_dir(dir)
        .with_client_id("a")
        .with_tuning(Tuning {
            on_backend_id_mismatch: policy,
            ..fast_tuning()
        })
        .open()
        .await
}

#[tokio::test]
async fn test_wiped_backend_resets_by_default_and_can_shut_down_instead() {
    let schema = Arc::new(todo_schema());
    let dir = tempfile::tempdir().unwrap();
    let old = Arc::new(InMemory::new());
    let store = open_store(&schema, dir.path(), "a", memory_backend(&old, "wiped")).await;
    commit_todos(&store, &["t1", "t2"]).await;
    store.sync().await.unwrap();
    store.shutdown().await.unwrap();

    // The bucket is wiped and recreated: a new backend id.
    let wiped = Arc::new(InMemory::new());
    let refused =
        open_with_policy(&schema, dir.path(), &wiped, OnBackendIdMismatch::Shutdown).await;
    let error = refused.expect_err("shutdown policy refuses to open");
    assert_eq!(error.kind(), ErrorKind::Closed);
    assert!(
        format!("{error:#}").contains("wiped and recreated"),
        "{error}"
    );

    let store = open_with_policy(&schema, dir.path(), &wiped, OnBackendIdMismatch::Reset)
        .await
        .unwrap();
    assert!(ids(&store).await.is_empty(), "local data was cleared");
    assert!(store.eventlog().await.unwrap().is_empty());
    commit_todos(&store, &["fresh"]).await;
    store.sync().await.unwrap();
    assert_eq!(
        store.status().await.unwrap().backend_head,
        Some(eventsync::backends::GlobalSeq(1))
    );
    store.shutdown().await.unwrap();
}

/// `shutdown` keeps what every session committed, even a commit whose first push the leader
/// refused: two sessions number their first event on the same head, the leader admits one
/// and refuses the other, and the refused session re-pushes it renumbered once it has caught
/// up. The leader answers the shutdown only after that re-push is admitted.
#[tokio::test]
async fn test_shutdown_waits_for_a_refused_commit_to_be_pushed_again() {
    let schema = Arc::new(todo_schema());
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Store::builder(schema.clone())
            .with_offline(true)
            .with_data_dir(dir.path())
            .with_client_id("a")
            .with_tuning(fast_tuning())
            .open()
    };
    let store = open().await.unwrap();
    let first = store.session().await.unwrap();
    let second = store.session().await.unwrap();
    // On a current-thread runtime the leader does not run between these two commits, so
    // both are numbered e1 on the root.
    for (session, id) in [(&first, "x"), (&second, "y")] {
        let seq = session
            .commit(&TodoCreated {
                id: id.into(),
                text: format!("todo {id}"),
            })
            .unwrap();
        assert_eq!(seq.to_string(), "e1");
    }
    store.shutdown().await.unwrap();

    let store = open().await.unwrap();
    assert_eq!(
        ids(&store).await,
        vec![json!({"id": "x"}), json!({"id": "y"})]
    );
    let seqs: Vec<String> = store
        .eventlog()
        .await
        .unwrap()
        .iter()
        .map(|event| event.seq.to_string())
        .collect();
    assert_eq!(seqs, ["e1", "e2r1"]);
    store.shutdown().await.unwrap();
}

/// An error names each of its causes once: no message of the chain repeats the message of
/// its cause, so printing the chain (`{:#}`, the command line's one line) says each once.
#[tokio::test]
async fn test_an_error_names_each_cause_once() {
    let schema = Arc::new(todo_schema());
    let dir = tempfile::tempdir().unwrap();
    // A folder where state.db should be: SQLite cannot open it.
    std::fs::create_dir_all(dir.path().join("default").join("state.db")).unwrap();
    let error = Store::builder(schema)
        .with_offline(true)
        .with_data_dir(dir.path())
        .with_client_id("a")
        .open()
        .await
        .expect_err("state.db cannot be opened");
    let mut level: &dyn std::error::Error = &error;
    let mut causes = 0;
    while let Some(cause) = level.source() {
        let (message, cause_message) = (level.to_string(), cause.to_string());
        assert!(
            !message.contains(&cause_message),
            "{message:?} repeats its cause {cause_message:?}"
        );
        level = cause;
        causes += 1;
    }
    assert!(
        causes >= 1,
        "the error keeps SQLite's error as its cause: {error:?}"
    );
    assert!(format!("{error:#}").contains("state.db"), "{error:#}");
}
