//! Reactive queries: a subscription yields again when a table it reads changes (by this
//! session's commit or by events from the leader), and not when unrelated tables change.
//!
//! The test runs on tokio's paused clock: virtual time moves only when every task (the
//! leader's, the sessions') waits, and the leader does its SQLite work on the runtime's own
//! thread: the store runs it inline (`support::paused_clock_tuning`), since on a thread of
//! its own the leader would work while the runtime looks idle and lets time jump. So "nothing within 300 ms" means
//! "nothing the system would do in 300 ms of its own time", however loaded the machine.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventsync_todo::{Todo, TodoCreated, TodoFilter, UiStateSet, list_todos_sql, todo_schema};
use futures::StreamExt;
use object_store::memory::InMemory;
use support::{memory_backend, open_store_tuned, paused_clock_tuning, wait_until};

/// The next result, or `None` when none comes within 300 ms of virtual time (the leader
/// polls every 5 to 50 ms, so that is several rounds of everything it does).
async fn next(subscription: &mut eventsync::Subscription<Todo>) -> Option<Vec<Todo>> {
    match tokio::time::timeout(Duration::from_millis(300), subscription.next()).await {
        Ok(item) => Some(item.expect("stream open").expect("query runs")),
        Err(_) => None,
    }
}

#[tokio::test(start_paused = true)]
async fn test_subscription_follows_its_tables_only() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let store = open_store_tuned(
        &schema,
        dir.path(),
        "a",
        memory_backend(&memory, "reactive"),
        paused_clock_tuning(),
    )
    .await;
    let session = store.session().await.unwrap();
    let other = store.session().await.unwrap();
    let mut todos = session.subscribe::<Todo>(list_todos_sql(), &[]).unwrap();
    assert_eq!(
        next(&mut todos).await,
        Some(vec![]),
        "the current result comes first"
    );

    session
        .commit(&TodoCreated {
            id: "t1".into(),
            text: "milk".into(),
        })
        .unwrap();
    let first = next(&mut todos).await.expect("a commit to todos yields");
    assert_eq!(
        first
            .iter()
            .map(|todo| todo.id.as_str())
            .collect::<Vec<_>>(),
        ["t1"]
    );

    session
        .commit(&UiStateSet {
            filter: TodoFilter::Active,
        })
        .unwrap();
    // Barrier: the leader admitted both commits and its answer reached the session, so a
    // wake-up from the commit itself or from the leader's answer would be queued by now.
    wait_until("the leader confirms the session's commits", async || {
        session.sync_status().pending == 0
    })
    .await;
    assert_eq!(
        next(&mut todos).await,
        None,
        "a change to ui_state does not wake a todos query"
    );

    // Another session's commit reaches this one through the leader.
    other
        .commit(&TodoCreated {
            id: "t2".into(),
            text: "eggs".into(),
        })
        .unwrap();
    let both = next(&mut todos).await.expect("the leader's advance yields");
    assert_eq!(
        both.iter().map(|todo| todo.id.as_str()).collect::<Vec<_>>(),
        ["t1", "t2"]
    );
    store.shutdown().await.unwrap();
}
