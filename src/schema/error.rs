//! The errors of a schema: [`SchemaError`] when it is built or its tables created, and
//! [`MaterializeError`] when one of its events is materialized or rolled back. They live
//! with the schema, below `materialize`, which applies events and returns the latter.

use crate::seq::EventSeq;

/// A schema that cannot be built, or whose tables cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Two tables share a name.
    #[error("table `{name}` is declared twice")]
    DuplicateTable {
        /// The name.
        name: String,
    },
    /// Two events share a name.
    #[error("event `{name}` is declared twice")]
    DuplicateEvent {
        /// The name.
        name: String,
    },
    /// A table name that is not a plain identifier, or is reserved.
    #[error("invalid table name `{name}`: {reason}")]
    InvalidTableName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An empty event name, or one with leading or trailing whitespace.
    #[error("invalid event name `{name}`")]
    InvalidEventName {
        /// The name.
        name: String,
    },
    /// The DDL of a table does not run.
    #[error("the DDL of table `{table}` fails")]
    InvalidDdl {
        /// The table.
        table: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The DDL of a table does not create a table of exactly that name (case included).
    #[error("the DDL of table `{table}` does not create a table of that exact name")]
    TableNotCreated {
        /// The table.
        table: String,
    },
    /// The DDL of a table creates another table too.
    #[error("the DDL of table `{table}` also creates table `{created}`, which is not declared")]
    UndeclaredTable {
        /// The table whose DDL it is.
        table: String,
        /// The extra table.
        created: String,
    },
    /// A table declared `AUTOINCREMENT`: its counter (`sqlite_sequence`) is not rolled back
    /// with the table, so replicas that rolled back events would assign other ids.
    #[error(
        "table `{table}` uses AUTOINCREMENT, whose counter is not rolled back with the table \
         (a plain INTEGER PRIMARY KEY reuses ids deterministically)"
    )]
    Autoincrement {
        /// The table.
        table: String,
    },
    /// A table without a primary key: SQLite sessions cannot record its changes.
    #[error("table `{table}` has no primary key (needed to record and roll back changes)")]
    NoPrimaryKey {
        /// The table.
        table: String,
    },
    /// SQLite failed while creating or inspecting a table.
    #[error("creating table `{table}`")]
    Sql {
        /// The table (empty when none was concerned).
        table: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

/// Why an event could not be materialized, or changesets not rolled back.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// The schema does not define the event (policy [`UnknownEventPolicy::Fail`](super::UnknownEventPolicy::Fail), or at
    /// commit).
    #[error("unknown event `{name}`")]
    UnknownEvent {
        /// The event's name.
        name: String,
    },
    /// The event's args do not decode into its args type.
    #[error("invalid args for event `{event}` at `{path}`: {message}")]
    InvalidArgs {
        /// The event's name.
        event: String,
        /// The path of the failing field (`.` for the args themselves).
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// The user's materializer returned an error.
    #[error("materializer of event `{event}` failed: {message}")]
    Materializer {
        /// The event's name.
        event: String,
        /// The materializer's message.
        message: String,
    },
    /// SQLite failed while running the event's statements or recording its changeset.
    #[error("materializing event `{event}` ({seq})")]
    Sql {
        /// The event's name.
        event: String,
        /// The event's number.
        seq: EventSeq,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A synced event's materializer writes a client-only table. Client-only tables are
    /// kept out of snapshots, so such a write would be missing on a client booted from one:
    /// only client-only events may write them (see `SchemaBuilder::client_only_table`).
    #[error(
        "event `{event}` ({seq}) is synced but its materializer writes the client-only table \
         `{table}`: only client-only events may write it"
    )]
    ClientOnlyTable {
        /// The event's name.
        event: String,
        /// The event's number.
        seq: EventSeq,
        /// The client-only table its statements write.
        table: String,
    },
    /// A changeset could not be rolled back (not recorded, conflicting, or SQLite failed).
    #[error("rolling back changeset {index} (in event order): {message}")]
    Rollback {
        /// The changeset's index in the slice given to [`rollback`](crate::materialize::rollback).
        index: usize,
        /// What went wrong.
        message: String,
    },
}
