//! [`read_export`]: walks an export file with serde's `DeserializeSeed`, handing each event
//! to a callback as soon as it is parsed and checked, so memory stays flat however long the
//! file is.
//!
//! Memory is bounded twice. The reader under the JSON parser counts bytes and refuses to
//! read past a budget: each event gets twice the event limit in raw bytes (room for a
//! pretty-printed file), each header field 64 KiB. So a 100 MB event fails at the budget,
//! with its position named, instead of being buffered. Then each parsed event's encoded
//! size ([`segment::event_len`](crate::segment::event_len)) is checked against the limit
//! exactly.

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{EXPORT_VERSION, ExportHeader, event_at};
use crate::{GlobalEvent, GlobalSeq};

/// Raw bytes allowed for one field of the header (its key and value).
const FIELD_LIMIT: u64 = 64 * 1024;

/// Why a file is not a valid export. Each variant says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportFileError {
    /// The file is not JSON (or not the JSON of an export) at this place.
    #[error("not a valid export at line {line}, column {column}{}: {message}", inside(*event))]
    Json {
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column of the fault.
        column: usize,
        /// The index of the event being read, if the fault is inside one.
        event: Option<u64>,
        /// What the parser found.
        message: String,
    },
    /// The file ends before its JSON does.
    #[error("the file is truncated: it ends at line {line}{}", inside(*event))]
    Truncated {
        /// The last line of the file.
        line: usize,
        /// The index of the event being read when it ended, if any.
        event: Option<u64>,
    },
    /// `version` is not [`EXPORT_VERSION`].
    #[error("export version {found} is not supported: this build reads version {EXPORT_VERSION}")]
    Version {
        /// The version the file names, as written.
        found: String,
    },
    /// A field of the export object is missing.
    #[error("the export has no `{field}` field")]
    MissingField {
        /// Its name.
        field: &'static str,
    },
    /// The export object has a field that format version 1 does not define.
    #[error("field `{field}` is not part of export format version {EXPORT_VERSION}")]
    UnknownField {
        /// Its name, escaped and cut to 80 characters.
        field: String,
    },
    /// A field of the export object has the wrong type or appears twice.
    #[error("field `{field}`: {message}")]
    BadField {
        /// Its name.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A field of the header is longer than the reader accepts.
    #[error("a field of the export object is longer than {limit} bytes")]
    FieldTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// An event is wrong; the events before it were fine.
    #[error("{}: {problem}", event_at(*index, *seq))]
    Event {
        /// Its index in `events` (0-based).
        index: u64,
        /// Its number, when it was read.
        seq: Option<GlobalSeq>,
        /// What is wrong with it.
        problem: EventProblem,
    },
    /// `eventCount` does not match the events the file holds.
    #[error("eventCount is {declared}, but the file holds {found} events")]
    Count {
        /// What `eventCount` says.
        declared: u64,
        /// How many events `events` holds.
        found: u64,
    },
    /// The file could not be read.
    #[error("reading the file: {message}")]
    Io {
        /// The I/O error.
        message: String,
    },
    /// The callback asked to stop ([`Rejected::Stop`]).
    #[error("the reader was stopped by its consumer")]
    Stopped,
}

/// What is wrong with one event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventProblem {
    /// Its number breaks the numbering from `e1` without gaps.
    #[error("seqNum is {found}, expected {expected}: events are numbered from e1 without gaps")]
    Gap {
        /// The number it should have.
        expected: GlobalSeq,
        /// The number it has.
        found: GlobalSeq,
    },
    /// Its parent is not the event before it.
    #[error("parentSeqNum is {found}, expected {expected} (the event before it)")]
    Parent {
        /// The parent it should have.
        expected: GlobalSeq,
        /// The parent it has.
        found: GlobalSeq,
    },
    /// It is larger than one push may carry.
    #[error("it is larger than {limit} bytes, the most the backend takes for one event in a push")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// It is not an event in LiveStore's `Global.Encoded` form.
    #[error("not an event in LiveStore's encoded form: {message}")]
    Malformed {
        /// What the parser found.
        message: String,
    },
    /// The callback refused it (for example: its args do not decode under the schema).
    #[error("{message}")]
    Refused {
        /// Why.
        message: String,
    },
}

/// What a [`read_export`] callback answers when it does not take an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// The event is bad (the message says why): reading fails with
    /// [`EventProblem::Refused`] naming it.
    Event(String),
    /// The consumer wants no more events: reading fails with [`ExportFileError::Stopped`].
    Stop,
}

fn inside(event: Option<u64>) -> String {
    event
        .map(|index| format!(", inside {}", event_at(index, None)))
        .unwrap_or_default()
}

/// Reads an export file from `reader`, checking as it goes, and hands each event to
/// `on_event` in order; returns the header once the whole file was read and found valid.
///
/// Checked: the JSON; `version` is [`EXPORT_VERSION`]; every field is there once and no other;
/// events are numbered `e1, e2, ...` each with the one before as parent; no event takes more
/// than `max_event_bytes` in a segment; `eventCount` is the number of events. Fields may come
/// in any order. The first fault ends the read: the callback has seen exactly the events
/// before it. `reader` is buffered here.
pub fn read_export<R: Read>(
    reader: R,
    max_event_bytes: usize,
    on_event: &mut dyn FnMut(GlobalEvent) -> Result<(), Rejected>,
) -> Result<ExportHeader, ExportFileError> {
    read_export_sized(reader, max_event_bytes, &mut |event, _| on_event(event))
}

/// [`read_export`], handing each event with its encoded size in a segment
/// ([`segment::event_len`](crate::segment::event_len)), which the reader works out anyway.
pub(crate) fn read_export_sized<R: Read>(
    reader: R,
    max_event_bytes: usize,
    on_event: &mut dyn FnMut(GlobalEvent, usize) -> Result<(), Rejected>,
) -> Result<ExportHeader, ExportFileError> {
    let budget = Rc::new(Budget::default());
    budget.allow(FIELD_LIMIT);
    let limited = LimitedRead {
        inner: BufReader::with_capacity(64 * 1024, reader),
        budget: budget.clone(),
    };
    let mut state = ReadState {
        budget,
        max_event_bytes,
        fields: Fields::default(),
        field: None,
        events: 0,
        in_event: None,
        failure: None,
        on_event,
    };
    let mut deserializer = serde_json::Deserializer::from_reader(limited);
    let parsed = FileSeed(&mut state)
        .deserialize(&mut deserializer)
        .and_then(|()| {
            state.in_event = None;
            state.field = None;
            state.budget.allow(FIELD_LIMIT);
            deserializer.end()
        });
    if let Err(error) = parsed {
        return Err(state.explain(error));
    }
    state.finish()
}

/// How many raw bytes the parser may still read, shared by the reader and the visitors.
#[derive(Debug, Default)]
struct Budget {
    /// Bytes read so far.
    position: Cell<u64>,
    /// The position past which reading fails.
    end: Cell<u64>,
    /// Set when a read was refused for the budget.
    exceeded: Cell<bool>,
}

impl Budget {
    /// Allows `bytes` more from here on.
    fn allow(&self, bytes: u64) {
        self.end.set(self.position.get().saturating_add(bytes));
    }
}

/// A reader that fails once its budget is spent, so no value larger than the budget is
/// ever buffered by the parser.
struct LimitedRead<R> {
    inner: BufReader<R>,
    budget: Rc<Budget>,
}

impl<R: Read> Read for LimitedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let budget = &self.budget;
        let left = budget.end.get().saturating_sub(budget.position.get());
        if left == 0 && !buf.is_empty() {
            budget.exceeded.set(true);
            return Err(io::Error::other("over the size limit"));
        }
        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..take])?;
        budget.position.set(budget.position.get() + read as u64);
        Ok(read)
    }
}

/// The header fields seen so far.
#[derive(Debug, Default)]
struct Fields {
    version: Option<u64>,
    store_id: Option<String>,
    exported_at: Option<String>,
    event_count: Option<u64>,
    events: bool,
}

/// What the visitors share while a file is read.
struct ReadState<'a> {
    budget: Rc<Budget>,
    max_event_bytes: usize,
    fields: Fields,
    /// The header field whose value is being read.
    field: Option<&'static str>,
    /// Events accepted so far.
    events: u64,
    /// The index of the event being read.
    in_event: Option<u64>,
    /// The fault a visitor found, typed; the parser only carries a message.
    failure: Option<ExportFileError>,
    on_event: &'a mut dyn FnMut(GlobalEvent, usize) -> Result<(), Rejected>,
}

impl ReadState<'_> {
    /// Records `failure` and returns a parser error that stops the read.
    fn fail<E: de::Error>(&mut self, failure: ExportFileError) -> E {
        let message = failure.to_string();
        self.failure = Some(failure);
        E::custom(message)
    }

    /// The typed fault behind a parser error.
    fn explain(&mut self, error: serde_json::Error) -> ExportFileError {
        if let Some(failure) = self.failure.take() {
            return failure;
        }
        if self.budget.exceeded.get() {
            return match self.in_event {
                Some(index) => ExportFileError::Event {
                    index,
                    seq: None,
                    problem: EventProblem::TooLarge {
                        limit: self.max_event_bytes,
                    },
                },
                None => ExportFileError::FieldTooLarge { limit: FIELD_LIMIT },
            };
        }
        use serde_json::error::Category;
        match error.classify() {
            Category::Eof => ExportFileError::Truncated {
                line: error.line(),
                event: self.in_event,
            },
            Category::Io => ExportFileError::Io {
                message: error.to_string(),
            },
            Category::Data if self.in_event.is_some() => ExportFileError::Event {
                index: self.in_event.unwrap_or_default(),
                seq: None,
                problem: EventProblem::Malformed {
                    message: error.to_string(),
                },
            },
            Category::Data if self.field.is_some() => ExportFileError::BadField {
                field: self.field.unwrap_or_default(),
                message: error.to_string(),
            },
            Category::Syntax | Category::Data => ExportFileError::Json {
                line: error.line(),
                column: error.column(),
                event: self.in_event,
                message: error.to_string(),
            },
        }
    }

    /// The header, once the whole file was read: every field there, the count right.
    fn finish(self) -> Result<ExportHeader, ExportFileError> {
        let fields = self.fields;
        let missing = |field| ExportFileError::MissingField { field };
        let version = fields.version.ok_or(missing("version"))?;
        let store_id = fields.store_id.ok_or(missing("storeId"))?;
        let exported_at = fields.exported_at.ok_or(missing("exportedAt"))?;
        let event_count = fields.event_count.ok_or(missing("eventCount"))?;
        if !fields.events {
            return Err(missing("events"));
        }
        if event_count != self.events {
            return Err(ExportFileError::Count {
                declared: event_count,
                found: self.events,
            });
        }
        Ok(ExportHeader {
            version,
            store_id,
            exported_at,
            event_count,
        })
    }

    /// Checks one parsed event and hands it on.
    fn accept(&mut self, event: GlobalEvent) -> Result<(), ExportFileError> {
        let index = self.events;
        let at = |problem| ExportFileError::Event {
            index,
            seq: Some(event.seq_num),
            problem,
        };
        let expected = GlobalSeq(index + 1);
        if event.seq_num != expected {
            return Err(at(EventProblem::Gap {
                expected,
                found: event.seq_num,
            }));
        }
        if event.parent_seq_num != GlobalSeq(index) {
            return Err(at(EventProblem::Parent {
                expected: GlobalSeq(index),
                found: event.parent_seq_num,
            }));
        }
        let size = match crate::segment::event_len(&event) {
            Ok(len) if len <= self.max_event_bytes => len,
            _ => {
                return Err(at(EventProblem::TooLarge {
                    limit: self.max_event_bytes,
                }));
            }
        };
        let seq = event.seq_num;
        match (self.on_event)(event, size) {
            Ok(()) => {
                self.events += 1;
                Ok(())
            }
            Err(Rejected::Event(message)) => Err(ExportFileError::Event {
                index,
                seq: Some(seq),
                problem: EventProblem::Refused { message },
            }),
            Err(Rejected::Stop) => Err(ExportFileError::Stopped),
        }
    }

    /// Reads the value of header field `field` (not `events`).
    fn header_field<'de, A: MapAccess<'de>>(
        &mut self,
        field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        self.field = Some(field);
        let value: serde_json::Value = map.next_value()?;
        let duplicate = match field {
            "version" => self.fields.version.is_some(),
            "storeId" => self.fields.store_id.is_some(),
            "exportedAt" => self.fields.exported_at.is_some(),
            _ => self.fields.event_count.is_some(),
        };
        if duplicate {
            return Err(self.fail(bad(field, "appears twice")));
        }
        match field {
            "version" => match value.as_u64() {
                Some(EXPORT_VERSION) => self.fields.version = Some(EXPORT_VERSION),
                _ => {
                    let found: String = value.to_string().chars().take(80).collect();
                    return Err(self.fail(ExportFileError::Version { found }));
                }
            },
            "eventCount" => match value.as_u64() {
                Some(count) => self.fields.event_count = Some(count),
                None => return Err(self.fail(bad(field, "must be a whole number"))),
            },
            _ => {
                let serde_json::Value::String(text) = value else {
                    return Err(self.fail(bad(field, "must be a string")));
                };
                if field == "storeId" {
                    self.fields.store_id = Some(text);
                } else {
                    self.fields.exported_at = Some(text);
                }
            }
        }
        self.field = None;
        Ok(())
    }
}

fn bad(field: &'static str, message: &str) -> ExportFileError {
    ExportFileError::BadField {
        field,
        message: message.into(),
    }
}

/// The whole file: one object.
struct FileSeed<'s, 'a>(&'s mut ReadState<'a>);

impl<'de> DeserializeSeed<'de> for FileSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an export object {version, storeId, exportedAt, eventCount, events}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        loop {
            state.budget.allow(FIELD_LIMIT);
            let Some(key) = map.next_key::<String>()? else {
                return Ok(());
            };
            let field = match key.as_str() {
                "version" => "version",
                "storeId" => "storeId",
                "exportedAt" => "exportedAt",
                "eventCount" => "eventCount",
                "events" => {
                    if state.fields.events {
                        return Err(state.fail(bad("events", "appears twice")));
                    }
                    state.field = Some("events");
                    map.next_value_seed(EventsSeed(&mut *state))?;
                    state.fields.events = true;
                    state.field = None;
                    continue;
                }
                other => {
                    let field = other
                        .escape_default()
                        .to_string()
                        .chars()
                        .take(80)
                        .collect();
                    return Err(state.fail(ExportFileError::UnknownField { field }));
                }
            };
            state.header_field(field, &mut map)?;
        }
    }
}

/// The `events` array.
struct EventsSeed<'s, 'a>(&'s mut ReadState<'a>);

impl<'de> DeserializeSeed<'de> for EventsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        let raw_limit = (state.max_event_bytes as u64)
            .saturating_mul(2)
            .saturating_add(FIELD_LIMIT);
        loop {
            state.in_event = Some(state.events);
            state.budget.allow(raw_limit);
            let Some(event) = seq.next_element::<GlobalEvent>()? else {
                state.in_event = None;
                return Ok(());
            };
            if let Err(failure) = state.accept(event) {
                return Err(state.fail(failure));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::test_event;

    const LIMIT: usize = 4096;

    fn file(events: &[GlobalEvent]) -> String {
        let lines: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        format!(
            r#"{{"version":1,"storeId":"s","exportedAt":"now","eventCount":{},"events":[{}]}}"#,
            events.len(),
            lines.join(",\n")
        )
    }

    fn read(text: &str) -> (Result<ExportHeader, ExportFileError>, Vec<GlobalEvent>) {
        let mut seen = Vec::new();
        let result = read_export(text.as_bytes(), LIMIT, &mut |event| {
            seen.push(event);
            Ok(())
        });
        (result, seen)
    }

    fn events(n: u64) -> Vec<GlobalEvent> {
        (1..=n).map(test_event).collect()
    }

    #[test]
    fn test_reads_every_event_in_order_with_the_header() {
        let (header, seen) = read(&file(&events(3)));
        let header = header.unwrap();
        assert_eq!(header.event_count, 3);
        assert_eq!(header.store_id, "s");
        assert_eq!(seen, events(3));
    }

    #[test]
    fn test_fields_may_come_in_any_order_and_be_pretty_printed() {
        let body = serde_json::json!({
            "events": events(2),
            "exportedAt": "t",
            "eventCount": 2,
            "storeId": "x",
            "version": 1,
        });
        let (header, seen) = read(&serde_json::to_string_pretty(&body).unwrap());
        assert_eq!(header.unwrap().exported_at, "t");
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn test_an_empty_export_is_valid() {
        let (header, seen) = read(&file(&[]));
        assert_eq!(header.unwrap().event_count, 0);
        assert!(seen.is_empty());
    }

    #[test]
    fn test_a_gap_names_the_event_and_stops_before_it() {
        let mut list = events(4);
        list.remove(2);
        let (result, seen) = read(&file(&list));
        match result.unwrap_err() {
            ExportFileError::Event {
                index: 2,
                seq: Some(GlobalSeq(4)),
                problem: EventProblem::Gap { expected, .. },
            } => assert_eq!(expected, GlobalSeq(3)),
            other => panic!("{other:?}"),
        }
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn test_a_wrong_parent_names_the_event() {
        let mut list = events(3);
        list[1].parent_seq_num = GlobalSeq(0);
        let error = read(&file(&list)).0.unwrap_err();
        assert!(
            matches!(
                error,
                ExportFileError::Event {
                    index: 1,
                    problem: EventProblem::Parent { .. },
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("event #2 (e2): parentSeqNum is e0")
        );
    }

    #[test]
    fn test_a_truncated_file_says_so_and_where() {
        let text = file(&events(3));
        let error = read(&text[..text.len() - 30]).0.unwrap_err();
        assert!(
            matches!(error, ExportFileError::Truncated { event: Some(2), .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("truncated"), "{error}");
    }

    #[test]
    fn test_a_wrong_version_is_refused_before_any_event() {
        let text = file(&events(2)).replace("\"version\":1", "\"version\":2");
        let (result, seen) = read(&text);
        assert_eq!(
            result.unwrap_err(),
            ExportFileError::Version { found: "2".into() }
        );
        assert!(seen.is_empty());
    }

    #[test]
    fn test_a_wrong_count_is_refused() {
        let text = file(&events(2)).replace("\"eventCount\":2", "\"eventCount\":5");
        assert_eq!(
            read(&text).0.unwrap_err(),
            ExportFileError::Count {
                declared: 5,
                found: 2
            }
        );
    }

    #[test]
    fn test_missing_unknown_and_duplicate_fields_are_named() {
        let text = file(&events(1)).replace("\"storeId\":\"s\",", "");
        assert_eq!(
            read(&text).0.unwrap_err(),
            ExportFileError::MissingField { field: "storeId" }
        );
        let text = file(&events(1)).replace("\"storeId\"", "\"storeID\"");
        assert_eq!(
            read(&text).0.unwrap_err(),
            ExportFileError::UnknownField {
                field: "storeID".into()
            }
        );
        let text =
            file(&events(1)).replace("\"storeId\":\"s\"", "\"storeId\":\"s\",\"storeId\":\"t\"");
        assert!(matches!(
            read(&text).0.unwrap_err(),
            ExportFileError::BadField {
                field: "storeId",
                ..
            }
        ));
        let text = file(&events(1)).replace("\"eventCount\":1", "\"eventCount\":\"1\"");
        assert!(matches!(
            read(&text).0.unwrap_err(),
            ExportFileError::BadField {
                field: "eventCount",
                ..
            }
        ));
    }

    #[test]
    fn test_an_event_that_is_not_one_is_named() {
        let text = file(&events(2)).replacen(",\"sessionId\":\"s1\"", "", 1);
        let error = read(&text).0.unwrap_err();
        match &error {
            ExportFileError::Event {
                index: 0,
                problem: EventProblem::Malformed { message },
                ..
            } => assert!(message.contains("sessionId"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_a_huge_event_is_refused_at_the_budget_without_reading_it_all() {
        let mut huge = test_event(2);
        huge.args = serde_json::json!({"text": "x".repeat(1_000_000)});
        let mut list = events(1);
        list.push(huge);
        let text = file(&list);
        let error = read(&text).0.unwrap_err();
        assert_eq!(
            error,
            ExportFileError::Event {
                index: 1,
                seq: None,
                problem: EventProblem::TooLarge { limit: LIMIT }
            }
        );
        // Just over the limit but within the raw budget: refused on its encoded size.
        let mut big = test_event(1);
        big.args = serde_json::json!({"text": "x".repeat(LIMIT)});
        let error = read(&file(&[big])).0.unwrap_err();
        assert!(
            matches!(
                error,
                ExportFileError::Event {
                    index: 0,
                    seq: Some(GlobalSeq(1)),
                    problem: EventProblem::TooLarge { .. }
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn test_a_huge_header_field_is_refused() {
        let text = file(&events(1)).replace("\"now\"", &format!("\"{}\"", "y".repeat(100_000)));
        assert_eq!(
            read(&text).0.unwrap_err(),
            ExportFileError::FieldTooLarge { limit: FIELD_LIMIT }
        );
    }

    #[test]
    fn test_the_callback_can_refuse_an_event_or_stop() {
        let text = file(&events(3));
        let result = read_export(text.as_bytes(), LIMIT, &mut |event| {
            if event.seq_num == GlobalSeq(2) {
                Err(Rejected::Event("args do not decode".into()))
            } else {
                Ok(())
            }
        });
        let error = result.unwrap_err();
        assert_eq!(error.to_string(), "event #2 (e2): args do not decode");
        let result = read_export(text.as_bytes(), LIMIT, &mut |_| Err(Rejected::Stop));
        assert_eq!(result.unwrap_err(), ExportFileError::Stopped);
    }

    #[test]
    fn test_garbage_after_the_object_and_non_objects_are_refused() {
        let text = format!("{} x", file(&events(1)));
        assert!(matches!(
            read(&text).0.unwrap_err(),
            ExportFileError::Json { .. }
        ));
        assert!(matches!(
            read("[1, 2]").0.unwrap_err(),
            ExportFileError::Json { .. }
        ));
        assert!(matches!(
            read("").0.unwrap_err(),
            ExportFileError::Truncated { event: None, .. }
        ));
    }
}
