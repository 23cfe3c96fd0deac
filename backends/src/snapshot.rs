//! The snapshot byte format: the materialized state of a store at a confirmed event `S`, in
//! one checksummed object, tied to the log by the hash-chain link at `S`.
//!
//! This crate knows nothing of SQLite: the state travels as an opaque *body* (the root crate
//! writes an SQLite image of the user tables in version 2, a compressed canonical dump of
//! them in version 1) with a *content hash* the body's producer defines (the SHA-256 of the
//! canonical dump, in both versions). The header is the same in both versions; the version
//! says what the body is. What this format adds is what
//! ties the body to the log: `S`, the schema hash the tables were made with, and the link at
//! `S` (the first event and the digest of the segment that ends at `S`), so that a reader
//! checks the snapshot against the segment it names and the tail from `S + 1` chains onto
//! it. The layout is in `docs/FORMAT.md`; [`decode`] never panics and says what is wrong.

use sha2::{Digest as _, Sha256};

use crate::GlobalSeq;
pub use crate::paths::{MAX_SCHEMA_HASH_LEN, valid_schema_hash};
use crate::segment::SegmentDigest;

/// The first eight bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"ESYNCSNP";
/// The snapshot format version this build writes (and the newest it reads): the body is an
/// SQLite image of the user tables.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest snapshot format version this build reads: version 1, whose body is the
/// DEFLATE-compressed canonical dump of the user tables.
pub const OLDEST_VERSION: u16 = 1;
/// Bytes of the fixed part of the header (up to the schema hash's length byte included).
pub const FIXED_HEADER_LEN: usize = 8 + 2 + 2 + 8 + 8 + 8 + 32 + 32 + 8 + 1;
/// Bytes of the trailer (a SHA-256 of every byte before it).
pub const TRAILER_LEN: usize = 32;
/// Longest writer client id accepted.
pub const MAX_WRITER_LEN: usize = 1024;

/// Where a snapshot sits on the log: the segment that ends at its `S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotLink {
    /// The first event of the segment that ends at `S`.
    pub segment_first: GlobalSeq,
    /// That segment's digest: what the segment starting at `S + 1` chains to.
    pub digest: SegmentDigest,
}

/// A snapshot, decoded and self-consistent (its checksum holds).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The format version ([`OLDEST_VERSION`]..=[`FORMAT_VERSION`]): it says what the body
    /// is, for the body's producer.
    pub version: u16,
    /// `S`: the last event the state reflects (a segment boundary).
    pub at: GlobalSeq,
    /// The hash of the schema the tables were made with (a key segment).
    pub schema_hash: String,
    /// The hash-chain link at `S`.
    pub link: SnapshotLink,
    /// The hash of the state the body holds, as its producer defines it.
    pub content_hash: [u8; 32],
    /// How many bytes the body holds once its producer decodes it (a bound for the reader).
    pub content_len: u64,
    /// The client id that wrote it (informational).
    pub writer: String,
    /// The state, opaque to this crate.
    pub body: Vec<u8>,
}

/// Why bytes are not a valid snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not start with [`MAGIC`].
    #[error("not a snapshot: bad magic bytes")]
    BadMagic,
    /// Written by a newer (or unknown) snapshot format version.
    #[error(
        "snapshot format version {found} is not supported (this build reads versions {OLDEST_VERSION} to {supported}); upgrade eventsync"
    )]
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// The object is not as long as its header says: cut off, or extended.
    #[error("snapshot has {actual} bytes, its header says {expected}")]
    Length {
        /// Bytes the header announces (or the minimum a snapshot needs).
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The trailer is not the SHA-256 of the bytes before it: the object was altered.
    #[error("snapshot checksum mismatch: trailer {stored}, content hashes to {computed}")]
    ChecksumMismatch {
        /// The digest in the trailer.
        stored: SegmentDigest,
        /// The digest of the content.
        computed: SegmentDigest,
    },
    /// A header field is malformed.
    #[error("malformed snapshot: {message}")]
    Malformed {
        /// What is wrong.
        message: String,
    },
}

fn malformed(message: impl Into<String>) -> SnapshotError {
    SnapshotError::Malformed {
        message: message.into(),
    }
}

/// Encodes `snapshot` (see `docs/FORMAT.md`). Fails on a field this format cannot hold.
pub fn encode(snapshot: &Snapshot) -> Result<Vec<u8>, SnapshotError> {
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&snapshot.version) {
        return Err(malformed(format!(
            "this build writes versions {OLDEST_VERSION} to {FORMAT_VERSION}, not {}",
            snapshot.version
        )));
    }
    if snapshot.at == GlobalSeq::ZERO || snapshot.link.segment_first == GlobalSeq::ZERO {
        return Err(malformed("a snapshot is taken at an event, e1 or later"));
    }
    if snapshot.link.segment_first > snapshot.at {
        return Err(malformed("its link's segment starts after S"));
    }
    if !valid_schema_hash(&snapshot.schema_hash) {
        return Err(malformed("the schema hash is not 1..=128 of [A-Za-z0-9_-]"));
    }
    if snapshot.writer.len() > MAX_WRITER_LEN {
        return Err(malformed("the writer id is over 1,024 bytes"));
    }
    let total = FIXED_HEADER_LEN
        + snapshot.schema_hash.len()
        + 2
        + snapshot.writer.len()
        + snapshot.body.len()
        + TRAILER_LEN;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&snapshot.version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // flags
    out.extend_from_slice(&(total as u64).to_le_bytes());
    out.extend_from_slice(&snapshot.at.0.to_le_bytes());
    out.extend_from_slice(&snapshot.link.segment_first.0.to_le_bytes());
    out.extend_from_slice(&snapshot.link.digest.0);
    out.extend_from_slice(&snapshot.content_hash);
    out.extend_from_slice(&snapshot.content_len.to_le_bytes());
    out.push(snapshot.schema_hash.len() as u8);
    out.extend_from_slice(snapshot.schema_hash.as_bytes());
    out.extend_from_slice(&(snapshot.writer.len() as u16).to_le_bytes());
    out.extend_from_slice(snapshot.writer.as_bytes());
    out.extend_from_slice(&snapshot.body);
    let digest: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&digest);
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

/// A cursor over the header that fails, instead of panicking, past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| malformed(format!("{what} is cut off")))?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    fn u64(&mut self, what: &str) -> Result<u64, SnapshotError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(word))
    }

    fn digest(&mut self, what: &str) -> Result<[u8; 32], SnapshotError> {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(self.take(32, what)?);
        Ok(digest)
    }
}

/// Decodes and checks a whole snapshot: magic, version (before anything else, so a newer
/// format is a clear "upgrade" error), length, checksum, flags, and the header's fields.
/// The body is returned as it is; its producer checks it against the content hash.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let actual = bytes.len() as u64;
    if bytes.len() >= 8 && bytes[..8] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    if bytes.len() < 10 {
        return Err(SnapshotError::Length {
            expected: (FIXED_HEADER_LEN + TRAILER_LEN) as u64,
            actual,
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(SnapshotError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < FIXED_HEADER_LEN + 2 + TRAILER_LEN {
        return Err(SnapshotError::Length {
            expected: (FIXED_HEADER_LEN + 2 + TRAILER_LEN) as u64,
            actual,
        });
    }
    let mut reader = Reader {
        bytes: &bytes[..bytes.len() - TRAILER_LEN],
        position: 12,
    };
    let expected = reader.u64("the length")?;
    if expected != actual {
        return Err(SnapshotError::Length { expected, actual });
    }
    let body_end = bytes.len() - TRAILER_LEN;
    let mut stored = [0u8; 32];
    stored.copy_from_slice(&bytes[body_end..]);
    let computed: [u8; 32] = Sha256::digest(&bytes[..body_end]).into();
    if stored != computed {
        return Err(SnapshotError::ChecksumMismatch {
            stored: SegmentDigest(stored),
            computed: SegmentDigest(computed),
        });
    }
    let flags = u16::from_le_bytes([bytes[10], bytes[11]]);
    if flags != 0 {
        return Err(malformed(format!("unknown flags {flags:#06x}")));
    }
    let at = GlobalSeq(reader.u64("S")?);
    let segment_first = GlobalSeq(reader.u64("the link's segment")?);
    let link_digest = SegmentDigest(reader.digest("the link's digest")?);
    let content_hash = reader.digest("the content hash")?;
    let content_len = reader.u64("the content length")?;
    if at == GlobalSeq::ZERO {
        return Err(malformed("S is 0: a snapshot is taken at e1 or later"));
    }
    if segment_first == GlobalSeq::ZERO || segment_first > at {
        return Err(malformed(format!(
            "its link names a segment at {segment_first}, which cannot end at S = {at}"
        )));
    }
    let hash_len = reader.take(1, "the schema hash length")?[0] as usize;
    let schema_hash = std::str::from_utf8(reader.take(hash_len, "the schema hash")?)
        .ok()
        .filter(|hash| valid_schema_hash(hash))
        .ok_or_else(|| malformed("the schema hash is not 1..=128 of [A-Za-z0-9_-]"))?
        .to_owned();
    let writer_len = reader.take(2, "the writer id length")?;
    let writer_len = u16::from_le_bytes([writer_len[0], writer_len[1]]) as usize;
    if writer_len > MAX_WRITER_LEN {
        return Err(malformed(format!(
            "the writer id claims {writer_len} bytes (at most {MAX_WRITER_LEN})"
        )));
    }
    let writer = std::str::from_utf8(reader.take(writer_len, "the writer id")?)
        .map_err(|_| malformed("the writer id is not UTF-8"))?
        .to_owned();
    let body = bytes[reader.position..body_end].to_vec();
    Ok(Snapshot {
        version,
        at,
        schema_hash,
        link: SnapshotLink {
            segment_first,
            digest: link_digest,
        },
        content_hash,
        content_len,
        writer,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            version: FORMAT_VERSION,
            at: GlobalSeq(42),
            schema_hash: "abc123".into(),
            link: SnapshotLink {
                segment_first: GlobalSeq(40),
                digest: SegmentDigest([7; 32]),
            },
            content_hash: [9; 32],
            content_len: 1234,
            writer: "client-1".into(),
            body: b"the tables".to_vec(),
        }
    }

    #[test]
    fn test_snapshot_round_trips() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(&bytes[..8], b"ESYNCSNP");
        assert_eq!(decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn test_decode_refuses_every_damage_without_panicking() {
        let bytes = encode(&sample()).unwrap();
        // Every truncation and every single flipped byte is an error, never a panic.
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(decode(&damaged).is_err(), "byte {at} flipped");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(SnapshotError::Length { .. })));
    }

    #[test]
    fn test_decode_says_upgrade_for_a_newer_version() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[8] = 3;
        let error = decode(&bytes).unwrap_err();
        assert!(matches!(
            error,
            SnapshotError::UnsupportedVersion { found: 3, .. }
        ));
        assert!(error.to_string().contains("upgrade"), "{error}");
    }

    #[test]
    fn test_version_1_still_round_trips_and_version_0_is_refused() {
        let old = Snapshot {
            version: OLDEST_VERSION,
            ..sample()
        };
        let bytes = encode(&old).unwrap();
        assert_eq!(decode(&bytes).unwrap(), old);
        let mut bytes = bytes;
        bytes[8] = 0;
        assert!(matches!(
            decode(&bytes),
            Err(SnapshotError::UnsupportedVersion { found: 0, .. })
        ));
        let mut bad = sample();
        bad.version = FORMAT_VERSION + 1;
        assert!(encode(&bad).is_err());
    }

    #[test]
    fn test_encode_refuses_what_the_format_cannot_hold() {
        let mut bad = sample();
        bad.schema_hash = "../x".into();
        assert!(encode(&bad).is_err());
        let mut bad = sample();
        bad.at = GlobalSeq::ZERO;
        assert!(encode(&bad).is_err());
        let mut bad = sample();
        bad.link.segment_first = GlobalSeq(43);
        assert!(encode(&bad).is_err());
    }

    #[test]
    fn test_a_rechecksummed_header_with_a_bad_link_is_refused() {
        // A writer that computes a valid checksum over nonsense still meets the field checks.
        let mut bytes = encode(&sample()).unwrap();
        bytes[28..36].copy_from_slice(&50u64.to_le_bytes()); // link segment after S
        let end = bytes.len() - TRAILER_LEN;
        let digest: [u8; 32] = Sha256::digest(&bytes[..end]).into();
        bytes[end..].copy_from_slice(&digest);
        let error = decode(&bytes).unwrap_err();
        assert!(error.to_string().contains("cannot end at S"), "{error}");
    }
}
