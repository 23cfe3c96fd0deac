//! The conformance suite against a real S3 server, described by environment variables:
//! `EVENTSYNC_TEST_S3_URL` (e.g. `s3://eventsync-test`) plus the usual `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
//! (`scripts/s3-local` starts SeaweedFS on 127.0.0.1:8333 and exports exactly these).
//!
//! Without `EVENTSYNC_TEST_S3_URL` every test reports that it did not run, and why
//! (`conformance::report_not_run`: on stderr, and in `scripts/test`'s summary), and fails
//! under CI: CI must exercise the real thing.
#![cfg(feature = "s3")]

use eventsync_backends::conformance::{Fixture, S3_NOT_CONFIGURED, in_ci};
use eventsync_backends::{OpenOptions, open_object_store, redact_url};

async fn s3_fixture() -> Result<Fixture, String> {
    let Ok(url) = std::env::var("EVENTSYNC_TEST_S3_URL") else {
        assert!(
            !in_ci(),
            "CI requires the S3 conformance run, but {S3_NOT_CONFIGURED}"
        );
        return Err(S3_NOT_CONFIGURED.to_owned());
    };
    let (store, prefix) = open_object_store(&url, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", redact_url(&url)));
    // One folder per test run, so runs never see each other's stores or probe keys.
    let run = eventsync_backends::Entropy::from_os().hex::<4>();
    let prefix = prefix.join(format!("conformance-{run}"));
    Ok(Fixture::new("s3", store, prefix).remote())
}

eventsync_backends::conformance_tests!(s3, s3_fixture());
