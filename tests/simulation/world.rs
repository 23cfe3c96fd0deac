//! The simulated world of one seed: N leaders (each a [`Store`] in its own data dir, like a
//! process) with their sessions, over one backend (a [`SegmentLog`] per leader, over one
//! seeded [`FaultStore`] over one `InMemory`). One rng, seeded from the root seed, picks every
//! action; the [`Ledger`] records every commit and what its fate must be, for the auditor.
//!
//! Everything random inside eventsync (writer nonces, the backend id, session ids, retry
//! jitter) comes from an [`Entropy`] forked from a root seeded by the same seed, one fork per
//! store and per backend client, so the same seed replays the same run byte for byte.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eventsync::Event;
use eventsync::backends::fault::{FaultConfig, FaultStore};
use eventsync::backends::{SegmentLog, SegmentLogConfig, SyncBackend};
use eventsync::schema::Schema;
use eventsync::{ClientSession, Entropy, ErrorKind, SnapshotBoot, Store, Tuning};
use eventsync_todo::{
    TodoCompleted, TodoCreated, TodoDeleted, TodoFilter, TodoRenamed, TodoUncompleted, UiStateSet,
};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::ledger::{Commit, Fate, Ledger, event_key};
use super::stats::SimStats;
use super::tally::{TallyBumped, sim_schema};

/// The store id every simulated client uses.
pub const STORE_ID: &str = "sim";

/// How a leader's last incarnation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Clean,
    Crashed,
}

/// One simulated client: a data dir, and the store opened on it (if running).
pub struct Node {
    pub index: usize,
    pub client_id: String,
    pub dir: PathBuf,
    pub store: Option<Store>,
    pub sessions: Vec<ClientSession>,
    pub offline: bool,
    /// The event its eventlog starts after: 0, or the `S` of the snapshot it booted from.
    pub base: u64,
    incarnation: u64,
    ended: Ended,
}

impl Node {
    /// Node `index`, not opened yet, with its data dir under `root`.
    fn new(index: usize, root: &std::path::Path) -> Node {
        Node {
            index,
            client_id: format!("c{index}"),
            dir: root.join(format!("node{index}")),
            store: None,
            sessions: Vec::new(),
            offline: false,
            base: 0,
            incarnation: 0,
            ended: Ended::Clean,
        }
    }
}

/// How many clients may join one seed's run.
const MAX_JOINS: u64 = 3;

/// Everything one seed's run holds.
pub struct World {
    pub seed: u64,
    rng: SmallRng,
    pub schema: Arc<Schema>,
    pub memory: Arc<InMemory>,
    pub faults: Arc<FaultStore>,
    /// The root every store's and backend client's entropy is forked from.
    entropy: Entropy,
    log_config: SegmentLogConfig,
    tuning: Tuning,
    pub nodes: Vec<Node>,
    /// Where the nodes' data dirs are (a joining client gets a new one).
    root: PathBuf,
    /// Every commit a session acknowledged, synced and client-only, in commit order.
    pub ledger: Ledger,
    pub stats: SimStats,
    pub violations: Vec<String>,
    /// What happened, one line an action, for the failure report.
    pub trace: Vec<String>,
    next_id: u64,
}

/// A generous virtual-time limit for one `sync` (time is paused: waiting costs nothing).
const SYNC_LIMIT: Duration = Duration::from_secs(20);

impl World {
    /// A world for `seed`, with data dirs under `root`.
    pub fn new(seed: u64, root: PathBuf) -> World {
        let mut rng = SmallRng::seed_from_u64(seed);
        let memory = Arc::new(InMemory::new());
        let mut faults = FaultConfig::hostile();
        let scale = rng.random_range(0.2..1.5);
        for p in [
            &mut faults.latency,
            &mut faults.transient,
            &mut faults.fail_before_write,
            &mut faults.error_after_write,
            &mut faults.exists_after_write,
            &mut faults.lost_response,
            &mut faults.slow_list,
        ] {
            *p *= scale;
        }
        let faults = Arc::new(FaultStore::seeded(memory.clone(), rng.random(), faults));
        let entropy = Entropy::seeded(rng.random());
        let log_config = SegmentLogConfig {
            max_events_per_segment: rng.random_range(1..=6),
            poll_min: Duration::from_millis(10),
            poll_max: Duration::from_millis(rng.random_range(50..=400)),
            // Small windows, so that the pack action writes packs in logs this short.
            pack_window_events: rng.random_range(2..=12),
            ..SegmentLogConfig::default()
        };
        let tuning = Tuning {
            push_batch_events: rng.random_range(1..=8),
            lock_timeout: Duration::from_secs(5),
            // One interleaving per seed: the leader runs as a task of the simulation's runtime
            // (on a thread of its own it would also work while the paused clock jumps).
            leader_thread: false,
            // No packing or snapshots by the leaders: their requests would draw from the
            // fault store's seeded rng in an order that depends on task timing. The pack and
            // snapshot actions do it instead, awaited in the harness's own order.
            pack_after_events: 0,
            snapshot_every: 0,
            ..Tuning::default()
        };
        let leaders = [2, 2, 2, 3, 3, 3, 4, 4, 5, 6, 8][rng.random_range(0..11)];
        let nodes = (0..leaders).map(|index| Node::new(index, &root)).collect();
        World {
            seed,
            rng,
            schema: Arc::new(sim_schema()),
            memory,
            faults,
            entropy,
            log_config,
            tuning,
            nodes,
            root,
            ledger: Ledger::default(),
            stats: SimStats {
                seeds: 1,
                leaders: leaders as u64,
                ..SimStats::default()
            },
            violations: Vec::new(),
            trace: Vec::new(),
            next_id: 0,
        }
    }

    /// What the backend holds, one `key size sha256` line an object in key order: two runs
    /// of one seed must leave the same bytes.
    pub async fn backend_objects(&self) -> Vec<String> {
        use sha2::{Digest, Sha256};
        let metas: Vec<object_store::ObjectMeta> = match self.memory.list(None).try_collect().await
        {
            Ok(metas) => metas,
            Err(error) => return vec![format!("listing the backend failed: {error}")],
        };
        let mut lines = Vec::new();
        for meta in metas {
            let line = match self.memory.get(&meta.location).await {
                Ok(result) => match result.bytes().await {
                    Ok(bytes) => {
                        let digest: String = Sha256::digest(&bytes)
                            .iter()
                            .map(|byte| format!("{byte:02x}"))
                            .collect();
                        format!("{} {} {digest}", meta.location, bytes.len())
                    }
                    Err(error) => format!("{}: {error}", meta.location),
                },
                Err(error) => format!("{}: {error}", meta.location),
            };
            lines.push(line);
        }
        lines.sort();
        lines
    }

    fn note(&mut self, line: String) {
        self.trace.push(line);
    }

    fn violation(&mut self, message: String) {
        self.trace.push(format!("VIOLATION: {message}"));
        self.violations.push(message);
    }

    /// A backend client as a new process would make it (its own caches), through the faults.
    pub fn backend(&self) -> Arc<dyn SyncBackend> {
        let store: Arc<dyn ObjectStore> = self.faults.clone();
        match SegmentLog::new(
            store,
            StorePath::from("sim"),
            STORE_ID,
            self.log_config.clone(),
        ) {
            Ok(log) => Arc::new(log.with_entropy(self.entropy.fork())),
            Err(error) => panic!("the simulation's segment log config is invalid: {error}"),
        }
    }

    /// Runs the seed: boot, random actions, quiescence. The auditor runs afterwards.
    pub async fn run(&mut self) {
        self.note(format!(
            "seed {}: {} leaders, {:?}, push batch {}",
            self.seed,
            self.nodes.len(),
            self.log_config,
            self.tuning.push_batch_events
        ));
        for index in 0..self.nodes.len() {
            let offline = self.rng.random_bool(0.15);
            self.open(index, offline).await;
        }
        let steps = self.rng.random_range(12..=30);
        for _ in 0..steps {
            let index = self.rng.random_range(0..self.nodes.len());
            self.step(index).await;
        }
        // Often, a snapshot late in the run and a client that joins after it (the actions
        // above come early in short logs, when there is little to snapshot).
        if self.rng.random_bool(0.5) {
            let index = self.rng.random_range(0..self.nodes.len());
            self.snapshot(index).await;
            self.join().await;
        }
        self.quiesce().await;
    }

    async fn step(&mut self, index: usize) {
        if self.nodes[index].store.is_none() {
            // A crashed leader restarts (like a supervisor bringing the process back).
            let offline = self.rng.random_bool(0.2);
            self.open(index, offline).await;
            return;
        }
        let roll = self.rng.random_range(0..106);
        match roll {
            0..40 => {
                if self.nodes[index].sessions.is_empty() {
                    self.open_session(index).await;
                }
                let commits = self.rng.random_range(1..=3);
                for _ in 0..commits {
                    self.commit(index, false);
                }
            }
            40..48 => {
                if self.nodes[index].sessions.is_empty() {
                    self.open_session(index).await;
                }
                self.commit(index, true)
            }
            48..58 => self.sync(index).await,
            58..72 => {
                let millis = self.rng.random_range(1..150);
                self.note(format!("sleep {millis}ms"));
                tokio::time::sleep(Duration::from_millis(millis)).await;
            }
            72..77 => self.open_session(index).await,
            77..80 => {
                if !self.nodes[index].sessions.is_empty() {
                    let which = self.rng.random_range(0..self.nodes[index].sessions.len());
                    self.nodes[index].sessions.remove(which);
                    self.note(format!("node {index}: drop session {which}"));
                }
            }
            80..87 => {
                // Go offline, or come back online.
                let offline = !self.nodes[index].offline;
                if offline {
                    self.stats.offline_stretches += 1;
                }
                self.restart(index, offline).await;
            }
            87..89 => {
                let offline = self.nodes[index].offline;
                self.stats.restarts += 1;
                self.restart(index, offline).await;
            }
            89..91 => self.pack().await,
            91..97 => self.crash_abort(index).await,
            97..100 => self.crash_drop(index).await,
            100..103 => self.snapshot(index).await,
            _ => self.join().await,
        }
    }

    /// Node `index` syncs, then writes a snapshot of its state at its backend-confirmed
    /// head, as `eventsync snapshot` does, through the faults: a failure is an injected fault or
    /// nothing confirmed yet, never a violation (unless the leader closed); what snapshots
    /// hold is checked by the auditor against a replay of the log.
    async fn snapshot(&mut self, index: usize) {
        let node = &self.nodes[index];
        let Some(store) = node.store.clone() else {
            return;
        };
        if node.offline {
            return;
        }
        // As `eventsync snapshot` does: a sync first, so that the confirmed head is recent.
        self.sync(index).await;
        self.stats.snapshot_runs += 1;
        match tokio::time::timeout(SYNC_LIMIT, store.snapshot()).await {
            Ok(Ok(put)) => {
                if put.created {
                    self.stats.snapshots_written += 1;
                }
                self.note(format!(
                    "node {index}: snapshot {} (created: {})",
                    put.key, put.created
                ));
            }
            Ok(Err(error)) => {
                self.stats.snapshot_runs_failed += 1;
                self.note(format!("node {index}: snapshot failed: {error}"));
                if error.kind() == ErrorKind::Closed {
                    self.violation(format!("node {index}: the leader closed: {error}"));
                }
            }
            Err(_) => {
                self.stats.snapshot_runs_failed += 1;
                self.note(format!("node {index}: snapshot timed out"));
            }
        }
    }

    /// A fresh client (a new data dir, a new client id) joins the store: it boots from the
    /// newest snapshot of its schema when there is one, and pulls the tail.
    async fn join(&mut self) {
        if self.stats.joins >= MAX_JOINS {
            return;
        }
        self.stats.joins += 1;
        self.stats.leaders += 1;
        let index = self.nodes.len();
        self.nodes.push(Node::new(index, &self.root));
        self.note(format!("node {index}: joins"));
        self.open(index, false).await;
    }

    /// Packs the log as `eventsync compact` would, from a new backend client through the
    /// faults: a failure is an injected fault (the next pack takes up the rest), never a
    /// violation; what packs say is checked by the auditor.
    async fn pack(&mut self) {
        self.stats.pack_runs += 1;
        match self.backend().pack().await {
            Ok(written) => {
                self.stats.packs_written += written;
                self.note(format!("pack: {written} pack(s) written"));
            }
            Err(error) => {
                self.stats.pack_runs_failed += 1;
                self.note(format!("pack failed: {error}"));
            }
        }
    }

    /// Opens node `index`'s store (a new incarnation) and settles the fates of its earlier
    /// incarnations' commits from its eventlog.
    async fn open(&mut self, index: usize, offline: bool) {
        let backend = self.backend();
        let node = &self.nodes[index];
        let opened = Store::builder(self.schema.clone())
            .with_backend(backend)
            .with_store_id(STORE_ID)
            .with_data_dir(node.dir.clone())
            .with_client_id(node.client_id.clone())
            .with_offline(offline)
            .with_tuning(self.tuning.clone())
            .with_entropy(self.entropy.fork())
            .open()
            .await;
        let store = match opened {
            Ok(store) => store,
            Err(error) => {
                self.violation(format!(
                    "node {index}: open (offline={offline}) failed: {error}"
                ));
                return;
            }
        };
        let node = &mut self.nodes[index];
        node.incarnation += 1;
        node.offline = offline;
        let incarnation = node.incarnation;
        let ended = node.ended;
        let events = store.eventlog().await;
        let boot = store.snapshot_boot().clone();
        node.store = Some(store);
        self.note(format!(
            "node {index}: open incarnation {incarnation} offline={offline}, snapshot boot {boot:?}"
        ));
        match boot {
            SnapshotBoot::Loaded { at, refused, .. } => {
                self.nodes[index].base = at;
                self.stats.boots_from_snapshot += 1;
                // Nothing in the simulation damages a snapshot: a refused one was written
                // wrong.
                if !refused.is_empty() {
                    self.violation(format!(
                        "node {index}: refused snapshots at boot: {refused:?}"
                    ));
                }
            }
            SnapshotBoot::Refused { refused } => {
                self.violation(format!(
                    "node {index}: every snapshot was refused at boot: {refused:?}"
                ));
            }
            SnapshotBoot::NotTried | SnapshotBoot::NoneFound | SnapshotBoot::Unavailable { .. } => {
            }
        }
        let events = match events {
            Ok(events) => events,
            Err(error) => {
                self.violation(format!("node {index}: eventlog after open: {error}"));
                return;
            }
        };
        let settled = self
            .ledger
            .settle(index, incarnation, ended == Ended::Crashed, &events);
        self.stats.lost_in_crash += settled.lost_synced;
        self.stats.client_only_lost_in_crash += settled.lost_client_only;
        let lost = settled.lost_synced + settled.lost_client_only;
        if lost > 0 {
            self.note(format!(
                "node {index}: {lost} commits were not admitted before the crash"
            ));
        }
        for violation in settled.violations {
            self.violation(violation);
        }
        let sessions = self.rng.random_range(1..=3);
        for _ in 0..sessions {
            self.open_session(index).await;
        }
    }

    async fn open_session(&mut self, index: usize) {
        let Some(store) = self.nodes[index].store.clone() else {
            return;
        };
        match store.session().await {
            Ok(session) => {
                self.stats.sessions += 1;
                self.nodes[index].sessions.push(session);
                let count = self.nodes[index].sessions.len();
                self.note(format!("node {index}: open session ({count} now)"));
            }
            Err(error) => self.violation(format!("node {index}: opening a session: {error}")),
        }
    }

    /// A commit on a random session of node `index` (opening one if it has none).
    fn commit(&mut self, index: usize, client_only: bool) {
        if self.nodes[index].store.is_none() {
            return;
        }
        if self.nodes[index].sessions.is_empty() {
            self.note(format!("node {index}: no session to commit on"));
            return;
        }
        let which = self.rng.random_range(0..self.nodes[index].sessions.len());
        self.next_id += 1;
        let id = self.next_id;
        // Every event of the schema. Args may repeat (the same filter, or completing one todo
        // twice): the ledger tells commits apart by session and order, not by args.
        let (name, args) = if client_only {
            let filter = [TodoFilter::All, TodoFilter::Active, TodoFilter::Completed]
                [self.rng.random_range(0..3)];
            // Every other client-only commit bumps the tally (not idempotent: an event applied
            // twice shows), chosen without a draw of its own so that a seed's run stays the
            // run it was before the tally existed (seed 24's e11.1, issue 11, is a bump).
            if id.is_multiple_of(2) {
                (
                    TallyBumped::NAME,
                    serde_json::to_value(TallyBumped {
                        tag: format!("b{id}"),
                    })
                    .unwrap(),
                )
            } else {
                (
                    UiStateSet::NAME,
                    serde_json::to_value(UiStateSet { filter }).unwrap(),
                )
            }
        } else {
            // A todo created earlier (by anyone), or a fresh one.
            let existing = self.rng.random_range(1..=id);
            let target = format!("t{existing}");
            match self.rng.random_range(0..20) {
                0..10 => (
                    TodoCreated::NAME,
                    serde_json::to_value(TodoCreated {
                        id: format!("t{id}"),
                        text: format!("todo {id} by c{index}"),
                    })
                    .unwrap(),
                ),
                10..14 => (
                    TodoRenamed::NAME,
                    serde_json::to_value(TodoRenamed {
                        id: target,
                        text: format!("renamed {id}"),
                    })
                    .unwrap(),
                ),
                14..16 => (
                    TodoCompleted::NAME,
                    serde_json::to_value(TodoCompleted { id: target }).unwrap(),
                ),
                16..18 => (
                    TodoUncompleted::NAME,
                    serde_json::to_value(TodoUncompleted { id: target }).unwrap(),
                ),
                _ => (
                    TodoDeleted::NAME,
                    serde_json::to_value(TodoDeleted {
                        id: target,
                        deleted_at: id as i64,
                    })
                    .unwrap(),
                ),
            }
        };
        let session = self.nodes[index].sessions[which].clone();
        match session.commit_dynamic(name, &args) {
            Ok(seq) => {
                self.note(format!(
                    "node {index} session {which}: commit {name} {args} as {seq}"
                ));
                if client_only {
                    self.stats.client_only_commits += 1;
                } else {
                    self.stats.synced_commits += 1;
                }
                self.ledger.record(Commit {
                    node: index,
                    incarnation: self.nodes[index].incarnation,
                    client_id: self.nodes[index].client_id.clone(),
                    session_id: session.session_id().to_owned(),
                    key: event_key(name, &args),
                    client_only,
                    fate: Fate::Live,
                });
            }
            Err(error) => self.violation(format!(
                "node {index} session {which}: commit {name} failed ({:?}): {error}",
                error.kind()
            )),
        }
    }

    /// `sync` on node `index`; on `Ok`, every synced commit of this incarnation made before
    /// it is confirmed.
    async fn sync(&mut self, index: usize) {
        let node = &self.nodes[index];
        let Some(store) = node.store.clone() else {
            return;
        };
        if node.offline {
            return;
        }
        let incarnation = node.incarnation;
        let mark = self.ledger.len();
        match tokio::time::timeout(SYNC_LIMIT, store.sync()).await {
            Ok(Ok(())) => {
                self.stats.syncs_ok += 1;
                self.note(format!("node {index}: sync ok"));
                self.ledger.confirm(index, incarnation, mark);
            }
            Ok(Err(error)) => {
                self.stats.syncs_failed += 1;
                self.note(format!("node {index}: sync failed: {error}"));
                if error.kind() == ErrorKind::Closed {
                    self.violation(format!("node {index}: the leader closed: {error}"));
                }
            }
            Err(_) => {
                self.stats.syncs_timed_out += 1;
                self.note(format!("node {index}: sync timed out"));
            }
        }
    }

    /// A clean shutdown, then an open in the given mode.
    async fn restart(&mut self, index: usize, offline: bool) {
        let node = &mut self.nodes[index];
        let Some(store) = node.store.take() else {
            return;
        };
        node.sessions.clear();
        node.ended = Ended::Clean;
        if let Err(error) = store.shutdown().await {
            self.violation(format!("node {index}: shutdown failed: {error}"));
        }
        self.note(format!("node {index}: shutdown"));
        self.open(index, offline).await;
    }

    /// A crash at a random point: the leader's task is cancelled where it waits, sessions
    /// vanish; some time later the leader is reopened from its files.
    async fn crash_abort(&mut self, index: usize) {
        if self.rng.random_bool(0.5) {
            self.commit(index, false);
        }
        // Sometimes at once (queued commits are lost), sometimes a little later (pushes and
        // pulls are in flight).
        let millis = if self.rng.random_bool(0.3) {
            0
        } else {
            let millis = self.rng.random_range(1..30);
            tokio::time::sleep(Duration::from_millis(millis)).await;
            millis
        };
        let node = &mut self.nodes[index];
        let Some(store) = node.store.take() else {
            return;
        };
        node.sessions.clear();
        node.ended = Ended::Crashed;
        store.abort().await;
        self.stats.crashes_abort += 1;
        self.note(format!("node {index}: CRASH (abort) after {millis}ms"));
        if self.rng.random_bool(0.6) {
            let offline = self.rng.random_bool(0.2);
            self.open(index, offline).await;
        }
    }

    /// The store handle and its sessions dropped without shutdown, then reopened at once.
    async fn crash_drop(&mut self, index: usize) {
        if self.rng.random_bool(0.5) {
            self.commit(index, false);
        }
        let node = &mut self.nodes[index];
        let Some(store) = node.store.take() else {
            return;
        };
        node.sessions.clear();
        // Whatever the sessions queued may still be admitted by the old leader while it
        // winds down; the next open waits for it (the data dir's lock), so those commits
        // are settled from the eventlog like after a crash.
        node.ended = Ended::Crashed;
        drop(store);
        self.stats.crashes_drop += 1;
        self.note(format!("node {index}: CRASH (drop without shutdown)"));
        let offline = self.nodes[index].offline;
        self.open(index, offline).await;
    }

    /// Heals the network, brings every leader online, and syncs until every leader's head is
    /// the backend's head with nothing pending.
    async fn quiesce(&mut self) {
        self.faults.set_enabled(false);
        self.note("quiesce: faults off".into());
        for index in 0..self.nodes.len() {
            let node = &self.nodes[index];
            if node.store.is_none() {
                self.open(index, false).await;
            } else if node.offline {
                self.restart(index, false).await;
            }
        }
        for round in 0..30 {
            let mut settled = true;
            let mut heads = Vec::new();
            for index in 0..self.nodes.len() {
                let Some(store) = self.nodes[index].store.clone() else {
                    settled = false;
                    continue;
                };
                match tokio::time::timeout(SYNC_LIMIT, store.sync()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        self.note(format!("quiesce round {round}: node {index} sync: {error}"));
                        settled = false;
                    }
                    Err(_) => {
                        self.stats.syncs_timed_out += 1;
                        self.note(format!(
                            "quiesce round {round}: node {index} sync timed out"
                        ));
                        settled = false;
                    }
                }
                match store.status().await {
                    Ok(status) => {
                        if status.pending > 0
                            || Some(status.backend_confirmed_head.global) != status.backend_head
                        {
                            settled = false;
                        }
                        heads.push(status.backend_confirmed_head.global);
                    }
                    Err(error) => {
                        self.note(format!("quiesce: node {index} status: {error}"));
                        settled = false;
                    }
                }
            }
            if settled && heads.windows(2).all(|pair| pair[0] == pair[1]) {
                self.note(format!(
                    "quiesced after {} rounds at e{}",
                    round + 1,
                    heads[0]
                ));
                self.settle_sessions().await;
                return;
            }
        }
        self.violation("the leaders did not quiesce within 30 sync rounds".into());
    }

    /// Waits (virtual time) until every live session has nothing pending and has caught up
    /// with its leader.
    async fn settle_sessions(&mut self) {
        for _ in 0..200 {
            let mut busy = false;
            for node in &self.nodes {
                let Some(store) = &node.store else { continue };
                let Ok(status) = store.status().await else {
                    continue;
                };
                for session in &node.sessions {
                    let own = session.sync_status();
                    if own.pending > 0 || !own.leader_head.same_position(&status.local_head) {
                        busy = true;
                    }
                }
            }
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut lagging = Vec::new();
        for node in &self.nodes {
            let Some(store) = &node.store else { continue };
            let leader = store.status().await.map(|status| status.local_head);
            for (number, session) in node.sessions.iter().enumerate() {
                lagging.push(format!(
                    "node {} session {number}: {:?} (leader at {:?})",
                    node.index,
                    session.sync_status(),
                    leader
                ));
            }
        }
        self.violation(format!(
            "sessions did not catch up with their leaders: {}",
            lagging.join("; ")
        ));
    }
}
