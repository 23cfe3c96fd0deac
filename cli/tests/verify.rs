//! `eventsync verify` through the binary: a sound store passes (exit 0, JSON report); a
//! corrupted segment is named by its key, with exit 1 and one error line; `eventsync
//! snapshot` writes a snapshot (once per event), a fresh data dir boots from it, `verify
//! --snapshots` replays the log to check it, and names it once it is damaged.

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{Run, eventsync};
use serde_json::Value;

/// Runs `eventsync --store s --data-dir DIR/data --backend DIR/b args...` in `dir`.
fn run(dir: &Path, args: &[&str]) -> Run {
    let data = dir.join("data");
    let backend = dir.join("b");
    let mut all = vec![
        "--store",
        "s",
        "--data-dir",
        data.to_str().unwrap(),
        "--backend",
        backend.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    eventsync(dir, &all)
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

#[test]
fn test_verify_passes_a_sound_store_and_names_a_corrupted_segment() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["one", "two", "three"] {
        run(dir.path(), &["todo", "add", text]).ok();
    }
    let report: Value = serde_json::from_str(run(dir.path(), &["verify", "--json"]).ok()).unwrap();
    assert_eq!(report["sound"], true, "{report}");
    assert_eq!(
        (report["segments"].clone(), report["head"].clone()),
        (3.into(), 3.into())
    );
    let said = run(dir.path(), &["verify"]);
    assert!(
        said.ok().contains("3 segments, 3 events, head e3"),
        "{said:?}"
    );

    let second = &segments(&dir.path().join("b"))[1];
    let mut bytes = std::fs::read(second).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(second, bytes).unwrap();
    let name = second.file_name().unwrap().to_str().unwrap();

    let failed = run(dir.path(), &["verify", "--json"]);
    assert!(failed.one_line_error().contains(name), "{failed:?}");
    let report: Value = serde_json::from_str(&failed.stdout).unwrap();
    assert_eq!(report["sound"], false);
    let faults = report["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1, "{report}");
    assert!(
        faults[0]["key"].as_str().unwrap().ends_with(name),
        "{report}"
    );
    assert_eq!(report["head"], 1);

    let failed = run(dir.path(), &["verify"]);
    failed.one_line_error();
    assert!(failed.stdout.contains("FAULT "), "{failed:?}");
    assert!(failed.stdout.contains(name), "{failed:?}");
}

#[test]
fn test_snapshot_is_written_once_verified_by_replay_and_named_when_damaged() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["one", "two", "three"] {
        run(dir.path(), &["todo", "add", text]).ok();
    }
    let wrote: Value = serde_json::from_str(run(dir.path(), &["snapshot", "--json"]).ok()).unwrap();
    assert_eq!(
        (wrote["created"].clone(), wrote["at"].clone()),
        (true.into(), 3.into())
    );
    let key = wrote["key"].as_str().unwrap().to_owned();
    assert!(key.ends_with("00000000000000000003.snap"), "{key}");
    let again = run(dir.path(), &["snapshot"]);
    assert!(again.ok().contains("already there"), "{again:?}");

    let report: Value =
        serde_json::from_str(run(dir.path(), &["verify", "--snapshots", "--json"]).ok()).unwrap();
    assert_eq!(report["sound"], true, "{report}");
    assert_eq!(report["families"][1]["name"], "snapshots", "{report}");
    assert_eq!(report["families"][1]["checked"], 1, "{report}");

    // A fresh data dir boots from it and lists the same todos.
    let fresh = dir.path().join("fresh");
    let backend = dir.path().join("b");
    let listed = eventsync(
        dir.path(),
        &[
            "--store",
            "s",
            "--data-dir",
            fresh.to_str().unwrap(),
            "--backend",
            backend.to_str().unwrap(),
            "todo",
            "list",
        ],
    );
    let out = listed.ok();
    for text in ["one", "two", "three"] {
        assert!(out.contains(text), "{out}");
    }

    // A folder backend's keys are paths inside its folder.
    let file = backend.join(&key);
    let mut bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    bytes[20] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let failed = run(dir.path(), &["verify", "--snapshots"]);
    assert!(failed.one_line_error().contains(".snap"), "{failed:?}");
    assert!(failed.stdout.contains("FAULT "), "{failed:?}");
}

/// `snapshot` prunes the older snapshots after writing one (`--keep`, else `snapshot_keep`),
/// `snapshot --prune` only prunes, `--prune --keep 0` is refused, and `verify` passes after.
#[test]
fn test_snapshot_prunes_the_older_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for text in ["one", "two", "three"] {
        run(dir.path(), &["todo", "add", text]).ok();
        let wrote: Value =
            serde_json::from_str(run(dir.path(), &["snapshot", "--json", "--keep", "2"]).ok())
                .unwrap();
        keys.push(wrote["key"].as_str().unwrap().to_owned());
        let deleted = wrote["pruned"]["deleted"].as_array().unwrap().clone();
        if keys.len() < 3 {
            assert!(deleted.is_empty(), "{wrote}");
        } else {
            assert_eq!(deleted, [Value::from(keys[0].clone())], "{wrote}");
            assert_eq!(
                wrote["pruned"]["kept"],
                serde_json::json!([keys[1], keys[2]]),
                "{wrote}"
            );
        }
    }
    let pruned: Value = serde_json::from_str(
        run(
            dir.path(),
            &["snapshot", "--prune", "--keep", "1", "--json"],
        )
        .ok(),
    )
    .unwrap();
    assert_eq!(pruned["pruned"]["deleted"], serde_json::json!([keys[1]]));
    assert_eq!(pruned["pruned"]["kept"], serde_json::json!([keys[2]]));
    let refused = run(dir.path(), &["snapshot", "--prune", "--keep", "0"]);
    assert!(
        refused.one_line_error().contains("keep at least 1"),
        "{refused:?}"
    );
    let report: Value =
        serde_json::from_str(run(dir.path(), &["verify", "--snapshots", "--json"]).ok()).unwrap();
    assert_eq!(report["sound"], true, "{report}");
    assert_eq!(report["families"][1]["checked"], 1, "{report}");
}
