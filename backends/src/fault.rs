//! [`FaultStore`]: an object store wrapper that misbehaves on purpose, for tests.
//!
//! Two modes, usable together:
//!
//! - **Queued faults** ([`FaultStore::inject`]): the next conditional creates fail in a chosen
//!   way. The conformance suite uses these to hit one ambiguous case at a time.
//! - **Seeded faults** ([`FaultStore::seeded`]): every request draws from an rng seeded once,
//!   with the probabilities of a [`FaultConfig`]: latency, 503-like transient errors, creates
//!   that fail before the write, writes that land but answer with an error (the ambiguous
//!   case: a timeout, or the `AlreadyExists` of object_store's own retry finding its write),
//!   lost responses to reads and writes, and slow LISTs. The simulation uses this mode.
//!
//! Every injected fault is logged (`tracing`, debug level, with the seed) and counted by
//! [`FaultKind`]; [`FaultStore::counts`] reads the counters, and in seeded mode
//! [`FaultStore::journal`] lists every fault in the order it hit. The sequence of draws
//! follows the order of requests, so the same seed gives the same faults only when the
//! requests come in the same order (the simulation makes sure they do).
//!
//! [`CheckThenWriteStore`] is the other broken store the tests use: its creates are right one
//! at a time but not under a race (`fault/check_then_write.rs`). [`RecordingStore`] does not
//! misbehave: it records the GETs and LISTs made through it (`fault/recording.rs`).

mod check_then_write;
mod intercept;
mod recording;

pub use check_then_write::CheckThenWriteStore;
pub use intercept::Intercept;
pub use recording::{Listing, RecordingStore};

// What `intercepting_object_store!` names from outside this crate.
#[doc(hidden)]
pub use async_trait::async_trait;
#[doc(hidden)]
pub use bytes::Bytes;
#[doc(hidden)]
pub use futures::stream::BoxStream;

use std::collections::VecDeque;
use std::fmt;
use std::ops::{AddAssign, Range};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// One way a conditional create (`PutMode::Create`) can go wrong, queued with
/// [`FaultStore::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateFault {
    /// The write lands, then the reply is lost: the caller gets a `Generic` error (a timeout).
    LoseReply,
    /// The write lands, the reply is lost, object_store retries and gets `AlreadyExists`.
    ExistsAfterWrite,
    /// The request fails before anything is written, with a `Generic` error.
    FailBeforeWrite,
}

/// The kinds of seeded faults, each counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A request waited up to [`FaultConfig::max_latency`] before it was served.
    Latency,
    /// A request failed with a 503-like `Generic` error before the store saw it.
    Transient,
    /// A conditional create failed before anything was written (a connection reset).
    FailBeforeWrite,
    /// A conditional create landed, then the caller got a `Generic` error (a timeout).
    ErrorAfterWrite,
    /// A conditional create landed, then the caller got `AlreadyExists` (a retry found it).
    ExistsAfterWrite,
    /// A read or an unconditional write was served, then the reply was lost (`Generic`).
    LostResponse,
    /// A LIST waited [`FaultConfig::slow_list_delay`] before its first item.
    SlowList,
}

impl FaultKind {
    /// Every kind, in the order of [`FaultCounts`]' fields.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Latency,
        FaultKind::Transient,
        FaultKind::FailBeforeWrite,
        FaultKind::ErrorAfterWrite,
        FaultKind::ExistsAfterWrite,
        FaultKind::LostResponse,
        FaultKind::SlowList,
    ];

    /// The kind's name, as in logs and reports: `error-after-write`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Latency => "latency",
            FaultKind::Transient => "transient",
            FaultKind::FailBeforeWrite => "fail-before-write",
            FaultKind::ErrorAfterWrite => "error-after-write",
            FaultKind::ExistsAfterWrite => "exists-after-write",
            FaultKind::LostResponse => "lost-response",
            FaultKind::SlowList => "slow-list",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The probabilities (0.0 to 1.0, per request) and sizes of seeded faults. `Default` injects
/// nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct FaultConfig {
    /// Chance that any request first waits a random time up to `max_latency`.
    pub latency: f64,
    /// The longest injected wait.
    pub max_latency: Duration,
    /// Chance that any request fails at once with a 503-like `Generic` error.
    pub transient: f64,
    /// Chance that a conditional create fails before writing.
    pub fail_before_write: f64,
    /// Chance that a conditional create lands and then answers with a `Generic` error.
    pub error_after_write: f64,
    /// Chance that a conditional create lands and then answers with `AlreadyExists`.
    pub exists_after_write: f64,
    /// Chance that a read or an unconditional write is served and its reply lost.
    pub lost_response: f64,
    /// Chance that a LIST waits `slow_list_delay` before its first item.
    pub slow_list: f64,
    /// How long a slow LIST waits.
    pub slow_list_delay: Duration,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            latency: 0.0,
            max_latency: Duration::ZERO,
            transient: 0.0,
            fail_before_write: 0.0,
            error_after_write: 0.0,
            exists_after_write: 0.0,
            lost_response: 0.0,
            slow_list: 0.0,
            slow_list_delay: Duration::ZERO,
        }
    }
}

impl FaultConfig {
    /// A hostile but workable network: about one request in six is slowed, one in twenty
    /// fails outright, and one create in eight has an ambiguous outcome.
    pub fn hostile() -> FaultConfig {
        FaultConfig {
            latency: 0.15,
            max_latency: Duration::from_millis(40),
            transient: 0.05,
            fail_before_write: 0.05,
            error_after_write: 0.07,
            exists_after_write: 0.05,
            lost_response: 0.03,
            slow_list: 0.3,
            slow_list_delay: Duration::from_millis(100),
        }
    }

    fn chance(&self, kind: FaultKind) -> f64 {
        let p = match kind {
            FaultKind::Latency => self.latency,
            FaultKind::Transient => self.transient,
            FaultKind::FailBeforeWrite => self.fail_before_write,
            FaultKind::ErrorAfterWrite => self.error_after_write,
            FaultKind::ExistsAfterWrite => self.exists_after_write,
            FaultKind::LostResponse => self.lost_response,
            FaultKind::SlowList => self.slow_list,
        };
        if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// How many faults of each kind a [`FaultStore`] injected. Add them up with `+=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FaultCounts {
    /// [`FaultKind::Latency`].
    pub latency: u64,
    /// [`FaultKind::Transient`].
    pub transient: u64,
    /// [`FaultKind::FailBeforeWrite`].
    pub fail_before_write: u64,
    /// [`FaultKind::ErrorAfterWrite`].
    pub error_after_write: u64,
    /// [`FaultKind::ExistsAfterWrite`].
    pub exists_after_write: u64,
    /// [`FaultKind::LostResponse`].
    pub lost_response: u64,
    /// [`FaultKind::SlowList`].
    pub slow_list: u64,
}

impl FaultCounts {
    /// The count of one kind.
    pub fn get(&self, kind: FaultKind) -> u64 {
        match kind {
            FaultKind::Latency => self.latency,
            FaultKind::Transient => self.transient,
            FaultKind::FailBeforeWrite => self.fail_before_write,
            FaultKind::ErrorAfterWrite => self.error_after_write,
            FaultKind::ExistsAfterWrite => self.exists_after_write,
            FaultKind::LostResponse => self.lost_response,
            FaultKind::SlowList => self.slow_list,
        }
    }

    /// Every fault, all kinds together.
    pub fn total(&self) -> u64 {
        FaultKind::ALL.iter().map(|kind| self.get(*kind)).sum()
    }
}

impl AddAssign for FaultCounts {
    fn add_assign(&mut self, other: FaultCounts) {
        self.latency += other.latency;
        self.transient += other.transient;
        self.fail_before_write += other.fail_before_write;
        self.error_after_write += other.error_after_write;
        self.exists_after_write += other.exists_after_write;
        self.lost_response += other.lost_response;
        self.slow_list += other.slow_list;
    }
}

/// The seeded side of a [`FaultStore`].
struct Seeded {
    seed: u64,
    rng: Mutex<SmallRng>,
    /// Every fault so far, `kind operation key`, in order.
    journal: Mutex<Vec<String>>,
    config: FaultConfig,
    /// Off: the store is faithful (the simulation heals the network before it audits).
    enabled: AtomicBool,
}

/// Wraps a store; forwards everything, except that queued [`CreateFault`]s hit the next
/// creates, seeded faults (see the module doc) hit any request, and (when built with
/// [`FaultStore::ignoring_create`]) creates overwrite, like an S3 server that ignores
/// `If-None-Match: *`.
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    ignore_create: bool,
    faults: Mutex<VecDeque<CreateFault>>,
    seeded: Option<Seeded>,
    counts: [AtomicU64; FaultKind::ALL.len()],
}

impl FaultStore {
    /// A faithful wrapper until faults are queued.
    pub fn new(inner: Arc<dyn ObjectStore>) -> FaultStore {
        FaultStore {
            inner,
            ignore_create: false,
            faults: Mutex::new(VecDeque::new()),
            seeded: None,
            counts: Default::default(),
        }
    }

    /// A wrapper that turns every `Create` into an `Overwrite`: a broken store.
    pub fn ignoring_create(inner: Arc<dyn ObjectStore>) -> FaultStore {
        FaultStore {
            ignore_create: true,
            ..FaultStore::new(inner)
        }
    }

    /// A wrapper that injects faults drawn from an rng seeded with `seed`, with the
    /// probabilities of `config`.
    pub fn seeded(inner: Arc<dyn ObjectStore>, seed: u64, config: FaultConfig) -> FaultStore {
        FaultStore {
            seeded: Some(Seeded {
                seed,
                rng: Mutex::new(SmallRng::seed_from_u64(seed)),
                journal: Mutex::new(Vec::new()),
                config,
                enabled: AtomicBool::new(true),
            }),
            ..FaultStore::new(inner)
        }
    }

    /// Turns the seeded faults on or off (queued faults are not affected).
    pub fn set_enabled(&self, enabled: bool) {
        if let Some(seeded) = &self.seeded {
            seeded.enabled.store(enabled, Ordering::Relaxed);
        }
    }

    /// The seed of the seeded faults, if any.
    pub fn seed(&self) -> Option<u64> {
        self.seeded.as_ref().map(|seeded| seeded.seed)
    }

    /// How many faults of each kind were injected so far (queued ones included).
    pub fn counts(&self) -> FaultCounts {
        let get = |kind: FaultKind| self.counts[kind.index()].load(Ordering::Relaxed);
        FaultCounts {
            latency: get(FaultKind::Latency),
            transient: get(FaultKind::Transient),
            fail_before_write: get(FaultKind::FailBeforeWrite),
            error_after_write: get(FaultKind::ErrorAfterWrite),
            exists_after_write: get(FaultKind::ExistsAfterWrite),
            lost_response: get(FaultKind::LostResponse),
            slow_list: get(FaultKind::SlowList),
        }
    }

    /// Every fault injected so far in seeded mode, one `kind operation key` line each, in the
    /// order they hit (empty when not seeded). Two runs of one seed that made the same
    /// requests in the same order have equal journals; the simulation checks that.
    pub fn journal(&self) -> Vec<String> {
        self.seeded.as_ref().map_or_else(Vec::new, |seeded| {
            seeded
                .journal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// Queues `fault` for the next create that has no fault yet.
    pub fn inject(&self, fault: CreateFault) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(fault);
    }

    /// Faults queued and not yet used.
    pub fn pending_faults(&self) -> usize {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn next_queued(&self) -> Option<CreateFault> {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// Draws whether a seeded fault of `kind` hits this request; counts and logs it if so.
    fn draw(&self, kind: FaultKind, operation: &str, key: &(dyn fmt::Display + Sync)) -> bool {
        let Some(seeded) = &self.seeded else {
            return false;
        };
        if !seeded.enabled.load(Ordering::Relaxed) {
            return false;
        }
        let chance = seeded.config.chance(kind);
        if chance <= 0.0 {
            return false;
        }
        let hit = seeded
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_bool(chance);
        if hit {
            self.record(kind, operation, key);
        }
        hit
    }

    fn record(&self, kind: FaultKind, operation: &str, key: &(dyn fmt::Display + Sync)) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(seeded) = &self.seeded {
            seeded
                .journal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("{kind} {operation} {key}"));
        }
        tracing::debug!(
            seed = self.seed(),
            fault = kind.name(),
            operation,
            key = %key,
            "injected object store fault"
        );
    }

    /// The injected latency of this request, if one is drawn.
    fn latency(&self, operation: &str, key: &(dyn fmt::Display + Sync)) -> Option<Duration> {
        if !self.draw(FaultKind::Latency, operation, key) {
            return None;
        }
        let seeded = self.seeded.as_ref()?;
        let max = seeded.config.max_latency.as_micros() as u64;
        let micros = seeded
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_range(0..=max);
        Some(Duration::from_micros(micros))
    }

    /// Waits (maybe), then fails with a 503 (maybe): the common prologue of every request.
    async fn before(&self, operation: &str, key: &(dyn fmt::Display + Sync)) -> Result<()> {
        if let Some(delay) = self.latency(operation, key) {
            tokio::time::sleep(delay).await;
        }
        if self.draw(FaultKind::Transient, operation, key) {
            return Err(generic(
                "injected 503 SlowDown: please reduce your request rate",
            ));
        }
        Ok(())
    }

    async fn create(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let queued = self.next_queued();
        if queued.is_none() {
            self.before("create", location).await?;
        }
        let fault = match queued {
            Some(fault) => {
                let kind = match fault {
                    CreateFault::LoseReply => FaultKind::ErrorAfterWrite,
                    CreateFault::ExistsAfterWrite => FaultKind::ExistsAfterWrite,
                    CreateFault::FailBeforeWrite => FaultKind::FailBeforeWrite,
                };
                self.record(kind, "create (queued)", location);
                Some(fault)
            }
            None if self.draw(FaultKind::FailBeforeWrite, "create", location) => {
                Some(CreateFault::FailBeforeWrite)
            }
            None => None,
        };
        if fault == Some(CreateFault::FailBeforeWrite) {
            return Err(generic("injected connection reset before the write"));
        }
        let result = self.inner.put_opts(location, payload, opts).await?;
        let fault = fault.or_else(|| {
            if self.draw(FaultKind::ErrorAfterWrite, "create", location) {
                Some(CreateFault::LoseReply)
            } else if self.draw(FaultKind::ExistsAfterWrite, "create", location) {
                Some(CreateFault::ExistsAfterWrite)
            } else {
                None
            }
        });
        match fault {
            Some(CreateFault::LoseReply) => Err(generic("injected timeout after the write landed")),
            Some(CreateFault::ExistsAfterWrite) => Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "injected: a retried create found its own write".into(),
            }),
            _ => Ok(result),
        }
    }

    /// A LIST stream, maybe delayed (a slow LIST) or failing at once (a 503).
    fn faulty_list(
        &self,
        prefix: Option<&Path>,
        listing: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        let mut delay = self.latency("list", &key).unwrap_or_default();
        if self.draw(FaultKind::SlowList, "list", &key)
            && let Some(seeded) = &self.seeded
        {
            delay += seeded.config.slow_list_delay;
        }
        let fail = self.draw(FaultKind::Transient, "list", &key);
        let wait = futures::stream::once(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        })
        .filter_map(|()| async { None });
        if fail {
            wait.chain(futures::stream::once(async {
                Err(generic("injected 503 SlowDown on LIST"))
            }))
            .boxed()
        } else {
            wait.chain(listing).boxed()
        }
    }
}

fn generic(message: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: message.to_owned().into(),
    }
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultStore")
            .field("inner", &self.inner.to_string())
            .field("ignore_create", &self.ignore_create)
            .field("seed", &self.seed())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl Intercept for FaultStore {
    fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> Result<PutResult> {
        if matches!(opts.mode, PutMode::Create) {
            if self.ignore_create {
                opts.mode = PutMode::Overwrite;
                return self.inner.put_opts(location, payload, opts).await;
            }
            return self.create(location, payload, opts).await;
        }
        self.before("put", location).await?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        if self.draw(FaultKind::LostResponse, "put", location) {
            return Err(generic("injected lost response after the write landed"));
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.before("put_multipart", location).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.before("get", location).await?;
        let result = self.inner.get_opts(location, options).await?;
        if self.draw(FaultKind::LostResponse, "get", location) {
            return Err(generic("injected connection reset while reading the reply"));
        }
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.before("get_ranges", location).await?;
        let result = self.inner.get_ranges(location, ranges).await?;
        if self.draw(FaultKind::LostResponse, "get_ranges", location) {
            return Err(generic("injected connection reset while reading the reply"));
        }
        Ok(result)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let listing = self.inner.list(prefix);
        self.faulty_list(prefix, listing)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let listing = self.inner.list_with_offset(prefix, offset);
        self.faulty_list(prefix, listing)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        self.before("list_with_delimiter", &key).await?;
        self.inner.list_with_delimiter(prefix).await
    }
}

crate::intercepting_object_store!(FaultStore);

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    fn always(kind: FaultKind) -> FaultConfig {
        let mut config = FaultConfig::default();
        match kind {
            FaultKind::Latency => {
                config.latency = 1.0;
                config.max_latency = Duration::from_millis(1);
            }
            FaultKind::Transient => config.transient = 1.0,
            FaultKind::FailBeforeWrite => config.fail_before_write = 1.0,
            FaultKind::ErrorAfterWrite => config.error_after_write = 1.0,
            FaultKind::ExistsAfterWrite => config.exists_after_write = 1.0,
            FaultKind::LostResponse => config.lost_response = 1.0,
            FaultKind::SlowList => {
                config.slow_list = 1.0;
                config.slow_list_delay = Duration::from_millis(1);
            }
        }
        config
    }

    fn store(config: FaultConfig) -> (Arc<InMemory>, FaultStore) {
        let memory = Arc::new(InMemory::new());
        let faults = FaultStore::seeded(memory.clone(), 7, config);
        (memory, faults)
    }

    async fn create(store: &FaultStore, key: &str) -> Result<PutResult> {
        ObjectStore::put_opts(
            store,
            &Path::from(key),
            PutPayload::from_static(b"x"),
            PutMode::Create.into(),
        )
        .await
    }

    #[tokio::test]
    async fn test_error_after_write_lands_the_object_and_fails() {
        let (memory, faults) = store(always(FaultKind::ErrorAfterWrite));
        let error = create(&faults, "a").await.unwrap_err();
        assert!(
            matches!(error, object_store::Error::Generic { .. }),
            "{error}"
        );
        assert!(memory.get(&Path::from("a")).await.is_ok());
        assert_eq!(faults.counts().error_after_write, 1);
        assert_eq!(faults.counts().total(), 1);
    }

    #[tokio::test]
    async fn test_exists_after_write_lands_the_object_and_says_exists() {
        let (memory, faults) = store(always(FaultKind::ExistsAfterWrite));
        let error = create(&faults, "a").await.unwrap_err();
        assert!(matches!(error, object_store::Error::AlreadyExists { .. }));
        assert!(memory.get(&Path::from("a")).await.is_ok());
        assert_eq!(faults.counts().exists_after_write, 1);
    }

    #[tokio::test]
    async fn test_fail_before_write_writes_nothing() {
        let (memory, faults) = store(always(FaultKind::FailBeforeWrite));
        assert!(create(&faults, "a").await.is_err());
        assert!(matches!(
            memory.get(&Path::from("a")).await,
            Err(object_store::Error::NotFound { .. })
        ));
        assert_eq!(faults.counts().fail_before_write, 1);
    }

    #[tokio::test]
    async fn test_transient_fails_reads_and_lists() {
        let (memory, faults) = store(always(FaultKind::Transient));
        memory.put(&Path::from("a"), "x".into()).await.unwrap();
        assert!(faults.get(&Path::from("a")).await.is_err());
        let listed: Vec<_> = ObjectStore::list(&faults, None).collect().await;
        assert_eq!(listed.len(), 1);
        assert!(listed[0].is_err());
        assert_eq!(faults.counts().transient, 2);
    }

    #[tokio::test]
    async fn test_lost_response_serves_then_fails() {
        let (memory, faults) = store(always(FaultKind::LostResponse));
        assert!(faults.put(&Path::from("a"), "x".into()).await.is_err());
        assert!(memory.get(&Path::from("a")).await.is_ok());
        assert_eq!(faults.counts().lost_response, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn test_slow_list_and_latency_still_answer() {
        let mut config = always(FaultKind::SlowList);
        config.latency = 1.0;
        config.max_latency = Duration::from_millis(5);
        let (memory, faults) = store(config);
        memory.put(&Path::from("a"), "x".into()).await.unwrap();
        let listed: Vec<_> = ObjectStore::list(&faults, None).collect().await;
        assert_eq!(listed.len(), 1);
        assert!(listed[0].is_ok());
        assert!(faults.get(&Path::from("a")).await.is_ok());
        let counts = faults.counts();
        assert_eq!((counts.slow_list, counts.latency), (1, 2));
    }

    #[tokio::test]
    async fn test_disabled_store_is_faithful() {
        let (_, faults) = store(FaultConfig::hostile());
        faults.set_enabled(false);
        for i in 0..50 {
            create(&faults, &format!("k{i}")).await.unwrap();
        }
        assert_eq!(faults.counts().total(), 0);
    }

    #[tokio::test]
    async fn test_same_seed_same_faults_for_same_requests() {
        let run = || async {
            let (_, faults) = store(FaultConfig::hostile());
            let mut outcomes = Vec::new();
            for i in 0..200 {
                outcomes.push(create(&faults, &format!("k{i}")).await.is_ok());
            }
            (outcomes, faults.counts(), faults.journal())
        };
        let (first, counts, journal) = run().await;
        let (second, _, second_journal) = run().await;
        assert_eq!(first, second);
        assert!(counts.total() > 0);
        assert_eq!(journal.len() as u64, counts.total(), "one line a fault");
        assert_eq!(journal, second_journal);
        assert!(
            journal.iter().all(|line| line.contains(" k")),
            "{journal:?}"
        );
    }

    #[tokio::test]
    async fn test_queued_faults_are_counted() {
        let faults = FaultStore::new(Arc::new(InMemory::new()));
        faults.inject(CreateFault::LoseReply);
        assert!(create(&faults, "a").await.is_err());
        assert_eq!(faults.pending_faults(), 0);
        assert_eq!(faults.counts().error_after_write, 1);
    }
}
