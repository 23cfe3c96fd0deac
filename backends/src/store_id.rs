//! The rules of a store id (and a client id, which follows the same ones): a single, safe
//! object-key segment and folder name. [`StoreId`] is a store id that passed them; object
//! keys ([`StorePaths`](crate::paths::StorePaths)) and the root crate's store folder are
//! built only from one.

use std::fmt;

use crate::BackendError;

/// A store id that is safe as one object-key segment and one folder name (the rules of
/// [`validate_store_id`]). Checked once, when made: code that turns a store id into a key or
/// a path takes this type, so an unchecked id cannot reach one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct StoreId(String);

impl StoreId {
    /// Checks `id` and wraps it; fails with [`BackendError::Invalid`] naming the id (quoted,
    /// escaped and cut, see [`quote_id`]) and the rule it breaks.
    pub fn new(id: impl Into<String>) -> Result<StoreId, BackendError> {
        let id = id.into();
        validate_store_id(&id)?;
        Ok(StoreId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StoreId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for StoreId {
    type Err = BackendError;

    fn from_str(id: &str) -> Result<StoreId, BackendError> {
        StoreId::new(id)
    }
}

impl<'de> serde::Deserialize<'de> for StoreId {
    /// Refuses an id that breaks the rules, as [`StoreId::new`] does.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<StoreId, D::Error> {
        let id = String::deserialize(deserializer)?;
        StoreId::new(id).map_err(serde::de::Error::custom)
    }
}

/// Longest store id accepted.
pub const MAX_STORE_ID_LEN: usize = 128;

/// Checks that a store id is safe as one object-key segment: 1 to 128 characters of
/// `[A-Za-z0-9_-.]`, not starting with `.` (so no `.`, `..`, or hidden names).
pub fn validate_store_id(id: &str) -> Result<(), BackendError> {
    let problem = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_STORE_ID_LEN {
        Some("it is longer than 128 characters")
    } else if id.starts_with('.') {
        Some("it starts with '.'")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        Some("only letters, digits, '_', '-' and '.' are allowed")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(BackendError::Invalid {
            message: format!("invalid store id {}: {why}", quote_id(id)),
        }),
    }
}

/// Most characters of an id quoted in a message; a longer one is cut, with its length.
const QUOTED_ID_CHARS: usize = 64;

/// An id as messages show it: escaped (so NUL or a newline cannot break a line), quoted,
/// and cut after 64 characters (a 10 kB id must not make a 10 kB message).
pub fn quote_id(id: &str) -> String {
    let escaped = id.escape_default().to_string();
    if escaped.chars().count() <= QUOTED_ID_CHARS {
        format!("\"{escaped}\"")
    } else {
        let cut: String = escaped.chars().take(QUOTED_ID_CHARS).collect();
        format!("\"{cut}…\" ({} bytes)", id.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_validate_store_id_accepts_the_safe_charset() {
        for id in ["default", "todo-app_2.v1", "A", &"x".repeat(128)] {
            assert!(validate_store_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn test_validate_store_id_refuses_unsafe_ids_naming_them_escaped() {
        for id in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "..",
            "a\0b",
            "tab\there",
            "é",
            &"x".repeat(129),
            &"y".repeat(10_000),
        ] {
            match validate_store_id(id) {
                Err(BackendError::Invalid { message }) => {
                    let shown: String = id.escape_default().to_string().chars().take(64).collect();
                    assert!(message.contains(&shown), "{message}");
                    assert!(!message.contains('\0'));
                    assert!(message.len() < 200, "{message}");
                }
                other => panic!("{id:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn test_store_id_is_made_only_from_a_valid_id() {
        let id = StoreId::new("todo-app_2.v1").unwrap();
        assert_eq!(
            (id.as_str(), id.to_string()),
            ("todo-app_2.v1", "todo-app_2.v1".into())
        );
        assert_eq!("a".parse::<StoreId>().unwrap(), StoreId::new("a").unwrap());
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(
                matches!(StoreId::new(bad), Err(BackendError::Invalid { .. })),
                "{bad:?}"
            );
            assert!(bad.parse::<StoreId>().is_err(), "{bad:?}");
            let json = serde_json::to_string(bad).unwrap();
            assert!(serde_json::from_str::<StoreId>(&json).is_err(), "{bad:?}");
        }
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"todo-app_2.v1\"");
    }

    #[test]
    fn test_quote_id_escapes_and_cuts_long_ids() {
        assert_eq!(quote_id("a\0b"), "\"a\\u{0}b\"");
        let long = quote_id(&"z".repeat(10_000));
        assert!(
            long.starts_with(&format!("\"{}…\"", "z".repeat(64))),
            "{long}"
        );
        assert!(long.ends_with("(10000 bytes)"), "{long}");
    }
}
