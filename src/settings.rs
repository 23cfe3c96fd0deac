//! The settings of a store: plain serde data with [`Default`], read from a file or built in
//! code, and handed to [`StoreBuilder::with_tuning`](crate::StoreBuilder::with_tuning).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tuning knobs of a store, with defaults that suit an interactive application.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tuning {
    /// Most events in one backend push (one segment). Larger batches mean fewer PUTs.
    pub push_batch_events: usize,
    /// Most bytes (encoded) in one backend push.
    pub push_batch_bytes: usize,
    /// Fastest live-pull poll, used right after activity. Lower is fresher, more GETs. The
    /// backend polls, so this reaches it through [`Tuning::segment_log_config`] when the
    /// backend is opened (the CLI does this).
    #[serde(with = "eventsync_backends::duration")]
    pub poll_min: Duration,
    /// Slowest live-pull poll, reached after a long idle stretch: one GET per poll, so at
    /// 2 s an idle client costs 1,800 GETs an hour (about $0.02 a day on S3 Standard), plus
    /// one read of `store.json` every 30 s (120 an hour; `SegmentLogConfig::identity_check`)
    /// to notice a wiped store.
    #[serde(with = "eventsync_backends::duration")]
    pub poll_max: Duration,
    /// How long a second process waits for the data dir's lock before giving up.
    #[serde(with = "eventsync_backends::duration")]
    pub lock_timeout: Duration,
    /// What to do when the backend's id changed (the store was wiped or replaced), at open
    /// or while running: see [`OnBackendIdMismatch`].
    pub on_backend_id_mismatch: OnBackendIdMismatch,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            push_batch_events: 100,
            push_batch_bytes: 4 * 1024 * 1024,
            poll_min: Duration::from_millis(50),
            poll_max: Duration::from_secs(2),
            lock_timeout: Duration::from_secs(10),
            on_backend_id_mismatch: OnBackendIdMismatch::Reset,
        }
    }
}

impl Tuning {
    /// The segment log settings that carry this tuning to a backend: its poll bounds, and
    /// segments at least as large as a push batch.
    pub fn segment_log_config(&self) -> eventsync_backends::SegmentLogConfig {
        let defaults = eventsync_backends::SegmentLogConfig::default();
        eventsync_backends::SegmentLogConfig {
            poll_min: self.poll_min,
            poll_max: self.poll_max,
            max_events_per_segment: defaults.max_events_per_segment.max(self.push_batch_events),
            max_bytes_per_segment: defaults.max_bytes_per_segment.max(self.push_batch_bytes),
            ..defaults
        }
    }
}

/// What to do when the backend's id differs from the one recorded: the store was wiped (and
/// recreated by the next client that used it) or replaced. The same at open and while the
/// store runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBackendIdMismatch {
    /// Follow the new store (LiveStore's default): delete the local data (eventlog,
    /// changesets, tables), including events not pushed yet, record the new id, and sync
    /// from the new store. The store stays open. Sessions opened before hold the old state,
    /// so they are closed: their commits then fail with [`ErrorKind::Closed`](crate::ErrorKind::Closed) and a message
    /// saying the local data was reset, and so does a `sync()` that was waiting. Open new
    /// sessions to go on.
    #[default]
    Reset,
    /// Stop the store with [`ErrorKind::Closed`](crate::ErrorKind::Closed) and a message naming both ids; local data
    /// is kept (open the store offline to read or export it). An open fails the same way.
    Shutdown,
    /// Keep the local data and carry on in the new store: this client first puts the events
    /// the old store had confirmed to it into the new store (which must be empty, or hold a
    /// beginning of this very log, for example put there by another client that ignores the
    /// change too), then pushes its pending events as usual. When the new store holds other
    /// events, the store stops as with `shutdown`.
    Ignore,
}
