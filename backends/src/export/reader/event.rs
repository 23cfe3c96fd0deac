//! [`RawEvent`]: one event of an export file as the reader parses it, borrowing its strings
//! and its args' JSON from the read buffer instead of building a [`GlobalEvent`] (whose args
//! are a `serde_json::Value`: an allocation per key, string and nested value). A consumer
//! that only checks the event (the check pass of an import) never builds one; a consumer
//! that keeps it calls [`RawEvent::to_event`].

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::event_json::{scan_canonical, unescape};
use crate::{GlobalEvent, GlobalSeq};

/// An event of an export file in LiveStore's `Global.Encoded` form, as read: the same
/// fields as [`GlobalEvent`] (the same names, all required, no other), its strings borrowed
/// from the file where they hold no escape, and its args as their raw JSON.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawEvent<'a> {
    /// This event's position in the log.
    pub seq_num: GlobalSeq,
    /// The position of the event before it.
    pub parent_seq_num: GlobalSeq,
    /// The event definition's name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// The event's arguments, their JSON text as the file writes it.
    #[serde(borrow, deserialize_with = "raw_json")]
    pub args: &'a str,
    /// The client that committed it.
    #[serde(borrow)]
    pub client_id: Cow<'a, str>,
    /// The session of that client that committed it.
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    /// Its JSON as the file has it (set by the reader).
    #[serde(skip)]
    pub(crate) json: &'a [u8],
    /// Whether `json` is exactly what `serde_json` writes for the event (set by the reader,
    /// from [`scan_canonical`]): then it is what a segment stores of it, as it is.
    #[serde(skip)]
    pub(crate) canonical: bool,
    /// The file offset of its first byte (set by the reader).
    #[serde(skip)]
    pub(crate) offset: u64,
    /// How many newlines the reader skipped as whitespace between values from the start of
    /// the file up to this event (set by the reader): between two events, the newlines of
    /// the separator.
    #[serde(skip)]
    pub(crate) newlines_before: u64,
}

/// Deserializes a value as its raw JSON text, borrowed.
fn raw_json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'de str, D::Error> {
    <&'de RawValue>::deserialize(deserializer).map(RawValue::get)
}

impl<'a> RawEvent<'a> {
    /// The event that starts `bytes` when its JSON is in the form `serde_json` writes
    /// ([`scan_canonical`]), read without the parser; `None` otherwise (or when it does not
    /// end within `bytes`).
    pub(super) fn canonical(bytes: &'a [u8]) -> Option<RawEvent<'a>> {
        let scanned = scan_canonical(bytes)?;
        let text = |written: &'a str| -> Option<Cow<'a, str>> {
            if scanned.escaped {
                unescape(written).map(Cow::Owned)
            } else {
                Some(Cow::Borrowed(written))
            }
        };
        Some(RawEvent {
            seq_num: scanned.seq_num,
            parent_seq_num: scanned.parent_seq_num,
            name: text(scanned.name)?,
            args: scanned.args,
            client_id: text(scanned.client_id)?,
            session_id: text(scanned.session_id)?,
            json: &bytes[..scanned.len],
            canonical: true,
            offset: 0,
            newlines_before: 0,
        })
    }

    /// The most bytes this event's JSON takes as `serde_json` writes it (what a segment
    /// holds of it besides its 4-byte length prefix), from its size in the file: exactly
    /// that size when it is [`canonical`](Self::canonical), otherwise 24 times it (why:
    /// `encoded_len_bound` in `reader/event.rs`).
    pub fn encoded_len_bound(&self) -> usize {
        if self.canonical {
            self.json.len()
        } else {
            encoded_len_bound(self.json.len())
        }
    }

    /// The event as a [`GlobalEvent`], its args parsed into a `serde_json::Value`. Fails only
    /// where the args are JSON that a `Value` cannot hold, which the reader refuses before
    /// it hands an event on ([`check_args_json`]).
    pub fn to_event(&self) -> Result<GlobalEvent, serde_json::Error> {
        Ok(GlobalEvent {
            seq_num: self.seq_num,
            parent_seq_num: self.parent_seq_num,
            name: self.name.clone().into_owned(),
            args: serde_json::from_str(self.args)?,
            client_id: self.client_id.clone().into_owned(),
            session_id: self.session_id.clone().into_owned(),
        })
    }
}

/// Checks that `args` parses as a `serde_json::Value` would (numbers in range, escapes that
/// decode, nesting within the parser's limit) without building one.
pub(super) fn check_args_json(args: &str) -> Result<(), serde_json::Error> {
    let mut parser = serde_json::Deserializer::from_str(args);
    AnyJson::deserialize(&mut parser)?;
    parser.end()
}

/// The most bytes an event whose JSON takes `raw_len` bytes in the file can take once it is
/// parsed and written again by `serde_json` (what a segment holds, without the length
/// prefix). Whitespace goes, a string never grows (escapes are written no longer than the
/// file may have them: raw UTF-8, or the same `\u` escape of a control character) and
/// neither do duplicate keys of an object (one is kept); only a number can: `-0` is written
/// `-0.0`, `1e2` as `100.0`. A number takes at least one byte in the file and at most 24
/// written (the longest `f64`, `-1.2345678901234567e-308`), so 24 bytes per byte of the
/// file bounds it all.
fn encoded_len_bound(raw_len: usize) -> usize {
    raw_len.saturating_mul(24)
}

/// Any JSON value, parsed the way `serde_json::Value` parses it and thrown away.
struct AnyJson;

impl<'de> Deserialize<'de> for AnyJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AnyJson, D::Error> {
        deserializer.deserialize_any(AnyJsonVisitor)
    }
}

struct AnyJsonVisitor;

impl<'de> Visitor<'de> for AnyJsonVisitor {
    type Value = AnyJson;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyJson, A::Error> {
        while seq.next_element::<AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyJson, A::Error> {
        while map.next_entry::<AnyJson, AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_args_check_accepts_what_a_value_holds_and_refuses_the_rest() {
        for good in [
            r#"{"a":[1,-0,2.5e3,"x\u00e9",null,true,{}]}"#,
            "7",
            r#""s""#,
        ] {
            assert!(check_args_json(good).is_ok(), "{good}");
            assert!(serde_json::from_str::<serde_json::Value>(good).is_ok());
        }
        // Valid JSON syntax, but no `Value` holds it: a number out of range.
        let bad = r#"{"a":1e400}"#;
        assert!(serde_json::from_str::<serde_json::Value>(bad).is_err());
        assert!(check_args_json(bad).is_err());
    }

    #[test]
    fn test_the_size_bound_holds_for_numbers_that_grow() {
        for text in [
            "[-0,-0,-0]",
            "[1e2,1e9]",
            "[1e-7]",
            r#"{"k":"\u00e9\/"}"#,
            "0",
        ] {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let written = serde_json::to_vec(&value).unwrap().len();
            assert!(
                written <= encoded_len_bound(text.len()),
                "{text}: {written}"
            );
        }
    }
}
