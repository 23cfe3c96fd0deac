//! Group commit to the backend: while a push is in flight, every event committed meanwhile
//! waits for it to end and then goes out in the next segment, up to the batch limit
//! (`Tuning::push_batch_events`), not one segment per commit.

mod support;

use std::sync::Arc;

use eventsync_todo::{TodoCreated, todo_schema};
use object_store::memory::InMemory;
use support::{GatedBackend, backend_log, memory_backend, open_store, wait_until};

/// Commits `count` todos while the backend holds every push, waits until the leader
/// admitted them all, then lets the pushes through. Returns (pushes, events pushed, events
/// in the backend).
async fn commit_while_held(count: usize) -> (u64, u64, usize) {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let gated = GatedBackend::new(memory_backend(&memory, "group"), false);
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = open_store(&schema, dir.path(), "a", gated.clone()).await;
    let session = store.session().await.expect("a session");
    for i in 0..count {
        session
            .commit(&TodoCreated {
                id: format!("t{i}"),
                text: "grouped".into(),
            })
            .expect("commit");
        if i % 10 == 0 {
            // Let the leader admit in several batches, as it would under a steady writer.
            tokio::task::yield_now().await;
        }
    }
    wait_until("the leader admitted every commit", || async {
        session.sync_status().pending == 0
    })
    .await;
    assert_eq!(store.stats().pushes, 0, "the gate holds every push");
    gated.set_open(true);
    store.sync().await.expect("sync");
    let stats = store.stats();
    let logged = backend_log(&memory_backend(&memory, "group")).await.len();
    drop(session);
    store.shutdown().await.expect("shutdown");
    (stats.pushes, stats.pushed_events, logged)
}

#[tokio::test]
async fn test_commits_made_during_a_held_push_go_out_in_one_segment() {
    let (pushes, pushed, logged) = commit_while_held(100).await;
    // The held push carries what was admitted when it started; the other events, one push.
    assert!(pushes <= 2, "{pushes} pushes for 100 commits");
    assert_eq!((pushed, logged), (100, 100));
}

#[tokio::test]
async fn test_group_commit_splits_at_the_batch_limit() {
    // 250 events at 100 a push (the default `push_batch_events`): at least 3 pushes, and
    // at most the held one plus 3.
    let (pushes, pushed, logged) = commit_while_held(250).await;
    assert!((3..=4).contains(&pushes), "{pushes} pushes for 250 commits");
    assert_eq!((pushed, logged), (250, 250));
}
