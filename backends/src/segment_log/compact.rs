//! Packing: [`SegmentLog::compact`] writes a pack for every complete window of segments
//! after the last pack. A window of `pack_window_events` events is complete once the chain
//! goes on past it; its pack holds the chain's segments whose first event falls in the window,
//! byte for byte, so two packers write the same object and the loser of the create reads it
//! back and compares. Segments are never deleted (see `docs/FORMAT.md`).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use serde::Serialize;

use super::identity::Incarnation;
use super::{SegmentLog, corrupt, get_if_present, store_error};
use crate::segment::{self, SegmentDigest};
use crate::{BackendError, GlobalSeq, pack};

/// How many segments are read at once while packing.
const PARALLEL: usize = 8;

/// What a [`SegmentLog::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactReport {
    /// Packs written now.
    pub written: u64,
    /// Packs another packer had already written with the same bytes.
    pub already_there: u64,
    /// Segments in the packs written or found now.
    pub segments: u64,
    /// The last event covered by the chain of packs from 1 (0 when there is none).
    pub packed_through: u64,
}

impl SegmentLog {
    /// Packs every complete window after the last pack (see the module doc). Safe to run
    /// from any number of clients at once.
    pub async fn compact(&self) -> Result<CompactReport, BackendError> {
        let (log, _) = self.inner.incarnation().await?;
        let store = &self.inner.store;
        let width = self.inner.config.pack_window_events;
        let window = |seq: GlobalSeq| (seq.0 - 1) / width;
        let mut report = CompactReport::default();
        let (through, newest) = chain_end(&list_packs(store, &log).await?);
        let mut position = through.next();
        // A packer killed while its store wrote a pack non-atomically leaves a torn object at
        // the key of the newest pack (packs are written in order): check that one (one GET)
        // and pack its window again if it is damaged; `write_pack` replaces it.
        if let Some(first) = newest {
            let key = log.paths.pack(first, through);
            let whole = get_if_present(store.as_ref(), &key)
                .await?
                .is_some_and(|bytes| pack::decode(&bytes).is_ok());
            if !whole {
                tracing::warn!(%key, "the newest pack is damaged; packing its window again");
                position = first;
            }
        }
        report.packed_through = position.0 - 1;
        let listed = list_segments_after(store, &log, position).await?;
        // Only windows before the one of the last listed key can be complete: read their
        // segments and the first one after them (which proves they are complete, being on
        // the chain), not the segments of the window still filling.
        let Some(filling) = listed.last().map(|&last| window(last)) else {
            return Ok(report);
        };
        let closing = listed
            .iter()
            .copied()
            .find(|&first| window(first) >= filling);
        let needed: Vec<GlobalSeq> = listed
            .iter()
            .copied()
            .take_while(|&first| window(first) < filling)
            .chain(closing)
            .collect();
        if needed.len() < 2 {
            return Ok(report);
        }
        let mut reads = futures::stream::iter(needed)
            .map(|first| {
                let key = log.paths.segment(first);
                async move {
                    let bytes = get_if_present(store.as_ref(), &key).await?;
                    Ok::<_, BackendError>((first, key, bytes))
                }
            })
            .buffered(PARALLEL);
        // The run of the window being gathered.
        let mut run: Vec<Bytes> = Vec::new();
        let mut prev: Option<SegmentDigest> = None;
        while let Some(read) = reads.next().await {
            let (first, key, bytes) = read?;
            if first != position {
                // Not on the chain (a stray key), or a gap: packing stops at a gap.
                if first < position {
                    continue;
                }
                break;
            }
            let Some(bytes) = bytes else { break };
            let segment = segment::decode(&bytes).map_err(|e| corrupt(&key, e))?;
            segment
                .check_position(first, prev, log.id.as_str())
                .map_err(|e| corrupt(&key, e))?;
            if let Some(head) = run.first() {
                let head = segment::decode_header(head)
                    .map_err(|e| corrupt(&key, e))?
                    .0;
                if window(first) != window(head.first) {
                    write_pack(store, &log, &run, &mut report).await?;
                    run.clear();
                }
            }
            prev = Some(segment.digest);
            position = segment.header.last().next();
            run.push(bytes);
        }
        Ok(report)
    }
}

/// Encodes `run` as a pack and creates it; an existing pack must hold the same bytes.
async fn write_pack(
    store: &std::sync::Arc<dyn ObjectStore>,
    log: &Incarnation,
    run: &[Bytes],
    report: &mut CompactReport,
) -> Result<(), BackendError> {
    let objects: Vec<&[u8]> = run.iter().map(|bytes| bytes.as_ref()).collect();
    let bytes = pack::encode(&objects).map_err(|e| BackendError::Invalid {
        message: format!("packing segments: {e}"),
    })?;
    let decoded = pack::decode(&bytes).map_err(|e| BackendError::Invalid {
        message: format!("packing segments: {e}"),
    })?;
    let key = log.paths.pack(decoded.first, decoded.last);
    let bytes = Bytes::from(bytes);
    let created = store
        .put_opts(
            &key,
            PutPayload::from(bytes.clone()),
            PutMode::Create.into(),
        )
        .await;
    let fresh = match created {
        Ok(_) => true,
        Err(error) => {
            // Another packer won, or the reply was lost: read back and compare.
            let there = get_if_present(store.as_ref(), &key).await?;
            match there {
                // Lost to another packer (the same bytes), or our own create whose reply
                // was lost.
                Some(there) if there == bytes => !matches!(
                    error,
                    object_store::Error::AlreadyExists { .. }
                        | object_store::Error::Precondition { .. }
                ),
                // A damaged pack (torn by a killed writer, or altered): replace it.
                Some(there) if pack::decode(&there).is_err() => {
                    replace_damaged(store, &key, bytes.clone()).await?
                }
                Some(_) => {
                    return Err(corrupt(
                        &key,
                        "another pack of the same events with other bytes is there",
                    ));
                }
                None => return Err(store_error("creating", &key, error)),
            }
        }
    };
    if fresh {
        report.written += 1;
    } else {
        report.already_there += 1;
    }
    report.segments += run.len() as u64;
    report.packed_through = decoded.last.0;
    Ok(())
}

/// Replaces the damaged pack at `key` with `bytes`: deletes it, then creates it again. Safe
/// because a pack is never the only copy of its events (its segments stay; a reader that
/// misses or refuses a pack reads them) and its bytes are a function of the segments, so a
/// racing packer that recreates it writes the same object. Returns whether this call
/// created it.
async fn replace_damaged(
    store: &std::sync::Arc<dyn ObjectStore>,
    key: &Path,
    bytes: Bytes,
) -> Result<bool, BackendError> {
    tracing::warn!(%key, "replacing a damaged pack");
    match store.delete(key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(error) => return Err(store_error("deleting", key, error)),
    }
    match store
        .put_opts(key, PutPayload::from(bytes.clone()), PutMode::Create.into())
        .await
    {
        Ok(_) => Ok(true),
        Err(error) => match get_if_present(store.as_ref(), key).await? {
            Some(there) if there == bytes => Ok(false),
            _ => Err(store_error("creating", key, error)),
        },
    }
}

/// The last event of the chain of `packs` from 1 (0 when there is none), and the first event
/// of the chain's newest pack.
fn chain_end(packs: &BTreeMap<GlobalSeq, GlobalSeq>) -> (GlobalSeq, Option<GlobalSeq>) {
    let mut through = GlobalSeq::ZERO;
    let mut newest = None;
    while let Some(&last) = packs.get(&through.next()) {
        newest = Some(through.next());
        through = last;
    }
    (through, newest)
}

/// The packs of `log` by their keys: first event → the furthest last event of a pack that
/// starts there.
pub(super) async fn list_packs(
    store: &std::sync::Arc<dyn ObjectStore>,
    log: &Incarnation,
) -> Result<BTreeMap<GlobalSeq, GlobalSeq>, BackendError> {
    let dir = log.paths.packs_dir();
    let keys: Vec<Path> = store
        .list(Some(dir))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| store_error("listing", dir, e))?;
    let mut packs = BTreeMap::new();
    for (first, last) in keys.iter().filter_map(|key| log.paths.parse_pack(key)) {
        let furthest = packs.entry(first).or_insert(last);
        *furthest = (*furthest).max(last);
    }
    Ok(packs)
}

/// The segment keys of `log` from `from` on, in order, from a listing that starts there.
async fn list_segments_after(
    store: &std::sync::Arc<dyn ObjectStore>,
    log: &Incarnation,
    from: GlobalSeq,
) -> Result<BTreeSet<GlobalSeq>, BackendError> {
    let dir = log.paths.segments_dir();
    let offset = log.paths.segment(GlobalSeq(from.0 - 1));
    let keys: Vec<Path> = store
        .list_with_offset(Some(dir), &offset)
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| store_error("listing", dir, e))?;
    Ok(keys
        .iter()
        .filter_map(|key| log.paths.parse_segment(key))
        .filter(|&first| first >= from)
        .collect())
}
