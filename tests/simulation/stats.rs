//! What one simulated seed did, counted, and summed over seeds for `RELIABILITY.md`.

use eventsync::backends::fault::FaultCounts;
use serde::Serialize;

/// Counts of what one seed did, summed over seeds for `RELIABILITY.md`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimStats {
    pub seeds: u64,
    pub leaders: u64,
    pub sessions: u64,
    pub synced_commits: u64,
    pub client_only_commits: u64,
    pub syncs_ok: u64,
    pub syncs_failed: u64,
    pub syncs_timed_out: u64,
    pub crashes_abort: u64,
    pub crashes_drop: u64,
    pub offline_stretches: u64,
    pub restarts: u64,
    /// Pack actions (`SyncBackend::pack`, through the faults), and the packs they wrote.
    pub pack_runs: u64,
    pub packs_written: u64,
    /// Pack actions that failed (an injected fault; the next one packs the rest).
    pub pack_runs_failed: u64,
    /// Snapshot actions (`Store::snapshot` on a running leader, through the faults), the
    /// snapshots they created, and those that failed (an injected fault, or nothing
    /// confirmed yet).
    pub snapshot_runs: u64,
    pub snapshots_written: u64,
    pub snapshot_runs_failed: u64,
    /// Snapshots the auditor checked against a replay of the log (`verify --snapshots`).
    pub snapshots_verified: u64,
    /// Fresh clients that joined mid-run, and opens (of those and of any leader with no
    /// local data) that started from a snapshot.
    pub joins: u64,
    pub boots_from_snapshot: u64,
    /// Synced commits lost because their leader crashed before admitting them.
    pub lost_in_crash: u64,
    /// Client-only commits lost the same way.
    pub client_only_lost_in_crash: u64,
    pub backend_events: u64,
    pub faults: FaultCounts,
    pub violations: u64,
}

impl SimStats {
    /// Adds another seed's figures.
    pub fn add(&mut self, other: &SimStats) {
        self.seeds += other.seeds;
        self.leaders += other.leaders;
        self.sessions += other.sessions;
        self.synced_commits += other.synced_commits;
        self.client_only_commits += other.client_only_commits;
        self.syncs_ok += other.syncs_ok;
        self.syncs_failed += other.syncs_failed;
        self.syncs_timed_out += other.syncs_timed_out;
        self.crashes_abort += other.crashes_abort;
        self.crashes_drop += other.crashes_drop;
        self.offline_stretches += other.offline_stretches;
        self.restarts += other.restarts;
        self.pack_runs += other.pack_runs;
        self.packs_written += other.packs_written;
        self.pack_runs_failed += other.pack_runs_failed;
        self.snapshot_runs += other.snapshot_runs;
        self.snapshots_written += other.snapshots_written;
        self.snapshot_runs_failed += other.snapshot_runs_failed;
        self.snapshots_verified += other.snapshots_verified;
        self.joins += other.joins;
        self.boots_from_snapshot += other.boots_from_snapshot;
        self.lost_in_crash += other.lost_in_crash;
        self.client_only_lost_in_crash += other.client_only_lost_in_crash;
        self.backend_events += other.backend_events;
        self.faults += other.faults;
        self.violations += other.violations;
    }
}
