//! The store facade: [`Store::builder`] opens a store (its leader) and hands out sessions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use eventsync_backends::{Entropy, GlobalSeq, SyncBackend};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorKind, Result};
use crate::event::EncodedEvent;
use crate::leader::db::LeaderDb;
use crate::leader::identity::check_at_open;
use crate::leader::lock::lock_dir;
use crate::leader::{BootArgs, Command, Counters, Leader, db_error};
use crate::schema::Schema;
use crate::seq::EventSeq;
use crate::session::ClientSession;

pub use crate::leader::identity::OnBackendIdMismatch;

/// Tuning knobs of a store, with defaults that suit an interactive application.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
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

impl StoreBuilder {
    /// The backend every client of this store syncs through.
    pub fn with_backend(mut self, backend: Arc<dyn SyncBackend>) -> Self {
        self.backend = Some(backend);
        self
    }
    /// The store id (default `default`).
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
    /// [`OnBackendIdMismatch`]); an unreachable backend does not stop the open, the leader
    /// keeps retrying in the background.
    pub async fn open(self) -> Result<Store> {
        eventsync_backends::open::validate_store_id(&self.store_id).map_err(Error::from)?;
        let backend = match (self.offline, self.backend) {
            (true, _) => None,
            (false, Some(backend)) => Some(backend),
            (false, None) => {
                return Err(Error::invalid(
                    "no backend configured: give one, or open the store offline",
                ));
            }
        };
        let dir = self.data_dir.join(&self.store_id);
        std::fs::create_dir_all(&dir).map_err(|error| {
            Error::invalid(format!("cannot create data dir {}: {error}", dir.display()))
        })?;
        let lock = lock_dir(&dir, self.tuning.lock_timeout).await?;
        let client_id = match self.client_id {
            Some(client_id) => {
                eventsync_backends::open::validate_store_id(&client_id).map_err(|_| {
                    Error::invalid(format!(
                        "invalid client id {}: use letters, digits, '-', '_' or '.'",
                        eventsync_backends::open::quote_id(&client_id)
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
            }),
        })
    }
}

/// The file in a data dir that keeps the generated client id.
pub const CLIENT_ID_FILE: &str = "client-id";

/// The client id kept in `{data_dir}/client-id`: read it, or on first use draw one (12
/// letters and digits) from `entropy` and write it there. A store opened without
/// [`StoreBuilder::with_client_id`] uses it, and so does the command line, so both name a
/// data dir's client the same way.
pub fn kept_client_id(data_dir: &Path, entropy: &Entropy) -> Result<String> {
    let path = data_dir.join(CLIENT_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_owned();
            eventsync_backends::open::validate_store_id(&id).map_err(|_| {
                Error::invalid(format!(
                    "{}: invalid client id {}",
                    path.display(),
                    eventsync_backends::open::quote_id(&id)
                ))
            })?;
            Ok(id)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = entropy.alphanumeric(12);
            std::fs::write(&path, format!("{id}\n")).map_err(|error| {
                Error::invalid(format!("cannot write {}: {error}", path.display()))
            })?;
            Ok(id)
        }
        Err(error) => Err(Error::invalid(format!(
            "cannot read {}: {error}",
            path.display()
        ))),
    }
}

/// Counters of what a store's leader did, for reports such as `demo`'s table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Events committed by this client's sessions.
    pub committed: u64,
    /// Segments this leader wrote to the backend.
    pub pushes: u64,
    /// Pushes refused because another client got there first.
    pub server_ahead: u64,
    /// Times this leader rolled back pending events and replayed them on a new head.
    pub rebases: u64,
    /// Events pulled from the backend.
    pub pulled: u64,
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
    /// The backend's head, when it was reachable.
    pub backend_head: Option<GlobalSeq>,
}

/// One client's handle on one store: the leader runs behind it. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    schema: Arc<Schema>,
    store_id: String,
    client_id: String,
    backend: Option<Arc<dyn SyncBackend>>,
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Session ids come from it.
    entropy: Entropy,
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
            backend_confirmed_head: EventSeq::global(leader.backend_head.0),
            pending: leader.leader_pending,
            backend_head,
        })
    }

    /// Every event of this leader's eventlog, ascending (client-only events included).
    pub async fn eventlog(&self) -> Result<Vec<EncodedEvent>> {
        self.ask(|reply| Command::Events { reply }).await?
    }

    /// Runs a read query on the leader's state tables; rows as JSON objects. For audits and
    /// tests: applications read through sessions. Refuses, like [`ClientSession::query`],
    /// anything but one statement that reads: a write here would change `state.db` behind
    /// the eventlog.
    pub async fn query_leader(&self, sql: &str) -> Result<Vec<serde_json::Value>> {
        let sql = sql.to_owned();
        self.ask(|reply| Command::Query { sql, reply }).await?
    }

    /// What the leader did so far.
    pub fn stats(&self) -> StoreStats {
        self.inner.counters.snapshot()
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
    /// lock is released when the leader has stopped.
    pub async fn shutdown(self) -> Result<()> {
        // Give sessions a moment to get their last commits admitted (a session whose push
        // was refused re-pushes it after catching up), as LiveStore's shutdown drain does.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let counters = &self.inner.counters;
        while counters.admitted.load(Ordering::Relaxed) < counters.committed.load(Ordering::Relaxed)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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
            task.await
                .map_err(|error| Error::internal(format!("leader task: {error}")))?;
        }
        Ok(())
    }

    /// Stops the leader at once, as if the process had been killed: nothing queued is
    /// processed or drained, the leader's task is cancelled at whatever it was awaiting, and
    /// its files stay as they are. A push already sent may still land. For crash tests and
    /// simulations; applications call [`shutdown`](Self::shutdown).
    pub async fn abort(self) {
        if let Some(task) = self.inner.task.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the store is closed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_kept_client_id_is_made_once_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let first = kept_client_id(dir.path(), &Entropy::seeded(1)).unwrap();
        assert_eq!(first.len(), 12);
        // Another draw would give another id: the kept one wins.
        let second = kept_client_id(dir.path(), &Entropy::seeded(2)).unwrap();
        assert_eq!(first, second);
        let kept = std::fs::read_to_string(dir.path().join("client-id")).unwrap();
        assert_eq!(kept.trim(), first);
    }

    #[test]
    fn test_kept_client_id_refuses_an_unsafe_id_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-id"), "../escape\n").unwrap();
        let error = kept_client_id(dir.path(), &Entropy::seeded(1)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert!(error.to_string().contains("client-id"), "{error}");
        assert!(error.to_string().contains("../escape"), "{error}");
    }
}
