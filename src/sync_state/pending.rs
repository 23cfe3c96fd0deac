//! How a node holds its pending events: compactly ([`PendingEvent`]: the args as JSON text,
//! the names shared), with a count of the synced ones ([`Pending`]).
//!
//! A node can hold a long backlog: a leader that was offline for a while keeps every event
//! the backend has not confirmed (100,000 todos are a day of work for some apps), and a
//! session that commits faster than its leader admits keeps what the leader has not taken.
//! An [`EncodedEvent`] holds its args parsed (`serde_json::Value`): a two-field object
//! costs a B-tree node of about 640 bytes plus a string per key and value, about 1 KiB an
//! event with its three id strings. A [`PendingEvent`] holds the same event in about 150
//! bytes: the args as the JSON text they serialize to, and the name, client id and session
//! id shared with the neighbouring pending event when they are equal (as they are for
//! every event of one session). An event leaves pending as an [`EncodedEvent`] again
//! ([`PendingEvent::to_event`]), parsed once: when it is rolled back, replayed or pushed,
//! which touches it anyway.

use std::collections::VecDeque;
use std::collections::vec_deque;
use std::ops::{Range, RangeBounds};
use std::sync::Arc;

use eventsync_backends::GlobalEvent;
use serde_json::Value;

use crate::event::{EncodedEvent, EventMeta, args_equal, json_text};
use crate::seq::EventSeq;

/// A pending event, held compactly: [`EncodedEvent`] with its args as JSON text and its
/// strings shared, without per-node metadata but the backend's `sync_metadata` (pending
/// events carry no changeset: those stay in `state.db` and in the session's journal).
///
/// Its body (name, args, ids) may be absent: a leader's boot holds the events it read from
/// `eventlog.db` by their numbers only, so that a reopen with a long backlog does not read
/// every event, and loads a body from there when a push, a confirmation or a rebase needs
/// it ([`Pending::unloaded_span`], [`Pending::load_body`]). Every event a node makes itself
/// (committed, admitted, rebased) has its body.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// This event's number.
    pub seq: EventSeq,
    /// Its parent's number.
    pub parent: EventSeq,
    /// What the event says; `None` until loaded from the leader's eventlog. Shared: a session
    /// holds each of its pending events twice (its sync state and its undo span) and sends a
    /// third copy to the leader, and a clone must not copy the args.
    body: Option<Arc<Body>>,
}

/// A pending event's content besides its numbers.
#[derive(Debug, Clone, PartialEq)]
struct Body {
    /// The event definition's name.
    name: Arc<str>,
    /// The args as JSON text (valid JSON: written by `serde_json` from a value, or checked
    /// when read from the eventlog).
    args: Box<str>,
    /// The client that committed it.
    client_id: Arc<str>,
    /// The session that committed it.
    session_id: Arc<str>,
    /// Backend-specific metadata, when a pull delivered some (rare: kept boxed).
    sync_metadata: Option<Box<Value>>,
}

/// `text` as an `Arc<str>`, shared with `neighbour` when it holds the same text.
fn shared(text: &str, neighbour: Option<&Arc<str>>) -> Arc<str> {
    match neighbour {
        Some(known) if &**known == text => known.clone(),
        _ => Arc::from(text),
    }
}

impl Body {
    /// A body whose strings equal to `neighbour`'s are shared with it.
    fn new(
        name: &str,
        args: Box<str>,
        client_id: &str,
        session_id: &str,
        neighbour: Option<&Body>,
    ) -> Body {
        Body {
            name: shared(name, neighbour.map(|n| &n.name)),
            args,
            client_id: shared(client_id, neighbour.map(|n| &n.client_id)),
            session_id: shared(session_id, neighbour.map(|n| &n.session_id)),
            sync_metadata: None,
        }
    }
}

impl PendingEvent {
    /// The compact form of `event`. Strings equal to `neighbour`'s (the pending event it
    /// follows) are shared with it rather than copied. Drops the changeset, if any.
    pub fn from_event(event: &EncodedEvent, neighbour: Option<&PendingEvent>) -> PendingEvent {
        let args = json_text(&event.args).into_boxed_str();
        let mut body = Body::new(
            &event.name,
            args,
            &event.client_id,
            &event.session_id,
            neighbour.and_then(|n| n.body.as_deref()),
        );
        body.sync_metadata = event.meta.sync_metadata.clone().map(Box::new);
        PendingEvent {
            seq: event.seq,
            parent: event.parent,
            body: Some(Arc::new(body)),
        }
    }

    /// An event known by its numbers only (read from a store, its body left there until
    /// [`Pending::load_body`]).
    pub(crate) fn unloaded(seq: EventSeq, parent: EventSeq) -> PendingEvent {
        PendingEvent {
            seq,
            parent,
            body: None,
        }
    }

    /// Whether the body (name, args, ids) is here; only a leader's boot makes events
    /// without one.
    pub fn is_loaded(&self) -> bool {
        self.body.is_some()
    }

    /// The body; a caller that reads it made sure it is loaded ([`SyncState::plan`] checks
    /// the events it reads, the leader loads them first).
    ///
    /// [`SyncState::plan`]: super::SyncState::plan
    fn body(&self) -> Option<&Arc<Body>> {
        debug_assert!(
            self.body.is_some(),
            "pending event {}: body not loaded",
            self.seq
        );
        self.body.as_ref()
    }

    /// The event with its args parsed (no changeset). Its body must be loaded (an unloaded
    /// one is a bug of the caller: debug builds panic, release builds give empty fields).
    pub fn to_event(&self) -> EncodedEvent {
        let body = self.body();
        EncodedEvent {
            seq: self.seq,
            parent: self.parent,
            name: body.map(|body| body.name.to_string()).unwrap_or_default(),
            args: self.args_value(),
            client_id: body
                .map(|body| body.client_id.to_string())
                .unwrap_or_default(),
            session_id: body
                .map(|body| body.session_id.to_string())
                .unwrap_or_default(),
            meta: EventMeta {
                sync_metadata: body.and_then(|body| body.sync_metadata.as_deref().cloned()),
                ..EventMeta::default()
            },
        }
    }

    /// The wire form, as [`EncodedEvent::to_global`] (body loaded, as [`Self::to_event`]).
    pub fn to_global(&self) -> GlobalEvent {
        self.to_event().to_global()
    }

    /// The event's name, when its body is loaded.
    pub fn name(&self) -> Option<&str> {
        self.body.as_ref().map(|body| &*body.name)
    }

    /// The args as JSON text, when its body is loaded.
    pub fn args_json(&self) -> Option<&str> {
        self.body.as_ref().map(|body| &*body.args)
    }

    /// The client that committed it, when its body is loaded.
    pub fn client_id(&self) -> Option<&str> {
        self.body.as_ref().map(|body| &*body.client_id)
    }

    /// The session that committed it, when its body is loaded.
    pub fn session_id(&self) -> Option<&str> {
        self.body.as_ref().map(|body| &*body.session_id)
    }

    /// As [`EncodedEvent::is_client_only`].
    pub fn is_client_only(&self) -> bool {
        self.seq.is_client_only()
    }

    /// As [`EncodedEvent::is_same_as`]: the same event at the same position, args compared
    /// canonically. Equal text is equal args; other text is parsed and compared. An event
    /// whose body is not loaded is the same as nothing (and a bug of the caller, see
    /// [`Self::to_event`]).
    pub fn is_same_as(&self, other: &EncodedEvent) -> bool {
        let Some(body) = self.body() else {
            return false;
        };
        self.seq.same_position(&other.seq)
            && *body.name == other.name
            && *body.client_id == other.client_id
            && *body.session_id == other.session_id
            && (serde_json::to_string(&other.args).is_ok_and(|text| *text == *body.args)
                || args_equal(&self.args_value(), &other.args))
    }

    /// As [`EncodedEvent::rebased`]: renumbered onto `parent` with `generation`, keeping
    /// client-only-ness; shares the strings and drops the metadata.
    pub fn rebased(&self, parent: EventSeq, generation: u32) -> PendingEvent {
        let pair = parent.next_pair(self.is_client_only(), generation);
        PendingEvent {
            seq: pair.seq,
            parent: pair.parent,
            body: self.body().map(|body| match body.sync_metadata {
                None => Arc::clone(body),
                Some(_) => Arc::new(Body {
                    sync_metadata: None,
                    ..Body::clone(body)
                }),
            }),
        }
    }

    fn args_value(&self) -> Value {
        // The text is JSON this node wrote from a value or checked when it read it
        // (`Pending::load_body`), so it parses; `Null` would only hide a broken invariant.
        let Some(body) = self.body() else {
            return Value::Null;
        };
        serde_json::from_str(&body.args).unwrap_or_else(|error| {
            debug_assert!(false, "pending event {}: args text: {error}", self.seq);
            Value::Null
        })
    }
}

/// Checks that `text` is one JSON value, without building it (the leader reads pending
/// events' args this way instead of parsing them into values).
fn check_json(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(drop)
}

/// Equal when [`PendingEvent::to_event`] of both would be: args compared as values. An
/// unloaded event equals only an unloaded one with the same numbers.
impl PartialEq for PendingEvent {
    fn eq(&self, other: &PendingEvent) -> bool {
        self.seq == other.seq
            && self.parent == other.parent
            && match (&self.body, &other.body) {
                (None, None) => true,
                (Some(mine), Some(theirs)) => {
                    mine.name == theirs.name
                        && mine.client_id == theirs.client_id
                        && mine.session_id == theirs.session_id
                        && mine.sync_metadata == theirs.sync_metadata
                        && (mine.args == theirs.args || self.args_value() == other.args_value())
                }
                _ => false,
            }
    }
}

/// Equal when [`PendingEvent::to_event`] equals `other` (for tests that state pending
/// events as [`EncodedEvent`]s).
impl PartialEq<EncodedEvent> for PendingEvent {
    fn eq(&self, other: &EncodedEvent) -> bool {
        self.to_event() == *other
    }
}

/// A node's pending events, ascending, compactly ([`PendingEvent`]), with the number of
/// synced ones (`client == 0`) kept as they come and go, so that the leader reports its
/// backlog to the backend in O(1). A deque: upstream confirms the oldest, local pushes
/// append the newest, and neither moves the events in between.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pending {
    events: VecDeque<PendingEvent>,
    /// How many of `events` are synced (not client-only).
    synced: usize,
}

impl Pending {
    /// How many events are pending.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many pending events are synced (bound for the backend): O(1).
    pub fn synced_len(&self) -> usize {
        self.synced
    }

    /// The pending events, oldest first.
    pub fn iter(&self) -> vec_deque::Iter<'_, PendingEvent> {
        self.events.iter()
    }

    /// The pending events in `range` (indices), oldest first.
    pub fn range<R: RangeBounds<usize>>(&self, range: R) -> vec_deque::Iter<'_, PendingEvent> {
        self.events.range(range)
    }

    /// The newest pending event.
    pub fn back(&self) -> Option<&PendingEvent> {
        self.events.back()
    }

    /// The oldest pending event.
    pub fn front(&self) -> Option<&PendingEvent> {
        self.events.front()
    }

    /// The pending events as [`EncodedEvent`]s (args parsed), oldest first.
    pub fn to_events(&self) -> Vec<EncodedEvent> {
        self.events.iter().map(PendingEvent::to_event).collect()
    }

    /// Appends events that follow the newest pending one (the caller keeps the order).
    pub fn push(&mut self, event: PendingEvent) {
        if !event.is_client_only() {
            self.synced += 1;
        }
        self.events.push_back(event);
    }

    /// Appends `events` in compact form, sharing strings with their predecessors.
    pub fn push_events<'a>(&mut self, events: impl IntoIterator<Item = &'a EncodedEvent>) {
        for event in events {
            let compact = PendingEvent::from_event(event, self.events.back());
            self.push(compact);
        }
    }

    /// Removes the `count` oldest events (all of them when fewer are pending).
    pub fn drop_front(&mut self, count: usize) {
        let count = count.min(self.events.len());
        let dropped = self
            .events
            .range(..count)
            .filter(|event| !event.is_client_only())
            .count();
        self.events.drain(..count);
        self.synced -= dropped;
    }

    /// Index of the event at `seq`'s position, in these ascending events.
    pub(crate) fn binary_search_position(&self, seq: EventSeq) -> Result<usize, usize> {
        self.events
            .binary_search_by(|event| event.seq.position_cmp(&seq))
    }

    /// The event at `index` (0 = the oldest).
    pub fn get(&self, index: usize) -> Option<&PendingEvent> {
        self.events.get(index)
    }

    /// The indices of the first and the last event in `range` whose body is not loaded, or
    /// `None` when all of them are.
    pub fn unloaded_span(&self, range: Range<usize>) -> Option<(usize, usize)> {
        let range = range.start.min(self.events.len())..range.end.min(self.events.len());
        let unloaded = |index: &usize| !self.events[*index].is_loaded();
        let first = range.clone().find(unloaded)?;
        let last = range.rev().find(unloaded)?;
        Some((first, last))
    }

    /// Gives the event numbered `seq` (generation included) its body, as read from a store:
    /// `args` is the stored JSON text, checked here (not parsed into a value). Strings equal
    /// to the previous event's are shared with it. Returns whether an unloaded event with
    /// that number took it: a loaded one keeps its body, and an unknown number is ignored.
    ///
    /// # Errors
    ///
    /// The args text is not one JSON value.
    pub(crate) fn load_body(
        &mut self,
        seq: EventSeq,
        name: &str,
        args: String,
        client_id: &str,
        session_id: &str,
    ) -> Result<bool, serde_json::Error> {
        let Ok(index) = self.binary_search_position(seq) else {
            return Ok(false);
        };
        if self.events[index].seq != seq || self.events[index].is_loaded() {
            return Ok(false);
        }
        check_json(&args)?;
        let neighbour = index
            .checked_sub(1)
            .and_then(|previous| self.events[previous].body.as_deref());
        let body = Body::new(
            name,
            args.into_boxed_str(),
            client_id,
            session_id,
            neighbour,
        );
        self.events[index].body = Some(Arc::new(body));
        Ok(true)
    }
}

impl Extend<PendingEvent> for Pending {
    fn extend<I: IntoIterator<Item = PendingEvent>>(&mut self, events: I) {
        for event in events {
            self.push(event);
        }
    }
}

impl FromIterator<PendingEvent> for Pending {
    fn from_iter<I: IntoIterator<Item = PendingEvent>>(events: I) -> Pending {
        let mut pending = Pending::default();
        pending.extend(events);
        pending
    }
}

impl From<Vec<EncodedEvent>> for Pending {
    fn from(events: Vec<EncodedEvent>) -> Pending {
        let mut pending = Pending::default();
        pending.push_events(&events);
        pending
    }
}

impl From<Pending> for Vec<EncodedEvent> {
    fn from(pending: Pending) -> Vec<EncodedEvent> {
        pending.to_events()
    }
}

impl<'a> IntoIterator for &'a Pending {
    type Item = &'a PendingEvent;
    type IntoIter = vec_deque::Iter<'a, PendingEvent>;

    fn into_iter(self) -> Self::IntoIter {
        self.events.iter()
    }
}

impl PartialEq<Vec<EncodedEvent>> for Pending {
    fn eq(&self, other: &Vec<EncodedEvent>) -> bool {
        self.events.len() == other.len() && self.events.iter().zip(other).all(|(a, b)| a == b)
    }
}

impl<const N: usize> PartialEq<[EncodedEvent; N]> for Pending {
    fn eq(&self, other: &[EncodedEvent; N]) -> bool {
        self.events.len() == N && self.events.iter().zip(other).all(|(a, b)| a == b)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(seq: EventSeq, parent: EventSeq, args: Value) -> EncodedEvent {
        EncodedEvent {
            seq,
            parent,
            name: "v1.TodoCreated".into(),
            args,
            client_id: "client".into(),
            session_id: "session".into(),
            meta: EventMeta::default(),
        }
    }

    fn todos(count: u64) -> Vec<EncodedEvent> {
        (1..=count)
            .map(|n| {
                event(
                    EventSeq::from(eventsync_backends::GlobalSeq(n)),
                    EventSeq::from(eventsync_backends::GlobalSeq(n - 1)),
                    json!({"id": format!("t{n}"), "text": format!("todo number {n}")}),
                )
            })
            .collect()
    }

    #[test]
    fn test_pending_event_round_trips_to_the_same_event() {
        let original = event(
            EventSeq::new(3, 1, 2),
            EventSeq::new(3, 0, 2),
            json!({"b": [1, 2.5, null], "a": {"x": "y"}}),
        );
        let pending = PendingEvent::from_event(&original, None);
        assert_eq!(pending.to_event(), original);
        assert!(pending.is_same_as(&original));
        assert!(pending.is_client_only());
    }

    #[test]
    fn test_pending_event_holds_args_as_text_not_parsed() {
        // The in-memory form of a pending event: its args are one JSON string, not a map
        // of values (the map is what cost about 1 KiB an event, issue 11).
        let original = &todos(1)[0];
        let pending = PendingEvent::from_event(original, None);
        assert_eq!(
            pending.args_json(),
            Some(r#"{"id":"t1","text":"todo number 1"}"#)
        );
        assert!(
            std::mem::size_of::<PendingEvent>() <= 128,
            "PendingEvent grew to {} bytes",
            std::mem::size_of::<PendingEvent>()
        );
    }

    #[test]
    fn test_pending_events_of_one_session_share_their_strings() {
        let mut pending = Pending::default();
        pending.push_events(&todos(3));
        let first = pending.front().unwrap().body.as_ref().unwrap();
        for event in pending.iter() {
            let body = event.body.as_ref().unwrap();
            assert!(Arc::ptr_eq(&body.name, &first.name));
            assert!(Arc::ptr_eq(&body.client_id, &first.client_id));
            assert!(Arc::ptr_eq(&body.session_id, &first.session_id));
        }
    }

    #[test]
    fn test_same_as_compares_args_canonically() {
        let original = event(EventSeq::new(1, 0, 0), EventSeq::ROOT, json!({"a": 1}));
        let pending = PendingEvent::from_event(&original, None);
        let with_null = event(
            EventSeq::new(1, 0, 3),
            EventSeq::ROOT,
            json!({"a": 1, "b": null}),
        );
        assert!(pending.is_same_as(&with_null));
        let other = event(EventSeq::new(1, 0, 0), EventSeq::ROOT, json!({"a": 2}));
        assert!(!pending.is_same_as(&other));
    }

    #[test]
    fn test_synced_count_follows_pushes_and_drops() {
        let mut pending = Pending::default();
        let synced = event(EventSeq::new(1, 0, 0), EventSeq::ROOT, json!(1));
        let local = event(EventSeq::new(1, 1, 0), EventSeq::new(1, 0, 0), json!(2));
        let next = event(EventSeq::new(2, 0, 0), EventSeq::new(1, 0, 0), json!(3));
        pending.push_events([&synced, &local, &next]);
        assert_eq!((pending.len(), pending.synced_len()), (3, 2));
        pending.drop_front(2);
        assert_eq!((pending.len(), pending.synced_len()), (1, 1));
        pending.drop_front(5);
        assert_eq!((pending.len(), pending.synced_len()), (0, 0));
    }

    /// Numbers only, then bodies loaded as a store would give them: the loaded events
    /// equal the originals and share their strings; unknown numbers, other generations and
    /// loaded events are left alone.
    #[test]
    fn test_unloaded_events_take_their_bodies_by_number() {
        let originals = todos(4);
        let mut pending: Pending = originals
            .iter()
            .map(|event| PendingEvent::unloaded(event.seq, event.parent))
            .collect();
        assert_eq!(pending.unloaded_span(0..4), Some((0, 3)));
        assert!(pending.iter().all(|event| event.name().is_none()));
        let load = |pending: &mut Pending, event: &EncodedEvent| {
            let args = serde_json::to_string(&event.args).unwrap();
            pending.load_body(
                event.seq,
                &event.name,
                args,
                &event.client_id,
                &event.session_id,
            )
        };
        assert!(load(&mut pending, &originals[1]).unwrap());
        assert!(load(&mut pending, &originals[2]).unwrap());
        assert!(
            !load(&mut pending, &originals[2]).unwrap(),
            "already loaded"
        );
        let other_generation = EncodedEvent {
            seq: EventSeq::new(1, 0, 7),
            ..originals[0].clone()
        };
        assert!(!load(&mut pending, &other_generation).unwrap());
        assert_eq!(pending.unloaded_span(0..4), Some((0, 3)));
        assert_eq!(pending.unloaded_span(1..3), None);
        assert_eq!(pending.get(1).unwrap().to_event(), originals[1]);
        assert_eq!(pending.get(2).unwrap().to_event(), originals[2]);
        let (second, third) = (pending.get(1).unwrap(), pending.get(2).unwrap());
        let (second, third) = (second.body.as_ref().unwrap(), third.body.as_ref().unwrap());
        assert!(Arc::ptr_eq(&second.name, &third.name));
        let broken = pending.load_body(originals[0].seq, "n", "{".into(), "c", "s");
        assert!(broken.is_err(), "args that are not JSON are refused");
        assert!(!pending.get(0).unwrap().is_loaded());
    }

    #[test]
    fn test_check_json_refuses_broken_text() {
        assert!(check_json(r#"{"id":"t1"}"#).is_ok());
        assert!(check_json(r#"{"id":"#).is_err());
        assert!(check_json("1 2").is_err());
    }
}
