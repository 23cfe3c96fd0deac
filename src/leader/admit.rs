//! Admission of session pushes: LiveStore's checks, an epoch fence per session, then one
//! transaction for everything admitted and one payload to every session.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::db::NewEvent;
use super::messages::{PushRequest, SessionKey, SessionMessage, SessionSeed};
use super::{Leader, SessionLink, db_error};
use crate::error::{Error, ErrorKind};
use crate::event::EncodedEvent;
use crate::materialize::Record;
use crate::sync_state::{LocalPush, MergeOptions, Payload};

impl Leader {
    pub(super) fn open_session(&mut self) -> Result<SessionSeed, Error> {
        if let Some(reason) = &self.closed {
            return Err(Error::new(ErrorKind::Closed, reason.clone()));
        }
        let mut connection = rusqlite::Connection::open_in_memory()
            .map_err(|error| Error::internal(format!("opening a session database: {error}")))?;
        self.db.copy_state_into(&mut connection).map_err(db_error)?;
        let journal = self
            .state
            .pending
            .iter()
            .map(|event| (event.seq, event.meta.changeset.clone()))
            .collect();
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
            journal,
            heads: self.heads(),
            messages,
        })
    }

    /// Admits session pushes: validates each against the leader's head, merges it, then
    /// materializes everything admitted in one transaction and tells every session.
    pub(super) fn admit(&mut self, pushes: Vec<PushRequest>) {
        if pushes.is_empty() {
            return;
        }
        let mut admitted: Vec<EncodedEvent> = Vec::new();
        for push in pushes {
            let PushRequest { session, epoch, .. } = push;
            if let Some(reason) = &self.closed {
                self.send(
                    session,
                    SessionMessage::Closed {
                        reason: reason.clone(),
                    },
                );
                continue;
            }
            match self.validate_push(&push) {
                Err(reason) => self.reject(session, epoch, reason),
                Ok(()) => match self.state.push_local(push.events, MergeOptions::default()) {
                    LocalPush::Advance { new_events } => admitted.extend(new_events),
                    LocalPush::Reject {
                        expected_minimum_id,
                    } => self.reject(
                        session,
                        epoch,
                        format!("leader is ahead: expected at least {expected_minimum_id}"),
                    ),
                },
            }
        }
        if admitted.is_empty() {
            return;
        }
        let state_head = admitted
            .last()
            .map(|event| event.seq)
            .unwrap_or(self.state_head);
        let mut items: Vec<NewEvent<'_>> = admitted
            .iter_mut()
            .map(|event| NewEvent {
                event,
                record: Record::Changeset,
            })
            .collect();
        match self
            .db
            .apply_batch(&self.schema, &[], &mut items, state_head, None)
        {
            Ok(_) => {
                self.counters
                    .admitted
                    .fetch_add(admitted.len() as u64, Ordering::Relaxed);
                self.state_head = state_head;
                // Keep the recorded changesets on the pending copies (rollback reads them
                // from state.db, sessions seed their journal from these).
                for event in &admitted {
                    if let Some(pending) = self
                        .state
                        .pending
                        .iter_mut()
                        .rev()
                        .find(|p| p.seq == event.seq)
                    {
                        pending.meta.changeset = event.meta.changeset.clone();
                    }
                }
                self.broadcast(Payload::UpstreamAdvance {
                    new_events: admitted,
                });
            }
            Err(error) => self.fail(db_error(error)),
        }
    }

    /// LiveStore's admission checks: an epoch fence per session, then a batch that is
    /// ascending, contiguous, after the leader's head and not of a stale generation.
    fn validate_push(&mut self, push: &PushRequest) -> Result<(), String> {
        let (epoch, events) = (push.epoch, &push.events);
        let Some(link) = self.sessions.get(&push.session) else {
            return Err("unknown session".into());
        };
        if epoch < link.min_epoch {
            return Err(format!(
                "stale push of epoch {epoch} (fenced at {})",
                link.min_epoch
            ));
        }
        let Some(first) = events.first() else {
            return Err("empty push".into());
        };
        let head = self.state.local_head;
        if !push.base.same_position(&head) {
            return Err(format!(
                "the session numbered {} on {} but the leader's head is {head}",
                first.seq, push.base
            ));
        }
        if first.seq.generation < head.generation {
            return Err(format!(
                "stale rebase generation: {} is older than the leader head {head}",
                first.seq
            ));
        }
        if !first.seq.is_after(&head) {
            return Err(format!(
                "leader is ahead: {} is not after the leader head {head}",
                first.seq
            ));
        }
        let mut previous = head;
        for event in events {
            let expected = previous.next_pair(event.is_client_only(), event.seq.generation);
            if !event.seq.same_position(&expected.seq)
                || !event.parent.same_position(&expected.parent)
            {
                return Err(format!(
                    "non-contiguous push: {} (parent {}) does not follow {previous}",
                    event.seq, event.parent
                ));
            }
            previous = event.seq;
        }
        Ok(())
    }

    fn reject(&mut self, session: SessionKey, epoch: u64, reason: String) {
        tracing::debug!(session, epoch, %reason, "session push refused");
        if let Some(link) = self.sessions.get_mut(&session) {
            link.min_epoch = link.min_epoch.max(epoch + 1);
        }
        self.send(session, SessionMessage::Rejected { epoch, reason });
    }
}
