//! [`SegmentLog`]: the sync backend as an append-only log of segments in an object store.
//!
//! Why this shape: an object store has no append and no server-side sequencer, but it does
//! have an atomic create (`PutMode::Create`, `If-None-Match: *` on S3). So a push of events
//! `h+1 ..= h+n` on head `h` creates the object named `h+1`; the key is a function of the
//! parent alone, two writers that saw the same head race for the same key, and exactly one
//! wins. A key, once written, is never deleted, which is what stops a stale writer. Each
//! segment names the digest of the one before it, so the whole log is a hash chain and a
//! reader can prove it read one unbroken history.
//!
//! Object stores retry conditional puts internally and time out with unknown outcomes, so a
//! failed create is *ambiguous*: the push reads the key back and compares the writer nonce
//! inside the segment body (bodies work on every store; metadata does not). Ours = success,
//! missing = create again, another writer's = [`BackendError::ServerAhead`]. Pushes are
//! therefore exactly-once.
//!
//! The tail is found without LIST: a client that knows head `h` GETs key `h+1`; a 404 means
//! it is current. LIST is only for a cold start (and for a pull that starts from a cursor
//! this client has not seen). See `paths.rs` for the keys and `docs/FORMAT.md` for the bytes.
//!
//! Each backend id has its own folder of segments, so a writer that missed a wipe of the
//! store can only write into the dead folder of the old id. Pushes, pulls and tail discovery
//! compare `store.json` with the id they work with and report
//! [`BackendError::BackendIdMismatch`] (see `identity.rs`).

mod bulk;
mod compact;
mod config;
mod identity;
mod index;
mod json_pull;
mod known;
mod pack_read;
mod pull;
mod push;
mod recent;
mod snapshots;

pub use bulk::{BULK_IN_FLIGHT, SegmentBulkLoad};
pub use compact::CompactReport;
pub use config::{MIN_SEGMENT_BYTES, SegmentLogConfig};

use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::paths::{LogPaths, StorePaths};
use crate::requests::{CountingStore, RequestCounts};
use crate::store_id::StoreId;
use crate::{
    BackendError, BackendInfo, Capabilities, Entropy, GlobalEvent, GlobalSeq, PullStream,
    SnapshotContent, SnapshotPrune, SnapshotPut, SnapshotSearch, SyncBackend,
};

use identity::Incarnation;

/// The [`SyncBackend`] over any `Arc<dyn ObjectStore>`: memory, a local folder, S3.
///
/// Cheap to clone (clones share caches). Any number of `SegmentLog`s, in any number of
/// processes, may serve the same store at once; that is the point.
#[derive(Clone)]
pub struct SegmentLog {
    inner: Arc<Inner>,
}

/// What every clone and every pull stream of one `SegmentLog` shares.
struct Inner {
    /// The object store, through the wrapper that counts this log's requests.
    store: Arc<dyn ObjectStore>,
    /// The same wrapper, for reading its counters ([`SyncBackend::requests`]).
    counting: CountingStore,
    paths: StorePaths,
    store_id: StoreId,
    config: SegmentLogConfig,
    /// Kind name for [`BackendInfo`]: `memory`, `file`, `s3`, or `object_store`.
    name: String,
    /// URL for [`BackendInfo`], already free of credentials.
    url: String,
    /// Where writer nonces and a new store's backend id come from.
    entropy: Entropy,
    /// The local folder the store is, when it is one ([`SegmentLog::with_folder`]).
    folder: Option<std::path::PathBuf>,
    /// The incarnation this client works in, once `store.json` was read. A std mutex: held
    /// for a copy only.
    identity: Mutex<Option<Arc<Incarnation>>>,
}

impl Inner {
    /// Whether a LIST of this store hands out keys in ascending order: S3's
    /// `ListObjectsV2` promises it, and the in-memory store keeps its keys sorted; a folder
    /// lists in directory order, and an unnamed store is not assumed to.
    fn lists_in_key_order(&self) -> bool {
        matches!(self.name.as_str(), "s3" | "memory")
    }
}

impl SegmentLog {
    /// A segment log for store `store_id` under `prefix` in `store`.
    ///
    /// Fails with [`BackendError::Invalid`] for a bad store id or config. Nothing is read or
    /// written until the first call; `store.json` is created by whoever comes first.
    /// Several `SegmentLog`s over one `InMemory` act as several clients of one backend, and
    /// each counts its own requests ([`SyncBackend::requests`]).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        store_id: &str,
        config: SegmentLogConfig,
    ) -> Result<SegmentLog, BackendError> {
        let store_id = StoreId::new(store_id)?;
        config.validate()?;
        let url = format!("{store}/{prefix}");
        let counting = CountingStore::new(store);
        Ok(SegmentLog {
            inner: Arc::new(Inner {
                paths: StorePaths::new(&prefix, &store_id),
                store: Arc::new(counting.clone()),
                counting,
                store_id,
                config,
                name: "object_store".into(),
                url,
                entropy: Entropy::from_os(),
                folder: None,
                identity: Mutex::new(None),
            }),
        })
    }

    /// The same log, described in [`BackendInfo`] as `name` at `url` (which must already be
    /// free of credentials; see [`redact_url`](crate::redact::redact_url)).
    pub fn with_description(self, name: &str, url: &str) -> SegmentLog {
        self.rebuilt(|inner| {
            inner.name = name.to_owned();
            inner.url = url.to_owned();
        })
    }

    /// The same log, drawing its writer nonces and a new store's backend id from `entropy`
    /// (default: [`Entropy::from_os`]). A simulation passes a seeded one so that a run can
    /// be replayed byte for byte.
    pub fn with_entropy(self, entropy: Entropy) -> SegmentLog {
        self.rebuilt(|inner| inner.entropy = entropy)
    }

    /// The same log over a store that is the local folder `folder` (an
    /// `object_store::local::LocalFileSystem` rooted there, as `open_backend` makes for a
    /// `file` URL): the listings of its segments and packs read the directory's names
    /// instead of walking it through the store, which looks up every entry's metadata.
    pub fn with_folder(self, folder: std::path::PathBuf) -> SegmentLog {
        self.rebuilt(|inner| inner.folder = Some(folder))
    }

    /// This log with `change` made to its settings. Meant for a log just built: a log that
    /// is already shared (cloned) gets a fresh copy with empty caches (its request counters
    /// stay shared).
    fn rebuilt(self, change: impl FnOnce(&mut Inner)) -> SegmentLog {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            store: shared.store.clone(),
            counting: shared.counting.clone(),
            paths: shared.paths.clone(),
            store_id: shared.store_id.clone(),
            config: shared.config.clone(),
            name: shared.name.clone(),
            url: shared.url.clone(),
            entropy: shared.entropy.clone(),
            folder: shared.folder.clone(),
            identity: Mutex::new(None),
        });
        change(&mut inner);
        SegmentLog {
            inner: Arc::new(inner),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &SegmentLogConfig {
        &self.inner.config
    }

    /// The object keys of its store (`store.json` and the store's folder).
    pub fn paths(&self) -> &StorePaths {
        &self.inner.paths
    }

    /// The object keys of the log this client works in (its segments), which depend on the
    /// backend id: on first contact, `store.json` is read (or created) to learn it.
    pub async fn log_paths(&self) -> Result<LogPaths, BackendError> {
        let (incarnation, _) = self.inner.incarnation().await?;
        Ok(incarnation.paths.clone())
    }
}

impl fmt::Debug for SegmentLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentLog")
            .field("name", &self.inner.name)
            .field("url", &self.inner.url)
            .field("store_id", &self.inner.store_id)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            live_pull: true,
            page_info_known: false,
            max_events_per_push: self.config.max_events_per_segment,
            max_bytes_per_push: self.config.max_bytes_per_segment,
        }
    }
}

/// Passes on what a check of `store.json` proved ([`BackendError::BackendIdMismatch`], or a
/// damaged `store.json`), and lets a check that could not be made (a transient failure) go:
/// the operation it accompanied stands on its own, and the next push, poll or tail discovery
/// checks again.
pub(super) fn definitive(check: Result<(), BackendError>) -> Result<(), BackendError> {
    match check {
        Err(
            error @ (BackendError::BackendIdMismatch { .. }
            | BackendError::Corrupt { .. }
            | BackendError::AccessDenied { .. }),
        ) => Err(error),
        Err(error) => {
            tracing::debug!(%error, "could not check store.json; the next request will");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

#[async_trait::async_trait]
impl SyncBackend for SegmentLog {
    async fn push(&self, batch: Vec<GlobalEvent>) -> Result<(), BackendError> {
        push::push(&self.inner, batch).await
    }

    async fn pull(&self, cursor: GlobalSeq, live: bool) -> Result<PullStream, BackendError> {
        // Know the incarnation first (on first contact, read or create `store.json`), so a
        // misconfigured store fails here and not inside the stream. A cached one is checked
        // by the stream's first read, concurrently with it.
        let (incarnation, just_read) = self.inner.incarnation().await?;
        Ok(pull::pull(
            self.inner.clone(),
            incarnation,
            !just_read,
            cursor,
            live,
        ))
    }

    async fn head(&self) -> Result<GlobalSeq, BackendError> {
        let (incarnation, just_read) = self.inner.incarnation().await?;
        let tail = if just_read {
            self.inner.probe_tail(&incarnation).await?
        } else {
            self.inner.refresh_tail(&incarnation).await?
        };
        Ok(tail.head)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.inner.read_store_json().await.map(drop)
    }

    async fn backend_id(&self) -> Result<String, BackendError> {
        Ok(self.inner.adopt_current().await?.id.to_string())
    }

    async fn exists(&self) -> Result<bool, BackendError> {
        Ok(self.inner.read_store_json().await?.is_some())
    }

    async fn replace_store(&self) -> Result<String, BackendError> {
        Ok(self.inner.replace().await?.id.to_string())
    }

    async fn pack(&self) -> Result<u64, BackendError> {
        Ok(self.compact().await?.written)
    }

    async fn bulk_load(&self) -> Result<Option<Box<dyn crate::BulkLoad>>, BackendError> {
        Ok(Some(Box::new(self.start_bulk_load()?)))
    }

    async fn pull_json(&self) -> Result<Option<crate::JsonLog>, BackendError> {
        let (incarnation, _) = self.inner.incarnation().await?;
        json_pull::pull_json(self.inner.clone(), incarnation)
            .await
            .map(Some)
    }

    fn requests(&self) -> Option<RequestCounts> {
        Some(self.inner.counting.counts())
    }

    async fn put_snapshot(
        &self,
        schema_hash: &str,
        at: GlobalSeq,
        content: SnapshotContent,
    ) -> Result<SnapshotPut, BackendError> {
        self.inner.put_snapshot(schema_hash, at, content).await
    }

    async fn latest_snapshot(
        &self,
        schema_hash: &str,
        before: Option<GlobalSeq>,
    ) -> Result<SnapshotSearch, BackendError> {
        self.inner.latest_snapshot(schema_hash, before).await
    }

    async fn prune_snapshots(&self, keep: u64) -> Result<SnapshotPrune, BackendError> {
        self.inner.prune_snapshots(keep).await
    }

    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: self.inner.name.clone(),
            url: self.inner.url.clone(),
            store_id: self.inner.store_id.to_string(),
            capabilities: self.inner.capabilities(),
        }
    }
}

/// Maps an object store error that is not part of a protocol decision to a
/// [`BackendError`], naming the action and key. object_store's messages hold no
/// credentials.
pub(crate) fn store_error(action: &str, key: &Path, error: object_store::Error) -> BackendError {
    use object_store::Error as E;
    let message = format!("{action} {key}: {error}");
    match error {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            BackendError::AccessDenied { message }
        }
        E::NotImplemented { .. } | E::NotSupported { .. } => BackendError::Invalid {
            message: format!("{message} (this object store cannot serve an event log)"),
        },
        _ => BackendError::Unavailable { message },
    }
}

/// The object at `key`, or `None` when there is none: the one GET-or-absent of the backends,
/// with its errors mapped as [`store_error`] maps them.
pub(crate) async fn get_if_present(
    store: &dyn ObjectStore,
    key: &Path,
) -> Result<Option<Bytes>, BackendError> {
    match store.get(key).await {
        Ok(result) => result
            .bytes()
            .await
            .map(Some)
            .map_err(|e| store_error("reading", key, e)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_error("reading", key, e)),
    }
}

/// A [`BackendError::Corrupt`] for the object at `key`.
pub(crate) fn corrupt(key: &Path, error: impl fmt::Display) -> BackendError {
    BackendError::Corrupt {
        key: key.to_string(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Box<dyn std::error::Error + Send + Sync> {
        "boom".into()
    }

    #[test]
    fn test_store_errors_map_to_what_the_caller_should_do() {
        let key = Path::from("p/s/segments/00000000000000000001.seg");
        let denied = object_store::Error::PermissionDenied {
            path: key.to_string(),
            source: source(),
        };
        assert!(matches!(
            store_error("reading", &key, denied),
            BackendError::AccessDenied { .. }
        ));
        let unauthenticated = object_store::Error::Unauthenticated {
            path: key.to_string(),
            source: source(),
        };
        assert!(matches!(
            store_error("reading", &key, unauthenticated),
            BackendError::AccessDenied { .. }
        ));
        let generic = object_store::Error::Generic {
            store: "S3",
            source: source(),
        };
        match store_error("reading", &key, generic) {
            error @ BackendError::Unavailable { .. } => {
                assert!(error.is_retryable());
                assert!(error.to_string().contains(key.as_ref()), "{error}");
            }
            other => panic!("Generic gave {other:?}"),
        }
        let missing = object_store::Error::NotImplemented {
            operation: "put_opts Create".into(),
            implementer: "X".into(),
        };
        assert!(matches!(
            store_error("creating", &key, missing),
            BackendError::Invalid { .. }
        ));
    }

    #[test]
    fn test_new_refuses_bad_store_ids_and_configs() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        assert!(matches!(
            SegmentLog::new(
                store.clone(),
                Path::default(),
                "../x",
                SegmentLogConfig::default()
            ),
            Err(BackendError::Invalid { .. })
        ));
        let config = SegmentLogConfig {
            page_events: 0,
            ..SegmentLogConfig::default()
        };
        assert!(matches!(
            SegmentLog::new(store, Path::default(), "ok", config),
            Err(BackendError::Invalid { .. })
        ));
    }
}
