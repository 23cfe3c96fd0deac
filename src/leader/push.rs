//! Pushing to the backend: group commit (everything pending, up to the batch limits, in one
//! segment), one push in flight, backoff on failures, and on `ServerAhead` a pull that must
//! reach the backend's head before the next push.

use std::sync::atomic::Ordering;

use eventsync_backends::BackendError;
use tracing::Instrument;

use super::identity::Identity;
use super::{Leader, PushDone, TaskDone, Transfer, db_error};
use crate::event::EncodedEvent;

impl Leader {
    /// Starts a push of the pending synced events (group commit), if none is in flight.
    pub(super) fn maybe_start_push(&mut self) {
        // A shutdown under way starts no push: it would wait for its answer.
        if self.closed.is_some() || self.stopping.is_some() {
            return;
        }
        let Some(online) = &mut self.online else {
            return;
        };
        if online.push_in_flight
            || online.push_retry_at.is_some()
            || online.push_after_pull.is_some()
            || online.race.until().is_some()
            || online.race.holds()
            || online.identity != Identity::Verified
        {
            return;
        }
        let capabilities = online.backend.info().capabilities;
        // A writer that lost races in a row pushes more at once (see `race.rs`).
        let max_events = self
            .tuning
            .push_batch_events
            .saturating_mul(online.race.batch_factor())
            .min(capabilities.max_events_per_push)
            .max(1);
        let max_bytes = self
            .tuning
            .push_batch_bytes
            .min(capabilities.max_bytes_per_push);
        // Boot left pending events' bodies in the eventlog: read those the batch may take.
        let reach = self
            .state
            .pending
            .iter()
            .enumerate()
            .filter(|(_, event)| !event.is_client_only())
            .nth(max_events)
            // The loop below encodes one event past the batch before it stops.
            .map_or(self.state.pending.len(), |(index, _)| index + 1);
        if let Err(error) = self.db.load_bodies(&mut self.state.pending, 0..reach) {
            return self.fail(db_error(error));
        }
        let Some(online) = &mut self.online else {
            return;
        };
        let mut batch = Vec::new();
        let mut bytes = eventsync_backends::segment::MAX_OVERHEAD_LEN;
        for event in self
            .state
            .pending
            .iter()
            .filter(|event| !event.is_client_only())
        {
            let global = event.to_global();
            // The encoder's own length; an event that does not encode is left for the
            // backend to refuse, with its name.
            let size = eventsync_backends::segment::event_len(&global).unwrap_or(0);
            if !batch.is_empty() && (batch.len() >= max_events || bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            batch.push(global);
        }
        let Some(first) = batch.first() else { return };
        debug_assert_eq!(
            first.parent_seq_num, self.state.upstream_head.global,
            "push does not chain on the head"
        );
        tracing::debug!(events = batch.len(), parent = %first.parent_seq_num, "pushing");
        online.push_in_flight = true;
        online.race.push_started();
        let backend = online.backend.clone();
        let done = online.tasks_done.clone();
        self.io.spawn(
            async move {
                let result = backend.push(batch.clone()).await;
                let _ = done.send(TaskDone::Push(PushDone { batch, result }));
            }
            .in_current_span(),
        );
    }

    pub(super) fn on_push_done(&mut self, done: PushDone) {
        let Some(online) = &mut self.online else {
            return;
        };
        online.push_in_flight = false;
        match done.result {
            Ok(()) => {
                self.counters.pushes.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .pushed_events
                    .fetch_add(done.batch.len() as u64, Ordering::Relaxed);
                online.push_backoff.reset();
                online.race.won();
                tracing::debug!(events = done.batch.len(), "push landed");
                let upstream = self.state.upstream_head.global;
                let fresh: Vec<EncodedEvent> = done
                    .batch
                    .into_iter()
                    .filter(|event| event.seq_num > upstream)
                    .map(EncodedEvent::from_global)
                    .collect();
                if fresh
                    .first()
                    .is_some_and(|first| first.parent.global == upstream)
                {
                    self.integrate_upstream(fresh);
                }
            }
            Err(BackendError::ServerAhead { head }) => {
                self.counters.server_ahead.fetch_add(1, Ordering::Relaxed);
                let wait = online.race.lost();
                tracing::debug!(%head, ?wait, "backend is ahead; pulling, waiting, then pushing again");
                self.restart_pull_before_pushing();
            }
            Err(error) => {
                online.race.failed();
                self.on_backend_error(Transfer::Push, error);
            }
        }
        // What was pulled while the push was in flight (see `race.rs`), unless a lost race
        // is waited out first.
        self.release_held();
    }
}
