//! What a client knows about the log: facts about immutable segments it has verified, the
//! tail derived from them, and how it finds the tail (probe `head+1`; LIST only when cold).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::identity::Incarnation;
use super::{Inner, corrupt, definitive, store_error};
use crate::segment::{self, Segment, SegmentDigest};
use crate::{BackendError, GlobalSeq};

/// One verified segment: where it is, how long, and its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentMeta {
    /// Number of its first event (its key).
    pub(super) first: GlobalSeq,
    /// Number of its last event.
    pub(super) last: GlobalSeq,
    /// Its trailer, which the next segment chains to.
    pub(super) digest: SegmentDigest,
}

/// The end of the log as far as this client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tail {
    /// The last event's number ([`GlobalSeq::ZERO`] for an empty log).
    pub(super) head: GlobalSeq,
    /// The digest of the segment that ends at `head` ([`SegmentDigest::ROOT`] when empty).
    pub(super) digest: SegmentDigest,
}

/// Facts about the segments of one incarnation of a store, keyed by first event number.
/// Segments are immutable, so a fact, once verified, stays true; a wiped store is a new
/// incarnation, with its own `Known`.
///
/// Memory: one entry per segment seen (about 60 bytes), e.g. 6 MB for 100k segments.
#[derive(Debug, Default)]
pub(super) struct Known {
    segments: BTreeMap<u64, SegmentMeta>,
    /// A LIST found the tail once; from now on probing forward is enough.
    listed: bool,
}

impl Known {
    /// Records a verified segment.
    pub(super) fn insert(&mut self, meta: SegmentMeta) {
        self.segments.insert(meta.first.0, meta);
    }

    /// The highest known tail, or `None` when nothing is known and no LIST ran yet.
    pub(super) fn tail(&self) -> Option<Tail> {
        match self.segments.last_key_value() {
            Some((_, meta)) => Some(Tail {
                head: meta.last,
                digest: meta.digest,
            }),
            None if self.listed => Some(Tail {
                head: GlobalSeq::ZERO,
                digest: SegmentDigest::ROOT,
            }),
            None => None,
        }
    }

    /// The known segment that holds event `seq`.
    pub(super) fn containing(&self, seq: GlobalSeq) -> Option<SegmentMeta> {
        let (_, meta) = self.segments.range(..=seq.0).next_back()?;
        (meta.last >= seq).then_some(*meta)
    }

    /// The digest of the segment that ends exactly at `seq` (the root for `e0`).
    pub(super) fn digest_ending_at(&self, seq: GlobalSeq) -> Option<SegmentDigest> {
        if seq == GlobalSeq::ZERO {
            return Some(SegmentDigest::ROOT);
        }
        self.containing(seq)
            .filter(|meta| meta.last == seq)
            .map(|meta| meta.digest)
    }

    /// The highest known first number at or below `seq`.
    pub(super) fn floor_first(&self, seq: GlobalSeq) -> Option<GlobalSeq> {
        self.segments
            .range(..=seq.0)
            .next_back()
            .map(|(_, m)| m.first)
    }
}

impl Inner {
    /// Reads and verifies the segment at key `first` of `log`: `None` when there is no such
    /// object. `prev_digest` is the digest of the segment before it, when known; the chain
    /// is checked against it. A verified segment is recorded in the log's [`Known`].
    pub(super) async fn fetch_segment(
        &self,
        log: &Incarnation,
        first: GlobalSeq,
        prev_digest: Option<SegmentDigest>,
    ) -> Result<Option<Segment>, BackendError> {
        let key = log.paths.segment(first);
        let bytes = match self.store.get(&key).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|e| store_error("reading", &key, e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error("reading", &key, e)),
        };
        let segment = segment::decode(&bytes).map_err(|e| corrupt(&key, e))?;
        segment
            .check_position(first, prev_digest, log.id.as_str())
            .map_err(|e| corrupt(&key, e))?;
        log.known().insert(SegmentMeta {
            first,
            last: segment.header.last(),
            digest: segment.digest,
        });
        Ok(Some(segment))
    }

    /// Finds the current tail of `log` and checks, concurrently (no added latency), that
    /// `store.json` still names it: a wiped store's old folder is empty or stale, so its tail
    /// alone would look like a valid, shorter log.
    pub(super) async fn refresh_tail(&self, log: &Incarnation) -> Result<Tail, BackendError> {
        let (tail, check) = futures::join!(self.probe_tail(log), self.check_identity(log));
        definitive(check)?;
        tail
    }

    /// Finds the current tail of `log`: LIST once when cold, then GET `head+1` until a 404.
    /// Does not look at `store.json` (see [`Inner::refresh_tail`]).
    pub(super) async fn probe_tail(&self, log: &Incarnation) -> Result<Tail, BackendError> {
        let cached = log.known().tail();
        let mut tail = match cached {
            Some(tail) => tail,
            None => self.list_tail(log).await?,
        };
        loop {
            let next = tail.head.next();
            match self.fetch_segment(log, next, Some(tail.digest)).await? {
                Some(segment) => {
                    tail = Tail {
                        head: segment.header.last(),
                        digest: segment.digest,
                    }
                }
                None => return Ok(tail),
            }
        }
    }

    /// After a read found no segment at `missing`: the first segment key after it, found by
    /// one LIST on this client's first such check (before any LIST ran). Segments are
    /// created in order and never deleted, so a key after a missing one means an object was
    /// deleted from the middle of the log. Later checks are free (`None`): only a LIST can
    /// see past a missing key, and one per client is the budget (polls stay GET-only).
    pub(super) async fn segment_after(
        &self,
        log: &Incarnation,
        missing: GlobalSeq,
    ) -> Result<Option<GlobalSeq>, BackendError> {
        if log.known().listed {
            return Ok(None);
        }
        let after = self.list_segments(log, Some(missing)).await?;
        match after.into_iter().find(|first| *first > missing) {
            Some(first) => Ok(Some(first)),
            None => {
                log.known().listed = true;
                Ok(None)
            }
        }
    }

    /// Cold start: LIST the segments, read the last one. Its chain to the one before is
    /// not checked here (a pull checks the whole chain).
    async fn list_tail(&self, log: &Incarnation) -> Result<Tail, BackendError> {
        let firsts = self.list_segments(log, None).await?;
        let tail = match firsts.last() {
            None => Tail {
                head: GlobalSeq::ZERO,
                digest: SegmentDigest::ROOT,
            },
            Some(&first) => {
                let prev = log.known().digest_ending_at(GlobalSeq(first.0 - 1));
                match self.fetch_segment(log, first, prev).await? {
                    Some(segment) => Tail {
                        head: segment.header.last(),
                        digest: segment.digest,
                    },
                    None => {
                        return Err(BackendError::Unavailable {
                            message: format!(
                                "{} was listed but could not be read",
                                log.paths.segment(first)
                            ),
                        });
                    }
                }
            }
        };
        log.known().listed = true;
        Ok(tail)
    }

    /// The first numbers of the segments of `log` (after `after`, when given), sorted: LIST
    /// order is not guaranteed by every store.
    pub(super) async fn list_segments(
        &self,
        log: &Incarnation,
        after: Option<GlobalSeq>,
    ) -> Result<Vec<GlobalSeq>, BackendError> {
        let dir = log.paths.segments_dir();
        let listing = match after {
            Some(after) => self
                .store
                .list_with_offset(Some(dir), &log.paths.segment(after)),
            None => self.store.list(Some(dir)),
        };
        let metas: Vec<_> = listing
            .try_collect()
            .await
            .map_err(|e| store_error("listing", dir, e))?;
        let mut firsts: Vec<GlobalSeq> = metas
            .iter()
            .filter_map(|meta| log.paths.parse_segment(&meta.location))
            .collect();
        firsts.sort_unstable();
        Ok(firsts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first: u64, last: u64, tag: u8) -> SegmentMeta {
        SegmentMeta {
            first: GlobalSeq(first),
            last: GlobalSeq(last),
            digest: SegmentDigest([tag; 32]),
        }
    }

    #[test]
    fn test_known_is_cold_until_listed_or_filled() {
        let mut known = Known::default();
        assert_eq!(known.tail(), None);
        known.listed = true;
        assert_eq!(known.tail().unwrap().head, GlobalSeq::ZERO);
        known.insert(meta(1, 3, 1));
        known.insert(meta(4, 4, 2));
        assert_eq!(
            known.tail(),
            Some(Tail {
                head: GlobalSeq(4),
                digest: SegmentDigest([2; 32])
            })
        );
    }

    #[test]
    fn test_known_finds_segments_by_event() {
        let mut known = Known::default();
        known.insert(meta(1, 3, 1));
        known.insert(meta(4, 9, 2));
        assert_eq!(known.containing(GlobalSeq(2)).unwrap().first, GlobalSeq(1));
        assert_eq!(known.containing(GlobalSeq(9)).unwrap().first, GlobalSeq(4));
        assert_eq!(known.containing(GlobalSeq(10)), None);
        assert_eq!(
            known.digest_ending_at(GlobalSeq(3)),
            Some(SegmentDigest([1; 32]))
        );
        assert_eq!(known.digest_ending_at(GlobalSeq(2)), None);
        assert_eq!(
            known.digest_ending_at(GlobalSeq::ZERO),
            Some(SegmentDigest::ROOT)
        );
        assert_eq!(known.floor_first(GlobalSeq(12)), Some(GlobalSeq(4)));
    }
}
