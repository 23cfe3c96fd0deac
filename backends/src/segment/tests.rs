use super::*;

pub(crate) fn event(seq: u64) -> GlobalEvent {
    GlobalEvent {
        seq_num: GlobalSeq(seq),
        parent_seq_num: GlobalSeq(seq - 1),
        name: "v1.TodoCreated".into(),
        args: serde_json::json!({"id": format!("t{seq}"), "text": "buy milk"}),
        client_id: "client-a".into(),
        session_id: "session-1".into(),
    }
}

fn writer(prev: SegmentDigest) -> SegmentWriter<'static> {
    SegmentWriter {
        nonce: WriterNonce([7; 16]),
        prev_digest: prev,
        backend_id: "backend-1",
        client_id: "client-a",
    }
}

fn sample() -> (Vec<GlobalEvent>, EncodedSegment) {
    let events: Vec<_> = (5..=8).map(event).collect();
    let encoded = encode(&writer(SegmentDigest([3; 32])), &events).unwrap();
    (events, encoded)
}

#[test]
fn test_encode_decode_round_trips_every_field() {
    let (events, encoded) = sample();
    let segment = decode(&encoded.bytes).unwrap();
    assert_eq!(segment.events, events);
    assert_eq!(segment.digest, encoded.digest);
    assert_eq!(segment.header.first, GlobalSeq(5));
    assert_eq!(segment.header.count, 4);
    assert_eq!(segment.header.last(), GlobalSeq(8));
    assert_eq!(segment.header.writer_nonce, WriterNonce([7; 16]));
    assert_eq!(segment.header.prev_digest, SegmentDigest([3; 32]));
    assert_eq!(segment.header.backend_id, "backend-1");
    assert_eq!(segment.header.writer_client_id, "client-a");
    assert_eq!(segment.header.version, FORMAT_VERSION);
}

#[test]
fn test_trailer_is_sha256_of_everything_before_it() {
    let (_, encoded) = sample();
    let bytes = &encoded.bytes;
    let body = &bytes[..bytes.len() - TRAILER_LEN];
    let expected: [u8; 32] = Sha256::digest(body).into();
    assert_eq!(&bytes[bytes.len() - TRAILER_LEN..], &expected);
    assert_eq!(encoded.digest.0, expected);
}

#[test]
fn test_header_bytes_sit_where_format_md_says() {
    let (_, encoded) = sample();
    let b = &encoded.bytes;
    assert_eq!(&b[0..8], b"ESYNCSEG");
    assert_eq!(u16::from_le_bytes([b[8], b[9]]), 1);
    assert_eq!(u16::from_le_bytes([b[10], b[11]]), 0);
    assert_eq!(
        u64::from_le_bytes(b[12..20].try_into().unwrap()),
        b.len() as u64
    );
    assert_eq!(u64::from_le_bytes(b[20..28].try_into().unwrap()), 5);
    assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 4);
    assert_eq!(&b[32..48], &[7; 16]);
    assert_eq!(&b[48..80], &[3; 32]);
    assert_eq!(b[80] as usize, "backend-1".len());
    assert_eq!(&b[81..90], b"backend-1");
    assert_eq!(u16::from_le_bytes([b[90], b[91]]), 8);
    assert_eq!(&b[92..100], b"client-a");
    let first_len = u32::from_le_bytes(b[100..104].try_into().unwrap()) as usize;
    let first: GlobalEvent = serde_json::from_slice(&b[104..104 + first_len]).unwrap();
    assert_eq!(first, event(5));
}

#[test]
fn test_every_flipped_byte_is_detected() {
    let (_, encoded) = sample();
    for i in 0..encoded.bytes.len() {
        let mut bytes = encoded.bytes.to_vec();
        bytes[i] ^= 0x01;
        assert!(decode(&bytes).is_err(), "flipping byte {i} went unnoticed");
    }
}

#[test]
fn test_every_truncation_is_detected_without_panic() {
    let (_, encoded) = sample();
    for len in 0..encoded.bytes.len() {
        let err = decode(&encoded.bytes[..len]).unwrap_err();
        assert!(
            matches!(err, SegmentError::Truncated { .. }),
            "cut at {len}: {err}"
        );
    }
}

#[test]
fn test_extra_bytes_are_a_length_mismatch() {
    let (_, encoded) = sample();
    let mut bytes = encoded.bytes.to_vec();
    bytes.push(0);
    assert!(matches!(
        decode(&bytes),
        Err(SegmentError::LengthMismatch { .. })
    ));
}

#[test]
fn test_future_version_is_a_clear_error() {
    let (_, encoded) = sample();
    let mut bytes = encoded.bytes.to_vec();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    let err = decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        SegmentError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
    assert!(err.to_string().contains("upgrade"));
}

#[test]
fn test_bad_magic_is_reported_as_such() {
    assert_eq!(decode(b"{\"json\": true}\n"), Err(SegmentError::BadMagic));
}

/// Re-seals a tampered body with a valid checksum, so the checks behind it are reached.
fn reseal(mut body: Vec<u8>) -> Vec<u8> {
    let total = (body.len() + TRAILER_LEN) as u64;
    body[12..20].copy_from_slice(&total.to_le_bytes());
    let digest: [u8; 32] = Sha256::digest(&body).into();
    body.extend_from_slice(&digest);
    body
}

#[test]
fn test_misnumbered_events_are_refused_even_with_a_valid_checksum() {
    let (_, encoded) = sample();
    let mut body = encoded.bytes[..encoded.bytes.len() - TRAILER_LEN].to_vec();
    body[20..28].copy_from_slice(&6u64.to_le_bytes()); // claims to start at 6
    let err = decode(&reseal(body)).unwrap_err();
    assert!(
        matches!(err, SegmentError::Numbering { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn test_wrong_count_is_refused_even_with_a_valid_checksum() {
    let (_, encoded) = sample();
    for count in [0u32, 3, 5, u32::MAX] {
        let mut body = encoded.bytes[..encoded.bytes.len() - TRAILER_LEN].to_vec();
        body[28..32].copy_from_slice(&count.to_le_bytes());
        assert!(decode(&reseal(body)).is_err(), "count {count} accepted");
    }
}

#[test]
fn test_check_position_catches_key_chain_and_store() {
    let (_, encoded) = sample();
    let segment = decode(&encoded.bytes).unwrap();
    let prev = SegmentDigest([3; 32]);
    assert_eq!(
        segment.check_position(GlobalSeq(5), Some(prev), "backend-1"),
        Ok(())
    );
    assert_eq!(
        segment.check_position(GlobalSeq(5), None, "backend-1"),
        Ok(())
    );
    assert!(matches!(
        segment.check_position(GlobalSeq(4), Some(prev), "backend-1"),
        Err(SegmentError::WrongPosition { .. })
    ));
    assert!(matches!(
        segment.check_position(GlobalSeq(5), Some(SegmentDigest([9; 32])), "backend-1"),
        Err(SegmentError::BrokenChain { .. })
    ));
    assert!(matches!(
        segment.check_position(GlobalSeq(5), Some(prev), "backend-2"),
        Err(SegmentError::ForeignStore { .. })
    ));
}

#[test]
fn test_first_segment_must_chain_to_root() {
    let events = vec![event(1)];
    let encoded = encode(&writer(SegmentDigest([1; 32])), &events).unwrap();
    let segment = decode(&encoded.bytes).unwrap();
    assert!(matches!(
        segment.check_position(GlobalSeq(1), None, "backend-1"),
        Err(SegmentError::BrokenChain { .. })
    ));
}

#[test]
fn test_encode_refuses_gaps_and_empty_batches() {
    let w = writer(SegmentDigest::ROOT);
    assert!(matches!(
        encode(&w, &[]),
        Err(SegmentError::Unencodable { .. })
    ));
    let gap = vec![event(1), event(3)];
    assert!(matches!(
        encode(&w, &gap),
        Err(SegmentError::Unencodable { .. })
    ));
}

#[test]
fn test_decode_header_matches_full_decode() {
    let (_, encoded) = sample();
    let (header, digest) = decode_header(&encoded.bytes).unwrap();
    let segment = decode(&encoded.bytes).unwrap();
    assert_eq!(header, segment.header);
    assert_eq!(digest, segment.digest);
}

#[test]
fn test_random_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let (_, encoded) = sample();
    for _ in 0..2000 {
        let mut bytes = encoded.bytes.to_vec();
        let edits = rng.random_range(1..6);
        for _ in 0..edits {
            let i = rng.random_range(0..bytes.len());
            bytes[i] = rng.random();
        }
        let cut = rng.random_range(0..=bytes.len());
        let _ = decode(&reseal(bytes[..cut.max(20).min(bytes.len())].to_vec()));
        let _ = decode(&bytes[..cut]);
    }
}
