//! Bad input through the `eventsync` binary: unsafe store ids, bad backend URLs and config
//! files, wrong S3 credentials, an unreachable S3 endpoint. Each gives one line naming what
//! was wrong and where, never a panic or a secret, and leaves the local store as it was.
//! The library's bad input (damaged segments, args that do not fit) is in the root crate's
//! `tests/bad_input.rs`.

mod cli_support;

use std::time::{Duration, Instant};

use cli_support::{Run, eventsync, eventsync_env};
use eventsync::backends::S3Options;
use serde_json::Value;

/// Runs `todo list --json --offline` and `log --json`: what the local store and the backend
/// hold, to compare before and after a failed command.
fn local_view(dir: &std::path::Path) -> (String, String) {
    let todos = eventsync(dir, &["--offline", "todo", "list", "--json"]);
    let log = eventsync(dir, &["log", "--json"]);
    (todos.ok().to_owned(), log.ok().to_owned())
}

/// A folder with one client that added one todo (default backend in the data dir).
fn cli_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    eventsync(dir.path(), &["todo", "add", "milk"]).ok();
    dir
}

/// Asserts a one-line failure no longer than `max` bytes that contains every needle.
fn assert_one_line(run: &Run, needles: &[&str], max: usize) {
    let line = run.one_line_error();
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} missing: {line}");
    }
    assert!(line.len() <= max, "{} bytes: {line}", line.len());
}

#[test]
fn test_cli_refuses_unsafe_store_ids_in_one_short_line() {
    let dir = cli_store();
    let before = local_view(dir.path());
    let long = "y".repeat(10_000);
    for id in ["..", "../escape", "a/b", "/abs", long.as_str(), ".hidden"] {
        let shown: String = id.chars().take(40).collect();
        let run = eventsync(dir.path(), &["--store", id, "todo", "add", "x"]);
        assert_one_line(&run, &[&shown, "--store"], 600);
    }
    // NUL cannot be passed in argv or the environment, but a config file can hold it.
    std::fs::write(dir.path().join("nul.toml"), "store = \"a\\u0000b\"\n").unwrap();
    let run = eventsync(dir.path(), &["--config", "nul.toml", "todo", "add", "x"]);
    assert_one_line(&run, &["a\\u{0}b", "nul.toml"], 600);
    assert_eq!(local_view(dir.path()), before, "the local store changed");
    let entries: Vec<_> = std::fs::read_dir(dir.path().join(".eventsync"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        entries
            .iter()
            .all(|n| n == "default" || n == "backend" || n == "client-id"),
        "{entries:?}"
    );
}

#[test]
fn test_cli_refuses_bad_backend_urls_in_one_line_without_secrets() {
    let dir = cli_store();
    let before = local_view(dir.path());
    for (url, shown) in [
        ("ftp://host/x", "ftp://host/x"),
        ("s3://", "s3://"),
        ("s3://user:hunter22@bucket/x", "s3://bucket/x"),
        ("http://127.0.0.1:1/bucket", "http://127.0.0.1:1/bucket"),
        ("weird://x?secret=hunter22", "weird://x"),
        ("file://remote-host/x", "file://remote-host/x"),
    ] {
        let run = eventsync(dir.path(), &["--backend", url, "todo", "add", "x"]);
        assert_one_line(&run, &[shown], 600);
        assert!(!run.stderr.contains("hunter22"), "{run:#?}");
    }
    assert_eq!(local_view(dir.path()), before, "the local store changed");
}

#[test]
fn test_cli_refuses_bad_config_files_naming_file_and_line() {
    let dir = cli_store();
    let before = local_view(dir.path());
    for (text, needles) in [
        ("store = 5\n", &["bad.toml", "line 1"][..]),
        (
            "\n[segment_log]\npoll_min = \"fast\"\n",
            &["bad.toml", "line 3", "fast"],
        ),
        (
            "[segment_log]\npoll_max = \"-1s\"\n",
            &["bad.toml", "line 2"],
        ),
        (
            "[tuning]\npoll_min = \"50ms\"\n",
            &["bad.toml", "line 2", "poll_min"],
        ),
        (
            "[tuning]\npush_batch_events = -1\n",
            &["bad.toml", "line 2"],
        ),
        (
            "[tuning]\nlock_timeout = \"99999999999999999999h\"\n",
            &["bad.toml", "line 2"],
        ),
        (
            "[s3]\nrequest_timeout = \"1y\"\n",
            &["bad.toml", "line 2", "1y"],
        ),
        ("[s3]\nallow_http = \"yes\"\n", &["bad.toml", "line 2"]),
        (
            "backend = \"memory://\"\nbackend = \"x\"\n",
            &["bad.toml", "line 2"],
        ),
        ("[[s3]]\n", &["bad.toml", "line 1"]),
        ("tuning = 3\n", &["bad.toml", "line 1"]),
        (
            "store = \"\"\"\nmulti\nline\"\"\"\n",
            &["bad.toml", "store id"],
        ),
    ] {
        std::fs::write(dir.path().join("bad.toml"), text).unwrap();
        let run = eventsync(dir.path(), &["--config", "bad.toml", "todo", "add", "x"]);
        assert_one_line(&run, needles, 600);
    }
    // Not UTF-8, and a directory where the file should be.
    std::fs::write(dir.path().join("bad.toml"), b"store = \"\xff\xfe\"\n").unwrap();
    let run = eventsync(dir.path(), &["--config", "bad.toml", "status"]);
    assert_one_line(&run, &["bad.toml"], 600);
    std::fs::create_dir(dir.path().join("dir.toml")).unwrap();
    let run = eventsync(dir.path(), &["--config", "dir.toml", "status"]);
    assert_one_line(&run, &["dir.toml", "--config"], 600);
    assert_eq!(local_view(dir.path()), before, "the local store changed");
}

/// The local S3 server's URL and `AWS_*` environment, or `None` after saying why `test` did
/// not run (a failure under `CI=true`).
fn s3_env(test: &str) -> Option<(String, Vec<(String, String)>)> {
    let url = cli_support::s3_url_or_say_why_not(test)?;
    let env = std::env::vars()
        .filter(|(name, _)| name.starts_with("AWS_"))
        .collect();
    Some((url, env))
}

#[test]
fn test_wrong_s3_secret_is_a_clear_access_denied_error() {
    let Some((url, env)) = s3_env("test_wrong_s3_secret_is_a_clear_access_denied_error") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    const WRONG: &str = "wrong-secret-key-hunter22";
    let mut env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(name, _)| name != "AWS_SECRET_ACCESS_KEY")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    env.push(("AWS_SECRET_ACCESS_KEY", WRONG));
    let run = eventsync_env(
        dir.path(),
        &["--backend", &url, "--store", "wrong-creds", "log"],
        &env,
    );
    let line = run.one_line_error();
    assert!(line.contains("access denied"), "{line}");
    assert!(
        line.contains("store.json"),
        "names what was refused: {line}"
    );
    assert!(!run.stderr.contains(WRONG), "{run:#?}");
    // Through a store too: the commit is kept locally, the sync fails with the same cause.
    let run = eventsync_env(
        dir.path(),
        &[
            "--backend",
            &url,
            "--store",
            "wrong-creds",
            "todo",
            "add",
            "x",
        ],
        &env,
    );
    // The leader also logs each refused retry as a warning before the final line: access
    // denied is not transient, so it is not hidden like an unreachable backend.
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(!run.stderr.contains("panicked"), "{run:#?}");
    let line = run
        .stderr
        .lines()
        .rfind(|line| line.starts_with("eventsync: "))
        .expect("a final error line");
    assert!(line.contains("kept locally"), "{line}");
    assert!(line.contains("access denied"), "{line}");
    assert!(!run.stderr.contains(WRONG), "{run:#?}");
    let list = eventsync_env(
        dir.path(),
        &[
            "--backend",
            &url,
            "--store",
            "wrong-creds",
            "--offline",
            "todo",
            "list",
            "--json",
        ],
        &env,
    );
    let todos: Value = serde_json::from_str(list.ok()).unwrap();
    assert_eq!(todos.as_array().unwrap().len(), 1, "the commit stays local");
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// How long `Store::shutdown` waits at most for sessions' queued commits to be admitted.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(1);

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "times a real process against a real (closed) port"
)]
fn test_unreachable_s3_endpoint_fails_in_one_line_within_a_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("eventsync.toml"),
        "[s3]\nrequest_timeout = \"1s\"\n",
    )
    .unwrap();
    // The bound follows from that configuration (and the default retries it leaves, not
    // object_store's 3 minutes). One request takes at most `request_budget()`: 4 attempts of
    // 1 s and waits of at most 0.1, 0.2 and 0.4 s, 4.7 s. Each command makes at most two
    // requests one after the other: the open's read of store.json, then the one `sync()`
    // (or `log`'s pull) fails on, since a sync fails at the first backend error. Then
    // `Store::shutdown` waits up to 1 s. The margin, 10 s, is for starting the binary and
    // creating its SQLite files on a loaded machine; the whole command takes about 1 s here.
    let request = S3Options {
        request_timeout: Some(Duration::from_secs(1)),
        ..S3Options::default()
    }
    .request_budget()
    .expect("a request timeout is set");
    let bound = request * 2 + SHUTDOWN_DRAIN + Duration::from_secs(10);
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test-access"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret-hunter22"),
    ];
    for args in [
        &["--backend", "s3://bucket/p", "todo", "add", "x"][..],
        &["--backend", "s3://bucket/p", "log"],
        &["--backend", "s3://bucket/p", "sync"],
    ] {
        let started = Instant::now();
        let run = eventsync_env(dir.path(), args, &env);
        let took = started.elapsed();
        eprintln!("{args:?} against a closed port failed after {took:?}");
        let line = run.one_line_error();
        assert!(line.contains("unavailable"), "{line}");
        assert!(
            line.contains("s3://bucket/p") || line.contains("store.json"),
            "{line}"
        );
        assert!(!run.stderr.contains("hunter22"), "{run:#?}");
        assert!(
            took < bound,
            "{args:?} took {took:?}, more than the retry budget allows ({bound:?})"
        );
    }
    // The commit was kept locally.
    let list = eventsync_env(
        dir.path(),
        &[
            "--backend",
            "s3://bucket/p",
            "--offline",
            "todo",
            "list",
            "--json",
        ],
        &env,
    );
    let todos: Value = serde_json::from_str(list.ok()).unwrap();
    assert_eq!(todos.as_array().unwrap().len(), 1);
}
