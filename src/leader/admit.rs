//! Admission of session pushes: LiveStore's checks as a pure function ([`check_push`]) with
//! a typed [`Refusal`] (defined in `messages.rs`, as the session receives it), an epoch fence
//! per session, then one [core step](Leader::apply_step) for everything admitted.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::messages::{PushRequest, Refusal, SessionKey, SessionMessage, SessionSeed};
use super::{Leader, NextState, SessionLink, db_error};
use crate::error::{Error, ErrorKind};
use crate::event::EncodedEvent;
use crate::seq::EventSeq;
use crate::sync_state::{Payload, PendingEvent};

/// LiveStore's admission checks, pure: the epoch fence of the pushing session (`min_epoch`,
/// `None` for an unknown session), then a batch that is not empty, numbered on the leader's
/// `head`, of the head's generation or newer, after the head, ascending and contiguous.
pub(crate) fn check_push(
    head: EventSeq,
    min_epoch: Option<u64>,
    push: &PushRequest,
) -> Result<(), Refusal> {
    let Some(fenced_at) = min_epoch else {
        return Err(Refusal::UnknownSession);
    };
    if push.epoch < fenced_at {
        return Err(Refusal::StaleEpoch {
            epoch: push.epoch,
            fenced_at,
        });
    }
    let Some(first) = push.events.first() else {
        return Err(Refusal::Empty);
    };
    let first = first.seq;
    if !push.base.same_position(&head) {
        return Err(Refusal::BaseMismatch {
            first,
            base: push.base,
            head,
        });
    }
    if first.generation < head.generation {
        return Err(Refusal::StaleGeneration { first, head });
    }
    if !first.is_after(&head) {
        return Err(Refusal::LeaderAhead { first, head });
    }
    let mut previous = head;
    for event in &push.events {
        if !event.seq.is_after(&previous) {
            return Err(Refusal::NonMonotonic {
                seq: event.seq,
                previous,
            });
        }
        let expected = previous.next_pair(event.is_client_only(), event.seq.generation);
        if !event.seq.same_position(&expected.seq) || !event.parent.same_position(&expected.parent)
        {
            return Err(Refusal::NotContiguous {
                seq: event.seq,
                parent: event.parent,
                previous,
            });
        }
        previous = event.seq;
    }
    Ok(())
}

impl Leader {
    pub(super) fn open_session(&mut self) -> Result<SessionSeed, Error> {
        if let Some(reason) = &self.closed {
            return Err(Error::new(ErrorKind::Closed, reason.clone()));
        }
        let mut connection = rusqlite::Connection::open_in_memory().map_err(|error| {
            Error::new(ErrorKind::Internal, "opening a session database").with_source(error)
        })?;
        // The copy holds the changesets of the leader's unconfirmed events too: the session
        // reads them from there only if it rolls back (a backlog of 100,000 would otherwise
        // cost every session's opening a read of all of them).
        self.db.copy_state_into(&mut connection).map_err(db_error)?;
        let (sender, messages) = mpsc::unbounded_channel();
        let key = self.next_session;
        self.next_session += 1;
        self.sessions.insert(
            key,
            SessionLink {
                sender,
                min_epoch: 0,
            },
        );
        Ok(SessionSeed {
            key,
            connection,
            heads: self.heads(),
            messages,
        })
    }

    /// Admits session pushes: checks each against the leader's head (moved by the pushes
    /// admitted before it), then materializes everything admitted in one core step.
    pub(super) fn admit(&mut self, pushes: Vec<PushRequest>) {
        // While the tables lag, pushes wait for the catch-up (see `lag.rs`).
        let pushes: Vec<PushRequest> = pushes
            .into_iter()
            .filter_map(|push| self.queue_if_lagging(push))
            .collect();
        if pushes.is_empty() {
            return;
        }
        let mut head = self.state.local_head;
        let mut admitted: Vec<EncodedEvent> = Vec::new();
        // The compact copies join the leader's pending as they are.
        let mut compact: Vec<PendingEvent> = Vec::new();
        for push in pushes {
            if let Some(reason) = &self.closed {
                let reason = reason.clone();
                self.send(push.session, SessionMessage::Closed { reason });
                continue;
            }
            let min_epoch = self.sessions.get(&push.session).map(|link| link.min_epoch);
            match check_push(head, min_epoch, &push) {
                Err(refusal) => self.refuse(push.session, push.epoch, refusal),
                Ok(()) => {
                    if let Some(last) = push.events.last() {
                        head = last.seq;
                    }
                    admitted.extend(push.events.iter().map(PendingEvent::to_event));
                    compact.extend(push.events);
                }
            }
        }
        if admitted.is_empty() {
            return;
        }
        let count = admitted.len() as u64;
        let payload = Payload::UpstreamAdvance {
            new_events: admitted,
        };
        match self.apply_step(NextState::Admitted(compact), payload, None) {
            Ok(()) => {
                self.counters.admitted.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => self.fail(error),
        }
    }

    fn refuse(&mut self, session: SessionKey, epoch: u64, refusal: Refusal) {
        tracing::debug!(session, epoch, %refusal, "session push refused");
        if let Some(link) = self.sessions.get_mut(&session) {
            link.min_epoch = link.min_epoch.max(epoch + 1);
        }
        self.send(
            session,
            SessionMessage::Rejected {
                epoch,
                reason: refusal,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::EventMeta;

    fn event(seq: EventSeq, parent: EventSeq) -> EncodedEvent {
        EncodedEvent {
            seq,
            parent,
            name: "a".into(),
            args: json!(null),
            client_id: "c".into(),
            session_id: "s".into(),
            meta: EventMeta::default(),
        }
    }

    fn push(epoch: u64, base: EventSeq, events: Vec<EncodedEvent>) -> PushRequest {
        PushRequest {
            session: 1,
            epoch,
            base,
            events: events
                .iter()
                .map(|event| PendingEvent::from_event(event, None))
                .collect(),
        }
    }

    const E1: EventSeq = EventSeq::new(1, 0, 0);
    const E2: EventSeq = EventSeq::new(2, 0, 0);
    const E3: EventSeq = EventSeq::new(3, 0, 0);
    const E2_1: EventSeq = EventSeq::new(2, 1, 0);
    const E2R1: EventSeq = EventSeq::new(2, 0, 1);
    const E3R1: EventSeq = EventSeq::new(3, 0, 1);

    /// Each kind of refusal, and the pushes that pass, against a leader whose head is `e2`
    /// (or `e2r1` for the generation case) and a session fenced at epoch 1.
    #[test]
    fn test_check_push_refuses_each_kind_and_admits_the_rest() {
        type Case = (
            &'static str,
            EventSeq,
            Option<u64>,
            PushRequest,
            Result<(), Refusal>,
        );
        let cases: Vec<Case> = vec![
            (
                "synced event on the head",
                E2,
                Some(1),
                push(1, E2, vec![event(E3, E2)]),
                Ok(()),
            ),
            (
                "client-only then synced",
                E2,
                Some(1),
                push(1, E2, vec![event(E2_1, E2), event(E3, E2)]),
                Ok(()),
            ),
            (
                "rebased event of the head's generation",
                E2R1,
                Some(0),
                push(0, E2R1, vec![event(E3R1, E2R1)]),
                Ok(()),
            ),
            (
                "unknown session",
                E2,
                None,
                push(1, E2, vec![event(E3, E2)]),
                Err(Refusal::UnknownSession),
            ),
            (
                "stale epoch",
                E2,
                Some(1),
                push(0, E2, vec![event(E3, E2)]),
                Err(Refusal::StaleEpoch {
                    epoch: 0,
                    fenced_at: 1,
                }),
            ),
            (
                "empty",
                E2,
                Some(1),
                push(1, E2, vec![]),
                Err(Refusal::Empty),
            ),
            (
                "numbered on another head",
                E2,
                Some(1),
                push(1, E1, vec![event(E2, E1)]),
                Err(Refusal::BaseMismatch {
                    first: E2,
                    base: E1,
                    head: E2,
                }),
            ),
            (
                "stale generation",
                E2R1,
                Some(1),
                push(1, E2, vec![event(E3, E2)]),
                Err(Refusal::StaleGeneration {
                    first: E3,
                    head: E2R1,
                }),
            ),
            (
                "leader ahead",
                E2,
                Some(1),
                push(1, E2, vec![event(E2, E1)]),
                Err(Refusal::LeaderAhead {
                    first: E2,
                    head: E2,
                }),
            ),
            (
                "non-monotonic",
                E2,
                Some(1),
                push(1, E2, vec![event(E3, E2), event(E3, E2)]),
                Err(Refusal::NonMonotonic {
                    seq: E3,
                    previous: E3,
                }),
            ),
            (
                "gap",
                E1,
                Some(1),
                push(1, E1, vec![event(E3, E2)]),
                Err(Refusal::NotContiguous {
                    seq: E3,
                    parent: E2,
                    previous: E1,
                }),
            ),
            (
                "wrong parent",
                E2,
                Some(1),
                push(1, E2, vec![event(E3, E1)]),
                Err(Refusal::NotContiguous {
                    seq: E3,
                    parent: E1,
                    previous: E2,
                }),
            ),
        ];
        for (name, head, min_epoch, request, expected) in cases {
            assert_eq!(check_push(head, min_epoch, &request), expected, "{name}");
        }
    }
}
