//! The shape of an args type, for the event definition hash: what its `Deserialize` impl
//! asks for first (a struct with its field names, an enum with its variants, a map…).
//!
//! Without a schema language, this is the stable part of a Rust type we can see at run time:
//! serde hands the field names (after `rename`/`rename_all`) to the deserializer. A probe
//! deserializer records that request and stops. Adding, removing or renaming a field changes
//! the shape; changing a field's type does not (bump the event's revision for that).

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// Describes `A`'s top-level shape, e.g. `struct[id,text]`.
pub(super) fn describe<A: DeserializeOwned>() -> String {
    let mut probe = Probe { shape: None };
    // The probe always fails after recording; the error carries nothing of interest.
    let _ = A::deserialize(&mut probe);
    probe.shape.unwrap_or_else(|| "unknown".to_string())
}

/// A deserializer that records the first request and then fails.
struct Probe {
    shape: Option<String>,
}

/// The probe's (always returned) error.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shape probe stops here")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Stop {
        Stop
    }
}

impl Probe {
    fn record<T>(&mut self, shape: String) -> Result<T, Stop> {
        self.shape.get_or_insert(shape);
        Err(Stop)
    }
}

macro_rules! record_kind {
    ($($method:ident => $kind:literal),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                self.record($kind.to_string())
            }
        )*
    };
}

impl<'de> Deserializer<'de> for &mut Probe {
    type Error = Stop;

    record_kind! {
        deserialize_any => "any", deserialize_bool => "bool", deserialize_i8 => "i8",
        deserialize_i16 => "i16", deserialize_i32 => "i32", deserialize_i64 => "i64",
        deserialize_u8 => "u8", deserialize_u16 => "u16", deserialize_u32 => "u32",
        deserialize_u64 => "u64", deserialize_f32 => "f32", deserialize_f64 => "f64",
        deserialize_char => "char", deserialize_str => "str", deserialize_string => "string",
        deserialize_bytes => "bytes", deserialize_byte_buf => "bytes",
        deserialize_option => "option", deserialize_unit => "unit", deserialize_seq => "seq",
        deserialize_map => "map", deserialize_identifier => "identifier",
        deserialize_ignored_any => "ignored",
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record("unit_struct".to_string())
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        // A newtype's shape is its content's.
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, _: V) -> Result<V::Value, Stop> {
        self.record(format!("tuple[{len}]"))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record(format!("tuple[{len}]"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record(format!("struct[{}]", fields.join(",")))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record(format!("enum[{}]", variants.join(",")))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Args {
        id: String,
        deleted_at: i64,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Wrapped(Args);

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Choice {
        A,
        B,
    }

    #[test]
    fn test_describe_sees_renamed_fields_variants_and_newtypes() {
        assert_eq!(describe::<Args>(), "struct[id,deletedAt]");
        assert_eq!(describe::<Wrapped>(), "struct[id,deletedAt]");
        assert_eq!(describe::<Choice>(), "enum[A,B]");
        assert_eq!(describe::<serde_json::Value>(), "any");
        assert_eq!(describe::<(u8, u8)>(), "tuple[2]");
    }
}
