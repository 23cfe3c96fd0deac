//! Errors of the sync backends, typed so a caller can tell what to do.

use crate::GlobalSeq;

/// What went wrong talking to a backend. Each variant's doc says what the caller should do.
///
/// Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The batch does not extend the backend's head: another client got there first.
    /// Pull the events after your head, rebase, and push again.
    #[error("backend is ahead: its head is {head}")]
    ServerAhead {
        /// The backend's head when the push was refused.
        head: GlobalSeq,
    },
    /// The backend could not be reached or answered with a transient failure. Retry later.
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What failed, without credentials.
        message: String,
    },
    /// The request itself was wrong (bad store id, malformed or oversize batch, bad URL or
    /// option). Fix the input; retrying will not help.
    #[error("invalid input: {message}")]
    Invalid {
        /// What was wrong and where.
        message: String,
    },
    /// An object in the store is damaged, truncated, or belongs to another store. The events
    /// before it are fine; nothing from it was returned.
    #[error("corrupt data at {key}: {message}")]
    Corrupt {
        /// The object key of the damaged object.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The store is not the one this client worked in: it was wiped (`store.json` is gone)
    /// or wiped and recreated (another backend id). A push that returns this wrote nothing
    /// any reader of the current store will see. Re-read the identity
    /// ([`SyncBackend::backend_id`](crate::SyncBackend::backend_id), which recreates a
    /// missing store) and reconcile local data with the new store before syncing again.
    #[error(
        "backend id mismatch: expected {expected}, found {}",
        found.as_deref().unwrap_or("none (store.json is missing: the store was wiped)")
    )]
    BackendIdMismatch {
        /// The id this client worked with.
        expected: String,
        /// The id `store.json` holds now; `None` when there is no `store.json`.
        found: Option<String>,
    },
    /// The store refused our credentials or permissions. Fix the configuration.
    #[error("access denied: {message}")]
    AccessDenied {
        /// What was refused, without credentials.
        message: String,
    },
}

impl BackendError {
    /// True when retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BackendError::Unavailable { .. })
    }
}
