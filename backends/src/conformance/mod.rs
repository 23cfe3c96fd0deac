//! The conformance suite: checks every backend must pass, as `pub async fn`s, in the manner
//! of object_store's `integration` module. Each backend's test file runs the whole list
//! through [`conformance_tests!`](crate::conformance_tests), which makes one `#[tokio::test]`
//! per check, named `{backend}::{check}`.
//!
//! Checks that need only a fresh, empty backend take `&dyn SyncBackend` (they port
//! LiveStore's provider suite); checks that need raw access to the objects (to corrupt,
//! wipe, or inject faults) or several clients take a [`Fixture`].
//!
//! Always compiled (it is small and needs no extra dependency), so the root crate and
//! out-of-tree backends can run it. Checks panic on failure, like assertions.

mod checks;
mod failure_checks;
pub mod not_run;
mod wipe_checks;

pub use crate::fault::{CheckThenWriteStore, CreateFault, FaultStore};
pub use checks::*;
pub use failure_checks::*;
pub use not_run::{S3_NOT_CONFIGURED, in_ci, report_not_run};
pub use wipe_checks::*;

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;

use crate::probe::ProbeOptions;
use crate::segment_log::{SegmentLog, SegmentLogConfig};
use crate::{
    BackendError, GlobalEvent, GlobalSeq, PullPage, SyncBackend, SyncBackendExt, check_gapless,
};

/// One object store location the suite may create stores in, and how hard to push it.
pub struct Fixture {
    /// The backend's name, used in messages: `memory`, `file`, `s3`, `minio`.
    pub name: &'static str,
    /// The raw object store.
    pub store: Arc<dyn ObjectStore>,
    /// The key prefix stores are created under.
    pub prefix: Path,
    /// The config of every client the suite makes.
    pub config: SegmentLogConfig,
    /// How many concurrent pushers the chain check runs (64 locally, 4 against S3).
    pub pushers: usize,
    /// The probe's strength for the probe checks.
    pub probe: ProbeOptions,
    /// The time limit of one check.
    pub timeout: Duration,
    /// Keeps whatever backs the store alive (a temporary folder, a container).
    guard: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("name", &self.name)
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .field("pushers", &self.pushers)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// A fixture over `store` under `prefix`, with local-store settings: 64 pushers, the
    /// full probe, 5 minutes per check.
    pub fn new(name: &'static str, store: Arc<dyn ObjectStore>, prefix: Path) -> Fixture {
        Fixture {
            name,
            store,
            prefix,
            config: SegmentLogConfig::default(),
            pushers: 64,
            probe: ProbeOptions::default(),
            timeout: Duration::from_secs(300),
            guard: None,
        }
    }

    /// A fixture over a fresh `InMemory`.
    pub fn memory() -> Fixture {
        Fixture::new(
            "memory",
            Arc::new(object_store::memory::InMemory::new()),
            Path::from("conformance"),
        )
    }

    /// The settings for a remote S3 server: 4 pushers (a contended create can take seconds
    /// there), 15 minutes per check, and the full probe, 16 racers × 20 rounds, the strength
    /// `eventsync doctor` uses: a check-then-write server can let two creates win in as few as
    /// 1 round of 250, so fewer rounds would prove less than doctor claims. Measured on the
    /// local SeaweedFS (2 cores): `probe_accepts_the_store` takes about 30 s (5 s with the 3
    /// rounds used before), and the whole S3 suite 35 s instead of 15 s.
    pub fn remote(mut self) -> Fixture {
        self.pushers = 4;
        self.timeout = Duration::from_secs(900);
        self
    }

    /// Keeps `guard` alive as long as the fixture (a temporary folder, a container).
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Fixture {
        self.guard = Some(Box::new(guard));
        self
    }

    /// A store id no other test uses: `{label}-{16 random hex digits}`.
    pub fn store_id(&self, label: &str) -> String {
        let suffix = crate::Entropy::from_os().next_u64();
        let label: String = label.chars().take(100).collect();
        format!("{label}-{suffix:016x}")
    }

    /// A new client (its own caches) of store `store_id`.
    pub fn client(&self, store_id: &str) -> SegmentLog {
        self.client_over(self.store.clone(), store_id)
    }

    /// A new client of store `store_id` that talks through `store` (e.g. a [`FaultStore`]
    /// around [`Fixture::store`]).
    pub fn client_over(&self, store: Arc<dyn ObjectStore>, store_id: &str) -> SegmentLog {
        match SegmentLog::new(store, self.prefix.clone(), store_id, self.config.clone()) {
            Ok(log) => log,
            Err(e) => panic!("{}: cannot make a client of {store_id}: {e}", self.name),
        }
    }

    /// Runs one check under the fixture's time limit.
    pub async fn run(&self, check: &str, future: impl Future<Output = ()>) {
        if tokio::time::timeout(self.timeout, future).await.is_err() {
            panic!(
                "{}::{check} did not finish within {:?}",
                self.name, self.timeout
            );
        }
    }
}

/// `count` events after `parent`, from `client`, each with a payload of about
/// `payload_bytes` bytes.
pub fn make_events(
    parent: GlobalSeq,
    count: usize,
    client: &str,
    payload_bytes: usize,
) -> Vec<GlobalEvent> {
    (1..=count as u64)
        .map(|i| {
            let seq = GlobalSeq(parent.0 + i);
            GlobalEvent {
                seq_num: seq,
                parent_seq_num: GlobalSeq(seq.0 - 1),
                name: "v1.TodoCreated".into(),
                args: serde_json::json!({
                    "id": format!("{client}-{}", seq.0),
                    "text": "x".repeat(payload_bytes),
                }),
                client_id: client.to_owned(),
                session_id: "session-1".into(),
            }
        })
        .collect()
}

/// Every item of a non-live pull from `cursor`, errors included, in order.
pub async fn pull_items(
    backend: &dyn SyncBackend,
    cursor: GlobalSeq,
) -> Vec<Result<PullPage, BackendError>> {
    match backend.pull(cursor, false).await {
        Ok(stream) => stream.collect().await,
        Err(e) => vec![Err(e)],
    }
}

/// The events of a non-live pull from `cursor`; panics on any error.
pub async fn pull_events(backend: &dyn SyncBackend, cursor: GlobalSeq) -> Vec<GlobalEvent> {
    let mut events = Vec::new();
    for item in pull_items(backend, cursor).await {
        match item {
            Ok(page) => events.extend(page.events),
            Err(e) => panic!("pull from {cursor} failed: {e}"),
        }
    }
    events
}

/// Pushes `events` in batches of `batch` on an otherwise idle backend; panics on any error.
pub async fn push_in_batches(backend: &dyn SyncBackend, events: &[GlobalEvent], batch: usize) {
    for chunk in events.chunks(batch) {
        if let Err(e) = backend.push(chunk.to_vec()).await {
            panic!(
                "push of {}..={} failed: {e}",
                chunk[0].seq_num,
                chunk[chunk.len() - 1].seq_num
            );
        }
    }
}

/// Asserts that `events` are `first, first + 1, ...`, each the parent of the next: one
/// gapless chain ([`check_gapless`]).
pub fn assert_gapless_from(first: GlobalSeq, events: &[GlobalEvent]) {
    if let Err(gap) = check_gapless(first, events) {
        panic!("not one gapless chain from {first}: {gap}");
    }
}

/// The whole log, checked gapless ([`SyncBackendExt::read_all_checked`]); panics on any error.
pub async fn read_all(backend: &dyn SyncBackend) -> Vec<GlobalEvent> {
    match backend.read_all_checked().await {
        Ok(events) => events,
        Err(error) => panic!("reading the whole log failed: {error}"),
    }
}

/// Calls `$callback! { $($args)* check, check, ... }` with the names of the checks that take
/// only a fresh `&dyn SyncBackend`, so that a runner of backends made some other way (the
/// server's `eventsync+ws` tests) runs the same list as [`conformance_tests!`] without
/// repeating it.
///
/// ```text
/// eventsync_backends::backend_checks!(my_runner! { memory; });
/// // expands to my_runner! { memory; empty_pull_gives_one_no_more_page, ... }
/// ```
#[macro_export]
macro_rules! backend_checks {
    ($callback:path { $($args:tt)* }) => {
        $callback! { $($args)*
            empty_pull_gives_one_no_more_page,
            live_pull_starts_with_no_more_page,
            pull_with_cursor,
            live_pull_survives_idle_and_receives_later_event,
            streams_dozens_of_large_events,
            streams_thousands_of_small_events,
            paginates_ten_thousand_events_from_a_middle_cursor,
            concurrent_pushes_sharing_a_parent_have_one_winner,
            push_behind_head_gives_server_ahead,
            malformed_batches_are_invalid,
            oversize_event_is_invalid,
            backend_info_names_the_store
        }
    };
}

/// Expands to one `#[tokio::test]` per conformance check, in a module named after the
/// backend, so test names read `memory::pull_with_cursor`.
///
/// `$fixture` is an expression giving a future of `Result<Fixture, String>`; `Err(reason)`
/// means the backend is not available here, and each test then reports itself as not run
/// with that reason ([`report_not_run`]) instead of passing in silence. A backend that is
/// required (S3 under `CI=true`) should panic in the expression instead.
///
/// ```text
/// eventsync_backends::conformance_tests!(memory, async { Ok(Fixture::memory()) });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $fixture:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::backend_checks!($crate::conformance_tests { @backend $name, $fixture; });
            $crate::conformance_tests!(@fixture $name, $fixture;
                concurrent_pushers_build_one_gapless_chain,
                live_pull_sees_other_clients,
                cold_client_finds_the_tail,
                ambiguous_writes_succeed_exactly_once,
                lost_race_after_ambiguous_write_is_server_ahead,
                corrupted_segment_fails_pull_naming_key,
                truncated_segment_fails_pull_naming_key,
                foreign_segment_fails_pull_naming_key,
                missing_segment_fails_pull_naming_key,
                wiped_store_changes_backend_id,
                push_after_wipe_is_backend_id_mismatch,
                live_pull_notices_a_wiped_store,
                racing_creators_share_one_backend_id,
                invalid_store_id_is_refused,
                probe_accepts_the_store,
                probe_refuses_a_store_that_ignores_create,
                probe_refuses_a_store_that_checks_then_writes
            );
        }
    };
    (@fixture_or_not_run $name:ident, $check:ident, $fixture:expr) => {
        match $fixture.await {
            Ok(fixture) => fixture,
            Err(reason) => {
                let test = $crate::conformance::not_run::test_name(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_CRATE_NAME"),
                    concat!(stringify!($name), "::", stringify!($check)),
                );
                $crate::conformance::report_not_run(&test, &reason);
                return;
            }
        }
    };
    (@backend $name:ident, $fixture:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let fixture =
                    $crate::conformance_tests!(@fixture_or_not_run $name, $check, $fixture);
                let backend = fixture.client(&fixture.store_id(stringify!($check)));
                fixture
                    .run(stringify!($check), $crate::conformance::$check(&backend))
                    .await;
            }
        )*
    };
    (@fixture $name:ident, $fixture:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let fixture =
                    $crate::conformance_tests!(@fixture_or_not_run $name, $check, $fixture);
                fixture
                    .run(stringify!($check), $crate::conformance::$check(&fixture))
                    .await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_remote_fixture_probes_as_hard_as_doctor() {
        let remote = Fixture::memory().remote();
        assert_eq!(remote.probe, ProbeOptions::default());
        assert_eq!(
            (remote.probe.race_width, remote.probe.race_rounds),
            (16, 20)
        );
    }
}
