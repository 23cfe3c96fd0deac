//! [`RequestCounts`]: how many requests of each kind a backend made of its object store, and
//! [`CountingStore`], the object store wrapper that counts them.
//!
//! Why: an object store bills per request (S3 Standard: $0.005 per 1,000 PUTs or LISTs,
//! $0.0004 per 1,000 GETs), and a sync protocol's waste shows up as requests: a poll that
//! costs two GETs, a lost race that re-reads the log. The counters are what the tests assert
//! ("an idle live pull makes one request per poll") and what `eventsync bench` divides by
//! events. They are relaxed atomics: a few nanoseconds per request.
//!
//! What is counted is the calls made on the object store, not HTTP requests: object_store's
//! own retries, the pages of a long LIST and the parts of a multipart upload are not seen
//! (a segment log makes no multipart uploads, and its LISTs are cold-start only).

use std::fmt;
use std::ops::{AddAssign, Range, Sub};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use serde::{Deserialize, Serialize};

/// How many requests of each kind were made: a snapshot of a [`CountingStore`]'s counters.
/// Subtract two snapshots for the requests made in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Writes: puts (conditional or not), multipart uploads started, copies and renames.
    pub puts: u64,
    /// Reads of an object's bytes (`get_opts`, each call of `get_ranges`).
    pub gets: u64,
    /// Reads of an object's metadata only (`head`).
    pub heads: u64,
    /// Listings (`list`, `list_with_offset`, `list_with_delimiter`), one per call.
    pub lists: u64,
    /// Objects deleted (each key of `delete_stream`, and the source of a rename).
    pub deletes: u64,
}

impl RequestCounts {
    /// Every request, whatever its kind.
    pub fn total(&self) -> u64 {
        self.puts + self.gets + self.heads + self.lists + self.deletes
    }
}

impl AddAssign<&RequestCounts> for RequestCounts {
    /// Adds every counter: the requests of several backends, or of several runs.
    fn add_assign(&mut self, other: &RequestCounts) {
        let RequestCounts {
            puts,
            gets,
            heads,
            lists,
            deletes,
        } = other;
        self.puts += puts;
        self.gets += gets;
        self.heads += heads;
        self.lists += lists;
        self.deletes += deletes;
    }
}

impl Sub for RequestCounts {
    type Output = RequestCounts;

    /// The requests made between two snapshots (`later - earlier`; saturating, so a
    /// snapshot of another store never underflows).
    fn sub(self, earlier: RequestCounts) -> RequestCounts {
        RequestCounts {
            puts: self.puts.saturating_sub(earlier.puts),
            gets: self.gets.saturating_sub(earlier.gets),
            heads: self.heads.saturating_sub(earlier.heads),
            lists: self.lists.saturating_sub(earlier.lists),
            deletes: self.deletes.saturating_sub(earlier.deletes),
        }
    }
}

/// The live counters behind [`RequestCounts`], shared by a [`CountingStore`] and whoever
/// reads them.
#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    gets: AtomicU64,
    heads: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// An object store that counts the requests made through it, by kind, and passes each on
/// unchanged to the store it wraps. Clones share their counters.
#[derive(Clone)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
}

impl CountingStore {
    /// Counts the requests made of `inner` through this wrapper, from zero.
    pub fn new(inner: Arc<dyn ObjectStore>) -> CountingStore {
        CountingStore {
            inner,
            counters: Arc::default(),
        }
    }

    /// Counts a listing made of the wrapped store's folder directly (a local folder's
    /// directory read), as one LIST.
    pub(crate) fn count_list(&self) {
        bump(&self.counters.lists, 1);
    }

    /// The requests made so far.
    pub fn counts(&self) -> RequestCounts {
        let c = &self.counters;
        RequestCounts {
            puts: c.puts.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            heads: c.heads.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingStore")
            .field("inner", &self.inner.to_string())
            .field("counts", &self.counts())
            .finish()
    }
}

impl fmt::Display for CountingStore {
    /// The wrapped store's own description: the wrapper is invisible in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        bump(&self.counters.puts, 1);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        bump(&self.counters.puts, 1);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let counter = if options.head {
            &self.counters.heads
        } else {
            &self.counters.gets
        };
        bump(counter, 1);
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        bump(&self.counters.gets, 1);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let counters = self.counters.clone();
        let counted = locations
            .inspect(move |location| {
                if location.is_ok() {
                    bump(&counters.deletes, 1);
                }
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        bump(&self.counters.lists, 1);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        bump(&self.counters.lists, 1);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        bump(&self.counters.lists, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        bump(&self.counters.puts, 1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        bump(&self.counters.puts, 1);
        bump(&self.counters.deletes, 1);
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutMode};

    use super::*;

    #[tokio::test]
    async fn test_each_kind_of_request_is_counted_once() {
        let store = CountingStore::new(Arc::new(InMemory::new()));
        let a = Path::from("a");
        store
            .put_opts(&a, PutPayload::from_static(b"x"), PutMode::Create.into())
            .await
            .unwrap();
        // A refused create is a request all the same.
        assert!(
            store
                .put_opts(&a, PutPayload::from_static(b"y"), PutMode::Create.into())
                .await
                .is_err()
        );
        store.get(&a).await.unwrap().bytes().await.unwrap();
        assert!(store.get(&Path::from("missing")).await.is_err());
        store.head(&a).await.unwrap();
        let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
        assert_eq!(listed.len(), 1);
        store.copy(&a, &Path::from("b")).await.unwrap();
        store.delete(&Path::from("b")).await.unwrap();
        assert_eq!(
            store.counts(),
            RequestCounts {
                puts: 3,
                gets: 2,
                heads: 1,
                lists: 1,
                deletes: 1,
            }
        );
        assert_eq!(store.counts().total(), 8);
        // Clones share the counters; a difference of snapshots is what happened between.
        let before = store.counts();
        store.clone().get(&a).await.unwrap();
        let between = store.counts() - before;
        assert_eq!(
            between,
            RequestCounts {
                gets: 1,
                ..RequestCounts::default()
            }
        );
        let mut sum = between;
        sum += &between;
        assert_eq!(sum.gets, 2);
        assert_eq!(store.to_string(), InMemory::new().to_string());
    }
}
