//! The public error of the library: a coarse [`ErrorKind`] that tells the caller what to do,
//! and a message that names what was wrong and where.

use eventsync_backends::BackendError;

/// What the caller should do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Transient: the backend or a lock is unavailable. Retry later; nothing was lost.
    Unavailable,
    /// The input was wrong (a config value, an argument, an event's args). Fix it.
    Invalid,
    /// Stored data is damaged (a segment, a database file). The message names it.
    Data,
    /// The store was closed or shut down (for example after a backend id mismatch).
    Closed,
    /// A bug in eventsync: an invariant did not hold. Please report it.
    Internal,
}

/// An error of the eventsync library.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with a message that names what and where.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error with its underlying cause attached.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    /// What the caller should do.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Shorthand for an [`ErrorKind::Invalid`] error.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, message)
    }

    /// Shorthand for an [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }
}

impl From<BackendError> for Error {
    fn from(error: BackendError) -> Error {
        let kind = match &error {
            BackendError::Unavailable { .. } | BackendError::ServerAhead { .. } => {
                ErrorKind::Unavailable
            }
            BackendError::Invalid { .. } | BackendError::AccessDenied { .. } => ErrorKind::Invalid,
            BackendError::Corrupt { .. } => ErrorKind::Data,
            BackendError::BackendIdMismatch { .. } => ErrorKind::Closed,
        };
        Error::new(kind, format!("backend: {error}")).with_source(error)
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
