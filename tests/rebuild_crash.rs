//! A crash while state.db is rebuilt after a schema change loses nothing: the next open
//! rebuilds it again from the eventlog.
//!
//! Client `a` holds confirmed events and offline (pending) ones under the todo app's schema;
//! another client then takes the next position on the backend. `a` reopens with version 2
//! of the app, whose rebuild of state.db stops at the first pending event: a materializer
//! that fails there (in process), or a real SIGKILL of a child process blocked there. A
//! third open with a working version 2 (same schema hash) must then hold a state equal to a
//! fresh replay of its whole eventlog, keep the changesets of its pending events, and roll
//! them back when it syncs and rebases on the other client's event.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventsync::Event;
use eventsync::materialize::{Record, apply_event};
use eventsync::schema::{EventDef, MaterializeContext, MaterializerError, Schema, Statement};
use eventsync::{EncodedEvent, Store};
use eventsync_todo::{TodoCompleted, TodoCreated, todo_schema};
use object_store::memory::InMemory;
use serde_json::{Value, json};
use support::{backend_log, fast_tuning, memory_backend, open_store, synced};

/// The backend's store id.
const STORE: &str = "rebuild";
/// The replayed event at which the interrupted rebuild stops: `a`'s first pending event.
const STOP_AT: usize = 5;
/// Every column of version 2's table, as compared across replicas.
const TODOS_V2: &str = "SELECT id, shout, done FROM todos ORDER BY id";
/// Tells the forked child where `a`'s data dir is.
const CHILD_DIR_ENV: &str = "EVENTSYNC_TEST_REBUILD_DIR";

/// What a version 2 materializer does before its statements: nothing, or stop the rebuild.
type Hook = Arc<dyn Fn() -> Result<(), MaterializerError> + Send + Sync>;

/// Version 2 of the app: the text upper-cased, completion in a column `done`. The hook runs
/// first in every materializer; it is not part of the schema hash.
fn v2_schema(hook: Hook) -> Arc<Schema> {
    let on_complete = hook.clone();
    Arc::new(
        Schema::builder()
            .table(
                "todos",
                "CREATE TABLE todos (id TEXT PRIMARY KEY, shout TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0)",
            )
            .define_event(
                EventDef::synced(TodoCreated::NAME),
                move |args: TodoCreated, _: &MaterializeContext<'_>| {
                    hook()?;
                    Ok(vec![Statement::new(
                        "INSERT INTO todos (id, shout) VALUES (?1, upper(?2))",
                        vec![args.id.into(), args.text.into()],
                    )])
                },
            )
            .define_event(
                EventDef::synced(TodoCompleted::NAME),
                move |args: TodoCompleted, _: &MaterializeContext<'_>| {
                    on_complete()?;
                    Ok(vec![Statement::new(
                        "UPDATE todos SET done = 1 WHERE id = ?1",
                        vec![args.id.into()],
                    )])
                },
            )
            .build()
            .unwrap(),
    )
}

fn working_v2() -> Arc<Schema> {
    v2_schema(Arc::new(|| Ok(())))
}

/// A hook that runs `stop` on its `STOP_AT`-th call.
fn stop_at_pending(
    stop: impl Fn() -> Result<(), MaterializerError> + Send + Sync + 'static,
) -> Hook {
    let calls = AtomicUsize::new(0);
    Arc::new(move || {
        if calls.fetch_add(1, Ordering::SeqCst) + 1 == STOP_AT {
            stop()
        } else {
            Ok(())
        }
    })
}

/// Client `a`'s data dir and the shared backend, in the state before the schema change.
struct Prepared {
    memory: Arc<InMemory>,
    root: tempfile::TempDir,
}

impl Prepared {
    fn dir_a(&self) -> PathBuf {
        self.root.path().join("a")
    }
}

/// One commit of the todo app.
enum Step {
    Create(&'static str, &'static str),
    Complete(&'static str),
}

async fn commit(store: &Store, steps: &[Step]) {
    let session = store.session().await.unwrap();
    for step in steps {
        match step {
            Step::Create(id, text) => session.commit(&TodoCreated {
                id: (*id).into(),
                text: (*text).into(),
            }),
            Step::Complete(id) => session.commit(&TodoCompleted { id: (*id).into() }),
        }
        .unwrap();
    }
}

fn open_offline(
    schema: &Arc<Schema>,
    dir: &Path,
) -> impl Future<Output = eventsync::Result<Store>> {
    Store::builder(schema.clone())
        .with_data_dir(dir)
        .with_client_id("a")
        .with_offline(true)
        .with_tuning(fast_tuning())
        .open()
}

/// `a`: e1..e4 confirmed, e5..e6 pending (offline). `b`: its own e5 on the backend.
async fn prepare() -> Prepared {
    let prepared = Prepared {
        memory: Arc::new(InMemory::new()),
        root: tempfile::tempdir().unwrap(),
    };
    let v1 = Arc::new(todo_schema());
    let backend = memory_backend(&prepared.memory, STORE);
    let a = open_store(&v1, &prepared.dir_a(), "a", backend.clone()).await;
    let steps = [
        Step::Create("t1", "milk"),
        Step::Create("t2", "eggs"),
        Step::Create("t3", "tea"),
        Step::Complete("t1"),
    ];
    commit(&a, &steps).await;
    a.sync().await.unwrap();
    a.shutdown().await.unwrap();

    let a = open_offline(&v1, &prepared.dir_a()).await.unwrap();
    commit(&a, &[Step::Create("t4", "jam"), Step::Complete("t2")]).await;
    assert_eq!(a.status().await.unwrap().pending, 2, "a's offline events");
    a.shutdown().await.unwrap();

    let b = open_store(&v1, &prepared.root.path().join("b"), "b", backend).await;
    commit(&b, &[Step::Create("u1", "bread")]).await;
    b.sync().await.unwrap();
    b.shutdown().await.unwrap();
    prepared
}

/// Version 2's rows of a database built from `events` alone.
fn from_scratch(schema: &Schema, events: &[EncodedEvent]) -> Vec<Value> {
    let connection = rusqlite::Connection::open_in_memory().unwrap();
    schema.create_tables(&connection).unwrap();
    for event in events {
        apply_event(&connection, schema, event, Record::Nothing).unwrap();
    }
    let mut statement = connection.prepare(TODOS_V2).unwrap();
    statement
        .query_map([], |row| {
            Ok(json!({
                "id": row.get::<_, String>(0)?,
                "shout": row.get::<_, String>(1)?,
                "done": row.get::<_, i64>(2)?,
            }))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// After the interrupted rebuild: the state is the eventlog's, pending events can roll
/// back, and a rebase on `b`'s event converges with a fresh client.
async fn check_recovery(prepared: &Prepared) {
    let v2 = working_v2();
    let a = open_offline(&v2, &prepared.dir_a()).await.unwrap();
    let eventlog = a.eventlog().await.unwrap();
    assert_eq!(eventlog.len(), 6);
    let rows = a.query_leader(TODOS_V2).await.unwrap();
    assert_eq!(
        rows,
        from_scratch(&v2, &eventlog),
        "state = replay of the eventlog"
    );
    assert_eq!(
        rows,
        vec![
            json!({"id": "t1", "shout": "MILK", "done": 1}),
            json!({"id": "t2", "shout": "EGGS", "done": 1}),
            json!({"id": "t3", "shout": "TEA", "done": 0}),
            json!({"id": "t4", "shout": "JAM", "done": 0}),
        ]
    );
    assert_eq!(
        a.query_leader("SELECT coalesce(sum(events), 0) AS n FROM __eventsync_runs")
            .await
            .unwrap(),
        vec![json!({"n": 2})],
        "the pending events keep their changesets"
    );
    a.shutdown().await.unwrap();

    // Online: `b` took e5, so `a` rolls e5..e6 back by their changesets and replays them.
    let backend = memory_backend(&prepared.memory, STORE);
    let a = open_store(&v2, &prepared.dir_a(), "a", backend.clone()).await;
    a.sync().await.unwrap();
    assert_eq!(a.status().await.unwrap().pending, 0);
    let eventlog = a.eventlog().await.unwrap();
    let rows = a.query_leader(TODOS_V2).await.unwrap();
    assert_eq!(
        rows,
        from_scratch(&v2, &eventlog),
        "state = replay after the rebase"
    );
    assert_eq!(rows.len(), 5, "t1..t4 and b's u1: {rows:?}");
    let log = backend_log(&backend).await;
    assert_eq!(synced(&eventlog), log, "a's eventlog is the backend's log");
    a.shutdown().await.unwrap();

    let fresh = open_store(&v2, &prepared.root.path().join("c"), "c", backend).await;
    fresh.sync().await.unwrap();
    assert_eq!(fresh.query_leader(TODOS_V2).await.unwrap(), rows);
    fresh.shutdown().await.unwrap();
}

/// The in-process crash: version 2's materializer fails at the first pending event, so the
/// open fails; the rebuild must have left nothing behind.
#[tokio::test]
async fn test_rebuild_interrupted_by_a_failing_materializer_is_redone_at_next_boot() {
    let prepared = prepare().await;
    let failing = v2_schema(stop_at_pending(|| {
        Err(MaterializerError::new("interrupted rebuild"))
    }));
    let error = open_offline(&failing, &prepared.dir_a())
        .await
        .expect_err("the rebuild fails at the first pending event");
    assert!(
        format!("{error:#}").contains("interrupted rebuild"),
        "{error:#}"
    );
    check_recovery(&prepared).await;
}

/// The real crash: a child process opens `a` with version 2, blocks in the materializer of
/// the first pending event (after telling the parent so), and is killed with SIGKILL there.
#[cfg(unix)]
#[test]
fn test_rebuild_killed_part_way_is_redone_at_next_boot() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prepared = std::cell::OnceCell::new();
    rusty_fork::fork(
        rusty_fork::rusty_fork_test_name!(test_rebuild_killed_part_way_is_redone_at_next_boot),
        rusty_fork::rusty_fork_id!(),
        // Runs in the parent only, before the child starts.
        |command| {
            let ready = prepared.get_or_init(|| runtime.block_on(prepare()));
            command.env(CHILD_DIR_ENV, ready.dir_a());
        },
        |child, _output| {
            let prepared = prepared.get().expect("prepared before the child started");
            let marker = prepared.dir_a().join("rebuild-blocked");
            runtime.block_on(async {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                while !marker.exists() {
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!("the child ended before blocking in the rebuild: {status}");
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the child never reached the rebuild"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert_eq!(
                status.unix_signal(),
                Some(9),
                "killed with SIGKILL: {status}"
            );
            runtime.block_on(check_recovery(prepared));
        },
        || {
            let dir = PathBuf::from(std::env::var_os(CHILD_DIR_ENV).expect("the parent's dir"));
            let marker = dir.join("rebuild-blocked");
            let blocking = v2_schema(stop_at_pending(move || {
                std::fs::write(&marker, b"").expect("write the marker");
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }));
            let opened = runtime.block_on(open_offline(&blocking, &dir));
            panic!("the rebuild was not interrupted: {:?}", opened.err());
        },
    )
    .unwrap();
}
