//! The leader's side of the pull task (`pull.rs`): taking what it reports (the backend's id,
//! a page, a failure) and restarting it.

use std::sync::atomic::Ordering;

use eventsync_backends::{GlobalEvent, PageInfo};

use super::identity::Identity;
use super::pull::{PullEvent, Restart};
use super::{Leader, Transfer};
use crate::event::EncodedEvent;

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
                    // Caught up: deferred checkpoints run once this page is committed.
                    self.db.end_bulk();
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
                    self.pull_caught_up();
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
