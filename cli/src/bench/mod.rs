//! `eventsync bench`: every figure of the performance goals (issue 11), each beside its
//! limit measured in the same run on the same machine, as a table or one JSON object.
//!
//! - [`measure`]: the run of every figure, in the order of the goals table, and
//!   `--writers-only`;
//! - [`figures`]: eventsync's figures, through the public API, on the bench's backend;
//! - [`limits`]: the raw baselines (SQLite inserts in the leader's durability mode, with and
//!   without a changeset per row; conditional PUTs and GETs one at a time and 16 in flight);
//! - [`report`]: the [`Figure`]s, their ratios and goals, the table and the JSON.
//!
//! The backend is a fresh temporary folder unless `--backend` is given (then every store of
//! the run is named `bench-<random>-<figure>` in it, and stays there: the log never deletes).
//! A figure that cannot be measured yet says `n/a` and why, never a made-up number.

mod figures;
mod history;
mod limits;
mod measure;
mod report;
mod serve;

use std::io::IsTerminal;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use eventsync::{Error, ErrorKind, Result};
use eventsync_backends::object_store::path::Path;
use eventsync_backends::segment::{self, SegmentDigest, SegmentWriter, WriterNonce};
use eventsync_backends::{GlobalEvent, GlobalSeq, open_object_store};
use eventsync_todo::todo_schema;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use super::{backend, out};
use crate::config::{Config, Origin, generate_id};
use figures::Bench;
use measure::{STEPS, measure, measure_writers};
use report::Report;

/// Arguments of `bench`. `--backend` is the global flag: without it the bench uses a fresh
/// temporary folder.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Print one JSON object (stable keys) instead of the table
    #[arg(long)]
    json: bool,
    /// Size of the large figures: cold pulls, reopen, RSS [default: 10000; 100 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(10..))]
    events: Option<u64>,
    /// Everything tiny: a smoke test of the bench itself, not a measurement
    #[arg(long)]
    quick: bool,
    /// Only the several-writers and idle-pull figures (the backend's side), quickly
    #[arg(long, conflicts_with = "serve")]
    writers_only: bool,
    /// Only `eventsync serve` under load: WebSocket clients on one store and on many
    /// stores, commit-to-echo p50/p99 and events/s, beside raw conditional PUTs
    #[arg(long)]
    serve: bool,
    /// Size of the history figures (a packed and snapshotted log: fresh clients, verify,
    /// export, import) [default: 20000; 1000 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(100..))]
    history: Option<u64>,
    /// Only the history figures
    #[arg(long, conflicts_with_all = ["writers_only", "serve"])]
    history_only: bool,
}

/// The sizes of one run.
struct Sizes {
    /// Session commits timed one by one.
    commits: u64,
    /// Leader ingest runs; the last is "10,000 single commits".
    ingest: [u64; 3],
    /// Cold pulls, reopen, RSS.
    large: u64,
    /// Pending events of the rebase.
    rebase: u64,
    /// Writers of the several-writers figure, and events each.
    writers: (u64, u64),
    /// Objects of the raw PUT and GET limits.
    objects: u64,
    /// Events of the history figures (none with `--writers-only`).
    history: Option<u64>,
}

impl Sizes {
    fn new(args: &BenchArgs) -> Sizes {
        let mut sizes = if args.quick {
            Sizes {
                commits: 200,
                ingest: [20, 100, 300],
                large: args.events.unwrap_or(100),
                rebase: 100,
                writers: (8, 20),
                objects: 20,
                history: Some(args.history.unwrap_or(1_000)),
            }
        } else {
            Sizes {
                commits: 2_000,
                ingest: [100, 1_000, 10_000],
                large: args.events.unwrap_or(10_000),
                rebase: 1_000,
                writers: (8, 250),
                objects: 500,
                history: Some(args.history.unwrap_or(20_000)),
            }
        };
        if args.writers_only || args.serve {
            sizes.history = None;
        }
        sizes
    }
}

/// Runs the bench and prints its report.
pub(crate) async fn run(config: &Config, args: &BenchArgs) -> Result<()> {
    let temp = tempfile::Builder::new()
        .prefix("eventsync-bench-")
        .tempdir()
        .map_err(|e| Error::new(ErrorKind::Unavailable, "creating a temp dir").with_source(e))?;
    let url = if matches!(config.backend_origin, Origin::Flag(_)) {
        config.backend.clone()
    } else {
        let folder = temp.path().join("backend");
        format!("file://{}", folder.display())
    };
    let (object_store, prefix) = open_object_store(&url, &config.backend_options)
        .map_err(|e| backend::backend_error(&url, e))?;
    let kind = url.split("://").next().unwrap_or("file").to_string();
    let bench = Rc::new(Bench {
        object_store,
        prefix,
        url: backend::display_url(&url),
        kind: if url.contains("://") {
            kind
        } else {
            "file".into()
        },
        options: config.backend_options.clone(),
        run_id: format!("bench-{}", generate_id(8).to_ascii_lowercase()),
        temp: temp.path().join("work"),
        schema: Arc::new(todo_schema()),
        tuning: config.tuning.clone(),
    });
    std::fs::create_dir_all(&bench.temp).map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("creating {}", bench.temp.display()),
        )
        .with_source(e)
    })?;
    let sizes = Sizes::new(args);
    let steps = if args.serve {
        serve::STEPS
    } else if args.history_only {
        0
    } else {
        STEPS
    } + sizes.history.map_or(0, |_| 7);
    let progress = progress_bar(steps);
    let start = Instant::now();
    let result = if args.serve {
        serve::measure_serve(&bench, args.quick, &progress).await
    } else if args.writers_only {
        measure_writers(&bench, &sizes, &progress).await
    } else if args.history_only {
        Ok((Vec::new(), Vec::new()))
    } else {
        measure(&bench, &sizes, &progress).await
    };
    let result = match (result, sizes.history) {
        (Ok((mut figures, mut limits)), Some(events)) => {
            let shown = |message: String| step(&progress, message);
            history::measure(&bench, &url, events, &shown)
                .await
                .map(|(more, raw)| {
                    figures.extend(more);
                    limits.extend(raw);
                    (figures, limits)
                })
        }
        (result, _) => result,
    };
    progress.finish_and_clear();
    let (figures, limits) = result?;
    let report = Report {
        format: 1,
        backend: bench.url.clone(),
        backend_kind: bench.kind.clone(),
        events: if args.history_only {
            sizes.history.unwrap_or(sizes.large)
        } else {
            sizes.large
        },
        quick: args.quick,
        sqlite_durability: limits::LEADER_DURABILITY.into(),
        elapsed_s: start.elapsed().as_secs_f64(),
        figures,
        limits,
    };
    if args.json {
        out(report.to_json())
    } else {
        for line in report.table() {
            out(line)?;
        }
        Ok(())
    }
}

fn step(progress: &ProgressBar, message: impl Into<String>) {
    progress.inc(1);
    progress.set_message(message.into());
}

fn rate(events: u64, time: Duration) -> f64 {
    events as f64 / time.as_secs_f64().max(1e-9)
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Where this run's raw objects go: beside its stores, never inside one.
fn raw_folder(bench: &Bench, name: &str) -> Path {
    bench
        .prefix
        .clone()
        .join(format!("{}-raw", bench.run_id))
        .join(name)
}

/// A segment of `events` todos, as the segment log encodes it: the body of the raw PUTs.
fn segment_bytes(events: u64) -> Result<bytes::Bytes> {
    let events: Vec<GlobalEvent> = (1..=events)
        .map(|n| GlobalEvent {
            seq_num: GlobalSeq(n),
            parent_seq_num: GlobalSeq(n - 1),
            name: "v1.TodoCreated".into(),
            args: serde_json::to_value(limits::todo(n)).unwrap_or_default(),
            client_id: "writer".into(),
            session_id: "s1".into(),
        })
        .collect();
    let writer = SegmentWriter {
        nonce: WriterNonce::draw(&eventsync::Entropy::seeded(1)),
        prev_digest: SegmentDigest::ROOT,
        backend_id: "0123456789abcdef0123456789abcdef",
        client_id: "writer",
    };
    segment::encode(&writer, &events)
        .map(|encoded| encoded.bytes)
        .map_err(|e| Error::internal("bench: encoding a segment").with_source(e))
}

/// A progress bar of the bench's steps on stderr, hidden when stderr is not a terminal.
fn progress_bar(steps: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_segment_bytes_grow_with_events() {
        let one = segment_bytes(1).unwrap();
        let hundred = segment_bytes(100).unwrap();
        assert!(
            hundred.len() > 50 * one.len() / 2,
            "{} {}",
            one.len(),
            hundred.len()
        );
    }
}
