//! eventsync's own figures for `eventsync bench`, measured through the public API on the
//! bench's backend: session commits, leader ingest, confirmation by the backend, cold pulls,
//! reopen, RSS, a rebase, several writers.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use eventsync::schema::Schema;
use eventsync::{ClientSession, EncodedEvent, EventMeta, EventSeq, Store, StoreStats, Tuning};
use eventsync::{Error, ErrorKind, Result};
use eventsync_backends::object_store::ObjectStore;
use eventsync_backends::object_store::path::Path;
use eventsync_backends::segment_log::CompactReport;
use eventsync_backends::{
    GlobalEvent, GlobalSeq, OpenOptions, SegmentLog, SyncBackend, SyncBackendExt,
};
use eventsync_todo::{TodoCreated, todo_schema};
use tokio::time::Instant;

use super::limits::{self, todo};
use crate::backend::backend_error;

/// Longest a bench step waits for the leader before calling it stuck.
const STUCK: Duration = Duration::from_secs(600);

/// Where a bench run works: one object store shared by every store of the run (so that
/// `memory://` works too), and a temp folder for the data dirs.
pub(crate) struct Bench {
    /// The object store the backend URL names.
    pub object_store: Arc<dyn ObjectStore>,
    /// The key prefix the URL names.
    pub prefix: Path,
    /// The URL, free of credentials.
    pub url: String,
    /// `memory`, `file` or `s3`.
    pub kind: String,
    /// Segment-log settings from the config.
    pub options: OpenOptions,
    /// Prefix of every store id of this run: stores on a shared bucket stay apart.
    pub run_id: String,
    /// Data dirs and raw databases go here.
    pub temp: PathBuf,
    /// The todo app's schema.
    pub schema: Arc<Schema>,
    /// The store tuning from the config.
    pub tuning: Tuning,
}

impl Bench {
    /// The segment log of this run's store `name`, as a new client of it sees it.
    pub(crate) fn log(&self, name: &str) -> Result<SegmentLog> {
        let log = SegmentLog::new(
            self.object_store.clone(),
            self.prefix.clone(),
            &self.store_id(name),
            self.options.segment_log.clone(),
        )
        .map_err(|e| backend_error(&self.url, e))?;
        Ok(log.with_description(&self.kind, &self.url))
    }

    /// The full id of this run's store `name`.
    pub(crate) fn store_id(&self, name: &str) -> String {
        format!("{}-{name}", self.run_id)
    }

    /// Opens client `client` of store `name`, online, with its own data dir.
    pub(crate) async fn open(&self, name: &str, client: &str) -> Result<Store> {
        // No packing by the leaders: the figures that read segments measure a log of
        // segments; packs have their own figures (`cold_pull_packed`).
        let tuning = Tuning {
            pack_after_events: 0,
            ..self.tuning.clone()
        };
        self.open_tuned(name, client, tuning).await
    }

    /// Opens client `client` of store `name` with `tuning`, online, with its own data dir.
    pub(crate) async fn open_tuned(
        &self,
        name: &str,
        client: &str,
        tuning: Tuning,
    ) -> Result<Store> {
        Store::builder(self.schema.clone())
            .with_backend(Arc::new(self.log(name)?))
            .with_store_id(self.store_id(name))
            .with_data_dir(self.temp.join(name).join(client))
            .with_client_id(client)
            .with_tuning(tuning)
            .open()
            .await
            .map_err(|e| e.context(format!("bench: opening store {name} as {client}")))
    }
}

/// Waits until `done` holds, checking often; fails when the session closed or after
/// [`STUCK`].
async fn wait_for(session: &ClientSession, what: &str, done: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while !done() {
        if let Some(reason) = session.closed() {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("bench: {what}: {reason}"),
            ));
        }
        if start.elapsed() > STUCK {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("bench: {what}: not done after {STUCK:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

/// `samples` commits of one session, each read back at once: each commit's time.
pub(crate) async fn session_commits(bench: &Bench, samples: u64) -> Result<Vec<Duration>> {
    let store = bench.open("commit", "writer").await?;
    let session = store.session().await?;
    let mut times = Vec::with_capacity(samples as usize);
    for n in 1..=samples {
        let todo = todo(n);
        let start = Instant::now();
        session.commit(&todo)?;
        let rows: Vec<serde_json::Value> = session.query(
            "SELECT 1 AS one FROM todos WHERE id = ?1",
            &[todo.id.into()],
        )?;
        times.push(start.elapsed());
        if rows.len() != 1 {
            return Err(Error::internal(
                "bench: a committed todo is not readable in its session",
            ));
        }
    }
    store.sync().await?;
    store.shutdown().await?;
    Ok(times)
}

/// One writer committing `count` todos in a tight loop on a fresh store.
pub(crate) struct Ingest {
    /// From the first commit until the leader made them all durable (the session heard so).
    pub durable: Duration,
    /// From the first commit until the backend confirmed them all.
    pub confirmed: Duration,
    /// The leader's durable batches (eventlog commits) from the first commit until all
    /// were durable: admitted session events, and confirmed pushes and pulled pages taken
    /// meanwhile.
    pub durable_batches: u64,
    /// The leader's counters at the end.
    pub stats: StoreStats,
    /// The process's resident memory once the leader had them all: (VmRSS, VmHWM) in bytes.
    pub rss: Option<(u64, u64)>,
}

/// Commits `count` todos on store `name` and waits for the leader, then the backend.
pub(crate) async fn ingest(bench: &Bench, name: &str, count: u64) -> Result<Ingest> {
    let store = bench.open(name, "writer").await?;
    let session = store.session().await?;
    let batches_before = store.stats().durable_batches;
    // Each todo is made as it is committed: a vector of them all would count the bench's
    // own input (about 11 MiB at 100,000) in the process's RSS figure.
    let start = Instant::now();
    for n in 1..=count {
        session.commit(&todo(n))?;
    }
    wait_for(&session, "waiting for the leader", || {
        session.sync_status().pending == 0
    })
    .await?;
    let durable = start.elapsed();
    let durable_batches = store.stats().durable_batches - batches_before;
    let rss = resident_memory();
    store.sync().await?;
    let confirmed = start.elapsed();
    let stats = store.stats();
    drop(session);
    store.shutdown().await?;
    Ok(Ingest {
        durable,
        durable_batches,
        confirmed,
        stats,
        rss,
    })
}

/// Reopens client `writer` of store `name` and runs a first query on a session; checks it
/// sees `count` todos. Returns the time from the open to the answer.
pub(crate) async fn reopen(bench: &Bench, name: &str, count: u64) -> Result<Duration> {
    let start = Instant::now();
    let store = bench.open(name, "writer").await?;
    let session = store.session().await?;
    let rows: Vec<serde_json::Value> = session.query("SELECT count(*) AS n FROM todos", &[])?;
    let elapsed = start.elapsed();
    let seen = rows.first().and_then(|row| row["n"].as_u64());
    drop(session);
    store.shutdown().await?;
    if seen != Some(count) {
        return Err(Error::internal(format!(
            "bench: the reopened store holds {seen:?} todos, not {count}"
        )));
    }
    Ok(elapsed)
}

/// A fresh client of store `name` pulls its whole log: the time from the open until it
/// stands at the backend's head with every event.
pub(crate) async fn cold_pull(
    bench: &Bench,
    name: &str,
    client: &str,
    count: u64,
) -> Result<Duration> {
    let start = Instant::now();
    let store = bench.open(name, client).await?;
    store.sync().await?;
    let target = GlobalSeq(count);
    let mut waited = Duration::ZERO;
    while store.status().await?.local_head.global < target {
        if waited > STUCK {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("bench: the cold pull of {name} did not reach e{count}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        waited += Duration::from_millis(1);
    }
    let elapsed = start.elapsed();
    store.shutdown().await?;
    Ok(elapsed)
}

/// Writes `count` todos to store `name`'s log straight through the backend, one event per
/// segment: the worst case for a cold pull. Calls `tick(n)` after the push of `e{n}`.
pub(crate) async fn write_one_per_segment(
    bench: &Bench,
    name: &str,
    count: u64,
    tick: impl Fn(u64),
) -> Result<()> {
    let log = bench.log(name)?;
    for n in 1..=count {
        let event = global_todo(n);
        log.push(vec![event])
            .await
            .map_err(|e| backend_error(&bench.url, e))?;
        tick(n);
    }
    Ok(())
}

/// Writes todos `e{from} ..` (`count` of them) to store `name`'s log straight through the
/// backend, `per_segment` a segment: a busy writer's log, quickly.
pub(crate) async fn write_in_segments(
    bench: &Bench,
    name: &str,
    from: u64,
    count: u64,
    per_segment: u64,
) -> Result<()> {
    let log = bench.log(name)?;
    let end = from + count;
    let mut first = from;
    while first < end {
        let last = (first + per_segment.max(1)).min(end);
        let events: Vec<GlobalEvent> = (first..last).map(global_todo).collect();
        log.push(events)
            .await
            .map_err(|e| backend_error(&bench.url, e))?;
        first = last;
    }
    Ok(())
}

/// Todo `n` as the event at `e{n}` of a log written by client `writer`.
fn global_todo(n: u64) -> GlobalEvent {
    GlobalEvent {
        seq_num: GlobalSeq(n),
        parent_seq_num: GlobalSeq(n - 1),
        name: <TodoCreated as eventsync::Event>::NAME.into(),
        args: serde_json::to_value(todo(n)).unwrap_or_default(),
        client_id: "writer".into(),
        session_id: "s1".into(),
    }
}

/// Packs store `name`'s log: every complete window after the last pack.
pub(crate) async fn compact(bench: &Bench, name: &str) -> Result<CompactReport> {
    bench
        .log(name)?
        .compact()
        .await
        .map_err(|e| backend_error(&bench.url, e))
}

/// The objects a cold reader of store `name` fetches from `e{from}` on: the chain of packs
/// that holds `from` and each position after it (at each, the pack reaching furthest, as
/// the segment log's reader takes them), then every segment after the chain.
pub(crate) async fn cold_read_keys(bench: &Bench, name: &str, from: u64) -> Result<Vec<Path>> {
    let paths = bench
        .log(name)?
        .log_paths()
        .await
        .map_err(|e| backend_error(&bench.url, e))?;
    let packs: Vec<(u64, u64, Path)> = limits::list(&bench.object_store, paths.packs_dir())
        .await?
        .into_iter()
        .filter_map(|key| {
            let (first, last) = paths.parse_pack(&key)?;
            Some((first.0, last.0, key))
        })
        .collect();
    let mut chain = Vec::new();
    let mut position = from;
    while let Some((_, last, key)) = packs
        .iter()
        .filter(|(first, last, _)| *first <= position && *last >= position)
        .max_by_key(|(_, last, _)| *last)
    {
        chain.push(key.clone());
        position = last + 1;
    }
    for key in limits::list(&bench.object_store, paths.segments_dir()).await? {
        if paths
            .parse_segment(&key)
            .is_some_and(|first| first.0 >= position)
        {
            chain.push(key);
        }
    }
    Ok(chain)
}

/// Every object of store `name`'s log: segments, packs, snapshots.
pub(crate) async fn all_keys(bench: &Bench, name: &str) -> Result<Vec<Path>> {
    let paths = bench
        .log(name)?
        .log_paths()
        .await
        .map_err(|e| backend_error(&bench.url, e))?;
    let mut keys = Vec::new();
    for dir in [
        paths.segments_dir(),
        paths.packs_dir(),
        paths.snapshots_dir(),
    ] {
        keys.extend(limits::list(&bench.object_store, dir).await?);
    }
    Ok(keys)
}

/// The segment keys of store `name`'s log.
pub(crate) async fn segment_keys(bench: &Bench, name: &str) -> Result<Vec<Path>> {
    let log = bench.log(name)?;
    let paths = log
        .log_paths()
        .await
        .map_err(|e| backend_error(&bench.url, e))?;
    limits::list(&bench.object_store, paths.segments_dir()).await
}

/// A rebase of `pending` events on the leader's real path ([`eventsync::rebase_in_leader`]):
/// in a leader's two files, the pending events admitted one step each (one changeset run
/// each), then one durable batch that rolls them back, applies one upstream event and
/// replays them renumbered with their changesets (one run). Returns the time of that batch.
pub(crate) fn rebase(bench: &Bench, pending: u64) -> Result<Duration> {
    let schema = todo_schema();
    let event = |n: u64, at: u64| EncodedEvent {
        seq: EventSeq::global(at),
        parent: EventSeq::global(at - 1),
        name: <TodoCreated as eventsync::Event>::NAME.into(),
        args: serde_json::to_value(todo(n)).unwrap_or_default(),
        client_id: "bench".into(),
        session_id: "s1".into(),
        meta: EventMeta::default(),
    };
    let events: Vec<EncodedEvent> = (1..=pending).map(|n| event(n, n)).collect();
    let upstream = EncodedEvent {
        client_id: "other".into(),
        ..event(pending + 1, 1)
    };
    let (elapsed, count) = eventsync::rebase_in_leader(
        &bench.temp.join("rebase"),
        &schema,
        &events,
        upstream,
        "todos",
    )?;
    if count != pending + 1 {
        return Err(Error::internal(format!(
            "bench: after the rebase {count} todos, not {}",
            pending + 1
        )));
    }
    Ok(elapsed)
}

/// What `writers` clients, each committing `each` todos (a yield between commits) on one
/// store, did: the time until each had its own confirmed, and whether the backend's log
/// holds every event exactly once.
pub(crate) struct Writers {
    /// Until the last writer's `sync` returned.
    pub elapsed: Duration,
    /// The CPU time (user + system) the whole process used meanwhile, where
    /// `/proc/self/stat` tells it: with `elapsed`, whether the writers waited or worked.
    pub cpu: Option<Duration>,
    /// The writers' counters, summed (pushes, `ServerAhead`, rebases, requests).
    pub stats: StoreStats,
    /// `None` when the log holds each committed todo once and nothing else; else what is
    /// wrong.
    pub problem: Option<String>,
}

/// Runs `writers` clients of store `name` at once, each committing `each` todos.
pub(crate) async fn writers(
    bench: &Rc<Bench>,
    name: &str,
    writers: u64,
    each: u64,
) -> Result<Writers> {
    let mut stores = Vec::new();
    for w in 1..=writers {
        stores.push(Rc::new(bench.open(name, &format!("w{w}")).await?));
    }
    let local = tokio::task::LocalSet::new();
    let start = Instant::now();
    let cpu_start = cpu_time();
    let outcomes = local
        .run_until(async {
            let tasks: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(index, store)| {
                    let store = store.clone();
                    tokio::task::spawn_local(async move {
                        let session = store.session().await?;
                        let first = index as u64 * each;
                        for n in first + 1..=first + each {
                            session.commit(&todo(n))?;
                            tokio::task::yield_now().await;
                        }
                        store.sync().await
                    })
                })
                .collect();
            futures::future::join_all(tasks).await
        })
        .await;
    let elapsed = start.elapsed();
    let cpu = cpu_start
        .zip(cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    for outcome in outcomes {
        outcome.map_err(|e| Error::internal("bench: a writer task failed").with_source(e))??;
    }
    let mut stats = StoreStats::default();
    for store in &stores {
        stats += &store.stats();
    }
    for store in stores {
        if let Ok(store) = Rc::try_unwrap(store) {
            store.shutdown().await?;
        }
    }
    let log = bench.log(name)?;
    let problem = match log.read_all_checked().await {
        Err(error) => Some(format!("the log does not read back gapless: {error}")),
        Ok(events) => {
            let ids: BTreeSet<String> = events
                .iter()
                .filter_map(|event| event.args["id"].as_str().map(str::to_owned))
                .collect();
            let expected: BTreeSet<String> = (1..=writers * each).map(|n| todo(n).id).collect();
            if events.len() as u64 != writers * each || ids != expected {
                Some(format!(
                    "the log holds {} events ({} distinct todos) for {} committed",
                    events.len(),
                    ids.len(),
                    writers * each
                ))
            } else {
                None
            }
        }
    };
    Ok(Writers {
        elapsed,
        cpu,
        stats,
        problem,
    })
}

/// What an idle live pull asked of the backend in a window of real time.
pub(crate) struct IdlePolls {
    /// Polls the backoff schedule makes in the window (`poll_min` doubling to `poll_max`).
    pub polls: u64,
    /// The requests the store's backend made in the window.
    pub requests: eventsync_backends::RequestCounts,
    /// The window.
    pub window: Duration,
}

/// A store that pulled store `name`'s one event (written by another client) and then sits
/// idle: the requests of its backend in a window of at least `at_least` after its `sync`,
/// against the polls the backoff schedule makes in that window. The window ends halfway
/// between two polls, so that a poll a little late is still counted where it belongs.
pub(crate) async fn idle_polls(bench: &Bench, name: &str, at_least: Duration) -> Result<IdlePolls> {
    let writer = bench.log(name)?;
    writer
        .push(vec![global_todo(1)])
        .await
        .map_err(|e| backend_error(&bench.url, e))?;
    let store = bench.open(name, "idle").await?;
    store.sync().await?;
    let before = store.stats().requests;
    let config = &bench.options.segment_log;
    let (mut at, mut delay, mut polls) = (Duration::ZERO, config.poll_min, 0);
    while at < at_least {
        at += delay;
        polls += 1;
        delay = (delay * 2).min(config.poll_max);
    }
    let window = at + delay / 2;
    tokio::time::sleep(window).await;
    let after = store.stats().requests;
    store.shutdown().await?;
    let (Some(before), Some(after)) = (before, after) else {
        return Err(Error::internal(
            "bench: the segment log did not count its requests",
        ));
    };
    Ok(IdlePolls {
        polls,
        requests: after - before,
        window,
    })
}

/// This process's (VmRSS, VmHWM) in bytes, from `/proc/self/status`; `None` where there is
/// no such file.
pub(crate) fn resident_memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The CPU time (user + system, every thread) this process has used, from
/// `/proc/self/stat` (in clock ticks, 10 ms each on Linux); `None` where there is no such
/// file.
pub(crate) fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces, inside parentheses):
    // state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ: 100 on every Linux architecture's user interface.
    Some(Duration::from_millis(ticks * 10))
}

/// The `p`th percentile (0.0 to 1.0) of `times`, in microseconds.
pub(crate) fn percentile_us(times: &[Duration], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => 0.0,
        len => sorted[((len - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_percentiles_pick_the_sorted_sample() {
        let times: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(percentile_us(&times, 0.5), 51.0);
        assert_eq!(percentile_us(&times, 0.99), 99.0);
        assert_eq!(percentile_us(&times, 1.0), 100.0);
    }

    #[test]
    fn test_cpu_time_grows_with_work_on_linux() {
        if cfg!(target_os = "linux") {
            let before = cpu_time().expect("/proc/self/stat");
            let mut after = before;
            let mut x = 0u64;
            // Work until 20 ms of CPU show (a broken reading never does: the rounds end).
            for _ in 0..100_000 {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                after = cpu_time().expect("/proc/self/stat");
                if after >= before + Duration::from_millis(20) {
                    break;
                }
            }
            assert!(
                after >= before + Duration::from_millis(20),
                "{before:?} {after:?}"
            );
        }
    }

    #[test]
    fn test_resident_memory_reads_proc_on_linux() {
        if cfg!(target_os = "linux") {
            let (rss, hwm) = resident_memory().expect("/proc/self/status");
            assert!(rss > 0 && hwm >= rss, "{rss} {hwm}");
        }
    }
}
