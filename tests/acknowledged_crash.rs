//! An acknowledged commit survives `kill -9` (RELIABILITY.md, "The durability promise").
//!
//! A child process opens a store offline, commits `ACKNOWLEDGED` todos from one session and
//! waits for their acknowledgement: the session hears the leader's head reach its last
//! commit, which the leader sends only after the batch holding it is committed to
//! `eventlog.db`. It tells the parent so (a marker file), then keeps committing more, and
//! the parent kills it with SIGKILL meanwhile. The reopened store must hold every
//! acknowledged commit exactly once, in commit order, then at most a prefix of the later
//! ones (each once), numbered e1, e2, … without a gap, and state tables equal to a fresh
//! materialization of that eventlog.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eventsync::{ClientSession, Store};
use eventsync_todo::{TodoCreated, todo_schema};
use support::{TODOS_DUMP, fast_tuning, synced, todos_from_scratch};

/// Commits the child waits to see acknowledged before telling the parent.
const ACKNOWLEDGED: usize = 300;
/// Tells the forked child where the data dir is.
const CHILD_DIR_ENV: &str = "EVENTSYNC_TEST_ACK_DIR";
/// The marker the child writes once the first `ACKNOWLEDGED` commits are acknowledged.
const MARKER: &str = "acknowledged";

async fn open(dir: &Path) -> eventsync::Result<Store> {
    Store::builder(Arc::new(todo_schema()))
        .with_data_dir(dir)
        .with_client_id("a")
        .with_offline(true)
        // The leader on its own thread (the default), as a real application runs it.
        .with_tuning(fast_tuning())
        .open()
        .await
}

fn todo(n: usize) -> TodoCreated {
    TodoCreated {
        id: format!("t{n}"),
        text: format!("todo {n}"),
    }
}

/// Commits todo `n`, letting the leader run every few commits so that the work spreads over
/// many batches.
async fn commit(session: &ClientSession, n: usize) {
    session.commit(&todo(n)).expect("commit");
    if n.is_multiple_of(7) {
        tokio::task::yield_now().await;
    }
}

async fn child(dir: PathBuf) -> ! {
    let store = open(&dir).await.expect("open");
    let session = store.session().await.expect("session");
    let mut last = None;
    for n in 0..ACKNOWLEDGED {
        commit(&session, n).await;
        last = Some(session.sync_status().local_head);
    }
    let last = last.expect("committed");
    // Acknowledged: the leader's head, as the session heard it, reached the last commit.
    while last.is_after(&session.sync_status().leader_head) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    std::fs::write(dir.join(MARKER), b"").expect("write the marker");
    for n in ACKNOWLEDGED.. {
        commit(&session, n).await;
    }
    unreachable!("commits until killed")
}

async fn check_after_kill(dir: &Path) {
    let store = open(dir).await.expect("reopen after the kill");
    let eventlog = store.eventlog().await.expect("eventlog");
    assert!(
        eventlog.len() >= ACKNOWLEDGED,
        "acknowledged commits lost: {} of {ACKNOWLEDGED} in the eventlog",
        eventlog.len()
    );
    for (index, event) in eventlog.iter().enumerate() {
        assert_eq!(event.seq.global.0, index as u64 + 1, "gapless numbering");
        assert_eq!(event.seq.client, 0);
        assert_eq!(event.name, "v1.TodoCreated");
        // Commit order, each once: the n-th event is todo n.
        assert_eq!(event.args["id"], format!("t{index}"), "{event:?}");
    }
    let schema = todo_schema();
    assert_eq!(
        store.query_leader(TODOS_DUMP).await.unwrap(),
        todos_from_scratch(&schema, &synced(&eventlog)),
        "state.db equals a fresh materialization of the eventlog"
    );
    eprintln!(
        "{ACKNOWLEDGED} acknowledged, {} in the eventlog after SIGKILL",
        eventlog.len()
    );
    store.shutdown().await.unwrap();
}

#[cfg(unix)]
#[test]
fn test_acknowledged_commits_survive_sigkill_exactly_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = std::cell::OnceCell::new();
    rusty_fork::fork(
        rusty_fork::rusty_fork_test_name!(test_acknowledged_commits_survive_sigkill_exactly_once),
        rusty_fork::rusty_fork_id!(),
        |command| {
            let root = root.get_or_init(|| tempfile::tempdir().unwrap());
            command.env(CHILD_DIR_ENV, root.path());
        },
        |child, _output| {
            let dir = root.get().expect("made before the child").path();
            let marker = dir.join(MARKER);
            runtime.block_on(async {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                while !marker.exists() {
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!("the child ended before its commits were acknowledged: {status}");
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the child's commits were never acknowledged"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // Let it commit (and the leader write) some more, then kill it mid-way.
                tokio::time::sleep(Duration::from_millis(50)).await;
            });
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert_eq!(
                status.unix_signal(),
                Some(9),
                "killed with SIGKILL: {status}"
            );
            runtime.block_on(check_after_kill(dir));
        },
        || {
            let dir = PathBuf::from(std::env::var_os(CHILD_DIR_ENV).expect("the parent's dir"));
            runtime.block_on(child(dir));
        },
    )
    .unwrap();
}
