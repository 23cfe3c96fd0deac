//! The object keys of a store, written down in one place.
//!
//! ```text
//! {prefix}/{store}/store.json                               identity: layout version and backend id, created once
//! {prefix}/{store}/{backend_id}/segments/{first:020}.seg    one immutable segment, named by its first event's number
//! {prefix}/{store}/{backend_id}/packs/{first:020}-{last:020}.pack   a run of whole segments, events first..=last
//! {prefix}/{store}/{backend_id}/snapshots/{schema_hash}/{S:020}.snap   the state at event S
//! {prefix}/.eventsync-probe/{run}/...                       scratch keys of the capability probe (deleted after it)
//! ```
//!
//! Each backend id has its own key namespace. A store that is wiped (every object deleted)
//! gets a new backend id when the next client creates `store.json`, so a stale writer, which
//! still knows the old id, can only write under the old id's folder, where no reader of the
//! new store ever looks: the new store can never be forked or broken by it. The same holds
//! for a store replaced on purpose (an import with `--force`).
//!
//! Segment names are zero-padded to 20 digits (the width of `u64::MAX`) so that the
//! lexicographic order of keys is their numeric order, as in Delta Lake's `_delta_log`.
//! Store ids arrive as a `StoreId`, validated when made (see `store_id`), and backend
//! ids are [`BackendId`]s, so both are always a single, safe path segment.

use std::fmt;

use object_store::path::Path;

use crate::GlobalSeq;
use crate::store_id::StoreId;

/// The name of the identity object inside a store's folder.
pub const STORE_JSON: &str = "store.json";
/// The folder (inside a backend id's folder) that holds the segments.
pub const SEGMENTS_DIR: &str = "segments";
/// The file extension of a segment.
pub const SEGMENT_EXTENSION: &str = ".seg";
/// The folder (inside a backend id's folder) that holds the packs.
pub const PACKS_DIR: &str = "packs";
/// The file extension of a pack.
pub const PACK_EXTENSION: &str = ".pack";
/// The folder (inside a backend id's folder) that holds the snapshots, one folder per
/// schema hash.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// The file extension of a snapshot.
pub const SNAPSHOT_EXTENSION: &str = ".snap";
/// The folder (inside the prefix) of the capability probe's scratch keys. It starts with a
/// dot, which no store id may, so it can never collide with a store.
pub const PROBE_DIR: &str = ".eventsync-probe";
/// The version of this layout of keys, recorded in `store.json`. Version 1 kept segments
/// directly under `{store}/segments/`; version 2 keeps them under `{store}/{backend_id}/`.
pub const STORE_LAYOUT_VERSION: u16 = 2;
/// Longest backend id accepted in a key.
pub const MAX_BACKEND_ID_LEN: usize = 64;

/// A backend id that is safe to put in a key: 1 to [`MAX_BACKEND_ID_LEN`] characters of
/// `[A-Za-z0-9_-]`. It comes from `store.json`, which anyone with write access to the
/// bucket can edit, so it is checked before it becomes part of a key (no `..`, no `/`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BackendId(String);

impl BackendId {
    /// Checks `id`; the error says what is wrong with it (the id itself is shown escaped
    /// and cut short, so that a hostile value cannot flood a message).
    pub fn parse(id: &str) -> Result<BackendId, String> {
        let shown: String = id.escape_default().to_string().chars().take(80).collect();
        if id.is_empty() || id.len() > MAX_BACKEND_ID_LEN {
            return Err(format!(
                "backend id \"{shown}\" must be 1..={MAX_BACKEND_ID_LEN} characters, got {}",
                id.len()
            ));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "backend id \"{shown}\" may only hold letters, digits, '-' and '_'"
            ));
        }
        Ok(BackendId(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendId({})", self.0)
    }
}

/// The keys of one store under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePaths {
    /// `{prefix}/{store}`.
    root: Path,
}

impl StorePaths {
    /// The keys of store `store_id` under `prefix` (the root path when empty). A [`StoreId`]
    /// is one safe key segment, so the store's keys stay under `{prefix}/{store}`.
    pub fn new(prefix: &Path, store_id: &StoreId) -> StorePaths {
        StorePaths {
            root: prefix.clone().join(store_id.as_str()),
        }
    }

    /// `{prefix}/{store}`: everything of this store lives under it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `{prefix}/{store}/store.json`.
    pub fn store_json(&self) -> Path {
        self.root.clone().join(STORE_JSON)
    }

    /// The keys of the log of backend id `id`: `{prefix}/{store}/{id}/...`.
    pub fn log(&self, id: &BackendId) -> LogPaths {
        let root = self.root.clone().join(id.as_str());
        let segments = root.clone().join(SEGMENTS_DIR);
        let packs = root.clone().join(PACKS_DIR);
        let snapshots = root.clone().join(SNAPSHOTS_DIR);
        LogPaths {
            root,
            segments,
            packs,
            snapshots,
        }
    }
}

/// The keys of the log of one backend id of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaths {
    /// `{prefix}/{store}/{backend_id}`.
    root: Path,
    /// `{prefix}/{store}/{backend_id}/segments`.
    segments: Path,
    /// `{prefix}/{store}/{backend_id}/packs`.
    packs: Path,
    /// `{prefix}/{store}/{backend_id}/snapshots`.
    snapshots: Path,
}

impl LogPaths {
    /// `{prefix}/{store}/{backend_id}`: everything of this backend id lives under it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `{prefix}/{store}/{backend_id}/segments`: the folder listed on a cold start.
    pub fn segments_dir(&self) -> &Path {
        &self.segments
    }

    /// `{prefix}/{store}/{backend_id}/segments/{first:020}.seg`: the segment whose first
    /// event is `first`.
    pub fn segment(&self, first: GlobalSeq) -> Path {
        self.segments
            .clone()
            .join(format!("{:020}{SEGMENT_EXTENSION}", first.0))
    }

    /// The first event number encoded in a segment key, or `None` when `location` is not a
    /// segment key of this log (a stray file is ignored, not an error).
    pub fn parse_segment(&self, location: &Path) -> Option<GlobalSeq> {
        let mut rest = location.prefix_match(&self.segments)?;
        let name = rest.next()?;
        if rest.next().is_some() {
            return None;
        }
        let digits = name.as_ref().strip_suffix(SEGMENT_EXTENSION)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u64>().ok().map(GlobalSeq)
    }
}

impl LogPaths {
    /// `{prefix}/{store}/{backend_id}/packs`: the folder a cold reader lists first.
    pub fn packs_dir(&self) -> &Path {
        &self.packs
    }

    /// `{prefix}/{store}/{backend_id}/packs/{first:020}-{last:020}.pack`: the pack of events
    /// `first ..= last`.
    pub fn pack(&self, first: GlobalSeq, last: GlobalSeq) -> Path {
        self.packs
            .clone()
            .join(format!("{:020}-{:020}{PACK_EXTENSION}", first.0, last.0))
    }

    /// The first and last event numbers in a pack key, or `None` when `location` is not a
    /// pack key of this log (a stray file is ignored, not an error).
    pub fn parse_pack(&self, location: &Path) -> Option<(GlobalSeq, GlobalSeq)> {
        let mut rest = location.prefix_match(&self.packs)?;
        let name = rest.next()?;
        if rest.next().is_some() {
            return None;
        }
        let (first, last) = name
            .as_ref()
            .strip_suffix(PACK_EXTENSION)?
            .split_once('-')?;
        let number = |digits: &str| {
            (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<u64>().ok().map(GlobalSeq))
                .flatten()
        };
        let (first, last) = (number(first)?, number(last)?);
        (GlobalSeq::FIRST <= first && first <= last).then_some((first, last))
    }
}

impl LogPaths {
    /// `{prefix}/{store}/{backend_id}/snapshots`: every schema's snapshots.
    pub fn snapshots_dir(&self) -> &Path {
        &self.snapshots
    }

    /// `{prefix}/{store}/{backend_id}/snapshots/{schema_hash}`: one schema's snapshots. The
    /// caller passes a hash that is one safe key segment ([`valid_schema_hash`]).
    pub fn schema_snapshots_dir(&self, schema_hash: &str) -> Path {
        self.snapshots.clone().join(schema_hash)
    }

    /// `{prefix}/{store}/{backend_id}/snapshots/{schema_hash}/{at:020}.snap`: the snapshot
    /// of the state at event `at` under schema `schema_hash`.
    pub fn snapshot(&self, schema_hash: &str, at: GlobalSeq) -> Path {
        self.schema_snapshots_dir(schema_hash)
            .join(format!("{:020}{SNAPSHOT_EXTENSION}", at.0))
    }

    /// The schema hash and event number in a snapshot key, or `None` when `location` is not
    /// a snapshot key of this log (a stray file is ignored, not an error).
    pub fn parse_snapshot(&self, location: &Path) -> Option<(String, GlobalSeq)> {
        let mut rest = location.prefix_match(&self.snapshots)?;
        let schema = rest.next()?;
        let name = rest.next()?;
        if rest.next().is_some() || !valid_schema_hash(schema.as_ref()) {
            return None;
        }
        let digits = name.as_ref().strip_suffix(SNAPSHOT_EXTENSION)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let at = digits.parse::<u64>().ok().map(GlobalSeq)?;
        (at >= GlobalSeq::FIRST).then(|| (schema.as_ref().to_owned(), at))
    }
}

/// Longest schema hash accepted in a snapshot key.
pub const MAX_SCHEMA_HASH_LEN: usize = 128;

/// Whether `hash` may name a snapshot folder: 1 to [`MAX_SCHEMA_HASH_LEN`] characters of
/// `[A-Za-z0-9_-]` (a schema hash is lowercase hex; the check keeps keys safe).
pub fn valid_schema_hash(hash: &str) -> bool {
    !hash.is_empty()
        && hash.len() <= MAX_SCHEMA_HASH_LEN
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `{prefix}/.eventsync-probe/{run}`: the scratch folder of one probe run.
pub fn probe_dir(prefix: &Path, run: &str) -> Path {
    prefix.clone().join(PROBE_DIR).join(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> BackendId {
        BackendId::parse(text).unwrap()
    }

    fn log() -> LogPaths {
        StorePaths::new(&Path::from("p"), &StoreId::new("s").unwrap()).log(&id("b1"))
    }

    #[test]
    fn test_keys_follow_the_documented_layout() {
        let paths = StorePaths::new(&Path::from("data/logs"), &StoreId::new("todo-app").unwrap());
        assert_eq!(paths.store_json().as_ref(), "data/logs/todo-app/store.json");
        let log = paths.log(&id("0a1b"));
        assert_eq!(log.root().as_ref(), "data/logs/todo-app/0a1b");
        assert_eq!(
            log.segment(GlobalSeq(42)).as_ref(),
            "data/logs/todo-app/0a1b/segments/00000000000000000042.seg"
        );
    }

    #[test]
    fn test_empty_prefix_puts_the_store_at_the_root() {
        let paths = StorePaths::new(&Path::default(), &StoreId::new("s").unwrap());
        assert_eq!(paths.store_json().as_ref(), "s/store.json");
        assert_eq!(
            paths.log(&id("b")).segment(GlobalSeq(1)).as_ref(),
            "s/b/segments/00000000000000000001.seg"
        );
    }

    #[test]
    fn test_each_backend_id_has_its_own_segment_keys() {
        let paths = StorePaths::new(&Path::from("p"), &StoreId::new("s").unwrap());
        let (old, new) = (paths.log(&id("old")), paths.log(&id("new")));
        assert_ne!(old.segment(GlobalSeq(4)), new.segment(GlobalSeq(4)));
        assert_eq!(new.parse_segment(&old.segment(GlobalSeq(4))), None);
    }

    #[test]
    fn test_segment_keys_sort_numerically() {
        let log = log();
        let a = log.segment(GlobalSeq(9));
        let b = log.segment(GlobalSeq(10));
        assert!(a < b);
        let max = log.segment(GlobalSeq(u64::MAX));
        assert!(b < max);
    }

    #[test]
    fn test_parse_segment_round_trips_and_ignores_strays() {
        let log = log();
        for n in [1, 77, u64::MAX] {
            assert_eq!(
                log.parse_segment(&log.segment(GlobalSeq(n))),
                Some(GlobalSeq(n))
            );
        }
        assert_eq!(
            log.parse_segment(&Path::from("p/s/b1/segments/12.seg")),
            None
        );
        assert_eq!(
            log.parse_segment(&Path::from("p/s/b1/segments/x.tmp")),
            None
        );
        assert_eq!(log.parse_segment(&Path::from("p/s/store.json")), None);
        assert_eq!(
            log.parse_segment(&Path::from("p/s/segments/00000000000000000001.seg")),
            None,
            "a segment of layout 1 is not one of this log"
        );
        assert_eq!(
            log.parse_segment(&Path::from("p/other/b1/segments/00000000000000000001.seg")),
            None
        );
    }

    #[test]
    fn test_pack_keys_round_trip_and_ignore_strays() {
        let log = log();
        let key = log.pack(GlobalSeq(1), GlobalSeq(4096));
        assert_eq!(
            key.as_ref(),
            "p/s/b1/packs/00000000000000000001-00000000000000004096.pack"
        );
        assert_eq!(log.parse_pack(&key), Some((GlobalSeq(1), GlobalSeq(4096))));
        for stray in [
            "p/s/b1/packs/1-4096.pack",
            "p/s/b1/packs/00000000000000000005-00000000000000000004.pack",
            "p/s/b1/packs/00000000000000000001-00000000000000004096.seg",
            "p/s/b1/segments/00000000000000000001-00000000000000004096.pack",
        ] {
            assert_eq!(log.parse_pack(&Path::from(stray)), None, "{stray}");
        }
    }

    #[test]
    fn test_snapshot_keys_round_trip_and_ignore_strays() {
        let log = log();
        let key = log.snapshot("ab12", GlobalSeq(4096));
        assert_eq!(
            key.as_ref(),
            "p/s/b1/snapshots/ab12/00000000000000004096.snap"
        );
        assert_eq!(
            log.parse_snapshot(&key),
            Some(("ab12".into(), GlobalSeq(4096)))
        );
        for stray in [
            "p/s/b1/snapshots/ab12/4096.snap",
            "p/s/b1/snapshots/00000000000000004096.snap",
            "p/s/b1/snapshots/ab12/00000000000000000000.snap",
            "p/s/b1/snapshots/ab12/x/00000000000000004096.snap",
            "p/s/b1/snapshots/a.b/00000000000000004096.snap",
            "p/s/b1/packs/ab12/00000000000000004096.snap",
        ] {
            assert_eq!(log.parse_snapshot(&Path::from(stray)), None, "{stray}");
        }
    }

    #[test]
    fn test_backend_ids_that_are_not_one_safe_key_segment_are_refused() {
        let long = "x".repeat(MAX_BACKEND_ID_LEN + 1);
        for hostile in [
            "", "../x", "..", "/", "a/b", "a.b", "é", "a b", "nul\0", &long,
        ] {
            let message = BackendId::parse(hostile).expect_err(hostile);
            assert!(message.contains("backend id"), "{message}");
            assert!(!message.contains('\0'), "{message}");
        }
        for fine in ["0123abcdef", "A-b_9", &"y".repeat(MAX_BACKEND_ID_LEN)] {
            assert_eq!(BackendId::parse(fine).unwrap().as_str(), fine);
        }
    }
}
