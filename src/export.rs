//! The export file of a store's backend log, in LiveStore's `sync export` format:
//! `{"version": 1, "storeId", "exportedAt", "eventCount", "events": [GlobalEvent...]}`.
//!
//! [`parse_export`] is the one reader of such files: it checks everything the file says about
//! itself (version, store id, count, numbering from `e1`, each event the parent of the next)
//! before anyone pushes a single event from it, and never panics, whatever the bytes.

use eventsync_backends::{GlobalEvent, GlobalSeq};
use serde::{Deserialize, Serialize};

/// The export format version this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// A store's backend log as one JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportFile {
    /// The format version ([`EXPORT_VERSION`]).
    pub version: u32,
    /// The store the events were exported from.
    pub store_id: String,
    /// When the export was made, as LiveStore writes it (an ISO 8601 timestamp).
    pub exported_at: String,
    /// How many events follow; must equal `events.len()` (a cut-off file is caught).
    pub event_count: u64,
    /// The whole log, from `e1`, ascending and gapless.
    pub events: Vec<GlobalEvent>,
}

impl ExportFile {
    /// An export of `events` (the whole log, from `e1`) of store `store_id`.
    pub fn new(store_id: &str, exported_at: &str, events: Vec<GlobalEvent>) -> ExportFile {
        ExportFile {
            version: EXPORT_VERSION,
            store_id: store_id.to_owned(),
            exported_at: exported_at.to_owned(),
            event_count: events.len() as u64,
            events,
        }
    }
}

/// Why bytes are not a usable export file. Each variant names the place at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// Not JSON, or a field is missing, unknown or of the wrong type.
    #[error("export file is not valid: at `{path}`: {message}")]
    Json {
        /// Where in the document (`events[3].seqNum`, `.` for the top level).
        path: String,
        /// serde_json's message (with line and column).
        message: String,
    },
    /// Written by another format version.
    #[error(
        "export file version {found} is not supported (this build reads version {EXPORT_VERSION})"
    )]
    UnsupportedVersion {
        /// The version in the file.
        found: u64,
    },
    /// The store id cannot name a store.
    #[error("export file store id: {message}")]
    StoreId {
        /// Why (names the id).
        message: String,
    },
    /// `eventCount` disagrees with the events present (a truncated or edited file).
    #[error("export file says eventCount {declared} but holds {actual} events")]
    CountMismatch {
        /// `eventCount`.
        declared: u64,
        /// `events.len()`.
        actual: u64,
    },
    /// An event is not numbered where it stands (a gap, a duplicate, a wrong parent).
    #[error(
        "export file events[{index}] is numbered {found_seq} (parent {found_parent}), expected {expected_seq} (parent {expected_parent})"
    )]
    Numbering {
        /// Its index in `events`.
        index: usize,
        /// The number it should have.
        expected_seq: GlobalSeq,
        /// The parent it should have.
        expected_parent: GlobalSeq,
        /// The number it has.
        found_seq: GlobalSeq,
        /// The parent it has.
        found_parent: GlobalSeq,
    },
}

/// Only the version, read first so a future format is reported as such and not as a
/// missing or unknown field.
#[derive(Deserialize)]
struct VersionOnly {
    version: serde_json::Value,
}

/// Parses and validates an export file: JSON shape, version, store id, count, numbering.
pub fn parse_export(bytes: &[u8]) -> Result<ExportFile, ExportError> {
    let json_error = |path: String, error: serde_json::Error| ExportError::Json {
        path,
        message: error.to_string(),
    };
    let version: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| json_error(".".into(), e))?;
    match version.version.as_u64() {
        Some(found) if found == u64::from(EXPORT_VERSION) => {}
        Some(found) => return Err(ExportError::UnsupportedVersion { found }),
        None => {
            return Err(ExportError::Json {
                path: "version".into(),
                message: format!("expected a whole number, found {}", version.version),
            });
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let file: ExportFile = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        json_error(path, e.into_inner())
    })?;
    eventsync_backends::open::validate_store_id(&file.store_id).map_err(|e| {
        ExportError::StoreId {
            message: e.to_string(),
        }
    })?;
    let actual = file.events.len() as u64;
    if file.event_count != actual {
        return Err(ExportError::CountMismatch {
            declared: file.event_count,
            actual,
        });
    }
    for (index, event) in file.events.iter().enumerate() {
        let expected_seq = GlobalSeq(index as u64 + 1);
        let expected_parent = GlobalSeq(index as u64);
        if event.seq_num != expected_seq || event.parent_seq_num != expected_parent {
            return Err(ExportError::Numbering {
                index,
                expected_seq,
                expected_parent,
                found_seq: event.seq_num,
                found_parent: event.parent_seq_num,
            });
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> GlobalEvent {
        GlobalEvent {
            seq_num: GlobalSeq(seq),
            parent_seq_num: GlobalSeq(seq - 1),
            name: "v1.TodoCreated".into(),
            args: serde_json::json!({"id": format!("t{seq}"), "text": "milk"}),
            client_id: "c".into(),
            session_id: "s".into(),
        }
    }

    fn sample() -> ExportFile {
        ExportFile::new(
            "todo",
            "2026-01-01T00:00:00.000Z",
            (1..=3).map(event).collect(),
        )
    }

    fn json(file: &ExportFile) -> serde_json::Value {
        serde_json::to_value(file).unwrap()
    }

    #[test]
    fn test_export_round_trips_with_livestore_field_names() {
        let file = sample();
        let bytes = serde_json::to_vec(&file).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        for field in [
            "\"storeId\"",
            "\"exportedAt\"",
            "\"eventCount\"",
            "\"seqNum\"",
        ] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
        assert_eq!(parse_export(&bytes).unwrap(), file);
    }

    #[test]
    fn test_empty_export_is_valid() {
        let file = ExportFile::new("s", "now", Vec::new());
        let bytes = serde_json::to_vec(&file).unwrap();
        assert_eq!(parse_export(&bytes).unwrap().events, Vec::new());
    }

    #[test]
    fn test_future_version_is_reported_before_the_shape() {
        let mut value = json(&sample());
        value["version"] = 2.into();
        value["somethingNew"] = true.into();
        let error = parse_export(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(error, ExportError::UnsupportedVersion { found: 2 });
    }

    #[test]
    fn test_wrong_count_is_refused_naming_both_numbers() {
        let mut value = json(&sample());
        value["eventCount"] = 4.into();
        let error = parse_export(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            error,
            ExportError::CountMismatch {
                declared: 4,
                actual: 3
            }
        );
    }

    #[test]
    fn test_gap_is_refused_naming_the_event() {
        let mut file = sample();
        file.events.remove(1);
        file.event_count = 2;
        let error = parse_export(&serde_json::to_vec(&file).unwrap()).unwrap_err();
        assert!(
            matches!(
                error,
                ExportError::Numbering {
                    index: 1,
                    found_seq: GlobalSeq(3),
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn test_bad_field_is_refused_naming_its_path() {
        let mut value = json(&sample());
        value["events"][2]["seqNum"] = "three".into();
        let error = parse_export(value.to_string().as_bytes()).unwrap_err();
        match error {
            ExportError::Json { path, .. } => assert_eq!(path, "events[2].seqNum"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_bad_store_id_and_non_json_are_refused() {
        let mut value = json(&sample());
        value["storeId"] = "../etc".into();
        let error = parse_export(value.to_string().as_bytes()).unwrap_err();
        assert!(error.to_string().contains("../etc"), "{error}");
        for bytes in [&b""[..], b"{", b"[]", b"\xff\xfe", b"{\"version\": 1.5}"] {
            assert!(matches!(parse_export(bytes), Err(ExportError::Json { .. })));
        }
    }
}
