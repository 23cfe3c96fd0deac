//! [`pull_json`]: the log from `e1` as checked segments whose events are kept as JSON
//! ([`SegmentJson`]), for an export: it writes each event's JSON as `serde_json` writes it,
//! which is what a segment holds, so nothing is built.
//!
//! It reads what a cold pull reads (`pull.rs`, `pack_read.rs`): the chain of packs from
//! `e1` (`pack_read::plan`), [`PACK_GETS`] at a time, each decoded on a blocking thread
//! where that keeps the run deterministic, then the segments listed after the last pack,
//! [`READ_AHEAD`] at a time. On a store that lists in key order (S3) each pack of the chain
//! is read as soon as the listing settles it ([`Chain`]), while the listing goes on; on
//! another, once it ends. Both listings end before the stream is handed out, with the head:
//! the last listed segment's last event (read then: one small GET), or the last pack's when
//! no segment follows it. That is the log's head without a LIST of every segment, which
//! `head` makes on a cold client (eleven LIST pages for 10,000 segments on S3, one after
//! another). Every segment
//! is checked as a pull checks it (the pack's or segment's checksum, framing, every event's
//! JSON and numbering, and its place: it starts where the one before ends, names its digest,
//! `e1` names the root, and it belongs to this store). It does not fall back: at the first
//! object that cannot be read or is refused, the stream fails, and the caller goes on with
//! an ordinary pull from the last event it took, which reads the segments of a refused pack
//! and names what is wrong. It ends with the last listed segment.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;

use super::identity::Incarnation;
use super::pack_read::{PackRange, check_range};
use super::pull::READ_AHEAD;
use super::{Inner, corrupt, get_if_present, store_error};
use crate::pack;
use crate::segment::{self, SegmentDigest, SegmentJson};
use crate::{BackendError, GlobalSeq, JsonLog};

/// Packs read at once, each GET then decoded on a blocking thread: more than a cold pull's
/// read-ahead, since nothing but the writing of the file waits on them (on S3 a GET of a
/// 4 MiB pack is mostly waiting), and a decoded pack holds no more memory than its bytes
/// (its events are ranges of them).
pub(super) const PACK_GETS: usize = 8;

/// What one read brought: the key of the object and its segments, decoded.
type Read = Result<(Path, Vec<SegmentJson>), BackendError>;

/// Decoded packs [`pull_json`] holds at most, read while it still lists: a few, so that the
/// reads go on while the listing ends, and memory stays bounded.
const EARLY_READS: usize = 4;

/// The log of `log` from `e1` as checked [`SegmentJson`]s, with its head (see the module
/// doc).
pub(super) async fn pull_json(
    inner: Arc<Inner>,
    log: Arc<Incarnation>,
) -> Result<JsonLog, BackendError> {
    let (steps, planned) = futures::channel::mpsc::unbounded();
    let mut pack_reads = {
        let (inner, log) = (inner.clone(), log.clone());
        planned
            .map(move |range| read_pack(inner.clone(), log.clone(), range))
            .buffered(PACK_GETS)
            .boxed()
    };
    // The packs of the chain are read as the listing settles them, while it goes on.
    let listing = {
        let (inner, log) = (inner.clone(), log.clone());
        async move { list(&inner, &log, steps).await }
    };
    tokio::pin!(listing);
    let mut early = Vec::new();
    let mut reads_ended = false;
    let listed = loop {
        tokio::select! {
            biased;
            listed = &mut listing => break listed?,
            read = pack_reads.next(), if !reads_ended && early.len() < EARLY_READS => match read {
                Some(read) => early.push(read),
                None => reads_ended = true,
            },
        }
    };
    let Listed {
        head,
        tail_keys,
        last,
    } = listed;
    let tail = {
        let log = log.clone();
        futures::stream::iter(tail_keys).map(move |first| {
            let (inner, log) = (inner.clone(), log.clone());
            let read = last
                .as_ref()
                .filter(|(last, _)| *last == first)
                .map(|(_, read)| read.clone());
            async move {
                match read {
                    Some(read) => Ok(read),
                    None => read_segment(&inner, &log, first).await,
                }
            }
        })
    }
    .buffered(READ_AHEAD);
    let checker = Checker {
        reads: futures::stream::iter(early)
            .chain(pack_reads)
            .chain(tail)
            .boxed(),
        log,
        next: GlobalSeq::FIRST,
        prev: SegmentDigest::ROOT,
        queue: VecDeque::new(),
        failed: false,
    };
    let segments = futures::stream::unfold(checker, |mut checker| async move {
        let item = checker.next().await?;
        Some((item, checker))
    })
    .boxed();
    Ok(JsonLog { head, segments })
}

/// What [`list`] found.
struct Listed {
    head: GlobalSeq,
    /// The segments after the chain of packs.
    tail_keys: Vec<GlobalSeq>,
    /// The last of them, read for the head.
    last: Option<(GlobalSeq, (Path, Vec<SegmentJson>))>,
}

/// Lists the packs, sending each pack of the chain into `steps` as soon as the listing
/// settles it ([`Chain`]), then the segments after the chain, and reads the last one for the
/// head (or takes the chain's end when none follows it).
async fn list(
    inner: &Inner,
    log: &Incarnation,
    steps: futures::channel::mpsc::UnboundedSender<PackRange>,
) -> Result<Listed, BackendError> {
    let dir = log.paths.packs_dir();
    let mut chain = Chain::new(inner.lists_in_key_order());
    let mut settled = Vec::new();
    if inner.lists_in_key_order() {
        let mut keys = inner.store.list(Some(dir));
        while let Some(meta) = keys.next().await {
            let meta = meta.map_err(|e| store_error("listing", dir, e))?;
            if let Some((first, last)) = log.paths.parse_pack(&meta.location) {
                chain.listed(first, last, &mut settled);
            }
            for range in settled.drain(..) {
                // The reads are gone: the caller stopped.
                let _ = steps.unbounded_send(range);
            }
        }
    } else {
        // Nothing is settled before the listing ends: it is read at once (a local folder's
        // names, without the metadata of each).
        for key in inner.list_folder(dir, None).await? {
            if let Some((first, last)) = log.paths.parse_pack(&key) {
                chain.listed(first, last, &mut settled);
            }
        }
    }
    chain.finish(&mut settled);
    for range in settled.drain(..) {
        let _ = steps.unbounded_send(range);
    }
    drop(steps);
    let packs_end = chain.end;
    let tail_keys = inner.list_segments(log, Some(packs_end)).await?;
    // The last listed segment, read now for the head, is handed out again at the end.
    let last = match tail_keys.last() {
        Some(&first) => Some((first, read_segment(inner, log, first).await?)),
        None => None,
    };
    let head = last
        .as_ref()
        .map_or(packs_end, |(_, (_, segments))| match segments.last() {
            Some(segment) => segment.header.last(),
            None => packs_end,
        });
    Ok(Listed {
        head,
        tail_keys,
        last,
    })
}

/// The chain of packs from `e1` that `pack_read::plan` takes, worked out as the listing
/// comes: from a listing in key order (keys start with the first event, zero-padded) a pack
/// of the chain is settled as soon as a key starting after its position comes, since no
/// pack listed later can hold that position; from any other listing, at its end.
struct Chain {
    in_key_order: bool,
    /// The furthest last event of a pack starting at each first event, as `list_packs`.
    packs: BTreeMap<GlobalSeq, GlobalSeq>,
    /// The first event the next pack of the chain must hold.
    position: GlobalSeq,
    /// The last event of the chain so far (`e0`: no pack yet).
    end: GlobalSeq,
    /// No listed pack holds `position`: the chain ends at `end`.
    ended: bool,
}

impl Chain {
    fn new(in_key_order: bool) -> Chain {
        Chain {
            in_key_order,
            packs: BTreeMap::new(),
            position: GlobalSeq::FIRST,
            end: GlobalSeq::ZERO,
            ended: false,
        }
    }

    /// A listed pack; pushes onto `settled` the packs of the chain it settles.
    fn listed(&mut self, first: GlobalSeq, last: GlobalSeq, settled: &mut Vec<PackRange>) {
        if self.in_key_order {
            while !self.ended && first > self.position {
                self.settle(settled);
            }
        }
        let furthest = self.packs.entry(first).or_insert(last);
        *furthest = (*furthest).max(last);
    }

    /// The listing ended: pushes onto `settled` the rest of the chain.
    fn finish(&mut self, settled: &mut Vec<PackRange>) {
        while !self.ended {
            self.settle(settled);
        }
    }

    /// The pack of the chain at `position`, picked from the packs listed so far as
    /// `pack_read::plan` picks it: of those that hold the position, the one reaching
    /// furthest (the last of them in key order on a tie).
    fn settle(&mut self, settled: &mut Vec<PackRange>) {
        let position = self.position;
        let best = self
            .packs
            .range(..=position)
            .filter(|(_, last)| **last >= position)
            .max_by_key(|(_, last)| **last);
        let Some((&first, &last)) = best else {
            self.ended = true;
            return;
        };
        settled.push((first, last));
        self.end = last;
        match last.0.checked_add(1) {
            Some(next) => self.position = GlobalSeq(next),
            None => self.ended = true,
        }
    }
}

/// The pack `range`, read and decoded, its key's range checked.
async fn read_pack(
    inner: Arc<Inner>,
    log: Arc<Incarnation>,
    range: (GlobalSeq, GlobalSeq),
) -> Read {
    let key = log.paths.pack(range.0, range.1);
    let Some(bytes) = get_if_present(inner.store.as_ref(), &key).await? else {
        return Err(corrupt(&key, "listed but gone when read"));
    };
    let decoded = crate::blocking::run_cpu(move || pack::decode_json(&bytes))
        .await
        .map_err(|failed| corrupt(&key, format!("its decoding stopped: {failed}")))?;
    let pack = decoded.map_err(|e| corrupt(&key, e))?;
    check_range(&key, (pack.first, pack.last), range)?;
    Ok((key, pack.segments))
}

/// The segment at `first`, read and decoded.
async fn read_segment(
    inner: &Inner,
    log: &Incarnation,
    first: GlobalSeq,
) -> Result<(Path, Vec<SegmentJson>), BackendError> {
    let key = log.paths.segment(first);
    let Some(bytes) = inner.get_segment(log, first).await? else {
        return Err(corrupt(&key, "listed but gone when read"));
    };
    let segment = segment::decode_json(bytes).map_err(|e| corrupt(&key, e))?;
    if segment.header.first != first {
        let starts = segment.header.first;
        return Err(corrupt(
            &key,
            format!("it starts at {starts}, its key says {first}"),
        ));
    }
    Ok((key, vec![segment]))
}

/// Hands out the segments of the reads in order, each checked to be the next of the log.
struct Checker {
    reads: BoxStream<'static, Read>,
    log: Arc<Incarnation>,
    /// The first event of the segment that comes next.
    next: GlobalSeq,
    /// The digest of the segment before it.
    prev: SegmentDigest,
    /// Segments of the last read not handed out yet, with its key.
    queue: VecDeque<(Path, SegmentJson)>,
    failed: bool,
}

impl Checker {
    async fn next(&mut self) -> Option<Result<SegmentJson, BackendError>> {
        loop {
            if self.failed {
                return None;
            }
            if let Some((key, segment)) = self.queue.pop_front() {
                // A pack that overlaps the one before holds segments already handed out.
                if segment.header.last() < self.next {
                    continue;
                }
                let placed =
                    segment.check_position(self.next, Some(self.prev), self.log.id.as_str());
                if let Err(error) = placed {
                    self.failed = true;
                    return Some(Err(corrupt(
                        &key,
                        format!("it does not chain onto the log: {error}"),
                    )));
                }
                self.next = segment.header.last().next();
                self.prev = segment.digest;
                return Some(Ok(segment));
            }
            match self.reads.next().await? {
                Ok((key, segments)) => self
                    .queue
                    .extend(segments.into_iter().map(|s| (key.clone(), s))),
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment_log::pack_read;

    /// The chain of `listing` as [`Chain`] settles it, in the order it settles it.
    fn chain_of(listing: &[PackRange], in_key_order: bool) -> Vec<PackRange> {
        let mut chain = Chain::new(in_key_order);
        let mut settled = Vec::new();
        for &(first, last) in listing {
            let before = settled.len();
            chain.listed(first, last, &mut settled);
            if !in_key_order {
                assert_eq!(settled.len(), before, "settled before the listing ended");
            }
        }
        chain.finish(&mut settled);
        assert_eq!(chain.end, settled.last().map_or(GlobalSeq::ZERO, |r| r.1));
        settled
    }

    #[test]
    fn test_the_chain_settled_while_listing_is_the_plan_of_the_whole_listing() {
        // Packs of several levels over a log, some missing, some overlapping or out of the
        // levels' grid, listed in key order and in another order.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for _ in 0..500 {
            let mut packs = std::collections::BTreeSet::new();
            for _ in 0..next(40) {
                let width = [1, 4, 16, 64][next(4) as usize];
                let first = if next(5) == 0 {
                    1 + next(200)
                } else {
                    1 + width * next(200 / width + 1)
                };
                packs.insert((GlobalSeq(first), GlobalSeq(first + width - 1 + next(2))));
            }
            let listing: Vec<PackRange> = packs.into_iter().collect();
            let mut by_first = BTreeMap::new();
            for &(first, last) in &listing {
                let furthest = by_first.entry(first).or_insert(last);
                *furthest = (*furthest).max(last);
            }
            let plan = pack_read::plan(&by_first, GlobalSeq::FIRST);
            assert_eq!(chain_of(&listing, true), plan, "{listing:?}");
            let mut shuffled = listing.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, next(i as u64 + 1) as usize);
            }
            assert_eq!(chain_of(&shuffled, false), plan, "{shuffled:?}");
        }
    }

    #[test]
    fn test_a_pack_of_the_chain_is_settled_once_a_key_after_its_position_is_listed() {
        let mut chain = Chain::new(true);
        let mut settled = Vec::new();
        chain.listed(GlobalSeq(1), GlobalSeq(4), &mut settled);
        chain.listed(GlobalSeq(1), GlobalSeq(16), &mut settled);
        assert!(settled.is_empty());
        chain.listed(GlobalSeq(5), GlobalSeq(8), &mut settled);
        assert_eq!(settled, [(GlobalSeq(1), GlobalSeq(16))]);
        chain.listed(GlobalSeq(17), GlobalSeq(20), &mut settled);
        assert_eq!(settled.len(), 1);
        chain.listed(GlobalSeq(21), GlobalSeq(24), &mut settled);
        assert_eq!(settled[1..], [(GlobalSeq(17), GlobalSeq(20))]);
        chain.finish(&mut settled);
        assert_eq!(settled[2..], [(GlobalSeq(21), GlobalSeq(24))]);
        assert_eq!(chain.end, GlobalSeq(24));
    }
}
