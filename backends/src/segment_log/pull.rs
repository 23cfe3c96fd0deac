//! A pull: pages of at most one segment (and at most `page_events` events) after a cursor,
//! with the hash chain checked as it goes; a live pull then polls `head+1` with adaptive
//! backoff, and re-reads `store.json` every `identity_check` while idle, so that a reader
//! that never pushes finds out when the store was wiped or replaced.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::identity::Incarnation;
use super::{Inner, corrupt, definitive};
use crate::segment::SegmentDigest;
use crate::{BackendError, GlobalEvent, GlobalSeq, PageInfo, PullPage, PullStream};

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

    /// Emits one page from the buffer. When the buffer runs dry, reads the next segment
    /// first, to tell `More` from `NoMore` (the read is needed anyway).
    async fn emit(&mut self) -> PullPage {
        let take = self.buffer.len().min(self.inner.config.page_events);
        let events: Vec<GlobalEvent> = self.buffer.drain(..take).collect();
        if let Some(last) = events.last() {
            self.cursor = last.seq_num;
        }
        let more = PageInfo::More { remaining: None };
        if !self.buffer.is_empty() {
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
        let mut key = match self.next_key {
            Some(key) => key,
            None => self.locate().await?,
        };
        loop {
            let Some(segment) = self
                .inner
                .fetch_segment(&self.log, key, self.prev_digest)
                .await?
            else {
                self.next_key = Some(key);
                self.check_no_gap(key).await?;
                return Ok(false);
            };
            let last = segment.header.last();
            self.prev_digest = Some(segment.digest);
            key = last.next();
            self.next_key = Some(key);
            let cursor = self.cursor;
            self.buffer
                .extend(segment.events.into_iter().filter(|e| e.seq_num > cursor));
            if !self.buffer.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Fails when the log goes on past `missing`, a key that does not exist, as far as a
    /// LIST of this pull or this client's one gap check can tell (see
    /// `Inner::segment_after`). Without it, a reader would take a gap for the end of the
    /// log and never see the events after it.
    async fn check_no_gap(&self, missing: GlobalSeq) -> Result<(), BackendError> {
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
        let known = {
            let known = self.log.known();
            if let Some(digest) = known.digest_ending_at(self.cursor) {
                Some((wanted, Some(digest)))
            } else {
                known.containing(wanted).map(|meta| {
                    let prev = known.digest_ending_at(GlobalSeq(meta.first.0 - 1));
                    (meta.first, prev)
                })
            }
        };
        let (key, prev) = match known {
            Some(found) => found,
            None => {
                // LIST from the closest segment this client knows below the cursor.
                let floor = self.log.known().floor_first(wanted);
                let listed = self.inner.list_segments(&self.log, floor).await?;
                self.listed_max = listed.last().copied().max(self.listed_max);
                let key = listed
                    .into_iter()
                    .chain(floor)
                    .filter(|first| *first <= wanted)
                    .max()
                    .unwrap_or(GlobalSeq::FIRST);
                let prev = self.log.known().digest_ending_at(GlobalSeq(key.0 - 1));
                (key, prev)
            }
        };
        self.next_key = Some(key);
        self.prev_digest = prev;
        Ok(key)
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
        let log =
            SegmentLog::new(faults.clone(), "p".into(), "s", SegmentLogConfig::default()).unwrap();
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
