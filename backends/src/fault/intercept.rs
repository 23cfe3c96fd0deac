//! [`Intercept`]: the requests a test object store changes about the store it wraps, and
//! [`intercepting_object_store!`](crate::intercepting_object_store), which makes such a type
//! an [`ObjectStore`]. A wrapper writes only the requests it changes; every other request
//! passes through to [`Intercept::inner`] unchanged.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// An object store wrapper's requests, one method per request of [`ObjectStore`]; each
/// default passes the request to [`Intercept::inner`]. A type implements the ones it
/// changes, then `intercepting_object_store!(Type)` implements [`ObjectStore`] through them.
#[async_trait::async_trait]
pub trait Intercept: fmt::Debug + fmt::Display + Send + Sync + 'static {
    /// The wrapped store.
    fn inner(&self) -> &Arc<dyn ObjectStore>;

    /// [`ObjectStore::put_opts`].
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner().put_opts(location, payload, opts).await
    }

    /// [`ObjectStore::put_multipart_opts`].
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner().put_multipart_opts(location, opts).await
    }

    /// [`ObjectStore::get_opts`].
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner().get_opts(location, options).await
    }

    /// [`ObjectStore::get_ranges`].
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner().get_ranges(location, ranges).await
    }

    /// [`ObjectStore::delete_stream`].
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner().delete_stream(locations)
    }

    /// [`ObjectStore::list`].
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner().list(prefix)
    }

    /// [`ObjectStore::list_with_offset`].
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner().list_with_offset(prefix, offset)
    }

    /// [`ObjectStore::list_with_delimiter`].
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner().list_with_delimiter(prefix).await
    }

    /// [`ObjectStore::copy_opts`].
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner().copy_opts(from, to, options).await
    }

    /// [`ObjectStore::rename_opts`].
    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner().rename_opts(from, to, options).await
    }
}

/// Implements [`ObjectStore`] for a type that implements
/// [`Intercept`](crate::fault::Intercept): every request goes to the `Intercept` method of
/// the same name (which passes it through unless the type changes it).
#[macro_export]
macro_rules! intercepting_object_store {
    ($store:ty) => {
        #[$crate::fault::async_trait]
        impl $crate::object_store::ObjectStore for $store {
            async fn put_opts(
                &self,
                location: &$crate::object_store::path::Path,
                payload: $crate::object_store::PutPayload,
                opts: $crate::object_store::PutOptions,
            ) -> $crate::object_store::Result<$crate::object_store::PutResult> {
                <$store as $crate::fault::Intercept>::put_opts(self, location, payload, opts).await
            }

            async fn put_multipart_opts(
                &self,
                location: &$crate::object_store::path::Path,
                opts: $crate::object_store::PutMultipartOptions,
            ) -> $crate::object_store::Result<Box<dyn $crate::object_store::MultipartUpload>> {
                <$store as $crate::fault::Intercept>::put_multipart_opts(self, location, opts).await
            }

            async fn get_opts(
                &self,
                location: &$crate::object_store::path::Path,
                options: $crate::object_store::GetOptions,
            ) -> $crate::object_store::Result<$crate::object_store::GetResult> {
                <$store as $crate::fault::Intercept>::get_opts(self, location, options).await
            }

            async fn get_ranges(
                &self,
                location: &$crate::object_store::path::Path,
                ranges: &[::std::ops::Range<u64>],
            ) -> $crate::object_store::Result<Vec<$crate::fault::Bytes>> {
                <$store as $crate::fault::Intercept>::get_ranges(self, location, ranges).await
            }

            fn delete_stream(
                &self,
                locations: $crate::fault::BoxStream<
                    'static,
                    $crate::object_store::Result<$crate::object_store::path::Path>,
                >,
            ) -> $crate::fault::BoxStream<
                'static,
                $crate::object_store::Result<$crate::object_store::path::Path>,
            > {
                <$store as $crate::fault::Intercept>::delete_stream(self, locations)
            }

            fn list(
                &self,
                prefix: Option<&$crate::object_store::path::Path>,
            ) -> $crate::fault::BoxStream<
                'static,
                $crate::object_store::Result<$crate::object_store::ObjectMeta>,
            > {
                <$store as $crate::fault::Intercept>::list(self, prefix)
            }

            fn list_with_offset(
                &self,
                prefix: Option<&$crate::object_store::path::Path>,
                offset: &$crate::object_store::path::Path,
            ) -> $crate::fault::BoxStream<
                'static,
                $crate::object_store::Result<$crate::object_store::ObjectMeta>,
            > {
                <$store as $crate::fault::Intercept>::list_with_offset(self, prefix, offset)
            }

            async fn list_with_delimiter(
                &self,
                prefix: Option<&$crate::object_store::path::Path>,
            ) -> $crate::object_store::Result<$crate::object_store::ListResult> {
                <$store as $crate::fault::Intercept>::list_with_delimiter(self, prefix).await
            }

            async fn copy_opts(
                &self,
                from: &$crate::object_store::path::Path,
                to: &$crate::object_store::path::Path,
                options: $crate::object_store::CopyOptions,
            ) -> $crate::object_store::Result<()> {
                <$store as $crate::fault::Intercept>::copy_opts(self, from, to, options).await
            }

            async fn rename_opts(
                &self,
                from: &$crate::object_store::path::Path,
                to: &$crate::object_store::path::Path,
                options: $crate::object_store::RenameOptions,
            ) -> $crate::object_store::Result<()> {
                <$store as $crate::fault::Intercept>::rename_opts(self, from, to, options).await
            }
        }
    };
}
