//! Lost races ([`Race`]): after a push meets `ServerAhead`, the leader waits a short,
//! jittered delay that grows with each race it loses in a row before it rebases and pushes
//! again, and the events pulled meanwhile are *held*: taken in one step when the wait ends,
//! not one rebase per page.
//!
//! Why: every writer that saw the same head races for the same key, and exactly one wins.
//! Without a wait, the losers all pull the winner's segment, rebase all their pending events
//! at once (a durable batch in the leader, and a rollback and replay in every session) and
//! race again in lockstep, so all but one lose again, and each round costs every loser a
//! rebase of everything it holds. With the wait, the winner pushes what it still has (it
//! needs no rebase), the losers come back spread out, and each rebases once per attempt, on
//! everything that landed while it waited. A loser also pushes a larger batch (see
//! [`Race::batch_factor`]), so that fewer races are run for the same events. Pages pulled
//! while a push is in flight are held too, for at most [`MAX_HOLD_IN_FLIGHT`]: a page of
//! another writer's segment means the push is lost, and its rebase can wait for the answer
//! and the wait after it; but a push can hang for a request's whole timeout, and the
//! sessions must see the others' events meanwhile.
//!
//! When the wait is over, the leader first takes a fresh look at the head
//! ([`Tuning::race_probe`](crate::settings::Tuning::race_probe)): it restarts its pull (one
//! GET of the next key, the pages still held) and attempts only if no other writer's segment
//! landed since it last looked; if one did, that writer may still be pushing, and the
//! leader waits again, a time drawn from its last attempt's time (at most 10 ms), then
//! looks again, its losing streak unchanged. The
//! live pull polls every `poll_min` at best, so without the look an attempt often started
//! on a head the winner had moved past meanwhile, and paid a rebase, a durable batch and a
//! PUT to lose again (measured in `BENCHMARKS.md`, "Lost races").
//!
//! The delays come from the leader's seeded [`Entropy`] and
//! tokio's clock, so the simulation stays deterministic.

use std::time::Duration;

use eventsync_backends::{Entropy, GlobalSeq};
use tokio::time::Instant;

use super::Leader;
use crate::event::EncodedEvent;

/// Bounds of the measured attempt (see [`Race::cycle`]) that scales the waits.
const MIN_CYCLE: Duration = Duration::from_millis(1);
const MAX_CYCLE: Duration = Duration::from_millis(100);
/// The longest window a wait is drawn from: short enough that a writer who lost many races
/// in a row is not left far behind once the others are done.
const MAX_WAIT: Duration = Duration::from_millis(250);
/// Longest that pages pulled while a push is in flight are held (then taken, the push
/// still in flight).
const MAX_HOLD_IN_FLIGHT: Duration = Duration::from_millis(250);
/// The longest window a wait again after a probe that found the head moved is drawn from:
/// a writer still pushing lands its next segment within a PUT and a durable batch, so a
/// short wait and another look tell whether it still does. The last attempt's time (up to
/// [`MAX_CYCLE`]) made the last writer left wait up to 100 ms on a head that had gone quiet.
const MAX_WAIT_AGAIN: Duration = Duration::from_millis(10);
/// A loser's push may hold up to this many times `push_batch_events` (within the backend's
/// limit): one more multiple per race lost in a row.
const MAX_BATCH_FACTOR: usize = 4;

/// The leader's state in races for the next segment key.
#[derive(Debug)]
pub(super) struct Race {
    /// [`Tuning::race_wait`](crate::settings::Tuning::race_wait): without it, a lost race
    /// is retried at once and nothing is held.
    enabled: bool,
    /// [`Tuning::race_probe`](crate::settings::Tuning::race_probe): a fresh look at the
    /// head after the wait, and another wait if it moved.
    probes: bool,
    /// Races lost in a row; a push that lands resets it.
    losses: u32,
    /// Where the waits come from (seeded in a simulation).
    entropy: Entropy,
    /// How long the last attempt took, from its start (a push, or the end of a wait, which
    /// the rebase follows) to the push's answer, within [`MIN_CYCLE`] and [`MAX_CYCLE`]: the
    /// scale of the waits. Under contention a rebase takes much longer than a PUT, and a
    /// wait shorter than the others' attempts brings the losers back together.
    cycle: Duration,
    /// When the current attempt started.
    attempt_started: Option<Instant>,
    /// Until when pages pulled while the push in flight runs are held.
    hold_in_flight: Option<Instant>,
    /// Until when the leader waits after a lost race (no push, pulled events held).
    until: Option<Instant>,
    /// After the wait, a fresh look at the backend's head before the attempt: the pull
    /// epoch whose `NoMore` ends it, and the head held when it started (pulled events are
    /// still held meanwhile).
    probe: Option<(u64, Option<GlobalSeq>)>,
    /// Pulled events after the backend-confirmed head, contiguous from it, not integrated
    /// yet (see the module doc).
    held: Vec<EncodedEvent>,
}

impl Race {
    /// A race state drawing its delays from `entropy`; `enabled` as
    /// [`Tuning::race_wait`](crate::settings::Tuning::race_wait), `probes` as
    /// [`Tuning::race_probe`](crate::settings::Tuning::race_probe).
    pub(super) fn new(entropy: Entropy, enabled: bool, probes: bool) -> Race {
        Race {
            enabled,
            probes,
            losses: 0,
            entropy,
            cycle: Duration::from_millis(2),
            attempt_started: None,
            hold_in_flight: None,
            until: None,
            probe: None,
            held: Vec::new(),
        }
    }

    /// Until when the leader waits after a lost race.
    pub(super) fn until(&self) -> Option<Instant> {
        self.until
    }

    /// The factor on `push_batch_events` for the next push: 1, plus one per race lost in a
    /// row, up to [`MAX_BATCH_FACTOR`].
    pub(super) fn batch_factor(&self) -> usize {
        if !self.enabled {
            return 1;
        }
        (1 + self.losses as usize).min(MAX_BATCH_FACTOR)
    }

    /// A push starts now (an attempt, unless one started at the end of a wait).
    pub(super) fn push_started(&mut self) {
        self.attempt_started.get_or_insert_with(Instant::now);
        self.hold_in_flight = Some(Instant::now() + MAX_HOLD_IN_FLIGHT);
    }

    /// Whether pages pulled now are held because a push is in flight.
    fn holds_in_flight(&self, push_in_flight: bool) -> bool {
        push_in_flight
            && self
                .hold_in_flight
                .is_some_and(|until| Instant::now() < until)
    }

    /// When the events held while a push is in flight must be taken, if any are.
    pub(super) fn held_in_flight_until(&self, push_in_flight: bool) -> Option<Instant> {
        (push_in_flight && self.holds())
            .then_some(self.hold_in_flight)
            .flatten()
    }

    /// The attempt's push was answered: its time scales the next waits.
    fn answered(&mut self) {
        self.hold_in_flight = None;
        if let Some(started) = self.attempt_started.take() {
            self.cycle = started.elapsed().clamp(MIN_CYCLE, MAX_CYCLE);
        }
    }

    /// The push in flight landed: the losing streak ends.
    pub(super) fn won(&mut self) {
        self.answered();
        self.losses = 0;
    }

    /// The push in flight met `ServerAhead`: wait before the next attempt, a time drawn
    /// uniformly from zero to the last attempt's time doubled per race lost in a row (within
    /// [`MAX_WAIT`]), so that the losers come back one at a time; returns the wait (zero
    /// when waiting is off).
    pub(super) fn lost(&mut self) -> Duration {
        self.answered();
        if !self.enabled {
            return Duration::ZERO;
        }
        self.losses = self.losses.saturating_add(1);
        let window = self
            .cycle
            .saturating_mul(1 << (self.losses - 1).min(16))
            .min(MAX_WAIT);
        let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        let wait = Duration::from_micros(self.entropy.below(0..micros + 1));
        self.until = Some(Instant::now() + wait);
        wait
    }

    /// The head moved while the leader waited: wait again, a time drawn uniformly from
    /// zero to the last attempt's time, within [`MAX_WAIT_AGAIN`] (the losing streak does
    /// not grow).
    fn wait_again(&mut self) -> Duration {
        let window = self.cycle.min(MAX_WAIT_AGAIN);
        let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        let wait = Duration::from_micros(self.entropy.below(0..micros + 1));
        self.until = Some(Instant::now() + wait);
        wait
    }

    /// The wait is over: the next attempt (a probe, a rebase, then a push) starts now.
    fn wait_ended(&mut self) {
        self.until = None;
        self.attempt_started = Some(Instant::now());
    }

    /// The push in flight failed otherwise (its own backoff applies).
    pub(super) fn failed(&mut self) {
        self.attempt_started = None;
        self.hold_in_flight = None;
    }

    /// The last held event, if any: the pull's cursor and the head new pages must chain on.
    pub(super) fn held_head(&self) -> Option<GlobalSeq> {
        self.held.last().map(|event| event.seq.global)
    }

    /// Whether events are held.
    pub(super) fn holds(&self) -> bool {
        !self.held.is_empty()
    }
}

impl Leader {
    /// Whether a pulled page is held rather than taken now: events are held already (new
    /// ones go after them), or the leader has synced events pending and waits after a lost
    /// race or has had a push in flight for less than [`MAX_HOLD_IN_FLIGHT`].
    pub(super) fn holds_pulled(&self) -> bool {
        let Some(online) = &self.online else {
            return false;
        };
        let race = &online.race;
        race.holds()
            || (race.enabled
                && (race.until.is_some()
                    || race.probe.is_some()
                    || race.holds_in_flight(online.push_in_flight))
                && self.synced_pending() > 0)
    }

    /// Holds fresh pulled events (contiguous after the held ones, or after the confirmed
    /// head), and takes them at once if nothing is left to wait for.
    pub(super) fn hold(&mut self, events: Vec<EncodedEvent>) {
        if let Some(online) = &mut self.online {
            tracing::debug!(events = events.len(), "holding pulled events");
            online.race.held.extend(events);
        }
        self.release_held();
    }

    /// The head pulled events must chain on: the last held event, else the confirmed head.
    pub(super) fn pulled_head(&self) -> GlobalSeq {
        self.online
            .as_ref()
            .and_then(|online| online.race.held_head())
            .unwrap_or(self.state.upstream_head.global)
    }

    /// Drops the held events (the store's identity changed; they are pulled again).
    pub(super) fn drop_held(&mut self) {
        if let Some(online) = &mut self.online {
            online.race.held.clear();
            online.race.probe = None;
        }
    }

    /// Takes the held events, in one step, unless the leader still waits after a lost
    /// race or holds them for a push in flight: those beyond the confirmed head are
    /// integrated (one rebase for all of them, when events are pending).
    pub(super) fn release_held(&mut self) {
        let Some(online) = &mut self.online else {
            return;
        };
        if self.closed.is_some() {
            // A stopped leader takes nothing more.
            online.race.held.clear();
            return;
        }
        if online.race.until.is_some()
            || online.race.probe.is_some()
            || online.race.holds_in_flight(online.push_in_flight)
            || online.race.held.is_empty()
        {
            return;
        }
        let upstream = self.state.upstream_head.global;
        let held = std::mem::take(&mut online.race.held);
        let fresh: Vec<EncodedEvent> = held
            .into_iter()
            .filter(|event| event.seq.global > upstream)
            .collect();
        match fresh.first() {
            None => {}
            Some(first) if first.parent.global == upstream => self.integrate_upstream(fresh),
            // Not contiguous with what the leader holds (cannot happen: held events chain on
            // the confirmed head, and only the leader's own pushes move it): pull again.
            Some(_) => self.restart_pull(),
        }
    }

    /// The wait after a lost race is over: look at the head again first (see the module
    /// doc; [`Leader::end_probe`] goes on), or, without probes, take what was held, then
    /// push (at the top of the run loop, once the rebase is durable).
    pub(super) fn end_race_wait(&mut self) {
        let Some(online) = &mut self.online else {
            return;
        };
        online.race.wait_ended();
        if !(online.race.enabled && online.race.probes) {
            return self.release_held();
        }
        // A fresh look at the head first: the live pull polls every `poll_min` at best, and
        // an attempt on a head another writer has moved past since costs a rebase, a
        // durable batch and a PUT, only to lose again.
        let from = online.race.held_head();
        self.restart_pull_before_pushing();
        if let Some(online) = &mut self.online {
            let epoch = online.pull_epoch;
            online.race.probe = Some((epoch, from));
        }
    }

    /// A pull of `epoch` reached the backend's head: a probe of that epoch or an earlier
    /// one ends. If the head moved since the probe started, another writer is pushing: wait
    /// again (a time drawn from the last attempt's time, no loss counted); else take what
    /// is held (the rebase) and push.
    pub(super) fn end_probe(&mut self, epoch: u64) {
        let Some(online) = &mut self.online else {
            return;
        };
        let race = &mut online.race;
        let Some((probe_epoch, from)) = race.probe else {
            return;
        };
        if epoch < probe_epoch {
            return;
        }
        race.probe = None;
        if race.held_head() != from {
            let wait = race.wait_again();
            tracing::debug!(?wait, "the head moved while waiting; waiting again");
            return;
        }
        self.release_held();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokio's clock, paused: `Instant::now()` moves only when the test advances it.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn test_lost_races_draw_waits_from_a_window_doubling_per_loss_from_the_last_attempt() {
        runtime().block_on(async {
            let mut race = Race::new(Entropy::seeded(7), true, true);
            race.push_started();
            tokio::time::advance(Duration::from_millis(8)).await;
            race.won();
            assert_eq!(race.cycle, Duration::from_millis(8));
            let mut window = Duration::from_millis(8);
            let mut waits = Vec::new();
            for lost in 1..=8u32 {
                race.push_started();
                let wait = race.lost();
                assert!(wait <= window, "loss {lost}: {wait:?} > {window:?}");
                assert_eq!(race.until, Some(Instant::now() + wait));
                assert_eq!(race.losses, lost);
                // The push was answered at once: the attempt's time is the shortest cycle.
                assert_eq!(race.cycle, MIN_CYCLE);
                window = (MIN_CYCLE * (1 << lost)).min(MAX_WAIT);
                waits.push(wait);
            }
            assert!(waits.iter().any(|wait| *wait > Duration::ZERO), "{waits:?}");
            assert_eq!(race.batch_factor(), MAX_BATCH_FACTOR);
            race.push_started();
            race.won();
            assert_eq!((race.losses, race.batch_factor()), (0, 1));
        });
    }

    #[test]
    fn test_an_attempt_runs_from_the_end_of_the_wait_to_the_answer() {
        runtime().block_on(async {
            let mut race = Race::new(Entropy::seeded(2), true, true);
            race.push_started();
            race.lost();
            race.wait_ended();
            assert_eq!(race.until, None);
            // The rebase after the wait takes 40 ms, the push 5 ms.
            tokio::time::advance(Duration::from_millis(40)).await;
            race.push_started();
            tokio::time::advance(Duration::from_millis(5)).await;
            let wait = race.lost();
            assert_eq!(race.cycle, Duration::from_millis(45));
            assert!(wait <= Duration::from_millis(90), "{wait:?}");
            // A slow attempt is capped.
            race.wait_ended();
            tokio::time::advance(Duration::from_secs(3)).await;
            race.lost();
            assert_eq!(race.cycle, MAX_CYCLE);
        });
    }

    #[test]
    fn test_a_wait_again_is_drawn_from_the_last_attempt_and_keeps_the_streak() {
        runtime().block_on(async {
            let mut race = Race::new(Entropy::seeded(5), true, true);
            race.push_started();
            tokio::time::advance(Duration::from_millis(30)).await;
            race.lost();
            race.lost();
            race.wait_ended();
            let mut waits = Vec::new();
            for _ in 0..20 {
                let wait = race.wait_again();
                assert!(wait <= MAX_WAIT_AGAIN, "{wait:?}");
                assert_eq!(race.until, Some(Instant::now() + wait));
                waits.push(wait);
            }
            assert!(waits.iter().any(|wait| *wait > Duration::ZERO), "{waits:?}");
            assert_eq!((race.losses, race.batch_factor()), (2, 3));
        });
    }

    #[test]
    fn test_batch_factor_grows_by_one_per_loss_up_to_its_cap() {
        runtime().block_on(async {
            let mut race = Race::new(Entropy::seeded(1), true, true);
            let mut factors = vec![race.batch_factor()];
            for _ in 0..5 {
                race.lost();
                factors.push(race.batch_factor());
            }
            assert_eq!(factors, [1, 2, 3, 4, 4, 4]);
        });
    }

    #[test]
    fn test_without_race_wait_a_lost_race_is_retried_at_once() {
        runtime().block_on(async {
            let mut race = Race::new(Entropy::seeded(3), false, true);
            for _ in 0..3 {
                race.push_started();
                assert_eq!(race.lost(), Duration::ZERO);
            }
            assert_eq!((race.until, race.batch_factor()), (None, 1));
        });
    }
}
