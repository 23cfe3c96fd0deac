//! The leader's pull task: keeps a live pull from the backend running and forwards its
//! pages to the leader. The leader can restart it from its persisted cursor at any time
//! (after a `ServerAhead`, so it never waits for an echo that was lost). The leader's side of
//! it (taking what the task reports, restarting it) is the `impl Leader` at the end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use eventsync_backends::{
    BackendError, Entropy, GlobalEvent, GlobalSeq, PageInfo, PullPage, SyncBackend,
};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::identity::Identity;
use super::messages::Counters;
use super::{Leader, Transfer};
use crate::event::EncodedEvent;

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

impl Leader {
    /// Takes what the pull task reports: the backend's id, a page (held during a race, else
    /// integrated), or a failure.
    pub(super) fn on_pull_event(&mut self, event: PullEvent) {
        match event {
            PullEvent::BackendId(id) => self.on_backend_id(id),
            PullEvent::Page { .. }
                if self
                    .online
                    .as_ref()
                    .is_some_and(|online| online.identity != Identity::Verified) =>
            {
                // From a store this leader has not reconciled with (yet): the pull is
                // restarted once it has.
            }
            PullEvent::Page { epoch, page } => {
                // Held events (see `race.rs`) are after the confirmed head: new ones chain
                // on the last of them.
                let upstream = self.pulled_head();
                let fresh: Vec<GlobalEvent> = page
                    .events
                    .into_iter()
                    .filter(|event| event.seq_num > upstream)
                    .collect();
                if let Some(first) = fresh.first()
                    && first.parent_seq_num != upstream
                {
                    // Pages queued before a restart can skip ahead of what we hold: pull again.
                    self.restart_pull();
                    return;
                }
                if !fresh.is_empty() {
                    self.counters
                        .pulled
                        .fetch_add(fresh.len() as u64, Ordering::Relaxed);
                    tracing::debug!(
                        events = fresh.len(),
                        head = %fresh.last().map_or(upstream, |event| event.seq_num),
                        "taking a pulled page"
                    );
                    let events = fresh.into_iter().map(EncodedEvent::from_global).collect();
                    if self.holds_pulled() {
                        self.hold(events);
                    } else {
                        self.integrate_upstream(events);
                    }
                }
                if page.page_info == PageInfo::NoMore {
                    if let Some(online) = &mut self.online
                        && online.push_after_pull.is_some_and(|after| epoch >= after)
                    {
                        online.push_after_pull = None;
                    }
                    for waiter in &mut self.waiters {
                        if epoch >= waiter.pull_epoch {
                            waiter.pulled_current = true;
                        }
                    }
                    self.end_probe(epoch);
                }
            }
            PullEvent::Failed { error } => self.on_backend_error(Transfer::Pull, error),
        }
    }

    pub(super) fn restart_pull(&mut self) {
        self.restart_pull_with(false, false);
    }

    /// For a `sync()`: a pull that is current as of now, without dropping a pull that is
    /// still catching up (see `pull::Restart::refresh`); its `NoMore` comes with the new
    /// epoch.
    pub(super) fn refresh_pull(&mut self) {
        self.restart_pull_with(false, true);
    }

    /// Restarts the pull, and holds pushes until it reached the backend's head (see
    /// `Online::push_after_pull`).
    pub(super) fn restart_pull_before_pushing(&mut self) {
        self.restart_pull();
        if let Some(online) = &mut self.online {
            online.push_after_pull = Some(online.pull_epoch);
        }
    }

    /// Restarts the pull from the backend-confirmed head (after the events held, see
    /// `race.rs`); with `reread_id`, the pull task first re-reads the backend's id and
    /// reports it, and held events are dropped. With `refresh`, see [`Self::refresh_pull`].
    pub(super) fn restart_pull_with(&mut self, reread_id: bool, refresh: bool) {
        if reread_id {
            self.drop_held();
        }
        let cursor = self.pulled_head();
        if let Some(online) = &mut self.online {
            online.pull_epoch += 1;
            let _ = online.restarts.send(Restart {
                cursor,
                epoch: online.pull_epoch,
                reread_id,
                refresh,
            });
        }
    }
}
