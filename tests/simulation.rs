//! Seeded simulation: one root seed drives 2 to 8 leaders with 1 to 3 sessions each
//! over one backend (a segment log over a seeded fault store over `InMemory`), on a
//! current-thread runtime with paused time. Actions: synced and client-only commits, syncs,
//! offline stretches, clean restarts, crashes (the leader task cancelled where it waits, or
//! the handles dropped without shutdown), packs of the log, snapshots by a leader, fresh
//! clients that join (booting from the newest snapshot), then quiescence and an audit (see
//! `simulation/audit.rs`; it also runs `verify --snapshots` over the store: packs, and
//! snapshots against a replay of the log).
//!
//! `cargo test --test simulation` runs 500 seeds. `EVENTSYNC_SIM_SEEDS=N` and
//! `EVENTSYNC_SIM_START=S` choose others, `EVENTSYNC_SIM_THREADS` the parallelism,
//! `EVENTSYNC_SIM_REPORT=file.json` writes the summed figures; `scripts/simulate` wraps this.
//! A failing seed prints its trace and the one command that replays it.
//!
//! Deterministic: the seed fixes every choice the harness makes, every fault draw, and (through
//! an injected `Entropy`) every nonce, id and jitter inside eventsync; time is tokio's paused
//! clock, and the runtime polls its tasks in one order (no unbiased `select!`, no hash-ordered
//! walks). `test_one_seed_run_twice_gives_the_same_run` checks it: same trace, same faults,
//! same bytes in the backend.

#[path = "simulation/audit.rs"]
mod audit;
#[path = "simulation/ledger.rs"]
mod ledger;
#[path = "simulation/stats.rs"]
mod stats;
#[path = "simulation/tally.rs"]
mod tally;
#[path = "simulation/world.rs"]
mod world;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use stats::SimStats;
use world::World;

/// The virtual time one seed may take (a normal run takes seconds of it).
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// What one seed produced.
struct Outcome {
    seed: u64,
    stats: SimStats,
    violations: Vec<String>,
    trace: Vec<String>,
    /// The fault store's journal: every fault, in the order it hit.
    faults: Vec<String>,
    /// The backend's objects at the end, `key size sha256`.
    objects: Vec<String>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// Where data dirs go: a RAM disk when there is one (the leaders fsync), else the temp dir.
fn scratch_root() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("eventsync-sim")
            .tempdir_in(shm)
    {
        return dir;
    }
    tempfile::Builder::new()
        .prefix("eventsync-sim")
        .tempdir()
        .expect("a temporary directory")
}

/// Runs one seed on its own current-thread runtime with paused (virtual) time.
fn run_seed(seed: u64, root: &Path) -> Outcome {
    let dir = root.join(format!("seed-{seed}"));
    let result = std::panic::catch_unwind(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async {
            let mut world = World::new(seed, dir.clone());
            if tokio::time::timeout(RUN_LIMIT, world.run()).await.is_err() {
                world.violations.push(format!(
                    "the run did not finish within {RUN_LIMIT:?} of virtual time (a livelock?)"
                ));
            }
            audit::audit(&mut world).await;
            world.stats.faults = world.faults.counts();
            world.stats.violations = world.violations.len() as u64;
            let objects = world.backend_objects().await;
            let nodes = std::mem::take(&mut world.nodes);
            for node in nodes {
                if let Some(store) = node.store {
                    drop(node.sessions);
                    let _ = store.shutdown().await;
                }
            }
            Outcome {
                seed,
                stats: world.stats,
                violations: world.violations,
                trace: world.trace,
                faults: world.faults.journal(),
                objects,
            }
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".into());
        Outcome {
            seed,
            stats: SimStats {
                seeds: 1,
                violations: 1,
                ..SimStats::default()
            },
            violations: vec![format!("panicked: {message}")],
            trace: Vec::new(),
            faults: Vec::new(),
            objects: Vec::new(),
        }
    })
}

fn replay_command(seed: u64) -> String {
    format!("scripts/simulate --seeds 1 --start {seed}")
}

/// Seeds `EVENTSYNC_SIM_START..+EVENTSYNC_SIM_SEEDS` (default `0..default_seeds`).
fn seed_range(default_seeds: u64) -> (u64, u64) {
    let start = env_u64("EVENTSYNC_SIM_START", 0);
    (start, start + env_u64("EVENTSYNC_SIM_SEEDS", default_seeds))
}

/// Runs `per_seed` for every seed of `start..end` on `EVENTSYNC_SIM_THREADS` threads (default:
/// every core), each seed on its own runtime; warns about seeds slow in real time.
#[allow(
    clippy::disallowed_methods,
    reason = "reports how long seeds take in real time"
)]
fn for_each_seed(start: u64, end: u64, per_seed: impl Fn(u64) + Sync) -> std::time::Duration {
    let threads = env_u64(
        "EVENTSYNC_SIM_THREADS",
        std::thread::available_parallelism().map_or(2, |n| n.get() as u64),
    )
    .max(1);
    let verbose = std::env::var("EVENTSYNC_SIM_VERBOSE").is_ok();
    let next = AtomicU64::new(start);
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        return;
                    }
                    if verbose {
                        eprintln!("seed {seed} starts");
                    }
                    let began = std::time::Instant::now();
                    per_seed(seed);
                    if began.elapsed() > std::time::Duration::from_secs(10) {
                        eprintln!("seed {seed} was slow: {:.1?}", began.elapsed());
                    }
                }
            });
        }
    });
    started.elapsed()
}

#[test]
fn simulated_leaders_under_faults_and_crashes_keep_every_invariant() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let (start, end) = seed_range(500);
    let seeds = end - start;
    let root = scratch_root();
    let total = Mutex::new(SimStats::default());
    let failures: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let took = for_each_seed(start, end, |seed| {
        let outcome = run_seed(seed, root.path());
        total.lock().unwrap().add(&outcome.stats);
        if !outcome.violations.is_empty() {
            eprintln!(
                "seed {seed} FAILED: {}\n  replay: {}",
                outcome.violations[0],
                replay_command(seed)
            );
            failures.lock().unwrap().push(outcome);
        }
    });
    let total = total.into_inner().unwrap();
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|outcome| outcome.seed);
    println!(
        "simulation: seeds {start}..{end} in {took:.1?}: {}",
        serde_json::to_string(&total).unwrap_or_default()
    );
    if let Ok(path) = std::env::var("EVENTSYNC_SIM_REPORT") {
        let report = serde_json::json!({
            "start": start,
            "seeds": seeds,
            "seconds": took.as_secs_f64(),
            "failed_seeds": failures.iter().map(|f| f.seed).collect::<Vec<_>>(),
            "totals": total,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap())
            .unwrap_or_else(|error| panic!("writing {path}: {error}"));
    }
    if let Some(first) = failures.first() {
        let tail = first.trace.len().saturating_sub(150);
        eprintln!("trace of seed {} (last 150 lines):", first.seed);
        for line in &first.trace[tail..] {
            eprintln!("  {line}");
        }
        for outcome in &failures {
            eprintln!("seed {}:", outcome.seed);
            for violation in &outcome.violations {
                eprintln!("  - {violation}");
            }
        }
        panic!(
            "{} of {seeds} seeds broke an invariant; replay the first with: {}",
            failures.len(),
            replay_command(first.seed)
        );
    }
    assert_eq!(total.seeds, seeds, "every seed ran");
    assert_eq!(total.violations, 0);
}

/// The first line where two runs differ, with the line before it, or `None` when equal.
fn first_difference(what: &str, first: &[String], second: &[String]) -> Option<String> {
    if first == second {
        return None;
    }
    let at = first
        .iter()
        .zip(second)
        .position(|(a, b)| a != b)
        .unwrap_or(first.len().min(second.len()));
    let show = |lines: &[String]| lines.get(at).cloned().unwrap_or_else(|| "(end)".into());
    Some(format!(
        "{what} differ at line {at} of {}/{}:\n  first:  {}\n  second: {}\n  after:  {}",
        first.len(),
        second.len(),
        show(first),
        show(second),
        at.checked_sub(1)
            .and_then(|before| first.get(before))
            .map_or("(start)", String::as_str)
    ))
}

/// How two runs of one seed differ (empty when they do not).
fn differences(first: &Outcome, second: &Outcome) -> Vec<String> {
    let stats = |outcome: &Outcome| vec![serde_json::to_string(&outcome.stats).unwrap_or_default()];
    [
        first_difference("traces", &first.trace, &second.trace),
        first_difference("fault journals", &first.faults, &second.faults),
        first_difference("backend objects", &first.objects, &second.objects),
        first_difference("stats", &stats(first), &stats(second)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The same seed, run twice in one process, must give the same run: the same trace of actions
/// and outcomes, the same faults in the same order, the same stats, and byte-identical objects
/// in the backend (writer nonces and the backend id included). The second run is on another
/// thread, so hash keys and tokio's per-thread state differ. 24 seeds by default;
/// `scripts/simulate --replay-check --seeds N` runs any number.
#[test]
fn test_one_seed_run_twice_gives_the_same_run() {
    let (start, end) = seed_range(24);
    let seeds = end - start;
    let root = scratch_root();
    let found: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let compared = Mutex::new((0usize, 0usize, 0usize));
    let took = for_each_seed(start, end, |seed| {
        let first = run_seed(seed, root.path());
        let second = std::thread::scope(|scope| {
            scope
                .spawn(|| run_seed(seed, root.path()))
                .join()
                .expect("the second run's thread")
        });
        let mut found = found.lock().unwrap();
        if !first.violations.is_empty() {
            found.push(format!(
                "seed {seed} broke an invariant: {:?}",
                first.violations
            ));
        }
        if first.trace.is_empty() || first.objects.is_empty() {
            found.push(format!("seed {seed} left no trace or no backend objects"));
        }
        let mut compared = compared.lock().unwrap();
        compared.0 += first.trace.len();
        compared.1 += first.faults.len();
        compared.2 += first.objects.len();
        for difference in differences(&first, &second) {
            found.push(format!(
                "seed {seed}: {difference}\n  replay: scripts/simulate --replay-check --seeds 1 --start {seed}"
            ));
        }
    });
    let (lines, faults, objects) = compared.into_inner().unwrap();
    println!(
        "determinism: seeds {start}..{end} run twice in {took:.1?}; compared {lines} trace lines, {faults} faults, {objects} objects"
    );
    assert!(faults > 0, "the seeds injected faults");
    let found = found.into_inner().unwrap();
    assert!(
        found.is_empty(),
        "{} problems in {seeds} seeds run twice:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// Regression tests for the bugs the simulation found, each its scenario alone.
mod regressions {
    use std::sync::Arc;
    use std::time::Duration;

    use eventsync::backends::{GlobalSeq, SegmentLog, SegmentLogConfig, SyncBackend};
    use eventsync::{Store, Tuning};
    use eventsync_todo::{TodoCreated, TodoFilter, TodoRenamed, UiStateSet, todo_schema};
    use futures::StreamExt;
    use object_store::memory::InMemory;

    fn backend(memory: &Arc<InMemory>) -> Arc<dyn SyncBackend> {
        let config = SegmentLogConfig {
            poll_min: Duration::from_millis(10),
            poll_max: Duration::from_millis(100),
            ..SegmentLogConfig::default()
        };
        Arc::new(SegmentLog::new(memory.clone(), "sim".into(), "sim", config).unwrap())
    }

    /// Opens client `c0`. These tests run on tokio's paused clock, so the leader runs
    /// inline, as a task of the test's runtime: on its own thread it would work while the
    /// runtime looks idle, virtual time would jump, and a reopen's 10 s wait for the data
    /// dir's lock would end before the dropped store's leader let go of it.
    async fn open(memory: &Arc<InMemory>, dir: &std::path::Path) -> Store {
        Store::builder(Arc::new(todo_schema()))
            .with_backend(backend(memory))
            .with_store_id("sim")
            .with_data_dir(dir)
            .with_client_id("c0")
            .with_tuning(Tuning {
                leader_thread: false,
                ..Tuning::default()
            })
            .open()
            .await
            .unwrap()
    }

    async fn backend_texts(memory: &Arc<InMemory>) -> Vec<String> {
        let mut pages = backend(memory).pull(GlobalSeq::ZERO, false).await.unwrap();
        let mut texts = Vec::new();
        while let Some(page) = pages.next().await {
            for event in page.unwrap().events {
                texts.push(event.args["text"].as_str().unwrap_or_default().to_owned());
            }
        }
        texts
    }

    /// Seed 31 (and many more): session A commits `e0.1` (client-only), sessions B and C each
    /// commit `e1`. The leader admits `e0.1` and B's `e1`, refuses C's, and sends B the advance
    /// `[e0.1, e1]`. B's merge paired its pending `e1` with `e0.1`, rebased its own admitted
    /// `e1` to `e2r1` and pushed it again: the todo reached the backend twice.
    #[tokio::test(start_paused = true)]
    async fn test_event_admitted_after_another_sessions_client_only_event_is_pushed_once() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Arc::new(InMemory::new());
        let store = open(&memory, dir.path()).await;
        let (b, c, a) = (
            store.session().await.unwrap(),
            store.session().await.unwrap(),
            store.session().await.unwrap(),
        );
        let filter = UiStateSet {
            filter: TodoFilter::Active,
        };
        a.commit(&filter).unwrap();
        let created = TodoCreated {
            id: "t1".into(),
            text: "created".into(),
        };
        b.commit(&created).unwrap();
        let renamed = TodoRenamed {
            id: "t1".into(),
            text: "renamed".into(),
        };
        c.commit(&renamed).unwrap();
        store.sync().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        store.sync().await.unwrap();
        let mut texts = backend_texts(&memory).await;
        texts.sort();
        assert_eq!(texts, ["created", "renamed"], "each event exactly once");
        store.shutdown().await.unwrap();
    }

    /// Seed 22: a store dropped without `shutdown` (its sessions too) released the data dir's
    /// lock at once, while its leader kept running to admit the sessions' queued commits. A
    /// store reopened on the same dir then ran a second leader on the same files and failed
    /// with `UNIQUE constraint failed: eventlog.seq_global, eventlog.seq_client`.
    #[tokio::test(start_paused = true)]
    async fn test_reopening_right_after_a_drop_waits_for_the_old_leader() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Arc::new(InMemory::new());
        for round in 0..5 {
            let store = open(&memory, dir.path()).await;
            let session = store.session().await.unwrap();
            for n in 0..5 {
                let args = TodoCreated {
                    id: format!("t{round}-{n}"),
                    text: format!("{round}-{n}"),
                };
                session.commit(&args).unwrap();
            }
            drop(session);
            drop(store);
        }
        let store = open(&memory, dir.path()).await;
        store.sync().await.unwrap();
        let events = store.eventlog().await.unwrap();
        assert_eq!(events.len(), 25, "every commit admitted once");
        assert_eq!(backend_texts(&memory).await.len(), 25);
        store.shutdown().await.unwrap();
    }
}
