//! Where a test's log lives: a memory bucket behind a fault store, a folder, or the S3
//! server of `EVENTSYNC_TEST_S3_URL`. Each [`Bucket::client`] is a new client of it, with
//! its own caches, as a new process would have.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventsync::backends::conformance::not_run::test_name;
use eventsync::backends::conformance::{S3_NOT_CONFIGURED, in_ci, report_not_run};
use eventsync::backends::fault::{FaultConfig, FaultStore};
use eventsync::backends::{OpenOptions, SegmentLog, SegmentLogConfig, SyncBackend, open_backend};
use object_store::ObjectStore;
use object_store::memory::InMemory;

/// A test's bucket and the store id its clients use.
pub enum Bucket {
    /// One in-memory object store behind a seeded fault store.
    Memory {
        store: Arc<FaultStore>,
        store_id: String,
    },
    /// A URL (`file://` or `s3://`) and the store id to use in it.
    Url { url: String, store_id: String },
}

/// The segment log's settings for tests: short polls.
pub fn fast_polls() -> SegmentLogConfig {
    SegmentLogConfig {
        poll_min: Duration::from_millis(5),
        poll_max: Duration::from_millis(50),
        ..SegmentLogConfig::default()
    }
}

/// The URL of `EVENTSYNC_TEST_S3_URL` and a new store id for this run
/// (`{store_prefix}-{random}`), so that runs never see each other's logs. Where the variable
/// is unset, reports that the calling test (`test`, a test function of the including test
/// binary) did not run and returns `None`; under `CI=true` that is a failure instead.
pub fn s3_run(test: &str, store_prefix: &str) -> Option<(String, String)> {
    let Ok(url) = std::env::var("EVENTSYNC_TEST_S3_URL") else {
        assert!(!in_ci(), "CI requires the S3 run, but {S3_NOT_CONFIGURED}");
        let test = test_name(env!("CARGO_PKG_NAME"), env!("CARGO_CRATE_NAME"), test);
        report_not_run(&test, S3_NOT_CONFIGURED);
        return None;
    };
    let run = eventsync::backends::Entropy::from_os().hex::<4>();
    Some((url, format!("{store_prefix}-{run}")))
}

impl Bucket {
    /// A memory bucket for `store_id` whose requests go through a fault store seeded with
    /// `seed` and configured by `faults`.
    pub fn memory(store_id: &str, seed: u64, faults: FaultConfig) -> Bucket {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        Bucket::Memory {
            store: Arc::new(FaultStore::seeded(inner, seed, faults)),
            store_id: store_id.into(),
        }
    }

    /// A folder bucket in `dir`, for `store_id`.
    pub fn folder(dir: &Path, store_id: &str) -> Bucket {
        Bucket::Url {
            url: format!("file://{}", dir.display()),
            store_id: store_id.into(),
        }
    }

    /// The S3 bucket of `EVENTSYNC_TEST_S3_URL`, for a new store id of this run, or `None`
    /// (reported; a failure under `CI=true`): see [`s3_run`](super::bucket::s3_run).
    pub fn s3(test: &str, store_prefix: &str) -> Option<Bucket> {
        let (url, store_id) = s3_run(test, store_prefix)?;
        Some(Bucket::Url { url, store_id })
    }

    /// Turns a memory bucket's faults off (for the audit after a flaky run).
    pub fn heal(&self) {
        if let Bucket::Memory { store, .. } = self {
            store.set_enabled(false);
        }
    }

    /// A new client of this bucket.
    pub async fn client(&self) -> Arc<dyn SyncBackend> {
        match self {
            Bucket::Memory { store, store_id } => Arc::new(
                SegmentLog::new(store.clone(), "test".into(), store_id, fast_polls())
                    .expect("a valid segment log"),
            ),
            Bucket::Url { url, store_id } => {
                let options = OpenOptions {
                    segment_log: fast_polls(),
                    ..OpenOptions::default()
                };
                open_backend(url, store_id, &options)
                    .await
                    .expect("the backend opens")
            }
        }
    }
}
