//! A push: one segment created at key `parent+1`, exactly once even when the store's answer
//! is ambiguous.

use object_store::{PutMode, PutPayload};

use super::identity::Incarnation;
use super::index::verify_segment;
use super::known::{SegmentMeta, Tail};
use super::{Inner, corrupt, definitive, store_error};
use crate::segment::{self, EncodedSegment, SegmentWriter, WriterNonce};
use crate::{BackendError, GlobalEvent, GlobalSeq};

/// How many times a create is retried when the read-back finds no object (the create
/// failed before it landed, or a store answered 409 for an in-flight conflict).
const CREATE_ATTEMPTS: usize = 5;

/// What reading back an ambiguously written segment found.
enum ReadBack {
    /// Our segment is there: the push succeeded.
    Ours,
    /// Nothing is there: create again.
    Missing,
    /// Another writer's segment is there: we lost the race.
    Theirs,
}

pub(super) async fn push(inner: &Inner, batch: Vec<GlobalEvent>) -> Result<(), BackendError> {
    validate(inner, &batch)?;
    let (log, just_read) = inner.incarnation().await?;
    if just_read {
        return create(inner, &log, &batch).await;
    }
    // The stale writer must find out. `store.json` is read concurrently with the create, not
    // before it: reading first would add a round trip to every push and close no window (the
    // store can be wiped between that read and the create just as well). Safety does not rest
    // on this check: a stale writer's segment can only land in its old id's folder, which no
    // reader of the new store looks at. The check tells the writer, so that it reconciles
    // instead of believing its push is in the store. One GET per push (a GET costs a tenth
    // of a PUT on S3).
    let (created, check) = futures::join!(create(inner, &log, &batch), inner.check_identity(&log));
    definitive(check)?;
    created
}

/// Creates the segment of `batch` at key `parent+1` of `log`, exactly once.
async fn create(
    inner: &Inner,
    log: &Incarnation,
    batch: &[GlobalEvent],
) -> Result<(), BackendError> {
    let parent = batch[0].parent_seq_num;
    let first = parent.next();
    let key = log.paths.segment(first);
    let nonce = WriterNonce::draw(&inner.entropy);
    let mut encoded: Option<EncodedSegment> = None;
    for _ in 0..CREATE_ATTEMPTS {
        let tail = tail_at(inner, log, parent).await?;
        let segment = match &encoded {
            Some(segment) => segment.clone(),
            None => {
                let writer = SegmentWriter {
                    nonce,
                    prev_digest: tail.digest,
                    backend_id: log.id.as_str(),
                    client_id: &batch[0].client_id,
                };
                let segment =
                    segment::encode(&writer, batch).map_err(|e| BackendError::Invalid {
                        message: e.to_string(),
                    })?;
                check_size(inner, batch, segment.bytes.len())?;
                encoded.insert(segment).clone()
            }
        };
        let meta = SegmentMeta {
            first,
            last: batch[batch.len() - 1].seq_num,
            digest: segment.digest,
        };
        let put = inner
            .store
            .put_opts(
                &key,
                PutPayload::from(segment.bytes.clone()),
                PutMode::Create.into(),
            )
            .await;
        let error = match put {
            Ok(_) => {
                log.known().insert(meta);
                log.recent().insert(first, segment.bytes.clone());
                return Ok(());
            }
            Err(
                e @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::InvalidPath { .. }),
            ) => return Err(store_error("creating", &key, e)),
            // AlreadyExists, Precondition, Generic (a timeout), anything else: the write may
            // or may not have landed. Only the object itself can tell.
            Err(e) => e,
        };
        tracing::debug!(key = %key, error = %error, "ambiguous segment create; reading it back");
        match read_back(inner, log, first, nonce).await? {
            ReadBack::Ours => {
                log.known().insert(meta);
                return Ok(());
            }
            ReadBack::Missing => continue,
            ReadBack::Theirs => {
                let head = inner.probe_tail(log).await?.head;
                return Err(BackendError::ServerAhead { head });
            }
        }
    }
    Err(BackendError::Unavailable {
        message: format!("creating {key} failed {CREATE_ATTEMPTS} times without a result"),
    })
}

/// The tail of `log`, provided it ends exactly at `parent`; otherwise the push is refused.
async fn tail_at(
    inner: &Inner,
    log: &Incarnation,
    parent: GlobalSeq,
) -> Result<Tail, BackendError> {
    // Common case: our cache says the head is `parent`; create straight away (one request),
    // and a lost race shows up as an existing key.
    let cached = log.known().tail();
    if let Some(tail) = cached
        && tail.head == parent
    {
        return Ok(tail);
    }
    let tail = inner.probe_tail(log).await?;
    if parent < tail.head {
        return Err(BackendError::ServerAhead { head: tail.head });
    }
    if parent > tail.head {
        return Err(BackendError::Invalid {
            message: format!(
                "the batch starts after {parent} but the backend's head is {}: the events in between were never pushed",
                tail.head
            ),
        });
    }
    Ok(tail)
}

/// Reads back the segment at `first` (through the recent segments: the winner's segment is
/// what the pull after a lost race reads next).
async fn read_back(
    inner: &Inner,
    log: &Incarnation,
    first: GlobalSeq,
    nonce: WriterNonce,
) -> Result<ReadBack, BackendError> {
    let key = log.paths.segment(first);
    let Some(bytes) = inner.get_segment(log, first).await? else {
        return Ok(ReadBack::Missing);
    };
    let (header, _) = segment::decode_header(&bytes).map_err(|e| corrupt(&key, e))?;
    if header.writer_nonce != nonce && verify_segment(log, first, None, &bytes).is_ok() {
        log.recent().insert(first, bytes.clone());
    }
    Ok(if header.writer_nonce == nonce {
        ReadBack::Ours
    } else {
        ReadBack::Theirs
    })
}

/// Refuses malformed batches before any request: empty, too many events, misnumbered.
pub(super) fn validate(inner: &Inner, batch: &[GlobalEvent]) -> Result<(), BackendError> {
    let invalid = |message: String| Err(BackendError::Invalid { message });
    let Some(head) = batch.first() else {
        return invalid("cannot push an empty batch".into());
    };
    let max = inner.config.max_events_per_segment;
    if batch.len() > max {
        return invalid(format!(
            "a batch of {} events is over the limit of {max} events per push; split it",
            batch.len()
        ));
    }
    if head.client_id.len() > segment::MAX_CLIENT_ID_LEN {
        return invalid(format!(
            "client id of {} bytes is over the limit of {}",
            head.client_id.len(),
            segment::MAX_CLIENT_ID_LEN
        ));
    }
    let mut expected_parent = head.parent_seq_num;
    for (index, event) in batch.iter().enumerate() {
        if event.parent_seq_num != expected_parent || event.seq_num != expected_parent.next() {
            return invalid(format!(
                "event {index} of the batch is {} with parent {}; expected {} with parent {}",
                event.seq_num,
                event.parent_seq_num,
                expected_parent.next(),
                expected_parent
            ));
        }
        expected_parent = event.seq_num;
    }
    Ok(())
}

/// Refuses a segment over `max_bytes_per_segment`, saying whether one event alone is too
/// big (it can never be pushed) or the batch should be split.
pub(super) fn check_size(
    inner: &Inner,
    batch: &[GlobalEvent],
    size: usize,
) -> Result<(), BackendError> {
    let limit = inner.config.max_bytes_per_segment;
    if size <= limit {
        return Ok(());
    }
    let largest = batch
        .iter()
        .map(|event| (segment::event_len(event).unwrap_or(usize::MAX), event))
        .max_by_key(|(len, _)| *len);
    if let Some((len, event)) = largest
        && (batch.len() == 1 || len.saturating_add(segment::MAX_OVERHEAD_LEN) > limit)
    {
        return Err(BackendError::Invalid {
            message: format!(
                "event {} ({}) alone encodes to {len} bytes; the limit is {limit} bytes per push (max-bytes-per-segment), so it can never be pushed",
                event.seq_num, event.name
            ),
        });
    }
    Err(batch_too_large(batch.len(), batch[0].seq_num, size, limit))
}

/// A batch of `count` events from `first` whose segment of `size` bytes is over `limit`,
/// the segment log's byte limit per push.
pub(super) fn batch_too_large(
    count: usize,
    first: GlobalSeq,
    size: usize,
    limit: usize,
) -> BackendError {
    BackendError::Invalid {
        message: format!(
            "a batch of {count} events from {first} encodes to {size} bytes, over the limit of {limit} bytes per push (max-bytes-per-segment); split it"
        ),
    }
}
