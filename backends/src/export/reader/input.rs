//! [`Input`]: the file, read in large chunks into a buffer that each JSON value is parsed
//! from as a slice, with the file position of each byte kept for messages.

use std::io::{self, Read};

use super::ExportFileError;
use super::event::RawEvent;

/// Bytes the reader asks the file for at a time.
const READ_CHUNK: usize = 1 << 20;

/// The file, read in large chunks into a buffer that JSON values are parsed from as slices.
///
/// The buffer holds the bytes from the start of the value being read to what was read last;
/// it grows only while one value is larger than what it holds, and never past the value's
/// budget plus one chunk. Lines are counted as bytes leave the buffer, for messages.
pub(super) struct Input<R> {
    reader: R,
    pub(super) buffer: Vec<u8>,
    /// The next unread byte in `buffer`.
    pub(super) at: usize,
    /// The file ended.
    eof: bool,
    /// Newlines in the bytes that left the buffer.
    lines_before: usize,
    /// The file offset of the first byte after the last newline that left the buffer.
    line_start_before: u64,
    /// The file offset of `buffer[0]`.
    offset: u64,
    /// Newlines skipped as whitespace by [`peek`](Self::peek) so far.
    newlines_skipped: u64,
}

/// What parsing one value out of the buffer found.
pub(super) enum Parsed<T> {
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
    pub(super) fn new(reader: R) -> Input<R> {
        Input {
            reader,
            buffer: Vec::with_capacity(READ_CHUNK),
            at: 0,
            eof: false,
            lines_before: 0,
            line_start_before: 0,
            offset: 0,
            newlines_skipped: 0,
        }
    }

    /// Reads one more chunk at the end of the buffer, first dropping the bytes before `at`;
    /// returns false at the end of the file.
    pub(super) fn fill(&mut self) -> Result<bool, ExportFileError> {
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
    pub(super) fn peek(&mut self) -> Result<Option<u8>, ExportFileError> {
        loop {
            while let Some(&byte) = self.buffer.get(self.at) {
                if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                    return Ok(Some(byte));
                }
                self.newlines_skipped += u64::from(byte == b'\n');
                self.at += 1;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Parses one JSON value at the read position, at most `budget` bytes long; on success
    /// the read position moves past it.
    pub(super) fn value<T: serde::de::DeserializeOwned>(
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
                Some(Err(error)) if !self.cut_short(&error) => {
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

    /// Parses one event at the read position, at most `budget` bytes long, borrowing from the
    /// buffer, and hands it to `take` (its [`json`](RawEvent::json) set); on success the read
    /// position moves past it. [`value`](Self::value) for an event, without copying its
    /// strings. An event in the form `serde_json` writes is read without the parser
    /// ([`RawEvent::canonical`]); any other goes through it.
    pub(super) fn event<T>(
        &mut self,
        budget: u64,
        take: &mut dyn FnMut(RawEvent<'_>) -> T,
    ) -> Result<Parsed<T>, ExportFileError> {
        /// What one attempt found; it borrows nothing, so the buffer can be refilled after.
        enum Step<T> {
            Taken(T, usize),
            Error(serde_json::Error),
            More,
        }
        // Past the whitespace before it (the parser would skip it; the scan does not).
        self.peek()?;
        loop {
            let step = 'step: {
                let slice = &self.buffer[self.at..];
                let offset = self.offset + self.at as u64;
                let newlines_before = self.newlines_skipped;
                if let Some(mut event) = RawEvent::canonical(slice) {
                    let taken = event.json.len();
                    if taken as u64 > budget {
                        return Ok(Parsed::TooLarge);
                    }
                    (event.offset, event.newlines_before) = (offset, newlines_before);
                    break 'step Step::Taken(take(event), taken);
                }
                let mut values =
                    serde_json::Deserializer::from_slice(slice).into_iter::<RawEvent<'_>>();
                let result = values.next();
                let taken = values.byte_offset();
                match result {
                    // As in `value`: an event that ends where the buffer does is read again
                    // once more of the file is in.
                    Some(Ok(_)) if self.at + taken == self.buffer.len() && !self.eof => Step::More,
                    Some(Ok(_)) if taken as u64 > budget => return Ok(Parsed::TooLarge),
                    Some(Ok(mut event)) => {
                        event.json = &slice[..taken];
                        (event.offset, event.newlines_before) = (offset, newlines_before);
                        Step::Taken(take(event), taken)
                    }
                    Some(Err(error)) if !self.cut_short(&error) => Step::Error(error),
                    _ => Step::More,
                }
            };
            match step {
                Step::Taken(value, taken) => {
                    self.at += taken;
                    return Ok(Parsed::Value(value));
                }
                Step::Error(error) => {
                    let at = self.error_position(&error);
                    return Ok(Parsed::Error(error, at));
                }
                Step::More => {
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

    /// Whether a parser error may only say that the buffer ends too soon: the parser ran out
    /// of input, or failed at the last byte read while the file goes on (a number cut
    /// after its `.` or `e` is "invalid number" to the parser that skips args as raw JSON).
    fn cut_short(&self, error: &serde_json::Error) -> bool {
        error.is_eof() || (!self.eof && self.error_position(error) + 1 >= self.buffer.len())
    }

    /// The buffer position a parser error names (its line and column count from `at`).
    pub(super) fn error_position(&self, error: &serde_json::Error) -> usize {
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
    pub(super) fn take(&mut self) {
        self.at += 1;
    }

    /// The 1-based line and column of buffer position `at`.
    pub(super) fn line_column(&self, at: usize) -> (usize, usize) {
        let before = &self.buffer[..at];
        let line = 1 + self.lines_before + memchr::memchr_iter(b'\n', before).count();
        let column = match memchr::memrchr(b'\n', before) {
            Some(newline) => at - newline,
            None => (self.offset + at as u64 - self.line_start_before) as usize + 1,
        };
        (line, column)
    }
}
