//! The segment decoder on arbitrary bytes, twice: as given (almost always stopped by the
//! magic, length or checksum), and resealed (magic, version, length and checksum made valid)
//! so that the header, framing, JSON and numbering checks behind the checksum are reached.
//! Whatever decodes must be self-consistent and survive an encode/decode round trip, and
//! `segment::check` must say what `segment::decode` says.

#![no_main]

use eventsync_backends::GlobalSeq;
use eventsync_backends::segment::{
    self, FORMAT_VERSION, MAGIC, SegmentDigest, SegmentWriter, TRAILER_LEN,
};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn check(bytes: &[u8]) {
    let header = segment::decode_header(bytes);
    // `check` (verify's reader) is `decode` without building the events: the same verdict,
    // error for error.
    let checked = segment::check(bytes);
    let decoded = match segment::decode(bytes) {
        Ok(decoded) => decoded,
        Err(error) => {
            assert_eq!(checked, Err(error));
            return;
        }
    };
    assert_eq!(checked, Ok((decoded.header.clone(), decoded.digest)));
    let (header, digest) = header.expect("decode succeeded, so the header decodes");
    assert_eq!(header, decoded.header);
    assert_eq!(digest, decoded.digest);
    assert_eq!(decoded.events.len() as u64, u64::from(header.count));
    assert!(header.first >= GlobalSeq::FIRST);
    for (index, event) in decoded.events.iter().enumerate() {
        assert_eq!(event.seq_num.0, header.first.0 + index as u64);
        assert_eq!(event.parent_seq_num.0 + 1, event.seq_num.0);
    }
    assert_eq!(
        decoded.events.last().map(|e| e.seq_num),
        Some(header.last())
    );
    // What decodes re-encodes (the writer's fields are in the header) to an equal segment.
    let writer = SegmentWriter {
        nonce: header.writer_nonce,
        prev_digest: header.prev_digest,
        backend_id: &header.backend_id,
        client_id: &header.writer_client_id,
    };
    let encoded = segment::encode(&writer, &decoded.events).expect("a decoded segment re-encodes");
    let again = segment::decode(&encoded.bytes).expect("a re-encoded segment decodes");
    assert_eq!(again.header, decoded.header);
    assert_eq!(again.events, decoded.events);
    // The reader-side checks never panic either.
    let _ = decoded.check_position(header.first, Some(SegmentDigest::ROOT), &header.backend_id);
    let _ = decoded.check_position(GlobalSeq::FIRST, None, "other");
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 20 {
        let mut body = data.to_vec();
        body[..8].copy_from_slice(&MAGIC);
        body[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let total = (body.len() + TRAILER_LEN) as u64;
        body[12..20].copy_from_slice(&total.to_le_bytes());
        let digest: [u8; 32] = Sha256::digest(&body).into();
        body.extend_from_slice(&digest);
        check(&body);
    }
});
