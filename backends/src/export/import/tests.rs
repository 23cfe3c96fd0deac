//! The import: batches within the limits, refusals, the plan of pass 2 and a file changed
//! between the passes.

use std::io::Write;

use super::*;
use crate::export::{EventProblem, test_event, write_export};
use crate::{SegmentLog, SegmentLogConfig, SyncBackendExt};

fn log(store: &Arc<object_store::memory::InMemory>) -> SegmentLog {
    let config = SegmentLogConfig {
        max_events_per_segment: 3,
        ..SegmentLogConfig::default()
    };
    SegmentLog::new(store.clone(), Default::default(), "s", config).unwrap()
}

fn write_file(dir: &Path, events: &[GlobalEvent]) -> PathBuf {
    let path = dir.join("export.json");
    let mut file = std::fs::File::create(&path).unwrap();
    let body = serde_json::json!({
        "version": 1, "storeId": "s", "exportedAt": "t",
        "eventCount": events.len(), "events": events,
    });
    file.write_all(body.to_string().as_bytes()).unwrap();
    path
}

#[tokio::test]
async fn test_import_pushes_in_batches_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<_> = (1..=8).map(test_event).collect();
    let path = write_file(dir.path(), &events);
    let store = Arc::new(object_store::memory::InMemory::new());
    let target = log(&store);
    let report = import(&target, &path, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!((report.imported, report.pushes), (8, 3));
    assert_eq!(target.read_all_checked().await.unwrap(), events);
    let mut again = Vec::new();
    write_export(&target, &mut again, "s", "t", &mut |_, _| ())
        .await
        .unwrap();
    let mut seen = 0;
    read_export(&again[..], 1 << 20, &mut |_| {
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 8);
}

#[tokio::test]
async fn test_a_refused_arg_fails_the_check_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), &(1..=4).map(test_event).collect::<Vec<_>>());
    let store = Arc::new(object_store::memory::InMemory::new());
    let target = log(&store);
    let options = ImportOptions {
        check_args: Some(Arc::new(|event: &GlobalEvent| {
            if event.seq_num == GlobalSeq(3) {
                Err("field `id`: expected a string".into())
            } else {
                Ok(())
            }
        })),
        ..ImportOptions::default()
    };
    match import(&target, &path, &options).await.unwrap_err() {
        ImportError::File {
            error:
                ExportFileError::Event {
                    index: 2,
                    problem: EventProblem::Refused { .. },
                    ..
                },
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(target.head().await.unwrap(), GlobalSeq::ZERO);
}

/// The file an eventsync export writes of `events`: one event a line.
fn write_lines(dir: &Path, name: &str, events: &[GlobalEvent]) -> PathBuf {
    let path = dir.join(name);
    let lines: Vec<String> = events
        .iter()
        .map(|event| serde_json::to_string(event).unwrap())
        .collect();
    let text = format!(
        "{{\"version\":1,\"storeId\":\"s\",\"exportedAt\":\"t\",\"eventCount\":{},\"events\":[\n{}\n]}}\n",
        events.len(),
        lines.join(",\n")
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn limits(events: usize) -> BatchLimits {
    BatchLimits {
        events,
        bytes: 1 << 20,
    }
}

#[tokio::test]
async fn test_a_file_one_event_a_line_is_planned_and_imports_the_events_a_full_pass_imports() {
    let dir = tempfile::tempdir().unwrap();
    let mut events: Vec<_> = (1..=8).map(test_event).collect();
    // A name and a client id with escapes, args with a newline (escaped in the file).
    events[3].client_id = "c\"4".into();
    events[2].name = "v1.Todo\"Created".into();
    events[5].args = serde_json::json!({"id": "t6", "text": "two\nlines"});
    let lines = write_lines(dir.path(), "lines.json", &events);
    let (_, plan) = check_file(
        &lines,
        1 << 20,
        &ArgsChecks::default(),
        None,
        Some(limits(3)),
    )
    .unwrap();
    let plan = plan.expect("a file one event a line is planned");
    let shape: Vec<_> = plan.batches.iter().map(|b| (b.first.0, b.count)).collect();
    assert_eq!(shape, vec![(1, 3), (4, 3), (7, 2)]);
    assert_eq!(plan.batches[1].client_id, "c\"4");

    // Planned, and read again in full (a file on one line has no plan): the same log.
    let one_line = write_file(dir.path(), &events);
    let (_, none) = check_file(
        &one_line,
        1 << 20,
        &ArgsChecks::default(),
        None,
        Some(limits(3)),
    )
    .unwrap();
    assert!(none.is_none());
    let mut logs = Vec::new();
    for path in [&lines, &one_line] {
        let store = Arc::new(object_store::memory::InMemory::new());
        let target = log(&store);
        let report = import(&target, path, &ImportOptions::default())
            .await
            .unwrap();
        assert_eq!((report.imported, report.pushes), (8, 3));
        logs.push(target.read_all_checked().await.unwrap());
    }
    assert_eq!(logs[0], events);
    assert_eq!(logs[1], events);
}

#[test]
fn test_a_file_changed_after_the_check_fails_before_its_changed_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<_> = (1..=9).map(test_event).collect();
    let path = write_lines(dir.path(), "lines.json", &events);
    let (_, plan) = check_file(
        &path,
        1 << 20,
        &ArgsChecks::default(),
        None,
        Some(limits(3)),
    )
    .unwrap();
    let plan = plan.unwrap();
    // Same length, another text in e5: still a valid file, but not the one checked.
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replacen(
        r#""id":"t5","text":"milk""#,
        r#""id":"t5","text":"mild""#,
        1,
    );
    assert_ne!(changed, text);
    std::fs::write(&path, changed).unwrap();
    let (sender, mut received) = mpsc::channel(16);
    let error = replay::replay(&path, &plan, &sender).unwrap_err();
    drop(sender);
    match error {
        ImportError::Changed { first, last, .. } => {
            assert_eq!((first, last), (GlobalSeq(4), GlobalSeq(6)));
        }
        other => panic!("{other:?}"),
    }
    let mut sent = Vec::new();
    while let Some(batch) = received.blocking_recv() {
        sent.push(batch.first().unwrap());
    }
    assert_eq!(sent, vec![GlobalSeq(1)], "only the batch before the change");
    // Cut short: the same.
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let (sender, _received) = mpsc::channel(16);
    assert!(matches!(
        replay::replay(&path, &plan, &sender),
        Err(ImportError::Changed { .. })
    ));
}

#[tokio::test]
async fn test_the_first_bad_event_is_named_whichever_thread_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    // Args refused at e3 (the checking thread), a gap at e6 (the reader): e3 is named.
    let refuse = |bad: u64| ArgsChecks {
        on_event: None,
        on_json: Some(Arc::new(move |_: &str, args: &str| {
            if args.contains(&format!("\"t{bad}\"")) {
                Err("field `id`: refused".into())
            } else {
                Ok(())
            }
        })),
    };
    let mut events: Vec<_> = (1..=8).map(test_event).collect();
    events[5].seq_num = GlobalSeq(7);
    let path = write_lines(dir.path(), "bad.json", &events);
    for (checks, index) in [(refuse(3), 2), (refuse(7), 5), (ArgsChecks::default(), 5)] {
        match check_file(&path, 1 << 20, &checks, None, Some(limits(2))).unwrap_err() {
            ImportError::File {
                error:
                    ExportFileError::Event {
                        index: at, problem, ..
                    },
                ..
            } => {
                assert_eq!(at, index, "{problem}");
                let refused = matches!(problem, EventProblem::Refused { .. });
                assert_eq!(refused, index == 2, "{problem}");
            }
            other => panic!("{other:?}"),
        }
    }
}
