//! The reader's tests: valid files in their shapes, and each kind of bad file refused
//! with what and where.

use super::*;
use crate::export::test_event;

const LIMIT: usize = 4096;

fn file(events: &[GlobalEvent]) -> String {
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    format!(
        r#"{{"version":1,"storeId":"s","exportedAt":"now","eventCount":{},"events":[{}]}}"#,
        events.len(),
        lines.join(",\n")
    )
}

fn read(text: &str) -> (Result<ExportHeader, ExportFileError>, Vec<GlobalEvent>) {
    let mut seen = Vec::new();
    let result = read_export(text.as_bytes(), LIMIT, &mut |event| {
        seen.push(event);
        Ok(())
    });
    (result, seen)
}

fn events(n: u64) -> Vec<GlobalEvent> {
    (1..=n).map(test_event).collect()
}

#[test]
fn test_reads_every_event_in_order_with_the_header() {
    let (header, seen) = read(&file(&events(3)));
    let header = header.unwrap();
    assert_eq!(header.event_count, 3);
    assert_eq!(header.store_id, "s");
    assert_eq!(seen, events(3));
}

#[test]
fn test_fields_may_come_in_any_order_and_be_pretty_printed() {
    let body = serde_json::json!({
        "events": events(2),
        "exportedAt": "t",
        "eventCount": 2,
        "storeId": "x",
        "version": 1,
    });
    let (header, seen) = read(&serde_json::to_string_pretty(&body).unwrap());
    assert_eq!(header.unwrap().exported_at, "t");
    assert_eq!(seen.len(), 2);
}

#[test]
fn test_an_empty_export_is_valid() {
    let (header, seen) = read(&file(&[]));
    assert_eq!(header.unwrap().event_count, 0);
    assert!(seen.is_empty());
}

#[test]
fn test_a_gap_names_the_event_and_stops_before_it() {
    let mut list = events(4);
    list.remove(2);
    let (result, seen) = read(&file(&list));
    match result.unwrap_err() {
        ExportFileError::Event {
            index: 2,
            seq: Some(GlobalSeq(4)),
            problem: EventProblem::Gap { expected, .. },
        } => assert_eq!(expected, GlobalSeq(3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.len(), 2);
}

#[test]
fn test_a_wrong_parent_names_the_event() {
    let mut list = events(3);
    list[1].parent_seq_num = GlobalSeq(0);
    let error = read(&file(&list)).0.unwrap_err();
    assert!(
        matches!(
            error,
            ExportFileError::Event {
                index: 1,
                problem: EventProblem::Parent { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("event #2 (e2): parentSeqNum is e0")
    );
}

#[test]
fn test_a_truncated_file_says_so_and_where() {
    let text = file(&events(3));
    let error = read(&text[..text.len() - 30]).0.unwrap_err();
    assert!(
        matches!(error, ExportFileError::Truncated { event: Some(2), .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("truncated"), "{error}");
}

#[test]
fn test_a_wrong_version_is_refused_before_any_event() {
    let text = file(&events(2)).replace("\"version\":1", "\"version\":2");
    let (result, seen) = read(&text);
    assert_eq!(
        result.unwrap_err(),
        ExportFileError::Version { found: "2".into() }
    );
    assert!(seen.is_empty());
}

#[test]
fn test_a_wrong_count_is_refused() {
    let text = file(&events(2)).replace("\"eventCount\":2", "\"eventCount\":5");
    assert_eq!(
        read(&text).0.unwrap_err(),
        ExportFileError::Count {
            declared: 5,
            found: 2
        }
    );
}

#[test]
fn test_missing_unknown_and_duplicate_fields_are_named() {
    let text = file(&events(1)).replace("\"storeId\":\"s\",", "");
    assert_eq!(
        read(&text).0.unwrap_err(),
        ExportFileError::MissingField { field: "storeId" }
    );
    let text = file(&events(1)).replace("\"storeId\"", "\"storeID\"");
    assert_eq!(
        read(&text).0.unwrap_err(),
        ExportFileError::UnknownField {
            field: "storeID".into()
        }
    );
    let text = file(&events(1)).replace("\"storeId\":\"s\"", "\"storeId\":\"s\",\"storeId\":\"t\"");
    assert!(matches!(
        read(&text).0.unwrap_err(),
        ExportFileError::BadField {
            field: "storeId",
            ..
        }
    ));
    let text = file(&events(1)).replace("\"eventCount\":1", "\"eventCount\":\"1\"");
    assert!(matches!(
        read(&text).0.unwrap_err(),
        ExportFileError::BadField {
            field: "eventCount",
            ..
        }
    ));
}

#[test]
fn test_an_event_that_is_not_one_is_named() {
    let text = file(&events(2)).replacen(",\"sessionId\":\"s1\"", "", 1);
    let error = read(&text).0.unwrap_err();
    match &error {
        ExportFileError::Event {
            index: 0,
            problem: EventProblem::Malformed { message },
            ..
        } => assert!(message.contains("sessionId"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn test_a_huge_event_is_refused_at_the_budget_without_reading_it_all() {
    let mut huge = test_event(2);
    huge.args = serde_json::json!({"text": "x".repeat(1_000_000)});
    let mut list = events(1);
    list.push(huge);
    let text = file(&list);
    let error = read(&text).0.unwrap_err();
    assert_eq!(
        error,
        ExportFileError::Event {
            index: 1,
            seq: None,
            problem: EventProblem::TooLarge { limit: LIMIT }
        }
    );
    // Just over the limit but within the raw budget: refused on its encoded size.
    let mut big = test_event(1);
    big.args = serde_json::json!({"text": "x".repeat(LIMIT)});
    let error = read(&file(&[big])).0.unwrap_err();
    assert!(
        matches!(
            error,
            ExportFileError::Event {
                index: 0,
                seq: Some(GlobalSeq(1)),
                problem: EventProblem::TooLarge { .. }
            }
        ),
        "{error:?}"
    );
}

#[test]
fn test_a_huge_header_field_is_refused() {
    let text = file(&events(1)).replace("\"now\"", &format!("\"{}\"", "y".repeat(100_000)));
    assert_eq!(
        read(&text).0.unwrap_err(),
        ExportFileError::FieldTooLarge { limit: FIELD_LIMIT }
    );
}

#[test]
fn test_the_callback_can_refuse_an_event_or_stop() {
    let text = file(&events(3));
    let result = read_export(text.as_bytes(), LIMIT, &mut |event| {
        if event.seq_num == GlobalSeq(2) {
            Err(Rejected::Event("args do not decode".into()))
        } else {
            Ok(())
        }
    });
    let error = result.unwrap_err();
    assert_eq!(error.to_string(), "event #2 (e2): args do not decode");
    let result = read_export(text.as_bytes(), LIMIT, &mut |_| Err(Rejected::Stop));
    assert_eq!(result.unwrap_err(), ExportFileError::Stopped);
}

#[test]
fn test_garbage_after_the_object_and_non_objects_are_refused() {
    let text = format!("{} x", file(&events(1)));
    assert!(matches!(
        read(&text).0.unwrap_err(),
        ExportFileError::Json { .. }
    ));
    assert!(matches!(
        read("[1, 2]").0.unwrap_err(),
        ExportFileError::Json { .. }
    ));
    assert!(matches!(
        read("").0.unwrap_err(),
        ExportFileError::Truncated { event: None, .. }
    ));
}

/// A reader that hands out at most `step` bytes a read: values cut at every position.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(out.len()).min(self.bytes.len());
        out[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// Reads `text` raw, `step` bytes a read; returns whether each event was read canonical
/// and the events built.
fn read_raw(text: &str, step: usize) -> (Vec<bool>, Vec<GlobalEvent>) {
    let (mut canonical, mut seen) = (Vec::new(), Vec::new());
    let reader = Trickle {
        bytes: text.as_bytes(),
        step,
    };
    read_export_raw(reader, LIMIT, &mut |event| {
        canonical.push(event.canonical);
        if event.canonical {
            let written = serde_json::to_vec(&event.to_event().unwrap()).unwrap();
            assert_eq!(event.json, written, "what serde_json writes");
        }
        seen.push(event.to_event().unwrap());
        Ok(())
    })
    .unwrap();
    (canonical, seen)
}

#[test]
fn test_events_as_serde_json_writes_them_are_read_canonical_however_the_reads_cut_them() {
    let mut events = events(4);
    events[2].args = serde_json::json!({"a": [1.5, -2, null], "b": "é\n\"x\""});
    events[3].client_id = "c\"3".into();
    let text = file(&events);
    for step in [1, 2, 3, 7, 64, 1 << 20] {
        let (canonical, seen) = read_raw(&text, step);
        assert_eq!(seen, events, "step {step}");
        assert_eq!(canonical, vec![true; 4], "step {step}");
    }
}

#[test]
fn test_events_in_another_form_are_parsed_and_read_the_same() {
    let events = events(2);
    let body = serde_json::json!({
        "version": 1, "storeId": "s", "exportedAt": "t", "eventCount": 2, "events": events,
    });
    for text in [
        serde_json::to_string_pretty(&body).unwrap(),
        file(&events).replace(r#""args":{"id""#, r#""args":{ "id""#),
    ] {
        let (canonical, seen) = read_raw(&text, 5);
        assert_eq!(seen, events);
        assert!(canonical.iter().all(|&c| !c), "{canonical:?}");
    }
}
