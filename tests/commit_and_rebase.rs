//! The seed's two stories, observed step by step: an event's way from a session to the
//! backend, and a rebase after another client took the same position; and a lazy rebase's
//! catch-up next to a client-only event the rebase did not roll back (issue 11).

mod support;
#[path = "simulation/tally.rs"]
mod tally;

use std::sync::Arc;

use eventsync::backends::GlobalSeq;
use eventsync::{Event, EventSeq, Tuning};
use eventsync_todo::{TodoCreated, TodoRenamed, todo_schema};
use object_store::memory::InMemory;
use serde::Deserialize;
use serde_json::{Value, json};
use support::{
    GatedBackend, backend_log, fast_tuning, memory_backend, open_store, open_store_tuned, synced,
    wait_until,
};
use tally::{TALLY_SQL, TallyBumped, sim_schema};

#[derive(Debug, Deserialize, PartialEq)]
struct Text {
    text: String,
}

fn created(id: &str, text: &str) -> TodoCreated {
    TodoCreated {
        id: id.into(),
        text: text.into(),
    }
}

/// Session pending → leader confirms (session pending empty, session head = leader head) →
/// leader pending → backend confirms (leader pending empty, backend head = leader head).
#[tokio::test(flavor = "current_thread")]
async fn test_commit_flow_step_by_step() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let gate = GatedBackend::new(memory_backend(&memory, "flow"), false);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&schema, dir.path(), "client-a", gate.clone()).await;
    let session = store.session().await.unwrap();

    let seq = session.commit(&created("t1", "milk")).unwrap();
    assert_eq!(seq, EventSeq::global(1));
    // 1. Readable at once, pending in the session; the leader has not answered yet (this
    //    runtime has one thread and we have not yielded).
    let rows: Vec<Text> = session
        .query("SELECT text FROM todos WHERE id = 't1'", &[])
        .unwrap();
    assert_eq!(
        rows,
        vec![Text {
            text: "milk".into()
        }]
    );
    let status = session.sync_status();
    assert_eq!(
        (status.pending, status.local_head, status.leader_head),
        (1, seq, EventSeq::ROOT)
    );

    // 2. The leader confirms: session pending empty, session head = leader head.
    wait_until("the leader confirms the session's event", async || {
        session.sync_status().pending == 0
    })
    .await;
    let status = session.sync_status();
    assert_eq!(status.local_head, status.leader_head);
    assert_eq!(status.leader_head, seq);
    assert_eq!(status.backend_confirmed_head, EventSeq::ROOT);
    assert_eq!(status.leader_pending, 1);

    // 3. Pending at the leader while the push is held.
    let leader = store.status().await.unwrap();
    assert_eq!(
        (
            leader.pending,
            leader.local_head,
            leader.backend_confirmed_head
        ),
        (1, seq, EventSeq::ROOT)
    );
    assert_eq!(leader.backend_head, Some(GlobalSeq::ZERO));

    // 4. The backend confirms: leader pending empty, backend head = leader head.
    gate.set_open(true);
    wait_until("the backend confirms", async || {
        store.status().await.unwrap().pending == 0
    })
    .await;
    let leader = store.status().await.unwrap();
    assert_eq!(leader.backend_confirmed_head, leader.local_head);
    assert_eq!(leader.backend_head, Some(GlobalSeq(1)));
    wait_until("the session hears of it", async || {
        session.sync_status().leader_pending == 0
    })
    .await;
    assert_eq!(session.sync_status().backend_confirmed_head, seq);
    store.shutdown().await.unwrap();
}

/// The seed's example exactly: A pushed through e41 and holds a local e42 (a rename); B
/// pushes a different e42 first; A's eventlog then shows … e41, e42 (B's), e43 (A's rename,
/// rebased) with no gap; A's session shows e43 pending, then confirmed; A's rename wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_rebase_after_another_client_took_e42() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let gate_a = GatedBackend::new(memory_backend(&memory, "seed"), true);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_store(&schema, dir_a.path(), "client-a", gate_a.clone()).await;
    let session_a = a.session().await.unwrap();
    session_a.commit(&created("t1", "buy milk")).unwrap();
    for n in 2..=41 {
        session_a
            .commit(&created(&format!("t{n}"), "filler"))
            .unwrap();
    }
    a.sync().await.unwrap();
    assert_eq!(
        a.status().await.unwrap().backend_confirmed_head,
        EventSeq::global(41)
    );

    let b = open_store(
        &schema,
        dir_b.path(),
        "client-b",
        memory_backend(&memory, "seed"),
    )
    .await;
    b.sync().await.unwrap();
    let session_b = b.session().await.unwrap();

    // A renames t1 while its pushes are held: a local e42.
    gate_a.set_open(false);
    let a42 = session_a.commit(&TodoRenamed {
        id: "t1".into(),
        text: "A's name".into(),
    });
    assert_eq!(a42.unwrap(), EventSeq::global(42));
    wait_until("A's leader holds e42", async || {
        a.status().await.unwrap().pending == 1
    })
    .await;

    // B pushes a different e42 first.
    let b42 = session_b.commit(&TodoRenamed {
        id: "t1".into(),
        text: "B's name".into(),
    });
    assert_eq!(b42.unwrap(), EventSeq::global(42));
    b.sync().await.unwrap();

    // A pulls B's e42 and rebases its rename to e43.
    wait_until("A rebased", async || {
        a.status().await.unwrap().local_head.global.0 == 43
    })
    .await;
    let eventlog = a.eventlog().await.unwrap();
    let globals: Vec<u64> = eventlog.iter().map(|event| event.seq.global.0).collect();
    assert_eq!(globals, (1..=43).collect::<Vec<_>>(), "no gap");
    assert_eq!(
        (eventlog[41].client_id.as_str(), eventlog[41].seq),
        ("client-b", EventSeq::global(42))
    );
    assert_eq!(eventlog[42].client_id, "client-a");
    assert_eq!(eventlog[42].name, TodoRenamed::NAME);
    assert_eq!(
        eventlog[42].seq,
        EventSeq::new(43, 0, 1),
        "A's rename rebased to e43r1"
    );
    assert_eq!(eventlog[42].parent.global.0, 42);
    let status = a.status().await.unwrap();
    assert_eq!(
        (status.pending, status.backend_confirmed_head),
        (1, EventSeq::global(42))
    );

    // A's session: e43 pending at the leader, then confirmed by the backend.
    wait_until("A's session hears the rebase", async || {
        session_a.sync_status().local_head.global.0 == 43
    })
    .await;
    let seen = session_a.sync_status();
    assert_eq!(
        (seen.leader_pending, seen.backend_confirmed_head),
        (1, EventSeq::global(42))
    );
    gate_a.set_open(true);
    a.sync().await.unwrap();
    wait_until("A's session sees e43 confirmed", async || {
        session_a.sync_status().backend_confirmed_head == EventSeq::global(43)
    })
    .await;
    assert_eq!(session_a.sync_status().leader_pending, 0);

    // A's rename is the last word everywhere.
    b.sync().await.unwrap();
    let query = "SELECT text FROM todos WHERE id = 't1'";
    let a_name = vec![Text {
        text: "A's name".into(),
    }];
    assert_eq!(session_a.query::<Text>(query, &[]).unwrap(), a_name);
    wait_until("B's session sees A's rename", async || {
        session_b.query::<Text>(query, &[]).unwrap() == a_name
    })
    .await;
    assert_eq!(
        a.query_leader(query).await.unwrap(),
        vec![serde_json::json!({"text": "A's name"})]
    );
    let log = backend_log(&memory_backend(&memory, "seed")).await;
    assert_eq!(log.len(), 43);
    assert_eq!(synced(&a.eventlog().await.unwrap()), log);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A commit that fails (its args do not fit the event) changes nothing, whether it is the
/// session's first (its undo span opens for it and must close again) or comes after pending
/// ones; the session goes on, and the backend gets exactly the commits that succeeded.
#[tokio::test(flavor = "current_thread")]
async fn test_a_failed_commit_leaves_nothing_and_the_session_goes_on() {
    let schema = Arc::new(todo_schema());
    let memory = Arc::new(InMemory::new());
    let backend = memory_backend(&memory, "failed");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&schema, dir.path(), "client-a", backend.clone()).await;
    let session = store.session().await.unwrap();
    let bad = serde_json::json!({ "id": 5 });

    let error = session.commit_dynamic(TodoCreated::NAME, &bad).unwrap_err();
    assert!(error.to_string().contains(TodoCreated::NAME), "{error}");
    assert_eq!(session.sync_status().local_head, EventSeq::ROOT);
    session.commit(&created("t1", "milk")).unwrap();
    session.commit_dynamic(TodoCreated::NAME, &bad).unwrap_err();
    session.commit(&created("t2", "eggs")).unwrap();
    let rows: Vec<Text> = session
        .query("SELECT text FROM todos ORDER BY id", &[])
        .unwrap();
    let texts: Vec<&str> = rows.iter().map(|row| row.text.as_str()).collect();
    assert_eq!(texts, ["milk", "eggs"]);

    store.sync().await.unwrap();
    let log = backend_log(&backend).await;
    let names: Vec<(u64, &str)> = log
        .iter()
        .map(|event| (event.seq_num.0, event.name.as_str()))
        .collect();
    assert_eq!(names, [(1, TodoCreated::NAME), (2, TodoCreated::NAME)]);
    wait_until("the session hears the backend confirmed both", async || {
        session.sync_status().backend_confirmed_head == EventSeq::global(2)
    })
    .await;
    let rows: Vec<Text> = session
        .query("SELECT text FROM todos ORDER BY id", &[])
        .unwrap();
    assert_eq!(rows.len(), 2);
    store.shutdown().await.unwrap();
}

/// Issue 11 (seed 24 of the simulation): A holds e1, the client-only e1.1 (a tally bump,
/// whose materializer is not idempotent) and e2. The backend confirms e1 alone, which takes
/// e1.1 out of pending too (LiveStore's walk counts a client-only event as confirmed with the
/// event before it). B then takes e2, A rebases its e2 to e3r1 lazily, and the catch-up rolls
/// back only e2. It must replay B's e2 and e3r1, and not e1.1, which A's tables and A's
/// session still hold: the tally counts one bump, not two, on the leader and in the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_catch_up_after_a_lazy_rebase_keeps_a_confirmed_client_only_event_once() {
    let schema = Arc::new(sim_schema());
    let memory = Arc::new(InMemory::new());
    let limit = GatedBackend::with_limit(memory_backend(&memory, "kept"), 1);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tuning = Tuning {
        push_batch_events: 1,
        ..fast_tuning()
    };
    assert!(
        tuning.lazy_rebase,
        "the catch-up under test is a lazy rebase's"
    );
    let a = open_store_tuned(&schema, dir_a.path(), "client-a", limit.clone(), tuning).await;
    let session_a = a.session().await.unwrap();
    let bump = TallyBumped { tag: "b1".into() };
    assert_eq!(
        session_a.commit(&created("t1", "A's first")).unwrap(),
        EventSeq::global(1)
    );
    assert_eq!(session_a.commit(&bump).unwrap(), EventSeq::new(1, 1, 0));
    assert_eq!(
        session_a.commit(&created("t2", "A's second")).unwrap(),
        EventSeq::global(2)
    );
    wait_until("A's leader holds all three", async || {
        let status = a.status().await.unwrap();
        (status.local_head, status.pending) == (EventSeq::global(2), 2)
    })
    .await;

    // The backend confirms e1 alone; e1.1 leaves pending with it, e2's push is held.
    limit.set_limit(2);
    wait_until("the backend confirmed e1", async || {
        a.status().await.unwrap().backend_confirmed_head == EventSeq::global(1)
    })
    .await;
    assert_eq!(a.status().await.unwrap().pending, 1, "e2 is still pending");

    // B takes e2; A pulls it and rebases its e2 to e3r1 without touching its tables.
    let b = open_store(
        &schema,
        dir_b.path(),
        "client-b",
        memory_backend(&memory, "kept"),
    )
    .await;
    b.sync().await.unwrap();
    let session_b = b.session().await.unwrap();
    assert_eq!(
        session_b.commit(&created("t3", "B's")).unwrap(),
        EventSeq::global(2)
    );
    b.sync().await.unwrap();
    wait_until("A deferred the rebase", async || {
        a.stats().deferred_rebases >= 1
    })
    .await;
    limit.set_limit(u64::MAX);
    a.sync().await.unwrap();
    wait_until("A's session caught up on e3r1, confirmed", async || {
        session_a.sync_status().backend_confirmed_head == EventSeq::global(3)
    })
    .await;
    assert!(a.stats().catch_ups >= 1, "{:?}", a.stats());

    let eventlog = a.eventlog().await.unwrap();
    let numbers: Vec<(EventSeq, &str)> = eventlog
        .iter()
        .map(|event| (event.seq, event.client_id.as_str()))
        .collect();
    assert_eq!(
        numbers,
        [
            (EventSeq::global(1), "client-a"),
            (EventSeq::new(1, 1, 0), "client-a"),
            (EventSeq::global(2), "client-b"),
            (EventSeq::new(3, 0, 1), "client-a"),
        ]
    );
    let once = vec![json!({ "count": 1, "trail": "b1" })];
    assert_eq!(a.query_leader(TALLY_SQL).await.unwrap(), once, "leader");
    assert_eq!(
        session_a.query::<Value>(TALLY_SQL, &[]).unwrap(),
        once,
        "A's session"
    );
    let todos: Vec<Text> = session_a
        .query("SELECT text FROM todos ORDER BY id", &[])
        .unwrap();
    let texts: Vec<&str> = todos.iter().map(|row| row.text.as_str()).collect();
    assert_eq!(texts, ["A's first", "A's second", "B's"]);
    assert_eq!(
        synced(&eventlog),
        backend_log(&memory_backend(&memory, "kept")).await
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
