//! How a client reads segments and finds the tail of the log (probe `head+1`; LIST only when
//! cold), recording what it verified in the incarnation's [`Known`](super::known::Known).

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;

use super::identity::Incarnation;
use super::known::{SegmentMeta, Tail};
use super::{Inner, corrupt, definitive, get_if_present, store_error};
use crate::segment::{self, Segment, SegmentDigest};
use crate::{BackendError, GlobalSeq};

/// Decodes the bytes read at key `first` of `log` and checks their place in the log: the
/// key, the store, and the chain to `prev_digest` (the digest of the segment before it, when
/// known). A verified segment is recorded in the log's [`Known`](super::known::Known).
pub(super) fn verify_segment(
    log: &Incarnation,
    first: GlobalSeq,
    prev_digest: Option<SegmentDigest>,
    bytes: &[u8],
) -> Result<Segment, BackendError> {
    let key = log.paths.segment(first);
    let segment = segment::decode(bytes).map_err(|e| corrupt(&key, e))?;
    segment
        .check_position(first, prev_digest, log.id.as_str())
        .map_err(|e| corrupt(&key, e))?;
    log.known().insert(SegmentMeta {
        first,
        last: segment.header.last(),
        digest: segment.digest,
    });
    Ok(segment)
}

impl Inner {
    /// Reads and verifies the segment at key `first` of `log`: `None` when there is no such
    /// object. `prev_digest` is the digest of the segment before it, when known; the chain
    /// is checked against it. A verified segment is recorded in the log's [`Known`](super::known::Known).
    pub(super) async fn fetch_segment(
        &self,
        log: &Incarnation,
        first: GlobalSeq,
        prev_digest: Option<SegmentDigest>,
    ) -> Result<Option<Segment>, BackendError> {
        match self.get_segment(log, first).await? {
            Some(bytes) => {
                let segment = verify_segment(log, first, prev_digest, &bytes)?;
                log.recent().insert(first, bytes);
                Ok(Some(segment))
            }
            None => Ok(None),
        }
    }

    /// The bytes of the segment at key `first` of `log`, unchecked: `None` when there is no
    /// such object. A cold pull runs several at once and checks them in order
    /// ([`verify_segment`]). A segment this client wrote, or read and checked, lately is
    /// not read again (see `recent.rs`).
    pub(super) async fn get_segment(
        &self,
        log: &Incarnation,
        first: GlobalSeq,
    ) -> Result<Option<Bytes>, BackendError> {
        if let Some(bytes) = log.recent().get(first) {
            return Ok(Some(bytes));
        }
        get_if_present(self.store.as_ref(), &log.paths.segment(first)).await
    }

    /// Finds the current tail of `log` and checks, concurrently (no added latency), that
    /// `store.json` still names it: a wiped store's old folder is empty or stale, so its tail
    /// alone would look like a valid, shorter log.
    pub(super) async fn refresh_tail(&self, log: &Incarnation) -> Result<Tail, BackendError> {
        let (tail, check) = futures::join!(self.probe_tail(log), self.check_identity(log));
        definitive(check)?;
        tail
    }

    /// Finds the current tail of `log`: LIST once when cold, then GET `head+1` until a 404.
    /// Does not look at `store.json` (see [`Inner::refresh_tail`]).
    pub(super) async fn probe_tail(&self, log: &Incarnation) -> Result<Tail, BackendError> {
        let cached = log.known().tail();
        let mut tail = match cached {
            Some(tail) => tail,
            None => self.list_tail(log).await?,
        };
        loop {
            let next = tail.head.next();
            match self.fetch_segment(log, next, Some(tail.digest)).await? {
                Some(segment) => {
                    tail = Tail {
                        head: segment.header.last(),
                        digest: segment.digest,
                    }
                }
                None => return Ok(tail),
            }
        }
    }

    /// After a read found no segment at `missing`: the first segment key after it, found by
    /// one LIST on this client's first such check (before any LIST ran). Segments are
    /// created in order and never deleted, so a key after a missing one means an object was
    /// deleted from the middle of the log. Later checks are free (`None`): only a LIST can
    /// see past a missing key, and one per client is the budget (polls stay GET-only).
    pub(super) async fn segment_after(
        &self,
        log: &Incarnation,
        missing: GlobalSeq,
    ) -> Result<Option<GlobalSeq>, BackendError> {
        if log.known().is_listed() {
            return Ok(None);
        }
        let after = self.list_segments(log, Some(missing)).await?;
        match after.into_iter().find(|first| *first > missing) {
            Some(first) => Ok(Some(first)),
            None => {
                log.known().mark_listed();
                Ok(None)
            }
        }
    }

    /// Cold start: LIST the segments, read the last one. Its chain to the one before is
    /// not checked here (a pull checks the whole chain).
    async fn list_tail(&self, log: &Incarnation) -> Result<Tail, BackendError> {
        let firsts = self.list_segments(log, None).await?;
        let tail = match firsts.last() {
            None => Tail {
                head: GlobalSeq::ZERO,
                digest: SegmentDigest::ROOT,
            },
            Some(&first) => {
                let prev = log.known().digest_ending_at(GlobalSeq(first.0 - 1));
                match self.fetch_segment(log, first, prev).await? {
                    Some(segment) => Tail {
                        head: segment.header.last(),
                        digest: segment.digest,
                    },
                    None => {
                        return Err(BackendError::Unavailable {
                            message: format!(
                                "{} was listed but could not be read",
                                log.paths.segment(first)
                            ),
                        });
                    }
                }
            }
        };
        log.known().mark_listed();
        Ok(tail)
    }

    /// The first numbers of the segments of `log` (after `after`, when given), sorted: LIST
    /// order is not guaranteed by every store.
    pub(super) async fn list_segments(
        &self,
        log: &Incarnation,
        after: Option<GlobalSeq>,
    ) -> Result<Vec<GlobalSeq>, BackendError> {
        let dir = log.paths.segments_dir();
        let after = after.map(|after| log.paths.segment(after));
        let keys = self.list_folder(dir, after.as_ref()).await?;
        let mut firsts: Vec<GlobalSeq> = keys
            .iter()
            .filter_map(|key| log.paths.parse_segment(key))
            .collect();
        firsts.sort_unstable();
        Ok(firsts)
    }

    /// The keys of the objects in the folder `dir` (those after `after`, when given), in no
    /// particular order. Of a local folder ([`SegmentLog::with_folder`]) its directory's file
    /// names, read at once; of any other store, a LIST. Counted as one LIST either way.
    pub(super) async fn list_folder(
        &self,
        dir: &Path,
        after: Option<&Path>,
    ) -> Result<Vec<Path>, BackendError> {
        // A key with a `%` is not the file's name as is; such a folder is listed by the store.
        if let Some(folder) = &self.folder
            && !dir.as_ref().contains('%')
        {
            self.counting.count_list();
            let path = folder.join(dir.as_ref());
            let (key, after) = (dir.clone(), after.cloned());
            return crate::blocking::run_cpu(move || read_folder(&path, &key, after.as_ref()))
                .await
                .map_err(|failed| BackendError::Unavailable {
                    message: format!("listing {dir}: the listing thread stopped: {failed}"),
                })?;
        }
        let listing = match after {
            Some(after) => self.store.list_with_offset(Some(dir), after),
            None => self.store.list(Some(dir)),
        };
        listing
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| store_error("listing", dir, e))
    }
}

/// The keys of the files of the directory `path` (the folder of `dir`), after `after`
/// when given: what a LIST of `dir` gives on a local folder whose names need no escape (a
/// missing directory lists nothing; subdirectories, and names that are no key, are left
/// out, as a LIST of keys in one folder leaves them). One read of the directory's names,
/// without looking up each entry's metadata.
fn read_folder(
    path: &std::path::Path,
    dir: &Path,
    after: Option<&Path>,
) -> Result<Vec<Path>, BackendError> {
    let failed = |e: std::io::Error| BackendError::Unavailable {
        message: format!("listing {dir} ({}): {e}", path.display()),
    };
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(e)),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(failed)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let is_file = match entry.file_type().map_err(failed)? {
            kind if kind.is_symlink() => entry.path().is_file(),
            kind => kind.is_file(),
        };
        if !is_file || name.contains('%') {
            continue;
        }
        let Ok(part) = object_store::path::PathPart::parse(&name) else {
            continue;
        };
        let key = dir.clone().join(part);
        if after.is_none_or(|after| key > *after) {
            keys.push(key);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::segment_log::{SegmentLog, SegmentLogConfig};
    use crate::{GlobalEvent, SyncBackend};

    fn event(seq: u64) -> GlobalEvent {
        GlobalEvent {
            seq_num: GlobalSeq(seq),
            parent_seq_num: GlobalSeq(seq - 1),
            name: "v1.TodoCreated".into(),
            args: serde_json::json!({"id": seq}),
            client_id: "c".into(),
            session_id: "s".into(),
        }
    }

    #[tokio::test]
    async fn test_a_folders_directory_read_lists_what_a_list_of_the_store_lists() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let listed =
            SegmentLog::new(store, Path::default(), "s", SegmentLogConfig::default()).unwrap();
        let read = listed
            .clone()
            .with_folder(std::fs::canonicalize(dir.path()).unwrap());
        assert!(read.inner.folder.is_some() && listed.inner.folder.is_none());
        for first in [1u64, 3, 5, 7] {
            listed
                .push(vec![event(first), event(first + 1)])
                .await
                .unwrap();
        }
        let (log, _) = listed.inner.incarnation().await.unwrap();
        // Beside the segments: a folder, a partial upload and a file that is no segment.
        let segments = dir.path().join(log.paths.segments_dir().as_ref());
        std::fs::create_dir(segments.join("00000000000000000009.seg")).unwrap();
        std::fs::write(segments.join("00000000000000000011.seg#1"), b"x").unwrap();
        std::fs::write(segments.join("notes.txt"), b"x").unwrap();
        for after in [
            None,
            Some(GlobalSeq(1)),
            Some(GlobalSeq(4)),
            Some(GlobalSeq(7)),
        ] {
            let by_list = listed.inner.list_segments(&log, after).await.unwrap();
            let by_read = read.inner.list_segments(&log, after).await.unwrap();
            assert_eq!(by_read, by_list, "after {after:?}");
        }
        assert_eq!(
            read.inner.list_segments(&log, None).await.unwrap(),
            [1, 3, 5, 7].map(GlobalSeq)
        );
        // Each listing counts as one LIST.
        let before = read.requests().unwrap();
        read.inner.list_segments(&log, None).await.unwrap();
        assert_eq!((read.requests().unwrap() - before).lists, 1);
        // A folder not made yet lists nothing.
        let packs = read.inner.list_folder(log.paths.packs_dir(), None).await;
        assert!(packs.unwrap().is_empty());
    }
}
