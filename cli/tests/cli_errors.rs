//! Argument and configuration errors of the `eventsync` binary: each is one clear line on
//! stderr naming what was wrong and where, with a non-zero exit code and no panic trace.
//! None of these needs a working store or backend.

mod cli_support;

use cli_support::{eventsync, eventsync_env};

#[test]
fn test_bad_store_id_is_one_line_naming_the_id_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let run = eventsync(dir.path(), &["--store", "../x", "todo", "list"]);
    let line = run.one_line_error();
    assert!(line.contains("\"../x\""), "{line}");
    assert!(line.contains("--store"), "{line}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(
        !dir.path().join(".eventsync").exists(),
        "nothing is created before the config is valid"
    );
}

#[test]
fn test_bad_store_id_from_env_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let run = eventsync_env(dir.path(), &["status"], &[("EVENTSYNC_STORE", "bad/store")]);
    let line = run.one_line_error();
    assert!(line.contains("bad/store"), "{line}");
    assert!(line.contains("$EVENTSYNC_STORE"), "{line}");
}

#[test]
fn test_bad_client_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = eventsync(dir.path(), &["--client-id", "a b", "todo", "add", "x"]);
    let line = run.one_line_error();
    assert!(line.contains("client id \"a b\""), "{line}");
}

#[test]
fn test_bad_backend_url_is_one_line_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let run = eventsync(dir.path(), &["--backend", "ftp://nowhere/x", "log"]);
    let line = run.one_line_error();
    assert!(line.contains("ftp://nowhere/x"), "{line}");
}

#[test]
fn test_empty_backend_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = eventsync_env(dir.path(), &["log"], &[("EVENTSYNC_BACKEND", " ")]);
    let line = run.one_line_error();
    assert!(line.contains("backend URL"), "{line}");
    assert!(line.contains("$EVENTSYNC_BACKEND"), "{line}");
}

#[test]
fn test_unknown_config_key_names_key_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("eventsync.toml"),
        "store = \"s\"\n[s3]\nregion = \"eu\"\nendpiont = \"http://127.0.0.1:9000\"\n",
    )
    .unwrap();
    let run = eventsync(dir.path(), &["todo", "list"]);
    let line = run.one_line_error();
    assert!(line.contains("eventsync.toml"), "{line}");
    assert!(line.contains("endpiont"), "{line}");
    assert!(line.contains("line 4"), "{line}");
}

#[test]
fn test_bad_toml_gives_file_and_line_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("custom.toml");
    std::fs::write(
        &config,
        "backend = \"memory://\"\n\n[s3]\nsecret_access_key = \"TOPSECRET-42\" junk\n",
    )
    .unwrap();
    let run = eventsync(
        dir.path(),
        &["--config", config.to_str().unwrap(), "status"],
    );
    let line = run.one_line_error();
    assert!(line.contains("custom.toml"), "{line}");
    assert!(line.contains("line 4"), "{line}");
    assert!(!run.stderr.contains("TOPSECRET-42"), "{run:#?}");
}

#[test]
fn test_config_file_from_env_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let run = eventsync_env(
        dir.path(),
        &["status"],
        &[("EVENTSYNC_CONFIG", "/nonexistent/es.toml")],
    );
    let line = run.one_line_error();
    assert!(line.contains("/nonexistent/es.toml"), "{line}");
    assert!(line.contains("$EVENTSYNC_CONFIG"), "{line}");
}

#[test]
fn test_data_dir_that_is_a_file_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a dir").unwrap();
    let run = eventsync(
        dir.path(),
        &["--data-dir", file.to_str().unwrap(), "todo", "add", "milk"],
    );
    let line = run.one_line_error();
    assert!(line.contains(file.to_str().unwrap()), "{line}");
    assert!(line.contains("not a directory"), "{line}");
}

#[test]
fn test_unreadable_client_id_in_data_dir_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A directory where the kept client id should be: unreadable as a file, even for root.
    std::fs::create_dir_all(data.join("client-id")).unwrap();
    let run = eventsync(
        dir.path(),
        &["--data-dir", data.to_str().unwrap(), "todo", "list"],
    );
    let line = run.one_line_error();
    assert!(line.contains("client-id"), "{line}");
    assert!(line.contains(data.to_str().unwrap()), "{line}");
}

#[test]
fn test_usage_errors_exit_with_code_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["todo"][..],
        &["--no-such-flag", "status"],
        &["log", "--since", "x"],
    ] {
        let run = eventsync(dir.path(), args);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(!run.stderr.contains("panicked"), "{run:#?}");
    }
}

#[test]
fn test_help_lists_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let run = eventsync(dir.path(), &["--help"]);
    let help = run.ok();
    for word in [
        "todo",
        "sync",
        "status",
        "log",
        "doctor",
        "demo",
        "--backend",
        "--offline",
    ] {
        assert!(help.contains(word), "{word} missing from {help}");
    }
}

/// A failure prints its context and every cause once, on one line: here the store's
/// `state.db` is a folder, so the open fails in SQLite.
#[test]
fn test_error_chain_is_one_line_naming_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".eventsync/default/state.db")).unwrap();
    let run = eventsync(dir.path(), &["--offline", "todo", "list"]);
    let line = run.one_line_error();
    assert!(line.starts_with("eventsync: opening store"), "{line}");
    assert_eq!(
        line.matches("unable to open database file").count(),
        1,
        "{line}"
    );
    assert_eq!(
        line.matches("state.db").count(),
        2,
        "the file, then SQLite's path: {line}"
    );
}
