//! Runs the `eventsync` binary for the `cli_*` tests, in a clean environment.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use eventsync::backends::conformance::not_run::test_name;
use eventsync::backends::conformance::{S3_NOT_CONFIGURED, in_ci, report_not_run};

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        &self.stdout
    }

    /// Asserts a failure printed as exactly one line `eventsync: ...` with exit code 1,
    /// and returns that line.
    pub fn one_line_error(&self) -> &str {
        assert_eq!(self.code, 1, "expected exit code 1, got {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line, got {self:#?}");
        assert!(lines[0].starts_with("eventsync: "), "{self:#?}");
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        lines[0]
    }
}

/// Runs `eventsync args...` in `dir` with no `EVENTSYNC_*`, `AWS_*` or `RUST_LOG`
/// variables, plus `env`.
pub fn eventsync_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventsync"));
    command.current_dir(dir).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("EVENTSYNC_") || name.starts_with("AWS_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("run the eventsync binary");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `eventsync args...` in `dir` with a clean environment.
pub fn eventsync(dir: &Path, args: &[&str]) -> Run {
    eventsync_env(dir, args, &[])
}

/// The local S3 server's URL (`EVENTSYNC_TEST_S3_URL`, set by `scripts/test` or
/// `eval "$(scripts/s3-local env)"`), or `None` after reporting that `test` did not run, and
/// why: on stderr past the harness's capture, and in `scripts/test`'s summary
/// (`conformance::report_not_run`). Under CI a missing server fails the test instead: CI
/// always has one.
pub fn s3_url_or_say_why_not(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("EVENTSYNC_TEST_S3_URL") {
        return Some(url);
    }
    assert!(
        !in_ci(),
        "EVENTSYNC_TEST_S3_URL must be set in CI: {S3_NOT_CONFIGURED}"
    );
    let test = test_name(env!("CARGO_PKG_NAME"), env!("CARGO_CRATE_NAME"), test);
    report_not_run(&test, S3_NOT_CONFIGURED);
    None
}
