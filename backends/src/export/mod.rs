//! LiveStore's export format, version 1: one JSON object
//! `{version: 1, storeId, exportedAt, eventCount, events: [...]}` whose events are the
//! backend log's events in LiveStore's `Global.Encoded` form ([`GlobalEvent`]'s JSON).
//!
//! Both directions stream, so a file of a million events never sits in memory:
//!
//! - [`write_export`] (`writer.rs`) pulls the log page by page and writes each event as it
//!   comes, one a line, with `eventCount` taken from the backend's head up front;
//! - [`read_export`] (`reader/`) reads the file in large chunks, parses each event from the
//!   buffer and hands it to a callback as soon as it is parsed, checking the numbering on the
//!   way ([`read_export_raw`] hands it as parsed, its strings borrowed, unbuilt; an event
//!   in the form `serde_json` writes, as this writer writes them, is read by a scan that
//!   builds nothing, `event_json.rs`, and any other by the parser). The
//!   fields of the object may come in any order (`eventCount` after `events`), and no single
//!   event may be larger than a limit, which the reader enforces on the raw bytes before they
//!   are buffered (a 100 MB event is refused after the limit, not read into memory);
//! - [`import`] (`import.rs`) reads the file twice: once to check all of it (nothing is
//!   written when anything is wrong), once to push it in batches within the backend's
//!   [`Capabilities`](crate::Capabilities).
//!
//! The format is LiveStore's (`livestore sync export`), so a log moves between the two.

mod import;
mod reader;
mod writer;

pub use import::{
    ArgsCheck, ArgsChecks, ArgsJsonCheck, ImportError, ImportOptions, ImportPhase, ImportReport,
    Progress, import, validate_file,
};
pub use reader::{EventProblem, ExportFileError, RawEvent, Rejected, read_export, read_export_raw};
pub use writer::{ExportWriteError, write_export};

use serde::Serialize;

#[cfg(test)]
use crate::GlobalEvent;
use crate::GlobalSeq;

/// The export format version this build writes and reads.
pub const EXPORT_VERSION: u64 = 1;

/// What an export file says about itself besides its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportHeader {
    /// The format version ([`EXPORT_VERSION`]).
    pub version: u64,
    /// The id of the store it was exported from (informational: an import may target
    /// another store).
    pub store_id: String,
    /// When it was written, as the writer chose to say it (RFC 3339 from the command line,
    /// as LiveStore's `toISOString`).
    pub exported_at: String,
    /// How many events the file holds.
    pub event_count: u64,
}

/// The most bytes one event may take in a segment for a push of it alone to fit in
/// `max_bytes_per_push`: the push limit less a segment's largest overhead.
pub fn max_event_bytes(max_bytes_per_push: usize) -> usize {
    max_bytes_per_push.saturating_sub(crate::segment::MAX_OVERHEAD_LEN)
}

/// Where an event sits in a file, for messages: `event #3 (e3)`, 1-based like a reader
/// counts, with its number when it was read.
fn event_at(index: u64, seq: Option<GlobalSeq>) -> String {
    match seq {
        Some(seq) => format!("event #{} ({seq})", index + 1),
        None => format!("event #{}", index + 1),
    }
}

/// A test event `e{seq}` with parent `e{seq-1}`.
#[cfg(test)]
fn test_event(seq: u64) -> GlobalEvent {
    GlobalEvent {
        seq_num: GlobalSeq(seq),
        parent_seq_num: GlobalSeq(seq - 1),
        name: "v1.TodoCreated".into(),
        args: serde_json::json!({"id": format!("t{seq}"), "text": "milk"}),
        client_id: "c1".into(),
        session_id: "s1".into(),
    }
}
