//! Every call the command line makes into `eventsync_backends::open` and `probe`, in one
//! place: opening a backend from a URL and the config's S3 settings, and the probe.

use std::sync::Arc;

use eventsync_backends::{BackendError, ProbeReport, SyncBackend};

use crate::config::Config;
use eventsync::{Error, Result};

/// Opens the backend at `url` for `store_id`, with the config's S3 settings.
pub(crate) async fn open_backend(
    config: &Config,
    url: &str,
    store_id: &str,
) -> Result<Arc<dyn SyncBackend>> {
    eventsync_backends::open::open_backend(url, store_id, &config.backend_options)
        .await
        .map_err(|e| backend_error(url, e))
}

/// Runs the capability probe against the configured backend.
pub(crate) async fn probe(config: &Config) -> Result<ProbeReport> {
    eventsync_backends::probe::probe_url(&config.backend, &config.backend_options)
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
