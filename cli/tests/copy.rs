//! `eventsync copy --from URL --to URL` through the binary: a store moves between folders
//! with its backend id, so its clients go on syncing against the copy without a reset; a
//! copy with objects missing at the target (as a kill leaves it) is finished by running it
//! again; a target that holds another store is refused and left as it was.

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{Run, eventsync};
use serde_json::Value;

/// Runs `eventsync --store s --data-dir DIR/data args...` in `dir`.
fn run(dir: &Path, args: &[&str]) -> Run {
    let data = dir.join("data");
    let mut all = vec!["--store", "s", "--data-dir", data.to_str().unwrap()];
    all.extend_from_slice(args);
    eventsync(dir, &all)
}

fn todo_texts(dir: &Path, backend: &str) -> Vec<String> {
    let list: Value =
        serde_json::from_str(run(dir, &["--backend", backend, "todo", "list", "--json"]).ok())
            .unwrap();
    let mut texts: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|todo| todo["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    texts
}

fn segments(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "seg") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn copy(dir: &Path, from: &str, to: &str) -> Value {
    serde_json::from_str(run(dir, &["copy", "--from", from, "--to", to, "--json"]).ok()).unwrap()
}

#[test]
fn test_copy_moves_a_store_and_its_clients_go_on_without_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    for text in ["one", "two", "three"] {
        run(dir.path(), &["--backend", a, "todo", "add", text]).ok();
    }
    let report = copy(dir.path(), a, b);
    assert_eq!(report["copied"], 4, "store.json and 3 segments: {report}");
    assert_eq!(report["verifiedEvents"], 3);
    // The same client, pointed at the copy: same backend id, so no reset; it goes on.
    run(dir.path(), &["--backend", b, "todo", "add", "four"]).ok();
    assert_eq!(todo_texts(dir.path(), b), ["four", "one", "three", "two"]);
    let log = run(dir.path(), &["--backend", b, "log", "--json"]);
    assert_eq!(log.ok().lines().count(), 4);
    assert_eq!(segments(Path::new(b)).len(), 4);
}

#[test]
fn test_an_interrupted_copy_is_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    for text in ["one", "two", "three"] {
        run(dir.path(), &["--backend", a, "todo", "add", text]).ok();
    }
    copy(dir.path(), a, b);
    let copied = segments(Path::new(b));
    std::fs::remove_file(&copied[1]).unwrap();
    std::fs::remove_file(&copied[2]).unwrap();
    let report = copy(dir.path(), a, b);
    assert_eq!(report["copied"], 2, "{report}");
    assert_eq!(report["alreadyThere"], 2, "{report}");
    assert_eq!(report["verifiedEvents"], 3);
    let said = run(dir.path(), &["copy", "--from", a, "--to", b]);
    assert!(
        said.ok().contains("0 objects written, 4 already there"),
        "{said:?}"
    );
}

#[test]
fn test_copy_refuses_a_target_that_holds_another_store() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    run(dir.path(), &["--backend", a, "todo", "add", "source"]).ok();
    let other = dir.path().join("other");
    eventsync(
        dir.path(),
        &[
            "--store",
            "s",
            "--data-dir",
            other.to_str().unwrap(),
            "--backend",
            b,
            "todo",
            "add",
            "mine",
        ],
    )
    .ok();
    let before = segments(Path::new(b));
    let refused = run(dir.path(), &["copy", "--from", a, "--to", b]);
    let line = refused.one_line_error();
    assert!(line.contains("already holds another store"), "{line}");
    assert_eq!(segments(Path::new(b)), before);
    let missing = dir.path().join("nothing");
    let refused = run(
        dir.path(),
        &["copy", "--from", missing.to_str().unwrap(), "--to", b],
    );
    assert!(
        refused.one_line_error().contains("there is no store"),
        "{refused:?}"
    );
}

/// A copy killed at whatever point the kill lands leaves a target that the next run
/// finishes: the copy is verified whole.
#[test]
fn test_a_copy_killed_with_sigkill_is_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    // 5,000 events in segments of 10: 500 objects to copy.
    std::fs::write(
        dir.path().join("small.toml"),
        "[segment_log]\nmax_events_per_segment = 10\n",
    )
    .unwrap();
    let lines: Vec<String> = (1..=5000u64)
        .map(|seq| {
            format!(
                r#"{{"seqNum":{seq},"parentSeqNum":{},"name":"v1.TodoCreated","args":{{"id":"t{seq}","text":"x"}},"clientId":"c","sessionId":"s"}}"#,
                seq - 1
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("in.json"),
        format!(
            "{{\"version\":1,\"storeId\":\"s\",\"exportedAt\":\"t\",\"eventCount\":5000,\"events\":[{}]}}",
            lines.join(",")
        ),
    )
    .unwrap();
    run(
        dir.path(),
        &[
            "--config",
            "small.toml",
            "--backend",
            a,
            "import",
            "in.json",
        ],
    )
    .ok();
    assert_eq!(segments(Path::new(a)).len(), 500);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_eventsync"))
        .current_dir(dir.path())
        .args(["--store", "s", "copy", "--from", a, "--to", b])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the copy has written some segments (or finished), then kill it.
    for _ in 0..2000 {
        if !segments(Path::new(b)).is_empty() || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let report = copy(dir.path(), a, b);
    assert_eq!(report["verifiedEvents"], 5000);
    assert_eq!(
        report["copied"].as_u64().unwrap() + report["alreadyThere"].as_u64().unwrap(),
        501,
        "{report}"
    );
    assert_eq!(segments(Path::new(b)).len(), 500);
}
