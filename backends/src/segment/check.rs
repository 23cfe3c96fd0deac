//! An event of a segment checked without being built: this module's [`GlobalEvent`] accepts
//! exactly the JSON that decodes as a [`crate::GlobalEvent`] (the same fields, names, types,
//! refusals and messages, through the same `serde_json` paths), but keeps only its two
//! numbers: its strings are read in place and its args are walked, never copied into a
//! `Value`. An auditor that only needs to know that an event decodes and how it is numbered
//! uses it ([`super::check`]); a reader that applies events decodes them in full
//! ([`super::decode`]).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::GlobalSeq;

/// A [`crate::GlobalEvent`] as a check: the same derive attributes, field names and name
/// (serde's messages name the struct), each field read the way its type there reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct GlobalEvent {
    pub seq_num: GlobalSeq,
    pub parent_seq_num: GlobalSeq,
    #[allow(dead_code)]
    name: Text,
    #[allow(dead_code)]
    args: AnyValue,
    #[allow(dead_code)]
    client_id: Text,
    #[allow(dead_code)]
    session_id: Text,
}

/// A JSON string, read as `String` reads one (`deserialize_string`), not kept.
struct Text;

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_string(TextVisitor)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = Text;

    // `String`'s own wording, so that a refusal reads the same.
    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Text, E> {
        Ok(Text)
    }

    fn visit_string<E: de::Error>(self, _: String) -> Result<Text, E> {
        Ok(Text)
    }

    // `String` takes UTF-8 bytes too (a format that has them; JSON never hands bytes).
    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Text, E> {
        std::str::from_utf8(bytes)
            .map(|_| Text)
            .map_err(|_| E::invalid_value(de::Unexpected::Bytes(bytes), &self))
    }
}

/// Any JSON value, walked as `serde_json::Value` walks it (`deserialize_any`: numbers parsed
/// and range-checked, strings unescaped and checked, nesting limited alike), not kept.
struct AnyValue;

/// The key `serde_json::Value` (with the `raw_value` feature this workspace enables) reads as
/// a raw value when it is an object's first key: the value must then be a string that parses
/// as JSON, and the object has no other key.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AnyValue, D::Error> {
        deserializer.deserialize_any(AnyVisitor)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = AnyValue;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<AnyValue, E> {
        // As `Value` reads one: a `Number`, which refuses one it cannot hold.
        serde_json::Number::deserialize(de::value::I128Deserializer::<E>::new(value))
            .map(|_| AnyValue)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<AnyValue, E> {
        serde_json::Number::deserialize(de::value::U128Deserializer::<E>::new(value))
            .map(|_| AnyValue)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_string<E: de::Error>(self, _: String) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_none<E: de::Error>(self) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<AnyValue, D::Error> {
        AnyValue::deserialize(deserializer)
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyValue, A::Error> {
        while seq.next_element::<AnyValue>()?.is_some() {}
        Ok(AnyValue)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
        let Some(first) = map.next_key::<Key>()? else {
            return Ok(AnyValue);
        };
        if first.raw {
            // As `Value` does: the value is a string, parsed as JSON on its own.
            let text = map.next_value::<RawText>()?.0;
            return serde_json::from_str::<AnyValue>(&text)
                .map(|_| AnyValue)
                .map_err(de::Error::custom);
        }
        map.next_value::<AnyValue>()?;
        while map.next_entry::<Text, AnyValue>()?.is_some() {}
        Ok(AnyValue)
    }
}

/// The string a raw-value key holds, read as `serde_json` reads it there
/// (`deserialize_str`, its visitor's wording).
struct RawText(String);

impl<'de> Deserialize<'de> for RawText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawText, D::Error> {
        deserializer.deserialize_str(RawTextVisitor)
    }
}

struct RawTextVisitor;

impl Visitor<'_> for RawTextVisitor {
    type Value = RawText;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("raw value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RawText, E> {
        Ok(RawText(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<RawText, E> {
        Ok(RawText(text))
    }
}

/// An object's first key, read as `Value` reads it (`deserialize_str`), remembering only
/// whether it is [`RAW_VALUE_TOKEN`].
struct Key {
    raw: bool,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(Key {
            raw: key == RAW_VALUE_TOKEN,
        })
    }
}
