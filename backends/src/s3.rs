//! S3 and S3-compatible servers as the object store under a segment log: [`S3Options`] (the
//! one type of S3 settings, also the `[s3]` table of the command line's config file), and
//! the object_store client they configure, with bounded retries.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path;
use serde::Deserialize;

use crate::BackendError;
use crate::redact::redact_url;

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
    #[serde(
        alias = "access_key_id",
        deserialize_with = "crate::redact::deserialize_secret"
    )]
    pub access_key_id: Option<String>,
    /// The secret access key (`AWS_SECRET_ACCESS_KEY`).
    #[serde(
        alias = "secret_access_key",
        deserialize_with = "crate::redact::deserialize_secret"
    )]
    pub secret_access_key: Option<String>,
    /// A session token (`AWS_SESSION_TOKEN`).
    #[serde(
        alias = "session_token",
        deserialize_with = "crate::redact::deserialize_secret"
    )]
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

#[cfg(feature = "s3")]
pub(crate) fn open_s3(
    url: &url::Url,
    options: &S3Options,
) -> Result<(Arc<dyn ObjectStore>, Path), BackendError> {
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
    Ok((Arc::new(store), prefix))
}

#[cfg(not(feature = "s3"))]
pub(crate) fn open_s3(
    url: &url::Url,
    _options: &S3Options,
) -> Result<(Arc<dyn ObjectStore>, Path), BackendError> {
    Err(BackendError::Invalid {
        message: format!(
            "{} needs S3 support, which this build left out (crate feature \"s3\")",
            redact_url(url.as_str())
        ),
    })
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
}
