//! The leader's pull task: keeps a live pull from the backend running and forwards its
//! pages to the leader. The leader can restart it from its persisted cursor at any time
//! (after a `ServerAhead`, so it never waits for an echo that was lost).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use eventsync_backends::{BackendError, Entropy, GlobalSeq, PageInfo, PullPage, SyncBackend};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::messages::Counters;

/// What the pull task tells the leader.
pub(crate) enum PullEvent {
    /// The backend's id, read when the task starts unverified or is asked to re-read it.
    /// The backend works in the store this id names from then on.
    BackendId(String),
    /// A page of events, from the pull started for restart `epoch`.
    Page { epoch: u64, page: PullPage },
    /// The pull failed; it will retry with backoff.
    Failed { error: BackendError },
}

/// A request to restart the pull after `cursor`, tagging its pages with `epoch`; with
/// `reread_id`, first re-read the backend's id (and report it).
///
/// With `refresh` (a `sync()`, which only needs a `NoMore` that is current as of its call),
/// a pull still catching up is not restarted: it runs on, so that nothing it fetched is
/// fetched again (a cold pull restarted from the leader's cursor would read again the packs
/// whose events are on their way to the leader), and once it is caught up the pull
/// restarts from where it got to, tagged `epoch`, for one fresh look at the backend's head.
pub(crate) struct Restart {
    pub cursor: GlobalSeq,
    pub epoch: u64,
    pub reread_id: bool,
    pub refresh: bool,
}

/// Runs until the leader drops its end of either channel.
pub(crate) async fn run(
    backend: Arc<dyn SyncBackend>,
    mut restart: Restart,
    mut restarts: mpsc::UnboundedReceiver<Restart>,
    events: mpsc::Sender<PullEvent>,
    mut backoff: Backoff,
    counters: Arc<Counters>,
) {
    let mut known_id = !restart.reread_id;
    loop {
        if !known_id {
            match backend.backend_id().await {
                Ok(id) => {
                    known_id = true;
                    if events.send(PullEvent::BackendId(id)).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    if events.send(PullEvent::Failed { error }).await.is_err() {
                        return;
                    }
                    match wait_or_restart(&mut restarts, backoff.next()).await {
                        Wait::Elapsed => continue,
                        Wait::Restart(next) => {
                            restart = next;
                            continue;
                        }
                        Wait::Closed => return,
                    }
                }
            }
        }
        let mut cursor = restart.cursor;
        counters.pull_starts.fetch_add(1, Ordering::Relaxed);
        // Whether this stream said `NoMore` yet, and the epoch of a refresh that waits for it.
        let mut caught_up = false;
        let mut refresh: Option<u64> = None;
        let failure = match backend.pull(cursor, true).await {
            Err(error) => Some(error),
            Ok(mut stream) => loop {
                tokio::select! {
                    // Biased (a restart first), so that one seed replays one interleaving.
                    biased;
                    next = restarts.recv() => match next {
                        Some(next) if next.refresh && !caught_up => refresh = Some(next.epoch),
                        Some(next) => {
                            known_id &= !next.reread_id;
                            restart = next;
                            break None;
                        }
                        None => return,
                    },
                    item = stream.next() => match item {
                        Some(Ok(page)) => {
                            backoff.reset();
                            counters.pulled_pages.fetch_add(1, Ordering::Relaxed);
                            if let Some(last) = page.events.last() {
                                cursor = last.seq_num;
                            }
                            let no_more = page.page_info == PageInfo::NoMore;
                            if events.send(PullEvent::Page { epoch: restart.epoch, page }).await.is_err() {
                                return;
                            }
                            if no_more {
                                caught_up = true;
                                if let Some(epoch) = refresh.take() {
                                    // Caught up as of before the refresh: look again, from
                                    // here, for a `NoMore` of its epoch.
                                    restart = Restart {
                                        cursor,
                                        epoch,
                                        reread_id: false,
                                        refresh: false,
                                    };
                                    break None;
                                }
                            }
                        }
                        Some(Err(error)) => break Some(error),
                        None => {
                            restart.cursor = cursor;
                            restart.epoch = refresh.unwrap_or(restart.epoch);
                            break None;
                        }
                    },
                }
            },
        };
        if let Some(error) = failure {
            restart.cursor = cursor;
            if let Some(epoch) = refresh {
                restart.epoch = epoch;
            }
            if events.send(PullEvent::Failed { error }).await.is_err() {
                return;
            }
            match wait_or_restart(&mut restarts, backoff.next()).await {
                Wait::Elapsed => {}
                Wait::Restart(next) => {
                    known_id &= !next.reread_id;
                    restart = next;
                }
                Wait::Closed => return,
            }
        }
    }
}

enum Wait {
    Elapsed,
    Restart(Restart),
    Closed,
}

async fn wait_or_restart(restarts: &mut mpsc::UnboundedReceiver<Restart>, delay: Duration) -> Wait {
    tokio::select! {
        biased;
        next = restarts.recv() => match next { Some(next) => Wait::Restart(next), None => Wait::Closed },
        _ = tokio::time::sleep(delay) => Wait::Elapsed,
    }
}

/// Exponential backoff for retrying a failing backend: 100 ms doubling to 5 s, each delay
/// jittered (see [`Entropy::jitter`]) so that clients that failed together spread out.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    entropy: Entropy,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn new(entropy: Entropy) -> Backoff {
        Backoff {
            next: Self::FIRST,
            entropy,
        }
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub(crate) fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        self.entropy.jitter(delay)
    }

    /// A backoff of its own for another task, drawing from a fork of this one's entropy.
    pub(crate) fn fork(&self) -> Backoff {
        Backoff::new(self.entropy.fork())
    }

    /// After a success: the next failure waits the shortest delay again.
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}
