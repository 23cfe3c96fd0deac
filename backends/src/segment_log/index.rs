//! How a client reads segments and finds the tail of the log (probe `head+1`; LIST only when
//! cold), recording what it verified in the incarnation's [`Known`](super::known::Known).

use bytes::Bytes;
use futures::TryStreamExt;

use super::identity::Incarnation;
use super::known::{SegmentMeta, Tail};
use super::{Inner, corrupt, definitive, get_if_present, store_error};
use crate::segment::{self, Segment, SegmentDigest};
use crate::{BackendError, GlobalSeq};

/// Decodes the bytes read at key `first` of `log` and checks their place in the log: the
/// key, the store, and the chain to `prev_digest` (the digest of the segment before it, when
/// known). A verified segment is recorded in the log's [`Known`](super::known::Known).
pub(super) fn verify_segment(
    log: &Incarnation,
    first: GlobalSeq,
    prev_digest: Option<SegmentDigest>,
    bytes: &[u8],
) -> Result<Segment, BackendError> {
    let key = log.paths.segment(first);
    let segment = segment::decode(bytes).map_err(|e| corrupt(&key, e))?;
    segment
        .check_position(first, prev_digest, log.id.as_str())
        .map_err(|e| corrupt(&key, e))?;
    log.known().insert(SegmentMeta {
        first,
        last: segment.header.last(),
        digest: segment.digest,
    });
    Ok(segment)
}

impl Inner {
    /// Reads and verifies the segment at key `first` of `log`: `None` when there is no such
    /// object. `prev_digest` is the digest of the segment before it, when known; the chain
    /// is checked against it. A verified segment is recorded in the log's [`Known`](super::known::Known).
    pub(super) async fn fetch_segment(
        &self,
        log: &Incarnation,
        first: GlobalSeq,
        prev_digest: Option<SegmentDigest>,
    ) -> Result<Option<Segment>, BackendError> {
        match self.get_segment(log, first).await? {
            Some(bytes) => {
                let segment = verify_segment(log, first, prev_digest, &bytes)?;
                log.recent().insert(first, bytes);
                Ok(Some(segment))
            }
            None => Ok(None),
        }
    }

    /// The bytes of the segment at key `first` of `log`, unchecked: `None` when there is no
    /// such object. A cold pull runs several at once and checks them in order
    /// ([`verify_segment`]). A segment this client wrote, or read and checked, lately is
    /// not read again (see `recent.rs`).
    pub(super) async fn get_segment(
        &self,
        log: &Incarnation,
        first: GlobalSeq,
    ) -> Result<Option<Bytes>, BackendError> {
        if let Some(bytes) = log.recent().get(first) {
            return Ok(Some(bytes));
        }
        get_if_present(self.store.as_ref(), &log.paths.segment(first)).await
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
        if log.known().is_listed() {
            return Ok(None);
        }
        let after = self.list_segments(log, Some(missing)).await?;
        match after.into_iter().find(|first| *first > missing) {
            Some(first) => Ok(Some(first)),
            None => {
                log.known().mark_listed();
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
        log.known().mark_listed();
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
