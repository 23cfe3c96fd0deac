//! [`VanishingStore`]: a store that deletes snapshots right after a LIST returned them, as a
//! prune that runs between a reader's LIST and its GET would.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, Result};

/// Wraps a store and forwards everything; once armed ([`VanishingStore::arm`]) with `n`,
/// the next LIST that returns snapshot keys (`.snap`) deletes the `n` greatest of them (the
/// newest, within a schema) before it hands the listing over, and puts back the object
/// given to [`VanishingStore::arm_replacing`] (a newer snapshot another client wrote meanwhile).
pub struct VanishingStore {
    inner: Arc<dyn ObjectStore>,
    armed: Arc<AtomicUsize>,
    put_back: Arc<Mutex<Option<(Path, Bytes)>>>,
}

impl VanishingStore {
    /// A wrapper of `inner`, not armed.
    pub fn new(inner: Arc<dyn ObjectStore>) -> VanishingStore {
        VanishingStore {
            inner,
            armed: Arc::default(),
            put_back: Arc::default(),
        }
    }

    /// [`arm`](VanishingStore::arm), and once the listed snapshots are deleted, writes
    /// `bytes` at `key`, which the listing did not hold.
    pub fn arm_replacing(&self, newest: usize, key: Path, bytes: Bytes) {
        *self.put_back.lock().unwrap_or_else(PoisonError::into_inner) = Some((key, bytes));
        self.arm(newest);
    }

    /// The next LIST that returns snapshots deletes the `newest` greatest of them.
    pub fn arm(&self, newest: usize) {
        self.armed.store(newest, Ordering::SeqCst);
    }

    /// Whether the armed deletion has happened.
    pub fn fired(&self) -> bool {
        self.armed.load(Ordering::SeqCst) == 0
    }

    fn vanishing(
        &self,
        listing: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let (inner, armed) = (self.inner.clone(), self.armed.clone());
        let put_back = self.put_back.clone();
        futures::stream::once(async move {
            let metas: Vec<ObjectMeta> = match listing.try_collect().await {
                Ok(metas) => metas,
                Err(error) => return futures::stream::iter(vec![Err(error)]),
            };
            let mut snapshots: Vec<&Path> = metas
                .iter()
                .map(|meta| &meta.location)
                .filter(|key| key.as_ref().ends_with(".snap"))
                .collect();
            if !snapshots.is_empty() {
                let newest = armed.swap(0, Ordering::SeqCst);
                snapshots.sort();
                for key in snapshots.iter().rev().take(newest) {
                    inner.delete(key).await.expect("the snapshot deletes");
                }
                let replacement = put_back
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some((key, bytes)) = replacement.filter(|_| newest > 0) {
                    inner
                        .put(&key, PutPayload::from(bytes))
                        .await
                        .expect("the replacement is written");
                }
            }
            futures::stream::iter(metas.into_iter().map(Ok).collect::<Vec<_>>())
        })
        .flatten()
        .boxed()
    }
}

impl fmt::Debug for VanishingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VanishingStore").finish_non_exhaustive()
    }
}

impl fmt::Display for VanishingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VanishingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl eventsync_backends::fault::Intercept for VanishingStore {
    fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.vanishing(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.vanishing(self.inner.list_with_offset(prefix, offset))
    }
}

eventsync_backends::intercepting_object_store!(VanishingStore);
