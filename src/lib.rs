//! eventsync: LiveStore's event system in Rust, synced through an append-only event log in
//! an object store instead of a sync server.
//!
//! # Layout
//!
//! Three tiers, each a node running the same [`sync_state::merge`]:
//!
//! - **Client session** ([`session`]): an in-memory SQLite read model, updated at once on
//!   commit; pending events go to the leader.
//! - **Leader** ([`leader`]): one per client and store; owns `eventlog.db` (the durable log)
//!   and `state.db` (the read model), pushes to and pulls from the backend, rebases.
//! - **Sync backend** (crate `eventsync_backends`): a segment log in an object store.
//!
//! The building blocks: [`seq`] (sequence numbers), [`event`] (events), [`sync_state`]
//! (merge), [`schema`] (tables, event definitions, materializers), [`materialize`] (apply
//! events with changesets and roll them back), [`store`] (the facade), [`error`],
//! and `rows` (crate-private: the one reader of SQL
//! rows behind every read query, which refuses anything that is not a read).

pub mod data_dir;
pub mod error;
pub mod event;
mod leader;
pub mod materialize;
mod rows;
pub mod schema;
pub mod seq;
pub mod session;
pub mod settings;
pub mod store;
pub mod sync_state;

pub use error::{Error, ErrorKind, Result};
pub use event::{Changeset, EncodedEvent, Event, EventMeta};
pub use eventsync_backends as backends;
pub use eventsync_backends::Entropy;
pub use leader::StoreStats;
pub use seq::EventSeq;
pub use session::{ClientSession, SyncStatus};
pub use settings::{OnBackendIdMismatch, Tuning};
pub use store::{Store, StoreBuilder, StoreStatus};
