//! [`read_export`]: reads an export file in large chunks and parses each event from a slice
//! of the buffer, handing it to a callback as soon as it is parsed and checked, so memory
//! stays flat however long the file is and no byte is read one at a time.
//!
//! The top level (the export object, its field names, `:`, `,` and the `events` array's
//! brackets) is walked by hand; every value in it (a field name, a header value, one event)
//! is parsed by `serde_json` straight from the buffer (`input.rs`), which learns where the
//! value ends. A value cut by the end of the buffer is parsed again once more of the file is
//! read. An event is parsed as a [`RawEvent`] (`event.rs`), its strings and args borrowed
//! from the buffer; [`read_export`] makes a [`GlobalEvent`] of it, [`read_export_raw`] hands
//! it on as it is (for a consumer that only checks it).
//!
//! Memory is bounded twice. Each value has a budget of raw bytes: each event twice the event
//! limit (room for a pretty-printed file), each header field 64 KiB. The buffer grows past
//! one chunk only while a value is longer than it, and a value over its budget fails with
//! its position named, so a 100 MB event is refused after its budget, not buffered whole.
//! Then each parsed event's encoded size (what
//! [`segment::event_len`](crate::segment::event_len) counts) is checked against the limit
//! exactly: an event whose raw size bounds it within the limit is not encoded to learn it.

mod event;
mod input;

use std::io::Read;

pub use event::RawEvent;
use event::check_args_json;
use input::{Input, Parsed};

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
    read_export_built(reader, max_event_bytes, &mut |_, event| on_event(event))
}

/// [`read_export`], handing each event as the reader parsed it ([`RawEvent`], borrowed from
/// its buffer), with every check of [`read_export`] done: a consumer that does not keep the
/// events builds none.
pub fn read_export_raw<R: Read>(
    reader: R,
    max_event_bytes: usize,
    on_event: &mut dyn FnMut(&RawEvent<'_>) -> Result<(), Rejected>,
) -> Result<ExportHeader, ExportFileError> {
    read_with(reader, max_event_bytes, Consumer::Raw(on_event))
}

/// [`read_export`], handing each event both as parsed and as built.
pub(crate) fn read_export_built<R: Read>(
    reader: R,
    max_event_bytes: usize,
    on_event: &mut dyn FnMut(&RawEvent<'_>, GlobalEvent) -> Result<(), Rejected>,
) -> Result<ExportHeader, ExportFileError> {
    read_with(reader, max_event_bytes, Consumer::Built(on_event))
}

fn read_with<R: Read>(
    reader: R,
    max_event_bytes: usize,
    on_event: Consumer<'_>,
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

/// What the reader hands each event to.
enum Consumer<'a> {
    /// The event as parsed; the reader checks that its args parse as a value would.
    Raw(&'a mut dyn FnMut(&RawEvent<'_>) -> Result<(), Rejected>),
    /// The event as parsed and as built (its args parsed into a value, which checks them).
    Built(&'a mut dyn FnMut(&RawEvent<'_>, GlobalEvent) -> Result<(), Rejected>),
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
    /// A buffer an event is serialized into to learn its exact size in a segment, when its
    /// raw size does not settle it.
    sized: Vec<u8>,
    on_event: Consumer<'a>,
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
            let max_event_bytes = self.max_event_bytes;
            let (sized, on_event) = (&mut self.sized, &mut self.on_event);
            let parsed = self.input.event(raw_limit, &mut |event| {
                let check = Check {
                    index,
                    max_event_bytes,
                    sized: &mut *sized,
                    on_event: &mut *on_event,
                };
                check.accept(&event)
            })?;
            match parsed {
                Parsed::Value(accepted) => accepted?,
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
            }
            self.events += 1;
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

/// What [`ReadState::events_array`] lends the check of one event.
struct Check<'s, 'a> {
    /// The event's index in `events`.
    index: u64,
    max_event_bytes: usize,
    sized: &'s mut Vec<u8>,
    on_event: &'s mut Consumer<'a>,
}

impl Check<'_, '_> {
    /// Checks one parsed event and hands it on.
    fn accept(self, event: &RawEvent<'_>) -> Result<(), ExportFileError> {
        let index = self.index;
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
        let malformed = |error: serde_json::Error| {
            at(EventProblem::Malformed {
                message: format!("args: {}", strip_position(&error)),
            })
        };
        let too_large = || {
            at(EventProblem::TooLarge {
                limit: self.max_event_bytes,
            })
        };
        // Built, or only checked, the args parse as a value (canonical JSON does).
        let taken = match self.on_event {
            Consumer::Raw(on_event) => {
                if !event.canonical {
                    check_args_json(event.args).map_err(malformed)?;
                }
                if !fits(event, None, self.sized, self.max_event_bytes) {
                    return Err(too_large());
                }
                on_event(event)
            }
            Consumer::Built(on_event) => {
                let built = event.to_event().map_err(malformed)?;
                if !fits(event, Some(&built), self.sized, self.max_event_bytes) {
                    return Err(too_large());
                }
                on_event(event, built)
            }
        };
        match taken {
            Ok(()) => Ok(()),
            Err(Rejected::Event(message)) => Err(at(EventProblem::Refused { message })),
            Err(Rejected::Stop) => Err(ExportFileError::Stopped),
        }
    }
}

/// Whether `event` (`built`, when it was) takes at most `max_event_bytes` in a segment: what
/// [`segment::event_len`](crate::segment::event_len) counts, a length prefix and the event's
/// JSON. Bounded by the raw size, and worked out exactly (encoded into `sized`) only when
/// the bound does not settle it.
fn fits(
    event: &RawEvent<'_>,
    built: Option<&GlobalEvent>,
    sized: &mut Vec<u8>,
    max_event_bytes: usize,
) -> bool {
    if 4 + event.encoded_len_bound() <= max_event_bytes {
        return true;
    }
    if event.canonical {
        // The bound is its exact size.
        return false;
    }
    sized.clear();
    let encoded = match built {
        Some(built) => serde_json::to_writer(&mut *sized, built),
        None => event
            .to_event()
            .and_then(|built| serde_json::to_writer(&mut *sized, &built)),
    };
    encoded.is_ok() && 4 + sized.len() <= max_event_bytes
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
mod tests;
