//! The ledger: every commit the simulation made, synced and client-only, with what is known
//! of its fate, for the auditor.
//!
//! A commit's identity is its session (client id and session id) and its place among that
//! session's commits of its kind (synced or client-only). Args can repeat (`TodoCompleted`
//! of one todo twice, the same `UiStateSet` filter twice), so the auditor compares, session
//! by session, the sequence of commits with the sequence a log holds: a doubled, dropped or
//! reordered event shows whatever its args.

use std::collections::BTreeMap;

use eventsync::EncodedEvent;
use eventsync::Event;
use eventsync::canonical_args;
use serde_json::Value;

/// What the ledger knows of a commit's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Committed by a session of a leader that is still running (or shut down cleanly and
    /// not reopened yet): it must be admitted (and, if synced, reach the backend).
    Live,
    /// Found in its leader's eventlog after a restart.
    Persisted,
    /// A `sync` that began after it returned `Ok`: it is in the backend.
    Confirmed,
    /// Its leader crashed before admitting it: it must never appear anywhere.
    LostInCrash,
}

/// One commit a session made.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Which leader's session committed it.
    pub node: usize,
    /// That leader's incarnation (bumped at each open).
    pub incarnation: u64,
    /// The committing client (the node's client id).
    pub client_id: String,
    /// The committing session.
    pub session_id: String,
    /// The event's name and canonical args ([`event_key`]).
    pub key: String,
    /// Client-only (stays in its client's eventlog) or synced (goes to the backend).
    pub client_only: bool,
    /// What we know.
    pub fate: Fate,
}

/// A session, as `(client id, session id)`.
pub type SessionRef = (String, String);

/// The events of each session in a log (or expected there), as event keys, in log order.
pub type BySession = BTreeMap<SessionRef, Vec<String>>;

/// The key of an event within its session's sequence: its name and canonical args.
pub fn event_key(name: &str, args: &Value) -> String {
    format!("{name} {}", canonical_args(args))
}

/// What settling a reopened leader's earlier commits found.
#[derive(Debug, Default)]
pub struct Settled {
    /// Synced commits lost because the leader crashed before admitting them.
    pub lost_synced: u64,
    /// Client-only commits lost the same way.
    pub lost_client_only: u64,
    /// Broken invariants, as sentences.
    pub violations: Vec<String>,
}

/// Every commit of a run, in commit order.
#[derive(Debug, Default)]
pub struct Ledger {
    commits: Vec<Commit>,
}

impl Ledger {
    /// Records a commit that its session acknowledged.
    pub fn record(&mut self, commit: Commit) {
        self.commits.push(commit);
    }

    /// How many commits were recorded so far (a mark for [`Ledger::confirm`]).
    pub fn len(&self) -> usize {
        self.commits.len()
    }

    /// A `sync` of node `node` returned `Ok`: its synced commits of incarnation `incarnation`
    /// recorded before `mark` are in the backend.
    pub fn confirm(&mut self, node: usize, incarnation: u64, mark: usize) {
        for commit in &mut self.commits[..mark] {
            if commit.node == node && commit.incarnation == incarnation && !commit.client_only {
                commit.fate = Fate::Confirmed;
            }
        }
    }

    /// Node `node` opened as incarnation `incarnation` with `eventlog`: settles its earlier
    /// incarnations' live commits. Session by session and kind by kind, the eventlog must
    /// hold a prefix of what the session committed, in order (a leader admits a session's
    /// pushes in order); the commits after that prefix were lost in a crash if the last
    /// incarnation crashed, and are a violation otherwise.
    pub fn settle(
        &mut self,
        node: usize,
        incarnation: u64,
        crashed: bool,
        eventlog: &[EncodedEvent],
    ) -> Settled {
        let mut settled = Settled::default();
        let mut held: BTreeMap<(SessionRef, bool), Vec<String>> = BTreeMap::new();
        for event in eventlog {
            held.entry((
                (event.client_id.clone(), event.session_id.clone()),
                event.is_client_only(),
            ))
            .or_default()
            .push(event_key(&event.name, &event.args));
        }
        // Where each (session, kind) stands in its sequence of commits.
        let mut position: BTreeMap<(SessionRef, bool), usize> = BTreeMap::new();
        for commit in &mut self.commits {
            if commit.node != node || commit.incarnation >= incarnation {
                continue;
            }
            let stream = (
                (commit.client_id.clone(), commit.session_id.clone()),
                commit.client_only,
            );
            let at = position.entry(stream.clone()).or_default();
            let index = *at;
            *at += 1;
            let in_log = held.get(&stream).and_then(|keys| keys.get(index));
            if commit.fate != Fate::Live {
                continue;
            }
            match in_log {
                Some(key) if *key == commit.key => commit.fate = Fate::Persisted,
                Some(key) => settled.violations.push(format!(
                    "node {node}: commit {index} of {}/{} is {} but the eventlog holds {key} there",
                    commit.client_id, commit.session_id, commit.key
                )),
                None if crashed && commit.incarnation + 1 == incarnation => {
                    commit.fate = Fate::LostInCrash;
                    if commit.client_only {
                        settled.lost_client_only += 1;
                    } else {
                        settled.lost_synced += 1;
                    }
                }
                None => settled.violations.push(format!(
                    "node {node}: {} of {}/{} was committed before a clean shutdown but is not in the eventlog after reopening",
                    commit.key, commit.client_id, commit.session_id
                )),
            }
        }
        for (stream, committed) in position {
            let held = held.get(&stream).map_or(0, Vec::len);
            if held > committed {
                let ((client, session), client_only) = stream;
                settled.violations.push(format!(
                    "node {node}: the eventlog holds {held} {} events of {client}/{session}, which committed {committed}",
                    if client_only { "client-only" } else { "synced" }
                ));
            }
        }
        settled
    }

    /// What a log must hold of the commits `which` selects, session by session, in commit
    /// order: every one not lost in a crash.
    pub fn expected(&self, which: impl Fn(&Commit) -> bool) -> BySession {
        let mut expected = BySession::new();
        for commit in &self.commits {
            if commit.fate != Fate::LostInCrash && which(commit) {
                expected
                    .entry((commit.client_id.clone(), commit.session_id.clone()))
                    .or_default()
                    .push(commit.key.clone());
            }
        }
        expected
    }
}

#[cfg(test)]
mod tests {
    use eventsync::EventSeq;
    use eventsync_todo::{TodoCompleted, TodoFilter, UiStateSet};

    use super::*;

    fn completed(id: &str) -> Value {
        serde_json::to_value(TodoCompleted { id: id.into() }).unwrap()
    }

    /// Node 0's session `s1` of incarnation 1: completes t1, t2, t1, then sets a filter.
    fn ledger() -> Ledger {
        let mut ledger = Ledger::default();
        let events = [
            (TodoCompleted::NAME, completed("t1"), false),
            (TodoCompleted::NAME, completed("t2"), false),
            (TodoCompleted::NAME, completed("t1"), false),
            (
                UiStateSet::NAME,
                serde_json::to_value(UiStateSet {
                    filter: TodoFilter::Active,
                })
                .unwrap(),
                true,
            ),
        ];
        for (name, args, client_only) in events {
            ledger.record(Commit {
                node: 0,
                incarnation: 1,
                client_id: "c0".into(),
                session_id: "s1".into(),
                key: event_key(name, &args),
                client_only,
                fate: Fate::Live,
            });
        }
        ledger
    }

    /// An eventlog holding the first `synced` synced commits of [`ledger`] (and its
    /// client-only one if `client_only`).
    fn eventlog(synced: usize, client_only: bool) -> Vec<EncodedEvent> {
        let ids = ["t1", "t2", "t1"];
        let mut events: Vec<EncodedEvent> = ids[..synced]
            .iter()
            .enumerate()
            .map(|(index, id)| EncodedEvent {
                seq: EventSeq::global(index as u64 + 1),
                parent: EventSeq::global(index as u64),
                name: TodoCompleted::NAME.into(),
                args: completed(id),
                client_id: "c0".into(),
                session_id: "s1".into(),
                meta: Default::default(),
            })
            .collect();
        if client_only {
            let mut event = events.last().cloned().expect("one synced event first");
            event.parent = event.seq;
            event.seq = EventSeq::new(event.seq.global.0, 1, 0);
            event.name = UiStateSet::NAME.into();
            event.args = serde_json::to_value(UiStateSet {
                filter: TodoFilter::Active,
            })
            .unwrap();
            events.push(event);
        }
        events
    }

    fn fates(ledger: &Ledger) -> Vec<Fate> {
        ledger.commits.iter().map(|commit| commit.fate).collect()
    }

    #[test]
    fn test_settle_after_a_crash_loses_the_commits_after_the_admitted_prefix() {
        let mut ledger = ledger();
        let settled = ledger.settle(0, 2, true, &eventlog(2, false));
        assert!(settled.violations.is_empty(), "{:?}", settled.violations);
        assert_eq!((settled.lost_synced, settled.lost_client_only), (1, 1));
        assert_eq!(
            fates(&ledger),
            [
                Fate::Persisted,
                Fate::Persisted,
                Fate::LostInCrash,
                Fate::LostInCrash
            ]
        );
    }

    #[test]
    fn test_settle_after_a_clean_shutdown_reports_a_missing_commit() {
        let mut ledger = ledger();
        let settled = ledger.settle(0, 2, false, &eventlog(2, true));
        assert_eq!(settled.violations.len(), 1, "{:?}", settled.violations);
        assert!(
            settled.violations[0].contains("committed before a clean shutdown"),
            "{:?}",
            settled.violations
        );
        assert_eq!(settled.lost_synced, 0);
    }

    #[test]
    fn test_settle_reports_an_eventlog_that_holds_a_commit_twice() {
        let mut ledger = ledger();
        let mut doubled = eventlog(3, true);
        let mut again = doubled[2].clone();
        again.seq = EventSeq::global(4);
        again.parent = EventSeq::global(3);
        doubled.push(again);
        let settled = ledger.settle(0, 2, true, &doubled);
        assert_eq!(settled.violations.len(), 1, "{:?}", settled.violations);
        assert!(
            settled.violations[0].contains("holds 4 synced events of c0/s1, which committed 3"),
            "{:?}",
            settled.violations
        );
    }
}
