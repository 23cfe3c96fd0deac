//! [`Limits`]: how much one server takes on, so that bad or greedy clients cannot exhaust it.

/// The bounds of one server. Every one is configurable; the defaults suit one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest WebSocket message or HTTP body accepted, in bytes (default 2 MiB; LiveStore
    /// keeps its pushes under ~900 KB). A larger frame closes the socket (1009), a larger
    /// body gets 413.
    pub max_message_bytes: usize,
    /// Most open WebSocket connections (default 10,000); one more gets 503.
    pub max_connections: usize,
    /// Most live pulls open on one connection (default 16); one more fails with an
    /// `UnknownError`.
    pub max_live_pulls_per_connection: usize,
    /// Messages queued for one WebSocket reader (default 1,024). A reader that lets its
    /// queue fill is closed (1008, "reader too slow") instead of holding up anyone else;
    /// its client reconnects and pulls from its cursor.
    pub connection_queue: usize,
    /// Batches of landed events buffered per store for its live pulls (default 1,024); a
    /// pull that falls further behind catches up from the backend.
    pub live_buffer: usize,
    /// Most stores one server opens (default 100,000); requests for another get an error.
    pub max_stores: usize,
    /// About how many bytes of events one HTTP pull answers (default 4 MiB): it stops after
    /// the chunk that reaches this, marked `MoreKnown`, and LiveStore's client pulls the
    /// rest from there at its next poll. A WebSocket pull streams, so it has no such bound.
    pub max_http_pull_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 2 * 1024 * 1024,
            max_connections: 10_000,
            max_live_pulls_per_connection: 16,
            connection_queue: 1024,
            live_buffer: 1024,
            max_stores: 100_000,
            max_http_pull_bytes: 4 * 1024 * 1024,
        }
    }
}
