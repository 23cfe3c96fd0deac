//! The raw baselines of `eventsync bench`: what the machine does without eventsync, on the
//! same rows and the same objects. SQLite inserts in the leader's durability mode, with and
//! without a session changeset per row; conditional PUTs and GETs of segment-sized objects on
//! the bench's own backend, one at a time and 16 in flight.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use eventsync::rusqlite::Connection;
use eventsync::rusqlite::session::Session;
use eventsync::{Error, ErrorKind, Result};
use eventsync_backends::object_store::path::Path;
use eventsync_backends::object_store::{ObjectStore, ObjectStoreExt, PutMode};
use eventsync_todo::{TodoCreated, todo_schema};
use futures::{StreamExt, TryStreamExt};
use tokio::time::Instant;

/// The leader's durability mode at its durable point, as `open_file` (`src/leader/db.rs`)
/// sets it for `eventlog.db`: WAL, one fsync of the WAL per commit. The raw SQLite limits run
/// in the same one, so that the ratio compares like with like.
const LEADER_SYNCHRONOUS: &str = "PRAGMA synchronous = FULL";

/// The leader's durability mode, for a person.
pub(crate) const LEADER_DURABILITY: &str = "journal_mode=WAL, synchronous=FULL";

/// The todo app's insert, as its `v1.TodoCreated` materializer runs it.
const INSERT: &str = "INSERT INTO todos (id, text, completed, deleted_at, created_seq) \
     VALUES (?1, ?2, 0, NULL, ?3) ON CONFLICT (id) DO NOTHING";

/// Concurrency of the "in flight" limits.
pub(crate) const IN_FLIGHT: usize = 16;

/// The `n`th todo of a bench run: the same rows for eventsync and for the raw limits.
pub(crate) fn todo(n: u64) -> TodoCreated {
    TodoCreated {
        id: format!("todo-{n:08}"),
        text: format!("buy item number {n}"),
    }
}

fn sqlite(what: impl Into<String>) -> impl FnOnce(eventsync::rusqlite::Error) -> Error {
    let what = what.into();
    move |error| Error::new(ErrorKind::Internal, format!("raw SQLite: {what}")).with_source(error)
}

/// A file database at `path` in the leader's durability mode, with the todo tables.
pub(crate) fn open_leader_like(path: &FsPath) -> Result<Connection> {
    let conn = Connection::open(path).map_err(sqlite(format!("opening {}", path.display())))?;
    set_durability(&conn)?;
    todo_schema()
        .create_tables(&conn)
        .map_err(|e| Error::internal("raw SQLite: creating the todo tables").with_source(e))?;
    Ok(conn)
}

/// Puts `conn` in the leader's durability mode ([`LEADER_DURABILITY`]).
fn set_durability(conn: &Connection) -> Result<()> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sqlite("setting WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::internal(format!(
            "raw SQLite: WAL mode refused ({mode}), unlike the leader's files"
        )));
    }
    conn.execute_batch(LEADER_SYNCHRONOUS)
        .map_err(sqlite("setting synchronous"))?;
    Ok(())
}

/// Inserts `rows` todos (numbered from 1) into a fresh file database in `dir`, `batch` rows
/// a transaction, recording a session changeset per row when `changeset`. Returns the time.
pub(crate) fn insert(dir: &FsPath, rows: u64, batch: u64, changeset: bool) -> Result<Duration> {
    let path = dir.join(format!("raw-insert-{rows}-{changeset}.db"));
    let conn = open_leader_like(&path)?;
    let todos: Vec<TodoCreated> = (1..=rows).map(todo).collect();
    let start = Instant::now();
    for (index, chunk) in todos.chunks(batch.max(1) as usize).enumerate() {
        let tx = conn
            .unchecked_transaction()
            .map_err(sqlite("beginning a transaction"))?;
        for (offset, todo) in chunk.iter().enumerate() {
            let seq = (index * batch as usize + offset + 1) as i64;
            if changeset {
                insert_recorded(&tx, todo, seq)?;
            } else {
                insert_one(&tx, todo, seq)?;
            }
        }
        tx.commit().map_err(sqlite("committing"))?;
    }
    let elapsed = start.elapsed();
    drop(conn);
    let _ = std::fs::remove_file(&path);
    Ok(elapsed)
}

fn insert_one(conn: &Connection, todo: &TodoCreated, seq: i64) -> Result<()> {
    conn.prepare_cached(INSERT)
        .and_then(|mut statement| statement.execute((&todo.id, &todo.text, seq)))
        .map_err(sqlite("inserting a row"))?;
    Ok(())
}

/// One insert inside an SQLite session on `todos`, its changeset taken out as bytes: what
/// a pending event costs at the least.
fn insert_recorded(conn: &Connection, todo: &TodoCreated, seq: i64) -> Result<Vec<u8>> {
    let mut session = Session::new(conn).map_err(sqlite("starting a session"))?;
    session
        .attach(Some("todos"))
        .map_err(sqlite("attaching the session"))?;
    insert_one(conn, todo, seq)?;
    let mut bytes = Vec::new();
    session
        .changeset_strm(&mut bytes)
        .map_err(sqlite("taking the changeset"))?;
    Ok(bytes)
}

/// `samples` times: insert a todo and read it back, on an in-memory database (what a
/// session commit does at the least). Returns each sample's time.
pub(crate) fn insert_select(samples: u64) -> Result<Vec<Duration>> {
    let conn = Connection::open_in_memory().map_err(sqlite("opening in memory"))?;
    todo_schema()
        .create_tables(&conn)
        .map_err(|e| Error::internal("raw SQLite: creating the todo tables").with_source(e))?;
    let mut times = Vec::with_capacity(samples as usize);
    for n in 1..=samples {
        let todo = todo(n);
        let start = Instant::now();
        insert_one(&conn, &todo, n as i64)?;
        let one: i64 = conn
            .prepare_cached("SELECT 1 FROM todos WHERE id = ?1")
            .and_then(|mut statement| statement.query_row([&todo.id], |row| row.get(0)))
            .map_err(sqlite("reading the row back"))?;
        times.push(start.elapsed());
        if one != 1 {
            return Err(Error::internal(
                "raw SQLite: the row read back is not there",
            ));
        }
    }
    Ok(times)
}

/// Opens a database of `rows` todos, written before the clock starts, and runs a first
/// query on it: the least a reopen costs.
pub(crate) fn open_first_query(dir: &FsPath, rows: u64) -> Result<Duration> {
    let path = dir.join("raw-reopen.db");
    {
        let conn = open_leader_like(&path)?;
        let tx = conn
            .unchecked_transaction()
            .map_err(sqlite("beginning a transaction"))?;
        for n in 1..=rows {
            insert_one(&tx, &todo(n), n as i64)?;
        }
        tx.commit().map_err(sqlite("committing"))?;
    }
    let start = Instant::now();
    let conn = Connection::open(&path).map_err(sqlite("reopening"))?;
    set_durability(&conn)?;
    let count: i64 = conn
        .query_row("SELECT count(*) FROM todos", [], |row| row.get(0))
        .map_err(sqlite("the first query"))?;
    let elapsed = start.elapsed();
    drop(conn);
    let _ = std::fs::remove_file(&path);
    if count as u64 != rows {
        return Err(Error::internal(format!(
            "raw SQLite: reopened {count} rows of {rows}"
        )));
    }
    Ok(elapsed)
}

/// A rebase done raw: `pending` rows deleted, one other inserted, the `pending` inserted
/// again, in one transaction of a leader-like file database. Returns the time.
pub(crate) fn rebase(dir: &FsPath, pending: u64) -> Result<Duration> {
    let path = dir.join("raw-rebase.db");
    let conn = open_leader_like(&path)?;
    {
        let tx = conn
            .unchecked_transaction()
            .map_err(sqlite("beginning a transaction"))?;
        for n in 1..=pending {
            insert_one(&tx, &todo(n), n as i64)?;
        }
        tx.commit().map_err(sqlite("committing"))?;
    }
    let start = Instant::now();
    let tx = conn
        .unchecked_transaction()
        .map_err(sqlite("beginning a transaction"))?;
    for n in (1..=pending).rev() {
        tx.prepare_cached("DELETE FROM todos WHERE id = ?1")
            .and_then(|mut statement| statement.execute([todo(n).id]))
            .map_err(sqlite("deleting a row"))?;
    }
    insert_one(&tx, &todo(pending + 1), 1)?;
    for n in 1..=pending {
        insert_one(&tx, &todo(n), n as i64 + 1)?;
    }
    tx.commit().map_err(sqlite("committing"))?;
    let elapsed = start.elapsed();
    drop(conn);
    let _ = std::fs::remove_file(&path);
    Ok(elapsed)
}

fn store_error(what: String) -> impl FnOnce(eventsync_backends::object_store::Error) -> Error {
    move |error| {
        Error::new(ErrorKind::Unavailable, format!("raw object store: {what}")).with_source(error)
    }
}

/// Creates `count` objects of `body` under `folder` with `PutMode::Create`, `in_flight` at a
/// time. Returns the time and the keys.
pub(crate) async fn put(
    store: &Arc<dyn ObjectStore>,
    folder: &Path,
    body: &bytes::Bytes,
    count: u64,
    in_flight: usize,
) -> Result<(Duration, Vec<Path>)> {
    let keys: Vec<Path> = (1..=count)
        .map(|n| folder.clone().join(format!("{n:020}.seg")))
        .collect();
    let start = Instant::now();
    futures::stream::iter(keys.iter().cloned())
        .map(|key| {
            let store = store.clone();
            let body = body.clone();
            async move {
                store
                    .put_opts(&key, body.into(), PutMode::Create.into())
                    .await
                    .map_err(store_error(format!("creating {key}")))
            }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok((start.elapsed(), keys))
}

/// Reads every object of `keys` whole, `in_flight` at a time. Returns the time and the bytes
/// read.
pub(crate) async fn get(
    store: &Arc<dyn ObjectStore>,
    keys: &[Path],
    in_flight: usize,
) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let sizes: Vec<u64> = futures::stream::iter(keys.iter().cloned())
        .map(|key| {
            let store = store.clone();
            async move {
                let body = store
                    .get(&key)
                    .await
                    .map_err(store_error(format!("reading {key}")))?
                    .bytes()
                    .await
                    .map_err(store_error(format!("reading {key}")))?;
                Ok::<u64, Error>(body.len() as u64)
            }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect()
        .await?;
    Ok((start.elapsed(), sizes.iter().sum()))
}

/// The keys of every object under `folder`, sorted.
pub(crate) async fn list(store: &Arc<dyn ObjectStore>, folder: &Path) -> Result<Vec<Path>> {
    let mut keys: Vec<Path> = store
        .list(Some(folder))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(store_error(format!("listing {folder}")))?;
    keys.sort();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_raw_inserts_write_every_row_with_and_without_changesets() {
        let dir = tempfile::tempdir().unwrap();
        for changeset in [false, true] {
            insert(dir.path(), 25, 10, changeset).unwrap();
        }
        let recorded = {
            let conn = open_leader_like(&dir.path().join("one.db")).unwrap();
            insert_recorded(&conn, &todo(1), 1).unwrap()
        };
        assert!(!recorded.is_empty(), "a session insert records a changeset");
        assert_eq!(insert_select(5).unwrap().len(), 5);
        open_first_query(dir.path(), 30).unwrap();
        rebase(dir.path(), 20).unwrap();
    }

    #[tokio::test]
    async fn test_puts_then_gets_read_back_every_object() {
        let store: Arc<dyn ObjectStore> =
            Arc::new(eventsync_backends::object_store::memory::InMemory::new());
        let folder = Path::from("raw");
        let body = bytes::Bytes::from_static(b"segment");
        let (_, keys) = put(&store, &folder, &body, 20, IN_FLIGHT).await.unwrap();
        assert_eq!(list(&store, &folder).await.unwrap(), keys);
        let (_, bytes) = get(&store, &keys, 1).await.unwrap();
        assert_eq!(bytes, 20 * 7);
        // A second create of the same key is refused: the PUTs are conditional.
        assert!(put(&store, &folder, &body, 1, 1).await.is_err());
    }
}
