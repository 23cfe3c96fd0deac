//! Durations in configuration as text with a unit (`"500us"`, `"50ms"`, `"2s"`, `"1m"`), for
//! serde. The one parser of durations: every settings table ([`SegmentLogConfig`], the S3
//! options, the root crate's `Tuning`, the command line's config file) reads them through it,
//! so a value means the same in every table.
//!
//! [`SegmentLogConfig`]: crate::SegmentLogConfig

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `"<number><unit>"` with unit `ns`, `us` (or `µs`), `ms`, `s`, `m` (or `min`) or
/// `h`; spaces may separate the number and the unit, and the number may have a fraction
/// (`"1.5s"`). A number without a unit is refused: `"10"` could mean anything.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like \"50ms\", \"2s\" or \"1m\""))?;
    let unit_seconds = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => {
            return Err(format!(
                "{text:?} has no unit; write e.g. \"{number}ms\" or \"{number}s\""
            ));
        }
        other => {
            return Err(format!(
                "{text:?} has unknown unit {other:?}; use ns, us, ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(value * unit_seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Formats a duration in the largest unit that keeps it exact, the way [`parse`] reads it.
pub fn format(duration: Duration) -> String {
    const UNITS: [(u128, &str); 5] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
    ];
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    UNITS
        .iter()
        .find(|(size, _)| nanos.is_multiple_of(*size))
        .map_or_else(
            || format!("{nanos}ns"),
            |(size, unit)| format!("{}{unit}", nanos / size),
        )
}

/// `#[serde(with = "eventsync_backends::duration")]` for a `Duration` field.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// `#[serde(with = "eventsync_backends::duration")]` for a `Duration` field.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// `#[serde(with = "eventsync_backends::duration::option")]` for an `Option<Duration>` field.
pub mod option {
    use super::*;

    /// Writes `Some` as [`format`](super::format) does, `None` as nothing.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_str(&super::format(*duration)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads text with a unit, or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(
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
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse("500µs"), Ok(Duration::from_micros(500)));
        assert_eq!(parse("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5 s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn test_parse_refuses_missing_or_unknown_units() {
        assert!(parse("50").unwrap_err().contains("no unit"));
        assert!(parse("5 days").unwrap_err().contains("unknown unit"));
        assert!(parse("5 parsecs").is_err());
        assert!(parse("fast").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn test_format_round_trips_in_the_largest_exact_unit() {
        for text in [
            "50ms", "2s", "1m", "1h", "250us", "0s", "1500ms", "7ns", "90m",
        ] {
            let parsed = parse(text).unwrap();
            assert_eq!(format(parsed), text);
            assert_eq!(parse(&format(parsed)), Ok(parsed));
        }
        assert_eq!(format(Duration::from_millis(2000)), "2s");
        assert_eq!(format(Duration::from_secs(7200)), "2h");
    }
}
