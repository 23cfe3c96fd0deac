//! What the server's test files share.

use std::time::Duration;

use eventsync_backends::SegmentLogConfig;

/// A segment log that polls often, so that live pulls see new events within the tests'
/// patience.
pub fn config() -> SegmentLogConfig {
    SegmentLogConfig {
        poll_min: Duration::from_millis(10),
        poll_max: Duration::from_millis(50),
        ..SegmentLogConfig::default()
    }
}
