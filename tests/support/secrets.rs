//! The secrets the `secrets` tests plant, and the assertions that none of them is printed.
//! Shared by the library's `tests/secrets.rs` and the command line's `cli/tests/secrets.rs`.

#![allow(dead_code)]

/// Every secret below; none may ever be printed.
pub const SECRETS: [&str; 6] = [
    "AKIA-ACCESS-KEY-ID-111",
    "SECRET-ACCESS-KEY-222",
    "SESSION-TOKEN-333",
    "URL-PASSWORD-444",
    "QUERY-TOKEN-555",
    "ENDPOINT-PASSWORD-666",
];

pub fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

/// Both renderings of a value with `Debug` and `Display`.
pub fn assert_hidden<T: std::fmt::Debug + std::fmt::Display>(what: &str, value: &T) {
    assert_no_secret(what, &format!("{value}"));
    assert_no_secret(what, &format!("{value:?}"));
    assert_no_secret(what, &format!("{value:#?}"));
}
