//! eventsync: LiveStore's event system in Rust, synced through an append-only event log in
//! an object store instead of a sync server.
//!
//! # Layout
//!
//! Three tiers, each a node running the same [`sync_state::merge`]:
//!
//! - **Client session** ([`ClientSession`], `session/`): an in-memory SQLite read model,
//!   updated at once on commit; pending events go to the leader.
//! - **Leader** (`leader/`, crate-private): one per client and store; owns `eventlog.db` (the
//!   durable log) and `state.db` (the read model), pushes to and pulls from the backend,
//!   rebases.
//! - **Sync backend** ([`backends`], crate `eventsync_backends`): a segment log in an object
//!   store.
//!
//! What a user touches is re-exported here: [`Store`] and [`StoreBuilder`] (the facade),
//! [`ClientSession`], the [`Event`] trait, [`Schema`] and the rest of [`schema`] (tables,
//! event definitions, materializers), [`EventSeq`], [`Error`], [`Tuning`]. The modules behind
//! them (`seq`, `error`, `event`, `settings`, `data_dir`, `session`, `store`) are private;
//! `rows` is the one reader of SQL rows behind every read query. [`sync_state`] is public:
//! LiveStore's merge, pure and usable alone. `materialize` is public for the benches and
//! tests only (hidden from the docs, not a stable API). docs/ARCHITECTURE.md lists the layers.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod data_dir;
mod error;
mod event;
mod leader;
#[doc(hidden)]
pub mod materialize;
mod rows;
pub mod schema;
mod seq;
mod session;
mod settings;
#[doc(hidden)]
pub mod snapshot;
mod store;
pub mod sync_state;

pub use data_dir::kept_client_id;
pub use error::{Error, ErrorKind, Result};
pub use event::{Changeset, EncodedEvent, Event, EventMeta, canonical_args};
pub use eventsync_backends as backends;
pub use eventsync_backends::Entropy;
/// The object store crate whose stores a [`backends::SegmentLog`] runs over.
pub use eventsync_backends::object_store;
pub use leader::StoreStats;
/// The leader's rebase on its real path, timed: for `eventsync bench` only (not a stable API).
#[doc(hidden)]
pub use leader::db::bench::rebase_in_leader;
/// The SQLite binding whose types appear in the API (query parameters, a materializer's
/// [`Statement`] values): use this one, so the versions match.
pub use rusqlite;
pub use schema::{EventDef, MaterializeContext, MaterializerError, Schema, Statement};
pub use seq::{EventSeq, ParseSeqError, SeqPair};
pub use session::{ClientSession, Subscription, SyncStatus};
pub use settings::{OnBackendIdMismatch, Tuning};
pub use snapshot::SnapshotBoot;
pub use store::{Store, StoreBuilder, StoreStatus};
