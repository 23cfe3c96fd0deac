//! Lazy rebases ([`Tuning::lazy_rebase`](crate::settings::Tuning::lazy_rebase)): a rebase
//! against the backend moves the leader's sync state and its eventlog at once, and leaves
//! the tables (and the sessions, which mirror them) *lagging* until one later step, the
//! *catch-up*, rolls them back and replays everything since.
//!
//! Why: with several busy writers on one log, each lost race cost the loser a rollback and
//! replay of all its pending events, recording a changeset for each, in the leader and
//! again in every session, and most of the 8-writer bench's CPU went there. A push needs
//! none of it: it carries events, not rows. What it needs is the renumbered events durable
//! in `eventlog.db` before it starts (so that a push that lands is recognized after a
//! crash), and that is a cheap step. The catch-up comes once nothing synced is pending (the
//! replayed events then need no changeset at all), after at most [`MAX_LAG`], or as soon as
//! something reads the tables: a query, a new session, a snapshot, a shutdown.
//!
//! While the tables lag, session pushes are queued, not admitted (they are numbered on the
//! head the session last heard of, which the eventlog has moved past), and admitted (or
//! refused, to be pushed again renumbered) after the catch-up, which the sessions hear of as
//! one rebase. Pulled events are checked to decode before a step that does not materialize
//! them; one that does not makes the leader catch up and take the page the usual way, so a
//! page this client cannot apply stops the leader as before, naming the event. (An event
//! that decodes but whose materializer fails is found only at the catch-up, which then
//! stops the leader naming it; the eventlog holds it, so a boot stops there too.) See
//! `db/lag.rs` for what the files hold meanwhile and what a boot does with them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use eventsync_backends::GlobalSeq;
use tokio::time::Instant;

use super::db::NewEvent;
use super::messages::PushRequest;
use super::{Leader, db_error};
use crate::error::Error;
use crate::event::EncodedEvent;
use crate::materialize::Record;
use crate::schema::UnknownEventPolicy;
use crate::seq::EventSeq;
use crate::sync_state::{Merged, Payload, StateChange};

/// Longest the tables lag behind the eventlog while synced events are still pending: the
/// longest the sessions see the others' events late, and their new commits wait.
const MAX_LAG: Duration = Duration::from_millis(250);

/// Tables that lag behind the eventlog.
pub(super) struct Lag {
    /// The last event the tables hold that the catch-up keeps: the eventlog's event before
    /// the first pending one when the lag began. That is the backend-confirmed head, or a
    /// client-only event after it that is no longer pending (the confirmation of the event
    /// before it took it out of pending, as in LiveStore): the rollback of `materialized`
    /// does not undo such an event, so the replay must not apply it again (issue 11). The
    /// tables hold the events up to `base`, then `materialized`.
    base: EventSeq,
    /// The events after `base` the tables (and the sessions) hold, ascending: the leader's
    /// pending events when the lag began, each with its changeset.
    materialized: Vec<EncodedEvent>,
    /// When the lag began.
    since: Instant,
    /// Session pushes that came meanwhile, in order.
    queued: Vec<PushRequest>,
}

impl Leader {
    /// Whether a merge of what the backend confirmed may move the eventlog alone: the
    /// tables lag already, or lazy rebases are on and synced events are pending (only a
    /// rebase then starts a lag).
    pub(super) fn may_defer(&self) -> bool {
        self.lags()
            || (self.tuning.lazy_rebase && self.online.is_some() && self.synced_pending() > 0)
    }

    /// Whether the tables lag behind the eventlog.
    pub(super) fn lags(&self) -> bool {
        self.lag.is_some()
    }

    /// Whether every event gets past decoding its args when materialized.
    pub(super) fn all_decode(&self, events: &[EncodedEvent]) -> bool {
        events.iter().all(|event| self.decodes(event))
    }

    /// Whether materializing `event` gets past decoding its args (or it is an unknown event
    /// the schema lets through).
    fn decodes(&self, event: &EncodedEvent) -> bool {
        match self.schema.event_def(&event.name) {
            Some(_) => self.schema.decode_args(&event.name, &event.args).is_ok(),
            None => self.schema.unknown_event_policy() != UnknownEventPolicy::Fail,
        }
    }

    /// The step of a deferred merge: the eventlog moves (deleting the rolled-back events,
    /// appending the new ones, recording `confirmed_head`), then the sync state; the tables
    /// and the sessions do not hear of it until the catch-up.
    pub(super) fn defer_step(
        &mut self,
        merged: Merged,
        change: StateChange,
        confirmed_head: GlobalSeq,
    ) -> Result<(), Error> {
        let (rollback, mut new_events) = match merged {
            Merged::Advance { new_events, .. } => (Vec::new(), new_events),
            Merged::Rebase {
                new_events,
                rollback_events,
            } => {
                self.counters
                    .deferred_rebases
                    .fetch_add(1, Ordering::Relaxed);
                (rollback_events, new_events)
            }
            Merged::Reject { .. } => return Ok(()),
        };
        let (base, materialized) = match &self.lag {
            Some(lag) => (lag.base, Vec::new()),
            None => {
                // The tables and sessions hold these events whole; boot may have left their
                // bodies in the eventlog (pending events are held by number until needed), so
                // they are read before this step renumbers them there.
                let all = 0..self.state.pending.len();
                self.db
                    .load_bodies(&mut self.state.pending, all)
                    .map_err(db_error)?;
                let materialized = self.state.pending.to_events();
                let base = match materialized.first() {
                    Some(first) => self.db.last_event_before(first.seq).map_err(db_error)?,
                    None => self.state_head,
                };
                (base, materialized)
            }
        };
        let items: Vec<NewEvent<'_>> = new_events
            .iter_mut()
            .map(|event| NewEvent {
                event,
                record: Record::Nothing,
            })
            .collect();
        self.db
            .apply_log_batch(&rollback, &items, Some(confirmed_head), base)
            .map_err(db_error)?;
        if self.lag.is_none() {
            tracing::debug!(%base, pending = self.state.pending.len(), "the tables lag");
            self.lag = Some(Lag {
                base,
                materialized,
                since: Instant::now(),
                queued: Vec::new(),
            });
        }
        self.state.apply(change);
        Ok(())
    }

    /// Queues a session push while the tables lag; returns it when they do not.
    pub(super) fn queue_if_lagging(&mut self, push: PushRequest) -> Option<PushRequest> {
        match &mut self.lag {
            Some(lag) => {
                lag.queued.push(push);
                None
            }
            None => Some(push),
        }
    }

    /// When the tables must catch up even if nothing else happens.
    pub(super) fn lag_until(&self) -> Option<Instant> {
        self.lag.as_ref().map(|lag| lag.since + MAX_LAG)
    }

    /// Catches up when it is due: nothing synced is pending, the lag is [`MAX_LAG`] old, or
    /// the leader is shutting down.
    pub(super) fn catch_up_if_due(&mut self) {
        let Some(lag) = &self.lag else { return };
        if self.synced_pending() == 0 || self.stopping.is_some() || lag.since.elapsed() >= MAX_LAG {
            self.catch_up();
        }
    }

    /// Brings lagging tables level in one step (rolling back what they held after the lag's
    /// base and replaying the eventlog's events after it), tells the sessions in one rebase
    /// payload, then takes the session pushes queued meanwhile. A failure stops the leader.
    pub(super) fn catch_up(&mut self) {
        let Some(lag) = self.lag.take() else { return };
        if self.closed.is_some() {
            return;
        }
        let upstream = self.state.upstream_head;
        let caught_up = self
            .db
            .events_after(lag.base)
            .and_then(|mut events| {
                let state_head = events.last().map_or(lag.base, |event| event.seq);
                let mut items: Vec<NewEvent<'_>> = events
                    .iter_mut()
                    .map(|event| NewEvent::after_upstream(event, upstream))
                    .collect();
                let restored = self.db.apply_catch_up(
                    &self.schema,
                    &lag.materialized,
                    &mut items,
                    state_head,
                    upstream.global,
                )?;
                Ok((events, state_head, restored))
            })
            .map_err(db_error);
        match caught_up {
            Ok((events, state_head, restored)) => {
                self.counters.catch_ups.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    rolled_back = lag.materialized.len(),
                    replayed = events.len(),
                    head = %state_head,
                    "the tables caught up"
                );
                self.state_head = state_head;
                self.broadcast(
                    Payload::UpstreamRebase {
                        rollback_events: lag.materialized,
                        new_events: events,
                    },
                    restored,
                );
                self.admit(lag.queued);
            }
            Err(error) => self.fail(error),
        }
    }

    /// Forgets the lag (the local data was reset: the tables start afresh); queued pushes
    /// are dropped, their sessions are closed.
    pub(super) fn drop_lag(&mut self) {
        self.lag = None;
    }
}
