//! Durations in config files as text with a unit (`50ms`, `2s`, `1m`), for serde.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `"<number><unit>"` with unit `ms`, `s`, `m` or `h` (spaces allowed between).
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like \"50ms\", \"2s\" or \"1m\""))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "" => {
            return Err(format!(
                "{text:?} has no unit; write e.g. \"{number}ms\" or \"{number}s\""
            ));
        }
        other => {
            return Err(format!(
                "{text:?} has unknown unit {other:?}; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Formats a duration the way [`parse`] reads it.
pub(crate) fn format(duration: Duration) -> String {
    if duration.subsec_nanos().is_multiple_of(1_000_000)
        && !duration.as_millis().is_multiple_of(1000)
    {
        format!("{}ms", duration.as_millis())
    } else if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}s", duration.as_secs_f64())
    }
}

/// `#[serde(with = "duration_text")]` for a `Duration` field.
pub(crate) fn serialize<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// `#[serde(with = "duration_text")]` for a `Duration` field.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// `#[serde(deserialize_with = "duration_text::option::deserialize")]` for an
/// `Option<Duration>` field.
pub(crate) mod option {
    use super::*;

    /// Reads text with a unit, or nothing.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|t| super::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_reads_each_unit() {
        assert_eq!(parse("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5 s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn test_parse_refuses_missing_or_unknown_units() {
        assert!(parse("50").unwrap_err().contains("no unit"));
        assert!(parse("5 days").unwrap_err().contains("unknown unit"));
        assert!(parse("fast").is_err());
    }

    #[test]
    fn test_format_round_trips() {
        for d in [
            Duration::from_millis(50),
            Duration::from_secs(2),
            Duration::from_millis(1500),
        ] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
