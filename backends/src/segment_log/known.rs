//! What a client knows about the log of one incarnation: facts about immutable segments it
//! has verified, and the tail derived from them.

use std::collections::BTreeMap;

use crate::GlobalSeq;
use crate::segment::SegmentDigest;

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
    /// Digests of segments ending at an event, learned from a checked snapshot's link
    /// (last event → digest): a pull from there checks its first segment against it, yet
    /// the client stays cold (it lists and reads ahead, and reads packs, for the tail).
    links: BTreeMap<u64, SegmentDigest>,
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
            .or_else(|| self.links.get(&seq.0).copied())
    }

    /// Records that a checked segment ends at `last` with `digest` (a snapshot's link),
    /// without counting it as a known segment: the tail stays unknown.
    pub(super) fn insert_link(&mut self, last: GlobalSeq, digest: SegmentDigest) {
        self.links.insert(last.0, digest);
    }

    /// Records that a LIST found the tail: from now on probing forward is enough.
    pub(super) fn mark_listed(&mut self) {
        self.listed = true;
    }

    /// Whether a LIST found the tail once.
    pub(super) fn is_listed(&self) -> bool {
        self.listed
    }

    /// The first numbers of the known segments from `first` on, when they follow each
    /// other without a hole up to the highest known one; empty otherwise (or when no segment
    /// starts at `first`).
    pub(super) fn chain_from(&self, first: GlobalSeq) -> Vec<GlobalSeq> {
        let mut chain = Vec::new();
        let mut expected = first;
        for meta in self.segments.range(first.0..).map(|(_, meta)| meta) {
            if meta.first != expected {
                return Vec::new();
            }
            chain.push(meta.first);
            expected = meta.last.next();
        }
        chain
    }

    /// The highest known first number at or below `seq`.
    pub(super) fn floor_first(&self, seq: GlobalSeq) -> Option<GlobalSeq> {
        self.segments
            .range(..=seq.0)
            .next_back()
            .map(|(_, m)| m.first)
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

    #[test]
    fn test_a_snapshot_link_gives_a_digest_but_no_tail() {
        let mut known = Known::default();
        known.insert_link(GlobalSeq(40), SegmentDigest([5; 32]));
        assert_eq!(known.tail(), None, "the client is still cold");
        assert_eq!(
            known.digest_ending_at(GlobalSeq(40)),
            Some(SegmentDigest([5; 32]))
        );
        assert_eq!(known.digest_ending_at(GlobalSeq(41)), None);
    }

    #[test]
    fn test_known_chains_only_without_holes() {
        let mut known = Known::default();
        known.insert(meta(1, 3, 1));
        known.insert(meta(4, 9, 2));
        known.insert(meta(10, 10, 3));
        assert_eq!(
            known.chain_from(GlobalSeq(4)),
            [GlobalSeq(4), GlobalSeq(10)]
        );
        assert_eq!(known.chain_from(GlobalSeq(5)), []);
        known.insert(meta(12, 12, 4));
        assert_eq!(known.chain_from(GlobalSeq(1)), [], "a hole at 11");
        assert_eq!(known.chain_from(GlobalSeq(12)), [GlobalSeq(12)]);
    }
}
