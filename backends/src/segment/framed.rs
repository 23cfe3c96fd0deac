//! [`FramedEvents`]: a run of events already in a segment's framing (each a length and its
//! JSON), so that a segment is encoded from JSON written once ([`encode_framed`]).
//!
//! [`encode_framed`]: super::encode_framed

use super::{SegmentError, unencodable};
use crate::{GlobalEvent, GlobalSeq};

/// Consecutive events in a segment's framing: each a 4-byte little-endian length and the
/// event's JSON exactly as [`encode`](super::encode) writes it, numbered from the first
/// without gaps. [`encode_framed`](super::encode_framed) of them is the segment that
/// [`encode`](super::encode) makes of the same events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FramedEvents {
    /// The first event's number (meaningless while empty).
    first: GlobalSeq,
    count: u32,
    /// The first event's client id: a segment's writer client id.
    client_id: String,
    framed: Vec<u8>,
}

impl FramedEvents {
    /// No events.
    pub fn new() -> FramedEvents {
        FramedEvents::default()
    }

    /// No events, with room for `bytes` of framed events.
    pub fn with_capacity(bytes: usize) -> FramedEvents {
        FramedEvents {
            framed: Vec::with_capacity(bytes),
            ..FramedEvents::default()
        }
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many events it holds.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The first event's number (`None` while empty).
    pub fn first(&self) -> Option<GlobalSeq> {
        (!self.is_empty()).then_some(self.first)
    }

    /// The last event's number (`None` while empty).
    pub fn last(&self) -> Option<GlobalSeq> {
        (!self.is_empty()).then(|| GlobalSeq(self.first.0 + u64::from(self.count) - 1))
    }

    /// The first event's client id (empty while empty).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The framed events' bytes, what a segment holds between its header and its trailer.
    pub fn framed(&self) -> &[u8] {
        &self.framed
    }

    /// Appends `event`, written as [`encode`](super::encode) writes it; it must follow the
    /// last one (number and parent).
    pub fn push_event(&mut self, event: &GlobalEvent) -> Result<(), SegmentError> {
        let json = serde_json::to_vec(event)
            .map_err(|e| unencodable(format!("event {} does not serialize: {e}", event.seq_num)))?;
        self.push_json(event.seq_num, event.parent_seq_num, &json, || {
            Some(event.client_id.clone())
        })
    }

    /// Appends the event numbered `seq_num` whose JSON `json` is exactly what `serde_json`
    /// writes for it (as [`scan_canonical`](crate::event_json::scan_canonical) tells), its
    /// client id `client_id`.
    pub(crate) fn push_written(
        &mut self,
        seq_num: GlobalSeq,
        parent_seq_num: GlobalSeq,
        client_id: &str,
        json: &[u8],
    ) -> Result<(), SegmentError> {
        self.push_json(seq_num, parent_seq_num, json, || Some(client_id.to_owned()))
    }

    fn push_json(
        &mut self,
        seq_num: GlobalSeq,
        parent_seq_num: GlobalSeq,
        json: &[u8],
        client_id: impl FnOnce() -> Option<String>,
    ) -> Result<(), SegmentError> {
        let expected = match self.last() {
            Some(last) => last.next(),
            None => seq_num,
        };
        if seq_num != expected || parent_seq_num.0.checked_add(1) != Some(seq_num.0) {
            return Err(unencodable(format!(
                "event {seq_num} with parent {parent_seq_num} does not follow {}",
                GlobalSeq(expected.0.saturating_sub(1))
            )));
        }
        let count = self
            .count
            .checked_add(1)
            .ok_or_else(|| unencodable("too many events for one segment".into()))?;
        let len = u32::try_from(json.len())
            .map_err(|_| unencodable(format!("event {seq_num} is over 4 GiB")))?;
        if self.is_empty() {
            self.first = seq_num;
            self.client_id =
                client_id().ok_or_else(|| unencodable(format!("event {seq_num}: its clientId")))?;
        }
        self.framed.extend_from_slice(&len.to_le_bytes());
        self.framed.extend_from_slice(json);
        self.count = count;
        Ok(())
    }

    /// The events, parsed from their JSON. A frame cut short, or a count that does not match
    /// the frames, is an error naming the event where it happened, never fewer events.
    pub fn events(&self) -> Result<Vec<GlobalEvent>, SegmentError> {
        events_of(&self.framed, self.count)
    }
}

/// Parses `count` length-framed events from `framed` (see [`FramedEvents::events`]).
fn events_of(framed: &[u8], count: u32) -> Result<Vec<GlobalEvent>, SegmentError> {
    let mut events = Vec::with_capacity(count as usize);
    let mut rest = framed;
    while !rest.is_empty() {
        let index = events.len() as u32;
        let cut = |what: &str| SegmentError::Event {
            index,
            message: format!("the framed events end inside {what}"),
        };
        let (len, after) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| cut("a length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > after.len() {
            return Err(cut("the event's JSON"));
        }
        let (json, after) = after.split_at(len);
        let event = serde_json::from_slice(json).map_err(|e| SegmentError::Event {
            index,
            message: e.to_string(),
        })?;
        events.push(event);
        rest = after;
    }
    if events.len() != count as usize {
        return Err(SegmentError::Event {
            index: events.len() as u32,
            message: format!("{} framed events, not the {count} counted", events.len()),
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_json::scan_canonical;
    use crate::segment::{SegmentWriter, WriterNonce, decode, encode, encode_framed};

    fn event(seq: u64, args: serde_json::Value) -> GlobalEvent {
        GlobalEvent {
            seq_num: GlobalSeq(seq),
            parent_seq_num: GlobalSeq(seq - 1),
            name: "v1.TodoCreated".into(),
            args,
            client_id: if seq == 4 { "c\"4".into() } else { "c".into() },
            session_id: "s".into(),
        }
    }

    #[test]
    fn test_a_segment_of_framed_events_is_the_segment_of_the_events() {
        let events: Vec<_> = (4..=7)
            .map(|seq| event(seq, serde_json::json!({"id": format!("t{seq}"), "n": 1.5})))
            .collect();
        let writer = SegmentWriter {
            nonce: WriterNonce([7; 16]),
            prev_digest: crate::segment::SegmentDigest([1; 32]),
            backend_id: "b",
            client_id: "c\"4",
        };
        let mut framed = FramedEvents::new();
        for (index, event) in events.iter().enumerate() {
            if index % 2 == 0 {
                framed.push_event(event).unwrap();
            } else {
                let json = serde_json::to_vec(event).unwrap();
                assert!(scan_canonical(&json).is_some());
                framed
                    .push_written(event.seq_num, event.parent_seq_num, &event.client_id, &json)
                    .unwrap();
            }
        }
        assert_eq!(framed.client_id(), "c\"4");
        assert_eq!(
            (framed.first(), framed.last()),
            (Some(GlobalSeq(4)), Some(GlobalSeq(7)))
        );
        let from_framed = encode_framed(&writer, &framed).unwrap();
        let from_events = encode(&writer, &events).unwrap();
        assert_eq!(from_framed.bytes, from_events.bytes);
        assert_eq!(from_framed.digest, from_events.digest);
        assert_eq!(decode(&from_framed.bytes).unwrap().events, events);
        assert_eq!(framed.events().unwrap(), events);
    }

    #[test]
    fn test_framed_events_refuse_a_gap_or_a_wrong_parent() {
        let mut framed = FramedEvents::new();
        framed.push_event(&event(1, serde_json::json!(1))).unwrap();
        assert!(framed.push_event(&event(3, serde_json::json!(1))).is_err());
        let mut orphan = event(2, serde_json::json!(1));
        orphan.parent_seq_num = GlobalSeq(0);
        assert!(framed.push_event(&orphan).is_err());
        assert_eq!(framed.count(), 1);
        let writer = SegmentWriter {
            nonce: WriterNonce([0; 16]),
            prev_digest: crate::segment::SegmentDigest([0; 32]),
            backend_id: "b",
            client_id: "c",
        };
        assert!(encode_framed(&writer, &FramedEvents::new()).is_err());
    }

    #[test]
    fn test_framed_events_cut_short_are_an_error_not_fewer_events() {
        let mut batch = FramedEvents::new();
        batch
            .push_event(&event(1, serde_json::json!({"id": "a"})))
            .unwrap();
        batch
            .push_event(&event(2, serde_json::json!({"id": "b"})))
            .unwrap();
        assert_eq!(batch.events().unwrap().len(), 2);
        let framed = batch.framed();
        // Cut inside the second event's JSON, inside its length, and right after the first.
        let first_end = 4 + u32::from_le_bytes(framed[..4].try_into().unwrap()) as usize;
        for cut in [framed.len() - 3, first_end + 2, first_end] {
            let error = events_of(&framed[..cut], 2).unwrap_err();
            assert!(
                matches!(error, SegmentError::Event { index: 1, .. }),
                "cut at {cut}: {error:?}"
            );
        }
        // A count the frames do not match.
        assert!(events_of(framed, 3).is_err());
        assert!(events_of(framed, 1).is_err());
    }
}
