//! A pull: pages of events after a cursor, with the hash chain checked as it goes; a live
//! pull then polls `head+1` with adaptive backoff, and re-reads `store.json` every
//! `identity_check` while idle, so that a reader that never pushes finds out when the store
//! was wiped or replaced.
//!
//! A cold pull (a fresh client, or one whose cursor this process has not seen) LISTs the
//! packs once and reads the chain of them that covers the log from its cursor (see
//! `pack_read.rs`; a refused pack is named in a warning and its segments are read instead);
//! then it LISTs the segment keys from the cursor's segment on (after the last pack), once,
//! and reads them [`READ_AHEAD`] at a time in key order, checking each against the one
//! before. A pull that knows the segments ahead of its cursor already (this client read or
//! wrote them: a writer that lost a race has just probed the winners' segments) reads them
//! ahead the same way, without a LIST. What follows (segments written since, and the live
//! polls) is read one GET at a time.
//!
//! Every page gathers whole consecutive segments up to `page_events` events: a live reader
//! that finds several new segments at a poll delivers them in one page, which the leader
//! takes in one step (one rebase of its pending events, not one per segment). The GET that
//! found the end of the log while gathering is not repeated to tell `More` from `NoMore`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::time::Instant;

use super::compact::list_packs;
use super::identity::Incarnation;
use super::index::verify_segment;
use super::pack_read::{self, PackAhead, PackRead};
use super::{Inner, corrupt, definitive};
use crate::segment::{Segment, SegmentDigest};
use crate::{BackendError, GlobalEvent, GlobalSeq, PageInfo, PullPage, PullStream};

/// How many segment GETs a cold pull keeps in flight. A GET of a small object costs about
/// 80 µs from a folder and 1.6 ms from SeaweedFS one at a time; 16 in flight reach 40k and
/// 2.1k GETs/s there (issue 11's measurements).
pub(super) const READ_AHEAD: usize = 16;

/// The listed segments of a cold pull, being read [`READ_AHEAD`] at a time, in key order.
struct ReadAhead {
    /// Each listed key with what its GET found (`None`: no object).
    reads: BoxStream<'static, (GlobalSeq, Result<Option<Bytes>, BackendError>)>,
    /// Listed keys not taken from `reads` yet.
    left: usize,
}

/// Where a pull stream is.
enum Phase {
    /// Nothing read yet.
    Start,
    /// Events are buffered; emit them.
    Streaming,
    /// Live and caught up: poll after `delay`.
    Idle { delay: Duration },
    /// The next item is this error, then the end.
    Failing(BackendError),
    /// Ended.
    Done,
}

struct PullState {
    inner: Arc<Inner>,
    /// The incarnation of the store this pull reads; a pull never crosses into another.
    log: Arc<Incarnation>,
    /// Whether the first read must also check `store.json` (the incarnation was cached).
    check_first: bool,
    /// When `store.json` was last checked (or the pull started).
    checked_at: Instant,
    live: bool,
    /// The last event delivered (or the starting cursor).
    cursor: GlobalSeq,
    /// The key (first number) of the next segment to read; `None` until located.
    next_key: Option<GlobalSeq>,
    /// The digest of the segment ending at `next_key - 1`, when known.
    prev_digest: Option<SegmentDigest>,
    /// Events read but not yet delivered, all after `cursor`, from one segment.
    buffer: VecDeque<GlobalEvent>,
    /// The highest segment key a LIST of this pull saw: a missing key below it is a gap.
    listed_max: Option<GlobalSeq>,
    /// A live pull sent a `More` page and then failed to read on: the next poll that finds
    /// nothing new must say `NoMore`, or a caller waiting to be caught up waits forever.
    owes_no_more: bool,
    /// A cold pull's chain of packs still to read; `None` once it is used up (the segments
    /// are listed from there then), or for a pull that found no pack. While `ahead` holds
    /// the segments of a refused pack's range, the packs wait.
    packs: Option<PackAhead>,
    /// A cold pull's listed segments still to read; `None` once they are used up, after a
    /// failed read, or for a pull that did not LIST. Its stream is `Send` but not `Sync`, so
    /// the methods that await take `&mut self`.
    ahead: Option<ReadAhead>,
    /// A read that failed while filling a page with events already in it: the page goes
    /// out first, this error with the next read.
    deferred: Option<BackendError>,
    /// The key that filling the page just found missing (the end of the log as of that
    /// read): the read that tells `More` from `NoMore` right after it need not repeat it.
    /// Cleared when used, and whenever it may be stale.
    missing: Option<GlobalSeq>,
    phase: Phase,
}

pub(super) fn pull(
    inner: Arc<Inner>,
    log: Arc<Incarnation>,
    check_first: bool,
    cursor: GlobalSeq,
    live: bool,
) -> PullStream {
    let state = PullState {
        inner,
        log,
        check_first,
        checked_at: Instant::now(),
        live,
        cursor,
        next_key: None,
        prev_digest: None,
        buffer: VecDeque::new(),
        listed_max: None,
        owes_no_more: false,
        packs: None,
        ahead: None,
        deferred: None,
        missing: None,
        phase: Phase::Start,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next_item().await?;
        Some((item, state))
    })
    .boxed()
}

impl PullState {
    async fn next_item(&mut self) -> Option<Result<PullPage, BackendError>> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Failing(error) => return Some(Err(error)),
                Phase::Start => match self.first_advance().await {
                    Ok(true) => self.phase = Phase::Streaming,
                    Ok(false) => {
                        self.phase = self.caught_up();
                        return Some(Ok(PullPage {
                            events: Vec::new(),
                            page_info: PageInfo::NoMore,
                        }));
                    }
                    Err(error) => return Some(Err(error)),
                },
                Phase::Streaming => return Some(Ok(self.emit().await)),
                Phase::Idle { delay } => {
                    tokio::time::sleep(delay).await;
                    if let Err(error) = self.check_now_and_then().await {
                        return Some(Err(error));
                    }
                    match self.advance().await {
                        Ok(true) => self.phase = Phase::Streaming,
                        Ok(false) if self.owes_no_more => {
                            self.owes_no_more = false;
                            self.phase = self.caught_up();
                            return Some(Ok(PullPage {
                                events: Vec::new(),
                                page_info: PageInfo::NoMore,
                            }));
                        }
                        Ok(false) => self.phase = self.backoff(delay),
                        Err(error) if error.is_retryable() => {
                            tracing::warn!(%error, "live pull poll failed; retrying");
                            self.phase = self.backoff(delay);
                        }
                        Err(error) => return Some(Err(error)),
                    }
                }
            }
        }
    }

    /// The first read, with the check of `store.json` alongside when the incarnation was
    /// cached (a cursor in a wiped store would otherwise read as "nothing new").
    async fn first_advance(&mut self) -> Result<bool, BackendError> {
        if !self.check_first {
            return self.advance().await;
        }
        let (inner, log) = (self.inner.clone(), self.log.clone());
        let (advanced, check) =
            futures::join!(self.advance(), async { inner.check_identity(&log).await });
        definitive(check)?;
        advanced
    }

    /// Every `identity_check` of an idle live pull: one GET of `store.json`, failing the
    /// stream when the store is not this incarnation any more.
    async fn check_now_and_then(&mut self) -> Result<(), BackendError> {
        if self.checked_at.elapsed() < self.inner.config.identity_check {
            return Ok(());
        }
        self.checked_at = Instant::now();
        definitive(self.inner.check_identity(&self.log).await)
    }

    /// What follows a `NoMore` page.
    fn caught_up(&self) -> Phase {
        if self.live {
            Phase::Idle {
                delay: self.inner.config.poll_min,
            }
        } else {
            Phase::Done
        }
    }

    fn backoff(&self, delay: Duration) -> Phase {
        Phase::Idle {
            delay: (delay * 2).min(self.inner.config.poll_max),
        }
    }

    /// Emits one page from the buffer, filled first from a cold pull's read-ahead. When the
    /// buffer runs dry, reads the next segment first, to tell `More` from `NoMore` (the
    /// read is needed anyway).
    async fn emit(&mut self) -> PullPage {
        if let Err(error) = self.fill().await {
            self.deferred = Some(error);
        }
        let take = self.buffer.len().min(self.inner.config.page_events);
        let events: Vec<GlobalEvent> = self.buffer.drain(..take).collect();
        if let Some(last) = events.last() {
            self.cursor = last.seq_num;
        }
        let more = PageInfo::More { remaining: None };
        if !self.buffer.is_empty() {
            self.missing = None;
            self.phase = Phase::Streaming;
            return PullPage {
                events,
                page_info: more,
            };
        }
        let page_info = match self.advance().await {
            Ok(true) => {
                self.phase = Phase::Streaming;
                more
            }
            Ok(false) => {
                self.owes_no_more = false;
                self.phase = self.caught_up();
                PageInfo::NoMore
            }
            Err(error) if self.live && error.is_retryable() => {
                tracing::warn!(%error, "live pull read failed; retrying");
                self.owes_no_more = true;
                self.phase = Phase::Idle {
                    delay: self.inner.config.poll_min,
                };
                more
            }
            Err(error) => {
                // Deliver the good page first; the error follows and ends the stream.
                self.phase = Phase::Failing(error);
                more
            }
        };
        PullPage { events, page_info }
    }

    /// Reads segments until one holds events after the cursor (`true`) or the next key does
    /// not exist (`false`).
    async fn advance(&mut self) -> Result<bool, BackendError> {
        if let Some(error) = self.deferred.take() {
            return Err(error);
        }
        let mut key = match self.next_key {
            Some(key) => key,
            None => self.locate().await?,
        };
        loop {
            let segment = if self.missing.take() == Some(key) {
                None
            } else {
                self.read_segment(key).await?
            };
            let Some(segment) = segment else {
                self.check_no_gap(key).await?;
                return Ok(false);
            };
            key = self.take_segment(segment);
            if !self.buffer.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Gathers the segments that follow the buffered ones into the buffer, up to a page of
    /// events (many small segments make one page, and one step for the caller): from the
    /// packs and the read-ahead while they have them, then one GET at a time. Stops at a
    /// missing key and remembers it: [`PullState::advance`] tells the end of the log from a
    /// gap there.
    async fn fill(&mut self) -> Result<(), BackendError> {
        self.missing = None;
        while self.buffer.len() < self.inner.config.page_events
            && let Some(key) = self.next_key
        {
            match self.read_segment(key).await? {
                Some(segment) => {
                    self.take_segment(segment);
                }
                None => {
                    self.missing = Some(key);
                    break;
                }
            }
        }
        Ok(())
    }

    /// The segment at `key`, checked against the one before: from the packs while they
    /// have it (the segments of a refused pack's range are listed and read ahead, and once
    /// the packs are used up, the segments from `key` on), from the read-ahead while it has
    /// `key` next, else with one GET.
    async fn read_segment(&mut self, key: GlobalSeq) -> Result<Option<Segment>, BackendError> {
        if self.ahead.is_none()
            && let Some(packs) = &mut self.packs
        {
            match packs.next(&self.log, key, self.prev_digest).await {
                PackRead::Segment(segment) => return Ok(Some(segment)),
                PackRead::Refused { last } => self.list_ahead(key, Some(last)).await?,
                PackRead::UsedUp => {
                    self.packs = None;
                    self.list_ahead(key, None).await?;
                }
            }
        }
        if let Some(ahead) = &mut self.ahead {
            let next = if ahead.left > 0 {
                ahead.left -= 1;
                ahead.reads.next().await
            } else {
                None
            };
            match next {
                Some((listed, read)) if listed == key => {
                    if ahead.left == 0 {
                        self.ahead = None;
                    }
                    let read = read.and_then(|bytes| {
                        bytes
                            .map(|bytes| verify_segment(&self.log, key, self.prev_digest, &bytes))
                            .transpose()
                    });
                    if read.is_err() {
                        self.ahead = None;
                    }
                    return read;
                }
                // Used up, or the listing does not go on at `key` (a gap, or a segment
                // that overlaps the next): read on one key at a time, which tells.
                _ => self.ahead = None,
            }
        }
        self.inner
            .fetch_segment(&self.log, key, self.prev_digest)
            .await
    }

    /// Buffers the events of `segment` (the one at `next_key`) after the cursor; returns the
    /// key of the segment after it.
    fn take_segment(&mut self, segment: Segment) -> GlobalSeq {
        let key = segment.header.last().next();
        self.prev_digest = Some(segment.digest);
        self.next_key = Some(key);
        let cursor = self.cursor;
        self.buffer
            .extend(segment.events.into_iter().filter(|e| e.seq_num > cursor));
        key
    }

    /// LISTs the segment keys from `key` on (a listing that starts there, not a full one)
    /// and starts reading them ahead, those up to `until` only when given.
    async fn list_ahead(
        &mut self,
        key: GlobalSeq,
        until: Option<GlobalSeq>,
    ) -> Result<(), BackendError> {
        let listed = self
            .inner
            .list_segments(&self.log, Some(GlobalSeq(key.0 - 1)))
            .await?;
        self.listed_max = listed.last().copied().max(self.listed_max);
        let until = until.unwrap_or(GlobalSeq(u64::MAX));
        self.read_ahead(
            listed
                .into_iter()
                .filter(|first| key <= *first && *first <= until)
                .collect(),
        );
        Ok(())
    }

    /// A cold pull's packs: LISTs them once and, when a chain of them holds `wanted`, starts
    /// reading it; returns the key of its first segment and the digest that segment must
    /// chain to, when this client knows it. A failed LIST of the packs is no failure of the
    /// pull: it reads the segments, as it would without packs.
    async fn start_packs(
        &mut self,
        wanted: GlobalSeq,
    ) -> Option<(GlobalSeq, Option<SegmentDigest>)> {
        let packs = match list_packs(&self.inner.store, &self.log).await {
            Ok(packs) => packs,
            Err(error) => {
                tracing::warn!(%error, "could not list the packs; reading segments");
                return None;
            }
        };
        let chain = pack_read::plan(&packs, wanted);
        let key = chain.first()?.0;
        let prev = self.log.known().digest_ending_at(GlobalSeq(key.0 - 1));
        self.packs = Some(PackAhead::start(
            self.inner.clone(),
            self.log.clone(),
            chain,
        ));
        Some((key, prev))
    }

    /// Starts reading the listed segments `keys` (ascending), [`READ_AHEAD`] at a time.
    fn read_ahead(&mut self, keys: Vec<GlobalSeq>) {
        if keys.is_empty() {
            return;
        }
        let left = keys.len();
        let (inner, log) = (self.inner.clone(), self.log.clone());
        let reads = futures::stream::iter(keys)
            .map(move |key| {
                let (inner, log) = (inner.clone(), log.clone());
                async move { (key, inner.get_segment(&log, key).await) }
            })
            .buffered(READ_AHEAD)
            .boxed();
        self.ahead = Some(ReadAhead { reads, left });
    }

    /// Fails when the log goes on past `missing`, a key that does not exist, as far as a
    /// LIST of this pull or this client's one gap check can tell (see
    /// `Inner::segment_after`). Without it, a reader would take a gap for the end of the
    /// log and never see the events after it.
    async fn check_no_gap(&mut self, missing: GlobalSeq) -> Result<(), BackendError> {
        let later = match self.listed_max.filter(|&first| first > missing) {
            Some(later) => Some(later),
            None => self.inner.segment_after(&self.log, missing).await?,
        };
        match later {
            Some(later) => Err(corrupt(
                &self.log.paths.segment(missing),
                format!(
                    "missing: the log has a segment at {later} after it, so events from {missing} on are gone"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Finds the key of the segment holding the event after the cursor, and the digest the
    /// segment must chain to when this client knows it.
    async fn locate(&mut self) -> Result<GlobalSeq, BackendError> {
        let wanted = self.cursor.next();
        let window = self.inner.config.pack_window_events;
        let (known, behind, far_behind) = {
            let known = self.log.known();
            // `e0` ends at the root, but a client that knows nothing of the log yet (no
            // segment read or written, no LIST) starts cold: it LISTs, then reads ahead.
            let tail = known.tail();
            let warm = tail.is_some();
            // So does a client that knows the log goes on past its cursor (a pull restarted
            // by `sync` during a cold pull, say): one LIST, rather than a GET at a time.
            let behind = tail.is_some_and(|tail| tail.head > self.cursor);
            // Packs are worth a LIST when the cursor may be a window or more behind.
            let far_behind =
                tail.is_some_and(|tail| tail.head.0.saturating_sub(self.cursor.0) >= window);
            let place = if let Some(digest) = known.digest_ending_at(self.cursor).filter(|_| warm) {
                Some((wanted, Some(digest)))
            } else {
                known.containing(wanted).map(|meta| {
                    let prev = known.digest_ending_at(GlobalSeq(meta.first.0 - 1));
                    (meta.first, prev)
                })
            };
            (place, behind, far_behind)
        };
        // A cold pull reads the packs that cover its cursor first, if there are any.
        let packed = if far_behind || known.is_none() {
            self.start_packs(wanted).await
        } else {
            None
        };
        let chain = match known {
            Some((key, _)) => self.log.known().chain_from(key),
            None => Vec::new(),
        };
        let (key, prev) = match (packed, known) {
            (Some(found), _) => found,
            (None, Some((key, prev))) if behind && !chain.is_empty() => {
                // This client knows every segment from `key` to the tail it knows (it read
                // or wrote them): read those ahead without a LIST; what came since, one GET
                // at a time.
                self.read_ahead(chain);
                (key, prev)
            }
            (None, Some((key, prev))) if behind => {
                // The keys from `key` on: LIST after the key just below it.
                let listed = self
                    .inner
                    .list_segments(&self.log, Some(GlobalSeq(key.0 - 1)))
                    .await?;
                self.listed_max = listed.last().copied().max(self.listed_max);
                self.read_ahead(listed.into_iter().filter(|first| *first >= key).collect());
                (key, prev)
            }
            (None, Some(found)) => found,
            (None, None) => {
                let floor = self.log.known().floor_first(wanted);
                let listed = self.list_from(floor, wanted).await?;
                self.listed_max = listed.last().copied().max(self.listed_max);
                let key = listed
                    .iter()
                    .copied()
                    .chain(floor)
                    .filter(|first| *first <= wanted)
                    .max()
                    .unwrap_or(GlobalSeq::FIRST);
                self.read_ahead(listed.into_iter().filter(|first| *first >= key).collect());
                let prev = self.log.known().digest_ending_at(GlobalSeq(key.0 - 1));
                (key, prev)
            }
        };
        self.next_key = Some(key);
        self.prev_digest = prev;
        Ok(key)
    }

    /// The segment keys from the one holding `wanted` on: LISTed after `floor`, the closest
    /// segment this client knows below `wanted`; knowing none, after the cursor's own key
    /// (a cursor at the end of a segment, as a leader's confirmed head is, has the next
    /// segment start at `wanted`), and from the start of the log when the cursor turns out
    /// to be inside a segment.
    async fn list_from(
        &mut self,
        floor: Option<GlobalSeq>,
        wanted: GlobalSeq,
    ) -> Result<Vec<GlobalSeq>, BackendError> {
        if floor.is_some() || self.cursor == GlobalSeq::ZERO {
            return self.inner.list_segments(&self.log, floor).await;
        }
        let listed = self
            .inner
            .list_segments(&self.log, Some(self.cursor))
            .await?;
        if listed.first().is_none_or(|first| *first == wanted) {
            return Ok(listed);
        }
        self.inner.list_segments(&self.log, None).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt;
    use object_store::memory::InMemory;

    use crate::conformance::make_events;
    use crate::fault::{FaultConfig, FaultStore};
    use crate::{GlobalSeq, PageInfo, SegmentLog, SegmentLogConfig, SyncBackend};

    /// A log of `segments` one-event segments on a new memory store, and a client of it.
    async fn one_per_segment(
        segments: u64,
        config: SegmentLogConfig,
    ) -> (Arc<InMemory>, Vec<crate::GlobalEvent>) {
        let memory = Arc::new(InMemory::new());
        let writer = SegmentLog::new(memory.clone(), "p".into(), "s", config).unwrap();
        let events = make_events(GlobalSeq::ZERO, segments as usize, "a", 10);
        for event in &events {
            writer.push(vec![event.clone()]).await.unwrap();
        }
        (memory, events)
    }

    fn reader(memory: &Arc<InMemory>, config: SegmentLogConfig) -> SegmentLog {
        SegmentLog::new(memory.clone(), "p".into(), "s", config).unwrap()
    }

    /// A fresh client's pull gathers many segments into each page, up to `page_events`, and
    /// ends with `NoMore`; a segment written after its LIST is read as a warm pull reads it.
    #[tokio::test]
    async fn test_cold_pull_pages_span_segments_up_to_page_events() {
        let config = SegmentLogConfig {
            page_events: 20,
            ..SegmentLogConfig::default()
        };
        let (memory, events) = one_per_segment(50, config.clone()).await;
        let client = reader(&memory, config.clone());
        let mut pull = client.pull(GlobalSeq::ZERO, true).await.unwrap();
        let mut sizes = Vec::new();
        let mut delivered = Vec::new();
        loop {
            let page = pull.next().await.unwrap().unwrap();
            sizes.push(page.events.len());
            delivered.extend(page.events);
            if page.page_info == PageInfo::NoMore {
                break;
            }
        }
        assert_eq!(sizes, [20, 20, 10]);
        assert_eq!(delivered, events);
        // Written after the LIST: the live pull's probe finds it, one segment a page.
        let more = make_events(GlobalSeq(50), 2, "a", 10);
        reader(&memory, config).push(more.clone()).await.unwrap();
        let page = tokio::time::timeout(Duration::from_secs(10), pull.next())
            .await
            .expect("the new segment within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(page.events, more);
    }

    /// A client that knows nothing of the log, with a cursor inside a segment, still starts
    /// at that segment (its LIST from the cursor's key misses it, so it lists from the start).
    #[tokio::test]
    async fn test_cold_pull_from_a_cursor_inside_a_segment() {
        let memory = Arc::new(InMemory::new());
        let config = SegmentLogConfig::default();
        let writer = SegmentLog::new(memory.clone(), "p".into(), "s", config.clone()).unwrap();
        let events = make_events(GlobalSeq::ZERO, 9, "a", 10);
        for batch in events.chunks(3) {
            writer.push(batch.to_vec()).await.unwrap();
        }
        for cursor in [0, 2, 3, 4, 8, 9] {
            let client = reader(&memory, config.clone());
            let mut pull = client.pull(GlobalSeq(cursor), false).await.unwrap();
            let mut delivered = Vec::new();
            while let Some(page) = pull.next().await {
                delivered.extend(page.unwrap().events);
            }
            assert_eq!(delivered, events[cursor as usize..], "from e{cursor}");
        }
    }

    /// A live pull whose read after its last backlog page fails (a transient error) has
    /// already sent that page as `More`; once a later poll finds nothing new it must still
    /// say `NoMore`, or a leader waiting to be caught up (`Store::sync`) waits for ever.
    #[tokio::test(start_paused = true)]
    async fn test_live_pull_says_no_more_after_a_failed_read_at_the_end_of_the_backlog() {
        let faults = Arc::new(FaultStore::seeded(
            Arc::new(InMemory::new()),
            1,
            FaultConfig {
                transient: 1.0,
                ..FaultConfig::default()
            },
        ));
        faults.set_enabled(false);
        // Pages of one event: this writer knows its log goes on past e0, so its pull LISTs
        // and reads ahead, and would otherwise deliver both segments in one page.
        let config = SegmentLogConfig {
            page_events: 1,
            ..SegmentLogConfig::default()
        };
        let log = SegmentLog::new(faults.clone(), "p".into(), "s", config).unwrap();
        let events = make_events(GlobalSeq::ZERO, 2, "a", 10);
        log.push(events[..1].to_vec()).await.unwrap();
        log.push(events[1..].to_vec()).await.unwrap();

        let mut pull = log.pull(GlobalSeq::ZERO, true).await.unwrap();
        let first = pull.next().await.unwrap().unwrap();
        assert_eq!(first.events, events[..1]);
        assert_eq!(first.page_info, PageInfo::More { remaining: None });
        // The read that follows the last backlog page (the probe of key 3) fails.
        faults.set_enabled(true);
        let second = pull.next().await.unwrap().unwrap();
        assert_eq!(second.events, events[1..]);
        assert_eq!(second.page_info, PageInfo::More { remaining: None });
        faults.set_enabled(false);
        let caught_up = tokio::time::timeout(Duration::from_secs(60), pull.next())
            .await
            .expect("no page within 60 s (virtual): the pull never said it was caught up")
            .unwrap()
            .unwrap();
        assert!(caught_up.events.is_empty(), "{caught_up:?}");
        assert_eq!(caught_up.page_info, PageInfo::NoMore);
    }
}
