//! A backend from a URL and options: `memory://`, `file:///abs/path` or a relative path,
//! `s3://bucket/prefix`. Also the store id rules and URL redaction.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path;
use serde::Deserialize;

use crate::segment_log::{SegmentLog, SegmentLogConfig};
use crate::{BackendError, SyncBackend};

/// Everything [`open_backend`] needs besides the URL and the store id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct OpenOptions {
    /// S3 settings; each one set here overrides the `AWS_*` environment variable.
    pub s3: S3Options,
    /// Segment sizes, page sizes and poll intervals.
    #[serde(alias = "segment_log")]
    pub segment_log: SegmentLogConfig,
}

/// S3 settings (the `[s3]` table of `eventsync.toml`). Keys in kebab-case or snake_case.
/// Unset fields fall back to the `AWS_*` environment variables, then to object_store's
/// defaults. `Debug` never prints the secrets.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct S3Options {
    /// The server, e.g. `http://127.0.0.1:8333` for a local S3 server (`AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Allow plain `http://` endpoints (`AWS_ALLOW_HTTP`); needed for local servers.
    #[serde(alias = "allow_http")]
    pub allow_http: Option<bool>,
    /// The region (`AWS_REGION`).
    pub region: Option<String>,
    /// The access key id (`AWS_ACCESS_KEY_ID`).
    #[serde(alias = "access_key_id", deserialize_with = "deserialize_secret")]
    pub access_key_id: Option<String>,
    /// The secret access key (`AWS_SECRET_ACCESS_KEY`).
    #[serde(alias = "secret_access_key", deserialize_with = "deserialize_secret")]
    pub secret_access_key: Option<String>,
    /// A session token (`AWS_SESSION_TOKEN`).
    #[serde(alias = "session_token", deserialize_with = "deserialize_secret")]
    pub session_token: Option<String>,
    /// The timeout of one HTTP request, as text (`"30s"`); object_store's default is 30 s.
    #[serde(
        alias = "request_timeout",
        deserialize_with = "crate::duration::option::deserialize"
    )]
    pub request_timeout: Option<Duration>,
    /// How many times one request is retried after a transient failure (a refused
    /// connection, a timeout, a 5xx). Default 3; object_store's own default of 10, with
    /// backoff up to 15 s, keeps a command waiting minutes on a dead endpoint, and the
    /// leader retries failed syncs on its own anyway.
    #[serde(alias = "max_retries")]
    pub max_retries: Option<usize>,
    /// The longest time spent retrying one request, as text (`"10s"`). Default 10 s
    /// (object_store's: 3 min). With `request_timeout`, this bounds how long one backend
    /// call can take: about `(max_retries + 1) × request_timeout`, and at most this plus
    /// one `request_timeout`.
    #[serde(
        alias = "retry_timeout",
        deserialize_with = "crate::duration::option::deserialize"
    )]
    pub retry_timeout: Option<Duration>,
}

/// Retries of one S3 request when [`S3Options::max_retries`] is not set.
pub const DEFAULT_S3_MAX_RETRIES: usize = 3;
/// Time spent retrying one S3 request when [`S3Options::retry_timeout`] is not set.
pub const DEFAULT_S3_RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before retrying a failed S3 request. object_store draws each later wait
/// at random, up to twice the one before, and never longer than [`S3_MAX_BACKOFF`].
pub const S3_INIT_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts of one S3 request.
pub const S3_MAX_BACKOFF: Duration = Duration::from_secs(2);

impl S3Options {
    /// The longest one S3 request can take, retries included, when every attempt runs into
    /// `request_timeout`: `max_retries + 1` attempts and the waits between them (100 ms,
    /// then at most double the one before, capped at [`S3_MAX_BACKOFF`]). object_store also
    /// stops retrying once `retry_timeout` has passed, so it is never more than that plus one
    /// wait and one attempt. `None` when `request_timeout` is not set.
    pub fn request_budget(&self) -> Option<Duration> {
        let attempt = self.request_timeout?;
        let retries = self.max_retries.unwrap_or(DEFAULT_S3_MAX_RETRIES);
        let retry_timeout = self.retry_timeout.unwrap_or(DEFAULT_S3_RETRY_TIMEOUT);
        let (mut waits, mut wait, mut counted) = (Duration::ZERO, S3_INIT_BACKOFF, 0);
        while counted < retries && wait < S3_MAX_BACKOFF {
            waits += wait;
            wait = (wait * 2).min(S3_MAX_BACKOFF);
            counted += 1;
        }
        let times = |duration: Duration, count: usize| {
            duration.saturating_mul(u32::try_from(count).unwrap_or(u32::MAX))
        };
        let waits = waits.saturating_add(times(S3_MAX_BACKOFF, retries - counted));
        let by_count = times(attempt, retries.saturating_add(1)).saturating_add(waits);
        let by_time = retry_timeout
            .saturating_add(S3_MAX_BACKOFF)
            .saturating_add(attempt);
        Some(by_count.min(by_time))
    }
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |value: &Option<String>| value.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint.as_deref().map(redact_url))
            .field("allow_http", &self.allow_http)
            .field("region", &self.region)
            .field("access_key_id", &redacted(&self.access_key_id))
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

/// Deserializes a credential (`#[serde(deserialize_with = "deserialize_secret")]` on an
/// `Option<String>` field): a string, and for any other type an error that does not quote
/// the value, which serde's own "invalid type: integer `123`" message would.
pub fn deserialize_secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct SecretVisitor;

    fn hidden<E: serde::de::Error>() -> E {
        E::custom("expected a string (the value is not shown: it is a credential)")
    }

    impl serde::de::Visitor<'_> for SecretVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<String, E> {
            Ok(value.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, value: String) -> Result<String, E> {
            Ok(value)
        }
        // Every visitor method whose default error would quote the value.
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<String, E> {
            Err(hidden())
        }
    }

    // `deserialize_any`: `deserialize_string` lets some formats (serde_json) report a
    // wrong type themselves, quoting the value, without asking the visitor.
    deserializer.deserialize_any(SecretVisitor).map(Some)
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

/// The URL with any user name, password and secret-looking query parameters removed, safe
/// to print. A path that is not a URL is returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // A relative path, or a URL that does not parse (a bad host, say): cut anything
        // that looks like a query, and anything that looks like userinfo, since the text is
        // quoted in the "does not parse" error.
        return strip_userinfo(url.split('?').next().unwrap_or_default());
    };
    if parsed.cannot_be_a_base() {
        return format!("{}:", parsed.scheme());
    }
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(name, _)| !looks_secret(name))
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.to_string()
}

/// `scheme://user:password@host/...` without `user:password@`, by text alone, for strings
/// the URL parser refuses. When the text starts with a scheme (`s3:`, `ws:`), everything
/// between the slashes after it and the last `@` goes, so no reading of the rest can find
/// userinfo in it: special schemes need no slashes (`ws::pw@host`) and skip extra ones
/// (`ws:///a@b`), and the parser ignores tabs and newlines anywhere. Text without a
/// scheme (a relative path) is left alone. Cutting too much is harmless here; cutting too
/// little is a leak.
fn strip_userinfo(text: &str) -> String {
    let text: String = text
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let trimmed = text.trim_start_matches(|c: char| c <= ' ');
    let is_scheme = |scheme: &str| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    let Some(colon) = trimmed.find(':').filter(|&at| is_scheme(&trimmed[..at])) else {
        return text;
    };
    let (scheme, rest) = trimmed.split_at(colon + 1);
    let slashes = rest.len() - rest.trim_start_matches(['/', '\\']).len();
    match rest.rfind('@') {
        Some(at) => format!("{scheme}{}{}", &rest[..slashes], &rest[at + 1..]),
        None => text,
    }
}

fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "key",
        "secret",
        "token",
        "password",
        "signature",
        "credential",
        "sig",
        "auth",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// The kind of store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    File,
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    S3,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::File => "file",
            Kind::S3 => "s3",
        }
    }
}

/// The object store and key prefix a URL names, without a store on top: what the probe and
/// the benches use. `memory://` gives a new, empty `InMemory` on every call.
pub fn open_object_store(
    url: &str,
    options: &OpenOptions,
) -> Result<(Arc<dyn ObjectStore>, Path), BackendError> {
    open_store(url, options).map(|(store, prefix, _)| (store, prefix))
}

fn open_store(
    url: &str,
    options: &OpenOptions,
) -> Result<(Arc<dyn ObjectStore>, Path, Kind), BackendError> {
    let invalid = |message: String| BackendError::Invalid { message };
    if !url.contains("://") {
        if url.is_empty() {
            return Err(invalid("the backend URL is empty".into()));
        }
        return open_folder(std::path::Path::new(url));
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        invalid(format!(
            "backend URL {} does not parse: {e}",
            redact_url(url)
        ))
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(format!(
            "backend URL {} holds credentials; put them in AWS_* variables or the [s3] settings instead",
            redact_url(url)
        )));
    }
    match parsed.scheme() {
        "memory" => {
            let prefix = Path::parse(parsed.path().trim_matches('/'))
                .map_err(|e| invalid(format!("bad prefix in {url}: {e}")))?;
            Ok((
                Arc::new(object_store::memory::InMemory::new()),
                prefix,
                Kind::Memory,
            ))
        }
        "file" => {
            let path = parsed.to_file_path().map_err(|()| {
                invalid(format!(
                    "{url} is not a local absolute path; write file:///abs/path or a relative path"
                ))
            })?;
            open_folder(&path)
        }
        "s3" | "s3a" => open_s3(&parsed, &options.s3),
        "http" | "https" => Err(invalid(format!(
            "{} is an HTTP URL; for S3 or a local S3 server use s3://bucket/prefix and set the endpoint (AWS_ENDPOINT_URL or [s3] endpoint)",
            redact_url(url)
        ))),
        other => Err(invalid(format!(
            "unknown backend scheme \"{other}\" in {}; use memory://, file:///path, a relative path or s3://bucket/prefix",
            redact_url(url)
        ))),
    }
}

/// A local folder (created when missing), with fsync on: a push returns only once the
/// segment and its directory entry are on disk.
fn open_folder(path: &std::path::Path) -> Result<(Arc<dyn ObjectStore>, Path, Kind), BackendError> {
    std::fs::create_dir_all(path).map_err(|e| BackendError::Invalid {
        message: format!("cannot create backend folder {}: {e}", path.display()),
    })?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(path)
        .map_err(|e| BackendError::Invalid {
            message: format!("cannot open backend folder {}: {e}", path.display()),
        })?
        .with_fsync(true);
    Ok((Arc::new(store), Path::default(), Kind::File))
}

#[cfg(feature = "s3")]
fn open_s3(
    url: &url::Url,
    options: &S3Options,
) -> Result<(Arc<dyn ObjectStore>, Path, Kind), BackendError> {
    use object_store::ClientConfigKey;
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};

    let invalid = |message: String| BackendError::Invalid { message };
    let bucket = url.host_str().unwrap_or_default();
    if bucket.is_empty() {
        return Err(invalid(format!(
            "{} names no bucket",
            redact_url(url.as_str())
        )));
    }
    let prefix = Path::parse(url.path().trim_matches('/'))
        .map_err(|e| invalid(format!("bad prefix in {}: {e}", redact_url(url.as_str()))))?;
    let endpoints = [
        ("the [s3] endpoint", options.endpoint.clone()),
        ("AWS_ENDPOINT_URL", std::env::var("AWS_ENDPOINT_URL").ok()),
        ("AWS_ENDPOINT", std::env::var("AWS_ENDPOINT").ok()),
    ];
    for (name, endpoint) in endpoints {
        // object_store quotes the request URL in its errors: credentials in the endpoint
        // would end up in every message and log line.
        if let Some(endpoint) = endpoint
            && let Ok(parsed) = url::Url::parse(&endpoint)
            && (!parsed.username().is_empty() || parsed.password().is_some())
        {
            return Err(invalid(format!(
                "{name} {} holds credentials; put them in AWS_* variables or the [s3] settings instead",
                redact_url(&endpoint)
            )));
        }
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(allow_http) = options.allow_http {
        builder = builder.with_allow_http(allow_http);
    }
    if let Some(region) = &options.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &options.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &options.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &options.session_token {
        builder = builder.with_token(token);
    }
    if let Some(timeout) = options.request_timeout {
        builder = builder.with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            format!("{}ms", timeout.as_millis()),
        );
    }
    // Bounded retries: a dead endpoint must fail a command in seconds, not minutes.
    builder = builder.with_retry(object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: S3_INIT_BACKOFF,
            max_backoff: S3_MAX_BACKOFF,
            base: 2.0,
        },
        max_retries: options.max_retries.unwrap_or(DEFAULT_S3_MAX_RETRIES),
        retry_timeout: options.retry_timeout.unwrap_or(DEFAULT_S3_RETRY_TIMEOUT),
    });
    let store = builder.build().map_err(|e| {
        // Builder errors name the missing or bad setting, never its secret value.
        invalid(format!(
            "cannot configure S3 for {}: {e}",
            redact_url(url.as_str())
        ))
    })?;
    Ok((Arc::new(store), prefix, Kind::S3))
}

#[cfg(not(feature = "s3"))]
fn open_s3(
    url: &url::Url,
    _options: &S3Options,
) -> Result<(Arc<dyn ObjectStore>, Path, Kind), BackendError> {
    Err(BackendError::Invalid {
        message: format!(
            "{} needs S3 support, which this build left out (crate feature \"s3\")",
            redact_url(url.as_str())
        ),
    })
}

/// Opens the backend of store `store_id` at `url`: a [`SegmentLog`] over the object store
/// the URL names. Fails with [`BackendError::Invalid`] for a bad URL, store id or option.
/// Nothing is read or written yet. Each `memory://` call gives a new, empty store; to share
/// one in-memory store between clients, build [`SegmentLog::new`] over one `InMemory`.
pub async fn open_backend(
    url: &str,
    store_id: &str,
    options: &OpenOptions,
) -> Result<Arc<dyn SyncBackend>, BackendError> {
    validate_store_id(store_id)?;
    let (store, prefix, kind) = open_store(url, options)?;
    let log = SegmentLog::new(store, prefix, store_id, options.segment_log.clone())?
        .with_description(kind.name(), &redact_url(url));
    Ok(Arc::new(log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_request_budget_follows_the_retry_settings() {
        let options =
            |timeout: u64, retries: Option<usize>, retry_timeout: Option<u64>| S3Options {
                request_timeout: Some(Duration::from_millis(timeout)),
                max_retries: retries,
                retry_timeout: retry_timeout.map(Duration::from_secs),
                ..S3Options::default()
            };
        // Defaults: 4 attempts of 1 s, waits of at most 0.1, 0.2 and 0.4 s.
        assert_eq!(
            options(1000, None, None).request_budget(),
            Some(Duration::from_millis(4700))
        );
        assert_eq!(
            options(1000, Some(0), None).request_budget(),
            Some(Duration::from_secs(1))
        );
        // Waits grow to the cap: 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 2 + 2 = 7.1 s.
        assert_eq!(
            options(100, Some(7), Some(60)).request_budget(),
            Some(Duration::from_millis(800 + 7100))
        );
        // retry_timeout cuts it: 1 s of retrying, a last wait (2 s) and a last attempt.
        assert_eq!(
            options(1000, Some(1000), Some(1)).request_budget(),
            Some(Duration::from_secs(4))
        );
        // Absurd settings saturate instead of overflowing.
        let huge = options(1000, Some(usize::MAX), Some(u64::MAX)).request_budget();
        assert!(
            huge.is_some_and(|budget| budget > Duration::from_secs(u64::from(u32::MAX))),
            "{huge:?}"
        );
        assert_eq!(S3Options::default().request_budget(), None);
    }

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
    fn test_redact_url_drops_userinfo_and_secret_query() {
        assert_eq!(
            redact_url("s3://AKIA:s3cr3t@bucket/prefix?region=eu&X-Amz-Signature=abc&token=t"),
            "s3://bucket/prefix?region=eu"
        );
        assert_eq!(redact_url("memory://"), "memory://");
        assert_eq!(redact_url("./data/x"), "./data/x");
        assert_eq!(
            redact_url("s3://key:secret@bucket/prefix"),
            "s3://bucket/prefix"
        );
        assert_eq!(redact_url("s3://bucket/a@b"), "s3://bucket/a@b");
        assert_eq!(redact_url("some/folder"), "some/folder");
    }

    #[test]
    fn test_fuzz_regression_userinfo_in_path_after_control_characters() {
        // fuzz/regressions/config_url/userinfo-in-path: URL parsing trims the leading and
        // trailing control characters; the second "user:password@" is path text.
        let url = include_str!("../../fuzz/regressions/config_url/userinfo-in-path");
        let redacted = redact_url(url);
        assert!(redacted.starts_with("s3://bucket/p%0E"), "{redacted}");
        match open_object_store(url, &OpenOptions::default()) {
            Err(BackendError::Invalid { message }) => {
                assert!(message.contains("holds credentials"), "{message}");
                assert!(message.contains(&redacted), "{message}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a URL with credentials was accepted"),
        }
    }

    #[test]
    fn test_fuzz_regression_unparsable_url_keeps_no_userinfo() {
        // fuzz/regressions/config_url/unparsable-url-with-userinfo: a URL the parser refuses
        // was returned as it was, userinfo included, and quoted in "does not parse".
        let url = include_str!("../../fuzz/regressions/config_url/unparsable-url-with-userinfo");
        let redacted = redact_url(url);
        assert!(!redacted.contains("@key"), "{redacted:?}");
        assert!(redacted.starts_with("b3://key"), "{redacted:?}");
        let bad_host = "s3://AKIA:hunter22@buc ket/p";
        assert_eq!(redact_url(bad_host), "s3://buc ket/p");
        match open_object_store(bad_host, &OpenOptions::default()) {
            Err(BackendError::Invalid { message }) => {
                assert!(!message.contains("hunter22"), "{message}");
                assert!(message.contains("does not parse"), "{message}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("{bad_host} was accepted"),
        }
        assert_eq!(redact_url("a/b@c/d"), "a/b@c/d", "a path is left alone");
        // fuzz/regressions/config_url/special-scheme-extra-slashes: `ws:///a@b` parses with
        // userinfo `a` (special schemes skip extra slashes), so cutting only up to the
        // first `/` left one in.
        let url = include_str!("../../fuzz/regressions/config_url/special-scheme-extra-slashes");
        let redacted = redact_url(url);
        assert!(!redacted.contains('@'), "{redacted:?}");
        let url = include_str!("../../fuzz/regressions/config_url/special-scheme-without-slashes");
        assert!(!redact_url(url).contains('@'), "{:?}", redact_url(url));
        for sneaky in [
            "s3:/\t/AKIA:hunter22@buc ket/p",
            "ws:///AKIA:hunter22@h ost/p",
            "ws::hunter22@h ost/p",
            "  http:AKIA:hunter22@h ost",
        ] {
            assert!(!redact_url(sneaky).contains("hunter22"), "{sneaky:?}");
        }
    }

    #[test]
    fn test_s3_options_debug_redacts_secrets() {
        let options = S3Options {
            access_key_id: Some("AKIAEXAMPLE".into()),
            secret_access_key: Some("very-secret".into()),
            session_token: Some("tok".into()),
            region: Some("eu-west-1".into()),
            ..S3Options::default()
        };
        let debug = format!("{options:?}");
        assert!(!debug.contains("AKIAEXAMPLE"));
        assert!(!debug.contains("very-secret"));
        assert!(!debug.contains("tok\""));
        assert!(debug.contains("eu-west-1"));
    }

    #[test]
    fn test_credential_of_the_wrong_type_is_refused_without_quoting_it() {
        for json in [
            r#"{"secret-access-key": 123456789}"#,
            r#"{"access_key_id": true}"#,
            r#"{"session-token": 1.5e300}"#,
            r#"{"secret_access_key": ["s3cr3t-in-a-list"]}"#,
        ] {
            let error = serde_json::from_str::<S3Options>(json)
                .unwrap_err()
                .to_string();
            for shown in ["123456789", "true", "1.5e300", "s3cr3t-in-a-list"] {
                assert!(!error.contains(shown), "{json}: {error}");
            }
        }
        let options: S3Options = serde_json::from_str(r#"{"secret-access-key": "ok"}"#).unwrap();
        assert_eq!(options.secret_access_key.as_deref(), Some("ok"));
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

    #[test]
    fn test_options_deserialize_from_kebab_and_snake_keys() {
        let kebab: OpenOptions = serde_json::from_str(
            r#"{"s3": {"allow-http": true, "request-timeout": "5s"}, "segment-log": {"page-events": 3}}"#,
        )
        .unwrap();
        let snake: OpenOptions = serde_json::from_str(
            r#"{"s3": {"allow_http": true, "request_timeout": "5s"}, "segment_log": {"page_events": 3}}"#,
        )
        .unwrap();
        assert_eq!(kebab, snake);
        assert_eq!(kebab.s3.allow_http, Some(true));
        assert_eq!(kebab.s3.request_timeout, Some(Duration::from_secs(5)));
        assert!(serde_json::from_str::<S3Options>(r#"{"secret": "x"}"#).is_err());
    }

    #[tokio::test]
    async fn test_open_backend_refuses_bad_urls_and_ids() {
        let options = OpenOptions::default();
        for url in [
            "http://127.0.0.1:9000/bucket",
            "ftp://x",
            "s3://key:secret@bucket",
            "",
        ] {
            match open_backend(url, "s", &options).await {
                Err(BackendError::Invalid { message }) => assert!(!message.contains("secret")),
                other => panic!("{url} gave {other:?}"),
            }
        }
        assert!(matches!(
            open_backend("memory://", "../x", &options).await,
            Err(BackendError::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn test_open_backend_describes_memory_and_folders() {
        let options = OpenOptions::default();
        let memory = open_backend("memory://", "s", &options).await.unwrap();
        assert_eq!(memory.info().name, "memory");
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("nested/backend");
        let url = format!("file://{}", folder.display());
        let file = open_backend(&url, "s", &options).await.unwrap();
        assert_eq!(file.info().name, "file");
        assert!(folder.is_dir(), "the folder is created");
    }
}
