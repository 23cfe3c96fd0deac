//! The settings of a store: plain serde data with [`Default`], read from a file or built in
//! code, and handed to [`StoreBuilder::with_tuning`](crate::StoreBuilder::with_tuning).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tuning knobs of a store, with defaults that suit an interactive application.
///
/// What the backend does on its own (how often a live pull polls, how large a segment may
/// be) is the backend's setting, not this one: see
/// [`SegmentLogConfig`](eventsync_backends::SegmentLogConfig).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tuning {
    /// Most events in one backend push (one segment, one PUT). Larger batches mean fewer
    /// PUTs (S3 Standard bills $0.005 per 1,000) and a faster catch-up after offline work,
    /// but a bigger object to send again when a push loses a race. The backend's own limit
    /// (`max_events_per_segment`, 1,000 by default) caps it. Default 100, LiveStore's push
    /// batch.
    pub push_batch_events: usize,
    /// Most bytes (encoded) in one backend push. The backend's `max_bytes_per_segment`
    /// caps it. Default 4 MiB.
    pub push_batch_bytes: usize,
    /// How long a second process waits for the data dir's lock before giving up. Longer
    /// rides out a short command that holds the store (a `todo add` in another terminal);
    /// shorter reports a stuck process sooner. Default 10 s.
    #[serde(with = "eventsync_backends::duration")]
    pub lock_timeout: Duration,
    /// What to do when the backend's id changed (the store was wiped or replaced), at open
    /// or while running: see [`OnBackendIdMismatch`]. Default `reset`.
    pub on_backend_id_mismatch: OnBackendIdMismatch,
    /// Whether the leader runs on an OS thread of its own (with its own current-thread
    /// runtime), so that its SQLite work and the fsync of each durable batch never block a
    /// worker thread of the caller's runtime; pushes and pulls still run on the caller's
    /// runtime. Default `true`.
    ///
    /// `false` runs it inline, as a task on the caller's runtime, blocking one of its
    /// workers while it writes. Select it for a seeded simulation (one task at a time on a
    /// current-thread runtime gives one interleaving per seed) and for code on tokio's
    /// paused clock: that runtime advances virtual time whenever its own tasks all wait, so
    /// with the leader on another thread, timeouts (a `sync` guard, the wait for the data
    /// dir's lock) fire while the leader is still working.
    pub leader_thread: bool,
    /// The leader packs the backend's log by itself each time the backend-confirmed head
    /// has moved this many events since it last did (and once in a process, as soon as
    /// the head passes this many): it asks the backend to pack every complete window of
    /// segments after the last pack and to merge packs into larger ones, on a task of its
    /// own (for the segment log: 2 LISTs, a GET of each segment after the last pack, a PUT
    /// a pack). Packs let a cold reader fetch one object per window instead of one per
    /// segment; between two attempts the tail of segments grows by up to this many
    /// objects (one-event segments), so a cold reader fetches at most about this plus the
    /// segment log's `pack-window-events` segments after the last pack. Lower means a
    /// shorter tail and more LISTs (each online leader makes an attempt). `0` never packs
    /// (`eventsync compact` still does, on demand). Default 256, the segment log's pack
    /// window: about one attempt per window.
    pub pack_after_events: u64,
    /// Write a snapshot of the state to the backend every this many events the backend
    /// confirmed (0: never). A fresh client then boots from the newest snapshot and pulls
    /// only the tail, instead of replaying the whole log. Each snapshot costs one dump of
    /// the user tables on the leader (between two batches), one compression and one PUT;
    /// a store of N events with a snapshot every K replays at most K events on a fresh
    /// client. Default 0 (off): a snapshot is also written on demand
    /// ([`Store::snapshot`](crate::Store::snapshot), `eventsync snapshot`).
    pub snapshot_every: u64,
    /// How many snapshots of each schema hash to keep in the backend: after a leader (or
    /// `eventsync snapshot`) wrote one, it deletes the older ones but the newest this many
    /// of each schema hash, in the background (a failure is logged, never fatal;
    /// `eventsync snapshot --prune` does it on demand). Snapshots are derived data: the log
    /// keeps every event, so deleting one loses nothing (`docs/FORMAT.md`, *Retention*).
    /// More than one leaves a reader that is loading the newest-but-one, or finds the newest
    /// damaged, a snapshot to boot from; each kept snapshot costs its size in the bucket.
    /// Snapshots of other schema hashes (older or newer versions of the app) keep their own
    /// newest this many: a prune never has to know which schema is current. `0` keeps every
    /// snapshot. Default 3.
    pub snapshot_keep: u64,
    /// Whether a client with no local data looks for the newest snapshot of its schema in
    /// the backend and starts from it (then pulls the tail). With `false` it replays the
    /// whole log. Default `true`.
    pub boot_from_snapshot: bool,
    /// Whether a push that lost the race for the next segment key (`ServerAhead`) waits a
    /// short random delay before the leader rebases and pushes again: drawn from zero to
    /// its last attempt's time (1 to 100 ms), doubled with each race lost in a row, up to
    /// 250 ms, holding the events pulled meanwhile so that it rebases once per attempt, and
    /// pushing up to 4 × `push_batch_events` after losing. With several busy writers on one log this spares
    /// the losers a rebase of all their pending events per lost race; a single writer never
    /// waits. `false` retries at once, as soon as the pull reached the backend's head.
    /// Default `true`.
    pub race_wait: bool,
    /// With `race_wait`: whether the leader, once its wait after a lost race is over, first
    /// takes a fresh look at the backend's head (the pull restarted: one GET of the next
    /// key, still holding what it pulls), and waits again, a time drawn from zero to its last
    /// attempt's time (at most 10 ms), then looks again, if another writer's segment landed
    /// since it last looked. Only a
    /// quiet head gets the rebase, the durable batch and the PUT of an attempt, which on a
    /// head that moves meanwhile would lose again. `false` rebases and pushes as soon as the
    /// wait is over, on what the live pull (which polls every `poll_min` at best) has found.
    /// Default `true`.
    pub race_probe: bool,
    /// Whether a rebase against the backend may move the eventlog alone and leave the
    /// tables (and the sessions) as they were until the leader's pushes have landed: the
    /// pending events are renumbered in `eventlog.db` (durable before the next push, as
    /// always), and one later step rolls the tables back and replays everything since, once
    /// nothing synced is pending, after at most 250 ms, or when a query, a new session or a
    /// snapshot needs the tables. With several busy writers on one log this turns one
    /// rollback and replay of every pending event per lost race, in the leader and in each
    /// session, into one per burst; meanwhile the sessions see the others' events up to
    /// 250 ms later, and their new commits wait that long to be admitted. `false`
    /// materializes every rebase at once. Default `true`.
    pub lazy_rebase: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            push_batch_events: 100,
            push_batch_bytes: 4 * 1024 * 1024,
            lock_timeout: Duration::from_secs(10),
            on_backend_id_mismatch: OnBackendIdMismatch::Reset,
            leader_thread: true,
            pack_after_events: 256,
            snapshot_every: 0,
            snapshot_keep: 3,
            boot_from_snapshot: true,
            race_wait: true,
            race_probe: true,
            lazy_rebase: true,
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
    /// so they are closed: their commits then fail with
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) and a message saying the local data
    /// was reset, and so does a `sync()` that was waiting. Open new sessions to go on.
    #[default]
    Reset,
    /// Stop the store with [`ErrorKind::Closed`](crate::ErrorKind::Closed) and a message
    /// naming both ids; local data is kept (open the store offline to read or export it). An
    /// open fails the same way.
    Shutdown,
    /// Keep the local data and carry on in the new store: this client first puts the events
    /// the old store had confirmed to it into the new store (which must be empty, or hold a
    /// beginning of this very log, for example put there by another client that ignores the
    /// change too), then pushes its pending events as usual. When the new store holds other
    /// events, the store stops as with `shutdown`.
    Ignore,
}
