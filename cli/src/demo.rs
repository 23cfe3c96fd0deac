//! `eventsync demo`: several simulated clients in one process, each with its own store
//! (data dir, client id, leader), committing todo events concurrently through ONE backend,
//! with offline stretches. Then it syncs them all until quiescent, prints a table, and
//! checks that every replica converged, that the backend log is gapless, and that it holds
//! each committed event exactly once (by client, session, name, args and commit order).
//!
//! The seed fixes each client's choices (which todo events, when to go offline); the
//! interleaving of the clients still depends on timing, which is the point of the demo.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::todo::{list, now_millis};
use super::{backend, context, out};
use crate::config::{Config, Origin, generate_id};
use eventsync::canonical_args;
use eventsync::schema::Schema;
use eventsync::{ClientSession, Event};
use eventsync::{Error, ErrorKind, Result};
use eventsync::{Store, StoreStats, Tuning};
use eventsync_backends::{GlobalEvent, ReadAllError, SyncBackend, SyncBackendExt};
use eventsync_todo::{TodoCompleted, TodoCreated, TodoDeleted, TodoUncompleted, todo_schema};

/// Arguments of `demo`. The backend is a fresh temporary folder unless `--backend` is
/// given on the command line (then the demo uses a new store id `demo-<random>` in it).
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated clients
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    clients: u16,
    /// Events each client commits
    #[arg(long, default_value_t = 50)]
    events: u32,
    /// Seed of the clients' choices (default: random, printed so a run can be repeated)
    #[arg(long)]
    seed: Option<u64>,
}

/// What the clients share.
struct Demo {
    schema: Arc<Schema>,
    backend: Arc<dyn SyncBackend>,
    store_id: String,
    root: PathBuf,
    tuning: Tuning,
    events: u32,
    seed: u64,
    progress: ProgressBar,
}

/// What one client did, over all its store openings.
struct ClientReport {
    name: String,
    stats: StoreStats,
    offline_stretches: u32,
    /// Every event its sessions committed, in commit order.
    committed: Vec<Committed>,
}

/// One event a demo session committed: what the backend log must hold exactly once.
#[derive(Debug, Clone, PartialEq)]
struct Committed {
    client_id: String,
    session_id: String,
    name: String,
    args: serde_json::Value,
}

/// One line of the final verdict.
struct Check {
    what: String,
    passed: bool,
}

/// Runs the demo.
pub(crate) async fn run(config: &Config, args: &DemoArgs) -> Result<()> {
    let seed = args
        .seed
        .unwrap_or_else(|| eventsync::Entropy::from_os().next_u64());
    let temp = tempfile::Builder::new()
        .prefix("eventsync-demo-")
        .tempdir()
        .map_err(|e| Error::new(ErrorKind::Unavailable, "creating a temp dir").with_source(e))?;
    let (url, store_id) = if matches!(config.backend_origin, Origin::Flag(_)) {
        (config.backend.clone(), format!("demo-{}", generate_id(8)))
    } else {
        let folder = temp.path().join("backend");
        std::fs::create_dir_all(&folder).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("creating {}", folder.display()),
            )
            .with_source(e)
        })?;
        (format!("file://{}", folder.display()), "demo".to_string())
    };
    let backend = backend::open_backend(config, &url, &store_id).await?;
    out(format!(
        "demo: {} clients x {} events, store {store_id:?} on {}, seed {seed}",
        args.clients,
        args.events,
        backend::display_url(&url)
    ))?;

    let demo = Rc::new(Demo {
        schema: Arc::new(todo_schema()),
        backend: backend.clone(),
        store_id,
        root: temp.path().to_path_buf(),
        tuning: config.tuning.clone(),
        events: args.events,
        seed,
        progress: progress_bar(u64::from(args.clients) * u64::from(args.events)),
    });

    // Sessions need not be `Send`: the clients run as local tasks on this thread, while each
    // store's leader works on the runtime as usual.
    let local = tokio::task::LocalSet::new();
    let outcomes = local
        .run_until(async {
            let tasks: Vec<_> = (1..=args.clients)
                .map(|i| tokio::task::spawn_local(run_client(demo.clone(), i)))
                .collect();
            futures::future::join_all(tasks).await
        })
        .await;
    demo.progress.finish_and_clear();

    let mut reports = Vec::new();
    let mut stores = Vec::new();
    for outcome in outcomes {
        let (report, store) =
            outcome.map_err(|e| Error::internal("a demo client task failed").with_source(e))??;
        reports.push(report);
        stores.push(store);
    }

    let result = finish(&demo, &reports, &stores).await;
    for store in stores {
        store.shutdown().await?;
    }
    result
}

/// Syncs until quiescent, prints the table, runs the checks.
async fn finish(demo: &Demo, reports: &[ClientReport], stores: &[Store]) -> Result<()> {
    let quiescent = sync_until_quiescent(demo, stores).await?;
    out("")?;
    out(format!(
        "{:<10} {:>7} {:>10} {:>8} {:>7} {:>10} {:>13} {:>8}",
        "client", "head", "committed", "rebases", "pushes", "ev/push", "server-ahead", "offline"
    ))?;
    for (report, store) in reports.iter().zip(stores) {
        let stats = sum_stats(&report.stats, &store.stats());
        let head = store.status().await?.local_head;
        out(format!(
            "{:<10} {:>7} {:>10} {:>8} {:>7} {:>10.1} {:>13} {:>8}",
            report.name,
            head.to_string(),
            stats.committed,
            stats.rebases,
            stats.pushes,
            stats.pushed_events as f64 / stats.pushes.max(1) as f64,
            stats.server_ahead,
            report.offline_stretches
        ))?;
    }

    let committed: Vec<Committed> = reports
        .iter()
        .flat_map(|report| report.committed.iter().cloned())
        .collect();
    let mut checks = vec![Check {
        what: "all clients quiescent: nothing pending, every head at the backend's head".into(),
        passed: quiescent,
    }];
    checks.extend(replica_checks(demo, stores).await?);
    checks.extend(log_checks(demo, &committed).await?);

    out("")?;
    for check in &checks {
        out(format!(
            "{} {}",
            if check.passed { "  ok    " } else { "  FAILED" },
            check.what
        ))?;
    }
    let failed = checks.iter().filter(|check| !check.passed).count();
    if failed > 0 {
        return Err(Error::internal(format!(
            "demo: {failed} of {} checks failed (seed {}); the replicas did not converge",
            checks.len(),
            demo.seed
        )));
    }
    out("all checks passed")
}

/// One client: commits `events` random todo events, going offline now and then.
async fn run_client(demo: Rc<Demo>, index: u16) -> Result<(ClientReport, Store)> {
    let name = format!("client-{index}");
    let mut rng =
        SmallRng::seed_from_u64(demo.seed ^ u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut report = ClientReport {
        name: name.clone(),
        stats: StoreStats::default(),
        offline_stretches: 0,
        committed: Vec::new(),
    };
    let mut store = open(&demo, &name, false).await?;
    let mut done = 0;
    loop {
        // Online: commit until the events run out or the client decides to go offline.
        {
            let session = store.session().await?;
            while done < demo.events {
                report
                    .committed
                    .push(commit_random(&session, &name, &mut rng)?);
                done += 1;
                demo.progress.inc(1);
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..3))).await;
                if rng.random_bool(0.08) {
                    break;
                }
            }
        }
        if done >= demo.events {
            break;
        }
        // An offline stretch: close, reopen offline for a few commits, reopen online.
        report.stats = sum_stats(&report.stats, &store.stats());
        store.shutdown().await?;
        let offline = open(&demo, &name, true).await?;
        {
            let session = offline.session().await?;
            for _ in 0..rng.random_range(2..=5).min(demo.events - done) {
                report
                    .committed
                    .push(commit_random(&session, &name, &mut rng)?);
                done += 1;
                demo.progress.inc(1);
            }
        }
        report.stats = sum_stats(&report.stats, &offline.stats());
        offline.shutdown().await?;
        report.offline_stretches += 1;
        store = open(&demo, &name, false).await?;
        store
            .sync()
            .await
            .map_err(|e| context(e, format!("{name}: syncing after going online")))?;
    }
    Ok((report, store))
}

/// Opens the store of client `name` (its own data dir and client id) on the shared backend.
async fn open(demo: &Demo, name: &str, offline: bool) -> Result<Store> {
    Store::builder(demo.schema.clone())
        .with_backend(demo.backend.clone())
        .with_store_id(demo.store_id.clone())
        .with_data_dir(demo.root.join(name))
        .with_client_id(name)
        .with_offline(offline)
        .with_tuning(demo.tuning.clone())
        .open()
        .await
        .map_err(|e| context(e, format!("{name}: opening its store")))
}

/// Commits one random todo event: mostly adds, else toggles or deletes an existing todo.
/// Returns what it committed.
fn commit_random(session: &ClientSession, name: &str, rng: &mut SmallRng) -> Result<Committed> {
    let todos = list(session)?;
    let roll = rng.random_range(0..100);
    if todos.is_empty() || roll < 50 {
        let id = format!("{name}-{}", generate_id(6));
        let text = WORDS[rng.random_range(0..WORDS.len())].to_string();
        return commit_one(session, name, &TodoCreated { id, text });
    }
    let todo = &todos[rng.random_range(0..todos.len())];
    let id = todo.id.clone();
    if roll < 80 && todo.completed {
        commit_one(session, name, &TodoUncompleted { id })
    } else if roll < 80 {
        commit_one(session, name, &TodoCompleted { id })
    } else {
        let deleted_at = now_millis();
        commit_one(session, name, &TodoDeleted { id, deleted_at })
    }
}

/// Commits `event` in `session` of client `name`; returns it as the log will hold it.
fn commit_one<E: Event>(session: &ClientSession, name: &str, event: &E) -> Result<Committed> {
    let args = serde_json::to_value(event)
        .map_err(|error| Error::internal(format!("{}: args do not serialize: {error}", E::NAME)))?;
    session.commit(event)?;
    Ok(Committed {
        client_id: name.to_owned(),
        session_id: session.session_id().to_owned(),
        name: E::NAME.to_owned(),
        args,
    })
}

const WORDS: &[&str] = &[
    "buy milk",
    "call mum",
    "water plants",
    "file taxes",
    "fix bike",
    "read paper",
    "book flights",
    "walk dog",
];

/// Syncs every store in turn until none has anything pending and all stand at the
/// backend's head. Returns whether that happened within the rounds allowed.
async fn sync_until_quiescent(demo: &Demo, stores: &[Store]) -> Result<bool> {
    for _round in 0..10 {
        for store in stores {
            store.sync().await?;
        }
        let head = demo
            .backend
            .head()
            .await
            .map_err(|e| backend::backend_error(&demo.backend.info().url, e))?;
        let mut settled = true;
        for store in stores {
            let status = store.status().await?;
            settled &= status.pending == 0 && status.local_head.global == head;
        }
        if settled {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every replica's todo list, and a fresh replica built from the log, are the same.
async fn replica_checks(demo: &Demo, stores: &[Store]) -> Result<Vec<Check>> {
    let mut lists = Vec::new();
    for store in stores {
        lists.push(todo_rows(&store.session().await?)?);
    }
    let first = lists.first().cloned().unwrap_or_default();
    let same = lists.iter().all(|list| *list == first);

    let auditor = open(demo, "auditor", false).await?;
    let rebuilt = match auditor.sync().await {
        Ok(()) => match auditor.session().await {
            Ok(session) => todo_rows(&session),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    auditor.shutdown().await?;
    let rebuilt = rebuilt?;
    Ok(vec![
        Check {
            what: format!(
                "all {} replicas hold the same todo list ({} todos)",
                stores.len(),
                first.len()
            ),
            passed: same,
        },
        Check {
            what: "a fresh replica rebuilt from the backend log holds the same list".into(),
            passed: rebuilt == first,
        },
    ])
}

/// The backend log is gapless and holds exactly the events the clients committed.
async fn log_checks(demo: &Demo, committed: &[Committed]) -> Result<Vec<Check>> {
    let url = demo.backend.info().url;
    let events = match demo.backend.read_all_checked().await {
        Ok(events) => events,
        Err(ReadAllError::Gap(gap)) => {
            return Ok(vec![Check {
                what: format!("backend log is gapless: {gap}"),
                passed: false,
            }]);
        }
        Err(ReadAllError::Backend(e)) => return Err(backend::backend_error(&url, e)),
    };
    let problems = log_discrepancies(committed, &events);
    let mut once = format!(
        "backend log holds each of the {} committed events exactly once, in its session's commit order, and nothing else ({} in the log)",
        committed.len(),
        events.len()
    );
    for problem in problems.iter().take(5) {
        once.push_str("\n          ");
        once.push_str(problem);
    }
    if problems.len() > 5 {
        once.push_str(&format!("\n          ... and {} more", problems.len() - 5));
    }
    Ok(vec![
        Check {
            what: format!(
                "backend log is gapless: e1..e{}, each parent = seq - 1",
                events.len()
            ),
            passed: true,
        },
        Check {
            what: once,
            passed: problems.is_empty(),
        },
    ])
}

/// The events of each session, `(client id, session id)`, as `(name, canonical args)` in
/// order.
type BySession = BTreeMap<(String, String), Vec<(String, serde_json::Value)>>;

/// How `log` differs from the record of `committed`, one sentence a difference; empty when
/// the log holds each committed event exactly once and nothing else. An event's identity is
/// its client, session, name, args and place in its session's commits, so two commits with
/// the same args (completing one todo twice) are two events: each must be there once.
/// A session's commits reach the log in commit order (rebases keep it), so a reordering is
/// reported too.
fn log_discrepancies(committed: &[Committed], log: &[GlobalEvent]) -> Vec<String> {
    let mut expected = BySession::new();
    for event in committed {
        expected
            .entry((event.client_id.clone(), event.session_id.clone()))
            .or_default()
            .push((event.name.clone(), canonical_args(&event.args)));
    }
    let mut found = BySession::new();
    for event in log {
        found
            .entry((event.client_id.clone(), event.session_id.clone()))
            .or_default()
            .push((event.name.clone(), canonical_args(&event.args)));
    }
    let sessions: BTreeSet<&(String, String)> = expected.keys().chain(found.keys()).collect();
    let mut problems = Vec::new();
    for session in sessions {
        let (client, session_id) = session;
        let want = expected.get(session).map_or(&[][..], Vec::as_slice);
        let have = found.get(session).map_or(&[][..], Vec::as_slice);
        if want == have {
            continue;
        }
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (name, args) in want {
            counts.entry(format!("{name} {args}")).or_default().0 += 1;
        }
        for (name, args) in have {
            counts.entry(format!("{name} {args}")).or_default().1 += 1;
        }
        let before = problems.len();
        for (event, (committed, held)) in counts {
            if held != committed {
                problems.push(format!(
                    "{event} from {client}/{session_id}: committed {committed} times, in the log {held} times"
                ));
            }
        }
        if problems.len() == before {
            problems.push(format!(
                "the events of {client}/{session_id} are in the log out of commit order"
            ));
        }
    }
    problems
}

/// A replica's todos as comparable rows.
fn todo_rows(session: &ClientSession) -> Result<Vec<(String, String, bool)>> {
    Ok(list(session)?
        .into_iter()
        .map(|todo| (todo.id, todo.text, todo.completed))
        .collect())
}

fn sum_stats(a: &StoreStats, b: &StoreStats) -> StoreStats {
    let mut total = a.clone();
    total += b;
    total
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} events committed ({elapsed})")
    {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use eventsync_backends::GlobalSeq;

    use super::*;

    fn committed(client: &str, session: &str, id: &str) -> Committed {
        Committed {
            client_id: client.into(),
            session_id: session.into(),
            name: TodoCompleted::NAME.into(),
            args: serde_json::to_value(TodoCompleted { id: id.into() }).unwrap(),
        }
    }

    /// The log holding these events, numbered from e1.
    fn log_of(events: &[&Committed]) -> Vec<GlobalEvent> {
        events
            .iter()
            .enumerate()
            .map(|(index, event)| GlobalEvent {
                seq_num: GlobalSeq(index as u64 + 1),
                parent_seq_num: GlobalSeq(index as u64),
                name: event.name.clone(),
                args: event.args.clone(),
                client_id: event.client_id.clone(),
                session_id: event.session_id.clone(),
            })
            .collect()
    }

    /// client-1's session s1 completes t1 twice (the same args), client-2's s2 completes t1.
    fn history() -> Vec<Committed> {
        vec![
            committed("client-1", "s1", "t1"),
            committed("client-2", "s2", "t1"),
            committed("client-1", "s1", "t1"),
        ]
    }

    #[test]
    fn test_log_check_passes_when_each_commit_is_in_the_log_once() {
        let history = history();
        // Another interleaving of the sessions: each session's order is what counts.
        let log = log_of(&[&history[0], &history[2], &history[1]]);
        assert_eq!(log_discrepancies(&history, &log), Vec::<String>::new());
    }

    #[test]
    fn test_log_check_fails_on_a_doubled_event_with_the_right_count() {
        let history = history();
        // Four events for three commits would fail a count; here one is doubled and another
        // missing, so the count matches and only identities tell.
        let log = log_of(&[&history[0], &history[2], &history[2]]);
        let problems = log_discrepancies(&history, &log);
        assert_eq!(
            problems,
            [
                "v1.TodoCompleted {\"id\":\"t1\"} from client-1/s1: committed 2 times, in the log 3 times",
                "v1.TodoCompleted {\"id\":\"t1\"} from client-2/s2: committed 1 times, in the log 0 times",
            ]
        );
    }

    #[test]
    fn test_log_check_fails_on_a_missing_event_whose_args_repeat() {
        let history = history();
        let log = log_of(&[&history[0], &history[1]]);
        let problems = log_discrepancies(&history, &log);
        assert_eq!(
            problems,
            [
                "v1.TodoCompleted {\"id\":\"t1\"} from client-1/s1: committed 2 times, in the log 1 times"
            ]
        );
    }

    #[test]
    fn test_log_check_fails_on_an_event_nobody_committed_and_on_a_reordering() {
        let history = history();
        let stranger = committed("client-9", "s9", "t1");
        let log = log_of(&[&history[0], &history[1], &history[2], &stranger]);
        let problems = log_discrepancies(&history, &log);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("from client-9/s9: committed 0 times, in the log 1 times"),
            "{problems:?}"
        );
        let mut swapped = history.clone();
        swapped[2] = committed("client-1", "s1", "t2");
        let reordered = log_of(&[&swapped[2], &swapped[1], &swapped[0]]);
        assert_eq!(
            log_discrepancies(&swapped, &reordered),
            ["the events of client-1/s1 are in the log out of commit order"]
        );
    }
}
