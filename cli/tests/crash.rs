//! Killing processes at random moments loses no acknowledged commit and leaves no gap:
//! several clients (own data dirs, one
//! shared backend) run `eventsync todo add` in a loop while a killer sends SIGKILL to a random
//! running process at random moments (100 kills against a folder backend, 20 against the
//! local S3 server). Each killed client just starts its next `todo add`, as a user would.
//! At the end every client runs `sync`, and the audit checks:
//!
//! - the backend log (`log --json`) is gapless from e1, each parent the event before;
//! - exactly once: no todo text or id appears twice (each text is added by one process only);
//! - nothing acknowledged is lost: every `todo add` that exited 0 with `added ID: TEXT` is in
//!   the log with that id and text;
//! - every client's `todo list --json` is identical, and lists exactly the todos of the log.
//!
//! `EVENTSYNC_CRASH_KILLS` overrides the number of kills; `EVENTSYNC_CRASH_SEED` the seed of
//! the killer's rng (printed; timing makes a run unrepeatable anyway).

mod cli_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Where the clients sync through.
struct Target {
    backend: String,
    store: String,
    /// Extra environment (the `AWS_*` settings of an S3 run).
    env: Vec<(String, String)>,
}

/// One client: its data dir and id.
struct Client {
    name: String,
    data_dir: PathBuf,
    stderr: PathBuf,
}

/// What the add loops produced.
#[derive(Default)]
struct Tally {
    /// `(id, text)` of every `todo add` that exited 0.
    acknowledged: Vec<(String, String)>,
    /// Texts of every `todo add` started.
    started: BTreeSet<String>,
    /// `todo add`s that failed on their own (not killed): exit code and output.
    failed: Vec<String>,
}

fn command(root: &Path, target: &Target, client: &Client, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventsync"));
    command.current_dir(root);
    for (name, _) in std::env::vars() {
        if name.starts_with("EVENTSYNC_") || name.starts_with("AWS_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command
        .args(["--backend", &target.backend, "--store", &target.store])
        .args(["--data-dir", client.data_dir.to_str().unwrap()])
        .args(["--client-id", &client.name])
        .args(args);
    command
}

/// Runs a command to the end; (exit code, stdout, stderr).
fn run(root: &Path, target: &Target, client: &Client, args: &[&str]) -> (i32, String, String) {
    let output = command(root, target, client, args)
        .output()
        .expect("run the eventsync binary");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Adds todos in a loop until `stop`; the current process sits in `slot` for the killer.
fn add_loop(
    root: &Path,
    target: &Target,
    client: &Client,
    slot: &Mutex<Option<Child>>,
    stop: &AtomicBool,
    tally: &Mutex<Tally>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let text = format!("{}-{n}", client.name);
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&client.stderr)
            .expect("the stderr log");
        let mut child = command(root, target, client, &["todo", "add", &text])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start eventsync");
        let mut stdout = child.stdout.take().expect("piped stdout");
        tally.lock().unwrap().started.insert(text.clone());
        *slot.lock().unwrap() = Some(child);
        let status = loop {
            let mut guard = slot.lock().unwrap();
            let child = guard.as_mut().expect("our child");
            match child.try_wait().expect("wait for eventsync") {
                Some(status) => {
                    guard.take();
                    break status;
                }
                None => {
                    drop(guard);
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        };
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        if status.success() {
            let line = out.trim();
            let rest = line
                .strip_prefix("added ")
                .unwrap_or_else(|| panic!("{text}: unexpected output {line:?}"));
            let (id, shown) = rest
                .split_once(": ")
                .unwrap_or_else(|| panic!("{text}: unexpected output {line:?}"));
            assert_eq!(shown, text, "the acknowledged text");
            tally
                .lock()
                .unwrap()
                .acknowledged
                .push((id.to_owned(), text));
        } else if status.code().is_some() {
            // Exited on its own with an error (not killed): allowed, but reported.
            tally
                .lock()
                .unwrap()
                .failed
                .push(format!("{text}: exit {status}: {}", out.trim()));
        }
    }
}

/// SIGKILLs a random running `todo add` at random moments until `kills` were delivered.
fn killer(slots: &[Mutex<Option<Child>>], kills: u64, seed: u64, delivered: &AtomicU64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    while delivered.load(Ordering::Relaxed) < kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(5..120)));
        let which = rng.random_range(0..slots.len());
        let mut guard = slots[which].lock().unwrap();
        if let Some(child) = guard.as_mut()
            && matches!(child.try_wait(), Ok(None))
            && child.kill().is_ok()
        {
            // `Child::kill` is SIGKILL on Unix.
            delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn crash_and_audit(root: &Path, target: &Target, clients: usize, kills: u64) {
    let seed = std::env::var("EVENTSYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| eventsync::Entropy::from_os().next_u64());
    eprintln!(
        "crash test: {clients} clients, {kills} kills, backend {}, store {}, seed {seed}",
        target.backend, target.store
    );
    let clients: Vec<Client> = (1..=clients)
        .map(|i| Client {
            name: format!("k{i}"),
            data_dir: root.join(format!("k{i}")),
            stderr: root.join(format!("k{i}.stderr")),
        })
        .collect();
    let slots: Vec<Mutex<Option<Child>>> = clients.iter().map(|_| Mutex::new(None)).collect();
    let stop = AtomicBool::new(false);
    let tally = Mutex::new(Tally::default());
    let delivered = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for (client, slot) in clients.iter().zip(&slots) {
            let (stop, tally) = (&stop, &tally);
            scope.spawn(move || add_loop(root, target, client, slot, stop, tally));
        }
        killer(&slots, kills, seed, &delivered);
        stop.store(true, Ordering::Relaxed);
    });
    let tally = tally.into_inner().unwrap();
    eprintln!(
        "crash test: {} adds started, {} acknowledged, {} kills, {} failed on their own",
        tally.started.len(),
        tally.acknowledged.len(),
        delivered.load(Ordering::Relaxed),
        tally.failed.len()
    );
    for failure in tally.failed.iter().take(5) {
        eprintln!("  failed: {failure}");
    }

    // Every client pushes what its killed runs left pending; a second round pulls the rest.
    for round in 0..2 {
        for client in &clients {
            let (code, out, err) = run(root, target, client, &["sync"]);
            assert_eq!(
                code,
                0,
                "round {round}: {} sync failed: {out}{err}\n{}",
                client.name,
                stderr_tail(client)
            );
        }
    }

    let (code, out, err) = run(root, target, &clients[0], &["log", "--json"]);
    assert_eq!(code, 0, "log failed: {err}");
    let log: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON event"))
        .collect();
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for (i, event) in log.iter().enumerate() {
        assert_eq!(event["seqNum"], i as u64 + 1, "gap at event {i}: {event}");
        assert_eq!(event["parentSeqNum"], i as u64, "wrong parent: {event}");
        assert_eq!(event["name"], "v1.TodoCreated", "{event}");
        let id = event["args"]["id"].as_str().expect("an id").to_owned();
        let text = event["args"]["text"].as_str().expect("a text").to_owned();
        assert!(
            tally.started.contains(&text),
            "{text} was never added: {event}"
        );
        assert!(ids.insert(id.clone()), "todo id {id} is in the log twice");
        assert!(
            texts.insert(text.clone(), id).is_none(),
            "{text} is in the log twice (exactly-once broken)"
        );
    }
    for (id, text) in &tally.acknowledged {
        assert_eq!(
            texts.get(text),
            Some(id),
            "acknowledged `added {id}: {text}` is missing from the backend log"
        );
    }

    let mut lists = Vec::new();
    for client in &clients {
        let (code, out, err) = run(root, target, client, &["todo", "list", "--json"]);
        assert_eq!(code, 0, "{} list failed: {err}", client.name);
        lists.push(serde_json::from_str::<Value>(&out).expect("a JSON list"));
    }
    for (client, list) in clients.iter().zip(&lists).skip(1) {
        assert_eq!(
            list, &lists[0],
            "{}'s replica differs from {}'s",
            client.name, clients[0].name
        );
    }
    let listed: BTreeSet<String> = lists[0]
        .as_array()
        .expect("an array")
        .iter()
        .map(|todo| todo["text"].as_str().expect("a text").to_owned())
        .collect();
    let logged: BTreeSet<String> = texts.keys().cloned().collect();
    assert_eq!(listed, logged, "the replicas list exactly the log's todos");
    assert!(
        delivered.load(Ordering::Relaxed) >= kills,
        "every kill was delivered"
    );
    assert!(
        !tally.acknowledged.is_empty(),
        "some adds must succeed between the kills"
    );
    eprintln!(
        "crash test passed: {} events in the log, {} acknowledged adds all present, {} replicas identical",
        log.len(),
        tally.acknowledged.len(),
        lists.len()
    );
}

fn stderr_tail(client: &Client) -> String {
    let text = std::fs::read_to_string(&client.stderr).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn kills(default: u64) -> u64 {
    std::env::var("EVENTSYNC_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn test_sigkilled_clients_lose_nothing_acknowledged_through_a_folder() {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("backend");
    std::fs::create_dir_all(&folder).unwrap();
    let target = Target {
        backend: format!("file://{}", folder.display()),
        store: "crash".into(),
        env: Vec::new(),
    };
    crash_and_audit(root.path(), &target, 4, kills(100));
}

#[test]
fn test_sigkilled_clients_lose_nothing_acknowledged_through_s3() {
    let Some(url) = cli_support::s3_url_or_say_why_not(
        "test_sigkilled_clients_lose_nothing_acknowledged_through_s3",
    ) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let unique = eventsync::Entropy::from_os().hex::<8>();
    let target = Target {
        backend: url,
        store: format!("crash-{}-{unique}", std::process::id()),
        env: std::env::vars()
            .filter(|(name, _)| name.starts_with("AWS_"))
            .collect(),
    };
    crash_and_audit(root.path(), &target, 3, kills(20));
}
