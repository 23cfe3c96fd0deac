//! How a cold pull reads packs: it lists the packs once, takes the chain of them that covers
//! the log from its cursor as far as packs go ([`plan`]), reads them [`PACK_READ_AHEAD`] at a
//! time in order, and hands out their segments one by one, each checked as a segment read
//! from its own key would be ([`PackAhead::next`]). The segments after the last pack are then
//! listed from there and read as before (`pull.rs`).
//!
//! Packs are optional for a reader. A pack that cannot be read, is corrupt, or does not
//! chain onto what the pull holds is refused: a warning names its key, nothing of it is
//! delivered, and the pull reads the segments of its range instead, then goes on with the
//! next pack of the chain. Segments are never deleted, so they are always there to fall
//! back to.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;

use super::identity::Incarnation;
use super::known::SegmentMeta;
use super::{Inner, corrupt, get_if_present};
use crate::pack::{self, Pack};
use crate::segment::{Segment, SegmentDigest};
use crate::{BackendError, GlobalSeq};

/// How many pack GETs a cold pull keeps in flight, each decoded on a blocking thread as soon
/// as it is read. A pack holds a window of events (256 by default, merged 16 to a level up
/// to `pack-max-bytes`, 4 MiB), so a few in flight keep the bucket and the cores busy while
/// bounding the memory a pull holds to a few packs.
pub(super) const PACK_READ_AHEAD: usize = 4;

/// A pack by the events its key names: first and last.
pub(super) type PackRange = (GlobalSeq, GlobalSeq);

/// The chain of packs that covers the log from `wanted` on, as far as packs reach: each
/// pack holds the position after the one before (the first holds `wanted`), and of the packs
/// that hold a position the one reaching furthest is taken. `packs` maps a first event to
/// the furthest last event of a pack starting there (`list_packs`). Empty when no pack holds
/// `wanted`.
pub(super) fn plan(packs: &BTreeMap<GlobalSeq, GlobalSeq>, wanted: GlobalSeq) -> Vec<PackRange> {
    let mut chain = Vec::new();
    let mut position = wanted;
    loop {
        let best = packs
            .range(..=position)
            .filter(|(_, last)| **last >= position)
            .max_by_key(|(_, last)| **last);
        let Some((&first, &last)) = best else {
            return chain;
        };
        chain.push((first, last));
        if last == GlobalSeq(u64::MAX) {
            return chain;
        }
        position = last.next();
    }
}

/// What the packs have for a pull at a key.
pub(super) enum PackRead {
    /// The segment at the key, checked.
    Segment(Segment),
    /// The next pack, which holds events up to `last`, was refused (and a warning names
    /// it): read the segments of its range, then ask again.
    Refused {
        /// The last event of the refused pack's range, by its key.
        last: GlobalSeq,
    },
    /// The chain is used up (or no longer fits the pull): read segments from here on.
    UsedUp,
}

/// The packs of a cold pull's chain being read, and the checked segments of the last one
/// read that the pull has not taken yet.
pub(super) struct PackAhead {
    /// Each pack of the chain with what its GET found (`None`: no object), decoded.
    reads: BoxStream<'static, (PackRange, Result<Option<Pack>, BackendError>)>,
    /// Segments of the packs read, checked, not taken yet.
    segments: VecDeque<Segment>,
}

impl PackAhead {
    /// Starts reading the packs of `chain` (from [`plan`]), [`PACK_READ_AHEAD`] at a time,
    /// and decoding each (checksums, framing, every event) on a blocking thread, so that
    /// several decode at once, beside the pull that takes their segments.
    pub(super) fn start(inner: Arc<Inner>, log: Arc<Incarnation>, chain: Vec<PackRange>) -> Self {
        let reads = futures::stream::iter(chain)
            .map(move |range| {
                let (inner, log) = (inner.clone(), log.clone());
                async move {
                    let read = match inner.get_pack(&log, range).await {
                        Ok(Some(bytes)) => decode(log.paths.pack(range.0, range.1), bytes)
                            .await
                            .map(Some),
                        other => other.map(|_| None),
                    };
                    (range, read)
                }
            })
            .buffered(PACK_READ_AHEAD)
            .boxed();
        PackAhead {
            reads,
            segments: VecDeque::new(),
        }
    }

    /// The segment at `key` from the packs, checked against `prev_digest` (the digest of the
    /// segment before it, when known) and recorded in the log's `Known`; or the range of a
    /// pack refused now (logged with its key), or the end of the chain.
    pub(super) async fn next(
        &mut self,
        log: &Incarnation,
        key: GlobalSeq,
        prev_digest: Option<SegmentDigest>,
    ) -> PackRead {
        if self.segments.is_empty() {
            let Some((range, read)) = self.reads.next().await else {
                return PackRead::UsedUp;
            };
            let checked = read.and_then(|pack| match pack {
                Some(pack) => check_pack(log, range, key, prev_digest, pack),
                None => Err(corrupt(
                    &log.paths.pack(range.0, range.1),
                    "listed but gone when read",
                )),
            });
            match checked {
                Ok(segments) => self.segments = segments,
                Err(error) => {
                    tracing::warn!(
                        pack = %log.paths.pack(range.0, range.1),
                        %error,
                        "refusing a pack; reading the segments of its range instead"
                    );
                    return PackRead::Refused { last: range.1 };
                }
            }
        }
        // The first segment of a pack was checked against `key` by `check_pack`, and each
        // later one follows the one before inside the pack, so this holds unless the caller
        // moved on without the packs: then they are of no more use.
        match self.segments.pop_front() {
            Some(segment) if segment.header.first == key => PackRead::Segment(segment),
            _ => {
                self.segments.clear();
                PackRead::UsedUp
            }
        }
    }
}

/// Decodes and checks the pack `key` ([`pack::decode`]), on a blocking thread where that
/// keeps the run deterministic ([`crate::blocking::run_cpu`]).
async fn decode(key: Path, bytes: Bytes) -> Result<Pack, BackendError> {
    match crate::blocking::run_cpu(move || pack::decode(&bytes)).await {
        Ok(decoded) => decoded.map_err(|e| corrupt(&key, e)),
        Err(failed) => Err(corrupt(&key, format!("its decoding stopped: {failed}"))),
    }
}

/// Refuses the pack at `key`, listed as `range`, when the events it holds (`held`) are not
/// the ones its key names.
pub(super) fn check_range(
    key: &Path,
    held: (GlobalSeq, GlobalSeq),
    range: PackRange,
) -> Result<(), BackendError> {
    if held == range {
        return Ok(());
    }
    Err(corrupt(
        key,
        format!(
            "it holds events {} to {}, its key says {} to {}",
            held.0, held.1, range.0, range.1
        ),
    ))
}

/// Checks the place of the pack `range`, decoded, read for a pull at `key`: the key's range
/// is the pack's, the store is this one, and its segment at `key` (segments before it, of a
/// pack that overlaps the one before, are skipped) chains onto `prev_digest` when known.
/// Records every segment it returns in the log's `Known`.
fn check_pack(
    log: &Incarnation,
    range: PackRange,
    key: GlobalSeq,
    prev_digest: Option<SegmentDigest>,
    pack: Pack,
) -> Result<VecDeque<Segment>, BackendError> {
    let pack_key = log.paths.pack(range.0, range.1);
    check_range(&pack_key, (pack.first, pack.last), range)?;
    let segments: VecDeque<Segment> = pack
        .segments
        .into_iter()
        .filter(|segment| segment.header.last() >= key)
        .collect();
    let Some(head) = segments.front() else {
        return Err(corrupt(&pack_key, format!("it ends before event {key}")));
    };
    head.check_position(key, prev_digest, log.id.as_str())
        .map_err(|e| corrupt(&pack_key, format!("it does not chain onto the log: {e}")))?;
    let mut known = log.known();
    for segment in &segments {
        known.insert(SegmentMeta {
            first: segment.header.first,
            last: segment.header.last(),
            digest: segment.digest,
        });
    }
    Ok(segments)
}

impl Inner {
    /// The bytes of the pack `range` of `log`, unchecked: `None` when there is no such object.
    async fn get_pack(
        &self,
        log: &Incarnation,
        range: PackRange,
    ) -> Result<Option<Bytes>, BackendError> {
        get_if_present(self.store.as_ref(), &log.paths.pack(range.0, range.1)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packs(ranges: &[(u64, u64)]) -> BTreeMap<GlobalSeq, GlobalSeq> {
        ranges
            .iter()
            .map(|&(first, last)| (GlobalSeq(first), GlobalSeq(last)))
            .collect()
    }

    fn chain(ranges: &[(u64, u64)]) -> Vec<PackRange> {
        ranges
            .iter()
            .map(|&(first, last)| (GlobalSeq(first), GlobalSeq(last)))
            .collect()
    }

    #[test]
    fn test_plan_follows_packs_from_the_cursor_as_far_as_they_chain() {
        let packs = packs(&[(1, 9), (10, 18), (19, 24), (30, 40)]);
        assert_eq!(
            plan(&packs, GlobalSeq(1)),
            chain(&[(1, 9), (10, 18), (19, 24)])
        );
        // A cursor inside a pack starts with that pack.
        assert_eq!(plan(&packs, GlobalSeq(12)), chain(&[(10, 18), (19, 24)]));
        // A position no pack holds: nothing (the gap at 25 ends the chain above too).
        assert_eq!(plan(&packs, GlobalSeq(25)), chain(&[]));
        assert_eq!(plan(&packs, GlobalSeq(41)), chain(&[]));
        assert_eq!(plan(&BTreeMap::new(), GlobalSeq(1)), chain(&[]));
    }

    #[test]
    fn test_plan_takes_the_pack_that_reaches_furthest() {
        // Packers with two window widths: 1-16 and 17-32 as well as 1-8, 9-16, 17-24.
        let packs = packs(&[(1, 16), (9, 16), (17, 32), (33, 40)]);
        assert_eq!(
            plan(&packs, GlobalSeq(1)),
            chain(&[(1, 16), (17, 32), (33, 40)])
        );
        // Overlapping packs: 1-12 then 9-20 (held from 13 on).
        let packs = self::packs(&[(1, 12), (9, 20)]);
        assert_eq!(plan(&packs, GlobalSeq(1)), chain(&[(1, 12), (9, 20)]));
    }
}
