//! [`pull_json`]: the log from `e1` as checked segments whose events are kept as JSON
//! ([`SegmentJson`]), for an export: it writes each event's JSON as `serde_json` writes it,
//! which is what a segment holds, so nothing is built.
//!
//! It reads what a cold pull reads (`pull.rs`, `pack_read.rs`): the chain of packs from
//! `e1` ([`pack_read::plan`]), [`PACK_GETS`] at a time, each decoded on a blocking thread
//! where that keeps the run deterministic, then the segments listed after the last pack,
//! [`READ_AHEAD`] at a time. Both listings come first, and the head is the last listed
//! segment's last event (read then: one small GET), or the last pack's when no segment
//! follows it: the log's head without a LIST of every segment, which `head` makes on a cold
//! client (eleven LIST pages for 10,000 segments on S3, one after another). Every segment
//! is checked as a pull checks it (the pack's or segment's checksum, framing, every event's
//! JSON and numbering, and its place: it starts where the one before ends, names its digest,
//! `e1` names the root, and it belongs to this store). It does not fall back: at the first
//! object that cannot be read or is refused, the stream fails, and the caller goes on with
//! an ordinary pull from the last event it took, which reads the segments of a refused pack
//! and names what is wrong. It ends with the last listed segment.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;

use super::compact::list_packs;
use super::identity::Incarnation;
use super::pack_read;
use super::pull::READ_AHEAD;
use super::{Inner, corrupt, get_if_present};
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

/// The log of `log` from `e1` as checked [`SegmentJson`]s, with its head (see the module
/// doc).
pub(super) async fn pull_json(
    inner: Arc<Inner>,
    log: Arc<Incarnation>,
) -> Result<JsonLog, BackendError> {
    let packs = list_packs(&inner.store, &log).await?;
    let chain = pack_read::plan(&packs, GlobalSeq::FIRST);
    let packs_end = chain.last().map_or(GlobalSeq::ZERO, |range| range.1);
    let tail_keys = inner.list_segments(&log, Some(packs_end)).await?;
    // The last listed segment, read now for the head, is handed out again at the end.
    let last = match tail_keys.last() {
        Some(&first) => Some((first, read_segment(&inner, &log, first).await?)),
        None => None,
    };
    let head = last
        .as_ref()
        .map_or(packs_end, |(_, (_, segments))| match segments.last() {
            Some(segment) => segment.header.last(),
            None => packs_end,
        });
    let pack_reads = {
        let (inner, log) = (inner.clone(), log.clone());
        futures::stream::iter(chain)
            .map(move |range| read_pack(inner.clone(), log.clone(), range))
            .buffered(PACK_GETS)
    };
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
        reads: pack_reads.chain(tail).boxed(),
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
    if (pack.first, pack.last) != range {
        return Err(corrupt(
            &key,
            format!(
                "it holds events {} to {}, its key says {} to {}",
                pack.first, pack.last, range.0, range.1
            ),
        ));
    }
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
