//! The pack byte format: a run of whole segments, byte for byte, in one checksummed object.
//!
//! A pack holds the exact bytes of the segments it covers, so it carries the same events,
//! the same writer nonces and the same hash chain, and two packers of the same run write the
//! same object: the segments are immutable and the encoding has no free choice (no
//! timestamp, no writer id, no compression level). The layout is in `docs/FORMAT.md`;
//! [`decode`] checks everything a pack can say about itself (magic, version, length,
//! checksum, each segment, that they follow one another and chain) and never panics.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::GlobalSeq;
use crate::segment::{self, Segment, SegmentDigest, SegmentError, SegmentHeader, SegmentJson};

/// The first eight bytes of every pack.
pub const MAGIC: [u8; 8] = *b"ESYNCPAK";
/// The pack format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the header: magic, version, flags, total length, first, last, segment count.
pub const HEADER_LEN: usize = 8 + 2 + 2 + 8 + 8 + 8 + 4;
/// Bytes of the trailer (a SHA-256 of every byte before it).
pub const TRAILER_LEN: usize = 32;

/// A decoded, self-consistent pack.
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    /// Its first event (the first event of its first segment).
    pub first: GlobalSeq,
    /// Its last event.
    pub last: GlobalSeq,
    /// Its segments, in order, each starting right after the one before and chaining onto
    /// its digest.
    pub segments: Vec<Segment>,
}

/// Why bytes are not a valid pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// The bytes do not start with [`MAGIC`].
    #[error("not a pack: bad magic bytes")]
    BadMagic,
    /// Written by a newer (or unknown) pack format version.
    #[error(
        "pack format version {found} is not supported (this build reads version {supported}); upgrade eventsync"
    )]
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The object is not as long as its header says: cut off, or extended.
    #[error("pack has {actual} bytes, its header says {expected}")]
    Length {
        /// Bytes the header announces (or the minimum a pack needs).
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The trailer is not the SHA-256 of the bytes before it: the object was altered.
    #[error("pack checksum mismatch: trailer {stored}, content hashes to {computed}")]
    ChecksumMismatch {
        /// The digest in the trailer.
        stored: SegmentDigest,
        /// The digest of the content.
        computed: SegmentDigest,
    },
    /// A header field or the framing of a segment is malformed.
    #[error("malformed pack: {message}")]
    Malformed {
        /// What is wrong.
        message: String,
    },
    /// A segment inside the pack is not valid, or does not follow the one before it.
    #[error("segment {index} of the pack: {error}")]
    Segment {
        /// Its index in the pack, from 0.
        index: u32,
        /// What is wrong with it.
        error: SegmentError,
    },
}

fn malformed(message: String) -> PackError {
    PackError::Malformed { message }
}

/// Encodes the segments `objects` (the exact bytes of consecutive segments of one log, in
/// order) as one pack. Each is decoded and checked to follow the one before.
pub fn encode(objects: &[&[u8]]) -> Result<Vec<u8>, PackError> {
    let mut segments = Vec::with_capacity(objects.len());
    for (index, bytes) in objects.iter().enumerate() {
        let index = u32::try_from(index).map_err(|_| malformed("too many segments".into()))?;
        let segment =
            segment::decode(bytes).map_err(|error| PackError::Segment { index, error })?;
        segments.push(segment);
    }
    let (first, last) = check_run(&segments)?;
    let count = u32::try_from(objects.len()).map_err(|_| malformed("too many segments".into()))?;
    let size: usize = objects.iter().map(|bytes| 4 + bytes.len()).sum();
    let mut body = Vec::with_capacity(HEADER_LEN + size + TRAILER_LEN);
    body.extend_from_slice(&MAGIC);
    body.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes()); // flags
    body.extend_from_slice(&((HEADER_LEN + size + TRAILER_LEN) as u64).to_le_bytes());
    body.extend_from_slice(&first.0.to_le_bytes());
    body.extend_from_slice(&last.0.to_le_bytes());
    body.extend_from_slice(&count.to_le_bytes());
    for bytes in objects {
        let len =
            u32::try_from(bytes.len()).map_err(|_| malformed("a segment over 4 GiB".into()))?;
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(bytes);
    }
    let digest: [u8; 32] = Sha256::digest(&body).into();
    body.extend_from_slice(&digest);
    Ok(body)
}

/// Decodes and checks a whole pack (see the module doc).
pub fn decode(bytes: &[u8]) -> Result<Pack, PackError> {
    parse(bytes, segment::decode).map(|(pack, _)| pack)
}

/// What [`decode_digests`] finds in a pack: its run and each segment's header and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackDigests {
    /// Its first event.
    pub first: GlobalSeq,
    /// Its last event.
    pub last: GlobalSeq,
    /// Each of its segments' header and digest (trailer), in order.
    pub segments: Vec<(SegmentHeader, SegmentDigest)>,
}

/// Checks a pack like [`decode`] except that each segment's events are not parsed: the
/// pack's checksum, framing and run, and each segment's header and checksum
/// ([`segment::decode_header`]). A segment whose digest equals that of a segment decoded in
/// full elsewhere holds the same bytes, so an auditor that compares every digest against
/// the log's segments learns from this what [`decode`] would tell it, without parsing the
/// same events again.
pub fn decode_digests(bytes: &[u8]) -> Result<PackDigests, PackError> {
    check_checksum(bytes)?;
    digests_of(bytes, |_| false)
}

/// A pack whose magic, version, length and checksum were checked ([`Checksummed::check`]):
/// the first half of [`decode_digests`], the half that hashes the whole pack, which an
/// auditor runs beside its other reads; [`Checksummed::digests`] is the rest.
#[derive(Debug, Clone)]
pub struct Checksummed {
    bytes: Bytes,
}

impl Checksummed {
    /// Checks the pack's magic, version, length and checksum (the errors [`decode`] gives
    /// for them, in the same order).
    pub fn check(bytes: Bytes) -> Result<Checksummed, PackError> {
        check_checksum(&bytes)?;
        Ok(Checksummed { bytes })
    }

    /// The rest of [`decode_digests`]: the framing and run, and each segment's header and
    /// checksum, with the same errors. `checked(segment_bytes)` says whether these exact
    /// bytes (trailer included) are a segment whose checksum held when it was read
    /// elsewhere: such a segment is not hashed again (equal bytes hash alike); every other
    /// check is made on it.
    pub fn digests(&self, checked: impl Fn(&[u8]) -> bool) -> Result<PackDigests, PackError> {
        digests_of(&self.bytes, checked)
    }
}

/// [`decode_digests`] after its checksum: each segment read with `decode_header`, or without
/// its hash when `checked` says its bytes were checked elsewhere.
fn digests_of(bytes: &[u8], checked: impl Fn(&[u8]) -> bool) -> Result<PackDigests, PackError> {
    let header_only = |bytes: &[u8]| {
        let decoded = if checked(bytes) {
            segment::decode_header_of_checked(bytes)
        } else {
            segment::decode_header(bytes)
        };
        decoded.map(|(header, digest)| Segment {
            header,
            events: Vec::new(),
            digest,
        })
    };
    let (pack, _) = parse_body(bytes, header_only)?;
    Ok(PackDigests {
        first: pack.first,
        last: pack.last,
        segments: pack
            .segments
            .into_iter()
            .map(|segment| (segment.header, segment.digest))
            .collect(),
    })
}

/// A pack checked like [`decode`] with its segments' events kept as JSON ([`decode_json`]).
#[derive(Debug, Clone)]
pub struct PackJson {
    /// Its first event.
    pub first: GlobalSeq,
    /// Its last event.
    pub last: GlobalSeq,
    /// Its segments, in order.
    pub segments: Vec<SegmentJson>,
}

/// Decodes and checks a whole pack like [`decode`], each segment with
/// [`segment::decode_json`]: every check is made, and each event is kept as the JSON
/// `serde_json` writes for it instead of being built.
pub fn decode_json(bytes: &Bytes) -> Result<PackJson, PackError> {
    let decoded = std::cell::RefCell::new(Vec::new());
    let (pack, _) = parse(bytes, |segment_bytes| {
        let segment = segment::decode_json(bytes.slice_ref(segment_bytes))?;
        let without_events = segment.without_events();
        decoded.borrow_mut().push(segment);
        Ok(without_events)
    })?;
    Ok(PackJson {
        first: pack.first,
        last: pack.last,
        segments: decoded.into_inner(),
    })
}

/// Decodes and checks a whole pack like [`decode`], and also returns the exact bytes of each
/// of its segments, in order: what a larger pack that merges this one is encoded from.
pub fn decode_with_segment_bytes(bytes: &[u8]) -> Result<(Pack, Vec<&[u8]>), PackError> {
    let (pack, ranges) = parse(bytes, segment::decode)?;
    Ok((
        pack,
        ranges.into_iter().map(|range| &bytes[range]).collect(),
    ))
}

/// [`decode`], with the byte range of each segment in `bytes`; each segment is read with
/// `decode_segment`.
fn parse(
    bytes: &[u8],
    decode_segment: impl Fn(&[u8]) -> Result<Segment, SegmentError>,
) -> Result<(Pack, Vec<std::ops::Range<usize>>), PackError> {
    check_checksum(bytes)?;
    parse_body(bytes, decode_segment)
}

/// The pack's magic, version, length and checksum: what [`parse`] checks first.
fn check_checksum(bytes: &[u8]) -> Result<(), PackError> {
    let actual = bytes.len() as u64;
    if bytes.len() >= 8 && bytes[..8] != MAGIC {
        return Err(PackError::BadMagic);
    }
    if bytes.len() < 10 {
        return Err(PackError::Length {
            expected: (HEADER_LEN + TRAILER_LEN) as u64,
            actual,
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(PackError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(PackError::Length {
            expected: (HEADER_LEN + TRAILER_LEN) as u64,
            actual,
        });
    }
    let u64_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let expected = u64_at(12);
    if expected != actual {
        return Err(PackError::Length { expected, actual });
    }
    let body_end = bytes.len() - TRAILER_LEN;
    let mut stored = [0u8; 32];
    stored.copy_from_slice(&bytes[body_end..]);
    let computed: [u8; 32] = Sha256::digest(&bytes[..body_end]).into();
    if stored != computed {
        return Err(PackError::ChecksumMismatch {
            stored: SegmentDigest(stored),
            computed: SegmentDigest(computed),
        });
    }
    Ok(())
}

/// What [`parse`] checks after [`check_checksum`], on bytes that passed it: the flags, the
/// framing of each segment (read with `decode_segment`) and the run.
fn parse_body(
    bytes: &[u8],
    decode_segment: impl Fn(&[u8]) -> Result<Segment, SegmentError>,
) -> Result<(Pack, Vec<std::ops::Range<usize>>), PackError> {
    let u64_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let body_end = bytes.len() - TRAILER_LEN;
    let flags = u16::from_le_bytes([bytes[10], bytes[11]]);
    if flags != 0 {
        return Err(malformed(format!("unknown flags {flags:#06x}")));
    }
    let (first, last) = (GlobalSeq(u64_at(20)), GlobalSeq(u64_at(28)));
    let count = u32::from_le_bytes([bytes[36], bytes[37], bytes[38], bytes[39]]);
    if count == 0 {
        return Err(malformed("a pack holds at least one segment".into()));
    }
    let mut segments = Vec::new();
    let mut ranges = Vec::new();
    let mut position = HEADER_LEN;
    for index in 0..count {
        let Some(len) = bytes
            .get(position..position + 4)
            .filter(|_| position + 4 <= body_end)
        else {
            return Err(malformed(format!("segment {index} is cut off")));
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let start = position + 4;
        let end = start.saturating_add(len);
        if end > body_end {
            return Err(malformed(format!(
                "segment {index} claims {len} bytes, past the end of the pack"
            )));
        }
        let segment = decode_segment(&bytes[start..end])
            .map_err(|error| PackError::Segment { index, error })?;
        segments.push(segment);
        ranges.push(start..end);
        position = end;
    }
    if position != body_end {
        return Err(malformed(format!(
            "{} bytes left over after {count} segments",
            body_end - position
        )));
    }
    let run = check_run(&segments)?;
    if run != (first, last) {
        return Err(malformed(format!(
            "its header says events {first} to {last}, its segments hold {} to {}",
            run.0, run.1
        )));
    }
    let pack = Pack {
        first,
        last,
        segments,
    };
    Ok((pack, ranges))
}

/// Checks that `segments` follow one another (each starts after the one before ends and
/// names its digest) and belong to one store; returns the first and last event.
fn check_run(segments: &[Segment]) -> Result<(GlobalSeq, GlobalSeq), PackError> {
    let Some(head) = segments.first() else {
        return Err(malformed("a pack holds at least one segment".into()));
    };
    let backend_id = &head.header.backend_id;
    let mut prev: Option<&Segment> = None;
    for (index, segment) in segments.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if let Some(prev) = prev {
            segment
                .check_position(prev.header.last().next(), Some(prev.digest), backend_id)
                .map_err(|error| PackError::Segment { index, error })?;
        } else {
            segment
                .check_position(segment.header.first, None, backend_id)
                .map_err(|error| PackError::Segment { index, error })?;
        }
        prev = Some(segment);
    }
    let last = segments[segments.len() - 1].header.last();
    Ok((head.header.first, last))
}
