//! eventsync's sync backends: the [`SyncBackend`] trait and one implementation of it, an
//! append-only log of checksummed, hash-chained segments in an object store.
//!
//! # Layout
//!
//! - [`SyncBackend`] (`backend.rs`): the contract every backend keeps.
//! - [`SyncBackendExt`] (`ext.rs`): what callers build on the trait, written once: read the
//!   whole log and check it is gapless.
//! - [`event`]: [`GlobalEvent`], the wire event, with LiveStore's JSON field names.
//! - [`error`]: [`BackendError`], typed so callers can tell "retry" from "fix the input".
//! - [`segment`]: the segment byte format (documented byte by byte in `docs/FORMAT.md`).
//! - [`snapshot`](mod@snapshot): the snapshot byte format (the state at an event `S`, tied to
//!   the log by the hash-chain link at `S`).
//! - [`paths`]: the object keys of a store, written down in one place.
//! - [`segment_log`]: [`SegmentLog`], the backend over `Arc<dyn ObjectStore>`.
//! - [`requests`]: [`RequestCounts`], the requests a backend made by kind, counted by the
//!   [`CountingStore`] wrapper every segment log puts around its object store.
//! - [`export`](mod@export): LiveStore's export format (version 1) of a log, written and
//!   read as streams, and the import of a file into a backend.
//! - [`duration`]: the one parser of durations in settings (`"500us"`, `"2s"`).
//! - [`entropy`]: [`Entropy`], where nonces, ids and jitter come from (the OS, or a seed in
//!   a replayable simulation).
//! - [`store_id`]: the rules of a store id, a safe key segment and folder name.
//! - [`open`]: a backend from a URL (`memory://`, `file://`, `s3://`) and options; [`s3`]:
//!   the S3 settings and client; [`redact`]: keeping credentials out of output.
//! - [`remote`]: [`RemoteBackend`], a backend behind `eventsync serve`
//!   (`eventsync+ws://`), spoken to with LiveStore's WebSocket protocol.
//! - [`probe`](mod@probe): the capability probe that refuses stores that ignore preconditions.
//! - [`copy`](mod@copy): a store copied to another object store with its history and backend
//!   id, resumable, verified at the end.
//! - [`verify`](mod@verify): `eventsync verify`'s audit of a store's whole log in the bucket.
//! - `fault` and `conformance`: test support, built only for this crate's tests and under
//!   the `testing` feature (not a stable API; the root crate and the CLI enable it in their
//!   dev-dependencies only, as object_store gates its `integration` suite). `fault` holds
//!   `FaultStore`, an object store wrapper that injects seeded faults (latency, 503s,
//!   ambiguous writes, lost replies), and `CheckThenWriteStore`, whose creates are a check
//!   then a write (right one at a time, wrong under a race); `conformance` the checks every
//!   backend must pass, run by each backend's tests, the root crate's and any out-of-tree
//!   backend's.
//!
//! This crate knows nothing of SQLite, sessions or the leader: the root crate talks to it
//! only through [`SyncBackend`].

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod backend;
pub mod blocking;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod copy;
pub mod duration;
pub mod entropy;
pub mod error;
pub mod event;
mod event_json;
pub mod export;
mod ext;
#[cfg(any(test, feature = "testing"))]
pub mod fault;
pub mod open;
pub mod pack;
pub mod paths;
pub mod probe;
pub mod redact;
pub mod remote;
pub mod requests;
pub mod s3;
pub mod segment;
pub mod segment_log;
pub mod snapshot;
pub mod store_id;
pub mod verify;

/// The object store crate a [`SegmentLog`] runs over: use this one, so the versions match.
pub use object_store;

pub use backend::{
    BackendInfo, BulkLoad, Capabilities, FoundSnapshot, JsonLog, JsonSegments, PageInfo, PullPage,
    PullStream, RefusedSnapshot, SnapshotContent, SnapshotPrune, SnapshotPut, SnapshotSearch,
    SyncBackend,
};
pub use entropy::Entropy;
pub use error::BackendError;
pub use event::{GlobalEvent, GlobalSeq};
pub use ext::{GapError, ReadAllError, SyncBackendExt, check_gapless};
pub use open::{OpenOptions, open_backend, open_object_store};
pub use probe::{ProbeCheck, ProbeOptions, ProbeReport, probe, probe_url, probe_with};
pub use redact::redact_url;
pub use remote::{RemoteBackend, RemoteOptions};
pub use requests::{CountingStore, RequestCounts};
pub use s3::S3Options;
pub use segment_log::{SegmentLog, SegmentLogConfig};
pub use store_id::{StoreId, validate_store_id};
