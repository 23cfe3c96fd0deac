//! Packing: [`SegmentLog::compact`] writes a pack for every complete window of segments
//! after the last pack, then merges packs into larger ones, level by level.
//!
//! Level 0: a window of `pack_window_events` (`w`) events is complete once the chain goes on
//! past it; its pack holds the chain's segments whose first event falls in the window, byte
//! for byte. Level `L` windows are `w * pack_fanout^L` events wide, aligned the same way: once
//! a level-`L` window is complete (the chain of packs goes on past it), the packs of the
//! level below in it are merged into one pack of its segments. A pack's bytes are a function
//! of its first and last event (the segments between them, in order), so two packers write
//! the same object and the loser of the create reads it back and compares. A cold reader
//! takes the largest pack at each position, so it fetches at most `fanout - 1` packs a level
//! and fewer than `w` tail segments. Segments are never deleted (see `docs/FORMAT.md`).

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

/// How many segments (or packs, when merging) are read at once while packing.
const PARALLEL: usize = 8;

/// What a [`SegmentLog::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactReport {
    /// Packs written now (of segments, and merged).
    pub written: u64,
    /// Of `written`, packs that merge smaller packs (a level above the first).
    pub merged: u64,
    /// Packs another packer had already written with the same bytes.
    pub already_there: u64,
    /// Segments in the level-0 packs written or found now.
    pub segments: u64,
    /// The last event covered by the chain of packs from 1 (0 when there is none).
    pub packed_through: u64,
}

/// A pack of the chain, by its key: its first and last event, and its size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    first: GlobalSeq,
    last: GlobalSeq,
    size: u64,
}

impl SegmentLog {
    /// Packs every complete window after the last pack, then merges packs level by level
    /// (see the module doc). Safe to run from any number of clients at once.
    pub async fn compact(&self) -> Result<CompactReport, BackendError> {
        let (log, _) = self.inner.incarnation().await?;
        let mut report = CompactReport::default();
        let store = &self.inner.store;
        let mut chain = chain_from_start(&list_pieces(store, &log).await?);
        // A packer killed while its store wrote a pack non-atomically leaves a torn object at
        // the key of the newest pack of the chain (level-0 packs are written in order):
        // check that one (one GET) and pack its window again if it is damaged; `write_pack`
        // replaces it.
        if let Some(newest) = chain.last().copied() {
            let key = log.paths.pack(newest.first, newest.last);
            let whole = get_if_present(store.as_ref(), &key)
                .await?
                .is_some_and(|bytes| pack::decode(&bytes).is_ok());
            if !whole {
                tracing::warn!(%key, "the newest pack is damaged; packing its window again");
                chain.pop();
            }
        }
        let position = chain.last().map_or(GlobalSeq(1), |piece| piece.last.next());
        report.packed_through = position.0 - 1;
        self.pack_segments(&log, position, &mut chain, &mut report)
            .await?;
        self.merge_levels(&log, chain, &mut report).await?;
        Ok(report)
    }

    /// Level 0: packs the complete windows of segments from `position` on, and adds each
    /// pack to `chain`.
    async fn pack_segments(
        &self,
        log: &Incarnation,
        mut position: GlobalSeq,
        chain: &mut Vec<Piece>,
        report: &mut CompactReport,
    ) -> Result<(), BackendError> {
        let store = &self.inner.store;
        let width = self.inner.config.pack_window_events;
        let window = |seq: GlobalSeq| (seq.0 - 1) / width;
        let listed = list_segments_after(store, log, position).await?;
        // Only windows before the one of the last listed key can be complete: read their
        // segments and the first one after them (which proves they are complete, being on
        // the chain), not the segments of the window still filling.
        let Some(filling) = listed.last().map(|&last| window(last)) else {
            return Ok(());
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
            return Ok(());
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
                    let objects: Vec<&[u8]> = run.iter().map(|bytes| bytes.as_ref()).collect();
                    chain.push(write_pack(store, log, &objects, report).await?);
                    report.segments += run.len() as u64;
                    run.clear();
                }
            }
            prev = Some(segment.digest);
            position = segment.header.last().next();
            run.push(bytes);
        }
        Ok(())
    }

    /// Levels 1 and up: in each complete window of the level, merges the two or more packs
    /// of the chain that start in it into one (unless they sum to more than
    /// `pack_max_bytes`), until a level's window holds the whole chain.
    async fn merge_levels(
        &self,
        log: &Incarnation,
        mut chain: Vec<Piece>,
        report: &mut CompactReport,
    ) -> Result<(), BackendError> {
        let config = &self.inner.config;
        if config.pack_fanout < 2 {
            return Ok(());
        }
        let mut width = config.pack_window_events;
        while let Some(wider) = width.checked_mul(config.pack_fanout) {
            width = wider;
            let window = |seq: GlobalSeq| (seq.0 - 1) / width;
            let (Some(head), Some(tail)) = (chain.first(), chain.last()) else {
                break;
            };
            if window(head.first) == window(tail.first) {
                // One window holds the whole chain: no window of this level or above is
                // complete.
                break;
            }
            let mut merged = Vec::with_capacity(chain.len());
            let mut start = 0;
            while start < chain.len() {
                let at = window(chain[start].first);
                let end = chain[start..]
                    .iter()
                    .position(|piece| window(piece.first) != at)
                    .map_or(chain.len(), |offset| start + offset);
                let group = &chain[start..end];
                let size: u64 = group.iter().map(|piece| piece.size).sum();
                // Complete once a piece of a later window follows it.
                if end < chain.len() && group.len() >= 2 && size <= config.pack_max_bytes {
                    merged.push(self.merge(log, group, report).await?);
                } else {
                    merged.extend_from_slice(group);
                }
                start = end;
            }
            chain = merged;
        }
        Ok(())
    }

    /// Writes the pack of the segments of the packs `group` (consecutive on the chain).
    async fn merge(
        &self,
        log: &Incarnation,
        group: &[Piece],
        report: &mut CompactReport,
    ) -> Result<Piece, BackendError> {
        let store = &self.inner.store;
        let keys: Vec<Path> = group
            .iter()
            .map(|piece| log.paths.pack(piece.first, piece.last))
            .collect();
        let packs: Vec<(Path, Bytes)> = futures::stream::iter(keys)
            .map(|key| async move {
                match get_if_present(store.as_ref(), &key).await? {
                    Some(bytes) => Ok((key, bytes)),
                    None => Err(corrupt(&key, "listed, but gone when read for a merge")),
                }
            })
            .buffered(PARALLEL)
            .try_collect()
            .await?;
        let mut objects: Vec<&[u8]> = Vec::new();
        for ((key, bytes), piece) in packs.iter().zip(group) {
            let (pack, segments) =
                pack::decode_with_segment_bytes(bytes).map_err(|e| corrupt(key, e))?;
            if (pack.first, pack.last) != (piece.first, piece.last) {
                return Err(corrupt(
                    key,
                    format!(
                        "holds events {} to {}, not its key's",
                        pack.first, pack.last
                    ),
                ));
            }
            objects.extend(segments);
        }
        let piece = write_pack(store, log, &objects, report).await?;
        report.merged += 1;
        Ok(piece)
    }
}

/// Encodes the segments `objects` as a pack and creates it; an existing pack must hold the
/// same bytes. Returns it as a piece of the chain.
async fn write_pack(
    store: &std::sync::Arc<dyn ObjectStore>,
    log: &Incarnation,
    objects: &[&[u8]],
    report: &mut CompactReport,
) -> Result<Piece, BackendError> {
    let bytes = pack::encode(objects).map_err(|e| BackendError::Invalid {
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
    report.packed_through = report.packed_through.max(decoded.last.0);
    Ok(Piece {
        first: decoded.first,
        last: decoded.last,
        size: bytes.len() as u64,
    })
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

/// The chain of packs from `e1` as a cold reader takes it: at each position the pack that
/// starts there and reaches furthest.
fn chain_from_start(pieces: &[Piece]) -> Vec<Piece> {
    let mut furthest: BTreeMap<GlobalSeq, Piece> = BTreeMap::new();
    for piece in pieces {
        let best = furthest.entry(piece.first).or_insert(*piece);
        if piece.last > best.last {
            *best = *piece;
        }
    }
    let mut chain = Vec::new();
    let mut position = GlobalSeq(1);
    while let Some(piece) = furthest.get(&position) {
        chain.push(*piece);
        if piece.last == GlobalSeq(u64::MAX) {
            break;
        }
        position = piece.last.next();
    }
    chain
}

/// Every pack of `log` by its key, with its size.
async fn list_pieces(
    store: &std::sync::Arc<dyn ObjectStore>,
    log: &Incarnation,
) -> Result<Vec<Piece>, BackendError> {
    let dir = log.paths.packs_dir();
    let metas: Vec<object_store::ObjectMeta> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| store_error("listing", dir, e))?;
    Ok(metas
        .iter()
        .filter_map(|meta| {
            let (first, last) = log.paths.parse_pack(&meta.location)?;
            Some(Piece {
                first,
                last,
                size: meta.size,
            })
        })
        .collect())
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
