//! [`RecordingStore`]: a store that records the requests made through it, for tests that
//! assert how many objects a reader fetched and how it listed them.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetResult, ListResult, ObjectMeta, ObjectStore, Result};

/// One LIST made through a [`RecordingStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The prefix listed.
    pub prefix: String,
    /// The key the listing started after, for `list_with_offset`; `None` for a full listing.
    pub offset: Option<String>,
}

#[derive(Debug, Default)]
struct Requests {
    /// Keys of GETs that found an object, in the order they were asked.
    fetched: Vec<String>,
    /// GETs that found nothing.
    missed: u64,
    listings: Vec<Listing>,
}

/// Wraps a store; forwards everything and records the GETs (the keys of those that found an
/// object) and the LISTs.
pub struct RecordingStore {
    inner: Arc<dyn ObjectStore>,
    requests: Mutex<Requests>,
}

impl RecordingStore {
    /// A counting wrapper of `inner`, with nothing recorded yet.
    pub fn new(inner: Arc<dyn ObjectStore>) -> RecordingStore {
        RecordingStore {
            inner,
            requests: Mutex::default(),
        }
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keys of the objects fetched (GETs that found one) since the last reset.
    pub fn fetched(&self) -> Vec<String> {
        self.requests().fetched.clone()
    }

    /// How many GETs found no object since the last reset.
    pub fn missed(&self) -> u64 {
        self.requests().missed
    }

    /// The LISTs made since the last reset.
    pub fn listings(&self) -> Vec<Listing> {
        self.requests().listings.clone()
    }

    /// Forgets what was recorded.
    pub fn reset(&self) {
        *self.requests() = Requests::default();
    }

    fn listed(&self, prefix: Option<&Path>, offset: Option<&Path>) {
        self.requests().listings.push(Listing {
            prefix: prefix.map(|p| p.to_string()).unwrap_or_default(),
            offset: offset.map(|o| o.to_string()),
        });
    }
}

impl fmt::Debug for RecordingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingStore")
            .field("inner", &self.inner.to_string())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for RecordingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl super::Intercept for RecordingStore {
    fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let result = self.inner.get_opts(location, options).await;
        match &result {
            Ok(_) => self.requests().fetched.push(location.to_string()),
            Err(object_store::Error::NotFound { .. }) => self.requests().missed += 1,
            Err(_) => {}
        }
        result
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let result = self.inner.get_ranges(location, ranges).await;
        if result.is_ok() {
            self.requests().fetched.push(location.to_string());
        }
        result
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.listed(prefix, None);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.listed(prefix, Some(offset));
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.listed(prefix, None);
        self.inner.list_with_delimiter(prefix).await
    }
}

crate::intercepting_object_store!(RecordingStore);
