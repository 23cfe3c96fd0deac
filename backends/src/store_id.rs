//! The rules of a store id (and a client id, which follows the same ones): a single, safe
//! object-key segment and folder name.

use crate::BackendError;

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
