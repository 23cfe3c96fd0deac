//! [`decode_json`]: a segment checked as [`decode`](super::decode) checks it, its events
//! kept as JSON instead of built: an export writes each event's JSON as `serde_json` writes
//! it, which is what the segment holds whenever its writer was `serde_json` (eventsync's own
//! [`encode`](super::encode)).

use std::ops::Range;

use bytes::Bytes;

use super::{Segment, SegmentDigest, SegmentError, SegmentHeader, decode_events};
use crate::event_json::scan_canonical;
use crate::{GlobalEvent, GlobalSeq};

/// A segment checked like [`decode`](super::decode) (checksum, header, framing, every
/// event's JSON, numbering), each event kept as the JSON `serde_json` writes for it.
#[derive(Debug, Clone)]
pub struct SegmentJson {
    /// Its header.
    pub header: SegmentHeader,
    /// Its trailer: the SHA-256 of every byte before it.
    pub digest: SegmentDigest,
    bytes: Bytes,
    events: Vec<EventJson>,
}

/// Where an event's JSON is.
#[derive(Debug, Clone)]
enum EventJson {
    /// In the segment's bytes, as `serde_json` writes the event.
    Stored(Range<usize>),
    /// Written again by `serde_json` from the event parsed out of the segment (its JSON
    /// there is in another form).
    Written(Vec<u8>),
}

impl SegmentJson {
    /// Each event's JSON as `serde_json` writes the event, in order: what
    /// `serde_json::to_vec` gives for each event [`decode`](super::decode) would return.
    pub fn events(&self) -> impl Iterator<Item = &[u8]> {
        self.events.iter().map(|event| match event {
            EventJson::Stored(range) => &self.bytes[range.clone()],
            EventJson::Written(json) => json.as_slice(),
        })
    }

    /// [`Segment::check_position`] of this segment.
    pub fn check_position(
        &self,
        first: GlobalSeq,
        prev_digest: Option<SegmentDigest>,
        backend_id: &str,
    ) -> Result<(), SegmentError> {
        self.without_events()
            .check_position(first, prev_digest, backend_id)
    }

    /// The segment's header and digest as a [`Segment`] without events.
    pub fn without_events(&self) -> Segment {
        Segment {
            header: self.header.clone(),
            events: Vec::new(),
            digest: self.digest,
        }
    }
}

/// Decodes and verifies a whole segment as [`decode`](super::decode) does, keeping each
/// event as JSON: an event in the form `serde_json` writes
/// ([`scan_canonical`](crate::event_json::scan_canonical)) is checked by a scan and kept as
/// the segment's bytes; any other is parsed (failing as [`decode`](super::decode) fails on
/// it) and written again.
pub fn decode_json(bytes: Bytes) -> Result<SegmentJson, SegmentError> {
    let mut events = Vec::new();
    let (header, digest) = decode_events(&bytes, |index, json| {
        let (seq_num, parent_seq_num, event) = match scan_canonical(json) {
            Some(scanned) if scanned.len == json.len() => {
                // Where the event's JSON starts in the segment's bytes.
                let start = json.as_ptr() as usize - bytes.as_ptr() as usize;
                (
                    scanned.seq_num,
                    scanned.parent_seq_num,
                    EventJson::Stored(start..start + json.len()),
                )
            }
            _ => {
                let not_json = |e: serde_json::Error| SegmentError::Event {
                    index,
                    message: e.to_string(),
                };
                let event: GlobalEvent = serde_json::from_slice(json).map_err(not_json)?;
                let written = serde_json::to_vec(&event).map_err(not_json)?;
                (
                    event.seq_num,
                    event.parent_seq_num,
                    EventJson::Written(written),
                )
            }
        };
        events.push(event);
        Ok((seq_num, parent_seq_num))
    })?;
    Ok(SegmentJson {
        header,
        digest,
        bytes,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{SegmentWriter, TRAILER_LEN, WriterNonce, decode, encode};

    fn events() -> Vec<GlobalEvent> {
        (5..=8)
            .map(|seq| GlobalEvent {
                seq_num: GlobalSeq(seq),
                parent_seq_num: GlobalSeq(seq - 1),
                name: "v1.TodoCreated".into(),
                args: serde_json::json!({"text": format!("t{seq}"), "id": seq, "x": 0.5}),
                client_id: "c".into(),
                session_id: "s".into(),
            })
            .collect()
    }

    fn writer() -> SegmentWriter<'static> {
        SegmentWriter {
            nonce: WriterNonce([3; 16]),
            prev_digest: SegmentDigest([9; 32]),
            backend_id: "b",
            client_id: "c",
        }
    }

    /// A segment like `encode` makes, with each event's JSON given by `json` instead.
    fn segment_of_json(first: u64, json: &[Vec<u8>]) -> Bytes {
        use sha2::{Digest as _, Sha256};
        let base = encode(&writer(), &events()[..1]).unwrap().bytes;
        let header_len =
            base.len() - TRAILER_LEN - 4 - serde_json::to_vec(&events()[0]).unwrap().len();
        let mut body = base[..header_len].to_vec();
        body[20..28].copy_from_slice(&first.to_le_bytes());
        body[28..32].copy_from_slice(&(json.len() as u32).to_le_bytes());
        for event in json {
            body.extend_from_slice(&(event.len() as u32).to_le_bytes());
            body.extend_from_slice(event);
        }
        let total = (body.len() + TRAILER_LEN) as u64;
        body[12..20].copy_from_slice(&total.to_le_bytes());
        let digest: [u8; 32] = Sha256::digest(&body).into();
        body.extend_from_slice(&digest);
        Bytes::from(body)
    }

    #[test]
    fn test_the_json_of_a_segment_is_what_serde_json_writes_for_its_events() {
        let events = events();
        let encoded = encode(&writer(), &events).unwrap();
        let json = decode_json(encoded.bytes.clone()).unwrap();
        let decoded = decode(&encoded.bytes).unwrap();
        assert_eq!(
            (json.header.clone(), json.digest),
            (decoded.header, decoded.digest)
        );
        let written: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap())
            .collect();
        assert_eq!(
            json.events().map(<[u8]>::to_vec).collect::<Vec<_>>(),
            written
        );
        assert!(
            json.check_position(GlobalSeq(5), Some(SegmentDigest([9; 32])), "b")
                .is_ok()
        );
        assert!(json.check_position(GlobalSeq(6), None, "b").is_err());
    }

    #[test]
    fn test_events_in_another_form_are_written_again_and_bad_ones_refused_as_decode_does() {
        let events = events();
        let mut json: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap())
            .collect();
        // Pretty-printed, keys out of order: valid, not the form serde_json writes.
        json[1] = serde_json::to_vec_pretty(&events[1]).unwrap();
        json[2] = String::from_utf8(json[2].clone())
            .unwrap()
            .replace(
                r#"{"seqNum":7,"parentSeqNum":6"#,
                r#"{"parentSeqNum":6,"seqNum":7"#,
            )
            .into_bytes();
        let bytes = segment_of_json(5, &json);
        let read = decode_json(bytes.clone()).unwrap();
        let expected: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap())
            .collect();
        assert_eq!(
            read.events().map(<[u8]>::to_vec).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(decode(&bytes).unwrap().events, events);

        // An event that is no event, and one out of place: refused like decode refuses them.
        let mut bad = json.clone();
        bad[3] = b"{\"seqNum\":8}".to_vec();
        let bytes = segment_of_json(5, &bad);
        assert!(matches!(
            decode_json(bytes.clone()),
            Err(SegmentError::Event { index: 3, .. })
        ));
        assert!(matches!(
            decode(&bytes),
            Err(SegmentError::Event { index: 3, .. })
        ));
        let bytes = segment_of_json(6, &json);
        assert!(matches!(
            decode_json(bytes.clone()),
            Err(SegmentError::Numbering { index: 0, .. })
        ));
        assert!(matches!(
            decode(&bytes),
            Err(SegmentError::Numbering { index: 0, .. })
        ));
    }
}
