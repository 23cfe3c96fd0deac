//! [`SyncBackend`]: the contract every backend keeps, and what it pushes and pulls in.

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::segment::{FramedEvents, SegmentJson};
use crate::snapshot::Snapshot;
use crate::{BackendError, GlobalEvent, GlobalSeq, RequestCounts};

/// What [`SyncBackend::put_snapshot`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotPut {
    /// The snapshot's key.
    pub key: String,
    /// The event whose state it holds (`S`).
    pub at: GlobalSeq,
    /// `true` when this call created it; `false` when a snapshot of the same schema at the
    /// same event was already there (another client came first: both hold a state of the
    /// same log at the same event, so the first one stays and this one moves on).
    pub created: bool,
}

/// The state a caller hands to [`SyncBackend::put_snapshot`]: opaque to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotContent {
    /// The snapshot format version to write (what the body is, see
    /// [`crate::snapshot::FORMAT_VERSION`]).
    pub version: u16,
    /// The hash of the state, as the caller defines it.
    pub content_hash: [u8; 32],
    /// How many bytes the body decodes to (a bound the reader checks).
    pub content_len: u64,
    /// The encoded state.
    pub body: Vec<u8>,
    /// The writing client's id (informational).
    pub writer: String,
}

/// A snapshot read from the backend and checked against the log (see
/// [`SyncBackend::latest_snapshot`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FoundSnapshot {
    /// Its key, for messages.
    pub key: String,
    /// The decoded snapshot.
    pub snapshot: Snapshot,
}

/// A snapshot a reader refused (damaged, not matching the log, or not loadable): its key and
/// why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedSnapshot {
    /// The snapshot's key.
    pub key: String,
    /// Why it was refused.
    pub message: String,
}

/// What [`SyncBackend::latest_snapshot`] found: the newest good snapshot, if any, and the
/// newer ones it refused on the way, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnapshotSearch {
    /// The newest snapshot that passed the checks.
    pub found: Option<FoundSnapshot>,
    /// The newer snapshots refused, newest first (each also logged, naming its key).
    pub refused: Vec<RefusedSnapshot>,
}

/// What [`SyncBackend::prune_snapshots`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotPrune {
    /// The snapshots kept, by key: the newest `keep` of each schema hash (by schema hash,
    /// then oldest first).
    pub kept: Vec<String>,
    /// The snapshots deleted (or found already gone), by key, in the same order.
    pub deleted: Vec<String>,
}

/// Whether more events are known to follow a pulled page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageInfo {
    /// More events follow.
    More {
        /// How many, when the backend knows.
        remaining: Option<u64>,
    },
    /// The page reached the backend's head as it was when the page was read.
    NoMore,
}

/// One page of a pull: events in ascending order, directly after the previous page.
#[derive(Debug, Clone, PartialEq)]
pub struct PullPage {
    /// Events in ascending `seq_num` order, each the parent of the next.
    pub events: Vec<GlobalEvent>,
    /// Whether more events are known to follow this page.
    pub page_info: PageInfo,
}

/// What a backend can do, for callers that must adapt (and for `doctor`'s report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// A pull can stay open and deliver new events as they land.
    pub live_pull: bool,
    /// Pages report how many events remain.
    pub page_info_known: bool,
    /// Largest number of events one push may carry.
    pub max_events_per_push: usize,
    /// Largest encoded size, in bytes, of one push.
    pub max_bytes_per_push: usize,
}

/// A description of a backend that is safe to print: it never holds credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// Short kind name: `memory`, `file` or `s3`.
    pub name: String,
    /// The backend's URL with any credentials removed.
    pub url: String,
    /// The store id this backend serves.
    pub store_id: String,
    /// What this backend supports.
    pub capabilities: Capabilities,
}

/// A stream of pull pages. Ends after a `NoMore` page for a non-live pull; a live pull
/// never ends on its own (drop it to stop).
pub type PullStream = BoxStream<'static, Result<PullPage, BackendError>>;

/// A stream of checked segments whose events are kept as JSON ([`SyncBackend::pull_json`]).
pub type JsonSegments = BoxStream<'static, Result<SegmentJson, BackendError>>;

/// The log as [`SyncBackend::pull_json`] reads it: its head when the read started, and its
/// segments from `e1`.
pub struct JsonLog {
    /// The last event of the log when it was listed: the stream goes at least this far
    /// unless it fails.
    pub head: GlobalSeq,
    /// The log's segments from `e1`, checked, in order.
    pub segments: JsonSegments,
}

impl std::fmt::Debug for JsonLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLog")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// The sync backend of one store: the total-order arbiter that every client of the store
/// pushes to and pulls from.
///
/// # Contract
///
/// - **Append-only.** Events are never deleted or renumbered once accepted.
/// - **Numbering.** The first event is `e1` with parent `e0`; every accepted event's
///   `parent_seq_num` is the `seq_num` of the event before it, and `seq_num = parent + 1`.
/// - **Atomic, serialized admission.** [`push`](Self::push) accepts a batch only if its
///   first event's parent is the backend's head at the moment of admission, and then
///   appends the whole batch or nothing. Otherwise it fails with
///   [`BackendError::ServerAhead`] carrying the head, and the caller pulls, rebases and
///   pushes again. Of several concurrent pushes on the same head exactly one wins.
/// - **Exactly once.** A push that returned `Ok` is in the log exactly once, even when the
///   underlying store gave an ambiguous answer (a timeout, a retried conditional write).
/// - **Pull.** [`pull`](Self::pull) yields the events after the exclusive `cursor` in
///   pages; a non-live pull always yields at least one page (an empty `NoMore` page when
///   there is nothing), and ends after a `NoMore` page. A live pull yields the backlog,
///   then a `NoMore` page, then stays open and yields new events as they land, including
///   the caller's own pushes. A live pull rides out transient failures
///   ([`BackendError::is_retryable`]) by polling again; any other error ends the stream.
/// - **Identity.** A backend works in one incarnation of its store, named by its backend id.
///   When the store was wiped or replaced since, [`push`](Self::push), [`pull`](Self::pull)
///   (a live pull too, within a bounded delay) and [`head`](Self::head) fail with
///   [`BackendError::BackendIdMismatch`], and a push that fails so wrote nothing the current
///   store holds. Only [`backend_id`](Self::backend_id) moves the backend to the current
///   store; nothing else recreates a wiped one.
/// - **Corruption is an error, never data.** A backend that reads a damaged or foreign
///   object fails with [`BackendError::Corrupt`] naming it, and never returns its events;
///   a pull delivers every event before the damaged object first.
#[async_trait::async_trait]
pub trait SyncBackend: Send + Sync + std::fmt::Debug {
    /// Appends `batch` (non-empty, ascending, contiguous) on the backend's head.
    ///
    /// Fails with [`BackendError::ServerAhead`] when `batch[0].parent_seq_num` is behind the
    /// head, with [`BackendError::Invalid`] when the batch is malformed, over the limits
    /// ([`Capabilities`]), or starts after the head (events in between were never pushed).
    async fn push(&self, batch: Vec<GlobalEvent>) -> Result<(), BackendError>;

    /// Streams the events after `cursor` (exclusive; [`GlobalSeq::ZERO`] = from the start).
    async fn pull(&self, cursor: GlobalSeq, live: bool) -> Result<PullStream, BackendError>;

    /// The sequence number of the last accepted event ([`GlobalSeq::ZERO`] when empty).
    async fn head(&self) -> Result<GlobalSeq, BackendError>;

    /// Checks that the backend answers; fails with [`BackendError::Unavailable`] if not.
    async fn ping(&self) -> Result<(), BackendError>;

    /// The backend's identity: random, made when the store was created. A different id for
    /// the same URL and store means the store was wiped and recreated. Reads it afresh
    /// (creating the store when there is none), and works in that store from then on.
    async fn backend_id(&self) -> Result<String, BackendError>;

    /// What and where this backend is, safe to print.
    fn info(&self) -> BackendInfo;

    /// How many requests of each kind this backend made of its object store so far (shared
    /// by its clones), for tests and for `eventsync bench`'s requests per event and per
    /// poll. `None` (the default) for a backend that does not count them.
    fn requests(&self) -> Option<RequestCounts> {
        None
    }

    /// Whether the store exists (it has an identity: some client created it), without
    /// creating it; everything else may create a missing store on first contact. A dry run
    /// asks this so that it writes nothing. The default answers `true`.
    async fn exists(&self) -> Result<bool, BackendError> {
        Ok(true)
    }

    /// Packs what has gathered, so that cold readers fetch fewer objects: for the segment
    /// log, every complete window of segments after the last pack
    /// ([`SegmentLog::compact`](crate::SegmentLog::compact)). Returns how many packs it
    /// wrote. Safe to run from any number of clients at once; the log's events do not
    /// change. The default does nothing and answers 0: a backend without packs.
    async fn pack(&self) -> Result<u64, BackendError> {
        Ok(0)
    }

    /// Writes a snapshot of the state at event `at` under schema `schema_hash`, created once
    /// (the first writer of a key wins; a later one gets `created: false` and moves on). The
    /// backend fills in the hash-chain link at `at`, which must end a segment; `body` and
    /// `content_hash` are the caller's (the root crate's table dump). The default fails with
    /// [`BackendError::Invalid`]: a backend that cannot hold snapshots says so.
    async fn put_snapshot(
        &self,
        schema_hash: &str,
        at: GlobalSeq,
        content: SnapshotContent,
    ) -> Result<SnapshotPut, BackendError> {
        let _ = (schema_hash, at, content);
        Err(BackendError::Invalid {
            message: format!("backend {} cannot hold snapshots", self.info().name),
        })
    }

    /// The newest snapshot of schema `schema_hash` taken before event `before` (any, for
    /// `None`) that passes the checks: its checksum, that it sits where its key says, and
    /// that its link is the digest of the segment that ends at its `S` (read now). From then
    /// on, a pull from `S` checks that the tail chains onto it. A damaged or lying snapshot
    /// is refused, named in [`SnapshotSearch::refused`] (and a warning), and the next older
    /// one is tried: a reader falls back to the newest good snapshot, and replays the log
    /// only when there is none. Fails only when the backend cannot be read. The default has
    /// none.
    async fn latest_snapshot(
        &self,
        schema_hash: &str,
        before: Option<GlobalSeq>,
    ) -> Result<SnapshotSearch, BackendError> {
        let _ = (schema_hash, before);
        Ok(SnapshotSearch::default())
    }

    /// Deletes the snapshots of the store but the newest `keep` (by `S`) of each schema hash
    /// (`keep` at least 1). Snapshots are derived data: the log's segments are never deleted,
    /// a reader that finds a listed snapshot gone falls back to another one or to the log,
    /// and a writer that creates a deleted key again writes a state of the same log at the
    /// same event (`docs/FORMAT.md`, *Retention*). It goes by the keys alone (no snapshot is
    /// read); snapshots written meanwhile are left for the next prune. Safe to run from any
    /// number of clients at once. The default deletes nothing: a backend without snapshots.
    async fn prune_snapshots(&self, keep: u64) -> Result<SnapshotPrune, BackendError> {
        let _ = keep;
        Ok(SnapshotPrune::default())
    }

    /// The log from `e1` as checked segments whose events are kept as JSON, in order, with
    /// the head they reach (found on the way, which can be cheaper than [`head`](Self::head)):
    /// for an export, which writes each event's JSON as `serde_json` writes it without
    /// building the event. Every segment is checked as a pull checks it. The stream stops at
    /// the first object it cannot read or refuses (with that error) and does not fall back:
    /// the caller goes on with [`pull`](Self::pull) from the last event it took. `None` (the
    /// default): no such path, pull instead.
    async fn pull_json(&self) -> Result<Option<JsonLog>, BackendError> {
        Ok(None)
    }

    /// Replaces the store with a new, empty one under a new backend id, and works in that
    /// one from now on; returns the new id. For an import that starts a store over. Clients
    /// of the old store then get [`BackendError::BackendIdMismatch`] and follow their policy.
    /// The old log's objects are not deleted: a stale writer that still pushes to the old
    /// id writes where no reader of the new store looks (see *Identity* above). The default
    /// fails with [`BackendError::Invalid`]: a backend that cannot do this says so.
    async fn replace_store(&self) -> Result<String, BackendError> {
        Err(BackendError::Invalid {
            message: format!("backend {} cannot replace its store", self.info().name),
        })
    }

    /// Starts loading a whole log into a new incarnation of the store that no client can
    /// see, and so none can write into, until [`BulkLoad::publish`]: its writes can then be
    /// several in flight at once without any risk of a fork. For an import into a store
    /// that does not exist yet, or that it replaces. `None` (the default): the backend has
    /// no such path, and the caller pushes one batch after another.
    async fn bulk_load(&self) -> Result<Option<Box<dyn BulkLoad>>, BackendError> {
        Ok(None)
    }
}

/// A log being written into an unpublished incarnation of a store
/// ([`SyncBackend::bulk_load`]). Dropped without [`publish`](BulkLoad::publish), it leaves
/// the store as it was (its objects sit under an id nothing names).
#[async_trait::async_trait]
pub trait BulkLoad: Send {
    /// Appends `batch`, the events after the last batch (the first batch starts at `e1`),
    /// within the backend's [`Capabilities`]. Returns once the batch is encoded; its write
    /// may still be in flight, with a bounded number of others.
    async fn push(&mut self, batch: Vec<GlobalEvent>) -> Result<(), BackendError>;

    /// [`push`](Self::push) of events already written in a segment's framing: the same
    /// segment, from JSON written once (an import hands the file's JSON on this way). The
    /// default parses the events and pushes them.
    async fn push_framed(&mut self, batch: FramedEvents) -> Result<(), BackendError> {
        let events = batch.events().map_err(|e| BackendError::Invalid {
            message: e.to_string(),
        })?;
        self.push(events).await
    }

    /// Waits for every write, then makes this incarnation the store's: over the current
    /// one when `replace`, otherwise only if the store still does not exist (when another
    /// client created it meanwhile, fails with [`BackendError::BackendIdMismatch`] naming
    /// its id, and the store is left as that client made it). Returns the new backend id.
    async fn publish(self: Box<Self>, replace: bool) -> Result<String, BackendError>;
}
