//! Client sessions: an in-memory SQLite read model per session, updated at once on commit.
//! STUB: signatures fixed, bodies being implemented.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::seq::EventSeq;

/// A value bound to an SQL parameter.
pub type SqlValue = rusqlite::types::Value;

/// One client session (a window, a thread, a request handler).
pub struct ClientSession {
    _private: (),
}

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// The session's last event.
    pub local_head: EventSeq,
    /// The leader's head as this session last heard it.
    pub leader_head: EventSeq,
    /// The leader's backend-confirmed head as this session last heard it.
    pub backend_confirmed_head: EventSeq,
    /// Events of this session the leader has not confirmed.
    pub pending: usize,
    /// Events of the leader the backend has not confirmed.
    pub leader_pending: usize,
}

impl ClientSession {
    /// Commits an event: numbers it, materializes it (reads see it at once), records its
    /// changeset, and queues it to the leader. Returns its sequence number.
    pub fn commit(&self, name: &str, args: &impl Serialize) -> Result<EventSeq> {
        let _ = (name, serde_json::to_value(args));
        unimplemented!()
    }
    /// Runs a read query; each row becomes a `T` through serde (columns by name).
    pub fn query<T: DeserializeOwned>(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<T>> {
        let _ = (sql, params);
        unimplemented!()
    }
    /// This session's sync position.
    pub fn sync_status(&self) -> SyncStatus {
        unimplemented!()
    }
    /// This session's id.
    pub fn session_id(&self) -> &str {
        unimplemented!()
    }
}
