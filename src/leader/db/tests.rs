//! The crash windows of the two ordered commits: a `state.db` behind its eventlog (by appends,
//! or across a rebase that rewrote events it holds), one ahead of it, and the O(1) level
//! check. A window is made by copying a file aside at one commit and putting it back after
//! later ones: exactly what a lost state commit (or a replaced eventlog) leaves on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eventsync_backends::{GlobalSeq, StoreId};
use serde_json::json;

use super::{LeaderDb, NewEvent};
use crate::data_dir::StoreDir;
use crate::event::{Changeset, EncodedEvent, EventMeta};
use crate::materialize::Record;
use crate::schema::{EventDef, MaterializeContext, Schema, Statement};
use crate::seq::EventSeq;

/// A schema of one table; every materialization counts in `calls`.
fn schema(calls: Arc<AtomicUsize>) -> Schema {
    Schema::builder()
        .table("items", "CREATE TABLE items (id TEXT PRIMARY KEY)")
        .define_event(
            EventDef::synced("v1.Add"),
            move |id: String, _: &MaterializeContext<'_>| {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(vec![Statement::new(
                    "INSERT INTO items VALUES (?1)",
                    vec![id.into()],
                )])
            },
        )
        .build()
        .unwrap()
}

fn add(seq: EventSeq, parent: EventSeq, id: &str) -> EncodedEvent {
    EncodedEvent {
        seq,
        parent,
        name: "v1.Add".into(),
        args: json!(id),
        client_id: "c".into(),
        session_id: "s".into(),
        meta: EventMeta::default(),
    }
}

struct Files {
    _root: tempfile::TempDir,
    dir: StoreDir,
    calls: Arc<AtomicUsize>,
    schema: Schema,
}

impl Files {
    fn new() -> Files {
        let root = tempfile::tempdir().unwrap();
        let dir = StoreDir::new(root.path(), &StoreId::new("t").unwrap());
        dir.create().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        Files {
            schema: schema(calls.clone()),
            _root: root,
            dir,
            calls,
        }
    }

    /// Opens and levels, as boot does; returns the materializer calls the leveling made.
    fn open(&self) -> (LeaderDb, usize) {
        let mut db = LeaderDb::open(&self.dir, &self.schema).unwrap();
        let before = self.calls.load(Ordering::SeqCst);
        db.level_state(&self.schema).unwrap();
        (db, self.calls.load(Ordering::SeqCst) - before)
    }

    /// Keeps a copy of `file` (closed, so its WAL is checkpointed away).
    fn save(&self, file: &Path) -> Vec<u8> {
        assert!(!wal(file).exists(), "{} still has a WAL", file.display());
        std::fs::read(file).unwrap()
    }

    fn restore(&self, file: &Path, bytes: &[u8]) {
        std::fs::write(file, bytes).unwrap();
    }
}

fn wal(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Applies `new` (each recorded as asked) after rolling back `rollback`.
fn batch(
    db: &mut LeaderDb,
    schema: &Schema,
    rollback: &[EncodedEvent],
    new: &mut [(EncodedEvent, Record)],
    confirmed: Option<u64>,
) {
    let head = new.last().map(|(event, _)| event.seq).unwrap();
    let mut items: Vec<NewEvent<'_>> = new
        .iter_mut()
        .map(|(event, record)| NewEvent {
            event,
            record: *record,
        })
        .collect();
    db.apply_batch(schema, rollback, &mut items, head, confirmed.map(GlobalSeq))
        .unwrap();
    db.commit().unwrap();
}

/// The set-up most tests start from: e1 ("a") applied and confirmed by the backend.
fn confirm_a(db: &mut LeaderDb, schema: &Schema) {
    batch(
        db,
        schema,
        &[],
        &mut [(add(E1, ROOT, "a"), Record::Nothing)],
        Some(1),
    );
}

fn items_of(db: &LeaderDb) -> Vec<String> {
    db.connection()
        .prepare("SELECT id FROM items ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The globals of the events that have a changeset (in a run), ascending: these tests'
/// events are synced and numbered without gaps, so a run holds every global from its first
/// to its last.
fn changesets(db: &LeaderDb) -> Vec<u64> {
    runs(db)
        .into_iter()
        .flat_map(|(first, last)| first..=last)
        .collect()
}

/// The recorded runs, as the globals of their first and last events.
fn runs(db: &LeaderDb) -> Vec<(u64, u64)> {
    db.connection()
        .prepare("SELECT first_global, last_global FROM __eventsync_runs ORDER BY first_global")
        .unwrap()
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

const ROOT: EventSeq = EventSeq::ROOT;
const E1: EventSeq = EventSeq::new(1, 0, 0);
const E2: EventSeq = EventSeq::new(2, 0, 0);
const E3: EventSeq = EventSeq::new(3, 0, 0);
const E4: EventSeq = EventSeq::new(4, 0, 0);

#[test]
fn test_level_state_replays_nothing_when_level_and_only_the_missing_appends_when_behind() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    confirm_a(&mut db, schema);
    drop(db);
    let (db, replayed) = files.open();
    assert_eq!(replayed, 0, "a level state replays nothing");
    drop(db);
    let at_e1 = files.save(&files.dir.state_db());

    let (mut db, _) = files.open();
    batch(
        &mut db,
        schema,
        &[],
        &mut [
            (add(E2, E1, "b"), Record::Changeset),
            (add(E3, E2, "c"), Record::Changeset),
        ],
        None,
    );
    // The backend confirms e2 only: its changeset goes, e3's stays.
    batch(
        &mut db,
        schema,
        &[],
        &mut [(add(E4, E3, "d"), Record::Changeset)],
        Some(2),
    );
    drop(db);
    // Both state commits lost (a power loss with synchronous = NORMAL): state at e1.
    files.restore(&files.dir.state_db(), &at_e1);

    let (db, replayed) = files.open();
    assert_eq!(replayed, 3, "only e2..e4 are replayed, not a rebuild");
    assert_eq!(items_of(&db), ["a", "b", "c", "d"]);
    assert_eq!(db.state_head().unwrap(), E4);
    assert_eq!(changesets(&db), [3, 4], "e2 is confirmed: no changeset");
    let journal = db.pending_runs().unwrap();
    assert_eq!(journal.len(), 1, "e3 and e4, replayed in one run");
    assert!(
        journal
            .iter()
            .all(|run| matches!(run.changeset, Changeset::Data(_)))
    );
}

#[test]
fn test_state_behind_a_rebase_is_rebuilt_from_the_eventlog() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    confirm_a(&mut db, schema);
    batch(
        &mut db,
        schema,
        &[],
        &mut [(add(E2, E1, "b"), Record::Nothing)],
        Some(2),
    );
    // Ours, pending at e3 (generation 0).
    let mut mine = add(E3, E2, "mine");
    batch(
        &mut db,
        schema,
        &[],
        &mut [(mine.clone(), Record::Changeset)],
        None,
    );
    mine.meta.changeset = db.pending_runs().unwrap().remove(0).changeset;
    drop(db);
    let before_rebase = files.save(&files.dir.state_db());

    // Another client's e3 (also generation 0) wins; ours is replayed as e4 (generation 1).
    let (mut db, _) = files.open();
    let rebased = EncodedEvent {
        seq: EventSeq::new(4, 0, 1),
        parent: EventSeq::new(3, 0, 0),
        ..add(E4, E3, "mine")
    };
    batch(
        &mut db,
        schema,
        &[mine],
        &mut [
            (add(E3, E2, "theirs"), Record::Nothing),
            (rebased, Record::Changeset),
        ],
        Some(3),
    );
    drop(db);
    // The rebase's state commit is lost: the state head e3 (generation 0) names an event the
    // eventlog also holds at e3 generation 0, but another one. Replaying after it would
    // insert "mine" twice; the rewrite mark makes boot rebuild instead.
    files.restore(&files.dir.state_db(), &before_rebase);

    let (db, replayed) = files.open();
    assert_eq!(replayed, 4, "rebuilt: every event replayed");
    assert_eq!(items_of(&db), ["a", "b", "mine", "theirs"]);
    assert_eq!(db.state_head().unwrap(), EventSeq::new(4, 0, 1));
    assert_eq!(
        changesets(&db),
        [4],
        "only the pending replayed event keeps one"
    );
}

#[test]
fn test_state_ahead_of_the_eventlog_is_rebuilt() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    confirm_a(&mut db, schema);
    drop(db);
    let eventlog_at_e1 = files.save(&files.dir.eventlog_db());
    let (mut db, _) = files.open();
    batch(
        &mut db,
        schema,
        &[],
        &mut [(add(E2, E1, "b"), Record::Changeset)],
        None,
    );
    drop(db);
    files.restore(&files.dir.eventlog_db(), &eventlog_at_e1);

    let (db, replayed) = files.open();
    assert_eq!(replayed, 1);
    assert_eq!(items_of(&db), ["a"]);
    assert_eq!(db.state_head().unwrap(), E1);
    assert!(changesets(&db).is_empty());
}

#[test]
fn test_a_failing_step_is_undone_alone_and_the_steps_before_it_commit() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    let mut first = add(E1, ROOT, "a");
    let mut items = [NewEvent {
        event: &mut first,
        record: Record::Nothing,
    }];
    db.apply_batch(schema, &[], &mut items, E1, Some(GlobalSeq(1)))
        .unwrap();
    assert!(db.has_staged());
    // "a" again: the primary key refuses it.
    let mut second = add(E2, E1, "a");
    let mut items = [NewEvent {
        event: &mut second,
        record: Record::Changeset,
    }];
    db.apply_batch(schema, &[], &mut items, E2, None)
        .expect_err("a duplicate id fails");
    db.commit().unwrap();
    drop(db);

    let (db, replayed) = files.open();
    assert_eq!(replayed, 0, "level after the commit");
    assert_eq!(items_of(&db), ["a"]);
    assert_eq!(db.eventlog_head().unwrap(), E1);
    assert_eq!(db.state_head().unwrap(), E1);
    assert!(changesets(&db).is_empty());
}

#[test]
fn test_staged_steps_are_lost_together_without_a_commit() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    confirm_a(&mut db, schema);
    let mut second = add(E2, E1, "b");
    let mut items = [NewEvent {
        event: &mut second,
        record: Record::Changeset,
    }];
    db.apply_batch(schema, &[], &mut items, E2, None).unwrap();
    // A crash before the commit: the connections close with the transactions open.
    drop(db);
    let (db, replayed) = files.open();
    assert_eq!(replayed, 0);
    assert_eq!(items_of(&db), ["a"]);
    assert_eq!(db.eventlog_head().unwrap(), E1);
}

/// The canonical dump of an `items` table holding `ids` (a snapshot's state).
fn items_dump(ids: &[&str]) -> Vec<u8> {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE items (id TEXT PRIMARY KEY)")
        .unwrap();
    for id in ids {
        conn.execute("INSERT INTO items VALUES (?1)", [id]).unwrap();
    }
    crate::snapshot::dump_tables(&conn, &crate::schema::Schema::default())
        .unwrap()
        .bytes
}

#[test]
fn test_a_store_loaded_from_a_snapshot_starts_after_it_and_stays_level() {
    let files = Files::new();
    let (mut db, _) = files.open();
    assert!(db.is_empty().unwrap());
    db.load_snapshot(&files.schema, GlobalSeq(2), &items_dump(&["a", "b"]))
        .unwrap();
    assert!(!db.is_empty().unwrap());
    assert_eq!(
        db.eventlog_head().unwrap(),
        E2,
        "the eventlog starts after e2"
    );
    assert_eq!(db.sync_status().unwrap().0, GlobalSeq(2));
    drop(db);
    let (mut db, replayed) = files.open();
    assert_eq!(replayed, 0, "a loaded snapshot is level: nothing to replay");
    assert_eq!(items_of(&db), ["a", "b"]);
    assert_eq!(db.state_head().unwrap(), E2);
    let schema = &files.schema;
    batch(
        &mut db,
        schema,
        &[],
        &mut [(add(E3, E2, "c"), Record::Nothing)],
        Some(3),
    );
    drop(db);
    let (db, replayed) = files.open();
    assert_eq!(replayed, 0);
    assert_eq!(items_of(&db), ["a", "b", "c"]);
    assert_eq!(
        db.all_events().unwrap().len(),
        1,
        "only e3 is in the eventlog"
    );
}

/// The image of an `items` table holding `ids` under `schema` (a version-2 snapshot body).
fn items_image(schema: &Schema, ids: &[&str], extra_sql: &str) -> Vec<u8> {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    schema.create_tables(&conn).unwrap();
    for id in ids {
        conn.execute("INSERT INTO items VALUES (?1)", [id]).unwrap();
    }
    let image = crate::snapshot::image::state_of(&conn, schema)
        .unwrap()
        .image;
    if extra_sql.is_empty() {
        return image;
    }
    let mut altered = rusqlite::Connection::open_in_memory().unwrap();
    altered
        .deserialize_read_exact("main", &image[..], image.len(), false)
        .unwrap();
    altered.execute_batch(extra_sql).unwrap();
    altered.serialize("main").unwrap().to_vec()
}

/// The databases attached to `state.db`'s connection, and its journal mode.
fn state_connection_setup(db: &LeaderDb) -> (Vec<String>, String) {
    let names = db
        .state
        .prepare("SELECT name FROM pragma_database_list ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mode = db
        .state
        .query_row("PRAGMA main.journal_mode", [], |row| row.get(0))
        .unwrap();
    (names, mode)
}

#[test]
fn test_a_store_loaded_from_an_image_starts_after_it_and_an_image_with_a_trigger_changes_nothing() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let bad = items_image(
        &files.schema,
        &["a"],
        "CREATE TRIGGER spy AFTER INSERT ON items BEGIN SELECT 1; END;",
    );
    let error = db
        .load_snapshot_image(&files.schema, GlobalSeq(2), &bad)
        .unwrap_err();
    assert!(error.to_string().contains("trigger \"spy\""), "{error}");
    assert!(db.is_empty().unwrap(), "a refused image changes nothing");
    assert_eq!(
        state_connection_setup(&db),
        (vec!["main".to_string()], "wal".to_string()),
        "detached, back in WAL mode"
    );
    let image = items_image(&files.schema, &["a", "b"], "");
    db.load_snapshot_image(&files.schema, GlobalSeq(2), &image)
        .unwrap();
    assert_eq!(
        db.eventlog_head().unwrap(),
        E2,
        "the eventlog starts after e2"
    );
    assert_eq!(db.sync_status().unwrap().0, GlobalSeq(2));
    assert_eq!(
        state_connection_setup(&db),
        (vec!["main".to_string()], "wal".to_string())
    );
    let defensive = |db: &LeaderDb| {
        use rusqlite::config::DbConfig;
        (
            db.state
                .db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE)
                .unwrap(),
            db.state
                .db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA)
                .unwrap(),
        )
    };
    assert_eq!(
        defensive(&db),
        (false, true),
        "the defensive settings were the image's only"
    );
    drop(db);
    let (db, replayed) = files.open();
    assert_eq!(replayed, 0, "a loaded image is level: nothing to replay");
    assert_eq!(items_of(&db), ["a", "b"]);
    assert_eq!(db.state_head().unwrap(), E2);
}

#[test]
fn test_a_lost_state_commit_of_a_snapshot_load_starts_the_store_over() {
    let files = Files::new();
    let (db, _) = files.open();
    drop(db);
    let empty_state = files.save(&files.dir.state_db());
    let (mut db, _) = files.open();
    db.load_snapshot(&files.schema, GlobalSeq(2), &items_dump(&["a", "b"]))
        .unwrap();
    drop(db);
    // The eventlog committed the load, the state commit was lost.
    files.restore(&files.dir.state_db(), &empty_state);
    let (db, _) = files.open();
    assert!(
        db.is_empty().unwrap(),
        "it starts over, to boot again from the backend"
    );
    assert_eq!(db.eventlog_head().unwrap(), ROOT);
    assert!(items_of(&db).is_empty());
}

#[test]
fn test_a_snapshot_store_with_unpushed_events_refuses_to_start_over_on_a_schema_change() {
    let files = Files::new();
    let (mut db, _) = files.open();
    db.load_snapshot(&files.schema, GlobalSeq(2), &items_dump(&["a"]))
        .unwrap();
    batch(
        &mut db,
        &files.schema,
        &[],
        &mut [(add(E3, E2, "c"), Record::Changeset)],
        None,
    );
    drop(db);
    let changed = Schema::builder()
        .table("items", "CREATE TABLE items (id TEXT PRIMARY KEY)")
        .table("more", "CREATE TABLE more (id TEXT PRIMARY KEY)")
        .define_event(
            EventDef::synced("v1.Add"),
            |id: String, _: &MaterializeContext<'_>| {
                Ok(vec![Statement::new(
                    "INSERT INTO items VALUES (?1)",
                    vec![id.into()],
                )])
            },
        )
        .build()
        .unwrap();
    let mut db = LeaderDb::open(&files.dir, &changed).unwrap();
    let error = db.level_state(&changed).unwrap_err().to_string();
    assert!(error.contains("not pushed yet"), "{error}");
    assert_eq!(db.eventlog_head().unwrap(), E3, "nothing was dropped");
}

/// Boot holds the pending events by their numbers only (issue 11: a reopen with 100,000
/// pending events read every body); a load reads the bodies of a range from the eventlog,
/// as they were committed, and leaves the others out.
#[test]
fn test_pending_after_holds_numbers_only_and_loads_bodies_on_demand() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    confirm_a(&mut db, schema);
    let mine = [add(E2, E1, "b"), add(E3, E2, "c"), add(E4, E3, "d")];
    let mut items: Vec<_> = mine
        .iter()
        .map(|event| (event.clone(), Record::Changeset))
        .collect();
    batch(&mut db, schema, &[], &mut items, None);
    drop(db);

    let (db, _) = files.open();
    let mut pending = db.pending_after(E1).unwrap();
    let numbers: Vec<_> = pending.iter().map(|event| event.seq).collect();
    assert_eq!(numbers, [E2, E3, E4]);
    assert!(
        pending
            .iter()
            .all(|event| !event.is_loaded() && event.args_json().is_none()),
        "no pending event holds its body after boot"
    );
    db.load_bodies(&mut pending, 1..2).unwrap();
    let loaded: Vec<bool> = pending.iter().map(|event| event.is_loaded()).collect();
    assert_eq!(loaded, [false, true, false]);
    assert_eq!(pending.get(1).unwrap().to_event(), mine[1]);
    db.load_bodies(&mut pending, 0..3).unwrap();
    assert_eq!(pending, mine.to_vec());
}

/// A pending event the eventlog does not hold (the files disagree with the leader) is a
/// data error naming it, not an event with an empty body.
#[test]
fn test_loading_a_body_the_eventlog_lacks_is_an_error() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    batch(
        &mut db,
        schema,
        &[],
        &mut [(add(E1, ROOT, "a"), Record::Changeset)],
        None,
    );
    let mut pending = db.pending_after(ROOT).unwrap();
    pending.push(crate::sync_state::PendingEvent::unloaded(
        EventSeq::new(2, 0, 3),
        E1,
    ));
    let error = db.load_bodies(&mut pending, 0..2).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("pending event e2r3 is not in the eventlog"),
        "{error}"
    );
}

/// A lazy rebase (see `lag.rs`): the eventlog renumbers the pending events on another
/// client's e2 while the tables keep e1 + the old pending. Boot rolls the tables back to the
/// lag base by their changesets and replays only what follows it; so does the catch-up.
#[test]
fn test_tables_lagging_behind_a_log_only_rebase_level_from_the_lag_base() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    confirm_a(&mut db, schema);
    let mine = [add(E2, E1, "mine"), add(E3, E2, "mine2")];
    batch(
        &mut db,
        schema,
        &[],
        &mut mine.clone().map(|event| (event, Record::Changeset)),
        None,
    );
    let rebased = |global: u64, id: &str| EncodedEvent {
        seq: EventSeq::new(global, 0, 1),
        parent: EventSeq::new(global - 1, 0, u32::from(global > 3)),
        ..add(E1, ROOT, id)
    };
    let mut new = [
        add(E2, E1, "theirs"),
        rebased(3, "mine"),
        rebased(4, "mine2"),
    ];
    let items: Vec<NewEvent<'_>> = new
        .iter_mut()
        .map(|event| NewEvent {
            event,
            record: Record::Nothing,
        })
        .collect();
    db.apply_log_batch(&mine, &items, Some(GlobalSeq(2)), E1)
        .unwrap();
    db.commit().unwrap();
    assert_eq!(items_of(&db), ["a", "mine", "mine2"], "the tables lag");
    assert_eq!(db.state_head().unwrap(), E3);
    assert_eq!(db.lag_base().unwrap(), Some(E1));
    drop(db);
    let lagging = files.save(&files.dir.state_db());

    // Boot: the old pending rolled back, e2..e4 replayed (not e1: no rebuild).
    let (db, replayed) = files.open();
    assert_eq!(replayed, 3, "only the events after the lag base");
    assert_eq!(items_of(&db), ["a", "mine", "mine2", "theirs"]);
    assert_eq!(db.state_head().unwrap(), EventSeq::new(4, 0, 1));
    assert_eq!(
        changesets(&db),
        [3, 4],
        "the pending replayed events keep one"
    );
    assert_eq!(db.lag_base().unwrap(), None);
    drop(db);

    // The same while running: one catch-up step from the lagging tables.
    files.restore(&files.dir.state_db(), &lagging);
    let mut db = LeaderDb::open(&files.dir, &files.schema).unwrap();
    let mut events = db.events_after(E1).unwrap();
    let mut items: Vec<NewEvent<'_>> = events
        .iter_mut()
        .map(|event| NewEvent {
            record: if event.seq.global > GlobalSeq(2) {
                Record::Changeset
            } else {
                Record::Nothing
            },
            event,
        })
        .collect();
    db.apply_catch_up(
        schema,
        &mine,
        &mut items,
        EventSeq::new(4, 0, 1),
        GlobalSeq(2),
    )
    .unwrap();
    db.commit().unwrap();
    assert_eq!(items_of(&db), ["a", "mine", "mine2", "theirs"]);
    assert_eq!(changesets(&db), [3, 4]);
    assert_eq!(db.lag_base().unwrap(), None);
    drop(db);
    let (db, replayed) = files.open();
    assert_eq!(replayed, 0, "level after the catch-up");
    assert_eq!(items_of(&db), ["a", "mine", "mine2", "theirs"]);
}

#[test]
fn test_eventlog_args_text_is_the_display_text() {
    // The eventlog's args column must read back as it always did: `Value::to_string`.
    let values = [
        json!(null),
        json!({"id": "todo-00000001", "text": "buy item number 1"}),
        json!({"b": [1, -2, 3.5, 1e300, true, false, null], "a": {"nested": "x\"y\\z\n\u{1}"}}),
        json!("plain"),
        json!(["é", "漢字", "🙂", "\u{7f}"]),
        json!(u64::MAX),
        json!(i64::MIN),
    ];
    for value in values {
        assert_eq!(crate::event::json_text(&value), value.to_string());
    }
}

/// A run confirmed in part stays whole; a rollback from inside it undoes it whole and applies
/// its confirmed events again from the eventlog (returned for the sessions), recording none
/// for them, and a new run for the replayed ones.
#[test]
fn test_a_rollback_inside_a_run_applies_its_earlier_events_again() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    confirm_a(&mut db, schema);
    let mine = [add(E2, E1, "b"), add(E3, E2, "c"), add(E4, E3, "d")];
    batch(
        &mut db,
        schema,
        &[],
        &mut mine.clone().map(|event| (event, Record::Changeset)),
        None,
    );
    assert_eq!(runs(&db), [(2, 4)], "one step, one run");
    // The backend confirms e2 only (an empty step that records the head): the run stays.
    db.step(|db| {
        let commits = db.next_commits(false);
        db.stage_state(schema, &db.rollback_of(&[], None)?, &[], Some(GlobalSeq(2)))?;
        db.stage_log(&[], &[], Some(GlobalSeq(2)), commits)?;
        Ok(commits)
    })
    .unwrap();
    db.commit().unwrap();
    assert_eq!(runs(&db), [(2, 4)], "confirmed in part: kept whole");

    // Another client's e3 wins: ours from e3 on are rolled back and replayed as e4, e5.
    let rebased = |global: u64, id: &str| EncodedEvent {
        seq: EventSeq::new(global, 0, 1),
        parent: EventSeq::new(global - 1, 0, u32::from(global > 4)),
        ..add(E1, ROOT, id)
    };
    let mut new = [
        (add(E3, E2, "theirs"), Record::Nothing),
        (rebased(4, "c"), Record::Changeset),
        (rebased(5, "d"), Record::Changeset),
    ];
    let mut items: Vec<NewEvent<'_>> = new
        .iter_mut()
        .map(|(event, record)| NewEvent {
            event,
            record: *record,
        })
        .collect();
    let restored = db
        .apply_batch(
            schema,
            &mine[1..],
            &mut items,
            EventSeq::new(5, 0, 1),
            Some(GlobalSeq(3)),
        )
        .unwrap();
    db.commit().unwrap();
    assert_eq!(
        restored.iter().map(|event| event.seq).collect::<Vec<_>>(),
        [E2],
        "e2 shared the cut run: applied again"
    );
    assert_eq!(items_of(&db), ["a", "b", "c", "d", "theirs"]);
    assert_eq!(runs(&db), [(4, 5)], "the replayed events: one new run");
    drop(db);
    let (db, replayed) = files.open();
    assert_eq!(replayed, 0, "level after the rebase");
    assert_eq!(items_of(&db), ["a", "b", "c", "d", "theirs"]);
    // The dump as of the confirmed e3 holds a, b, theirs: what a store that only ever
    // applied those three dumps.
    let mut db = db;
    let dumped = db.dump_confirmed(schema).unwrap();
    assert_eq!(items_of(&db), ["a", "b", "c", "d", "theirs"], "dump undone");
    let other = Files::new();
    let (mut expected, _) = other.open();
    batch(
        &mut expected,
        &other.schema,
        &[],
        &mut [
            (add(E1, ROOT, "a"), Record::Nothing),
            (add(E2, E1, "b"), Record::Nothing),
            (add(E3, E2, "theirs"), Record::Nothing),
        ],
        Some(3),
    );
    let expected = expected.dump_confirmed(&other.schema).unwrap();
    assert_eq!(dumped.hash, expected.hash, "as of e3: a, b, theirs");
}

/// The layout before runs (one changeset per event, `__eventsync_changeset`) is moved at
/// open into runs of one, and a rollback by them works as before.
#[test]
fn test_changesets_of_one_event_each_become_runs_of_one() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    confirm_a(&mut db, schema);
    for (seq, parent, id) in [(E2, E1, "b"), (E3, E2, "c")] {
        batch(
            &mut db,
            schema,
            &[],
            &mut [(add(seq, parent, id), Record::Changeset)],
            None,
        );
    }
    assert_eq!(runs(&db), [(2, 2), (3, 3)]);
    // Rewrite the runs as the old table held them.
    db.connection()
        .execute_batch(
            "CREATE TABLE __eventsync_changeset (
                seq_global INTEGER NOT NULL, seq_client INTEGER NOT NULL, seq_generation INTEGER NOT NULL,
                changeset BLOB, PRIMARY KEY (seq_global, seq_client));
             INSERT INTO __eventsync_changeset
                SELECT first_global, first_client, last_generation, changeset FROM __eventsync_runs;
             DELETE FROM __eventsync_runs;",
        )
        .unwrap();
    drop(db);
    let (mut db, replayed) = files.open();
    assert_eq!(replayed, 0);
    assert_eq!(runs(&db), [(2, 2), (3, 3)], "one run per old row");
    let old: i64 = db
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = '__eventsync_changeset'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(old, 0, "the old table is gone");
    // Another client's e2 wins: both of ours roll back by the migrated runs.
    let rebased = |global: u64, id: &str| EncodedEvent {
        seq: EventSeq::new(global, 0, 1),
        parent: EventSeq::new(global - 1, 0, u32::from(global > 3)),
        ..add(E1, ROOT, id)
    };
    batch(
        &mut db,
        schema,
        &[add(E2, E1, "b"), add(E3, E2, "c")],
        &mut [
            (add(E2, E1, "theirs"), Record::Nothing),
            (rebased(3, "b"), Record::Changeset),
            (rebased(4, "c"), Record::Changeset),
        ],
        Some(2),
    );
    assert_eq!(items_of(&db), ["a", "b", "c", "theirs"]);
    assert_eq!(runs(&db), [(3, 4)]);
}

/// Where a lag begins: the eventlog's event before the first pending one, a client-only
/// event after the confirmed head when there is one (issue 11: the catch-up must not replay
/// it), else the confirmed head; the eventlog's base before its first event.
#[test]
fn test_last_event_before_a_position_sees_client_only_events() {
    let files = Files::new();
    let (mut db, _) = files.open();
    let schema = &files.schema;
    confirm_a(&mut db, schema);
    let kept = EventSeq::new(1, 1, 1);
    batch(
        &mut db,
        schema,
        &[],
        &mut [
            (add(kept, E1, "kept"), Record::Changeset),
            (add(E2, E1, "pending"), Record::Changeset),
        ],
        None,
    );
    assert_eq!(db.last_event_before(E2).unwrap(), kept);
    assert_eq!(db.last_event_before(kept).unwrap(), E1);
    assert_eq!(db.last_event_before(E1).unwrap(), ROOT);
    assert_eq!(db.last_event_before(E3).unwrap(), E2);
}
