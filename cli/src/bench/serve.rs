//! `eventsync bench --serve`: `eventsync serve` under load on 127.0.0.1. An in-process
//! server over the bench's backend; WebSocket clients speaking LiveStore's protocol
//! ([`eventsync_server::load`]) commit at a steady rate, in two shapes: many clients on one
//! store (they race for its head: `ServerAheadError`s and pushes again), and one client on
//! each of many stores. The figures are the time from a commit to its echo on the
//! committer's live pull (p50, p99) and the events sustained per second; the limits are
//! conditional PUTs of a one-event segment on the same backend in the same run, one at a
//! time (the latency floor of one push) and 16 in flight (a rate floor).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use eventsync::{Error, ErrorKind, Result};
use eventsync_backends::{SegmentLog, SyncBackend};
use eventsync_server::load::{LoadPlan, LoadReport};
use eventsync_server::{Limits, Opener, SyncServer};
use indicatif::ProgressBar;

use super::figures::Bench;
use super::limits::{self, IN_FLIGHT};
use super::report::{Figure, Limit};
use super::{ms, rate, raw_folder, segment_bytes, step};

/// Steps of `--serve`'s progress bar.
pub(super) const STEPS: u64 = 3;

/// One load shape.
struct Shape {
    /// Key prefix of its figures.
    key: [&'static str; 3],
    what: &'static str,
    clients: usize,
    stores: usize,
    events_per_client: u64,
    interval: Duration,
}

fn shapes(quick: bool) -> [Shape; 2] {
    if quick {
        [
            Shape {
                key: [
                    "serve_one_store_echo_p50",
                    "serve_one_store_echo_p99",
                    "serve_one_store_events_per_s",
                ],
                what: "10 WebSocket clients on one store",
                clients: 10,
                stores: 1,
                events_per_client: 5,
                interval: Duration::from_millis(100),
            },
            Shape {
                key: [
                    "serve_many_stores_echo_p50",
                    "serve_many_stores_echo_p99",
                    "serve_many_stores_events_per_s",
                ],
                what: "20 stores, one WebSocket client each",
                clients: 20,
                stores: 20,
                events_per_client: 3,
                interval: Duration::from_millis(100),
            },
        ]
    } else {
        [
            Shape {
                key: [
                    "serve_one_store_echo_p50",
                    "serve_one_store_echo_p99",
                    "serve_one_store_events_per_s",
                ],
                what: "100 WebSocket clients on one store",
                clients: 100,
                stores: 1,
                events_per_client: 20,
                interval: Duration::from_millis(500),
            },
            Shape {
                key: [
                    "serve_many_stores_echo_p50",
                    "serve_many_stores_echo_p99",
                    "serve_many_stores_events_per_s",
                ],
                what: "1,000 stores, one WebSocket client each",
                clients: 1000,
                stores: 1000,
                events_per_client: 10,
                interval: Duration::from_secs(1),
            },
        ]
    }
}

/// A hang guard for one load run, not a measurement.
const PATIENCE: Duration = Duration::from_secs(600);

/// Measures both load shapes against an in-process server and the raw PUT limits.
pub(super) async fn measure_serve(
    bench: &Rc<Bench>,
    quick: bool,
    progress: &ProgressBar,
) -> Result<(Vec<Figure>, Vec<Limit>)> {
    step(progress, "raw conditional PUTs of a one-event segment");
    let body = segment_bytes(1)?;
    let objects = if quick { 20 } else { 300 };
    let (one_time, _) = limits::put(
        &bench.object_store,
        &raw_folder(bench, "serve-one"),
        &body,
        objects,
        1,
    )
    .await?;
    let (many_time, _) = limits::put(
        &bench.object_store,
        &raw_folder(bench, "serve-many"),
        &body,
        objects,
        IN_FLIGHT,
    )
    .await?;
    let put_ms = ms(one_time) / objects as f64;
    let put_rate = rate(objects, many_time);
    let limits = vec![
        Limit {
            key: "put_one_event_segment_one_at_a_time".into(),
            what: format!(
                "conditional PUTs of a one-event segment ({} bytes), one at a time",
                body.len()
            ),
            value: put_ms,
            unit: "ms/PUT",
        },
        Limit {
            key: "put_one_event_segment_in_flight".into(),
            what: format!("the same PUTs, {IN_FLIGHT} in flight"),
            value: put_rate,
            unit: "PUTs/s",
        },
    ];

    let server = start_server(bench).await?;
    let mut figures = Vec::new();
    for (index, shape) in shapes(quick).into_iter().enumerate() {
        step(progress, shape.what);
        let plan = LoadPlan {
            url: server.url.clone(),
            stores: (0..shape.stores)
                .map(|s| format!("{}-serve{index}-{s}", bench.run_id))
                .collect(),
            clients: shape.clients,
            events_per_client: shape.events_per_client,
            interval: shape.interval,
            patience: PATIENCE,
        };
        let report = eventsync_server::load::run(&plan).await.map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("bench --serve, {}: {e}", shape.what),
            )
        })?;
        figures.extend(shape_figures(&shape, &report, put_ms, put_rate));
    }
    server.stop().await;
    Ok((figures, limits))
}

fn shape_figures(shape: &Shape, report: &LoadReport, put_ms: f64, put_rate: f64) -> [Figure; 3] {
    let offered = shape.clients as f64 / shape.interval.as_secs_f64();
    let note = format!(
        "{what}, {per} events each, one every {interval:?} ({offered:.0} events/s offered); {pushes} pushes, {ahead} ServerAheadError, {delivered} events delivered by live pulls ({delivery_rate:.0}/s); in-process server and clients on the same machine",
        what = shape.what,
        per = shape.events_per_client,
        interval = shape.interval,
        pushes = report.pushes,
        ahead = report.server_ahead,
        delivered = report.delivered,
        delivery_rate = rate(report.delivered, report.elapsed),
    );
    // The echo at quantile `q` (`label`), beside one PUT at a time.
    let echo = |key: &'static str, label: &str, q: f64| {
        Figure::new(
            key,
            format!("{}: commit to live-pull echo, {label}", shape.what),
            ms(report.echo_quantile(q)),
            "ms",
        )
        .events(report.events)
        .limit(
            put_ms,
            "one conditional PUT of a one-event segment, one at a time",
        )
        .goal_text("—")
    };
    [
        echo(shape.key[0], "p50", 0.5).note(note),
        echo(shape.key[1], "p99", 0.99),
        Figure::new(
            shape.key[2],
            format!("{}: events sustained", shape.what),
            rate(report.events, report.elapsed),
            "events/s",
        )
        .events(report.events)
        .higher_is_better()
        .limit(
            put_rate,
            format!("conditional PUTs of a one-event segment, {IN_FLIGHT} in flight, per s"),
        )
        .goal_text("—")
        .note(format!("{offered:.0} events/s offered")),
    ]
}

/// The server under test, on 127.0.0.1.
struct Served {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A server whose stores are the bench's segment logs (one object store client for all).
async fn start_server(bench: &Bench) -> Result<Served> {
    let object_store = bench.object_store.clone();
    let prefix = bench.prefix.clone();
    let config = bench.options.segment_log.clone();
    let (kind, shown) = (bench.kind.clone(), bench.url.clone());
    let opener: Opener = Arc::new(move |store_id| {
        let log = SegmentLog::new(
            object_store.clone(),
            prefix.clone(),
            store_id.as_str(),
            config.clone(),
        )
        .map(|log| Arc::new(log.with_description(&kind, &shown)) as Arc<dyn SyncBackend>);
        Box::pin(async move { log })
    });
    let limits = Limits::default();
    let server = SyncServer::new(opener, limits, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| {
            Error::new(ErrorKind::Unavailable, "bench: listening on 127.0.0.1").with_source(e)
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal("bench: the listening address").with_source(e))?;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    Ok(Served {
        url: format!("ws://{addr}/sync"),
        stop,
        task,
    })
}
