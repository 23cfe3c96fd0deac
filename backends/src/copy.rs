//! [`copy_store`]: copies a store from one object store to another with its history, keeping
//! its backend id, resumably, and verifies the copy.
//!
//! **The backend id is kept.** Every segment names its store's backend id in its header and
//! the digest of the segment before it, so segments copied byte for byte are valid only under
//! the same id; and clients that are pointed at the copy keep their local data and sync on
//! without a reset, which is what moving a store should mean. The other side of that choice:
//! the copy *is* the store. Once clients use it, retire the source; a client that kept
//! writing to the source would write into a second store under the same id, and the two logs
//! would differ after the copied head without any client being told.
//!
//! **Resumable.** Every object is written with `PutMode::Create`; an object already at the
//! target is read and compared, and skipped when it is the same bytes. So a copy killed half
//! way is finished by running it again, and a copy never overwrites anything. `store.json`
//! is copied first: a target that already names another backend id is another store, and is
//! refused before anything is written.
//!
//! **Verified.** At the end both logs are pulled through [`SegmentLog`] (every checksum, the
//! numbering and the hash chain) and compared event by event, streaming.
//!
//! **What is copied** is listed in [`FAMILIES`]: the segments, the packs and the snapshots,
//! all immutable, created-once objects: each family is an entry there (the folder to list,
//! and which keys belong to it) and is copied, resumed and skipped the same way.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutPayload};
use serde::Serialize;

use crate::paths::LogPaths;
use crate::segment_log::{SegmentLog, SegmentLogConfig, get_if_present};
use crate::{BackendError, GlobalSeq, SyncBackend};

/// How many objects are copied at once (GETs and PUTs in flight).
const PARALLEL: usize = 8;

/// Where a store lives: an object store, a key prefix and the store id.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// The key prefix (the path of `s3://bucket/prefix`; empty for a folder).
    pub prefix: Path,
    /// The store id.
    pub store_id: String,
}

impl StoreLocation {
    fn log(&self) -> Result<SegmentLog, BackendError> {
        SegmentLog::new(
            self.store.clone(),
            self.prefix.clone(),
            &self.store_id,
            SegmentLogConfig::default(),
        )
    }
}

/// A kind of object a store holds in its backend id's folder, copied as a unit.
#[derive(Debug)]
pub struct Family {
    /// Its name, for reports: `segments`.
    pub name: &'static str,
    /// The folder to list.
    pub dir: fn(&LogPaths) -> Path,
    /// Whether a listed key is one of its objects (strays are not copied).
    pub is_member: fn(&LogPaths, &Path) -> bool,
    /// Whether its objects may be deleted at the source while the copy runs (snapshots,
    /// which a prune deletes: derived data, see `docs/FORMAT.md`, *Retention*): one listed
    /// and then gone is skipped and counted in [`CopyReport::vanished`], not an error. A
    /// segment or a pack is never deleted, so one gone is an error.
    pub may_vanish: bool,
}

/// Everything [`copy_store`] copies besides `store.json`, in this order.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "segments",
        dir: |log| log.segments_dir().clone(),
        is_member: |log, key| log.parse_segment(key).is_some(),
        may_vanish: false,
    },
    Family {
        name: "packs",
        dir: |log| log.packs_dir().clone(),
        is_member: |log, key| log.parse_pack(key).is_some(),
        may_vanish: false,
    },
    Family {
        name: "snapshots",
        dir: |log| log.snapshots_dir().clone(),
        is_member: |log, key| log.parse_snapshot(key).is_some(),
        may_vanish: true,
    },
];

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// The store's backend id, the same on both sides.
    pub backend_id: String,
    /// Objects written now.
    pub copied: u64,
    /// Objects already at the target with the same bytes (a resumed copy).
    pub already_there: u64,
    /// Bytes written now.
    pub bytes: u64,
    /// Source objects listed and then gone before they were read: snapshots pruned at the
    /// source during the copy (derived data: the log loses nothing, and newer snapshots
    /// are copied).
    pub vanished: u64,
    /// The events both logs hold, compared one by one.
    pub verified_events: u64,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the source failed.
    #[error("source: {0}")]
    Source(BackendError),
    /// Writing or reading the target failed.
    #[error("target: {0}")]
    Target(BackendError),
    /// The source has no `store.json`: there is no store to copy.
    #[error("source: there is no store {store_id:?} ({key} is missing)")]
    NoSource {
        /// The store id.
        store_id: String,
        /// The missing key.
        key: String,
    },
    /// The target holds another store: `store.json` names another backend id.
    #[error(
        "target: it already holds another store {store_id:?} (backend id {found}, the source's is {expected}); copy only fills an empty target or finishes a copy of the same store"
    )]
    OtherStore {
        /// The store id.
        store_id: String,
        /// The source's backend id.
        expected: String,
        /// The target's.
        found: String,
    },
    /// An object at the target differs from the source's: nothing is overwritten.
    #[error("target: {key} exists with other bytes than the source's; nothing was overwritten")]
    Differs {
        /// Its key at the target.
        key: String,
    },
    /// After the copy, the two logs differ.
    #[error("verify: {message}")]
    Verify {
        /// Where they differ.
        message: String,
    },
}

/// Copies store `from` to `to` (see the module doc): `store.json`, then every object of
/// each [`FAMILIES`] entry, in key order; then verifies the copy. `progress` is called with
/// the objects done so far and the total.
pub async fn copy_store(
    from: &StoreLocation,
    to: &StoreLocation,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<CopyReport, CopyError> {
    let source = from.log().map_err(CopyError::Source)?;
    let target = to.log().map_err(CopyError::Target)?;
    let json_key = source.paths().store_json();
    let json = get_if_present(from.store.as_ref(), &json_key)
        .await
        .map_err(CopyError::Source)?
        .ok_or_else(|| CopyError::NoSource {
            store_id: from.store_id.clone(),
            key: json_key.to_string(),
        })?;
    let backend_id = source.backend_id().await.map_err(CopyError::Source)?;
    let mut report = CopyReport {
        backend_id: backend_id.clone(),
        copied: 0,
        already_there: 0,
        bytes: 0,
        vanished: 0,
        verified_events: 0,
    };
    let target_json = target.paths().store_json();
    match put_once(&to.store, &target_json, json).await? {
        Written::Now(_) => report.copied += 1,
        Written::Before | Written::Other => {
            // Another store.json is fine if it names the same store; what it says is read
            // through the segment log, which checks it.
            let found = target.backend_id().await.map_err(CopyError::Target)?;
            if found != backend_id {
                return Err(CopyError::OtherStore {
                    store_id: to.store_id.clone(),
                    expected: backend_id,
                    found,
                });
            }
            report.already_there += 1;
        }
    }
    let from_log = source.log_paths().await.map_err(CopyError::Source)?;
    let to_log = target.log_paths().await.map_err(CopyError::Target)?;
    for family in FAMILIES {
        copy_family(family, from, &from_log, to, &to_log, &mut report, progress).await?;
    }
    report.verified_events = verify(&source, &target).await?;
    Ok(report)
}

/// Copies every object of one family, [`PARALLEL`] at a time, in key order.
async fn copy_family(
    family: &Family,
    from: &StoreLocation,
    from_log: &LogPaths,
    to: &StoreLocation,
    to_log: &LogPaths,
    report: &mut CopyReport,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<(), CopyError> {
    let dir = (family.dir)(from_log);
    let mut keys: Vec<Path> = from
        .store
        .list(Some(&dir))
        .map_ok(|meta| meta.location)
        .try_filter(|key| futures::future::ready((family.is_member)(from_log, key)))
        .try_collect()
        .await
        .map_err(|e| CopyError::Source(listing_error(&dir, e)))?;
    keys.sort();
    let total = keys.len() as u64;
    let mut done = 0u64;
    let mut copies = futures::stream::iter(keys)
        .map(|key| async move {
            // The same place under the target's folder of the same backend id.
            let relative: Vec<_> = key
                .prefix_match(from_log.root())
                .map(|parts| parts.collect())
                .unwrap_or_default();
            let target_key = relative
                .into_iter()
                .fold(to_log.root().clone(), |path, part| path.join(part));
            let Some(bytes) = get_if_present(from.store.as_ref(), &key)
                .await
                .map_err(CopyError::Source)?
            else {
                if family.may_vanish {
                    tracing::info!(%key, "a listed object is gone at the source (pruned); skipped");
                    return Ok(Copied::Vanished);
                }
                return Err(CopyError::Source(BackendError::Unavailable {
                    message: format!("{key} was listed but is gone"),
                }));
            };
            match put_once(&to.store, &target_key, bytes).await? {
                Written::Now(len) => Ok(Copied::Now(len)),
                Written::Before => Ok(Copied::Before),
                Written::Other => Err(CopyError::Differs {
                    key: target_key.to_string(),
                }),
            }
        })
        .buffered(PARALLEL);
    while let Some(copied) = copies.next().await {
        match copied? {
            Copied::Now(len) => {
                report.copied += 1;
                report.bytes += len;
            }
            Copied::Before => report.already_there += 1,
            Copied::Vanished => report.vanished += 1,
        }
        done += 1;
        progress(done, total);
    }
    tracing::debug!(family = family.name, total, "copied");
    Ok(())
}

/// What became of one listed object.
enum Copied {
    /// Written now, with this many bytes.
    Now(u64),
    /// Already at the target with the same bytes.
    Before,
    /// Gone at the source before it was read (a pruned snapshot).
    Vanished,
}

/// What [`put_once`] found.
enum Written {
    /// Created now, with this many bytes.
    Now(u64),
    /// Already there with the same bytes.
    Before,
    /// Already there with other bytes.
    Other,
}

/// Creates `key` with `bytes`; when it exists, compares.
async fn put_once(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
    bytes: Bytes,
) -> Result<Written, CopyError> {
    let len = bytes.len() as u64;
    match store
        .put_opts(key, PutPayload::from(bytes.clone()), PutMode::Create.into())
        .await
    {
        Ok(_) => Ok(Written::Now(len)),
        // An ambiguous create (a lost reply) lands here too, or in the error below: either
        // way the object is read back and compared.
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => compare(store, key, &bytes).await,
        Err(e) => match compare(store, key, &bytes).await {
            Ok(Written::Before) => Ok(Written::Now(len)),
            _ => Err(CopyError::Target(crate::segment_log::store_error(
                "creating", key, e,
            ))),
        },
    }
}

async fn compare(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
    bytes: &Bytes,
) -> Result<Written, CopyError> {
    match get_if_present(store.as_ref(), key)
        .await
        .map_err(CopyError::Target)?
    {
        Some(there) if there == *bytes => Ok(Written::Before),
        Some(_) => Ok(Written::Other),
        None => Err(CopyError::Target(BackendError::Unavailable {
            message: format!("creating {key} failed, and it is not there"),
        })),
    }
}

fn listing_error(dir: &Path, error: object_store::Error) -> BackendError {
    crate::segment_log::store_error("listing", dir, error)
}

/// Pulls both logs and compares them event by event; returns how many there are.
async fn verify(source: &SegmentLog, target: &SegmentLog) -> Result<u64, CopyError> {
    let events = |log: &SegmentLog, side: fn(BackendError) -> CopyError| {
        let log = log.clone();
        async move {
            let pages = log.pull(GlobalSeq::ZERO, false).await.map_err(side)?;
            Ok::<_, CopyError>(
                pages
                    .map_err(side)
                    .map_ok(|page| futures::stream::iter(page.events.into_iter().map(Ok)))
                    .try_flatten(),
            )
        }
    };
    let mut from = Box::pin(events(source, CopyError::Source).await?);
    let mut to = Box::pin(events(target, CopyError::Target).await?);
    let mut count = 0u64;
    loop {
        match (from.next().await.transpose()?, to.next().await.transpose()?) {
            (None, None) => return Ok(count),
            (Some(a), Some(b)) if a == b => count += 1,
            (Some(a), Some(_)) => {
                return Err(CopyError::Verify {
                    message: format!("{} differs between the source and the target", a.seq_num),
                });
            }
            (Some(a), None) => {
                return Err(CopyError::Verify {
                    message: format!(
                        "the target ends at e{count}, the source goes on with {} (it was written to during the copy: run the copy again)",
                        a.seq_num
                    ),
                });
            }
            (None, Some(b)) => {
                return Err(CopyError::Verify {
                    message: format!(
                        "the source ends at e{count}, the target goes on with {}",
                        b.seq_num
                    ),
                });
            }
        }
    }
}
