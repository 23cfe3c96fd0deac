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

/// A one-event segment at `first` whose event is the JSON text `json`, sealed (valid length
/// and checksum), so that only the event's own checks can refuse it.
fn one_event_segment(first: u64, json: &str) -> Vec<u8> {
    let encoded = encode(&writer(SegmentDigest::ROOT), &[event(first)]).unwrap();
    // The header ends where the first event's length prefix starts.
    let header_len =
        encoded.bytes.len() - TRAILER_LEN - 4 - serde_json::to_vec(&event(first)).unwrap().len();
    let mut body = encoded.bytes[..header_len].to_vec();
    body.extend_from_slice(&(json.len() as u32).to_le_bytes());
    body.extend_from_slice(json.as_bytes());
    reseal(body)
}

/// `check` says what `decode` says, error for error: it is `decode` without building events.
fn assert_check_agrees(bytes: &[u8]) {
    let checked = check(bytes);
    match decode(bytes) {
        Ok(segment) => assert_eq!(checked, Ok((segment.header, segment.digest))),
        Err(error) => assert_eq!(checked, Err(error)),
    }
}

#[test]
fn test_check_accepts_what_decode_accepts() {
    let (_, encoded) = sample();
    let (header, digest) = check(&encoded.bytes).unwrap();
    assert_eq!(header.first, GlobalSeq(5));
    assert_eq!(digest, encoded.digest);
    assert_check_agrees(&encoded.bytes);
}

#[test]
fn test_check_refuses_each_event_decode_refuses_with_the_same_error() {
    let good = r#"{"seqNum":1,"parentSeqNum":0,"name":"v1.T","args":{"id":"t1","n":[1,2.5,-3,true,null,{"a":"\u00e9\n"}]},"clientId":"c","sessionId":"s"}"#;
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<String> = vec![
        good.to_owned(),
        // An event as a JSON array: a derived struct takes one.
        r#"[1,0,"v1.T",{},"c","s"]"#.to_owned(),
        good.replace(r#""name":"v1.T""#, r#""name":7"#),
        good.replace(r#""clientId":"c""#, r#""clientId":null"#),
        good.replace(r#","sessionId":"s""#, ""),
        good.replace(r#""sessionId":"s""#, r#""sessionId":"s","extra":1"#),
        good.replace(r#""sessionId":"s""#, r#""sessionId":"s","name":"again""#),
        good.replace(r#""seqNum":1"#, r#""seqNum":-1"#),
        good.replace(r#""seqNum":1"#, r#""seqNum":2"#),
        good.replace(r#""parentSeqNum":0"#, r#""parentSeqNum":"0""#),
        // Args: numbers out of range, bad escapes, a raw-value key, nesting past the limit.
        good.replace("2.5", "1e400"),
        good.replace("2.5", "-1e400"),
        good.replace("2.5", "123456789012345678901234567890"),
        good.replace(r#"\u00e9"#, r#"\ud800"#),
        good.replace(r#"\n"#, r#"\q"#),
        good.replace(r#"{"a""#, r#"{"$serde_json::private::RawValue":"[1,2]""#),
        good.replace(r#"{"a""#, r#"{"$serde_json::private::RawValue":"[1,""#),
        good.replace(r#"{"a""#, r#"{"$serde_json::private::RawValue":5"#),
        good.replace(r#"{"id""#, r#"{"$serde_json::private::RawValue":"{}","id""#),
        good.replace(r#""args":{"#, &format!(r#""args":{{"deep":{deep},"#)),
        good.replace(r#""id":"t1""#, r#""id":"t1","id":"t2""#),
        good.replace(r#""id":"t1""#, r#"1:"t1""#),
        good.replace("}", ""),
        format!("{good} "),
        format!("{good}x"),
        String::new(),
    ];
    let mut refused = 0;
    for json in &cases {
        let bytes = one_event_segment(1, json);
        assert_check_agrees(&bytes);
        refused += usize::from(decode(&bytes).is_err());
    }
    // All but five are refusals (the good event, its array form, a raw-value key holding
    // JSON, a duplicate key in the args, trailing white space): the agreement above is not
    // only on good events.
    assert_eq!(refused, cases.len() - 5, "{refused} of {}", cases.len());
    // Invalid UTF-8 inside a string.
    let mut bytes = one_event_segment(1, good);
    let at = bytes.windows(4).position(|w| w == b"v1.T").unwrap();
    bytes[at + 1] = 0xff;
    let body = bytes[..bytes.len() - TRAILER_LEN].to_vec();
    let bytes = reseal(body);
    assert!(decode(&bytes).is_err());
    assert_check_agrees(&bytes);
}

#[test]
fn test_check_agrees_with_decode_on_random_edits_behind_a_valid_checksum() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let (_, encoded) = sample();
    let body = &encoded.bytes[..encoded.bytes.len() - TRAILER_LEN];
    let mut refused = 0;
    for _ in 0..3000 {
        let mut edited = body.to_vec();
        for _ in 0..rng.random_range(1..4) {
            // Mostly inside the events, where the JSON checks are.
            let i = rng.random_range(FIXED_HEADER_LEN..edited.len());
            edited[i] = match rng.random_range(0..4) {
                0 => rng.random(),
                1 => b'"',
                2 => b'1',
                _ => b'}',
            };
        }
        let bytes = reseal(edited);
        refused += usize::from(decode(&bytes).is_err());
        assert_check_agrees(&bytes);
    }
    assert!(refused > 1000, "only {refused} of 3000 edits refused");
}
