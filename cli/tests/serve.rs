//! `eventsync serve` through the binary: it prints where it listens, refuses a request
//! without the auth token (401) and never prints the token, takes a LiveStore push over
//! HTTP that an eventsync client reading the bucket directly then sees as a todo, and stops
//! on SIGTERM with exit status 0; and a client syncing through it with
//! `--backend eventsync+ws://…` that converges with a client reading the folder directly.

mod cli_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// `{"authToken":"sekrit-token"}`, double-encoded as LiveStore puts it in the URL.
const GOOD: &str = "payload=%257B%2522authToken%2522%253A%2522sekrit-token%2522%257D";

fn spawn_serve(dir: &std::path::Path, backend: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventsync"))
        .current_dir(dir)
        .args([
            "--backend",
            backend,
            "-v",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("EVENTSYNC_AUTH_TOKEN", "sekrit-token")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start eventsync serve");
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("listening on 127.0.0.1:"), "{first}");
    let addr = first
        .split_whitespace()
        .nth(4)
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .to_string();
    (child, addr)
}

async fn post(addr: &str, query: &str, body: &Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!(
            "http://{addr}/sync?storeId=s&transport=http&{query}"
        ))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn test_serve_auth_push_reaches_a_direct_client_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let bucket = bucket.to_str().unwrap();
    let (child, addr) = spawn_serve(dir.path(), bucket);

    let ping = json!({"_tag": "Request", "id": "0", "tag": "SyncHttpRpc.Ping",
                      "payload": {"storeId": "s"}, "headers": []});
    assert_eq!(post(&addr, "", &ping).await.0, 401);
    let (status, body) = post(&addr, GOOD, &ping).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("SyncMessage.Pong"), "{body}");

    let push = json!({"_tag": "Request", "id": "1", "tag": "SyncHttpRpc.Push", "headers": [],
        "payload": {"storeId": "s", "backendId": {"_tag": "None"}, "batch": [{
            "name": "v1.TodoCreated", "args": {"id": "ls-1", "text": "from LiveStore"},
            "seqNum": 1, "parentSeqNum": 0, "clientId": "ls", "sessionId": "ls-s"}]}});
    let (status, body) = post(&addr, GOOD, &push).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""exit":{"_tag":"Success","value":{}}"#),
        "{body}"
    );

    // An eventsync client syncing straight through the bucket sees the todo.
    let data = dir.path().join("data");
    let client = |args: &[&str]| {
        let mut all = vec!["--backend", bucket, "--store", "s", "--data-dir"];
        all.push(data.to_str().unwrap());
        all.extend_from_slice(args);
        cli_support::eventsync(dir.path(), &all)
    };
    client(&["sync"]).ok();
    let todos: Value = serde_json::from_str(client(&["todo", "list", "--json"]).ok()).unwrap();
    assert_eq!(todos[0]["text"], "from LiveStore", "{todos}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("stopped"), "{stdout}");
    assert!(
        !stdout.contains("sekrit") && !stderr.contains("sekrit"),
        "the token is never printed"
    );
    assert!(
        stderr.contains("request refused"),
        "refusals are logged: {stderr}"
    );
}

/// Runs the binary as a client of store `s` with its own data dir, through `backend`,
/// sending `token` (EVENTSYNC_AUTH_TOKEN) when given.
fn client_run(
    dir: &std::path::Path,
    data: &str,
    backend: &str,
    token: Option<&str>,
    args: &[&str],
) -> cli_support::Run {
    let data = dir.join(data);
    let mut all = vec!["--backend", backend, "--store", "s", "--data-dir"];
    all.push(data.to_str().unwrap());
    all.extend_from_slice(args);
    let env: Vec<(&str, &str)> = token
        .map(|t| ("EVENTSYNC_AUTH_TOKEN", t))
        .into_iter()
        .collect();
    cli_support::eventsync_env(dir, &all, &env)
}

fn todo_texts(run: &cli_support::Run) -> Vec<String> {
    let todos: Value = serde_json::from_str(run.ok()).unwrap();
    let mut texts: Vec<String> = todos
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect();
    texts.sort();
    texts
}

#[test]
fn test_a_client_syncs_through_serve_with_eventsync_ws_and_converges_with_a_direct_one() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let bucket = bucket.to_str().unwrap();
    let (mut child, addr) = spawn_serve(dir.path(), bucket);
    let remote = format!("eventsync+ws://{addr}/sync");
    let token = Some("sekrit-token");

    // Through the server, with no bucket access at all.
    client_run(
        dir.path(),
        "a",
        &remote,
        token,
        &["todo", "add", "via the server"],
    )
    .ok();
    client_run(dir.path(), "a", &remote, token, &["sync"]).ok();
    // Straight from the folder.
    client_run(dir.path(), "b", bucket, None, &["sync"]).ok();
    client_run(
        dir.path(),
        "b",
        bucket,
        None,
        &["todo", "add", "straight from the folder"],
    )
    .ok();
    client_run(dir.path(), "b", bucket, None, &["sync"]).ok();
    client_run(dir.path(), "a", &remote, token, &["sync"]).ok();
    let both = vec![
        "straight from the folder".to_string(),
        "via the server".to_string(),
    ];
    let a = client_run(dir.path(), "a", &remote, token, &["todo", "list", "--json"]);
    let b = client_run(dir.path(), "b", bucket, None, &["todo", "list", "--json"]);
    assert_eq!(todo_texts(&a), both);
    assert_eq!(todo_texts(&b), both);

    // A refused token: a clear one-line error, a non-zero exit, no token printed.
    for bad in [Some("guessed-xyz"), None] {
        let run = client_run(dir.path(), "c", &remote, bad, &["sync"]);
        // The leader logs its retries as warnings; the last line is the error.
        assert_eq!(run.code, 1, "{run:?}");
        let line = run.stderr.lines().last().unwrap_or_default();
        assert!(line.starts_with("eventsync: "), "{run:?}");
        assert!(
            line.contains("access denied") && line.contains("auth token"),
            "{line}"
        );
        assert!(!run.stderr.contains("guessed-xyz") && !run.stdout.contains("guessed-xyz"));
    }
    // A bad server URL is named, without its credentials.
    let run = client_run(
        dir.path(),
        "d",
        &format!("eventsync+ws://u:hunter22@{addr}/sync"),
        token,
        &["sync"],
    );
    let line = run.one_line_error();
    assert!(
        line.contains("credentials") && !line.contains("hunter22"),
        "{line}"
    );
    let run = client_run(
        dir.path(),
        "d",
        &format!("{remote}?storeId=x"),
        token,
        &["sync"],
    );
    assert!(run.one_line_error().contains("query"), "{run:?}");

    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains("sekrit"), "the server never prints the token");
}
