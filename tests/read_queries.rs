//! Read queries only read: `ClientSession::query`, `subscribe` and
//! `Store::query_leader` refuse, with `ErrorKind::Invalid` and the statement named, anything
//! that would change the database or the connection, and nothing changes.

mod support;

use std::sync::Arc;

use eventsync::{ClientSession, ErrorKind, Store};
use eventsync_todo::{TodoCreated, todo_schema};
use futures::StreamExt;
use object_store::memory::InMemory;
use serde_json::{Value, json};
use support::{
    TODOS_DUMP, backend_log, memory_backend, open_store, todos_from_scratch, wait_until,
};

/// Statements that SQLite runs as a "query" and that change something: the rows, the
/// transaction state, the attached databases, a setting.
const REFUSED: &[&str] = &[
    "DELETE FROM todos RETURNING 1 AS n",
    "INSERT INTO todos (id, text, created_seq) VALUES ('x', 'sneaked in', 0) RETURNING id",
    "WITH doomed AS (SELECT id FROM todos) DELETE FROM todos WHERE id IN doomed",
    "BEGIN",
    "ATTACH DATABASE ':memory:' AS other",
    "PRAGMA user_version = 7",
    "PRAGMA foreign_keys = OFF",
    "SELECT 1 AS n; DELETE FROM todos",
];

/// What the refused statements would change: the todos, the settings, the databases.
const SNAPSHOT: [&str; 3] = [
    TODOS_DUMP,
    "SELECT * FROM pragma_user_version, pragma_foreign_keys, pragma_query_only",
    "SELECT name FROM pragma_database_list ORDER BY name",
];

fn assert_refused<T>(sql: &str, result: eventsync::Result<T>) {
    let Err(error) = result else {
        panic!("{sql:?} was not refused")
    };
    assert_eq!(error.kind(), ErrorKind::Invalid, "{sql:?}: {error}");
    assert!(format!("{error:#}").contains(sql), "names {sql:?}: {error}");
}

fn session_snapshot(session: &ClientSession) -> Vec<Vec<Value>> {
    SNAPSHOT
        .iter()
        .map(|sql| session.query(sql, &[]).unwrap())
        .collect()
}

async fn leader_snapshot(store: &Store) -> Vec<Vec<Value>> {
    let mut snapshot = Vec::new();
    for sql in SNAPSHOT {
        snapshot.push(store.query_leader(sql).await.unwrap());
    }
    snapshot
}

async fn commit(session: &ClientSession, ids: &[&str]) {
    for id in ids {
        session
            .commit(&TodoCreated {
                id: (*id).into(),
                text: format!("todo {id}"),
            })
            .unwrap();
    }
}

/// A store on a fresh memory backend with t1, t2 synced and t3 pending in the session.
async fn store_with_todos(memory: &Arc<InMemory>, dir: &std::path::Path) -> (Store, ClientSession) {
    let schema = Arc::new(todo_schema());
    let store = open_store(&schema, dir, "a", memory_backend(memory, "reads")).await;
    let session = store.session().await.unwrap();
    commit(&session, &["t1", "t2"]).await;
    store.sync().await.unwrap();
    commit(&session, &["t3"]).await;
    (store, session)
}

/// After the refusals the session still works: a commit is confirmed, and the session's
/// rows are the leader's.
async fn assert_session_still_in_step(store: &Store, session: &ClientSession) {
    commit(session, &["t4"]).await;
    store.sync().await.unwrap();
    wait_until("the session's commits are confirmed", async || {
        session.sync_status().pending == 0
    })
    .await;
    let rows: Vec<Value> = session.query(TODOS_DUMP, &[]).unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows, store.query_leader(TODOS_DUMP).await.unwrap());
}

#[tokio::test]
async fn test_session_query_refuses_statements_that_are_not_reads() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (store, session) = store_with_todos(&memory, dir.path()).await;
    let before = session_snapshot(&session);
    assert_eq!(before[0].len(), 3);
    for sql in REFUSED {
        assert_refused(sql, session.query::<Value>(sql, &[]));
        assert_eq!(session_snapshot(&session), before, "after {sql:?}");
    }
    assert_session_still_in_step(&store, &session).await;
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_session_subscribe_refuses_statements_that_are_not_reads() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (store, session) = store_with_todos(&memory, dir.path()).await;
    let before = session_snapshot(&session);
    for sql in REFUSED {
        assert_refused(sql, session.subscribe::<Value>(sql, &[]));
        assert_eq!(session_snapshot(&session), before, "after {sql:?}");
    }
    // A read subscription still works, and sees the next commit.
    let mut live = session
        .subscribe::<Value>("SELECT count(*) AS n FROM todos", &[])
        .unwrap();
    assert_eq!(live.next().await.unwrap().unwrap(), vec![json!({"n": 3})]);
    assert_session_still_in_step(&store, &session).await;
    assert_eq!(live.next().await.unwrap().unwrap(), vec![json!({"n": 4})]);
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn test_query_leader_refuses_statements_that_are_not_reads() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let (store, session) = store_with_todos(&memory, dir.path()).await;
    // Whether t3 is still pending when the leader has it is a race with its push (the
    // leader on its own thread may push it at once), so wait on its row.
    wait_until("the leader holds t3", async || {
        store.query_leader(TODOS_DUMP).await.unwrap().len() == 3
    })
    .await;
    let before = leader_snapshot(&store).await;
    assert_eq!(before[0].len(), 3);
    for sql in REFUSED {
        assert_refused(sql, store.query_leader(sql).await);
        assert_eq!(leader_snapshot(&store).await, before, "after {sql:?}");
    }
    assert_session_still_in_step(&store, &session).await;
    store.shutdown().await.unwrap();

    // state.db is still the backend's log, materialized.
    let schema = Arc::new(todo_schema());
    let backend = memory_backend(&memory, "reads");
    let store = open_store(&schema, dir.path(), "a", backend.clone()).await;
    let log = backend_log(&backend).await;
    assert_eq!(log.len(), 4);
    let rows = store.query_leader(TODOS_DUMP).await.unwrap();
    assert_eq!(rows, todos_from_scratch(&schema, &log));
    store.shutdown().await.unwrap();
}
