//! [`CheckThenWriteStore`]: a store whose conditional create is a check, then a write.
//!
//! This is the flaw of S3 servers that implement `If-None-Match: *` as "HEAD the key; if it is
//! absent, write it" without a lock between the two steps. Requests that come one at a time
//! are refused correctly, so a probe that only creates a key twice passes them; racing
//! creates of one key all see it absent and all succeed. Measured on real servers: moto's
//! threaded server let two creates of one key win in 1 round of 250, and s3s-fs in 49 rounds
//! of 50. On such a store two clients would both "win" the same sequence numbers, so the
//! capability probe's race check must refuse it; the tests use this wrapper to show it does.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult, Result,
};

/// Wraps a store; forwards everything, except that a `PutMode::Create` is a HEAD of the key
/// and, if the key is absent, a plain overwrite, with a wait between the two in which racing
/// creates of the same key all pass the check (see the module doc).
///
/// The wait is a yield to the runtime, then [`CheckThenWriteStore::with_window`]'s sleep if
/// one is set. Racers that a single task polls together (`join_all`, as the probe does) over
/// an inner store that answers at once (`InMemory`) therefore all check before any writes,
/// every time; over a store with real latency the window makes the overlap near certain.
pub struct CheckThenWriteStore {
    inner: Arc<dyn ObjectStore>,
    /// How long a create waits between its check and its write, after the yield.
    window: Duration,
}

impl CheckThenWriteStore {
    /// A wrapper whose creates yield once between the check and the write.
    pub fn new(inner: Arc<dyn ObjectStore>) -> CheckThenWriteStore {
        CheckThenWriteStore {
            inner,
            window: Duration::ZERO,
        }
    }

    /// Also sleeps `window` (tokio's clock) between the check and the write, so that racers
    /// running in parallel over a store with real latency overlap too.
    pub fn with_window(mut self, window: Duration) -> CheckThenWriteStore {
        self.window = window;
        self
    }

    /// The flawed create: a HEAD, a wait, then an unconditional write.
    async fn check_then_write(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> Result<PutResult> {
        match self.inner.head(location).await {
            Ok(_) => {
                return Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "CheckThenWriteStore: the key exists".into(),
                });
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        tokio::task::yield_now().await;
        if !self.window.is_zero() {
            tokio::time::sleep(self.window).await;
        }
        opts.mode = PutMode::Overwrite;
        self.inner.put_opts(location, payload, opts).await
    }
}

impl fmt::Debug for CheckThenWriteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckThenWriteStore")
            .field("inner", &self.inner.to_string())
            .field("window", &self.window)
            .finish()
    }
}

impl fmt::Display for CheckThenWriteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckThenWriteStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl super::Intercept for CheckThenWriteStore {
    fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if matches!(opts.mode, PutMode::Create) {
            return self.check_then_write(location, payload, opts).await;
        }
        self.inner.put_opts(location, payload, opts).await
    }
}

crate::intercepting_object_store!(CheckThenWriteStore);

#[cfg(test)]
mod tests {
    use futures::future::join_all;
    use object_store::memory::InMemory;

    use super::*;
    use crate::probe::{ProbeOptions, probe_with};

    fn store() -> CheckThenWriteStore {
        CheckThenWriteStore::new(Arc::new(InMemory::new()))
    }

    async fn create(store: &dyn ObjectStore, key: &str, body: &str) -> Result<PutResult> {
        store
            .put_opts(
                &Path::from(key),
                PutPayload::from(body.to_owned()),
                PutMode::Create.into(),
            )
            .await
    }

    async fn body(store: &dyn ObjectStore, key: &str) -> String {
        let bytes = store.get(&Path::from(key)).await.unwrap().bytes().await;
        String::from_utf8(bytes.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn test_creates_one_at_a_time_are_refused_as_by_a_good_store() {
        let store = store();
        create(&store, "k", "first").await.unwrap();
        let second = create(&store, "k", "second").await;
        assert!(
            matches!(second, Err(object_store::Error::AlreadyExists { .. })),
            "{second:?}"
        );
        assert_eq!(body(&store, "k").await, "first");
    }

    #[tokio::test]
    async fn test_racing_creates_of_one_key_all_succeed_and_the_last_write_stays() {
        let store = store();
        let results = join_all((0..16).map(|racer| {
            let store = &store;
            async move { create(store, "k", &format!("racer-{racer}")).await }
        }))
        .await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 16);
        assert_eq!(body(&store, "k").await, "racer-15");
    }

    /// The store passes the probe's create-twice check and fails its race check, at the
    /// strength `eventsync doctor` uses (16 racers, 20 rounds).
    #[tokio::test]
    async fn test_probe_refuses_it_at_the_race_check() {
        let options = ProbeOptions::default();
        assert_eq!((options.race_width, options.race_rounds), (16, 20));
        let report = probe_with(Arc::new(store()), &Path::from("p"), options).await;
        assert!(!report.passed(), "{report}");
        let names: Vec<_> = report
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.passed))
            .collect();
        assert_eq!(
            names,
            [
                ("create", true),
                ("create-twice", true),
                ("create-race", false)
            ],
            "{report}"
        );
        assert!(
            report.checks[2].detail.contains("16 of 16"),
            "{}",
            report.checks[2].detail
        );
    }
}
