//! Packing by itself: once the backend-confirmed head has moved `Tuning::pack_after_events`
//! past where this leader last packed (or past `e0`, the first time in a process), the
//! leader asks the backend to pack what has gathered ([`SyncBackend::pack`]: for the
//! segment log, every complete window of segments after the last pack), on a task of its
//! own, one at a time. Nothing waits for it and nothing depends on it: packs only spare
//! cold readers requests, and a failed or interrupted pack is tried again the next time.
//! A leader starts packing only once its pull has reached the backend's head the first
//! time (its first `NoMore`): a fresh client's cold pull, which reads the same segments a
//! pack would, has the bucket and the cores to itself until its events are in, and packs
//! right after (a pack of a log that is not packed yet reads every segment again).
//! Any number of leaders may pack at once: a pack's bytes are a function of the log, every
//! packer creates it with `If-None-Match: *`, and the loser compares bytes (see
//! `docs/FORMAT.md`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eventsync_backends::{GlobalSeq, SyncBackend};
use tokio::task::AbortHandle;

use super::Leader;
use super::identity::Identity;

/// The leader's packing: where it last asked for a pack, and the task doing it.
#[derive(Debug, Default)]
pub(super) struct Packer {
    /// The backend-confirmed head when this leader last started a pack.
    started_at: GlobalSeq,
    /// Set while a pack task runs; the task clears it when it ends.
    running: Arc<AtomicBool>,
    /// The running task, aborted when the leader stops (a create cut off is no harm: the
    /// key is either written whole or not at all).
    task: Option<AbortHandle>,
    /// Whether the pull has reached the backend's head once (a `NoMore` page): no pack
    /// starts before.
    caught_up: bool,
}

impl Drop for Packer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Leader {
    /// The pull reached the backend's head (a `NoMore` page): from the first time on, packs
    /// may start, and one starts now if enough has gathered.
    pub(super) fn pull_caught_up(&mut self) {
        let Some(online) = &mut self.online else {
            return;
        };
        if !online.packer.caught_up {
            online.packer.caught_up = true;
            self.maybe_start_pack();
        }
    }

    /// Starts a pack when the pull has caught up once, the confirmed head moved
    /// `pack_after_events` or more since the last one this leader started, and none runs.
    pub(super) fn maybe_start_pack(&mut self) {
        let every = self.tuning.pack_after_events;
        let head = self.state.upstream_head.global;
        if every == 0 || self.closed.is_some() || self.stopping.is_some() {
            return;
        }
        let Some(online) = &mut self.online else {
            return;
        };
        let packer = &mut online.packer;
        if online.identity != Identity::Verified
            || !packer.caught_up
            || head.0.saturating_sub(packer.started_at.0) < every
            || packer.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        packer.started_at = head;
        let backend: Arc<dyn SyncBackend> = online.backend.clone();
        let running = packer.running.clone();
        let task = self.io.spawn(async move {
            match backend.pack().await {
                Ok(0) => tracing::debug!(%head, "nothing new to pack"),
                Ok(written) => tracing::debug!(%head, written, "packed segments"),
                Err(error) if error.is_retryable() => {
                    tracing::info!(%error, "packing failed; trying again later")
                }
                Err(error) => tracing::warn!(%error, "packing failed; trying again later"),
            }
            running.store(false, Ordering::Release);
        });
        packer.task = Some(task.abort_handle());
    }
}
