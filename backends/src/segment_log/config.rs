//! [`SegmentLogConfig`]: the tunables of a segment log, with their trade-offs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::BackendError;

/// Settings of a [`SegmentLog`](super::SegmentLog). Serde data with `Default`; every key is
/// accepted in kebab-case (`poll-min`) and snake_case (`poll_min`), durations as text
/// (`"50ms"`, `"2s"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct SegmentLogConfig {
    /// Most events one push (one segment) may carry. Larger batches mean fewer PUTs (S3
    /// Standard bills $0.005 per 1,000) but a bigger object to re-send when a push loses a
    /// race. Default 1000, LiveStore's push limit is 100.
    #[serde(alias = "max_events_per_segment")]
    pub max_events_per_segment: usize,
    /// Most bytes one segment may hold, header and trailer included. A segment is one
    /// conditional PUT (multipart uploads cannot be conditional), so keep it a few MiB.
    /// Default 4 MiB. A single event larger than this can never be pushed.
    #[serde(alias = "max_bytes_per_segment")]
    pub max_bytes_per_segment: usize,
    /// Most events in one pull page. A pull gathers whole consecutive segments into a page
    /// up to this (a page holds at least one segment, however large): a cold pull from its
    /// listing, a live pull from what it finds at a poll. The leader applies a page in one
    /// step (one transaction, at most one rebase). Default 1000.
    #[serde(alias = "page_events")]
    pub page_events: usize,
    /// The delay between polls of an active live pull, and the first delay after new
    /// events. Lower means fresher data and more GETs. Default 50 ms.
    #[serde(alias = "poll_min", with = "crate::duration")]
    pub poll_min: Duration,
    /// The longest delay between polls of an idle live pull: the delay doubles from
    /// `poll_min` up to this. At 2 s an idle reader makes 1,800 GETs an hour ($0.0007 on S3
    /// Standard). Default 2 s.
    #[serde(alias = "poll_max", with = "crate::duration")]
    pub poll_max: Duration,
    /// How often an idle live pull re-reads `store.json`, so that a reader that never pushes
    /// finds out when the store was wiped or replaced (a push checks it every time). Each
    /// check is one GET: at the default 30 s that is 120 GETs an hour on top of an idle
    /// reader's 1,800 polls at `poll_max` = 2 s (+7%). Default 30 s.
    #[serde(alias = "identity_check", with = "crate::duration")]
    pub identity_check: Duration,
    /// The width `w` of the smallest pack window in events: a pack holds the segments whose
    /// first event falls in `k*w+1 ..= (k+1)*w` (see `docs/FORMAT.md`). Smaller means a
    /// shorter tail of segments after the last pack (at most `w - 1` objects once packed,
    /// whatever the segment sizes) and more small packs, which `pack-fanout` merges. Every
    /// packer of a store should use the same width; a reader accepts any pack that fits
    /// the chain. Default 256.
    #[serde(alias = "pack_window_events")]
    pub pack_window_events: u64,
    /// How many windows of one level a pack of the next level merges: level `L` windows
    /// are `w * fanout^L` events wide, and a cold reader takes the largest pack at each
    /// position, so it fetches at most `fanout - 1` packs a level plus the tail. Each level
    /// stores the packed bytes once more (a log of N events keeps about
    /// `log_fanout(N / w)` copies besides its segments). `1` never merges. Default 16.
    #[serde(alias = "pack_fanout")]
    pub pack_fanout: u64,
    /// Largest pack a merge writes, in bytes: a packer holds the packs it merges and the
    /// result in memory, and a cold reader holds up to four packs with their decoded events
    /// (a 1,000,000-event export through packs of up to 32 MiB peaked at 150 MiB of RSS).
    /// Windows whose packs sum to more stay as their smaller packs, so a reader fetches more
    /// of them. Default 4 MiB, `max-bytes-per-segment`'s default: a reader never holds a
    /// pack much larger than a segment (for a todo app, packs of 4,096 events are merged,
    /// packs of 65,536 are not).
    #[serde(alias = "pack_max_bytes")]
    pub pack_max_bytes: u64,
}

impl Default for SegmentLogConfig {
    fn default() -> Self {
        SegmentLogConfig {
            max_events_per_segment: 1000,
            max_bytes_per_segment: 4 * 1024 * 1024,
            page_events: 1000,
            poll_min: Duration::from_millis(50),
            poll_max: Duration::from_secs(2),
            identity_check: Duration::from_secs(30),
            pack_window_events: 256,
            pack_fanout: 16,
            pack_max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The smallest `max_bytes_per_segment` accepted: room for a header and a small event.
pub const MIN_SEGMENT_BYTES: usize = 1024;

impl SegmentLogConfig {
    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), BackendError> {
        let invalid = |message: String| Err(BackendError::Invalid { message });
        if self.max_events_per_segment == 0 || self.max_events_per_segment > u32::MAX as usize {
            return invalid(format!(
                "segment log max-events-per-segment must be 1..=4294967295, got {}",
                self.max_events_per_segment
            ));
        }
        if self.max_bytes_per_segment < MIN_SEGMENT_BYTES {
            return invalid(format!(
                "segment log max-bytes-per-segment must be at least {MIN_SEGMENT_BYTES}, got {}",
                self.max_bytes_per_segment
            ));
        }
        if self.page_events == 0 {
            return invalid("segment log page-events must be at least 1".into());
        }
        if self.poll_min.is_zero() || self.poll_max < self.poll_min {
            return invalid(format!(
                "segment log polls need 0 < poll-min <= poll-max, got poll-min {:?} and poll-max {:?}",
                self.poll_min, self.poll_max
            ));
        }
        if self.pack_window_events == 0 {
            return invalid("segment log pack-window-events must be at least 1".into());
        }
        if self.pack_fanout == 0 {
            return invalid("segment log pack-fanout must be at least 1 (1: never merge)".into());
        }
        if self.identity_check.is_zero() {
            return invalid("segment log identity-check must be more than 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_defaults_are_valid_and_documented_values() {
        let config = SegmentLogConfig::default();
        assert!(config.validate().is_ok());
        assert_eq!(config.max_events_per_segment, 1000);
        assert_eq!(config.max_bytes_per_segment, 4 << 20);
        assert_eq!(config.poll_min, Duration::from_millis(50));
        assert_eq!(config.poll_max, Duration::from_secs(2));
        assert_eq!(config.identity_check, Duration::from_secs(30));
    }

    #[test]
    fn test_deserializes_kebab_and_snake_keys() {
        let kebab: SegmentLogConfig =
            serde_json::from_str(r#"{"poll-min": "10ms", "page-events": 7}"#).unwrap();
        let snake: SegmentLogConfig =
            serde_json::from_str(r#"{"poll_min": "10ms", "page_events": 7}"#).unwrap();
        assert_eq!(kebab, snake);
        assert_eq!(kebab.poll_min, Duration::from_millis(10));
        assert_eq!(kebab.page_events, 7);
        assert_eq!(kebab.poll_max, Duration::from_secs(2));
    }

    #[test]
    fn test_durations_read_with_every_unit_of_the_one_parser() {
        // "500us" reads the same here as in every other settings table (it was refused here
        // while the command line's [tuning] table accepted it).
        let config: SegmentLogConfig =
            serde_json::from_str(r#"{"poll-min": "500us", "poll-max": "2min"}"#).unwrap();
        assert_eq!(config.poll_min, Duration::from_micros(500));
        assert_eq!(config.poll_max, Duration::from_secs(120));
        let s3: crate::S3Options = serde_json::from_str(r#"{"request-timeout": "500us"}"#).unwrap();
        assert_eq!(s3.request_timeout, Some(Duration::from_micros(500)));
    }

    #[test]
    fn test_unknown_keys_and_bad_values_are_refused() {
        assert!(serde_json::from_str::<SegmentLogConfig>(r#"{"pol-min": "1s"}"#).is_err());
        let bad = SegmentLogConfig {
            poll_min: Duration::from_secs(3),
            ..SegmentLogConfig::default()
        };
        assert!(matches!(bad.validate(), Err(BackendError::Invalid { .. })));
    }
}
