//! `eventsync export` and `eventsync import` through the binary: a round trip gives the same
//! events byte for byte; each kind of bad file is refused in one line naming the event, and
//! nothing is written; a store with events is refused without `--force`; `--dry-run` writes
//! nothing; `--force` gives a new backend id, which a client of the old store follows; a
//! killed import is finished by running it again with `--force`.

mod cli_support;

use std::io::Write;
use std::path::{Path, PathBuf};

use cli_support::{Run, eventsync_env, s3_url_or_say_why_not};
use serde_json::Value;

/// Runs `eventsync --backend BACKEND --store STORE --data-dir DIR/data args...` in `dir`,
/// passing the AWS_* settings on for an S3 backend.
fn run(dir: &Path, backend: &str, args: &[&str]) -> Run {
    let data = dir.join("data");
    let mut all = vec![
        "--backend",
        backend,
        "--store",
        "s",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let aws: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.starts_with("AWS_"))
        .collect();
    let aws: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    eventsync_env(dir, &all, &aws)
}

/// The backend's log as JSON lines.
fn log(dir: &Path, backend: &str) -> Vec<Value> {
    run(dir, backend, &["log", "--json"])
        .ok()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every file under `folder` with its bytes, sorted by path (empty when it does not exist).
fn tree(folder: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                match std::fs::read(&path) {
                    Ok(bytes) => files.push((path.clone(), bytes)),
                    // While an import runs, the folder store writes each object to a temporary
                    // file and renames it: a listed name can be gone by the time it is read.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => panic!("reading {}: {error}", path.display()),
                }
            }
        }
    }
    files.sort();
    files
}

/// One `v1.TodoCreated` event line of an export, `e{seq}` with parent `e{seq-1}`.
fn todo_line(seq: u64) -> String {
    format!(
        r#"{{"seqNum":{seq},"parentSeqNum":{},"name":"v1.TodoCreated","args":{{"id":"t{seq}","text":"todo {seq}"}},"clientId":"c1","sessionId":"s1"}}"#,
        seq - 1
    )
}

/// A valid export of `count` todo events, as eventsync writes it.
fn export_text(count: u64) -> String {
    let lines: Vec<String> = (1..=count).map(todo_line).collect();
    format!(
        "{{\"version\":1,\"storeId\":\"s\",\"exportedAt\":\"2026-12-02T00:00:00.000Z\",\"eventCount\":{count},\"events\":[\n{}\n]}}\n",
        lines.join(",\n")
    )
}

/// Imports `text` (written to a file) into an empty folder backend and expects a one-line
/// refusal containing every needle, with nothing written to the backend.
fn assert_refused(text: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(&file, text).unwrap();
    assert_file_refused(dir.path(), &file, needles);
}

fn assert_file_refused(dir: &Path, file: &Path, needles: &[&str]) {
    let backend = dir.join("backend");
    let run = run(
        dir,
        backend.to_str().unwrap(),
        &["import", file.to_str().unwrap()],
    );
    let line = run.one_line_error();
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} missing: {line}");
    }
    assert_eq!(tree(&backend), vec![], "a refused import wrote something");
}

#[test]
fn test_export_import_export_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source").display().to_string();
    for text in ["milk", "eggs \"brown\"", "bread ü"] {
        run(dir.path(), &source, &["todo", "add", text]).ok();
    }
    let list: Value =
        serde_json::from_str(run(dir.path(), &source, &["todo", "list", "--json"]).ok()).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    run(dir.path(), &source, &["todo", "done", &id]).ok();
    let summary: Value =
        serde_json::from_str(run(dir.path(), &source, &["export", "first.json", "--json"]).ok())
            .unwrap();
    assert_eq!(summary["eventCount"], 4);

    let target = dir.path().join("target").display().to_string();
    let report: Value =
        serde_json::from_str(run(dir.path(), &target, &["import", "first.json", "--json"]).ok())
            .unwrap();
    assert_eq!(report["imported"], 4);
    assert_eq!(report["replaces"], false);
    assert_eq!(log(dir.path(), &target), log(dir.path(), &source));
    run(dir.path(), &target, &["export", "second.json"]).ok();

    let first = std::fs::read_to_string(dir.path().join("first.json")).unwrap();
    let second = std::fs::read_to_string(dir.path().join("second.json")).unwrap();
    let without_time = |text: &str| {
        let header: Value =
            serde_json::from_str(&format!("{}]}}", text.lines().next().unwrap())).unwrap();
        (
            header["storeId"].clone(),
            header["eventCount"].clone(),
            text.lines().skip(1).collect::<Vec<_>>().join("\n"),
        )
    };
    assert_eq!(without_time(&second), without_time(&first));
    assert_eq!(first.lines().count(), 6, "{first}");
}

#[test]
fn test_import_refuses_a_truncated_file() {
    let text = export_text(3);
    assert_refused(
        &text[..text.len() - 30],
        &["bad.json", "truncated", "inside event #3"],
    );
}

#[test]
fn test_import_refuses_a_wrong_version() {
    let text = export_text(2).replace("\"version\":1", "\"version\":2");
    assert_refused(&text, &["bad.json", "export version 2 is not supported"]);
}

#[test]
fn test_import_refuses_a_gap() {
    let text = export_text(3).replace(&format!("{},\n", todo_line(2)), "");
    assert_refused(
        &text.replace("\"eventCount\":3", "\"eventCount\":2"),
        &["bad.json", "event #2 (e3)", "expected e2"],
    );
}

#[test]
fn test_import_refuses_a_wrong_parent() {
    let text = export_text(3).replace(
        r#""seqNum":3,"parentSeqNum":2"#,
        r#""seqNum":3,"parentSeqNum":1"#,
    );
    assert_refused(
        &text,
        &[
            "bad.json",
            "event #3 (e3)",
            "parentSeqNum is e1, expected e2",
        ],
    );
}

#[test]
fn test_import_refuses_args_that_do_not_decode() {
    let text = export_text(3).replace(r#""text":"todo 2""#, r#""text":7"#);
    assert_refused(
        &text,
        &["bad.json", "event #2 (e2)", "args do not decode", "text"],
    );
}

#[test]
fn test_import_refuses_an_event_name_the_schema_does_not_know() {
    let text = export_text(2).replace(
        r#""seqNum":2,"parentSeqNum":1,"name":"v1.TodoCreated""#,
        r#""seqNum":2,"parentSeqNum":1,"name":"v9.Nope""#,
    );
    assert_refused(&text, &["bad.json", "event #2 (e2)", "v9.Nope"]);
}

/// A file of about 100 MB holding one event: refused after the size limit (the reader
/// stops there, it never holds the event), naming the event. Generated here, never
/// committed.
#[test]
fn test_import_refuses_a_100_mb_event() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.json");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    out.write_all(
        br#"{"version":1,"storeId":"s","exportedAt":"t","eventCount":1,"events":[{"seqNum":1,"parentSeqNum":0,"name":"v1.TodoCreated","args":{"id":"t1","text":""#,
    )
    .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        out.write_all(&chunk).unwrap();
    }
    out.write_all(br#""},"clientId":"c1","sessionId":"s1"}]}"#)
        .unwrap();
    out.flush().unwrap();
    drop(out);
    assert!(std::fs::metadata(&file).unwrap().len() > 100 << 20);
    assert_file_refused(
        dir.path(),
        &file,
        &["huge.json", "event #1", "larger than", "bytes"],
    );
}

#[test]
fn test_import_refuses_a_store_with_events_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("backend").display().to_string();
    run(dir.path(), &backend, &["todo", "add", "mine"]).ok();
    std::fs::write(dir.path().join("in.json"), export_text(3)).unwrap();
    let before = tree(&dir.path().join("backend"));
    let refused = run(dir.path(), &backend, &["import", "in.json"]);
    let line = refused.one_line_error();
    assert!(line.contains("already holds 1 events"), "{line}");
    assert!(line.contains("--force"), "{line}");
    assert_eq!(tree(&dir.path().join("backend")), before);
}

#[test]
fn test_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.json"), export_text(3)).unwrap();
    let backend_dir = dir.path().join("backend");
    let backend = backend_dir.display().to_string();
    // An empty store (it does not exist yet).
    let said = run(dir.path(), &backend, &["import", "in.json", "--dry-run"]);
    assert!(said.ok().contains("would import 3 events"), "{said:?}");
    assert_eq!(tree(&backend_dir), vec![]);
    // A store with events, with --force.
    run(dir.path(), &backend, &["todo", "add", "mine"]).ok();
    let before = tree(&backend_dir);
    let report: Value = serde_json::from_str(
        run(
            dir.path(),
            &backend,
            &["import", "in.json", "--dry-run", "--force", "--json"],
        )
        .ok(),
    )
    .unwrap();
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["replaces"], true);
    assert_eq!(report["previousHead"], 1);
    assert_eq!(report["imported"], 0);
    assert_eq!(tree(&backend_dir), before, "a dry run wrote something");
}

/// The backend id in a folder store's `store.json`.
fn backend_id(backend: &Path) -> String {
    let json: Value =
        serde_json::from_slice(&std::fs::read(backend.join("s").join("store.json")).unwrap())
            .unwrap();
    json["backendId"].as_str().unwrap().to_owned()
}

#[test]
fn test_force_gives_a_new_backend_id_and_old_clients_reset_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let backend_dir = dir.path().join("backend");
    let backend = backend_dir.display().to_string();
    run(dir.path(), &backend, &["todo", "add", "old 1"]).ok();
    run(dir.path(), &backend, &["todo", "add", "old 2"]).ok();
    let old_id = backend_id(&backend_dir);
    std::fs::write(dir.path().join("in.json"), export_text(3)).unwrap();
    let said = run(dir.path(), &backend, &["import", "in.json", "--force"]);
    let said = said.ok();
    assert!(said.contains("replaced its 2 events"), "{said}");
    let new_id = backend_id(&backend_dir);
    assert_ne!(new_id, old_id);
    assert!(said.contains(&new_id), "{said}");
    // The client that wrote into the old store finds the new id and resets to it (the
    // default on_backend_id_mismatch): its local data becomes the imported store's.
    run(dir.path(), &backend, &["sync"]).ok();
    let todos: Value =
        serde_json::from_str(run(dir.path(), &backend, &["todo", "list", "--json"]).ok()).unwrap();
    let mut texts: Vec<&str> = todos
        .as_array()
        .unwrap()
        .iter()
        .map(|todo| todo["text"].as_str().unwrap())
        .collect();
    texts.sort();
    assert_eq!(texts, ["todo 1", "todo 2", "todo 3"]);
    let log = log(dir.path(), &backend);
    assert_eq!(log.len(), 3);
    // The old store's segments are still there, under the old id, untouched.
    assert_eq!(tree(&backend_dir.join("s").join(&old_id)).len(), 2);
}

/// An import killed at whatever point the kill lands (before, during or after its pushes)
/// leaves a store that `import --force` then fills with the whole file.
#[test]
fn test_an_import_killed_with_sigkill_is_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let backend_dir = dir.path().join("backend");
    let backend = backend_dir.display().to_string();
    let count = 20_000;
    std::fs::write(dir.path().join("in.json"), export_text(count)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_eventsync"))
        .current_dir(dir.path())
        .args(["--backend", &backend, "--store", "s", "import", "in.json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the import has pushed something (or finished), then kill it.
    let segments = backend_dir.join("s");
    for _ in 0..2000 {
        let pushed = tree(&segments)
            .iter()
            .any(|(path, _)| path.extension().is_some_and(|ext| ext == "seg"));
        if pushed || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let again = run(
        dir.path(),
        &backend,
        &["import", "in.json", "--force", "--json"],
    );
    let report: Value = serde_json::from_str(again.ok()).unwrap();
    assert_eq!(report["imported"], count);
    let log = log(dir.path(), &backend);
    assert_eq!(log.len(), count as usize);
    let expected: Value = serde_json::from_str(&todo_line(count)).unwrap();
    assert_eq!(log.last().unwrap(), &expected);
}

#[test]
fn test_export_import_round_trip_through_s3() {
    let Some(url) = s3_url_or_say_why_not("test_export_import_round_trip_through_s3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run_id = format!("{:x}", std::process::id());
    let source = format!("{}/export-cli-{run_id}/a", url.trim_end_matches('/'));
    let target = format!("{}/export-cli-{run_id}/b", url.trim_end_matches('/'));
    std::fs::write(dir.path().join("in.json"), export_text(5)).unwrap();
    run(dir.path(), &source, &["import", "in.json"]).ok();
    run(dir.path(), &source, &["export", "out.json"]).ok();
    run(dir.path(), &target, &["import", "out.json"]).ok();
    assert_eq!(log(dir.path(), &target), log(dir.path(), &source));
    assert_eq!(log(dir.path(), &target).len(), 5);
    let out = std::fs::read_to_string(dir.path().join("out.json")).unwrap();
    let input = export_text(5);
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        input.lines().skip(1).collect::<Vec<_>>()
    );
}
