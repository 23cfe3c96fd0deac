//! The object keys of a store, written down in one place.
//!
//! ```text
//! {prefix}/{store}/store.json                  identity: backend id and format version, created once
//! {prefix}/{store}/segments/{first:020}.seg    one immutable segment, named by its first event's number
//! {prefix}/.eventsync-probe/{run}/...          scratch keys of the capability probe (deleted after it)
//! ```
//!
//! Segment names are zero-padded to 20 digits (the width of `u64::MAX`) so that the
//! lexicographic order of keys is their numeric order, as in Delta Lake's `_delta_log`.
//! Store ids are validated before they get here (see `open::validate_store_id`), so they are
//! always a single, safe path segment.

use object_store::path::Path;

use crate::GlobalSeq;

/// The name of the identity object inside a store's folder.
pub const STORE_JSON: &str = "store.json";
/// The folder (inside a store's folder) that holds the segments.
pub const SEGMENTS_DIR: &str = "segments";
/// The file extension of a segment.
pub const SEGMENT_EXTENSION: &str = ".seg";
/// The folder (inside the prefix) of the capability probe's scratch keys. It starts with a
/// dot, which no store id may, so it can never collide with a store.
pub const PROBE_DIR: &str = ".eventsync-probe";

/// The keys of one store under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePaths {
    /// `{prefix}/{store}`.
    root: Path,
    /// `{prefix}/{store}/segments`.
    segments: Path,
}

impl StorePaths {
    /// The keys of store `store_id` under `prefix` (the root path when empty).
    pub fn new(prefix: &Path, store_id: &str) -> StorePaths {
        let root = prefix.clone().join(store_id);
        let segments = root.clone().join(SEGMENTS_DIR);
        StorePaths { root, segments }
    }

    /// `{prefix}/{store}`: everything of this store lives under it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `{prefix}/{store}/store.json`.
    pub fn store_json(&self) -> Path {
        self.root.clone().join(STORE_JSON)
    }

    /// `{prefix}/{store}/segments`: the folder listed on a cold start.
    pub fn segments_dir(&self) -> &Path {
        &self.segments
    }

    /// `{prefix}/{store}/segments/{first:020}.seg`: the segment whose first event is `first`.
    pub fn segment(&self, first: GlobalSeq) -> Path {
        self.segments
            .clone()
            .join(format!("{:020}{SEGMENT_EXTENSION}", first.0))
    }

    /// The first event number encoded in a segment key, or `None` when `location` is not a
    /// segment key of this store (a stray file is ignored, not an error).
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

/// `{prefix}/.eventsync-probe/{run}`: the scratch folder of one probe run.
pub fn probe_dir(prefix: &Path, run: &str) -> Path {
    prefix.clone().join(PROBE_DIR).join(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_keys_follow_the_documented_layout() {
        let paths = StorePaths::new(&Path::from("data/logs"), "todo-app");
        assert_eq!(paths.store_json().as_ref(), "data/logs/todo-app/store.json");
        assert_eq!(
            paths.segment(GlobalSeq(42)).as_ref(),
            "data/logs/todo-app/segments/00000000000000000042.seg"
        );
    }

    #[test]
    fn test_empty_prefix_puts_the_store_at_the_root() {
        let paths = StorePaths::new(&Path::default(), "s");
        assert_eq!(paths.store_json().as_ref(), "s/store.json");
    }

    #[test]
    fn test_segment_keys_sort_numerically() {
        let paths = StorePaths::new(&Path::from("p"), "s");
        let a = paths.segment(GlobalSeq(9));
        let b = paths.segment(GlobalSeq(10));
        assert!(a < b);
        let max = paths.segment(GlobalSeq(u64::MAX));
        assert!(b < max);
    }

    #[test]
    fn test_parse_segment_round_trips_and_ignores_strays() {
        let paths = StorePaths::new(&Path::from("p"), "s");
        for n in [1, 77, u64::MAX] {
            assert_eq!(
                paths.parse_segment(&paths.segment(GlobalSeq(n))),
                Some(GlobalSeq(n))
            );
        }
        assert_eq!(
            paths.parse_segment(&Path::from("p/s/segments/12.seg")),
            None
        );
        assert_eq!(paths.parse_segment(&Path::from("p/s/segments/x.tmp")), None);
        assert_eq!(paths.parse_segment(&Path::from("p/s/store.json")), None);
        assert_eq!(
            paths.parse_segment(&Path::from("p/other/segments/00000000000000000001.seg")),
            None
        );
    }
}
