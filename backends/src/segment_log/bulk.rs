//! [`SegmentLog`]'s [`BulkLoad`]: a whole log written into a new incarnation that
//! `store.json` does not name yet, several segment creates in flight, then published.
//!
//! Several creates in flight are safe only where no other writer can be: a writer that saw
//! one of our segments could otherwise create the key after it first, and a segment of ours
//! further on would then not chain onto the log (a broken chain, or a stray key past the
//! head that readers take for a gap). Nobody knows an unpublished backend id, so nobody
//! writes under it. Each segment chains onto the one before (encoded here, in order, with
//! its own nonce); the keys are created with `If-None-Match: *`, and an ambiguous answer is
//! settled by reading the object back and comparing its bytes.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use object_store::path::Path;
use object_store::{PutMode, PutPayload};
use tokio::task::JoinHandle;

use super::identity::Incarnation;
use super::known::SegmentMeta;
use super::push::{batch_too_large, check_size, validate};
use super::{Inner, SegmentLog, get_if_present, store_error};
use crate::segment::{
    self, EncodedSegment, FramedEvents, SegmentDigest, SegmentWriter, WriterNonce,
};
use crate::{BackendError, BulkLoad, GlobalEvent, GlobalSeq};

/// Segment creates a bulk load keeps in flight. Each holds one segment (up to
/// `max-bytes-per-segment`, 4 MiB by default) in memory until it is written.
pub const BULK_IN_FLIGHT: usize = 8;

impl SegmentLog {
    /// Starts a [`BulkLoad`] into a new, unpublished incarnation of this store.
    pub fn start_bulk_load(&self) -> Result<SegmentBulkLoad, BackendError> {
        let (log, body) = self.inner.unpublished()?;
        Ok(SegmentBulkLoad {
            inner: self.inner.clone(),
            log,
            body,
            head: GlobalSeq::ZERO,
            prev: SegmentDigest::ROOT,
            writes: FuturesUnordered::new(),
            written: Vec::new(),
        })
    }
}

/// A log being written into an unpublished incarnation ([`SegmentLog::start_bulk_load`]).
pub struct SegmentBulkLoad {
    inner: Arc<Inner>,
    log: Arc<Incarnation>,
    /// The `store.json` that names `log`, written by [`BulkLoad::publish`].
    body: Vec<u8>,
    /// The last event encoded so far.
    head: GlobalSeq,
    /// The digest of the last segment encoded so far.
    prev: SegmentDigest,
    /// Creates in flight, at most [`BULK_IN_FLIGHT`], each a task of its own (so it goes on
    /// while the next segment is encoded); aborted when the load is dropped unpublished.
    writes: FuturesUnordered<JoinHandle<Result<(), BackendError>>>,
    /// What the log holds once every write is done, for the published incarnation's cache.
    written: Vec<SegmentMeta>,
}

impl std::fmt::Debug for SegmentBulkLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentBulkLoad")
            .field("backend_id", &self.log.id.as_str())
            .field("head", &self.head)
            .field("in_flight", &self.writes.len())
            .finish()
    }
}

#[async_trait::async_trait]
impl BulkLoad for SegmentBulkLoad {
    async fn push(&mut self, batch: Vec<GlobalEvent>) -> Result<(), BackendError> {
        validate(&self.inner, &batch)?;
        let first = batch[0].seq_num;
        self.check_follows(first, batch[0].parent_seq_num)?;
        let writer = self.writer(&batch[0].client_id);
        let encoded = segment::encode(&writer, &batch).map_err(|e| BackendError::Invalid {
            message: e.to_string(),
        })?;
        check_size(&self.inner, &batch, encoded.bytes.len())?;
        let last = batch[batch.len() - 1].seq_num;
        self.write(first, last, encoded).await
    }

    async fn push_framed(&mut self, batch: FramedEvents) -> Result<(), BackendError> {
        let invalid = |message: String| Err(BackendError::Invalid { message });
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return invalid("cannot push an empty batch".into());
        };
        let max = self.inner.config.max_events_per_segment;
        if batch.count() as usize > max {
            return invalid(format!(
                "a batch of {} events is over the limit of {max} events per push; split it",
                batch.count()
            ));
        }
        self.check_follows(first, GlobalSeq(first.0 - 1))?;
        let writer = self.writer(batch.client_id());
        let encoded =
            segment::encode_framed(&writer, &batch).map_err(|e| BackendError::Invalid {
                message: e.to_string(),
            })?;
        let limit = self.inner.config.max_bytes_per_segment;
        if encoded.bytes.len() > limit {
            let count = batch.count() as usize;
            return Err(batch_too_large(count, first, encoded.bytes.len(), limit));
        }
        self.write(first, last, encoded).await
    }

    async fn publish(mut self: Box<Self>, replace: bool) -> Result<String, BackendError> {
        while let Some(done) = self.writes.next().await {
            joined(done)?;
        }
        {
            let mut known = self.log.known();
            for meta in self.written.drain(..) {
                known.insert(meta);
            }
        }
        let id = self.log.id.to_string();
        let body = std::mem::take(&mut self.body);
        self.inner.publish(self.log.clone(), body, replace).await?;
        Ok(id)
    }
}

impl SegmentBulkLoad {
    /// Refuses a batch from `first` (whose first event names `parent`) that does not start
    /// right after the events this load holds.
    fn check_follows(&self, first: GlobalSeq, parent: GlobalSeq) -> Result<(), BackendError> {
        if parent == self.head {
            return Ok(());
        }
        Err(BackendError::Invalid {
            message: format!(
                "a bulk load's batch must start after {}, this one starts at {first}",
                self.head
            ),
        })
    }

    /// The writer of this load's next segment, whose events `client_id` wrote.
    fn writer<'a>(&'a self, client_id: &'a str) -> SegmentWriter<'a> {
        SegmentWriter {
            nonce: WriterNonce::draw(&self.inner.entropy),
            prev_digest: self.prev,
            backend_id: self.log.id.as_str(),
            client_id,
        }
    }

    /// Starts the create of `encoded`, the segment of events `first..=last`, once fewer than
    /// [`BULK_IN_FLIGHT`] are in flight.
    async fn write(
        &mut self,
        first: GlobalSeq,
        last: GlobalSeq,
        encoded: EncodedSegment,
    ) -> Result<(), BackendError> {
        self.written.push(SegmentMeta {
            first,
            last,
            digest: encoded.digest,
        });
        self.head = last;
        self.prev = encoded.digest;
        while self.writes.len() >= BULK_IN_FLIGHT {
            if let Some(done) = self.writes.next().await {
                joined(done)?;
            }
        }
        let key = self.log.paths.segment(first);
        self.writes
            .push(tokio::spawn(create(self.inner.clone(), key, encoded.bytes)));
        Ok(())
    }
}

impl Drop for SegmentBulkLoad {
    fn drop(&mut self) {
        for write in self.writes.iter() {
            write.abort();
        }
    }
}

/// What a create task ended with.
fn joined(
    done: Result<Result<(), BackendError>, tokio::task::JoinError>,
) -> Result<(), BackendError> {
    done.map_err(|failed| BackendError::Unavailable {
        message: format!("a segment write of the bulk load stopped: {failed}"),
    })?
}

/// Creates `key` with `bytes`; an existing object must hold the same bytes (our own create
/// whose answer was lost).
async fn create(inner: Arc<Inner>, key: Path, bytes: Bytes) -> Result<(), BackendError> {
    let put = inner
        .store
        .put_opts(
            &key,
            PutPayload::from(bytes.clone()),
            PutMode::Create.into(),
        )
        .await;
    let Err(error) = put else {
        return Ok(());
    };
    match get_if_present(inner.store.as_ref(), &key).await? {
        Some(there) if there == bytes => Ok(()),
        _ => Err(store_error("creating", &key, error)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;
    use crate::conformance::make_events;
    use crate::{SegmentLogConfig, SyncBackend, SyncBackendExt};

    fn client(store: &Arc<InMemory>) -> SegmentLog {
        let config = SegmentLogConfig {
            max_events_per_segment: 10,
            ..SegmentLogConfig::default()
        };
        SegmentLog::new(store.clone(), Path::from("p"), "s", config).unwrap()
    }

    async fn load(log: &SegmentLog, events: &[GlobalEvent]) -> Box<dyn BulkLoad> {
        let mut load = log.bulk_load().await.unwrap().unwrap();
        for batch in events.chunks(10) {
            load.push(batch.to_vec()).await.unwrap();
        }
        load
    }

    #[tokio::test]
    async fn test_a_published_bulk_load_is_the_store_and_chains() {
        let store = Arc::new(InMemory::new());
        let events = make_events(GlobalSeq::ZERO, 95, "importer", 20);
        let log = client(&store);
        let id = load(&log, &events).await.publish(false).await.unwrap();
        let reader = client(&store);
        assert_eq!(reader.backend_id().await.unwrap(), id);
        assert_eq!(reader.read_all_checked().await.unwrap(), events);
        // The loader's own client works on in the published store.
        assert_eq!(log.head().await.unwrap(), GlobalSeq(95));
    }

    #[tokio::test]
    async fn test_an_unpublished_bulk_load_leaves_the_store_as_it_was() {
        let store = Arc::new(InMemory::new());
        let events = make_events(GlobalSeq::ZERO, 30, "importer", 20);
        drop(load(&client(&store), &events).await);
        assert!(!client(&store).exists().await.unwrap());
        let before = client(&store);
        before.push(events[..5].to_vec()).await.unwrap();
        drop(load(&client(&store), &events).await);
        assert_eq!(
            client(&store).read_all_checked().await.unwrap(),
            events[..5]
        );
    }

    #[tokio::test]
    async fn test_publishing_into_a_store_created_meanwhile_fails_and_keeps_it() {
        let store = Arc::new(InMemory::new());
        let events = make_events(GlobalSeq::ZERO, 30, "importer", 20);
        let pending = load(&client(&store), &events).await;
        let other = client(&store);
        let theirs = other.backend_id().await.unwrap();
        other.push(events[..3].to_vec()).await.unwrap();
        match pending.publish(false).await {
            Err(BackendError::BackendIdMismatch { found, .. }) => {
                assert_eq!(found.as_deref(), Some(theirs.as_str()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            client(&store).read_all_checked().await.unwrap(),
            events[..3]
        );
    }

    #[tokio::test]
    async fn test_a_replacing_bulk_load_gives_a_new_id_and_only_its_events() {
        let store = Arc::new(InMemory::new());
        let old = make_events(GlobalSeq::ZERO, 7, "old", 20);
        let stale = client(&store);
        stale.push(old.clone()).await.unwrap();
        let old_id = stale.backend_id().await.unwrap();
        let events = make_events(GlobalSeq::ZERO, 42, "importer", 20);
        let id = load(&client(&store), &events)
            .await
            .publish(true)
            .await
            .unwrap();
        assert_ne!(id, old_id);
        assert_eq!(client(&store).read_all_checked().await.unwrap(), events);
        // The stale writer finds out, and writes nothing the new store holds.
        let more = make_events(GlobalSeq(7), 1, "old", 20);
        assert!(matches!(
            stale.push(more).await,
            Err(BackendError::BackendIdMismatch { .. })
        ));
        assert_eq!(client(&store).read_all_checked().await.unwrap(), events);
    }

    #[tokio::test]
    async fn test_a_batch_that_does_not_follow_is_refused() {
        let store = Arc::new(InMemory::new());
        let events = make_events(GlobalSeq::ZERO, 20, "importer", 20);
        let mut load = client(&store).bulk_load().await.unwrap().unwrap();
        load.push(events[..10].to_vec()).await.unwrap();
        let error = load.push(events[11..].to_vec()).await.unwrap_err();
        assert!(matches!(error, BackendError::Invalid { .. }), "{error:?}");
    }
}
