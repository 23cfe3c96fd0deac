//! The figures of a whole `eventsync bench` run, in the order of issue 11's goals table,
//! each beside the limit it is measured against; and `--writers-only`.

use std::rc::Rc;
use std::time::Duration;

use eventsync::{Error, Result, StoreStats};
use indicatif::ProgressBar;

use super::figures::{self, Bench, percentile_us};
use super::limits::{self, IN_FLIGHT};
use super::report::{Figure, Goal, Limit};
use super::{Sizes, mib, ms, rate, raw_folder, segment_bytes, step};

/// Steps of the progress bar (one per `step` call in [`measure`]).
pub(super) const STEPS: u64 = 16;

/// Measures everything, in the order of the goals table; returns the figures and
/// the raw limits.
pub(super) async fn measure(
    bench: &Rc<Bench>,
    sizes: &Sizes,
    progress: &ProgressBar,
) -> Result<(Vec<Figure>, Vec<Limit>)> {
    let batch = bench.tuning.push_batch_events.max(1) as u64;
    let mut figures = Vec::new();
    let mut limits = Vec::new();
    let mut server_ahead = 0;
    let mut single_writer_pushes = 0;

    // Session commits, and the same row inserted and read back raw.
    step(progress, format!("{} session commits", sizes.commits));
    let commits = figures::session_commits(bench, sizes.commits).await?;
    let raw = limits::insert_select(sizes.commits)?;
    let (raw_p50, raw_p99) = (percentile_us(&raw, 0.5), percentile_us(&raw, 0.99));
    limits.push(Limit {
        key: "sqlite_insert_select_p50".into(),
        what: "a todo inserted and read back, in-memory SQLite, p50".into(),
        value: raw_p50,
        unit: "µs",
    });
    limits.push(Limit {
        key: "sqlite_insert_select_p99".into(),
        what: "the same, p99".into(),
        value: raw_p99,
        unit: "µs",
    });
    let insert_select = "the same row inserted and read back on in-memory SQLite";
    figures.push(
        Figure::new(
            "session_commit_p50",
            "session commit, readable, p50",
            percentile_us(&commits, 0.5),
            "µs",
        )
        .events(sizes.commits)
        .limit(raw_p50, insert_select)
        .goal("≤ 15 µs", Goal::AtMost(15.0)),
    );
    figures.push(
        Figure::new(
            "session_commit_p99",
            "session commit, readable, p99",
            percentile_us(&commits, 0.99),
            "µs",
        )
        .events(sizes.commits)
        .limit(raw_p99, insert_select)
        .goal("≤ 100 µs", Goal::AtMost(100.0)),
    );

    // The large store first, so that the RSS figure is not inflated by the steps after it.
    step(
        progress,
        format!("{} commits on one store (RSS, reopen)", sizes.large),
    );
    let large = figures::ingest(bench, "large", sizes.large).await?;
    server_ahead += large.stats.server_ahead;
    single_writer_pushes += large.stats.pushes;

    // Leader ingest at three sizes; the largest is also the "single commits" figures.
    let mut largest = None;
    for (index, &count) in sizes.ingest.iter().enumerate() {
        step(progress, format!("leader ingest of {count} commits"));
        let ingest = figures::ingest(bench, &format!("ingest-{count}"), count).await?;
        let with_changeset = limits::insert(&bench.temp, count, batch, true)?;
        let without = limits::insert(&bench.temp, count, batch, false)?;
        limits.push(Limit {
            key: format!("sqlite_insert_changeset_{index}"),
            what: format!("{count} todo inserts with a session changeset each, {batch} a transaction, file SQLite in the leader's mode"),
            value: rate(count, with_changeset),
            unit: "events/s",
        });
        limits.push(Limit {
            key: format!("sqlite_insert_{index}"),
            what: format!("the same {count} inserts without changesets"),
            value: rate(count, without),
            unit: "events/s",
        });
        const KEYS: [&str; 3] = [
            "leader_ingest_small",
            "leader_ingest_medium",
            "leader_ingest_large",
        ];
        figures.push(
            Figure::new(
                KEYS[index],
                "leader ingest, durable in the leader",
                rate(count, ingest.durable),
                "events/s",
            )
            .events(count)
            .higher_is_better()
            .limit(
                rate(count, with_changeset),
                format!("raw inserts with a changeset each, {batch} a transaction"),
            )
            .goal("≥ 0.5 × limit", Goal::RatioAtLeast(0.5))
            .note(format!(
                "{} durable leader batches ({} the raw limit's transactions)",
                ingest.durable_batches,
                count.div_ceil(batch)
            )),
        );
        server_ahead += ingest.stats.server_ahead;
        single_writer_pushes += ingest.stats.pushes;
        largest = Some((count, ingest, with_changeset));
    }
    figures.push(Figure::missing(
        "fsyncs_per_batch",
        "fsyncs per durable leader batch",
        "fsyncs",
        "not countable from inside the process: run `strace -f -c -e trace=fsync,fdatasync eventsync bench` and divide by the leader's batches",
    ).goal_text("≤ 2"));

    // The largest ingest: 10,000 single commits, then confirmed by the backend.
    step(progress, "PUTs of push-sized segments");
    let Some((count, ingest, with_changeset)) = largest else {
        return Err(Error::internal("bench: no ingest size"));
    };
    let batch_segment = segment_bytes(batch)?;
    let puts = count.div_ceil(batch);
    let (put_time, _) = limits::put(
        &bench.object_store,
        &raw_folder(bench, "push-sized"),
        &batch_segment,
        puts,
        1,
    )
    .await?;
    limits.push(Limit {
        key: "put_push_segment_one_at_a_time".into(),
        what: format!(
            "conditional PUTs of a {batch}-event segment ({} bytes), one at a time",
            batch_segment.len()
        ),
        value: ms(put_time) / puts as f64,
        unit: "ms/PUT",
    });
    figures.push(
        Figure::new(
            "single_commits_durable",
            "single commits from one session, durable in the leader",
            ingest.durable.as_secs_f64(),
            "s",
        )
        .events(count)
        .limit(
            with_changeset.as_secs_f64(),
            "raw inserts with a changeset each",
        )
        .goal("≤ 1 s (10,000 commits)", Goal::AtMost(1.0))
        .note(format!(
            "{} durable leader batches until all were durable",
            ingest.durable_batches
        )),
    );
    let confirm_goal = match bench.kind.as_str() {
        "s3" => ("≤ 5 s, ≥ 20 events/PUT", 5.0),
        _ => ("≤ 2 s, ≥ 20 events/PUT", 2.0),
    };
    figures.push(
        Figure::new(
            "single_commits_confirmed",
            "the same, confirmed by the backend",
            ingest.confirmed.as_secs_f64(),
            "s",
        )
        .events(count)
        .limit(
            (with_changeset + put_time).as_secs_f64(),
            format!("the raw inserts + {puts} raw PUTs of {batch}-event segments, one at a time"),
        )
        .goal(confirm_goal.0, Goal::AtMost(confirm_goal.1))
        .note(format!(
            "{} pushes, {} ServerAhead",
            ingest.stats.pushes, ingest.stats.server_ahead
        )),
    );
    let per_put = ingest.stats.committed as f64 / ingest.stats.pushes.max(1) as f64;
    figures.push(
        Figure::new(
            "events_per_put",
            "events per PUT under that load",
            per_put,
            "events",
        )
        .events(count)
        .higher_is_better()
        .limit(
            batch as f64,
            "the push batch limit (Tuning::push_batch_events)",
        )
        .goal("≥ 20", Goal::AtLeast(20.0)),
    );
    let requests = ingest.stats.requests.unwrap_or_default();
    figures.push(
        Figure::new(
            "requests_per_event",
            "backend requests per event under that load",
            requests.total() as f64 / count as f64,
            "requests",
        )
        .events(count)
        .limit(
            1.0 / batch as f64,
            "one PUT per push of the batch limit (Tuning::push_batch_events)",
        )
        .goal_text("a figure to watch (issue 11 sets no bound)")
        .note(format!(
            "{} PUT, {} GET, {} LIST, {} HEAD from the open to the last confirmation, {} pushes",
            requests.puts, requests.gets, requests.lists, requests.heads, ingest.stats.pushes
        )),
    );

    // Raw PUTs and GETs of one-event segments, one at a time and 16 in flight.
    step(progress, "raw PUTs and GETs");
    let small_segment = segment_bytes(1)?;
    for (in_flight, label) in [(1, "one_at_a_time"), (IN_FLIGHT, "16_in_flight")] {
        let folder = raw_folder(bench, &format!("objects-{in_flight}"));
        let (put_time, keys) = limits::put(
            &bench.object_store,
            &folder,
            &small_segment,
            sizes.objects,
            in_flight,
        )
        .await?;
        let (get_time, _) = limits::get(&bench.object_store, &keys, in_flight).await?;
        limits.push(Limit {
            key: format!("put_{label}"),
            what: format!("conditional PUTs (PutMode::Create) of a one-event segment ({} bytes), {in_flight} in flight", small_segment.len()),
            value: rate(sizes.objects, put_time),
            unit: "PUTs/s",
        });
        limits.push(Limit {
            key: format!("get_{label}"),
            what: format!("GETs of the same objects, {in_flight} in flight"),
            value: rate(sizes.objects, get_time),
            unit: "GETs/s",
        });
    }

    // Cold pulls: the log the large store wrote (a busy writer), and one written one event
    // per segment.
    step(
        progress,
        format!("writing {} events one per segment", sizes.large),
    );
    figures::write_one_per_segment(bench, "single", sizes.large, |n| {
        if n % 500 == 0 {
            progress.set_message(format!(
                "writing events one per segment: {n}/{}",
                sizes.large
            ));
        }
    })
    .await?;
    for (key, name, what) in [
        (
            "cold_pull_busy_writer",
            "large",
            "cold pull, log of a busy writer",
        ),
        (
            "cold_pull_one_per_segment",
            "single",
            "cold pull, one event per segment",
        ),
    ] {
        step(progress, format!("{what}: {} events", sizes.large));
        let pull = figures::cold_pull(bench, name, "puller", sizes.large).await?;
        let keys = figures::segment_keys(bench, name).await?;
        let (get_time, _) = limits::get(&bench.object_store, &keys, IN_FLIGHT).await?;
        let insert = limits::insert(&bench.temp, sizes.large, batch, false)?;
        figures.push(
            Figure::new(key, format!("{what}, into a fresh leader"), rate(sizes.large, pull), "events/s")
                .events(sizes.large)
                .higher_is_better()
                .limit(
                    rate(sizes.large, get_time + insert),
                    format!("GETs of its {} segments, {IN_FLIGHT} in flight, + raw inserts of the rows without changesets", keys.len()),
                )
                .goal("≥ 0.5 × limit", Goal::RatioAtLeast(0.5))
                .note(format!("{} segments", keys.len())),
        );
    }

    // The one-event-per-segment log packed (`SegmentLog::compact`), and a cold pull through
    // its packs: the packs that cover the log, then the segments after the last pack.
    step(progress, "packing the log written one event per segment");
    let packed = figures::compact(bench, "single").await?;
    step(
        progress,
        format!("cold pull through packs: {} events", sizes.large),
    );
    let pull = figures::cold_pull(bench, "single", "pack-puller", sizes.large).await?;
    let objects = figures::cold_read_keys(bench, "single", 1).await?;
    let packs = objects
        .iter()
        .filter(|key| key.as_ref().ends_with(".pack"))
        .count();
    let tail = objects.len() - packs;
    let (get_time, _) = limits::get(&bench.object_store, &objects, IN_FLIGHT).await?;
    let insert = limits::insert(&bench.temp, sizes.large, batch, false)?;
    figures.push(
        Figure::new(
            "cold_pull_packed",
            "cold pull through packs, one event per segment, packed, into a fresh leader",
            rate(sizes.large, pull),
            "events/s",
        )
        .events(sizes.large)
        .higher_is_better()
        .limit(
            rate(sizes.large, get_time + insert),
            format!("GETs of its {packs} packs and {tail} tail segments, {IN_FLIGHT} in flight, + raw inserts of the rows without changesets"),
        )
        .goal("≥ 0.5 × limit", Goal::RatioAtLeast(0.5))
        .note(format!(
            "packs of {} events merged {} to a level; {} packs written ({} merged), packed through e{}",
            bench.options.segment_log.pack_window_events,
            bench.options.segment_log.pack_fanout,
            packed.written,
            packed.merged,
            packed.packed_through
        )),
    );
    figures.push(
        Figure::new(
            "cold_read_objects",
            "objects a cold reader fetches: packs + segments after the last pack",
            objects.len() as f64,
            "objects",
        )
        .events(sizes.large)
        .goal(
            "≤ 1 per 1,000 events (≤ 1,000 for 1,000,000)",
            Goal::AtMost((sizes.large as f64 / 1000.0).max(1.0)),
        )
        .note(format!(
            "{packs} packs + {tail} segments, counted from the bucket's keys (the chain of packs from e1, then every segment after it), not from requests; {} segments without packs",
            sizes.large
        )),
    );

    // Reopen of the large store, RSS after committing its events.
    step(progress, "reopen");
    let reopen = figures::reopen(bench, "large", sizes.large).await?;
    let raw_reopen = limits::open_first_query(&bench.temp, sizes.large)?;
    figures.push(
        Figure::new(
            "reopen_first_query",
            "reopen, until the first query",
            ms(reopen),
            "ms",
        )
        .events(sizes.large)
        .limit(
            ms(raw_reopen),
            "open a file SQLite database of the same rows, count them",
        )
        .goal("≤ 100 ms (100,000 events)", Goal::AtMost(100.0)),
    );
    figures.push(match large.rss {
        Some((rss, hwm)) => Figure::new(
            "rss_after_commits",
            "RSS after committing",
            mib(rss),
            "MiB",
        )
        .events(sizes.large)
        .goal("≤ 100 MiB (100,000 events)", Goal::AtMost(100.0))
        .note(format!(
            "whole bench process, once the leader had them all; peak so far (VmHWM) {:.1} MiB",
            mib(hwm)
        )),
        None => Figure::missing(
            "rss_after_commits",
            "RSS after committing",
            "MiB",
            "no /proc/self/status on this system",
        ),
    });

    // A rebase of the pending events on the leader's real path.
    step(progress, format!("rebase of {} pending", sizes.rebase));
    let rebase = figures::rebase(bench, sizes.rebase)?;
    let raw_rebase = limits::rebase(&bench.temp, sizes.rebase)?;
    figures.push(
        Figure::new("rebase", "roll back and replay pending events", ms(rebase), "ms")
            .events(sizes.rebase)
            .limit(ms(raw_rebase), "raw: delete the rows, insert one, insert them again, one transaction")
            .goal("≤ 20 ms (1,000 events)", Goal::AtMost(20.0))
            .note("the leader's own durable batch (eventsync::rebase_in_leader: LeaderDb::apply_batch + commit of state.db and eventlog.db), the pending events admitted one step each"),
    );

    // Several writers on one log, against one writer committing the same events.
    let (figure, one) = writers_figure(bench, sizes, progress).await?;
    server_ahead += one.server_ahead;
    single_writer_pushes += one.pushes;
    figures.push(figure);

    figures.push(
        Figure::new(
            "server_ahead_single_writer",
            "ServerAhead answers to a single writer",
            server_ahead as f64,
            "refusals",
        )
        .goal("0", Goal::AtMost(0.0))
        .note(format!(
            "summed over the single-writer runs above, {single_writer_pushes} pushes"
        )),
    );
    figures.push(idle_figure(bench, sizes, progress).await?);
    Ok((figures, limits))
}

/// An idle store's live pull: its requests against the polls of the backoff schedule.
async fn idle_figure(bench: &Rc<Bench>, sizes: &Sizes, progress: &ProgressBar) -> Result<Figure> {
    step(progress, "idle live pull");
    let at_least = if sizes.commits < 1_000 {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let idle = figures::idle_polls(bench, "idle", at_least).await?;
    Ok(Figure::new(
        "idle_pull_requests_per_poll",
        "idle live pull, requests per poll",
        idle.requests.total() as f64 / idle.polls.max(1) as f64,
        "requests",
    )
    .goal("1, the poll backing off to its maximum", Goal::AtMost(1.0))
    .note(format!(
        "{} requests ({} GET, {} PUT, {} LIST) in {:.2} s idle, where the backoff ({:?} doubling to {:?}) polls {} times",
        idle.requests.total(),
        idle.requests.gets,
        idle.requests.puts,
        idle.requests.lists,
        idle.window.as_secs_f64(),
        bench.options.segment_log.poll_min,
        bench.options.segment_log.poll_max,
        idle.polls
    )))
}

/// Several writers on one log, against one writer committing the same events; with the
/// one writer's counters (for the single-writer `ServerAhead` figure).
async fn writers_figure(
    bench: &Rc<Bench>,
    sizes: &Sizes,
    progress: &ProgressBar,
) -> Result<(Figure, StoreStats)> {
    let (writers, each) = sizes.writers;
    step(progress, format!("{writers} writers × {each} events"));
    let one = figures::writers(bench, "one-writer", 1, writers * each).await?;
    let many = figures::writers(bench, "writers", writers, each).await?;
    let stats = &many.stats;
    let requests = stats.requests.unwrap_or_default();
    let mut figure = Figure::new(
        "writers_aggregate",
        format!("{writers} writers on one log, aggregate"),
        rate(writers * each, many.elapsed),
        "events/s",
    )
    .events(writers * each)
    .higher_is_better()
    .limit(
        rate(writers * each, one.elapsed),
        "one writer committing the same events",
    )
    .goal(
        "every event once; ≥ 0.5 × one writer",
        Goal::RatioAtLeast(0.5),
    )
    .note(format!(
        "until each writer had its own confirmed; {} pushes, {} ServerAhead, {} rebases ({} lazy, {} catch-ups), {} pull starts, {} pulled pages; requests {:.2}/event ({} PUT, {} GET, {} LIST); process CPU {} in {:.2} s ({} for one writer in {:.2} s), {} cores",
        stats.pushes,
        stats.server_ahead,
        stats.rebases,
        stats.deferred_rebases,
        stats.catch_ups,
        stats.pull_starts,
        stats.pulled_pages,
        requests.total() as f64 / (writers * each) as f64,
        requests.puts,
        requests.gets,
        requests.lists,
        seconds(many.cpu),
        many.elapsed.as_secs_f64(),
        seconds(one.cpu),
        one.elapsed.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    ));
    for problem in [one.problem, many.problem].into_iter().flatten() {
        figure = figure.failed(problem);
    }
    Ok((figure, one.stats))
}

/// A CPU time in seconds, or `n/a`.
fn seconds(cpu: Option<Duration>) -> String {
    cpu.map_or("n/a".into(), |cpu| format!("{:.2} s", cpu.as_secs_f64()))
}

/// `--writers-only`: the several-writers and idle-pull figures alone, for a quick look at
/// the backend's side.
pub(super) async fn measure_writers(
    bench: &Rc<Bench>,
    sizes: &Sizes,
    progress: &ProgressBar,
) -> Result<(Vec<Figure>, Vec<Limit>)> {
    let (figure, _) = writers_figure(bench, sizes, progress).await?;
    let idle = idle_figure(bench, sizes, progress).await?;
    Ok((vec![figure, idle], Vec::new()))
}
