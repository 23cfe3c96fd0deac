//! `eventsync bench --quick --json` runs to the end on a temporary folder backend and prints
//! one JSON object of the documented shape: every figure of the goals table, each either a
//! finite, non-negative value or `null` with the reason, and positive, finite limits. No
//! time is asserted: speed is what the bench reports, not what a test checks.

mod cli_support;

use std::collections::BTreeSet;

use cli_support::eventsync;
use serde_json::Value;

/// The figures' keys, in the order of the goals table.
const KEYS: &[&str] = &[
    "session_commit_p50",
    "session_commit_p99",
    "leader_ingest_small",
    "leader_ingest_medium",
    "leader_ingest_large",
    "fsyncs_per_batch",
    "single_commits_durable",
    "single_commits_confirmed",
    "events_per_put",
    "requests_per_event",
    "cold_pull_busy_writer",
    "cold_pull_one_per_segment",
    "cold_pull_packed",
    "cold_read_objects",
    "reopen_first_query",
    "rss_after_commits",
    "rebase",
    "writers_aggregate",
    "server_ahead_single_writer",
    "idle_pull_requests_per_poll",
    "history_boot_replay",
    "history_boot_snapshot",
    "history_cold_read_objects",
    "history_verify",
    "history_verify_snapshots",
    "history_export",
    "history_export_rss",
    "history_import",
    "history_import_rss",
];

fn finite_non_negative(value: &Value, what: &str) -> f64 {
    let number = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"));
    assert!(
        number.is_finite() && number >= 0.0,
        "{what} = {number}, not finite and non-negative"
    );
    number
}

#[test]
fn test_bench_quick_json_has_every_figure_with_sane_values() {
    let dir = tempfile::tempdir().unwrap();
    let run = eventsync(dir.path(), &["bench", "--quick", "--json"]);
    let stdout = run.ok();
    let report: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));

    assert_eq!(report["format"], 1);
    assert_eq!(report["quick"], true);
    assert_eq!(report["backend_kind"], "file");
    assert!(report["events"].as_u64().unwrap() > 0);
    assert!(finite_non_negative(&report["elapsed_s"], "elapsed_s") > 0.0);
    assert!(
        report["sqlite_durability"]
            .as_str()
            .unwrap()
            .contains("synchronous")
    );

    let figures = report["figures"].as_array().expect("figures is an array");
    let keys: Vec<&str> = figures
        .iter()
        .map(|figure| figure["key"].as_str().expect("a figure has a key"))
        .collect();
    assert_eq!(keys, KEYS, "the figures and their order are stable");
    for figure in figures {
        let key = figure["key"].as_str().unwrap();
        assert!(!figure["what"].as_str().unwrap().is_empty(), "{key}");
        assert!(!figure["unit"].as_str().unwrap().is_empty(), "{key}");
        assert!(
            !figure["goal"].as_str().unwrap().is_empty(),
            "{key}: a goal"
        );
        assert!(
            matches!(figure["better"].as_str(), Some("higher" | "lower")),
            "{key}"
        );
        assert!(
            figure["met"].is_boolean() || figure["met"].is_null(),
            "{key}"
        );
        if figure["value"].is_null() {
            let note = figure["note"].as_str().unwrap_or_default();
            assert!(!note.is_empty(), "{key}: n/a without a reason");
            assert!(figure["met"].is_null(), "{key}: a goal met without a value");
            continue;
        }
        let value = finite_non_negative(&figure["value"], key);
        let unit = figure["unit"].as_str().unwrap();
        if ["µs", "ms", "s", "events/s", "MiB", "events"].contains(&unit) {
            assert!(
                value > 0.0,
                "{key} = {value} {unit}, a measured amount must be > 0"
            );
        }
        if !figure["limit"].is_null() {
            assert!(
                finite_non_negative(&figure["limit"], key) > 0.0,
                "{key}: limit"
            );
            assert!(
                finite_non_negative(&figure["ratio"], key) > 0.0,
                "{key}: ratio"
            );
            assert!(figure["limit_what"].is_string(), "{key}: what the limit is");
        }
    }
    // The several-writers figure checks every event is in the log once: a failure there
    // is a bug, not a slow machine.
    let writers = figures
        .iter()
        .find(|figure| figure["key"] == "writers_aggregate")
        .unwrap();
    let note = writers["note"].as_str().unwrap_or_default();
    assert!(!note.contains("the log"), "writers: {note}");

    let limits = report["limits"].as_array().expect("limits is an array");
    let limit_keys: BTreeSet<&str> = limits
        .iter()
        .map(|limit| limit["key"].as_str().unwrap())
        .collect();
    assert_eq!(limit_keys.len(), limits.len(), "limit keys are unique");
    for key in [
        "sqlite_insert_select_p50",
        "sqlite_insert_changeset_0",
        "sqlite_insert_0",
        "put_one_at_a_time",
        "put_16_in_flight",
        "get_one_at_a_time",
        "get_16_in_flight",
    ] {
        assert!(
            limit_keys.contains(key),
            "limit {key} missing: {limit_keys:?}"
        );
    }
    for limit in limits {
        let key = limit["key"].as_str().unwrap();
        assert!(finite_non_negative(&limit["value"], key) > 0.0, "{key}");
    }
}

#[test]
fn test_bench_rejects_a_bad_backend_url_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = eventsync(
        dir.path(),
        &["bench", "--quick", "--backend", "ftp://nowhere/x"],
    );
    let line = run.one_line_error();
    assert!(line.contains("ftp"), "{line}");
}
