//! The wire event: what the backend stores and returns, with LiveStore's JSON field names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A global sequence number: the position of an event in a store's backend log.
///
/// `ZERO` is the root (the parent of the first event); the first event is `FIRST`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GlobalSeq(pub u64);

impl GlobalSeq {
    /// The root: the parent of the first event, and the head of an empty log.
    pub const ZERO: GlobalSeq = GlobalSeq(0);
    /// The first event of every log.
    pub const FIRST: GlobalSeq = GlobalSeq(1);

    /// The number after this one.
    pub fn next(self) -> GlobalSeq {
        GlobalSeq(self.0 + 1)
    }
}

impl fmt::Display for GlobalSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

/// An event as the backend stores it (LiveStore's `Global.Encoded`).
///
/// Field names on the wire are LiveStore's, so logs move between the two systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalEvent {
    /// This event's position in the log.
    pub seq_num: GlobalSeq,
    /// The position of the event before it (`seq_num - 1`).
    pub parent_seq_num: GlobalSeq,
    /// The event definition's name, e.g. `v1.TodoCreated`.
    pub name: String,
    /// The event's arguments, as encoded by its definition.
    pub args: serde_json::Value,
    /// The client (device / process) that committed it.
    pub client_id: String,
    /// The session (window / thread) of that client that committed it.
    pub session_id: String,
}
