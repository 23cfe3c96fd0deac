//! The store facade: [`Store::builder`] opens a store (its leader) and hands out sessions.
//! STUB: signatures fixed, bodies being implemented.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eventsync_backends::{GlobalSeq, SyncBackend};
use serde::Serialize;

use crate::error::Result;
use crate::schema::Schema;
use crate::seq::EventSeq;
use crate::session::ClientSession;

/// What to do when the backend's id differs from the one recorded (the bucket was wiped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBackendIdMismatch {
    /// Drop local data and start over from the new backend (LiveStore's default).
    #[default]
    Reset,
    /// Stop the store with an error; local data is kept.
    Shutdown,
    /// Keep going as if nothing happened.
    Ignore,
}

/// Tuning knobs of a store, with defaults that suit an interactive application.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tuning {
    /// Most events in one backend push (one segment). Larger batches mean fewer PUTs.
    pub push_batch_events: usize,
    /// Most bytes (encoded) in one backend push.
    pub push_batch_bytes: usize,
    /// Fastest live-pull poll, used right after activity. Lower is fresher, more GETs.
    #[serde(with = "crate::config::duration_serde")]
    pub poll_min: Duration,
    /// Slowest live-pull poll, reached after a long idle stretch. One GET per poll.
    #[serde(with = "crate::config::duration_serde")]
    pub poll_max: Duration,
    /// How long a second process waits for the data dir's lock before giving up.
    #[serde(with = "crate::config::duration_serde")]
    pub lock_timeout: Duration,
    /// What to do when the backend's id changed.
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

/// Builds a [`Store`]: schema, backend, store id, data dir, client id, tuning.
pub struct StoreBuilder {
    schema: Arc<Schema>,
    backend: Option<Arc<dyn SyncBackend>>,
    store_id: String,
    data_dir: PathBuf,
    client_id: Option<String>,
    offline: bool,
    tuning: Tuning,
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
    /// Opens the store: takes the data dir's lock, boots the leader, starts syncing.
    pub async fn open(self) -> Result<Store> {
        let _ = (
            &self.schema,
            &self.backend,
            &self.store_id,
            &self.data_dir,
            &self.client_id,
            self.offline,
            &self.tuning,
        );
        unimplemented!("Store::open is being implemented")
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

/// One client's handle on one store: the leader runs behind it.
pub struct Store {
    _private: (),
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
        }
    }
    /// A new client session: an in-memory read model kept in step with the leader.
    pub fn session(&self) -> Result<ClientSession> {
        unimplemented!()
    }
    /// Pushes everything pending and pulls until the backend has nothing newer; returns once
    /// every event committed before the call is confirmed by the backend.
    pub async fn sync(&self) -> Result<()> {
        unimplemented!()
    }
    /// Where the store stands; asks the backend for its head (`None` when unreachable).
    pub async fn status(&self) -> Result<StoreStatus> {
        unimplemented!()
    }
    /// What the leader did so far.
    pub fn stats(&self) -> StoreStats {
        unimplemented!()
    }
    /// This client's id.
    pub fn client_id(&self) -> &str {
        unimplemented!()
    }
    /// The backend this store syncs through.
    pub fn backend(&self) -> Arc<dyn SyncBackend> {
        unimplemented!()
    }
    /// Drains what is queued (pushing it when online), stops the leader, releases the lock.
    pub async fn shutdown(self) -> Result<()> {
        unimplemented!()
    }
}
