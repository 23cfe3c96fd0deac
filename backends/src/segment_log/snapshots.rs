//! Snapshots in the bucket: writing one at a segment boundary (created once, the first writer
//! wins) and finding the newest one of a schema, checked against the segment it links to.

use object_store::path::Path;
use object_store::{PutMode, PutPayload};

use super::identity::Incarnation;
use super::{Inner, corrupt, get_if_present, store_error};
use crate::snapshot::{self, Snapshot, SnapshotLink};
use crate::{
    BackendError, FoundSnapshot, GlobalSeq, RefusedSnapshot, SnapshotContent, SnapshotPrune,
    SnapshotPut, SnapshotSearch, segment,
};

/// How many times [`Inner::latest_snapshot`] lists the folder again when the snapshots it
/// listed were pruned before it could read them.
const RELISTS: usize = 2;

/// How many DELETEs a prune has in flight at once.
const PRUNE_PARALLEL: usize = 8;

impl Inner {
    /// See [`SyncBackend::put_snapshot`](crate::SyncBackend::put_snapshot).
    pub(super) async fn put_snapshot(
        &self,
        schema_hash: &str,
        at: GlobalSeq,
        content: SnapshotContent,
    ) -> Result<SnapshotPut, BackendError> {
        if !snapshot::valid_schema_hash(schema_hash) {
            return Err(BackendError::Invalid {
                message: format!(
                    "schema hash {:?} cannot name a snapshot folder",
                    schema_hash.escape_default().to_string()
                ),
            });
        }
        if at == GlobalSeq::ZERO {
            return Err(BackendError::Invalid {
                message: "nothing to snapshot: the backend confirmed no event yet".into(),
            });
        }
        let (log, _) = self.incarnation().await?;
        let link = self.link_at(&log, at).await?;
        let snapshot = Snapshot {
            version: content.version,
            at,
            schema_hash: schema_hash.to_owned(),
            link,
            content_hash: content.content_hash,
            content_len: content.content_len,
            writer: content.writer,
            body: content.body,
        };
        let bytes = snapshot::encode(&snapshot).map_err(|error| BackendError::Invalid {
            message: format!("snapshot at {at}: {error}"),
        })?;
        let key = log.paths.snapshot(schema_hash, at);
        let bytes = bytes::Bytes::from(bytes);
        let bytes_again = bytes.clone();
        let created = match self
            .store
            .put_opts(&key, PutPayload::from(bytes), PutMode::Create.into())
            .await
        {
            Ok(_) => true,
            // Taken, or an ambiguous outcome (a retried create that met its own first try):
            // read what is there. A valid snapshot at this key is a state of this log at
            // this event under this schema: ours or another client's, the first one stays.
            Err(object_store::Error::AlreadyExists { .. }) => {
                let there = match self.read_snapshot(&key).await {
                    // A damaged object (torn by a killed writer, or altered) holds no state:
                    // replace it. Deleting a snapshot key is safe (unlike a segment's): a
                    // writer that recreates it writes a state of the same log at the same
                    // event, and a reader that misses it falls back to an older snapshot.
                    Err(BackendError::Corrupt { message, .. }) => {
                        tracing::warn!(%key, %message, "replacing a damaged snapshot");
                        return self.replace_snapshot(&key, bytes_again, at).await;
                    }
                    there => there?.ok_or_else(|| BackendError::Unavailable {
                        message: format!("creating {key}: it exists, then it was gone"),
                    })?,
                };
                if there.content_hash != snapshot.content_hash {
                    tracing::warn!(
                        %key,
                        writer = %there.writer,
                        "another client's snapshot at this event holds a different state \
                         (a materializer that is not deterministic?); keeping the first one"
                    );
                }
                false
            }
            Err(error) => return Err(store_error("creating", &key, error)),
        };
        Ok(SnapshotPut {
            key: key.to_string(),
            at,
            created,
        })
    }

    /// Deletes the damaged snapshot at `key` and creates it again with `bytes`; a racing
    /// writer that recreated it first wins (its snapshot is as good as this one).
    async fn replace_snapshot(
        &self,
        key: &Path,
        bytes: bytes::Bytes,
        at: GlobalSeq,
    ) -> Result<SnapshotPut, BackendError> {
        use object_store::ObjectStoreExt as _;
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(store_error("deleting", key, error)),
        }
        let created = match self
            .store
            .put_opts(key, PutPayload::from(bytes), PutMode::Create.into())
            .await
        {
            Ok(_) => true,
            Err(object_store::Error::AlreadyExists { .. }) => {
                self.read_snapshot(key).await?;
                false
            }
            Err(error) => return Err(store_error("creating", key, error)),
        };
        Ok(SnapshotPut {
            key: key.to_string(),
            at,
            created,
        })
    }

    /// See [`SyncBackend::latest_snapshot`](crate::SyncBackend::latest_snapshot).
    ///
    /// A listed snapshot that is gone when read was pruned meanwhile (or replaced): it is
    /// skipped, not refused. When every candidate of a listing is gone or refused and at
    /// least one was gone, the folder is listed again (up to [`RELISTS`] times), so that a
    /// reader that listed just before a prune finds the newer snapshots that replaced the
    /// ones it listed instead of replaying the whole log.
    pub(super) async fn latest_snapshot(
        &self,
        schema_hash: &str,
        before: Option<GlobalSeq>,
    ) -> Result<SnapshotSearch, BackendError> {
        let mut search = SnapshotSearch::default();
        if !snapshot::valid_schema_hash(schema_hash) {
            return Ok(search);
        }
        let (log, _) = self.incarnation().await?;
        let dir = log.paths.schema_snapshots_dir(schema_hash);
        let mut tried = std::collections::HashSet::new();
        for _ in 0..=RELISTS {
            let mut candidates: Vec<(GlobalSeq, Path)> = self
                .list_keys(&dir)
                .await?
                .into_iter()
                .filter_map(|key| {
                    log.paths
                        .parse_snapshot(&key)
                        .filter(|(schema, at)| {
                            schema == schema_hash && before.is_none_or(|before| *at < before)
                        })
                        .map(|(_, at)| (at, key))
                })
                .filter(|(_, key)| !tried.contains(key))
                .collect();
            candidates.sort();
            let mut vanished = false;
            // Newest first; a refused one is named, and the next older one is tried.
            for (at, key) in candidates.into_iter().rev() {
                tried.insert(key.clone());
                match self.checked_snapshot(&log, &key, schema_hash, at).await {
                    Ok(Some(snapshot)) => {
                        // The link is now a fact about the log: a pull from `S` checks its
                        // first segment against it, as it checks every later one against
                        // the one before. Only the link: the client still knows nothing of
                        // the tail, so it pulls it cold (one LIST from `S`, reads ahead,
                        // packs), not one GET a segment.
                        log.known().insert_link(snapshot.at, snapshot.link.digest);
                        search.found = Some(FoundSnapshot {
                            key: key.to_string(),
                            snapshot,
                        });
                        return Ok(search);
                    }
                    // Gone since the listing (pruned): not a fault of the snapshot.
                    Ok(None) => {
                        tracing::debug!(%key, "a listed snapshot is gone; trying an older one");
                        vanished = true;
                    }
                    Err(BackendError::Corrupt { key, message }) => {
                        tracing::warn!(%key, %message, "refused a snapshot; trying an older one");
                        search.refused.push(RefusedSnapshot { key, message });
                    }
                    Err(error) => return Err(error),
                }
            }
            if !vanished {
                break;
            }
        }
        Ok(search)
    }

    /// See [`SyncBackend::prune_snapshots`](crate::SyncBackend::prune_snapshots): one LIST
    /// of the snapshots folder, then a DELETE of each snapshot older than the newest `keep`
    /// of its schema hash (a key already gone counts as deleted: another prune came first).
    pub(super) async fn prune_snapshots(&self, keep: u64) -> Result<SnapshotPrune, BackendError> {
        if keep == 0 {
            return Err(BackendError::Invalid {
                message: "keeping 0 snapshots would delete every one: keep at least 1".into(),
            });
        }
        use futures::StreamExt as _;
        use object_store::ObjectStoreExt as _;
        let (log, _) = self.incarnation().await?;
        let mut by_schema: std::collections::BTreeMap<String, Vec<(GlobalSeq, Path)>> =
            std::collections::BTreeMap::new();
        for key in self.list_keys(log.paths.snapshots_dir()).await? {
            if let Some((schema, at)) = log.paths.parse_snapshot(&key) {
                by_schema.entry(schema).or_default().push((at, key));
            }
        }
        let mut prune = SnapshotPrune::default();
        let mut doomed = Vec::new();
        for (_, mut snapshots) in by_schema {
            snapshots.sort();
            let cut = snapshots.len().saturating_sub(keep as usize);
            for (index, (_, key)) in snapshots.into_iter().enumerate() {
                if index < cut {
                    doomed.push(key);
                } else {
                    prune.kept.push(key.to_string());
                }
            }
        }
        let mut deletes = futures::stream::iter(doomed)
            .map(|key| async move {
                match self.store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(key.to_string()),
                    Err(error) => Err(store_error("deleting", &key, error)),
                }
            })
            .buffered(PRUNE_PARALLEL);
        while let Some(deleted) = deletes.next().await {
            prune.deleted.push(deleted?);
        }
        Ok(prune)
    }

    /// The snapshot at `key` (`None` when missing), checked: it decodes, it is the state at
    /// `at` under `schema_hash` as its key says, and its link is a segment of the log. A
    /// failed check is [`BackendError::Corrupt`] naming `key`.
    async fn checked_snapshot(
        &self,
        log: &Incarnation,
        key: &Path,
        schema_hash: &str,
        at: GlobalSeq,
    ) -> Result<Option<Snapshot>, BackendError> {
        let Some(snapshot) = self.read_snapshot(key).await? else {
            return Ok(None);
        };
        if snapshot.at != at || snapshot.schema_hash != schema_hash {
            return Err(corrupt(
                key,
                format!(
                    "it holds the state at {} under schema {}, its key says {at} under {schema_hash}",
                    snapshot.at, snapshot.schema_hash
                ),
            ));
        }
        self.check_link(log, key, &snapshot).await?;
        Ok(Some(snapshot))
    }

    /// Reads and decodes the snapshot at `key` (`None` when it is missing).
    async fn read_snapshot(&self, key: &Path) -> Result<Option<Snapshot>, BackendError> {
        let Some(bytes) = get_if_present(self.store.as_ref(), key).await? else {
            return Ok(None);
        };
        snapshot::decode(&bytes)
            .map(Some)
            .map_err(|error| corrupt(key, error))
    }

    /// Checks that the segment `snapshot` links to exists, ends at its `S`, belongs to this
    /// backend id and has its digest; a failure is [`BackendError::Corrupt`] naming `key`.
    async fn check_link(
        &self,
        log: &Incarnation,
        key: &Path,
        snapshot: &Snapshot,
    ) -> Result<(), BackendError> {
        let first = snapshot.link.segment_first;
        let segment_key = log.paths.segment(first);
        let Some(bytes) = get_if_present(self.store.as_ref(), &segment_key).await? else {
            return Err(corrupt(
                key,
                format!("it links to {segment_key}, which does not exist"),
            ));
        };
        let segment = segment::decode(&bytes).map_err(|error| {
            corrupt(
                key,
                format!("it links to {segment_key}, which is damaged: {error}"),
            )
        })?;
        if segment.header.first != first
            || segment.header.last() != snapshot.at
            || segment.header.backend_id != log.id.as_str()
            || segment.digest != snapshot.link.digest
        {
            return Err(corrupt(
                key,
                format!(
                    "its chain link at {} does not match {segment_key} (events {} to {}, digest {})",
                    snapshot.at,
                    segment.header.first,
                    segment.header.last(),
                    segment.digest
                ),
            ));
        }
        Ok(())
    }

    /// The link at `at`: the segment that ends there, from what this client knows or else
    /// from a listing and one GET. Fails with [`BackendError::Invalid`] when no segment ends
    /// at `at` (a snapshot is taken at a confirmed head, which always ends a segment).
    async fn link_at(
        &self,
        log: &Incarnation,
        at: GlobalSeq,
    ) -> Result<SnapshotLink, BackendError> {
        if let Some(meta) = log.known().containing(at).filter(|meta| meta.last == at) {
            return Ok(SnapshotLink {
                segment_first: meta.first,
                digest: meta.digest,
            });
        }
        let firsts = self.list_segments(log, None).await?;
        let Some(first) = firsts.into_iter().filter(|first| *first <= at).max() else {
            return Err(BackendError::Invalid {
                message: format!("no segment of the log holds {at}"),
            });
        };
        let key = log.paths.segment(first);
        let bytes = get_if_present(self.store.as_ref(), &key)
            .await?
            .ok_or_else(|| BackendError::Unavailable {
                message: format!("reading {key}: it was listed but is gone"),
            })?;
        let segment = segment::decode(&bytes).map_err(|error| corrupt(&key, error))?;
        if segment.header.last() != at {
            return Err(BackendError::Invalid {
                message: format!(
                    "{at} does not end a segment ({key} holds {} to {}): a snapshot is taken at a confirmed head",
                    segment.header.first,
                    segment.header.last()
                ),
            });
        }
        Ok(SnapshotLink {
            segment_first: first,
            digest: segment.digest,
        })
    }

    /// Every key under `dir`.
    async fn list_keys(&self, dir: &Path) -> Result<Vec<Path>, BackendError> {
        use futures::TryStreamExt;
        self.store
            .list(Some(dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| store_error("listing", dir, e))
    }
}
