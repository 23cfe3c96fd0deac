//! Tests that cannot run here (no S3 server, no Docker engine) say so, where a person sees it
//! and where `scripts/test` counts it.
//!
//! The test harness has no way for a test to skip itself at run time: a test that returns
//! early is counted as passed, and what it prints with `eprintln!` is captured and thrown
//! away when it passes. So [`report_not_run`] writes past the capture, straight to the
//! process's stderr (a plain `cargo test` shows the line among the results), and appends
//! `{test}: {reason}` to the file that [`NOT_RUN_FILE_ENV`] names. `scripts/test` sets that
//! variable, lists every line in its summary as not run, and counts those tests as skipped
//! rather than passed.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable naming the file to which each test that did not run appends one
/// line, `{test}: {reason}`. Unset, nothing is written (stderr still says it).
pub const NOT_RUN_FILE_ENV: &str = "EVENTSYNC_TEST_NOT_RUN_FILE";

/// Why a test that needs the local S3 server did not run: the variables it reads are not set.
pub const S3_NOT_CONFIGURED: &str = "EVENTSYNC_TEST_S3_URL (e.g. s3://bucket/prefix) and the \
    AWS_* settings of an S3 server are not set (scripts/test starts a local one; by hand: \
    scripts/s3-local start, then eval \"$(scripts/s3-local env)\")";

/// True under CI (`CI` set to anything but empty, `false`, `0` or `no`, as `scripts/test`
/// reads it), where a test that needs the local S3 server must fail rather than not run.
pub fn in_ci() -> bool {
    !matches!(
        std::env::var("CI").as_deref().map(str::trim),
        Err(_) | Ok("" | "false" | "0" | "no")
    )
}

/// The name under which a test is reported: `{package} --test {binary} {test}`, the command
/// line that runs it alone (after `cargo test -p`). Call it as
/// `test_name(env!("CARGO_PKG_NAME"), env!("CARGO_CRATE_NAME"), "module::test")`.
pub fn test_name(package: &str, binary: &str, test: &str) -> String {
    format!("{package} --test {binary} {test}")
}

/// Reports that `test` did not run because of `reason`: one line on stderr, past the test
/// harness's capture, and one line `{test}: {reason}` in the file [`NOT_RUN_FILE_ENV`]
/// names. Line breaks in either are replaced by spaces, so that each test is one line.
pub fn report_not_run(test: &str, reason: &str) {
    let path = std::env::var_os(NOT_RUN_FILE_ENV).map(PathBuf::from);
    report_not_run_to(path.as_deref(), test, reason);
}

/// [`report_not_run`], with the file given (`None`: stderr only).
fn report_not_run_to(file: Option<&Path>, test: &str, reason: &str) {
    let line = format!("{}: {}", one_line(test), one_line(reason));
    // One write of the whole line, so that the lines of tests running in parallel never mix.
    let _ = std::io::stderr().write_all(format!("\n*** NOT RUN: {line} ***\n").as_bytes());
    let Some(file) = file else {
        return;
    };
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut opened| opened.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = appended {
        let _ = std::io::stderr().write_all(
            format!(
                "*** could not record that {} did not run in {}: {e} ***\n",
                one_line(test),
                file.display()
            )
            .as_bytes(),
        );
    }
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r']).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_each_report_appends_one_line_naming_the_test_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-run.txt");
        let first = test_name("eventsync-backends", "s3", "s3::pull_with_cursor");
        report_not_run_to(Some(&file), &first, "no server");
        report_not_run_to(Some(&file), "eventsync --test crash t", "no\nserver");
        report_not_run_to(None, "not recorded", "stderr only");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "eventsync-backends --test s3 s3::pull_with_cursor: no server\n\
             eventsync --test crash t: no server\n"
        );
    }

    #[test]
    fn test_a_file_that_cannot_be_written_is_no_panic() {
        let dir = tempfile::tempdir().unwrap();
        report_not_run_to(Some(dir.path()), "t", "the file is a folder");
        assert!(dir.path().is_dir());
    }
}
