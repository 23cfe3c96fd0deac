//! [`verify_store`]: audits a store's whole log in the bucket, object by object, and names
//! every bad key instead of stopping at the first.
//!
//! What it checks: `store.json` (read through [`SegmentLog`], which refuses a damaged one);
//! then every segment of the backend id's folder, [`PARALLEL`] GETs at a time, each checked
//! as soon as it arrives (on the task that read it, which a worker thread runs), and judged
//! in key order:
//! its checksum, framing and every event (`segment::check`: what `segment::decode` checks,
//! each event's JSON read in place rather than built), that it starts where its key says,
//! that it belongs to this backend id, the numbering and parents of its events, that it
//! starts right after the segment before it (no gap, no overlap, the first one at 1), and
//! that it chains onto that segment's digest. Only one digest per segment is kept, never the
//! events, so a log of any length is audited in flat memory.
//!
//! Packs and snapshots are objects *about* the segments; they are audited by hooks that get
//! the segment chain ([`Chain`]) once the segments are done: each [`ObjectAudit`] adds its
//! faults. A fault in a pack or a snapshot never hides one in the segments, and the other way
//! round.
//!
//! A pack holds the exact bytes of the segments it covers, so its events are parsed once,
//! in the segments: [`PackAudit`] checks a pack's checksum, framing and each inner segment's
//! header and checksum (what [`pack::decode_digests`] checks), then that every inner
//! segment's digest is the digest of the sound segment at its key. Equal SHA-256 digests
//! mean equal bytes, so a pack whose events differ from the segments' is still caught, by
//! the segment it differs in. The packs are read in the same pass as the segments, each
//! right after the segment that ends where it ends: its checksum is checked on the task that
//! read it, and its segments once the segments before it are judged, each one compared byte
//! for byte with the segment just read at its place (whose checksum held) rather than hashed
//! a second time; a segment that differs, or that is not at hand, is hashed.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use serde::Serialize;

use crate::copy::StoreLocation;
use crate::pack::{self, PackDigests};
use crate::paths::LogPaths;
use crate::segment::SegmentDigest;
use crate::segment_log::{SegmentLog, SegmentLogConfig, get_if_present, store_error};
use crate::snapshot::Snapshot;
use crate::{BackendError, GlobalSeq, SyncBackend};

mod pass;

/// How many objects are read (and decoded) at once.
const PARALLEL: usize = 16;

/// One bad object: its key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// The object's key (or, for a missing object, the key it should have).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// What one family of objects beside the segments (packs, snapshots) held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyReport {
    /// Its name: `packs`, `snapshots`.
    pub name: String,
    /// Objects checked.
    pub checked: u64,
}

/// What an audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The store's backend id.
    pub backend_id: String,
    /// Segments read.
    pub segments: u64,
    /// Events in the segments that decoded.
    pub events: u64,
    /// The last event of the unbroken chain from 1 (0 for an empty log).
    pub head: u64,
    /// The families audited by hooks, in order.
    pub families: Vec<FamilyReport>,
    /// Every fault, in the order found; empty when the log is sound.
    pub faults: Vec<Fault>,
}

impl VerifyReport {
    /// True when no fault was found.
    pub fn is_sound(&self) -> bool {
        self.faults.is_empty()
    }
}

/// Why an audit could not be made (a fault in the log is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// There is no store here.
    #[error("there is no store {store_id:?} ({key} is missing)")]
    NoStore {
        /// The store id.
        store_id: String,
        /// The missing key.
        key: String,
    },
    /// Reading the store failed (unreachable, access denied, a damaged `store.json`).
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// One good segment of the chain: where it is and the digest the next one chains to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    /// Its first event.
    pub first: GlobalSeq,
    /// Its last event.
    pub last: GlobalSeq,
    /// Its digest (trailer).
    pub digest: SegmentDigest,
}

/// The segments that decoded, by first event, as the hooks see them.
#[derive(Debug, Default)]
pub struct Chain {
    /// Every segment that decoded and sits where its key says, by first event.
    pub links: BTreeMap<GlobalSeq, ChainLink>,
    /// The last event of the unbroken, sound chain from 1.
    pub head: GlobalSeq,
    /// The packs, read in the segments' pass when a hook [audits
    /// them](ObjectAudit::audits_packs), in key order.
    pub(crate) packs: Vec<PackRead>,
}

/// A pack as the segments' pass read it, for [`PackAudit`] to judge against the chain.
#[derive(Debug)]
pub(crate) struct PackRead {
    /// Its key.
    key: Path,
    /// The events its key names.
    range: (GlobalSeq, GlobalSeq),
    /// What it holds (`None`: listed but gone when read), or why it is not a pack.
    read: Option<Result<PackSummary, pack::PackError>>,
}

/// What [`PackAudit`] needs of a pack that decoded ([`pack::Checksummed::digests`]).
#[derive(Debug)]
struct PackSummary {
    /// The events it holds.
    first: GlobalSeq,
    last: GlobalSeq,
    /// Each segment's first event and digest, up to the first one of another store.
    segments: Vec<(GlobalSeq, SegmentDigest)>,
    /// That segment: its first event and backend id.
    foreign: Option<(GlobalSeq, String)>,
}

impl PackSummary {
    fn of(pack: PackDigests, backend_id: &str) -> PackSummary {
        let mut segments = Vec::with_capacity(pack.segments.len());
        let mut foreign = None;
        for (header, digest) in pack.segments {
            if header.backend_id != backend_id {
                foreign = Some((header.first, header.backend_id));
                break;
            }
            segments.push((header.first, digest));
        }
        PackSummary {
            first: pack.first,
            last: pack.last,
            segments,
            foreign,
        }
    }
}

impl Chain {
    /// The digest of the segment that ends at `seq` (`ROOT` for 0), when it is known good.
    pub fn digest_ending_at(&self, seq: GlobalSeq) -> Option<SegmentDigest> {
        if seq == GlobalSeq::ZERO {
            return Some(SegmentDigest::ROOT);
        }
        self.links
            .range(..=seq)
            .next_back()
            .filter(|(_, link)| link.last == seq)
            .map(|(_, link)| link.digest)
    }
}

/// A hook that audits one family of objects against the segment chain: packs, snapshots.
#[async_trait::async_trait]
pub trait ObjectAudit: Send + Sync {
    /// Its name in the report: `packs`, `snapshots`.
    fn name(&self) -> &'static str;

    /// Whether it audits the packs: [`verify_store`] then reads them in the segments' pass
    /// (into the [`Chain`] it hands the hooks) instead of after it.
    fn audits_packs(&self) -> bool {
        false
    }

    /// Checks every object of the family in `log`'s folder, adding a [`Fault`] per bad one;
    /// returns how many it checked. Fails only when the objects cannot be read at all.
    async fn audit(
        &self,
        store: &Arc<dyn ObjectStore>,
        log: &LogPaths,
        backend_id: &str,
        chain: &Chain,
        faults: &mut Vec<Fault>,
    ) -> Result<u64, BackendError>;
}

/// Audits the store at `place` (see the module doc), then runs each of `hooks`. `progress`
/// is called with the segments done so far and the total.
pub async fn verify_store(
    place: &StoreLocation,
    hooks: &[&dyn ObjectAudit],
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<VerifyReport, VerifyError> {
    let log = SegmentLog::new(
        place.store.clone(),
        place.prefix.clone(),
        &place.store_id,
        SegmentLogConfig::default(),
    )?;
    if !log.exists().await? {
        return Err(VerifyError::NoStore {
            store_id: place.store_id.clone(),
            key: log.paths().store_json().to_string(),
        });
    }
    let backend_id = log.backend_id().await?;
    let paths = log.log_paths().await?;
    let mut report = VerifyReport {
        backend_id: backend_id.clone(),
        segments: 0,
        events: 0,
        head: 0,
        families: Vec::new(),
        faults: Vec::new(),
    };
    let with_packs = hooks.iter().any(|hook| hook.audits_packs());
    let chain = pass::audit_log(
        place,
        &paths,
        &backend_id,
        with_packs,
        &mut report,
        progress,
    )
    .await?;
    report.head = chain.head.0;
    for hook in hooks {
        let checked = hook
            .audit(
                &place.store,
                &paths,
                &backend_id,
                &chain,
                &mut report.faults,
            )
            .await?;
        report.families.push(FamilyReport {
            name: hook.name().to_owned(),
            checked,
        });
    }
    Ok(report)
}

/// The packs hook: every pack's checksum and framing, and each inner segment's header and
/// checksum (what [`pack::decode_digests`] checks), that its key names the events it holds,
/// and that each segment it holds is, byte for byte (by digest), the sound segment at that
/// key. The inner segments' events are not parsed again: equal digests mean the bytes the
/// segment audit parsed. The packs are read in the segments' pass ([`Self::audits_packs`]),
/// each checksum on the task that read it; an inner segment whose bytes equal those of the
/// segment just read (and checked) there is not hashed again, any other is.
#[derive(Debug, Clone, Copy, Default)]
pub struct PackAudit;

#[async_trait::async_trait]
impl ObjectAudit for PackAudit {
    fn name(&self) -> &'static str {
        "packs"
    }

    fn audits_packs(&self) -> bool {
        true
    }

    async fn audit(
        &self,
        _store: &Arc<dyn ObjectStore>,
        log: &LogPaths,
        _backend_id: &str,
        chain: &Chain,
        faults: &mut Vec<Fault>,
    ) -> Result<u64, BackendError> {
        for PackRead { key, range, read } in &chain.packs {
            let (first, last) = *range;
            let mut fault = |message: String| {
                faults.push(Fault {
                    key: key.to_string(),
                    message,
                })
            };
            let pack = match read {
                None => {
                    fault("it was listed but is gone".to_owned());
                    continue;
                }
                Some(Err(error)) => {
                    fault(error.to_string());
                    continue;
                }
                Some(Ok(pack)) => pack,
            };
            if (pack.first, pack.last) != (first, last) {
                fault(format!(
                    "its key says events {first} to {last}, it holds {} to {}",
                    pack.first, pack.last
                ));
                continue;
            }
            let disagreement = pack.segments.iter().find_map(|&(at, digest)| {
                match chain.links.get(&at) {
                    Some(link) if link.digest == digest => None,
                    Some(_) => Some(format!(
                        "its segment at {at} disagrees with the segment {}",
                        log.segment(at)
                    )),
                    None => Some(format!(
                        "its segment at {at} is not a sound segment of the log ({} is missing or bad)",
                        log.segment(at)
                    )),
                }
            });
            if let Some(message) = disagreement {
                fault(message);
            } else if let Some((at, other)) = &pack.foreign {
                fault(format!(
                    "its segment at {at} belongs to another store (backend id {other})"
                ));
            }
        }
        Ok(chain.packs.len() as u64)
    }
}

/// A check of a snapshot's state against the log, beyond what this crate can see (the
/// root crate replays the log into a fresh database and compares the dump's hash). Called
/// in ascending order of `S`, so an implementation may replay once, incrementally.
#[async_trait::async_trait]
pub trait SnapshotContentCheck: Send + Sync {
    /// Checks `snapshot`: `Ok(None)` when its state is right or cannot be judged here (a
    /// schema this check does not know), `Ok(Some(message))` for a wrong state, `Err` when
    /// the log could not be read.
    async fn check(&self, snapshot: &Snapshot) -> Result<Option<String>, BackendError>;
}

/// The snapshots hook: every snapshot's checksum and header (`snapshot::decode`), that its
/// key names its schema hash and `S`, that `S` is on the sound chain, and that its link is
/// the digest of the segment of the chain that ends at `S`. With a [`SnapshotContentCheck`]
/// (`verify --snapshots`), also its state against a replay of the log.
#[derive(Default)]
pub struct SnapshotAudit<'a> {
    /// The replay check, when asked for.
    pub content: Option<&'a dyn SnapshotContentCheck>,
}

impl std::fmt::Debug for SnapshotAudit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotAudit")
            .field("content", &self.content.is_some())
            .finish()
    }
}

#[async_trait::async_trait]
impl ObjectAudit for SnapshotAudit<'_> {
    fn name(&self) -> &'static str {
        "snapshots"
    }

    async fn audit(
        &self,
        store: &Arc<dyn ObjectStore>,
        log: &LogPaths,
        _backend_id: &str,
        chain: &Chain,
        faults: &mut Vec<Fault>,
    ) -> Result<u64, BackendError> {
        // In ascending order of `S` (what a [`SnapshotContentCheck`] needs), then of schema.
        let keys = list_parsed(store, log.snapshots_dir(), |key| {
            log.parse_snapshot(key).map(|(schema, at)| (at, schema))
        })
        .await?;
        let mut checked = 0;
        for ((at, schema), key) in keys {
            // A snapshot listed and then gone was pruned (or replaced) during the audit:
            // snapshots are derived data that may be deleted (`docs/FORMAT.md`, *Retention*),
            // so that is not a fault, and it is not counted as checked.
            let Some(bytes) = get_if_present(store.as_ref(), &key).await? else {
                tracing::info!(%key, "a listed snapshot is gone (pruned meanwhile); not checked");
                continue;
            };
            checked += 1;
            let snapshot = match crate::snapshot::decode(&bytes) {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    faults.push(Fault {
                        key: key.to_string(),
                        message: error.to_string(),
                    });
                    continue;
                }
            };
            let mut fault = |message: String| {
                faults.push(Fault {
                    key: key.to_string(),
                    message,
                })
            };
            if snapshot.at != at || snapshot.schema_hash != schema {
                fault(format!(
                    "its key says the state at {at} under schema {schema}, it holds {} under {}",
                    snapshot.at, snapshot.schema_hash
                ));
                continue;
            }
            if at > chain.head {
                fault(format!(
                    "it is at {at}, past the end of the sound log ({})",
                    chain.head
                ));
                continue;
            }
            match chain.links.get(&snapshot.link.segment_first) {
                Some(link) if link.last == at && link.digest == snapshot.link.digest => {}
                _ => {
                    fault(format!(
                        "its chain link at {at} is not the segment {} of the log",
                        log.segment(snapshot.link.segment_first)
                    ));
                    continue;
                }
            }
            if let Some(content) = self.content
                && let Some(message) = content.check(&snapshot).await?
            {
                fault(message);
            }
        }
        Ok(checked)
    }
}

/// The keys under `dir` that `parse` understands, sorted by what it makes of them.
async fn list_parsed<K: Ord>(
    store: &Arc<dyn ObjectStore>,
    dir: &Path,
    parse: impl Fn(&Path) -> Option<K>,
) -> Result<Vec<(K, Path)>, BackendError> {
    let mut keys: Vec<(K, Path)> = store
        .list(Some(dir))
        .map_ok(|meta| meta.location)
        .try_collect::<Vec<Path>>()
        .await
        .map_err(|e| store_error("listing", dir, e))?
        .into_iter()
        .filter_map(|key| parse(&key).map(|parsed| (parsed, key)))
        .collect();
    keys.sort();
    Ok(keys)
}
