//! The public error of the library: a coarse [`ErrorKind`] that tells the caller what to do,
//! a message that gives the context (what was being done, on what), and the cause as
//! [`source`](std::error::Error::source). The message never repeats its cause: `{}` prints
//! the context alone, `{:#}` the whole chain on one line (`context: cause: cause`).

use std::fmt;
use std::sync::Arc;

use eventsync_backends::BackendError;

/// What the caller should do about an [`Error`]. New kinds may be added: match with a
/// wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An error of the eventsync library. Cheap to clone: the cause is shared, so an error can
/// be handed to every caller waiting on one operation with its cause intact.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    /// The context; `None` when the error is its cause, unchanged (see [`Error::wrap`]).
    message: Option<String>,
    source: Option<Source>,
}

impl Error {
    /// An error of `kind` with a message that names what and where.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: Some(message.into()),
            source: None,
        }
    }

    /// An error of `kind` that is `cause`, unchanged: it displays as `cause` and its
    /// [`source`](std::error::Error::source) is `cause`'s (like thiserror's `transparent`).
    pub fn wrap(kind: ErrorKind, cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error {
            kind,
            message: None,
            source: Some(Arc::new(cause)),
        }
    }

    /// The same error with its underlying cause attached: keep the message to the context,
    /// the cause is printed after it.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same kind, with `context` in front: `context` becomes the message and this error
    /// its cause.
    pub fn context(self, context: impl Into<String>) -> Error {
        Error {
            kind: self.kind,
            message: Some(context.into()),
            source: Some(Arc::new(self)),
        }
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

impl fmt::Display for Error {
    /// `{}`: the message (the context). `{:#}`: the message and every cause after it,
    /// joined by `": "` on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut next: Option<&(dyn std::error::Error + 'static)> = match &self.message {
            Some(message) => {
                f.write_str(message)?;
                std::error::Error::source(self)
            }
            None => match &self.source {
                Some(source) => {
                    write!(f, "{source}")?;
                    source.source()
                }
                None => None,
            },
        };
        if f.alternate() {
            while let Some(cause) = next {
                write!(f, ": {cause}")?;
                next = cause.source();
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let source = self.source.as_deref()?;
        match self.message {
            Some(_) => Some(source as &(dyn std::error::Error + 'static)),
            None => source.source(),
        }
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
        Error::new(kind, "backend").with_source(error)
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk full")]
    struct Disk;

    #[derive(Debug, thiserror::Error)]
    #[error("state.db")]
    struct File(#[source] Disk);

    #[test]
    fn test_message_is_the_context_and_the_chain_prints_each_cause_once() {
        let error = Error::wrap(ErrorKind::Data, File(Disk)).context("opening store a");
        assert_eq!(error.to_string(), "opening store a");
        assert_eq!(format!("{error:#}"), "opening store a: state.db: disk full");
        let cause = error.source().expect("the wrapped error");
        assert_eq!(format!("{cause:#}"), "state.db: disk full");
        assert_eq!(
            cause.source().map(|c| c.to_string()).as_deref(),
            Some("disk full")
        );
    }

    #[test]
    fn test_backend_errors_keep_their_cause_and_a_clone_does_too() {
        let error = Error::from(BackendError::Unavailable {
            message: "timeout".into(),
        });
        let copy = error.clone();
        assert_eq!(copy.kind(), ErrorKind::Unavailable);
        assert_eq!(copy.to_string(), "backend");
        assert_eq!(format!("{copy:#}"), "backend: backend unavailable: timeout");
        assert!(
            copy.source()
                .and_then(|s| s.downcast_ref::<BackendError>())
                .is_some_and(BackendError::is_retryable)
        );
    }
}
