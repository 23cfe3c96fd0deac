//! The `eventsync` binary end to end, several processes through one backend: concurrent
//! `todo add`s from 4 processes give a gapless log with one `v1.TodoCreated` per add and
//! identical replicas; offline commits converge after `sync`
//! with the second client's events rebased after the first's; secrets never reach output;
//! `demo` passes its own checks.

mod cli_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cli_support::{Run, eventsync, eventsync_env, s3_url_or_say_why_not};
use serde_json::Value;

/// One simulated device: its own data dir and client id, a shared backend and store.
#[derive(Clone)]
struct Client {
    cwd: PathBuf,
    data_dir: PathBuf,
    client_id: String,
    backend: String,
    store: String,
}

impl Client {
    fn new(root: &Path, name: &str, backend: &str, store: &str) -> Client {
        Client {
            cwd: root.to_path_buf(),
            data_dir: root.join(name),
            client_id: name.to_string(),
            backend: backend.to_string(),
            store: store.to_string(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut all = vec![
            "--backend",
            &self.backend,
            "--store",
            &self.store,
            "--data-dir",
            self.data_dir.to_str().unwrap(),
            "--client-id",
            &self.client_id,
        ];
        all.extend_from_slice(args);
        // S3 settings (AWS_*) pass through for the S3 run.
        let aws: Vec<(String, String)> = std::env::vars()
            .filter(|(name, _)| name.starts_with("AWS_"))
            .collect();
        let aws: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        eventsync_env(&self.cwd, &all, &aws)
    }

    fn todos(&self) -> Value {
        serde_json::from_str(self.run(&["todo", "list", "--json"]).ok()).unwrap()
    }

    fn log(&self) -> Vec<Value> {
        self.run(&["log", "--json"])
            .ok()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

fn folder_backend(root: &Path) -> String {
    let folder = root.join("backend");
    std::fs::create_dir_all(&folder).unwrap();
    format!("file://{}", folder.display())
}

/// Asserts the log is e1..en with parent = seq - 1.
fn assert_gapless(log: &[Value]) {
    for (i, event) in log.iter().enumerate() {
        assert_eq!(event["seqNum"], i as u64 + 1, "event {i}: {event}");
        assert_eq!(event["parentSeqNum"], i as u64, "event {i}: {event}");
    }
}

/// 4 processes, each with its own data dir, run `todo add` concurrently `per_client`
/// times; then the log holds exactly one `v1.TodoCreated` per add, gapless, and every
/// client's list (after `sync`) is the same list of all the adds.
fn concurrent_adds(root: &Path, backend: &str, store: &str, per_client: usize) {
    let clients: Vec<Client> = (1..=4)
        .map(|i| Client::new(root, &format!("c{i}"), backend, store))
        .collect();
    std::thread::scope(|scope| {
        for client in &clients {
            scope.spawn(move || {
                for k in 0..per_client {
                    let text = format!("{}-todo-{k}", client.client_id);
                    client.run(&["todo", "add", &text]).ok();
                }
            });
        }
    });
    let expected: BTreeSet<String> = clients
        .iter()
        .flat_map(|c| (0..per_client).map(move |k| format!("{}-todo-{k}", c.client_id)))
        .collect();

    let log = clients[0].log();
    assert_eq!(log.len(), expected.len(), "one event per add");
    assert_gapless(&log);
    let mut texts = BTreeSet::new();
    for event in &log {
        assert_eq!(event["name"], "v1.TodoCreated", "{event}");
        let text = event["args"]["text"].as_str().unwrap().to_string();
        assert!(
            texts.insert(text.clone()),
            "{text} appears twice in the log"
        );
        let author = text.split('-').next().unwrap();
        assert_eq!(event["clientId"], author, "{event}");
    }
    assert_eq!(texts, expected);

    let mut lists = Vec::new();
    for client in &clients {
        client.run(&["sync"]).ok();
        lists.push(client.todos());
    }
    let listed: BTreeSet<String> = lists[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|todo| todo["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, expected);
    for list in &lists[1..] {
        assert_eq!(list, &lists[0], "every replica holds the same list");
    }
}

#[test]
fn test_four_processes_add_concurrently_through_a_folder() {
    let root = tempfile::tempdir().unwrap();
    let backend = folder_backend(root.path());
    concurrent_adds(root.path(), &backend, "default", 50);
}

#[test]
fn test_four_processes_add_concurrently_through_s3() {
    let Some(url) = s3_url_or_say_why_not("test_four_processes_add_concurrently_through_s3") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let unique = eventsync::Entropy::from_os().hex::<8>();
    let store = format!("cli-test-{}-{unique}", std::process::id());
    concurrent_adds(root.path(), &url, &store, 25);
}

#[test]
fn test_offline_clients_converge_and_the_second_is_rebased() {
    let root = tempfile::tempdir().unwrap();
    let backend = folder_backend(root.path());
    let alice = Client::new(root.path(), "alice", &backend, "default");
    let bob = Client::new(root.path(), "bob", &backend, "default");
    for (client, texts) in [(&alice, ["a1", "a2"]), (&bob, ["b1", "b2"])] {
        for text in texts {
            let out = client.run(&["--offline", "todo", "add", text]);
            assert!(out.ok().contains("offline"), "{out:#?}");
        }
    }
    assert!(alice.log().is_empty(), "offline commits stay local");
    let status: Value = serde_json::from_str(bob.run(&["status", "--json"]).ok()).unwrap();
    assert_eq!(status["pending"], 2, "{status}");

    alice.run(&["sync"]).ok();
    bob.run(&["sync"]).ok();
    alice.run(&["sync"]).ok();

    let log = alice.log();
    assert_gapless(&log);
    let authors: Vec<&str> = log
        .iter()
        .map(|e| e["clientId"].as_str().unwrap())
        .collect();
    assert_eq!(authors, ["alice", "alice", "bob", "bob"]);
    let texts: Vec<&str> = log
        .iter()
        .map(|e| e["args"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["a1", "a2", "b1", "b2"]);

    let status: Value = serde_json::from_str(bob.run(&["status", "--json"]).ok()).unwrap();
    assert_eq!(status["pending"], 0, "{status}");
    assert_eq!(
        status["localHead"]["global"], 4,
        "bob's events rebased to e3, e4: {status}"
    );
    assert_eq!(alice.todos(), bob.todos());
    assert_eq!(alice.todos().as_array().unwrap().len(), 4);
}

/// A folder store deleted between two commands: the next command's open finds a new store
/// (a new backend id), resets the local data (the default `on_backend_id_mismatch`), and
/// another process's `eventsync log` reads the new store as one valid log.
#[test]
fn test_log_reads_a_folder_store_that_was_wiped_and_reset() {
    let root = tempfile::tempdir().unwrap();
    let backend = folder_backend(root.path());
    let client = Client::new(root.path(), "c", &backend, "wiped");
    client.run(&["todo", "add", "before 1"]).ok();
    client.run(&["todo", "add", "before 2"]).ok();
    assert_eq!(client.log().len(), 2);
    std::fs::remove_dir_all(root.path().join("backend").join("wiped")).unwrap();
    client.run(&["todo", "add", "after"]).ok();
    let reader = Client::new(root.path(), "reader", &backend, "wiped");
    let log = reader.log();
    assert_gapless(&log);
    let texts: Vec<&str> = log
        .iter()
        .map(|e| e["args"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["after"],
        "the new store holds only the commit made after the wipe"
    );
    let todos = client.todos();
    let listed: Vec<&str> = todos
        .as_array()
        .unwrap()
        .iter()
        .map(|todo| todo["text"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["after"], "the local data followed the new store");
}

#[test]
fn test_done_and_rm_of_unknown_id_fail_with_the_id() {
    let root = tempfile::tempdir().unwrap();
    let client = Client::new(root.path(), "c", &folder_backend(root.path()), "default");
    client.run(&["todo", "add", "milk"]).ok();
    for command in ["done", "rm"] {
        let run = client.run(&["todo", command, "no-such-id"]);
        let line = run.one_line_error();
        assert!(line.contains("no-such-id"), "{line}");
    }
    let id = client.todos()[0]["id"].as_str().unwrap().to_string();
    client.run(&["todo", "done", &id]).ok();
    assert_eq!(client.todos()[0]["completed"], true);
    client.run(&["todo", "rm", &id]).ok();
    assert_eq!(client.todos(), serde_json::json!([]));
}

#[test]
fn test_secrets_never_appear_in_status_log_or_doctor_output() {
    const SECRETS: [&str; 4] = [
        "FILE-SECRET-KEY-123",
        "FILE-ACCESS-KEY-456",
        "FILE-SESSION-TOKEN-789",
        "ENV-SECRET-KEY-000",
    ];
    let root = tempfile::tempdir().unwrap();
    let folder = folder_backend(root.path());
    std::fs::write(
        root.path().join("eventsync.toml"),
        format!(
            "backend = \"{folder}\"\n[s3]\nendpoint = \"http://127.0.0.1:1\"\nallow_http = true\n\
             region = \"us-east-1\"\nsecret_access_key = \"{}\"\naccess_key_id = \"{}\"\n\
             session_token = \"{}\"\nrequest_timeout = \"1s\"\n",
            SECRETS[0], SECRETS[1], SECRETS[2]
        ),
    )
    .unwrap();
    let env = [("AWS_SECRET_ACCESS_KEY", SECRETS[3])];
    let mut runs = vec![eventsync_env(
        root.path(),
        &["-vvv", "todo", "add", "x"],
        &env,
    )];
    runs[0].ok();
    for args in [
        &["-vvv", "status"][..],
        &["-vvv", "status", "--json"],
        &["-vvv", "log"],
        &["-vvv", "log", "--json"],
        &["-vvv", "doctor"],
        // An unreachable S3 backend: the failures must not quote the credentials either.
        &["-vvv", "--backend", "s3://bucket/prefix", "status"],
        &["-vvv", "--backend", "s3://bucket/prefix", "log"],
        &["-vvv", "--backend", "s3://bucket/prefix", "doctor"],
    ] {
        runs.push(eventsync_env(root.path(), args, &env));
    }
    assert_eq!(runs[1].code, 0, "{:#?}", runs[1]);
    assert!(runs[3].stdout.contains("v1.TodoCreated"), "{:#?}", runs[3]);
    for run in &runs {
        for secret in SECRETS {
            assert!(!run.stdout.contains(secret), "{secret} in {run:#?}");
            assert!(!run.stderr.contains(secret), "{secret} in {run:#?}");
        }
        assert!(!run.stderr.contains("panicked"), "{run:#?}");
    }
}

#[test]
fn test_secrets_never_appear_in_output_against_a_real_s3_server() {
    // The same as above against the local S3 server, where requests are really signed and
    // answered: `-vvv` traces the HTTP exchange, which must not show the keys either.
    let Some(url) =
        s3_url_or_say_why_not("test_secrets_never_appear_in_output_against_a_real_s3_server")
    else {
        return;
    };
    let secrets: Vec<String> = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok())
    .filter(|value| !value.is_empty())
    .collect();
    assert!(!secrets.is_empty(), "the S3 run needs credentials to check");
    let root = tempfile::tempdir().unwrap();
    let unique = eventsync::Entropy::from_os().hex::<8>();
    let client = Client::new(
        root.path(),
        "c",
        &url,
        &format!("secrets-{}-{unique}", std::process::id()),
    );
    let mut runs = vec![client.run(&["-vvv", "todo", "add", "x"])];
    runs[0].ok();
    for args in [
        &["-vvv", "sync"][..],
        &["-vvv", "status"],
        &["-vvv", "status", "--json"],
        &["-vvv", "log"],
        &["-vvv", "log", "--json"],
        &["-vvv", "doctor"],
    ] {
        let run = client.run(args);
        run.ok();
        runs.push(run);
    }
    assert!(runs[4].stdout.contains("v1.TodoCreated"), "{:#?}", runs[4]);
    for run in &runs {
        for secret in &secrets {
            assert!(!run.stdout.contains(secret.as_str()), "a key in {run:#?}");
            assert!(!run.stderr.contains(secret.as_str()), "a key in {run:#?}");
        }
    }
}

#[test]
fn test_demo_converges_and_prints_its_table() {
    let root = tempfile::tempdir().unwrap();
    let run = eventsync(
        root.path(),
        &["demo", "--clients", "3", "--events", "20", "--seed", "7"],
    );
    let out = run.ok();
    for client in ["client-1", "client-2", "client-3"] {
        assert!(out.contains(client), "{out}");
    }
    assert!(out.contains("all checks passed"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
}
