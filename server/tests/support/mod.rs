//! What the server's test files share. Each test file uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use eventsync_backends::SegmentLogConfig;
use serde_json::{Value, json};

/// A segment log that polls often, so that live pulls see new events within the tests'
/// patience.
pub fn config() -> SegmentLogConfig {
    SegmentLogConfig {
        poll_min: Duration::from_millis(10),
        poll_max: Duration::from_millis(50),
        ..SegmentLogConfig::default()
    }
}

/// A pull request's `cursor` in LiveStore's wire form: `Some` with the backend id and the
/// last event the client has, or `None` for a pull from the start.
pub fn cursor(cursor: Option<(&str, u64)>) -> Value {
    match cursor {
        Some((backend_id, n)) => {
            json!({"_tag": "Some", "value": {"backendId": backend_id, "eventSequenceNumber": n}})
        }
        None => json!({"_tag": "None"}),
    }
}
