//! SIGKILL in the middle of a multi-segment cold pull loses nothing and doubles nothing:
//! a folder backend holds a log of 600 segments (1,200 events); a fresh client runs
//! `eventsync sync` with pages of 20 events (`[segment_log] page_events`), so the pull takes
//! about 60 leader steps, and is killed (`Child::kill`, SIGKILL on Unix) once it has logged
//! taking its third page and then a durable commit. The audit checks that:
//!
//! - the killed process was still running when the kill came (the pull was interrupted);
//! - what the killed client holds is a prefix of the backend's log, short of its end;
//! - the client reopened by `eventsync sync` finishes the pull and then holds the backend's
//!   log exactly: every event once, in order, and the todos of exactly those events.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use eventsync::backends::conformance::make_events;
use eventsync::backends::open::open_backend;
use eventsync::backends::{GlobalEvent, GlobalSeq, SyncBackend, SyncBackendExt};
use eventsync::{EncodedEvent, Store};
use serde_json::Value;

const STORE: &str = "cold-crash";
const CLIENT: &str = "reader";
/// Segments of the log, of 1, 2 and 3 events in turn: 1,200 events.
const SEGMENTS: usize = 600;
/// Events per pulled page: small, so the pull takes many leader steps.
const PAGE_EVENTS: usize = 20;
/// The kill comes once the client logged taking this many pages.
const KILL_AFTER_PAGES: usize = 3;
/// What the leader logs (at debug) for each pulled page it takes.
const PAGE_TAKEN: &str = "taking a pulled page";
/// What the leader logs (at debug) once the steps of a wake-up are durable.
const COMMITTED: &str = "committed the steps of this wake-up";

/// Writes the log: `SEGMENTS` pushes of 1, 2 and 3 events in turn.
async fn write_log(backend: &Arc<dyn SyncBackend>) -> Vec<GlobalEvent> {
    let mut head = GlobalSeq::ZERO;
    for index in 0..SEGMENTS {
        let batch = make_events(head, index % 3 + 1, "writer", 20);
        head = batch.last().expect("an event").seq_num;
        backend.push(batch).await.expect("push a segment");
    }
    backend.read_all_checked().await.expect("the backend's log")
}

/// `eventsync args...` for the reader, in `root` (where `eventsync.toml` is), with a clean
/// environment.
fn command(root: &Path, backend: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventsync"));
    command.current_dir(root);
    for (name, _) in std::env::vars() {
        if name.starts_with("EVENTSYNC_") || name.starts_with("AWS_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .args(["--backend", backend, "--store", STORE])
        .args([
            "--data-dir",
            root.join("reader").to_str().expect("a UTF-8 path"),
        ])
        .args(["--client-id", CLIENT])
        .args(args);
    command
}

/// The synced events the reader's data dir holds, read by a store opened offline.
async fn local_log(root: &Path, backend: Arc<dyn SyncBackend>) -> Vec<GlobalEvent> {
    let store = Store::builder(Arc::new(eventsync_todo::todo_schema()))
        .with_backend(backend)
        .with_store_id(STORE)
        .with_data_dir(root.join("reader"))
        .with_client_id(CLIENT)
        .with_offline(true)
        .open()
        .await
        .expect("the reader's store opens");
    let eventlog = store.eventlog().await.expect("the eventlog");
    store.shutdown().await.expect("shutdown");
    eventlog
        .iter()
        .filter(|event| !event.is_client_only())
        .map(EncodedEvent::to_global)
        .collect()
}

#[test]
fn test_sigkill_in_the_middle_of_a_cold_pull_loses_and_doubles_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let root = tempfile::tempdir().expect("a temp dir");
    let root = root.path();
    let folder = root.join("backend");
    std::fs::create_dir_all(&folder).expect("the backend folder");
    let url = format!("file://{}", folder.display());
    std::fs::write(
        root.join("eventsync.toml"),
        format!("[segment_log]\npage_events = {PAGE_EVENTS}\n"),
    )
    .expect("the config file");
    let backend = runtime
        .block_on(open_backend(&url, STORE, &Default::default()))
        .expect("the folder backend opens");
    let log = runtime.block_on(write_log(&backend));
    assert_eq!(log.len(), 1_200);

    // The cold pull, killed once it took its third page.
    let mut child = command(root, &url, &["-vv", "sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start eventsync sync");
    let stderr = child.stderr.take().expect("piped stderr");
    let (ready_tx, ready) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut pages = 0;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(PAGE_TAKEN) {
                pages += 1;
            } else if line.contains(COMMITTED) && pages >= KILL_AFTER_PAGES {
                let _ = ready_tx.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    assert!(
        ready.recv_timeout(Duration::from_secs(60)).is_ok(),
        "the cold pull never logged a commit after taking {KILL_AFTER_PAGES} pages"
    );
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the cold pull finished before the kill"
    );
    child.kill().expect("SIGKILL the cold pull");
    let status = child.wait().expect("wait for the killed pull");
    assert_eq!(status.code(), None, "killed by a signal: {status}");
    let stderr = reader.join().expect("the stderr reader");
    let taken = stderr.matches(PAGE_TAKEN).count();

    let held = runtime.block_on(local_log(root, backend.clone()));
    eprintln!(
        "killed after {taken} pages taken; the reader held {} of {} events",
        held.len(),
        log.len()
    );
    assert!(
        !held.is_empty() && held.len() < log.len(),
        "the reader should hold part of the log after the kill, not {} events",
        held.len()
    );
    assert_eq!(
        held,
        log[..held.len()],
        "the killed reader holds a prefix of the log"
    );

    // Reopened, the reader finishes the pull.
    let output = command(root, &url, &["sync"])
        .output()
        .expect("run eventsync sync");
    assert!(
        output.status.success(),
        "sync after the kill failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let held = runtime.block_on(local_log(root, backend.clone()));
    assert_eq!(held.len(), log.len(), "every event, once");
    assert_eq!(held, log, "the reader holds the backend's log, in order");

    let output = command(root, &url, &["--offline", "todo", "list", "--json"])
        .output()
        .expect("run eventsync todo list");
    assert!(output.status.success(), "todo list failed: {output:?}");
    let todos: Value = serde_json::from_slice(&output.stdout).expect("a JSON list");
    let mut listed: Vec<String> = todos
        .as_array()
        .expect("an array")
        .iter()
        .map(|todo| todo["id"].as_str().expect("an id").to_owned())
        .collect();
    let mut logged: Vec<String> = log
        .iter()
        .map(|event| event.args["id"].as_str().expect("an id").to_owned())
        .collect();
    listed.sort();
    logged.sort();
    assert_eq!(
        listed, logged,
        "the reader's todos are the log's, once each"
    );
}
