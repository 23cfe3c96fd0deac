//! [`Recent`]: the bytes of the last few segments this client wrote or read, so that a read
//! of the same key soon after (a writer's pull reading its own segment back, or, after a
//! lost race, the winner's segment the push just read to find out) costs no GET. Segments
//! are immutable, so a kept copy is never stale; a key that was missing is never kept.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::GlobalSeq;

/// Most segments kept: a few pages of a busy log.
const MAX_SEGMENTS: usize = 64;
/// Most bytes kept (a segment may be up to `max_bytes_per_segment`, 8 MiB by default).
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// The bytes of recent segments of one log, by first event, oldest first.
#[derive(Debug, Default)]
pub(super) struct Recent {
    segments: VecDeque<(GlobalSeq, Bytes)>,
    bytes: usize,
}

impl Recent {
    /// The bytes of the segment at `first`, if kept.
    pub(super) fn get(&self, first: GlobalSeq) -> Option<Bytes> {
        self.segments
            .iter()
            .rev()
            .find(|(at, _)| *at == first)
            .map(|(_, bytes)| bytes.clone())
    }

    /// Keeps the bytes of the segment at `first`, dropping the oldest beyond the limits. A
    /// segment larger than the byte limit is not kept.
    pub(super) fn insert(&mut self, first: GlobalSeq, bytes: Bytes) {
        if bytes.len() > MAX_BYTES || self.get(first).is_some() {
            return;
        }
        self.bytes += bytes.len();
        self.segments.push_back((first, bytes));
        while self.segments.len() > MAX_SEGMENTS || self.bytes > MAX_BYTES {
            match self.segments.pop_front() {
                Some((_, dropped)) => self.bytes -= dropped.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_recent_keeps_the_newest_segments_within_its_limits() {
        let mut recent = Recent::default();
        for n in 1..=(MAX_SEGMENTS as u64 + 10) {
            recent.insert(GlobalSeq(n), Bytes::from(vec![n as u8; 10]));
        }
        assert_eq!(recent.segments.len(), MAX_SEGMENTS);
        assert_eq!(recent.get(GlobalSeq(10)), None, "the oldest are dropped");
        let newest = MAX_SEGMENTS as u64 + 10;
        assert_eq!(
            recent.get(GlobalSeq(newest)),
            Some(Bytes::from(vec![newest as u8; 10]))
        );
        // Bytes: a large segment pushes out as many older ones as it needs.
        recent.insert(GlobalSeq(1_000), Bytes::from(vec![0; MAX_BYTES - 25]));
        assert!(recent.bytes <= MAX_BYTES, "{}", recent.bytes);
        assert_eq!(recent.segments.len(), 3);
        // Too large to keep at all.
        recent.insert(GlobalSeq(2_000), Bytes::from(vec![0; MAX_BYTES + 1]));
        assert_eq!(recent.get(GlobalSeq(2_000)), None);
    }
}
