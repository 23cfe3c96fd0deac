//! [`FaultStore`]: an object store wrapper that misbehaves on purpose, for tests.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// One way a conditional create (`PutMode::Create`) can go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateFault {
    /// The write lands, then the reply is lost: the caller gets a `Generic` error (a timeout).
    LoseReply,
    /// The write lands, the reply is lost, object_store retries and gets `AlreadyExists`.
    ExistsAfterWrite,
    /// The request fails before anything is written, with a `Generic` error.
    FailBeforeWrite,
}

/// Wraps a store; forwards everything, except that queued [`CreateFault`]s hit the next
/// creates, and (when built with [`FaultStore::ignoring_create`]) creates overwrite, like an
/// S3 server that ignores `If-None-Match: *`.
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    ignore_create: bool,
    faults: Mutex<VecDeque<CreateFault>>,
}

impl FaultStore {
    /// A faithful wrapper until faults are queued.
    pub fn new(inner: Arc<dyn ObjectStore>) -> FaultStore {
        FaultStore {
            inner,
            ignore_create: false,
            faults: Mutex::new(VecDeque::new()),
        }
    }

    /// A wrapper that turns every `Create` into an `Overwrite`: a broken store.
    pub fn ignoring_create(inner: Arc<dyn ObjectStore>) -> FaultStore {
        FaultStore {
            ignore_create: true,
            ..FaultStore::new(inner)
        }
    }

    /// Queues `fault` for the next create that has no fault yet.
    pub fn inject(&self, fault: CreateFault) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(fault);
    }

    /// Faults queued and not yet used.
    pub fn pending_faults(&self) -> usize {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn next_fault(&self) -> Option<CreateFault> {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

fn generic(message: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: message.to_owned().into(),
    }
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultStore")
            .field("inner", &self.inner.to_string())
            .field("ignore_create", &self.ignore_create)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> Result<PutResult> {
        if !matches!(opts.mode, PutMode::Create) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        if self.ignore_create {
            opts.mode = PutMode::Overwrite;
            return self.inner.put_opts(location, payload, opts).await;
        }
        match self.next_fault() {
            None => self.inner.put_opts(location, payload, opts).await,
            Some(CreateFault::FailBeforeWrite) => Err(generic("injected failure before write")),
            Some(CreateFault::LoseReply) => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(generic("injected timeout after the write landed"))
            }
            Some(CreateFault::ExistsAfterWrite) => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "injected: a retried create found its own write".into(),
                })
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
