//! The store facade: [`Store::builder`] opens a store (its leader) and hands out sessions.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use eventsync_backends::{
    Entropy, GlobalSeq, RefusedSnapshot, SnapshotPrune, SnapshotPut, StoreId, SyncBackend,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::data_dir::{StoreDir, kept_client_id};
use crate::error::{Error, ErrorKind, Result};
use crate::event::EncodedEvent;
use crate::leader::db::LeaderDb;
use crate::leader::identity::check_at_open;
use crate::leader::{BootArgs, Command, Counters, Leader, LeaderTask, StoreStats, db_error};
use crate::schema::Schema;
use crate::seq::EventSeq;
use crate::session::ClientSession;
use crate::snapshot::SnapshotBoot;

use crate::settings::Tuning;

/// Builds a [`Store`]: schema, backend, store id, data dir, client id, tuning, entropy.
pub struct StoreBuilder {
    schema: Arc<Schema>,
    backend: Option<Arc<dyn SyncBackend>>,
    store_id: String,
    data_dir: PathBuf,
    client_id: Option<String>,
    offline: bool,
    tuning: Tuning,
    entropy: Entropy,
}

/// Shows the settings, not the schema's materializers; the backend as its own `Debug` (which
/// never shows credentials).
impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("backend", &self.backend)
            .field("store_id", &self.store_id)
            .field("data_dir", &self.data_dir)
            .field("client_id", &self.client_id)
            .field("offline", &self.offline)
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

impl StoreBuilder {
    /// The backend every client of this store syncs through.
    pub fn with_backend(mut self, backend: Arc<dyn SyncBackend>) -> Self {
        self.backend = Some(backend);
        self
    }
    /// The store id (default `default`). Checked as a [`StoreId`] when the store opens: an
    /// id that is not one safe key segment and folder name fails `open` with `Invalid`.
    pub fn with_store_id(mut self, store_id: impl Into<String>) -> Self {
        self.store_id = store_id.into();
        self
    }
    /// Where the leader keeps its files (default `./.eventsync`).
    pub fn with_data_dir(mut self, data_dir: impl Into<PathBuf>) -> Self {
        self.data_dir = data_dir.into();
        self
    }
    /// This client's id (default: generated once per data dir and kept).
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }
    /// Open without syncing: commits stay pending until a later online open syncs them.
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }
    /// Tuning knobs.
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }
    /// Where the store draws a new client id, session ids and retry jitter from (default:
    /// [`Entropy::from_os`]). A simulation passes [`Entropy::seeded`] so that a seed replays
    /// the same run; give the backend (`SegmentLog::with_entropy`) one too.
    pub fn with_entropy(mut self, entropy: Entropy) -> Self {
        self.entropy = entropy;
        self
    }
    /// Opens the store: takes the data dir's lock, boots the leader, starts syncing.
    ///
    /// Files live in `{data_dir}/{store_id}/` (`eventlog.db`, `state.db`, `lock`). When
    /// online, the backend's id is checked against the recorded one first (see
    /// [`OnBackendIdMismatch`](crate::OnBackendIdMismatch)); an unreachable backend does not stop the open, the leader
    /// keeps retrying in the background.
    pub async fn open(self) -> Result<Store> {
        let store_id = StoreId::new(self.store_id.as_str()).map_err(Error::from)?;
        let backend = match (self.offline, self.backend) {
            (true, _) => None,
            (false, Some(backend)) => Some(backend),
            (false, None) => {
                return Err(Error::invalid(
                    "no backend configured: give one, or open the store offline",
                ));
            }
        };
        let dir = StoreDir::new(&self.data_dir, &store_id);
        dir.create()?;
        let lock = dir.lock(self.tuning.lock_timeout).await?;
        let client_id = match self.client_id {
            Some(client_id) => {
                eventsync_backends::store_id::validate_store_id(&client_id).map_err(|_| {
                    Error::invalid(format!(
                        "invalid client id {}: use letters, digits, '-', '_' or '.'",
                        eventsync_backends::store_id::quote_id(&client_id)
                    ))
                })?;
                client_id
            }
            None => kept_client_id(&self.data_dir, &self.entropy)?,
        };
        let mut db = LeaderDb::open(&dir, &self.schema).map_err(db_error)?;
        let at_open = check_at_open(
            &mut db,
            &self.schema,
            self.tuning.on_backend_id_mismatch,
            backend.as_ref(),
        )
        .await?;
        let snapshot_boot = match &backend {
            Some(backend)
                if self.tuning.boot_from_snapshot && db.is_empty().map_err(db_error)? =>
            {
                boot_from_snapshot(&mut db, &self.schema, backend.as_ref()).await
            }
            _ => SnapshotBoot::NotTried,
        };
        let counters = Arc::new(Counters::default());
        let (commands, task) = Leader::boot(BootArgs {
            schema: self.schema.clone(),
            db,
            backend: backend.clone(),
            at_open,
            counters: counters.clone(),
            tuning: self.tuning,
            lock,
            entropy: self.entropy.fork(),
            client_id: client_id.clone(),
        })?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                schema: self.schema,
                store_id: self.store_id,
                client_id,
                backend,
                commands,
                counters,
                task: tokio::sync::Mutex::new(Some(task)),
                entropy: self.entropy,
                snapshot_boot,
            }),
        })
    }
}

/// Where a store stands, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// The store id.
    pub store_id: String,
    /// This client's id.
    pub client_id: String,
    /// The leader's last event.
    pub local_head: EventSeq,
    /// The last event the backend confirmed to this leader.
    pub backend_confirmed_head: EventSeq,
    /// Events committed here that the backend has not confirmed yet.
    pub pending: usize,
    /// The backend head: the last event of the backend's log, read by this call (`None`
    /// when the backend was unreachable). It can be ahead of `backend_confirmed_head`.
    pub backend_head: Option<GlobalSeq>,
}

/// One client's handle on one store: the leader runs behind it. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("store_id", &self.inner.store_id)
            .field("client_id", &self.inner.client_id)
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

struct StoreInner {
    schema: Arc<Schema>,
    store_id: String,
    client_id: String,
    backend: Option<Arc<dyn SyncBackend>>,
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    task: tokio::sync::Mutex<Option<LeaderTask>>,
    /// Session ids come from it.
    entropy: Entropy,
    /// How the opening used the snapshots in the bucket.
    snapshot_boot: SnapshotBoot,
}

impl Store {
    /// Starts building a store with this schema.
    pub fn builder(schema: Arc<Schema>) -> StoreBuilder {
        StoreBuilder {
            schema,
            backend: None,
            store_id: "default".into(),
            data_dir: PathBuf::from(".eventsync"),
            client_id: None,
            offline: false,
            tuning: Tuning::default(),
            entropy: Entropy::from_os(),
        }
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(command(reply))
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())
    }

    /// A new client session: an in-memory read model kept in step with the leader.
    pub async fn session(&self) -> Result<ClientSession> {
        let seed = self.ask(|reply| Command::OpenSession { reply }).await??;
        Ok(ClientSession::start(
            seed,
            self.inner.schema.clone(),
            self.inner.client_id.clone(),
            self.inner.commands.clone(),
            self.inner.counters.clone(),
            &self.inner.entropy,
        ))
    }

    /// Pushes everything pending and pulls until the backend has nothing newer; returns once
    /// every event committed before the call is confirmed by the backend. Fails at the first
    /// backend error (the leader keeps retrying in the background) or when offline.
    pub async fn sync(&self) -> Result<()> {
        let committed = self.inner.counters.committed.load(Ordering::Relaxed);
        self.ask(|reply| Command::Sync { committed, reply }).await?
    }

    /// Where the store stands; asks the backend for its head (`None` when unreachable).
    pub async fn status(&self) -> Result<StoreStatus> {
        let leader = self.ask(|reply| Command::Status { reply }).await?;
        let backend_head = match &self.inner.backend {
            Some(backend) => backend.head().await.ok(),
            None => None,
        };
        Ok(StoreStatus {
            store_id: self.inner.store_id.clone(),
            client_id: self.inner.client_id.clone(),
            local_head: leader.leader_head,
            backend_confirmed_head: EventSeq::from(leader.confirmed_head),
            pending: leader.leader_pending,
            backend_head,
        })
    }

    /// Writes a snapshot of the state at the backend-confirmed head to the backend (created
    /// once per schema and event: when another client wrote that one first, `created` is
    /// false and nothing is written). Fails with `Invalid` offline or before the backend
    /// confirmed any event.
    pub async fn snapshot(&self) -> Result<SnapshotPut> {
        let Some(backend) = self.inner.backend.clone() else {
            return Err(Error::invalid(
                "a snapshot needs a backend: the store is offline",
            ));
        };
        let (at, dump) = self.ask(|reply| Command::DumpConfirmed { reply }).await??;
        if at == GlobalSeq::ZERO {
            return Err(Error::invalid(
                "nothing to snapshot: the backend confirmed no event of this store yet",
            ));
        }
        Ok(crate::snapshot::write(
            &*backend,
            self.inner.schema.clone(),
            at,
            dump,
            &self.inner.client_id,
        )
        .await?)
    }

    /// Deletes the snapshots in the backend but the newest `keep` (at least 1) of each
    /// schema hash, and says which it kept and deleted (see
    /// [`SyncBackend::prune_snapshots`]; a leader does it by itself after each snapshot it
    /// writes, with [`Tuning::snapshot_keep`]). Fails with `Invalid` offline or for `keep` 0.
    pub async fn prune_snapshots(&self, keep: u64) -> Result<SnapshotPrune> {
        let Some(backend) = self.inner.backend.clone() else {
            return Err(Error::invalid(
                "pruning snapshots needs a backend: the store is offline",
            ));
        };
        Ok(backend.prune_snapshots(keep).await?)
    }

    /// How this store's opening used the snapshots in the bucket.
    pub fn snapshot_boot(&self) -> &SnapshotBoot {
        &self.inner.snapshot_boot
    }

    /// Every event of this leader's eventlog, ascending (client-only events included).
    ///
    /// For tests and audits, hidden from the docs: not a stable API. (Hidden rather than
    /// behind a `testing` feature: the crate's own integration tests use it, and a package
    /// cannot enable its own feature for its tests without making `cargo test` skip them.)
    #[doc(hidden)]
    pub async fn eventlog(&self) -> Result<Vec<EncodedEvent>> {
        self.ask(|reply| Command::Events { reply }).await?
    }

    /// Runs a read query on the leader's state tables; rows as JSON objects. For audits and
    /// tests: applications read through sessions. Refuses, like [`ClientSession::query`],
    /// anything but one statement that reads: a write here would change `state.db` behind
    /// the eventlog. Hidden from the docs like [`Store::eventlog`]: not a stable API.
    #[doc(hidden)]
    pub async fn query_leader(&self, sql: &str) -> Result<Vec<serde_json::Value>> {
        let sql = sql.to_owned();
        self.ask(|reply| Command::Query { sql, reply }).await?
    }

    /// What the leader did so far, and the requests its backend made.
    pub fn stats(&self) -> StoreStats {
        let mut stats = self.inner.counters.snapshot();
        stats.requests = self
            .inner
            .backend
            .as_ref()
            .and_then(|backend| backend.requests());
        stats
    }

    /// This client's id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The store id.
    pub fn store_id(&self) -> &str {
        &self.inner.store_id
    }

    /// The backend this store syncs through (`None` when opened offline).
    pub fn backend(&self) -> Option<Arc<dyn SyncBackend>> {
        self.inner.backend.clone()
    }

    /// Persists what sessions have queued, stops the leader and waits for it; the data dir's
    /// lock is released when the leader has stopped. The leader first waits, a bounded time,
    /// until every event committed by a session is admitted (a session whose push was
    /// refused re-pushes it after catching up), as LiveStore's shutdown drain does, and
    /// until the push to the backend in flight has its answer (within the same bound; no new
    /// push starts): a push whose answer nobody took would leave its events pending, to be
    /// pushed again.
    pub async fn shutdown(self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Shutdown { reply })
            .is_ok()
        {
            let _ = answer.await;
        }
        if let Some(task) = self.inner.task.lock().await.take() {
            task.join().await?;
        }
        Ok(())
    }

    /// Stops the leader at once, as if the process had been killed: nothing queued is
    /// processed or drained, the leader's task is cancelled at whatever it was awaiting, and
    /// its files stay as they are. A push already sent may still land. For crash tests and
    /// simulations; applications call [`shutdown`](Self::shutdown). Hidden from the docs
    /// like [`Store::eventlog`]: not a stable API.
    #[doc(hidden)]
    pub async fn abort(self) {
        if let Some(task) = self.inner.task.lock().await.take() {
            task.abort().await;
        }
    }
}

/// Starts an empty store from the newest good snapshot of its schema, when there is one
/// (see [`SnapshotBoot`]): a snapshot the backend refuses, or whose state does not load, is
/// named (a warning, and in the outcome) and the next older one is tried; with none left,
/// the store stays empty, to replay the log.
async fn boot_from_snapshot(
    db: &mut LeaderDb,
    schema: &Schema,
    backend: &dyn SyncBackend,
) -> SnapshotBoot {
    let mut refused = Vec::new();
    let mut before = None;
    loop {
        let search = match backend.latest_snapshot(&schema.hash(), before).await {
            Ok(search) => search,
            Err(error) => {
                // An unreachable backend is the sync's to report (once, as its error); only
                // another kind of failure is worth a warning of its own here.
                if error.is_retryable() {
                    tracing::debug!(%error, "could not look for a snapshot; replaying the log instead");
                } else {
                    tracing::warn!(%error, "could not look for a snapshot; replaying the log instead");
                }
                return SnapshotBoot::Unavailable {
                    message: error.to_string(),
                };
            }
        };
        refused.extend(search.refused);
        let Some(found) = search.found else {
            if refused.is_empty() {
                return SnapshotBoot::NoneFound;
            }
            tracing::warn!(
                refused = refused.len(),
                "no snapshot of this schema could be used; replaying the log instead"
            );
            return SnapshotBoot::Refused { refused };
        };
        let snapshot = &found.snapshot;
        let loaded = if snapshot.version == 1 {
            crate::snapshot::decompress(
                &snapshot.body,
                snapshot.content_len,
                &snapshot.content_hash,
            )
            .map_err(|error| error.to_string())
            .and_then(|dump| {
                db.load_snapshot(schema, snapshot.at, &dump.bytes)
                    .map_err(|error| error.to_string())
            })
        } else {
            crate::snapshot::image::decode(&snapshot.body)
                .map_err(|error| error.to_string())
                .and_then(|image| {
                    db.load_snapshot_image(schema, snapshot.at, &image)
                        .map_err(|error| error.to_string())
                })
        };
        match loaded {
            Ok(()) => {
                tracing::info!(key = %found.key, at = %snapshot.at, "started from a snapshot");
                return SnapshotBoot::Loaded {
                    key: found.key,
                    at: snapshot.at.0,
                    refused,
                };
            }
            Err(message) => {
                tracing::warn!(key = %found.key, %message, "refused a snapshot; trying an older one");
                before = Some(snapshot.at);
                refused.push(RefusedSnapshot {
                    key: found.key,
                    message,
                });
            }
        }
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the store is closed")
}
