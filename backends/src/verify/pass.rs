//! The segments' pass of [`verify_store`](super::verify_store): every segment, and the
//! packs when a hook audits them, read in one stream in the order of the log ([`plan`]) and
//! judged in that order ([`audit_log`]).

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{Chain, ChainLink, Fault, PARALLEL, PackRead, PackSummary, VerifyReport, list_parsed};
use crate::blocking::run_cpu;
use crate::copy::StoreLocation;
use crate::pack;
use crate::paths::LogPaths;
use crate::segment::{self, SegmentDigest};
use crate::segment_log::get_if_present;
use crate::{BackendError, GlobalSeq};

/// One object of the segments' pass.
#[derive(Debug, Clone, Copy)]
enum Object {
    /// The segment at this first event.
    Segment(GlobalSeq),
    /// The pack of these events (by its key).
    Pack(GlobalSeq, GlobalSeq),
}

/// What `segment::check` makes of a segment.
type SegmentCheck = Result<(segment::SegmentHeader, SegmentDigest), segment::SegmentError>;

/// What a read of the pass brought: a segment's check and its bytes, or a pack whose
/// checksum held, or why it did not (`None`: listed but gone).
enum Read {
    Segment(GlobalSeq, Option<(SegmentCheck, bytes::Bytes)>),
    Pack(
        (GlobalSeq, GlobalSeq),
        Option<Result<pack::Checksummed, pack::PackError>>,
    ),
}

/// Reads every segment in key order and checks it on its own and against the one before;
/// with `with_packs`, reads the packs in the same pass (see [`plan`]): each pack's checksum
/// is checked on the task that read it, beside the other reads, and its segments, when it
/// comes in order, against the segments just read ([`Held`]).
pub(super) async fn audit_log(
    place: &StoreLocation,
    paths: &LogPaths,
    backend_id: &str,
    with_packs: bool,
    report: &mut VerifyReport,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Chain, BackendError> {
    let store = &place.store;
    let (segments, packs) = futures::try_join!(
        list_parsed(store, paths.segments_dir(), |key| paths.parse_segment(key)),
        async {
            if with_packs {
                list_parsed(store, paths.packs_dir(), |key| paths.parse_pack(key)).await
            } else {
                Ok(Vec::new())
            }
        }
    )?;
    let total = segments.len() as u64;
    let (objects, keep_from) = plan(segments, packs);
    let mut chain = Chain::default();
    let mut held = Held::default();
    // Where the next segment should start, and the digest it should chain to (`None` after
    // a bad segment: the one after it is then checked on its own).
    let mut expected = Some(GlobalSeq::FIRST);
    let mut prev: Option<SegmentDigest> = Some(SegmentDigest::ROOT);
    let mut sound = true;
    let mut reads = futures::stream::iter(objects)
        .map(|(object, key)| match object {
            Object::Segment(first) => {
                // Only the header and digest are kept: the events are checked in place
                // (`segment::check`), never built.
                let read = read_and_check(store.clone(), key.clone(), |bytes| {
                    (segment::check(&bytes), bytes)
                });
                async move { Ok::<_, BackendError>((key, Read::Segment(first, read.await?))) }
                    .boxed()
            }
            Object::Pack(first, last) => {
                let read = read_and_check(store.clone(), key.clone(), pack::Checksummed::check);
                async move { Ok((key, Read::Pack((first, last), read.await?))) }.boxed()
            }
        })
        .buffered(PARALLEL)
        .enumerate();
    while let Some((index, read)) = reads.next().await {
        let (key, read) = read?;
        let (first, read) = match read {
            Read::Segment(first, read) => (first, read),
            Read::Pack(range, read) => {
                let read = read.map(|pack| {
                    pack.and_then(|pack| pack.digests(|bytes| held.checked(bytes)))
                        .map(|pack| PackSummary::of(pack, backend_id))
                });
                chain.packs.push(PackRead { key, range, read });
                held.release_before(keep_from[index + 1]);
                continue;
            }
        };
        report.segments += 1;
        progress(report.segments, total);
        let mut fault = |message: String| {
            sound = false;
            report.faults.push(Fault {
                key: key.to_string(),
                message,
            });
        };
        if let Some(expected) = expected.filter(|&expected| expected != first) {
            if first > expected {
                fault(format!(
                    "the log has a gap before it: events {expected} to {} are in no segment",
                    GlobalSeq(first.0 - 1)
                ));
            } else {
                fault(format!(
                    "it overlaps the segment before it, which ends at {}",
                    GlobalSeq(expected.0 - 1)
                ));
            }
            prev = None;
        }
        let Some((decoded, bytes)) = read else {
            fault("it was listed but is gone".into());
            prev = None;
            continue;
        };
        let segment = match decoded {
            Ok((header, digest)) => segment::Segment {
                header,
                events: Vec::new(),
                digest,
            },
            Err(error) => {
                fault(error.to_string());
                prev = None;
                // Where it ends is unknown: the next one is checked on its own.
                expected = None;
                continue;
            }
        };
        if let Err(error) = segment.check_position(first, prev, backend_id) {
            fault(error.to_string());
        }
        let last = segment.header.last();
        if sound {
            chain.head = last;
        }
        report.events += u64::from(segment.header.count);
        chain.links.insert(
            first,
            ChainLink {
                first,
                last,
                digest: segment.digest,
            },
        );
        expected = Some(last.next());
        prev = Some(segment.digest);
        held.hold(first, segment.digest, bytes);
        held.release_before(keep_from[index + 1]);
    }
    chain.packs.sort_by_key(|pack| pack.range);
    Ok(chain)
}

/// The order of the segments' pass: every segment in key order, and each pack right after
/// the segment that ends where the pack ends (by the listing: a segment ends where the next
/// listed one starts), so that the segments a pack holds were read just before it. With,
/// for each position in that order, the first event of the first segment a pack at or
/// after it may hold (the least first event of those packs): what [`Held`] must keep.
fn plan(
    segments: Vec<(GlobalSeq, Path)>,
    packs: Vec<((GlobalSeq, GlobalSeq), Path)>,
) -> (Vec<(Object, Path)>, Vec<GlobalSeq>) {
    let mut objects: Vec<((GlobalSeq, bool, GlobalSeq), Object, Path)> =
        Vec::with_capacity(segments.len() + packs.len());
    let ends: Vec<GlobalSeq> = segments
        .iter()
        .skip(1)
        .map(|(next, _)| GlobalSeq(next.0.saturating_sub(1)))
        .chain([GlobalSeq(u64::MAX)])
        .collect();
    for ((first, key), end) in segments.into_iter().zip(ends) {
        objects.push(((end, false, first), Object::Segment(first), key));
    }
    for ((first, last), key) in packs {
        objects.push(((last, true, first), Object::Pack(first, last), key));
    }
    objects.sort_by_key(|(order, ..)| *order);
    let mut keep_from = vec![GlobalSeq(u64::MAX); objects.len() + 1];
    for (index, (_, object, _)) in objects.iter().enumerate().rev() {
        keep_from[index] = match object {
            Object::Pack(first, _) => keep_from[index + 1].min(*first),
            Object::Segment(_) => keep_from[index + 1],
        };
    }
    let objects = objects
        .into_iter()
        .map(|(_, object, key)| (object, key))
        .collect();
    (objects, keep_from)
}

/// The most bytes of segments [`Held`] keeps: a pack whose segments are not all held is
/// still checked in full (its other segments hashed).
const HELD_BYTES: usize = 64 << 20;

/// The segments of the pass whose own checksum held, kept (the buffers their GETs returned)
/// while a pack still to come may hold them: a pack's copy of a held segment is compared
/// with it byte for byte instead of being hashed again.
#[derive(Default)]
struct Held {
    by_digest: std::collections::HashMap<SegmentDigest, bytes::Bytes>,
    /// In the order held, with their first events.
    order: std::collections::VecDeque<(GlobalSeq, SegmentDigest)>,
    bytes: usize,
}

impl Held {
    /// Keeps the bytes of a segment whose checksum held (its digest is its trailer).
    fn hold(&mut self, first: GlobalSeq, digest: SegmentDigest, bytes: bytes::Bytes) {
        self.bytes += bytes.len();
        if let Some(replaced) = self.by_digest.insert(digest, bytes) {
            self.bytes -= replaced.len();
        }
        self.order.push_back((first, digest));
        while self.bytes > HELD_BYTES {
            self.drop_oldest();
        }
    }

    /// Lets go of the segments that start before `first`.
    fn release_before(&mut self, first: GlobalSeq) {
        while self.order.front().is_some_and(|(at, _)| *at < first) {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some((_, digest)) = self.order.pop_front()
            && let Some(bytes) = self.by_digest.remove(&digest)
        {
            self.bytes -= bytes.len();
        }
    }

    /// Whether `bytes` are, trailer included, those of a held segment.
    fn checked(&self, bytes: &[u8]) -> bool {
        let Some(trailer) = bytes.len().checked_sub(segment::TRAILER_LEN) else {
            return false;
        };
        let mut digest = SegmentDigest::default();
        digest.0.copy_from_slice(&bytes[trailer..]);
        self.by_digest
            .get(&digest)
            .is_some_and(|held| held.as_ref() == bytes)
    }
}

/// Objects up to this size are checked on the task that read them; larger ones (packs) on
/// the blocking pool ([`run_cpu`]).
const INLINE_CHECK_BYTES: usize = 256 * 1024;

/// Reads `key` and checks its bytes with `check` (`None` when it is gone), so that checking
/// overlaps the GETs in flight and uses every core: on a multi-thread runtime in a task of
/// its own, which a worker runs, the check on that task for an object up to
/// [`INLINE_CHECK_BYTES`] (a segment: a hop to the blocking pool per object would cost about
/// as much as its check) and on the blocking pool for a larger one; on a current-thread
/// runtime (the deterministic simulation) on the caller's task, the check inline.
fn read_and_check<T: Send + 'static>(
    store: Arc<dyn ObjectStore>,
    key: Path,
    check: fn(bytes::Bytes) -> T,
) -> futures::future::BoxFuture<'static, Result<Option<T>, BackendError>> {
    let read = async move {
        let Some(bytes) = get_if_present(store.as_ref(), &key).await? else {
            return Ok(None);
        };
        if bytes.len() <= INLINE_CHECK_BYTES {
            return Ok(Some(check(bytes)));
        }
        run_cpu(move || check(bytes))
            .await
            .map(Some)
            .map_err(|message| BackendError::Unavailable {
                message: format!("verify: a checking thread stopped: {message}"),
            })
    };
    if Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
        return Box::pin(read);
    }
    let task = tokio::spawn(read);
    Box::pin(async move {
        task.await.map_err(|e| BackendError::Unavailable {
            message: format!("verify: a reading task stopped: {e}"),
        })?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Path {
        Path::from(name)
    }

    #[test]
    fn test_plan_reads_each_pack_right_after_the_segment_that_ends_it() {
        // Segments 1, 4, 7, 10, 13; packs 1-6, 7-12 and 1-12 (merged), and one that ends
        // inside a segment (4-8), which comes before that segment (and then hashes it).
        let segments = [1, 4, 7, 10, 13]
            .map(|first| (GlobalSeq(first), key(&format!("s{first}"))))
            .to_vec();
        let packs = [(1, 6), (7, 12), (1, 12), (4, 8)]
            .map(|(first, last)| {
                (
                    (GlobalSeq(first), GlobalSeq(last)),
                    key(&format!("p{first}-{last}")),
                )
            })
            .to_vec();
        let (objects, keep_from) = plan(segments, packs);
        let order: Vec<&str> = objects.iter().map(|(_, key)| key.as_ref()).collect();
        assert_eq!(
            order,
            [
                "s1", "s4", "p1-6", "p4-8", "s7", "s10", "p1-12", "p7-12", "s13"
            ]
        );
        // Before each position, the least first event of the packs from there on.
        let keep: Vec<u64> = keep_from.iter().map(|seq| seq.0).collect();
        assert_eq!(keep, [1, 1, 1, 1, 1, 1, 1, 7, u64::MAX, u64::MAX]);
    }

    #[test]
    fn test_held_takes_only_equal_bytes_and_lets_go_before_a_position() {
        let segment = |first: u8, last_byte: u8| {
            let mut bytes = vec![first; 64];
            bytes[10] = last_byte;
            let mut digest = SegmentDigest::default();
            digest
                .0
                .copy_from_slice(&bytes[64 - segment::TRAILER_LEN..]);
            (bytes::Bytes::from(bytes), digest)
        };
        let mut held = Held::default();
        let (one, one_digest) = segment(1, 0);
        let (two, two_digest) = segment(2, 0);
        held.hold(GlobalSeq(1), one_digest, one.clone());
        held.hold(GlobalSeq(4), two_digest, two.clone());
        assert!(held.checked(&one));
        assert!(held.checked(&two));
        // The same trailer, another byte before it: not taken.
        let (changed, _) = segment(1, 9);
        assert!(!held.checked(&changed));
        assert!(!held.checked(&one[1..]));
        assert!(!held.checked(&[]));
        held.release_before(GlobalSeq(4));
        assert!(!held.checked(&one));
        assert!(held.checked(&two));
        assert_eq!(held.bytes, two.len());
        held.release_before(GlobalSeq(u64::MAX));
        assert!(!held.checked(&two));
        assert_eq!(held.bytes, 0);
    }
}
