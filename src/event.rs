//! Events on the client side: the [`Event`] trait of a typed event, [`EncodedEvent`] with its
//! sequence numbers and per-node metadata, and the conversions to and from the backend's
//! [`GlobalEvent`].

use eventsync_backends::GlobalEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::seq::EventSeq;

/// A typed event: its args type, which carries the event's name and options, so that a
/// schema registers it and a session commits it by type alone
/// (`Schema::builder().event::<TodoCreated>(materializer)`, `session.commit(&TodoCreated { .. })`).
///
/// The type is the event's JSON args: it is serialized on commit and decoded for its
/// materializer. Dynamic callers (names known only at run time) use
/// `SchemaBuilder::define_event` and `ClientSession::commit_dynamic` instead.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct TodoCreated {
///     id: String,
///     text: String,
/// }
///
/// impl eventsync::Event for TodoCreated {
///     const NAME: &'static str = "v1.TodoCreated";
/// }
/// ```
pub trait Event: Serialize + DeserializeOwned + 'static {
    /// The event's name in the log, conventionally versioned: `v1.TodoCreated`. It is the
    /// event's identity across clients and versions: renaming it makes a new event.
    const NAME: &'static str;
    /// True for an event synced between the sessions of one client and never to the backend
    /// (UI state, for example). Default: synced.
    const CLIENT_ONLY: bool = false;
    /// True for an event that should no longer be committed: a commit logs a warning (once
    /// per name). Default: false.
    const DEPRECATED: bool = false;
    /// The materializer revision: bump it when the materializer changes what it writes, so
    /// stores rebuild their tables from the eventlog (the schema hash sees the args' field
    /// names, not the materializer's code). Default 0.
    const REVISION: u32 = 0;
}

/// An event as a client node holds it (LiveStore's `Client.EncodedWithMeta`).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent {
    /// This event's number.
    pub seq: EventSeq,
    /// Its parent's number (see [`EventSeq::next_pair`]).
    pub parent: EventSeq,
    /// The event definition's name, e.g. `v1.TodoCreated`.
    pub name: String,
    /// The encoded arguments (JSON).
    pub args: Value,
    /// The client that committed it.
    pub client_id: String,
    /// The session of that client that committed it.
    pub session_id: String,
    /// What this node recorded about the event; not part of its identity.
    pub meta: EventMeta,
}

/// Per-node metadata of an event: not sent anywhere, not compared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventMeta {
    /// The SQLite session changeset this node recorded when it materialized the event.
    pub changeset: Changeset,
    /// Backend-specific metadata (opaque), from the pull that delivered the event.
    pub sync_metadata: Option<Value>,
}

/// The changeset of one materialized event, used to roll it back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Changeset {
    /// Not materialized on this node (yet), or materialized without recording.
    #[default]
    Unset,
    /// Materialized, and it changed nothing.
    NoOp,
    /// Materialized; the bytes are an SQLite session changeset.
    Data(Vec<u8>),
}

impl EncodedEvent {
    /// True for an event that is synced between the sessions of one client but never to the
    /// backend. Derived from the number: client-only events always have `client > 0`.
    pub fn is_client_only(&self) -> bool {
        self.seq.is_client_only()
    }

    /// True when `other` is the same event at the same position: the test that confirms a
    /// pending event (LiveStore's `isEqualEncoded`). Ignores parents, generations and
    /// metadata; compares args canonically (see [`canonical_args`]).
    pub fn is_same_as(&self, other: &EncodedEvent) -> bool {
        self.seq.same_position(&other.seq)
            && self.name == other.name
            && self.client_id == other.client_id
            && self.session_id == other.session_id
            && args_equal(&self.args, &other.args)
    }

    /// A copy renumbered onto `parent` (LiveStore's `rebase`), keeping client-only-ness,
    /// with the given generation. Metadata is reset: the copy has not been materialized.
    pub fn rebased(&self, parent: EventSeq, generation: u32) -> EncodedEvent {
        let pair = parent.next_pair(self.is_client_only(), generation);
        EncodedEvent {
            seq: pair.seq,
            parent: pair.parent,
            meta: EventMeta::default(),
            ..self.clone()
        }
    }

    /// The wire form. Only synced events (`client == 0`) go to the backend.
    pub fn to_global(&self) -> GlobalEvent {
        debug_assert!(
            !self.is_client_only(),
            "client-only event {} sent to the backend",
            self.seq
        );
        GlobalEvent {
            seq_num: self.seq.global,
            parent_seq_num: self.parent.global,
            name: self.name.clone(),
            args: self.args.clone(),
            client_id: self.client_id.clone(),
            session_id: self.session_id.clone(),
        }
    }

    /// From the wire form: generation 0, client 0, nothing recorded yet.
    pub fn from_global(event: GlobalEvent) -> EncodedEvent {
        EncodedEvent {
            seq: EventSeq::from(event.seq_num),
            parent: EventSeq::from(event.parent_seq_num),
            name: event.name,
            args: event.args,
            client_id: event.client_id,
            session_id: event.session_id,
            meta: EventMeta::default(),
        }
    }
}

/// `value` as compact JSON text, the same text as its `Display` (`to_string`), written
/// straight into a string rather than through a formatter, which costs several times more.
/// The one way args and metadata become text (the eventlog's rows, pending events' bodies).
pub(crate) fn json_text(value: &Value) -> String {
    // Serializing a `Value` cannot fail; the fallback only keeps this free of a panic.
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// Args in canonical form for comparison: object keys whose value is `null` are dropped, at
/// every depth. A serializer that skips `None` fields and one that writes `null` produce the
/// same canonical args, so a JSON round trip never turns a pending event into a "different"
/// one. (Key order never matters: `serde_json` maps compare as maps.)
pub fn canonical_args(args: &Value) -> Value {
    match args {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key.clone(), canonical_args(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(canonical_args).collect()),
        other => other.clone(),
    }
}

/// `canonical_args(a) == canonical_args(b)`, without building either: objects are equal when
/// their non-null entries are.
pub(crate) fn args_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let present = |map: &serde_json::Map<String, Value>| {
                map.values().filter(|v| !v.is_null()).count()
            };
            present(a) == present(b)
                && a.iter()
                    .filter(|(_, value)| !value.is_null())
                    .all(|(key, value)| b.get(key).is_some_and(|other| args_equal(value, other)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| args_equal(a, b))
        }
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(seq: EventSeq, args: Value) -> EncodedEvent {
        EncodedEvent {
            seq,
            parent: EventSeq::ROOT,
            name: "v1.TodoCreated".into(),
            args,
            client_id: "c1".into(),
            session_id: "s1".into(),
            meta: EventMeta::default(),
        }
    }

    #[test]
    fn test_same_ignores_generation_parent_meta_and_null_keys() {
        let mut a = event(
            EventSeq::new(3, 0, 1),
            json!({"id": "a", "note": null, "x": {"y": null}}),
        );
        a.meta.changeset = Changeset::Data(vec![1, 2, 3]);
        let mut b = event(EventSeq::new(3, 0, 0), json!({"x": {}, "id": "a"}));
        b.parent = EventSeq::global(2);
        assert!(a.is_same_as(&b));
    }

    #[test]
    fn test_same_detects_differences() {
        let base = event(EventSeq::global(3), json!({"id": "a"}));
        let mut other = base.clone();
        other.seq = EventSeq::global(4);
        assert!(!base.is_same_as(&other));
        let mut other = base.clone();
        other.session_id = "s2".into();
        assert!(!base.is_same_as(&other));
        let mut other = base.clone();
        other.args = json!({"id": "b"});
        assert!(!base.is_same_as(&other));
        let mut other = base.clone();
        other.name = "v1.TodoDeleted".into();
        assert!(!base.is_same_as(&other));
    }

    #[test]
    fn test_args_equal_matches_canonical_comparison() {
        let samples = [
            json!({"a": 1, "b": null}),
            json!({"a": 1}),
            json!({"a": 1, "c": {"d": null}}),
            json!({"a": 1, "c": {}}),
            json!({"a": [1, {"x": null}]}),
            json!({"a": [1, {}]}),
            json!({"a": 2}),
            json!({"b": 1}),
            json!([null, 1]),
            json!(null),
            json!("text"),
        ];
        for a in &samples {
            for b in &samples {
                assert_eq!(
                    args_equal(a, b),
                    canonical_args(a) == canonical_args(b),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn test_rebased_renumbers_and_resets_meta() {
        let mut pending = event(EventSeq::new(3, 0, 0), json!({}));
        pending.meta.changeset = Changeset::NoOp;
        let rebased = pending.rebased(EventSeq::global(5), 1);
        assert_eq!(rebased.seq, EventSeq::new(6, 0, 1));
        assert_eq!(rebased.parent, EventSeq::new(5, 0, 0));
        assert_eq!(rebased.meta, EventMeta::default());
    }

    #[test]
    fn test_global_round_trip() {
        let mut e = event(EventSeq::global(7), json!({"id": "z"}));
        e.parent = EventSeq::global(6);
        let back = EncodedEvent::from_global(e.to_global());
        assert_eq!(back, e);
    }
}
