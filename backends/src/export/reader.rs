//! [`read_export`]: reads an export file in large chunks and parses each event from a slice
//! of the buffer, handing it to a callback as soon as it is parsed and checked, so memory
//! stays flat however long the file is and no byte is read one at a time.
//!
//! The top level (the export object, its field names, `:`, `,` and the `events` array's
//! brackets) is walked by hand; every value in it (a field name, a header value, one event)
//! is parsed by `serde_json` straight from the buffer, which learns where the value ends.
//! A value cut by the end of the buffer is parsed again once more of the file is read.
//!
//! Memory is bounded twice. Each value has a budget of raw bytes: each event twice the event
//! limit (room for a pretty-printed file), each header field 64 KiB. The buffer grows past
//! one chunk only while a value is longer than it, and a value over its budget fails with
//! its position named, so a 100 MB event is refused after its budget, not buffered whole.
//! Then each parsed event's encoded size (what
//! [`segment::event_len`](crate::segment::event_len) counts) is checked against the limit
//! exactly.

use std::io::{self, Read};

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
    let mut state = ReadState {
        input: Input::new(reader),
        max_event_bytes,
        fields: Fields::default(),
        events: 0,
        sized: Vec::new(),
        on_event,
    };
    state.file()?;
    state.finish()
}

/// Bytes the reader asks the file for at a time.
const READ_CHUNK: usize = 1 << 20;

/// The file, read in large chunks into a buffer that JSON values are parsed from as slices.
///
/// The buffer holds the bytes from the start of the value being read to what was read last;
/// it grows only while one value is larger than what it holds, and never past the value's
/// budget plus one chunk. Lines are counted as bytes leave the buffer, for messages.
struct Input<R> {
    reader: R,
    buffer: Vec<u8>,
    /// The next unread byte in `buffer`.
    at: usize,
    /// The file ended.
    eof: bool,
    /// Newlines in the bytes that left the buffer.
    lines_before: usize,
    /// The file offset of the first byte after the last newline that left the buffer.
    line_start_before: u64,
    /// The file offset of `buffer[0]`.
    offset: u64,
}

/// What parsing one value out of the buffer found.
enum Parsed<T> {
    /// The value.
    Value(T),
    /// The parser failed on the bytes in the buffer; `at` is the buffer position it names.
    Error(serde_json::Error, usize),
    /// The file ended inside the value.
    Truncated,
    /// The value is longer than its budget.
    TooLarge,
}

impl<R: Read> Input<R> {
    fn new(reader: R) -> Input<R> {
        Input {
            reader,
            buffer: Vec::with_capacity(READ_CHUNK),
            at: 0,
            eof: false,
            lines_before: 0,
            line_start_before: 0,
            offset: 0,
        }
    }

    /// Reads one more chunk at the end of the buffer, first dropping the bytes before `at`;
    /// returns false at the end of the file.
    fn fill(&mut self) -> Result<bool, ExportFileError> {
        if self.eof {
            return Ok(false);
        }
        if self.at > 0 {
            let gone = &self.buffer[..self.at];
            let newlines = memchr::memchr_iter(b'\n', gone).count();
            if newlines > 0 {
                self.lines_before += newlines;
                let last = memchr::memrchr(b'\n', gone).unwrap_or_default();
                self.line_start_before = self.offset + last as u64 + 1;
            }
            self.buffer.drain(..self.at);
            self.offset += self.at as u64;
            self.at = 0;
        }
        let len = self.buffer.len();
        self.buffer.resize(len + READ_CHUNK, 0);
        let read = loop {
            match self.reader.read(&mut self.buffer[len..]) {
                Ok(read) => break read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buffer.truncate(len);
                    return Err(ExportFileError::Io {
                        message: e.to_string(),
                    });
                }
            }
        };
        self.buffer.truncate(len + read);
        if read == 0 {
            self.eof = true;
        }
        Ok(read > 0)
    }

    /// The next byte that is not JSON whitespace, without taking it; `None` at the end of
    /// the file.
    fn peek(&mut self) -> Result<Option<u8>, ExportFileError> {
        loop {
            while let Some(&byte) = self.buffer.get(self.at) {
                if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                    return Ok(Some(byte));
                }
                self.at += 1;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Parses one JSON value at the read position, at most `budget` bytes long; on success
    /// the read position moves past it.
    fn value<T: serde::de::DeserializeOwned>(
        &mut self,
        budget: u64,
    ) -> Result<Parsed<T>, ExportFileError> {
        loop {
            let slice = &self.buffer[self.at..];
            let mut values = serde_json::Deserializer::from_slice(slice).into_iter::<T>();
            let result = values.next();
            let taken = values.byte_offset();
            match result {
                // A value that ends where the buffer does may go on in the file (a number
                // cut between two reads): read on and parse it again.
                Some(Ok(_)) if self.at + taken == self.buffer.len() && !self.eof => {
                    self.fill()?;
                }
                Some(Ok(value)) => {
                    if taken as u64 > budget {
                        return Ok(Parsed::TooLarge);
                    }
                    self.at += taken;
                    return Ok(Parsed::Value(value));
                }
                Some(Err(error)) if !error.is_eof() => {
                    let at = self.error_position(&error);
                    return Ok(Parsed::Error(error, at));
                }
                // The value goes on past the buffer (or the buffer is only whitespace).
                _ => {
                    if (self.buffer.len() - self.at) as u64 > budget {
                        return Ok(Parsed::TooLarge);
                    }
                    if !self.fill()? {
                        return Ok(Parsed::Truncated);
                    }
                }
            }
        }
    }

    /// The buffer position a parser error names (its line and column count from `at`).
    fn error_position(&self, error: &serde_json::Error) -> usize {
        let slice = &self.buffer[self.at..];
        let mut line_start = 0;
        for _ in 1..error.line() {
            match memchr::memchr(b'\n', &slice[line_start..]) {
                Some(newline) => line_start += newline + 1,
                None => break,
            }
        }
        let at = self.at + line_start + error.column().saturating_sub(1);
        at.min(self.buffer.len())
    }

    /// Takes the byte at the read position (the caller peeked it).
    fn take(&mut self) {
        self.at += 1;
    }

    /// The 1-based line and column of buffer position `at`.
    fn line_column(&self, at: usize) -> (usize, usize) {
        let before = &self.buffer[..at];
        let line = 1 + self.lines_before + memchr::memchr_iter(b'\n', before).count();
        let column = match memchr::memrchr(b'\n', before) {
            Some(newline) => at - newline,
            None => (self.offset + at as u64 - self.line_start_before) as usize + 1,
        };
        (line, column)
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

/// What the reader keeps while a file is read.
struct ReadState<'a, R> {
    input: Input<R>,
    max_event_bytes: usize,
    fields: Fields,
    /// Events accepted so far.
    events: u64,
    /// A buffer the events are serialized into to learn their size in a segment.
    sized: Vec<u8>,
    on_event: &'a mut dyn FnMut(GlobalEvent, usize) -> Result<(), Rejected>,
}

impl<R: Read> ReadState<'_, R> {
    /// A syntax fault at buffer position `at`.
    fn json_at(&self, at: usize, event: Option<u64>, message: String) -> ExportFileError {
        let (line, column) = self.input.line_column(at);
        ExportFileError::Json {
            line,
            column,
            event,
            message,
        }
    }

    /// A syntax fault at the read position: `expected` was not there.
    fn expected(&mut self, expected: &str, event: Option<u64>) -> ExportFileError {
        match self.input.peek() {
            Err(error) => error,
            Ok(None) => self.truncated(event),
            Ok(Some(found)) => {
                let message = format!(
                    "expected {expected}, found {:?}",
                    char::from(found).escape_default().to_string()
                );
                self.json_at(self.input.at, event, message)
            }
        }
    }

    /// The file ends too soon.
    fn truncated(&self, event: Option<u64>) -> ExportFileError {
        let (line, _) = self.input.line_column(self.input.buffer.len());
        ExportFileError::Truncated { line, event }
    }

    /// A parser error at buffer position `at`, in a header field or an event.
    fn parse_error(
        &self,
        error: serde_json::Error,
        at: usize,
        field: Option<&'static str>,
        event: Option<u64>,
    ) -> ExportFileError {
        use serde_json::error::Category;
        let message = strip_position(&error);
        match (error.classify(), event, field) {
            (Category::Data, Some(index), _) => ExportFileError::Event {
                index,
                seq: None,
                problem: EventProblem::Malformed { message },
            },
            (Category::Data, None, Some(field)) => ExportFileError::BadField { field, message },
            (Category::Io, _, _) => ExportFileError::Io { message },
            _ => self.json_at(at, event, message),
        }
    }

    /// The whole file: one object, then nothing but whitespace.
    fn file(&mut self) -> Result<(), ExportFileError> {
        if self.input.peek()? != Some(b'{') {
            return Err(self.expected(
                "an export object {version, storeId, exportedAt, eventCount, events}",
                None,
            ));
        }
        self.input.take();
        if self.input.peek()? == Some(b'}') {
            self.input.take();
        } else {
            loop {
                self.field()?;
                match self.input.peek()? {
                    Some(b',') => self.input.take(),
                    Some(b'}') => {
                        self.input.take();
                        break;
                    }
                    _ => return Err(self.expected("`,` or `}` after a field", None)),
                }
            }
        }
        match self.input.peek()? {
            None => Ok(()),
            Some(_) => Err(self.json_at(
                self.input.at,
                None,
                "trailing characters after the export object".into(),
            )),
        }
    }

    /// One field of the export object: its key, `:` and its value.
    fn field(&mut self) -> Result<(), ExportFileError> {
        if self.input.peek()? != Some(b'"') {
            return Err(self.expected("a field name", None));
        }
        let key: String = match self.input.value(FIELD_LIMIT)? {
            Parsed::Value(key) => key,
            Parsed::Error(error, at) => return Err(self.parse_error(error, at, None, None)),
            Parsed::Truncated => return Err(self.truncated(None)),
            Parsed::TooLarge => return Err(ExportFileError::FieldTooLarge { limit: FIELD_LIMIT }),
        };
        let field = match key.as_str() {
            "version" => "version",
            "storeId" => "storeId",
            "exportedAt" => "exportedAt",
            "eventCount" => "eventCount",
            "events" => "events",
            other => {
                let field = other
                    .escape_default()
                    .to_string()
                    .chars()
                    .take(80)
                    .collect();
                return Err(ExportFileError::UnknownField { field });
            }
        };
        if self.input.peek()? != Some(b':') {
            return Err(self.expected("`:` after a field name", None));
        }
        self.input.take();
        if field == "events" {
            if self.fields.events {
                return Err(bad("events", "appears twice"));
            }
            self.events_array()?;
            self.fields.events = true;
            return Ok(());
        }
        let value: serde_json::Value = match self.input.value(FIELD_LIMIT)? {
            Parsed::Value(value) => value,
            Parsed::Error(error, at) => {
                return Err(self.parse_error(error, at, Some(field), None));
            }
            Parsed::Truncated => return Err(self.truncated(None)),
            Parsed::TooLarge => return Err(ExportFileError::FieldTooLarge { limit: FIELD_LIMIT }),
        };
        self.header_field(field, value)
    }

    /// The `events` array, each event parsed from the buffer and handed on.
    fn events_array(&mut self) -> Result<(), ExportFileError> {
        if self.input.peek()? != Some(b'[') {
            return Err(bad("events", "must be an array of events"));
        }
        self.input.take();
        if self.input.peek()? == Some(b']') {
            self.input.take();
            return Ok(());
        }
        let raw_limit = (self.max_event_bytes as u64)
            .saturating_mul(2)
            .saturating_add(FIELD_LIMIT);
        loop {
            let index = self.events;
            let event: GlobalEvent = match self.input.value(raw_limit)? {
                Parsed::Value(event) => event,
                Parsed::Error(error, at) => {
                    return Err(self.parse_error(error, at, None, Some(index)));
                }
                Parsed::Truncated => return Err(self.truncated(Some(index))),
                Parsed::TooLarge => {
                    return Err(ExportFileError::Event {
                        index,
                        seq: None,
                        problem: EventProblem::TooLarge {
                            limit: self.max_event_bytes,
                        },
                    });
                }
            };
            self.accept(event)?;
            match self.input.peek()? {
                Some(b',') => self.input.take(),
                Some(b']') => {
                    self.input.take();
                    return Ok(());
                }
                _ => return Err(self.expected("`,` or `]` after an event", None)),
            }
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
        // What `segment::event_len` counts: a length prefix and the event's JSON.
        self.sized.clear();
        let size = match serde_json::to_writer(&mut self.sized, &event) {
            Ok(()) if 4 + self.sized.len() <= self.max_event_bytes => 4 + self.sized.len(),
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

    /// Takes the value of header field `field` (not `events`).
    fn header_field(
        &mut self,
        field: &'static str,
        value: serde_json::Value,
    ) -> Result<(), ExportFileError> {
        let duplicate = match field {
            "version" => self.fields.version.is_some(),
            "storeId" => self.fields.store_id.is_some(),
            "exportedAt" => self.fields.exported_at.is_some(),
            _ => self.fields.event_count.is_some(),
        };
        if duplicate {
            return Err(bad(field, "appears twice"));
        }
        match field {
            "version" => match value.as_u64() {
                Some(EXPORT_VERSION) => self.fields.version = Some(EXPORT_VERSION),
                _ => {
                    let found: String = value.to_string().chars().take(80).collect();
                    return Err(ExportFileError::Version { found });
                }
            },
            "eventCount" => match value.as_u64() {
                Some(count) => self.fields.event_count = Some(count),
                None => return Err(bad(field, "must be a whole number")),
            },
            _ => {
                let serde_json::Value::String(text) = value else {
                    return Err(bad(field, "must be a string"));
                };
                if field == "storeId" {
                    self.fields.store_id = Some(text);
                } else {
                    self.fields.exported_at = Some(text);
                }
            }
        }
        Ok(())
    }
}

/// A parser error's message without its "at line 1 column 20" (which counts from the start
/// of the value, not of the file).
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

fn bad(field: &'static str, message: &str) -> ExportFileError {
    ExportFileError::BadField {
        field,
        message: message.into(),
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
