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

/// S3 options holding every credential of [`SECRETS`], at `endpoint`, with short timeouts
/// and no retries (the endpoint is a closed port in these tests).
pub fn s3_options_at(endpoint: String) -> eventsync::backends::S3Options {
    eventsync::backends::S3Options {
        endpoint: Some(endpoint),
        allow_http: Some(true),
        region: Some("us-east-1".into()),
        access_key_id: Some(SECRETS[0].into()),
        secret_access_key: Some(SECRETS[1].into()),
        session_token: Some(SECRETS[2].into()),
        request_timeout: Some(std::time::Duration::from_millis(500)),
        max_retries: Some(0),
        retry_timeout: Some(std::time::Duration::from_secs(1)),
    }
}

/// Asserts that `text` (the output of `what`) shows none of [`SECRETS`].
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
