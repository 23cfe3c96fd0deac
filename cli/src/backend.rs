//! Every call the command line makes into `eventsync_backends::open` and `probe`, in one
//! place: opening a backend from a URL and the config's S3 settings, and the probe.

use std::sync::Arc;

use eventsync_backends::{BackendError, ProbeReport, SyncBackend};

use crate::config::Config;
use eventsync::{Error, Result};

/// The backend options the config asks for: S3 settings, and the tuning's poll bounds and
/// segment sizes.
fn open_options(config: &Config) -> eventsync_backends::open::OpenOptions {
    let s3 = &config.s3;
    eventsync_backends::open::OpenOptions {
        s3: eventsync_backends::S3Options {
            endpoint: s3.endpoint.clone(),
            allow_http: s3.allow_http,
            region: s3.region.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.clone(),
            session_token: s3.session_token.clone(),
            request_timeout: s3.request_timeout,
            max_retries: s3.max_retries,
            retry_timeout: s3.retry_timeout,
        },
        segment_log: config.tuning.segment_log_config(),
    }
}

/// Opens the backend at `url` for `store_id`, with the config's S3 settings.
pub(crate) async fn open_backend(
    config: &Config,
    url: &str,
    store_id: &str,
) -> Result<Arc<dyn SyncBackend>> {
    eventsync_backends::open::open_backend(url, store_id, &open_options(config))
        .await
        .map_err(|e| backend_error(url, e))
}

/// Runs the capability probe against the configured backend.
pub(crate) async fn probe(config: &Config) -> Result<ProbeReport> {
    eventsync_backends::probe::probe_url(&config.backend, &open_options(config))
        .await
        .map_err(|e| backend_error(&config.backend, e))
}

/// A backend URL safe to print.
pub(crate) fn display_url(url: &str) -> String {
    eventsync_backends::redact::redact_url(url)
}

/// A backend error, prefixed with the (redacted) URL it concerns.
pub(crate) fn backend_error(url: &str, error: BackendError) -> Error {
    let message = format!("backend {}: {error}", display_url(url));
    Error::new(Error::from(error).kind(), message)
}
