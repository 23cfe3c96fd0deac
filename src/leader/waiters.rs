//! Callers of `Store::sync`: each waits until everything it committed was admitted, nothing
//! synced is pending or in flight, and a pull started for it reached the backend's head.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::Leader;
use crate::error::{Error, ErrorKind};

/// A caller of `Store::sync`, answered once its condition holds (see [`Leader::check_waiters`]).
pub(super) struct SyncWaiter {
    /// Where the answer goes: `Ok` when synced, else the first backend error or the close.
    pub(super) reply: oneshot::Sender<Result<(), Error>>,
    /// How many session events had been committed when `sync` was called: all of them must
    /// be admitted (or abandoned) first.
    pub(super) committed: u64,
    /// The pull restart started for this waiter: only a page of this pull or a later one
    /// can say the backend has nothing newer.
    pub(super) pull_epoch: u64,
    /// Whether such a pull reached the backend's head (`PageInfo::NoMore`).
    pub(super) pulled_current: bool,
}

impl Leader {
    pub(super) fn on_sync(&mut self, committed: u64, reply: oneshot::Sender<Result<(), Error>>) {
        if let Some(reason) = &self.closed {
            let _ = reply.send(Err(Error::new(ErrorKind::Closed, reason.clone())));
            return;
        }
        if self.online.is_none() {
            let _ = reply.send(Err(Error::invalid(
                "the store is offline: open it online to sync",
            )));
            return;
        }
        self.refresh_pull();
        let pull_epoch = self
            .online
            .as_ref()
            .map(|online| online.pull_epoch)
            .unwrap_or(0);
        self.waiters.push(SyncWaiter {
            reply,
            committed,
            pull_epoch,
            pulled_current: false,
        });
    }

    pub(super) fn check_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let idle = self.synced_pending() == 0
            && self
                .online
                .as_ref()
                .is_some_and(|online| !online.push_in_flight && !online.race.holds());
        if !idle {
            return;
        }
        // Events of sessions the leader closed were never admitted, and never will be.
        let admitted = self.counters.admitted.load(Ordering::Relaxed)
            + self.counters.abandoned.load(Ordering::Relaxed);
        let (done, waiting): (Vec<_>, Vec<_>) = self
            .waiters
            .drain(..)
            .partition(|waiter| waiter.pulled_current && admitted >= waiter.committed);
        self.waiters = waiting;
        for waiter in done {
            let _ = waiter.reply.send(Ok(()));
        }
    }

    pub(super) fn fail_waiters(&mut self, error: &Error) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.reply.send(Err(error.clone()));
        }
    }
}
