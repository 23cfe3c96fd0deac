//! The segment byte format: a versioned, self-describing, checksummed batch of events that
//! names its position in the log and the digest of the segment before it (a hash chain).
//!
//! The layout is documented byte by byte in `docs/FORMAT.md`; this file is its only
//! implementation. [`decode`] checks everything a segment can say about itself (magic,
//! version, lengths, checksum, numbering) and never panics, whatever the input;
//! [`Segment::check_position`] then checks what only the reader knows: the key it was read
//! from, the digest of the previous segment and the store's backend id.

use std::fmt;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::{GlobalEvent, GlobalSeq};

mod framed;
mod json;
pub use framed::FramedEvents;
pub use json::{SegmentJson, decode_json};

/// The first eight bytes of every segment.
pub const MAGIC: [u8; 8] = *b"ESYNCSEG";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the fixed part of the header (before the backend id).
pub const FIXED_HEADER_LEN: usize = 81;
/// Bytes of the trailer (a SHA-256 digest).
pub const TRAILER_LEN: usize = 32;
/// Longest backend id a header can hold.
pub const MAX_BACKEND_ID_LEN: usize = 255;
/// Longest writer client id a header can hold.
pub const MAX_CLIENT_ID_LEN: usize = 1024;

/// A SHA-256 digest: a segment's trailer, and the link the next segment chains to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SegmentDigest(pub [u8; 32]);

impl SegmentDigest {
    /// The "previous digest" of the first segment of a log: 32 zero bytes.
    pub const ROOT: SegmentDigest = SegmentDigest([0; 32]);
}

impl fmt::Debug for SegmentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for SegmentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight bytes are plenty to tell digests apart in a message.
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…")
    }
}

/// The random token a writer puts in each segment it writes, so that after an ambiguous
/// write it can tell its own segment from another writer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriterNonce(pub [u8; 16]);

impl WriterNonce {
    /// A fresh nonce drawn from `entropy`.
    pub fn draw(entropy: &crate::Entropy) -> WriterNonce {
        WriterNonce(entropy.bytes())
    }
}

/// What a segment says about itself, besides its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The format version it was written with.
    pub version: u16,
    /// The number of its first event; also the number in its key.
    pub first: GlobalSeq,
    /// How many events it holds (at least one).
    pub count: u32,
    /// The nonce of the push that wrote it.
    pub writer_nonce: WriterNonce,
    /// The digest (trailer) of the segment before it; [`SegmentDigest::ROOT`] for the first.
    pub prev_digest: SegmentDigest,
    /// The backend id of the store it was written to (from `store.json`).
    pub backend_id: String,
    /// The client id of the writer (the client id of the batch's first event).
    pub writer_client_id: String,
}

impl SegmentHeader {
    /// The number of its last event.
    pub fn last(&self) -> GlobalSeq {
        // `decode` and `encode` both refuse counts that would overflow.
        GlobalSeq(
            self.first
                .0
                .saturating_add(u64::from(self.count))
                .saturating_sub(1),
        )
    }
}

/// A decoded, self-consistent segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Its header.
    pub header: SegmentHeader,
    /// Its events, numbered `first ..= last`, each the parent of the next.
    pub events: Vec<GlobalEvent>,
    /// Its trailer: the SHA-256 of every byte before it.
    pub digest: SegmentDigest,
}

/// What the writer of a segment supplies; the first number and count come from the events.
#[derive(Debug, Clone, Copy)]
pub struct SegmentWriter<'a> {
    /// The push's nonce.
    pub nonce: WriterNonce,
    /// The digest of the segment that ends at the batch's parent.
    pub prev_digest: SegmentDigest,
    /// The store's backend id.
    pub backend_id: &'a str,
    /// The writing client's id.
    pub client_id: &'a str,
}

/// An encoded segment, ready to write.
#[derive(Debug, Clone)]
pub struct EncodedSegment {
    /// The whole object body.
    pub bytes: Bytes,
    /// Its trailer, which the next segment will chain to.
    pub digest: SegmentDigest,
}

/// Why bytes are not a valid segment, or not the segment expected at a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// The bytes do not start with [`MAGIC`]: this is not a segment at all.
    #[error("not a segment: bad magic bytes")]
    BadMagic,
    /// Written by a newer (or unknown) format version; upgrade to read it.
    #[error(
        "segment format version {found} is not supported (this build reads version {supported}); upgrade eventsync"
    )]
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The object is shorter than its header says: a partial or cut-off write.
    #[error("segment truncated: {actual} bytes, header says {expected}")]
    Truncated {
        /// Bytes the header announces (or the minimum a header needs).
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The object is longer than its header says.
    #[error("segment has {actual} bytes, header says {expected}")]
    LengthMismatch {
        /// Bytes the header announces.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The trailer is not the SHA-256 of the bytes before it: the object was altered.
    #[error("segment checksum mismatch: trailer {stored}, content hashes to {computed}")]
    ChecksumMismatch {
        /// The digest stored in the trailer.
        stored: SegmentDigest,
        /// The digest of the content.
        computed: SegmentDigest,
    },
    /// A header field or event framing is malformed.
    #[error("malformed segment field {field}: {message}")]
    Malformed {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// An event's JSON does not decode as a [`GlobalEvent`].
    #[error("event {index} of the segment does not decode: {message}")]
    Event {
        /// Its index in the segment, from 0.
        index: u32,
        /// The JSON error.
        message: String,
    },
    /// An event's number or parent does not follow from the segment's first number.
    #[error(
        "event {index} of the segment is numbered {found_seq} (parent {found_parent}), expected {expected_seq} (parent {expected_parent})"
    )]
    Numbering {
        /// Its index in the segment, from 0.
        index: u32,
        /// The number it should have.
        expected_seq: GlobalSeq,
        /// The parent it should have.
        expected_parent: GlobalSeq,
        /// The number it has.
        found_seq: GlobalSeq,
        /// The parent it has.
        found_parent: GlobalSeq,
    },
    /// The segment starts at another number than its key says.
    #[error("segment starts at {found}, its key says {expected}")]
    WrongPosition {
        /// The number in the key.
        expected: GlobalSeq,
        /// The number in the header.
        found: GlobalSeq,
    },
    /// The segment does not chain onto its predecessor.
    #[error(
        "segment does not chain onto its predecessor: it names {found} as previous digest, the previous segment's digest is {expected}"
    )]
    BrokenChain {
        /// The previous segment's digest.
        expected: SegmentDigest,
        /// The digest the header names.
        found: SegmentDigest,
    },
    /// The segment was written to another store (another backend id).
    #[error("segment belongs to another store: backend id {found}, this store's is {expected}")]
    ForeignStore {
        /// This store's backend id.
        expected: String,
        /// The backend id in the header.
        found: String,
    },
    /// The events cannot form a segment (empty, not contiguous, too many, ids too long).
    #[error("cannot encode segment: {message}")]
    Unencodable {
        /// Why.
        message: String,
    },
}

impl Segment {
    /// Checks what only the reader knows: that the segment was read from the key of
    /// `expected_first`, chains onto `prev_digest` (when the reader knows it) and belongs to
    /// the store whose backend id is `backend_id`.
    pub fn check_position(
        &self,
        expected_first: GlobalSeq,
        prev_digest: Option<SegmentDigest>,
        backend_id: &str,
    ) -> Result<(), SegmentError> {
        if self.header.backend_id != backend_id {
            return Err(SegmentError::ForeignStore {
                expected: backend_id.to_owned(),
                found: self.header.backend_id.clone(),
            });
        }
        if self.header.first != expected_first {
            return Err(SegmentError::WrongPosition {
                expected: expected_first,
                found: self.header.first,
            });
        }
        let expected_prev = if expected_first == GlobalSeq::FIRST {
            Some(SegmentDigest::ROOT)
        } else {
            prev_digest
        };
        if let Some(expected) = expected_prev
            && expected != self.header.prev_digest
        {
            return Err(SegmentError::BrokenChain {
                expected,
                found: self.header.prev_digest,
            });
        }
        Ok(())
    }
}

fn unencodable(message: String) -> SegmentError {
    SegmentError::Unencodable { message }
}

/// The most bytes a segment takes besides its events: the fixed header, the longest backend
/// id and writer client id with the client id's length, and the trailer. A segment of events
/// `E` is at most `MAX_OVERHEAD_LEN + sum(event_len(e))` bytes.
pub const MAX_OVERHEAD_LEN: usize =
    FIXED_HEADER_LEN + MAX_BACKEND_ID_LEN + 2 + MAX_CLIENT_ID_LEN + TRAILER_LEN;

/// The bytes `event` takes in a segment: its length prefix and its JSON, exactly as
/// [`encode`] writes it. A writer sizing a batch uses this, not a guess.
pub fn event_len(event: &GlobalEvent) -> Result<usize, SegmentError> {
    let json = serde_json::to_vec(event)
        .map_err(|e| unencodable(format!("event {} does not serialize: {e}", event.seq_num)))?;
    Ok(4 + json.len())
}

/// Encodes `events` (non-empty, contiguous, numbered from their first) as one segment.
pub fn encode(
    writer: &SegmentWriter<'_>,
    events: &[GlobalEvent],
) -> Result<EncodedSegment, SegmentError> {
    let first_event = events
        .first()
        .ok_or_else(|| unencodable("a segment holds at least one event".into()))?;
    let first = first_event.seq_num;
    check_numbering(
        first,
        events
            .iter()
            .map(|event| (event.seq_num, event.parent_seq_num)),
    )
    .map_err(|e| unencodable(e.to_string()))?;
    let count = u32::try_from(events.len())
        .map_err(|_| unencodable(format!("{} events do not fit in one segment", events.len())))?;
    check_writer(writer)?;
    let mut body = Vec::with_capacity(FIXED_HEADER_LEN + 64 * events.len());
    write_header(&mut body, writer, first, count);
    for (index, event) in events.iter().enumerate() {
        let json = serde_json::to_vec(event)
            .map_err(|e| unencodable(format!("event {index} does not serialize: {e}")))?;
        let len = u32::try_from(json.len())
            .map_err(|_| unencodable(format!("event {index} is over 4 GiB")))?;
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(&json);
    }
    Ok(finish(body))
}

/// Encodes `events` as one segment, as [`encode`] does the events they were made of: the
/// same bytes, from JSON already written.
pub fn encode_framed(
    writer: &SegmentWriter<'_>,
    events: &FramedEvents,
) -> Result<EncodedSegment, SegmentError> {
    check_writer(writer)?;
    let Some(first) = events.first() else {
        return Err(unencodable("a segment holds at least one event".into()));
    };
    let header_len = FIXED_HEADER_LEN + writer.backend_id.len() + 2 + writer.client_id.len();
    let mut body = Vec::with_capacity(header_len + events.framed().len() + TRAILER_LEN);
    write_header(&mut body, writer, first, events.count());
    body.extend_from_slice(events.framed());
    Ok(finish(body))
}

/// Refuses a backend id or writer client id that does not fit a segment's header.
fn check_writer(writer: &SegmentWriter<'_>) -> Result<(), SegmentError> {
    if writer.backend_id.is_empty() || writer.backend_id.len() > MAX_BACKEND_ID_LEN {
        return Err(unencodable(format!(
            "backend id must be 1..={MAX_BACKEND_ID_LEN} bytes, got {}",
            writer.backend_id.len()
        )));
    }
    if writer.client_id.len() > MAX_CLIENT_ID_LEN {
        return Err(unencodable(format!(
            "writer client id must be at most {MAX_CLIENT_ID_LEN} bytes, got {}",
            writer.client_id.len()
        )));
    }
    Ok(())
}

/// Writes a segment's header for `count` events from `first` into the empty `body`, its
/// total length left zero ([`finish`] patches it).
fn write_header(body: &mut Vec<u8>, writer: &SegmentWriter<'_>, first: GlobalSeq, count: u32) {
    body.extend_from_slice(&MAGIC);
    body.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes()); // flags
    body.extend_from_slice(&0u64.to_le_bytes()); // total length, patched below
    body.extend_from_slice(&first.0.to_le_bytes());
    body.extend_from_slice(&count.to_le_bytes());
    body.extend_from_slice(&writer.nonce.0);
    body.extend_from_slice(&writer.prev_digest.0);
    // `check_writer` checked that the backend id length fits in a byte.
    body.push(writer.backend_id.len() as u8);
    debug_assert_eq!(body.len(), FIXED_HEADER_LEN);
    body.extend_from_slice(writer.backend_id.as_bytes());
    body.extend_from_slice(&(writer.client_id.len() as u16).to_le_bytes());
    body.extend_from_slice(writer.client_id.as_bytes());
}

/// Patches the total length into `body` (a header and the events) and appends its trailer.
fn finish(mut body: Vec<u8>) -> EncodedSegment {
    let total = (body.len() + TRAILER_LEN) as u64;
    body[12..20].copy_from_slice(&total.to_le_bytes());
    let digest = SegmentDigest(Sha256::digest(&body).into());
    body.extend_from_slice(&digest.0);
    EncodedSegment {
        bytes: Bytes::from(body),
        digest,
    }
}

/// Checks that events numbered `numbers` (each one's number and parent, in order) are
/// numbered `first, first+1, ...`, each the parent of the next.
fn check_numbering(
    first: GlobalSeq,
    numbers: impl IntoIterator<Item = (GlobalSeq, GlobalSeq)>,
) -> Result<(), SegmentError> {
    for (index, (seq_num, parent_seq_num)) in numbers.into_iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let expected_seq = first.0.checked_add(u64::from(index));
        let expected_parent = expected_seq.and_then(|s| s.checked_sub(1));
        let (Some(expected_seq), Some(expected_parent)) = (expected_seq, expected_parent) else {
            return Err(SegmentError::Malformed {
                field: "first",
                message: format!("event numbers from {first} overflow"),
            });
        };
        if seq_num.0 != expected_seq || parent_seq_num.0 != expected_parent {
            return Err(SegmentError::Numbering {
                index,
                expected_seq: GlobalSeq(expected_seq),
                expected_parent: GlobalSeq(expected_parent),
                found_seq: seq_num,
                found_parent: parent_seq_num,
            });
        }
    }
    Ok(())
}

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], SegmentError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(SegmentError::Malformed {
                field,
                message: format!(
                    "needs {len} bytes at offset {}, only {} remain",
                    self.position,
                    self.bytes.len().saturating_sub(self.position)
                ),
            });
        };
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SegmentError> {
        let slice = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, SegmentError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, SegmentError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, SegmentError> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn string(&mut self, len: usize, field: &'static str) -> Result<String, SegmentError> {
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| SegmentError::Malformed {
            field,
            message: format!("not UTF-8: {e}"),
        })
    }
}

/// Decodes and verifies a whole segment: magic, version, length, checksum, header fields,
/// event framing and JSON, and numbering (`first ..= first+count-1`, parent = seq - 1).
pub fn decode(bytes: &[u8]) -> Result<Segment, SegmentError> {
    let mut events = Vec::new();
    let (header, digest) = decode_events(bytes, |index, json| {
        let event: GlobalEvent = serde_json::from_slice(json).map_err(|e| SegmentError::Event {
            index,
            message: e.to_string(),
        })?;
        let numbers = (event.seq_num, event.parent_seq_num);
        events.push(event);
        Ok(numbers)
    })?;
    Ok(Segment {
        header,
        events,
        digest,
    })
}

/// Checks a whole segment exactly as [`decode`] does (every check, the same errors) without
/// keeping its events: each event's JSON is checked to decode as a [`GlobalEvent`] and its
/// numbers are checked, but no event is built (see `segment/check.rs`). For an auditor that
/// reads every segment of a log and needs only its header and digest: `verify`.
///
/// An event in the form `serde_json` writes (every event an eventsync client stored) is read
/// by [`scan_canonical`](crate::event_json::scan_canonical), which takes only JSON that
/// decodes as a [`GlobalEvent`]; any other goes through the parser, so a bad one fails with
/// the parser's message, as in [`decode`].
pub fn check(bytes: &[u8]) -> Result<(SegmentHeader, SegmentDigest), SegmentError> {
    decode_events(bytes, |index, json| {
        if let Some(scanned) = crate::event_json::scan_canonical(json)
            && scanned.len == json.len()
        {
            return Ok((scanned.seq_num, scanned.parent_seq_num));
        }
        serde_json::from_slice::<check::GlobalEvent>(json)
            .map(|event| (event.seq_num, event.parent_seq_num))
            .map_err(|e| SegmentError::Event {
                index,
                message: e.to_string(),
            })
    })
}

/// [`decode`] and [`check`]: the header and checksum, then each event's framing, its JSON
/// read by `event` (given its index and bytes; it returns the event's number and parent),
/// no bytes left over, and the numbering, checked once every event has decoded.
fn decode_events(
    bytes: &[u8],
    mut event: impl FnMut(u32, &[u8]) -> Result<(GlobalSeq, GlobalSeq), SegmentError>,
) -> Result<(SegmentHeader, SegmentDigest), SegmentError> {
    let (header, mut reader, digest) = decode_header_inner(bytes)?;
    let body_end = bytes.len() - TRAILER_LEN;
    let mut numbers = Vec::with_capacity((header.count as usize).min(body_end / 5 + 1));
    for index in 0..header.count {
        let len = reader.u32("event length")? as usize;
        if reader.position.saturating_add(len) > body_end {
            return Err(SegmentError::Malformed {
                field: "event length",
                message: format!("event {index} claims {len} bytes, past the end of the events"),
            });
        }
        let json = reader.take(len, "event")?;
        numbers.push(event(index, json)?);
    }
    if reader.position != body_end {
        return Err(SegmentError::Malformed {
            field: "events",
            message: format!(
                "{} bytes left over after {} events",
                body_end - reader.position,
                header.count
            ),
        });
    }
    check_numbering(header.first, numbers)?;
    Ok((header, digest))
}

/// Decodes and verifies a segment's header and checksum without decoding its events: enough
/// to compare a writer nonce after an ambiguous write, or to learn where the log ends.
pub fn decode_header(bytes: &[u8]) -> Result<(SegmentHeader, SegmentDigest), SegmentError> {
    decode_header_inner(bytes).map(|(header, _, digest)| (header, digest))
}

/// [`decode_header`] of bytes that are, byte for byte and trailer included, a segment whose
/// checksum was checked already (by [`check`] or [`decode`] of the same bytes elsewhere):
/// every check but the hash, which equal bytes would pass again. An auditor that read a
/// segment and then meets its bytes again inside a pack reads them with this.
pub(crate) fn decode_header_of_checked(
    bytes: &[u8],
) -> Result<(SegmentHeader, SegmentDigest), SegmentError> {
    read_header(bytes, false).map(|(header, _, digest)| (header, digest))
}

fn decode_header_inner(
    bytes: &[u8],
) -> Result<(SegmentHeader, Reader<'_>, SegmentDigest), SegmentError> {
    read_header(bytes, true)
}

/// The header and trailer of `bytes`, and a reader on the first event; the checksum is
/// checked only when `hash` is set.
fn read_header(
    bytes: &[u8],
    hash: bool,
) -> Result<(SegmentHeader, Reader<'_>, SegmentDigest), SegmentError> {
    let actual = bytes.len() as u64;
    if bytes.len() < 10 {
        return if bytes.len() >= 8 && bytes[..8] != MAGIC {
            Err(SegmentError::BadMagic)
        } else {
            Err(SegmentError::Truncated {
                expected: (FIXED_HEADER_LEN + TRAILER_LEN) as u64,
                actual,
            })
        };
    }
    if bytes[..8] != MAGIC {
        return Err(SegmentError::BadMagic);
    }
    // The version comes before everything else, so a future format is a clear error and not
    // a checksum or length complaint.
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(SegmentError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let min = FIXED_HEADER_LEN + TRAILER_LEN;
    if bytes.len() < 20 {
        return Err(SegmentError::Truncated {
            expected: min as u64,
            actual,
        });
    }
    let mut total = [0u8; 8];
    total.copy_from_slice(&bytes[12..20]);
    let expected = u64::from_le_bytes(total);
    if actual < expected || bytes.len() < min {
        return Err(SegmentError::Truncated {
            expected: expected.max(min as u64),
            actual,
        });
    }
    if actual > expected {
        return Err(SegmentError::LengthMismatch { expected, actual });
    }
    let body_end = bytes.len() - TRAILER_LEN;
    let mut stored = [0u8; 32];
    stored.copy_from_slice(&bytes[body_end..]);
    let stored = SegmentDigest(stored);
    let computed = if hash {
        SegmentDigest(Sha256::digest(&bytes[..body_end]).into())
    } else {
        stored
    };
    if stored != computed {
        return Err(SegmentError::ChecksumMismatch { stored, computed });
    }

    let mut reader = Reader {
        bytes: &bytes[..body_end],
        position: 10,
    };
    let flags = reader.u16("flags")?;
    if flags != 0 {
        return Err(SegmentError::Malformed {
            field: "flags",
            message: format!("unknown flags {flags:#06x}"),
        });
    }
    reader.u64("total length")?;
    let first = GlobalSeq(reader.u64("first")?);
    let count = reader.u32("count")?;
    if first < GlobalSeq::FIRST {
        return Err(SegmentError::Malformed {
            field: "first",
            message: "the first event number is 0; logs start at 1".into(),
        });
    }
    if count == 0 {
        return Err(SegmentError::Malformed {
            field: "count",
            message: "a segment holds at least one event".into(),
        });
    }
    if first.0.checked_add(u64::from(count)).is_none() {
        return Err(SegmentError::Malformed {
            field: "count",
            message: format!("{count} events from {first} overflow the numbering"),
        });
    }
    let writer_nonce = WriterNonce(reader.array("writer nonce")?);
    let prev_digest = SegmentDigest(reader.array("previous digest")?);
    let backend_len = reader.array::<1>("backend id length")?[0] as usize;
    if backend_len == 0 {
        return Err(SegmentError::Malformed {
            field: "backend id length",
            message: "the backend id is empty".into(),
        });
    }
    let backend_id = reader.string(backend_len, "backend id")?;
    let client_len = reader.u16("writer client id length")? as usize;
    if client_len > MAX_CLIENT_ID_LEN {
        return Err(SegmentError::Malformed {
            field: "writer client id length",
            message: format!("{client_len} bytes, over the limit of {MAX_CLIENT_ID_LEN}"),
        });
    }
    let writer_client_id = reader.string(client_len, "writer client id")?;
    let header = SegmentHeader {
        version,
        first,
        count,
        writer_nonce,
        prev_digest,
        backend_id,
        writer_client_id,
    };
    Ok((header, reader, stored))
}

mod check;
#[cfg(test)]
mod tests;
