//! The history figures of `eventsync bench` (issue 12): a store of many events (a million
//! with `--history 1000000`), packed and snapshotted, and what joining, auditing, exporting
//! and importing it cost, each beside raw work on the same objects, rows and bytes measured
//! in the same run.
//!
//! Export and import run as child processes of this very binary (`eventsync export`,
//! `eventsync import`), so that their peak resident memory is their own: it is read from
//! `/proc/<pid>/status` (`VmHWM`, the high-water mark) every 5 ms while the child runs.

use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use eventsync::snapshot::ReplayCheck;
use eventsync::{Error, ErrorKind, Result, Store, Tuning};
use eventsync_backends::copy::StoreLocation;
use eventsync_backends::object_store::path::Path;
use eventsync_backends::verify::{ObjectAudit, PackAudit, SnapshotAudit, verify_store};
use eventsync_backends::{GlobalSeq, SyncBackend};
use tokio::time::Instant;

use super::figures::{self, Bench};
use super::limits::{self, IN_FLIGHT};
use super::report::{Figure, Goal, Limit};
use super::{mib, rate, segment_bytes};
use crate::backend::backend_error;

/// The store the history figures use, and the one the export is imported into.
const STORE: &str = "history";
const IMPORTED: &str = "history-imported";

/// Measures the history figures on a log of `events` events (and a tail of `events / 100`
/// after its snapshot); `url` is the bench's backend URL, which the child processes get.
pub(crate) async fn measure(
    bench: &Bench,
    url: &str,
    events: u64,
    step: &dyn Fn(String),
) -> Result<(Vec<Figure>, Vec<Limit>)> {
    let batch = bench.tuning.push_batch_events.max(1) as u64;
    let tail = (events / 100).max(1);
    let total = events + tail;
    let mut figures = Vec::new();
    let mut limits = Vec::new();

    step(format!(
        "history: writing {events} events, {batch} a segment"
    ));
    figures::write_in_segments(bench, STORE, 1, events, batch).await?;
    step("history: packing".into());
    let start = Instant::now();
    let packed = figures::compact(bench, STORE).await?;
    let pack_time = start.elapsed();
    let objects = figures::cold_read_keys(bench, STORE, 1).await?;

    // A fresh client with packs and no snapshot (as after a schema change): replays it all.
    step(format!("history: a fresh client replays {events} events"));
    let replay = boot(bench, "replayer", false, events).await?;
    let (get_time, _) = limits::get(&bench.object_store, &objects, IN_FLIGHT).await?;
    let insert = limits::insert(&bench.temp, events, batch, false)?;
    let (packs, segments) = count_kinds(&objects);
    figures.push(
        events_per_second(
            "history_boot_replay",
            "fresh client of the packed log without a snapshot, until its first query",
            events,
            replay.elapsed,
            get_time + insert,
            format!("GETs of its {packs} packs and {segments} tail segments, {IN_FLIGHT} in flight, + raw inserts of the rows"),
        )
        .goal("≥ 0.5 × limit", Goal::RatioAtLeast(0.5))
        .note(format!(
            "{:.2} s; compact wrote {} packs ({} merged) in {:.2} s",
            replay.elapsed.as_secs_f64(),
            packed.written,
            packed.merged,
            pack_time.as_secs_f64()
        )),
    );

    // The snapshot at `events`, then a tail after it, packed too.
    step("history: snapshot, then the tail".into());
    let start = Instant::now();
    let snapshot = replay.store.snapshot().await?;
    let snapshot_time = start.elapsed();
    replay.store.shutdown().await?;
    figures::write_in_segments(bench, STORE, events + 1, tail, batch).await?;
    figures::compact(bench, STORE).await?;

    step(format!(
        "history: a fresh client boots from the snapshot at e{events}"
    ));
    let booted = boot(bench, "booter", true, total).await?;
    booted.store.shutdown().await?;
    let snapshot_key = Path::from(snapshot.key.as_str());
    let after = figures::cold_read_keys(bench, STORE, events + 1).await?;
    let (snapshot_get, _) =
        limits::get(&bench.object_store, std::slice::from_ref(&snapshot_key), 1).await?;
    let (tail_get, _) = limits::get(&bench.object_store, &after, IN_FLIGHT).await?;
    let (tail_packs, tail_segments) = count_kinds(&after);
    // What no boot can go below: the state itself written to disk. Beside the goal's limit,
    // which counts only the GETs.
    let state_db = bench
        .temp
        .join(STORE)
        .join("booter")
        .join(bench.store_id(STORE))
        .join("state.db");
    let state_size = std::fs::metadata(&state_db)
        .map_err(io_error(format!(
            "reading the size of {}",
            state_db.display()
        )))?
        .len();
    let state_write = copy_file(&state_db, &bench.temp.join("state-copy.db"))?;
    let floor = snapshot_get + state_write;
    figures.push(
        Figure::new(
            "history_boot_snapshot",
            format!("fresh client from the snapshot at e{events} + a tail of {tail} events, until its first query"),
            booted.elapsed.as_secs_f64(),
            "s",
        )
        .events(total)
        .limit(
            (snapshot_get + tail_get).as_secs_f64(),
            format!("GET of the snapshot + GETs of the tail's {tail_packs} packs and {tail_segments} segments, {IN_FLIGHT} in flight"),
        )
        .goal("≤ 5 s and ≤ 2 × limit", Goal::AtMostWithRatio(5.0, 0.5))
        .note(format!(
            "the snapshot took {:.2} s to write; GET of the snapshot + a fsynced copy of the booted state.db ({:.1} MiB): {:.2} s, the boot is {:.1} × that",
            snapshot_time.as_secs_f64(),
            mib(state_size),
            floor.as_secs_f64(),
            booted.elapsed.as_secs_f64() / floor.as_secs_f64().max(1e-9)
        )),
    );

    // What a cold reader fetches of the whole log.
    let objects = figures::cold_read_keys(bench, STORE, 1).await?;
    let (packs, segments) = count_kinds(&objects);
    figures.push(
        Figure::new(
            "history_cold_read_objects",
            format!("objects a cold reader fetches, log in segments of {batch}"),
            objects.len() as f64,
            "objects",
        )
        .events(total)
        .goal(
            "≤ 1 per 1,000 events",
            Goal::AtMost((total as f64 / 1000.0).max(1.0)),
        )
        .note(format!(
            "{packs} packs + {segments} segments after the last pack, by the keys (the pack reaching furthest at each position)"
        )),
    );

    step("history: verify".into());
    figures.extend(verify_figures(bench, url, total, &mut limits).await?);

    step("history: export and import in child processes".into());
    figures.extend(export_import(bench, url, total, &mut limits).await?);
    Ok((figures, limits))
}

/// A fresh client of the history store and how long it took to answer its first query.
struct Booted {
    store: Store,
    elapsed: Duration,
}

/// Opens a fresh client `client` of the history store (from the newest snapshot when
/// `from_snapshot`), waits until it holds `count` todos, and times that.
async fn boot(bench: &Bench, client: &str, from_snapshot: bool, count: u64) -> Result<Booted> {
    let start = Instant::now();
    let store = bench
        .open_tuned(
            STORE,
            client,
            Tuning {
                boot_from_snapshot: from_snapshot,
                pack_after_events: 0,
                ..bench.tuning.clone()
            },
        )
        .await?;
    store.sync().await?;
    let session = store.session().await?;
    loop {
        let rows: Vec<serde_json::Value> = session.query("SELECT count(*) AS n FROM todos", &[])?;
        if rows.first().and_then(|row| row["n"].as_u64()) == Some(count) {
            break;
        }
        if start.elapsed() > Duration::from_secs(3600) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("bench: client {client} did not reach {count} todos"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed();
    drop(session);
    Ok(Booted { store, elapsed })
}

/// `verify` and `verify --snapshots` of the history store, against GETs of every object
/// they read.
async fn verify_figures(
    bench: &Bench,
    url: &str,
    events: u64,
    limits: &mut Vec<Limit>,
) -> Result<Vec<Figure>> {
    let place = StoreLocation {
        store: bench.object_store.clone(),
        prefix: bench.prefix.clone(),
        store_id: bench.store_id(STORE),
    };
    let all = figures::all_keys(bench, STORE).await?;
    let (get_time, bytes) = limits::get(&bench.object_store, &all, IN_FLIGHT).await?;
    limits.push(Limit {
        key: "history_get_all_objects".into(),
        what: format!(
            "GETs of every segment, pack and snapshot of the history store ({} objects, {:.1} MiB), {IN_FLIGHT} in flight",
            all.len(),
            mib(bytes)
        ),
        value: rate(events, get_time),
        unit: "events/s",
    });
    let mut figures = Vec::new();
    for replayed in [false, true] {
        let backend: std::sync::Arc<dyn SyncBackend> = std::sync::Arc::new(bench.log(STORE)?);
        let replay = if replayed {
            Some(
                ReplayCheck::new(bench.schema.clone(), backend)
                    .map_err(|e| Error::internal("bench: preparing the replay").with_source(e))?,
            )
        } else {
            None
        };
        let snapshots = SnapshotAudit {
            content: replay
                .as_ref()
                .map(|check| check as &dyn eventsync_backends::verify::SnapshotContentCheck),
        };
        let hooks: Vec<&dyn ObjectAudit> = vec![&PackAudit, &snapshots];
        let start = Instant::now();
        let report = verify_store(&place, &hooks, &|_, _| ())
            .await
            .map_err(|e| Error::internal(format!("bench: verify of {url}: {e}")))?;
        let elapsed = start.elapsed();
        let (key, what) = if replayed {
            (
                "history_verify_snapshots",
                "verify --snapshots (the log, packs, and a replay up to each snapshot)",
            )
        } else {
            (
                "history_verify",
                "verify (every segment, pack and snapshot)",
            )
        };
        let mut figure = events_per_second(
            key,
            what,
            events,
            elapsed,
            get_time,
            "GETs of every object of the store, 16 in flight",
        );
        figure = if replayed {
            figure.goal_text("a figure to watch (the replay is SQLite work beside the GETs)")
        } else {
            figure.goal("≥ 0.5 × limit", Goal::RatioAtLeast(0.5))
        };
        let families: Vec<String> = report
            .families
            .iter()
            .map(|family| format!("{} {}", family.checked, family.name))
            .collect();
        figure = figure.note(format!(
            "{:.2} s; {} segments, {}",
            elapsed.as_secs_f64(),
            report.segments,
            families.join(", ")
        ));
        if !report.is_sound() {
            figure = figure.failed(format!("{} fault(s)", report.faults.len()));
        }
        figures.push(figure);
    }
    Ok(figures)
}

/// `eventsync export` of the history store and `eventsync import` of the file into a new
/// store, each a child process, against raw work on the same bytes.
async fn export_import(
    bench: &Bench,
    url: &str,
    events: u64,
    limits: &mut Vec<Limit>,
) -> Result<Vec<Figure>> {
    let file = bench.temp.join("history-export.json");
    let exported = run_child(bench, url, STORE, &["export".as_ref(), file.as_os_str()])?;
    let file_bytes = std::fs::metadata(&file)
        .map_err(|e| Error::new(ErrorKind::Unavailable, "bench: the export file").with_source(e))?
        .len();
    let objects = figures::cold_read_keys(bench, STORE, 1).await?;
    let (get_time, _) = limits::get(&bench.object_store, &objects, IN_FLIGHT).await?;
    let copy_time = copy_file(&file, &bench.temp.join("history-copy.json"))?;
    limits.push(Limit {
        key: "history_file_copy".into(),
        what: format!(
            "read the export file and write its {:.1} MiB to another file, fsynced",
            mib(file_bytes)
        ),
        value: rate(events, copy_time),
        unit: "events/s",
    });
    let mut figures = vec![
        events_per_second(
            "history_export",
            "eventsync export, the whole log to a file",
            events,
            exported.elapsed,
            get_time + copy_time,
            format!("GETs of the {} objects a cold reader fetches, {IN_FLIGHT} in flight, + the file copy", objects.len()),
        )
        .goal("≥ 0.5 × limit", Goal::RatioAtLeast(0.5)),
        rss_figure("history_export_rss", "eventsync export, peak RSS", events, &exported),
    ];

    let imported = run_child(bench, url, IMPORTED, &["import".as_ref(), file.as_os_str()])?;
    let head = bench
        .log(IMPORTED)?
        .head()
        .await
        .map_err(|e| backend_error(&bench.url, e))?;
    // The raw work: read the file, and PUT as many segment-sized objects as the import
    // wrote segments (of the backend's largest push), 16 in flight.
    let per_segment = bench.options.segment_log.max_events_per_segment.max(1) as u64;
    let puts = events.div_ceil(per_segment);
    let body = segment_bytes(per_segment.min(events))?;
    let read_time = read_file(&file)?;
    let folder = super::raw_folder(bench, "import-sized");
    let (put_time, _) = limits::put(&bench.object_store, &folder, &body, puts, IN_FLIGHT).await?;
    limits.push(Limit {
        key: "history_import_raw".into(),
        what: format!(
            "read the export file + {puts} conditional PUTs of a {per_segment}-event segment ({} bytes), {IN_FLIGHT} in flight",
            body.len()
        ),
        value: rate(events, read_time + put_time),
        unit: "events/s",
    });
    let mut import = events_per_second(
        "history_import",
        "eventsync import of that file into an empty store",
        events,
        imported.elapsed,
        read_time + put_time,
        "read the file + PUTs of the same number of segments",
    )
    .goal("≥ 0.5 × limit", Goal::RatioAtLeast(0.5))
    .note(format!("{:.2} s", imported.elapsed.as_secs_f64()));
    if head != GlobalSeq(events) {
        import = import.failed(format!(
            "the imported store's head is {head}, not e{events}"
        ));
    }
    figures.push(import);
    figures.push(rss_figure(
        "history_import_rss",
        "eventsync import, peak RSS",
        events,
        &imported,
    ));
    Ok(figures)
}

/// `events` done in `elapsed`, in events/s (higher is better), beside the same events done
/// by the raw work of `limit_time` (`limit_what`): the shape of every rate figure here.
fn events_per_second(
    key: &'static str,
    what: impl Into<String>,
    events: u64,
    elapsed: Duration,
    limit_time: Duration,
    limit_what: impl Into<String>,
) -> Figure {
    Figure::new(key, what, rate(events, elapsed), "events/s")
        .events(events)
        .higher_is_better()
        .limit(rate(events, limit_time), limit_what)
}

fn rss_figure(key: &'static str, what: &str, events: u64, child: &Child) -> Figure {
    match child.peak_rss {
        Some(peak) => Figure::new(key, what, mib(peak), "MiB")
            .events(events)
            .goal("≤ 100 MiB, flat", Goal::AtMost(100.0))
            .note("VmHWM of the child process, sampled every 5 ms"),
        None => Figure::missing(key, what, "MiB", "no /proc/<pid>/status on this system"),
    }
}

/// What a child process of the bench took.
struct Child {
    elapsed: Duration,
    /// The highest `VmHWM` seen, in bytes.
    peak_rss: Option<u64>,
}

/// Runs `eventsync --backend URL --store <store> ARGS` (this binary) and waits for it;
/// fails with its stderr when it fails.
fn run_child(bench: &Bench, url: &str, store: &str, args: &[&std::ffi::OsStr]) -> Result<Child> {
    let exe = std::env::current_exe().map_err(|e| {
        Error::new(ErrorKind::Unavailable, "bench: finding eventsync").with_source(e)
    })?;
    let stderr_path = bench.temp.join(format!("{store}-{}.stderr", args.len()));
    let stderr = std::fs::File::create(&stderr_path)
        .map_err(|e| Error::new(ErrorKind::Unavailable, "bench: a stderr file").with_source(e))?;
    let data_dir = bench.temp.join(format!("{store}-child"));
    let start = Instant::now();
    let mut child = Command::new(exe)
        .arg("--backend")
        .arg(url)
        .arg("--store")
        .arg(bench.store_id(store))
        .arg("--data-dir")
        .arg(&data_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| {
            Error::new(ErrorKind::Unavailable, "bench: starting eventsync").with_source(e)
        })?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak_rss = None;
    let status = loop {
        if let Some(hwm) = high_water_mark(&status_file) {
            peak_rss = Some(peak_rss.unwrap_or(0).max(hwm));
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                return Err(
                    Error::new(ErrorKind::Unavailable, "bench: waiting for eventsync")
                        .with_source(e),
                );
            }
        }
    };
    let elapsed = start.elapsed();
    if !status.success() {
        let said = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(Error::new(
            ErrorKind::Internal,
            format!("bench: eventsync {args:?} failed ({status}): {said}"),
        ));
    }
    Ok(Child { elapsed, peak_rss })
}

/// `VmHWM` of a `/proc/<pid>/status` file, in bytes.
fn high_water_mark(status: &FsPath) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::new(ErrorKind::Unavailable, format!("bench: {what}")).with_source(e)
}

/// Reads `from` and writes it to `to` in 1 MiB pieces, then fsyncs: the raw file work of an
/// export. Returns the time.
fn copy_file(from: &FsPath, to: &FsPath) -> Result<Duration> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut input =
        std::fs::File::open(from).map_err(io_error(format!("opening {}", from.display())))?;
    let mut output =
        std::fs::File::create(to).map_err(io_error(format!("creating {}", to.display())))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = input
            .read(&mut buffer)
            .map_err(io_error("reading".into()))?;
        if read == 0 {
            break;
        }
        output
            .write_all(&buffer[..read])
            .map_err(io_error("writing".into()))?;
    }
    output.sync_all().map_err(io_error("fsync".into()))?;
    let elapsed = start.elapsed();
    let _ = std::fs::remove_file(to);
    Ok(elapsed)
}

/// Reads `path` to the end in 1 MiB pieces: the raw file work of an import. Returns the
/// time.
fn read_file(path: &FsPath) -> Result<Duration> {
    use std::io::Read;
    let start = Instant::now();
    let mut input =
        std::fs::File::open(path).map_err(io_error(format!("opening {}", path.display())))?;
    let mut buffer = vec![0u8; 1 << 20];
    while input
        .read(&mut buffer)
        .map_err(io_error("reading".into()))?
        > 0
    {}
    Ok(start.elapsed())
}

/// How many of `keys` are packs, and how many segments.
fn count_kinds(keys: &[Path]) -> (usize, usize) {
    let packs = keys
        .iter()
        .filter(|key| key.as_ref().ends_with(".pack"))
        .count();
    (packs, keys.len() - packs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_high_water_mark_reads_this_process() {
        let hwm = high_water_mark(FsPath::new("/proc/self/status"));
        if cfg!(target_os = "linux") {
            assert!(hwm.is_some_and(|bytes| bytes > 1024 * 1024), "{hwm:?}");
        }
    }

    #[test]
    fn test_count_kinds_splits_packs_from_segments() {
        let keys = [
            Path::from("s/packs/1-9.pack"),
            Path::from("s/segments/10.seg"),
            Path::from("s/segments/11.seg"),
        ];
        assert_eq!(count_kinds(&keys), (1, 2));
    }
}
