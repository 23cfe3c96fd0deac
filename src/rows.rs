//! Reading SQL rows: the one reader behind every read query (a session's `query` and
//! `subscribe`, the leader's `query_leader`, a materializer's `ctx.query`).
//!
//! A read query must not change anything: on a session a write makes the read model diverge
//! from its changesets (a later rollback conflicts); on the leader it changes `state.db`
//! behind the eventlog. So the reader runs exactly one statement, and only one that reads:
//!
//! - [`rusqlite::Statement::readonly`] must be true (this refuses `INSERT`, `UPDATE`,
//!   `DELETE`, with or without `RETURNING` or a `WITH` clause, DDL, `VACUUM`, `BEGIN
//!   IMMEDIATE`, and PRAGMAs that write the file);
//! - SQLite calls some statements read-only that change the connection: `BEGIN`, `COMMIT`,
//!   `ROLLBACK`, `SAVEPOINT`, `RELEASE` (they would break the session's savepoints and the
//!   leader's transactions), `ATTACH`, `DETACH`, setting PRAGMAs (`foreign_keys = OFF`,
//!   `query_only = 1`), action PRAGMAs (`optimize`, `shrink_memory`) and `REINDEX`. SQLite's
//!   authorizer reports what a statement does while it is compiled; the reader allows a
//!   `SELECT` (reads, functions, recursive CTEs) and the PRAGMAs in [`READ_PRAGMAS`], and
//!   refuses everything else before anything runs;
//! - several statements in one string are refused (none of them runs).
//!
//! Installing an authorizer expires every prepared statement of the connection (SQLite
//! recompiles them on their next use), so the verdict is kept per SQL text: it depends on
//! the text alone, and a materializer that queries in every event pays it once.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value, ValueRef};
use serde_json::Value as Json;

use crate::error::{Error, ErrorKind};

/// PRAGMAs a reader may run: they report, and change nothing. A value after one of
/// [`ARGUMENT_PRAGMAS`] names a table, an index or a row limit; after any other it would set
/// something, and is refused.
const READ_PRAGMAS: &[&str] = &[
    "application_id",
    "collation_list",
    "compile_options",
    "data_version",
    "database_list",
    "encoding",
    "foreign_key_check",
    "foreign_key_list",
    "foreign_keys",
    "freelist_count",
    "function_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "module_list",
    "page_count",
    "page_size",
    "pragma_list",
    "quick_check",
    "schema_version",
    "table_info",
    "table_list",
    "table_xinfo",
    "user_version",
];

/// The [`READ_PRAGMAS`] whose argument says what to report on, not a new value.
const ARGUMENT_PRAGMAS: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// How many SQL texts the verdict cache holds before it starts over: read queries are
/// usually constant texts, and a program that builds them with inline values must not make
/// it grow without bound.
const CHECKED_CAPACITY: usize = 1024;

/// SQL texts the authorizer found to be one statement that only reads.
static CHECKED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

/// Why a read query failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The query would change something, or holds more than one statement: nothing ran.
    #[error(
        "query {sql:?} refused: it {reason}; a read query only reads (one SELECT, or a PRAGMA that reports)"
    )]
    Refused {
        /// The SQL text.
        sql: String,
        /// What it would do.
        reason: String,
    },
    /// SQLite failed to compile or run the query.
    #[error("query {sql:?}")]
    Sql {
        /// The SQL text.
        sql: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

impl From<ReadError> for Error {
    fn from(error: ReadError) -> Error {
        Error::wrap(ErrorKind::Invalid, error)
    }
}

/// A read query's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rows {
    /// The result's column names, in order.
    pub(crate) columns: Vec<String>,
    /// Each row's values, in column order. Text that is not UTF-8 is read lossily.
    pub(crate) rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Each row as a JSON object keyed by column name (integers, reals, text and nulls as
    /// JSON; blobs as arrays of bytes; a non-finite real as null).
    pub(crate) fn into_json(self) -> Vec<serde_json::Map<String, Json>> {
        let Rows { columns, rows } = self;
        rows.into_iter()
            .map(|row| {
                columns
                    .iter()
                    .cloned()
                    .zip(row.into_iter().map(value_to_json))
                    .collect()
            })
            .collect()
    }
}

/// Runs `sql`, which must be one statement that only reads, with `params` bound.
pub(crate) fn read(conn: &Connection, sql: &str, params: &[Value]) -> Result<Rows, ReadError> {
    if !is_checked(sql) {
        check(conn, sql)?;
        remember(sql);
    }
    let sql_error = |source| ReadError::Sql {
        sql: sql.to_owned(),
        source,
    };
    let mut statement = conn.prepare_cached(sql).map_err(sql_error)?;
    if !statement.readonly() {
        return Err(refused(sql, "writes to the database"));
    }
    let columns: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut cursor = statement
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(sql_error)?;
    let mut rows = Vec::new();
    while let Some(row) = cursor.next().map_err(sql_error)? {
        let values = (0..columns.len())
            .map(|index| row.get_ref(index).map(owned))
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?;
        rows.push(values);
    }
    Ok(Rows { columns, rows })
}

/// [`read`], each row as a JSON object keyed by column name.
pub(crate) fn read_json(
    conn: &Connection,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Json>, ReadError> {
    Ok(read(conn, sql, params)?
        .into_json()
        .into_iter()
        .map(Json::Object)
        .collect())
}

/// The tables `sql` reads, as SQLite's authorizer reports them while compiling it; refuses
/// what [`read`] refuses. For reactive queries: they run again when one of these changes.
pub(crate) fn tables_read(conn: &Connection, sql: &str) -> Result<BTreeSet<String>, ReadError> {
    let tables = check(conn, sql)?;
    remember(sql);
    Ok(tables)
}

/// What the authorizer saw while a statement compiled.
#[derive(Default)]
struct Seen {
    /// The first thing the statement does that a reader may not, in words.
    refusal: Option<String>,
    /// Whether it is a `SELECT` or an allowed PRAGMA (`VACUUM`, and `REINDEX` where there is
    /// no index, report nothing at all).
    reads: bool,
    tables: BTreeSet<String>,
}

/// Compiles `sql` under an authorizer that allows only reading; returns the tables it reads.
fn check(conn: &Connection, sql: &str) -> Result<BTreeSet<String>, ReadError> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = Arc::clone(&seen);
    conn.authorizer(Some(move |context: AuthContext<'_>| {
        let verdict = judge(&context.action);
        let Ok(mut seen) = sink.lock() else {
            return Authorization::Deny;
        };
        match verdict {
            Verdict::Reads(table) => {
                seen.reads = true;
                if let Some(table) = table {
                    seen.tables.insert(table.to_owned());
                }
                Authorization::Allow
            }
            Verdict::Helps => Authorization::Allow,
            Verdict::Refused(reason) => {
                seen.refusal.get_or_insert(reason);
                Authorization::Deny
            }
        }
    }));
    let compiled = conn.prepare(sql).map(drop);
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|poison| poison.into_inner()));
    if let Some(reason) = seen.refusal {
        return Err(refused(sql, &reason));
    }
    match compiled {
        Err(rusqlite::Error::MultipleStatement) => {
            return Err(refused(sql, "holds more than one statement"));
        }
        Err(source) => {
            return Err(ReadError::Sql {
                sql: sql.to_owned(),
                source,
            });
        }
        Ok(()) => {}
    }
    if !seen.reads {
        return Err(refused(
            sql,
            "is neither a SELECT nor a PRAGMA that reports",
        ));
    }
    Ok(seen.tables)
}

/// What one action of a statement means for a reader.
enum Verdict<'a> {
    /// It reads (a table, when it names one).
    Reads(Option<&'a str>),
    /// Part of a read (a function call, a recursive CTE).
    Helps,
    /// A reader may not do it: what it does, in words.
    Refused(String),
}

fn judge<'a>(action: &AuthAction<'a>) -> Verdict<'a> {
    match action {
        AuthAction::Select => Verdict::Reads(None),
        AuthAction::Read { table_name, .. } => Verdict::Reads(Some(table_name)),
        AuthAction::Function { .. } | AuthAction::Recursive => Verdict::Helps,
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            let reports = READ_PRAGMAS.contains(&name.as_str())
                && (pragma_value.is_none() || ARGUMENT_PRAGMAS.contains(&name.as_str()));
            if reports {
                Verdict::Reads(None)
            } else if let Some(value) = pragma_value {
                Verdict::Refused(format!("sets PRAGMA {pragma_name} = {value}"))
            } else {
                Verdict::Refused(format!("runs PRAGMA {pragma_name}, which is not a report"))
            }
        }
        AuthAction::Insert { table_name } => Verdict::Refused(format!("inserts into {table_name}")),
        AuthAction::Update { table_name, .. } => Verdict::Refused(format!("updates {table_name}")),
        AuthAction::Delete { table_name } => Verdict::Refused(format!("deletes from {table_name}")),
        AuthAction::Transaction { .. } => {
            Verdict::Refused("begins or ends a transaction".to_owned())
        }
        AuthAction::Savepoint { savepoint_name, .. } => {
            Verdict::Refused(format!("opens or closes savepoint {savepoint_name}"))
        }
        AuthAction::Attach { .. } => Verdict::Refused("attaches a database".to_owned()),
        AuthAction::Detach { database_name } => {
            Verdict::Refused(format!("detaches database {database_name}"))
        }
        other => Verdict::Refused(format!("is not a read ({other:?})")),
    }
}

fn refused(sql: &str, reason: &str) -> ReadError {
    ReadError::Refused {
        sql: sql.to_owned(),
        reason: reason.to_owned(),
    }
}

fn is_checked(sql: &str) -> bool {
    CHECKED.lock().is_ok_and(|checked| checked.contains(sql))
}

fn remember(sql: &str) {
    if let Ok(mut checked) = CHECKED.lock() {
        if checked.len() >= CHECKED_CAPACITY {
            checked.clear();
        }
        checked.insert(sql.to_owned());
    }
}

/// An owned copy of a column's value; text that is not UTF-8 is read lossily (rusqlite's
/// own conversion panics on it).
fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(number) => Value::Integer(number),
        ValueRef::Real(number) => Value::Real(number),
        ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}

/// An SQLite value as JSON.
fn value_to_json(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(number) => number.into(),
        Value::Real(number) => {
            serde_json::Number::from_f64(number).map_or(Json::Null, Json::Number)
        }
        Value::Text(text) => text.into(),
        Value::Blob(bytes) => bytes.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE);
             INSERT INTO items VALUES (1, 'a'), (2, 'b');",
        )
        .unwrap();
        conn
    }

    fn dump(conn: &Connection) -> Vec<(i64, String)> {
        let mut statement = conn
            .prepare("SELECT id, name FROM items ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Statements that change the database or the connection, each with a word of the
    /// reason the refusal gives.
    const REFUSED: &[(&str, &str)] = &[
        ("DELETE FROM items RETURNING 1 AS n", "deletes from items"),
        (
            "INSERT INTO items (id, name) VALUES (3, 'c') RETURNING id",
            "inserts into items",
        ),
        ("UPDATE items SET name = 'z' RETURNING id", "updates items"),
        (
            "WITH doomed AS (SELECT 1) DELETE FROM items",
            "deletes from items",
        ),
        ("BEGIN", "transaction"),
        ("BEGIN IMMEDIATE", "transaction"),
        ("COMMIT", "transaction"),
        ("SAVEPOINT reader", "savepoint reader"),
        ("RELEASE reader", "savepoint reader"),
        ("ATTACH DATABASE ':memory:' AS other", "attaches"),
        ("DETACH DATABASE main", "detaches"),
        ("PRAGMA user_version = 7", "sets PRAGMA user_version"),
        ("PRAGMA foreign_keys = ON", "sets PRAGMA foreign_keys"),
        ("PRAGMA query_only(1)", "sets PRAGMA query_only"),
        ("PRAGMA optimize", "runs PRAGMA optimize"),
        ("REINDEX", "Reindex"),
        ("VACUUM", "neither a SELECT"),
        (
            "CREATE TEMP TABLE scratch (x)",
            "inserts into sqlite_temp_master",
        ),
        ("DROP TABLE items", "deletes from sqlite_master"),
        ("SELECT 1; DELETE FROM items", "deletes from items"),
        ("SELECT 1; SELECT 2", "more than one statement"),
        ("", "neither a SELECT"),
    ];

    #[test]
    fn test_read_refuses_what_changes_the_database_or_the_connection() {
        let conn = items();
        let before = dump(&conn);
        let settings = "SELECT * FROM pragma_user_version, pragma_foreign_keys, pragma_query_only";
        let settings_before = read(&conn, settings, &[]).unwrap();
        for (sql, reason) in REFUSED {
            // Twice: the second time through the verdict cache, if it had cached anything.
            for _ in 0..2 {
                match read(&conn, sql, &[]) {
                    Err(ReadError::Refused {
                        sql: named,
                        reason: given,
                    }) => {
                        assert_eq!(&named, sql);
                        assert!(given.contains(reason), "{sql:?}: {given}");
                    }
                    other => panic!("{sql:?} was not refused: {other:?}"),
                }
            }
            assert_eq!(dump(&conn), before, "{sql:?} changed the table");
            assert!(conn.is_autocommit(), "{sql:?} left a transaction open");
        }
        assert_eq!(read(&conn, settings, &[]).unwrap(), settings_before);
        let user_version = read(&conn, "PRAGMA user_version", &[]).unwrap();
        assert_eq!(user_version.rows, vec![vec![Value::Integer(0)]]);
        let databases = read(&conn, "SELECT name FROM pragma_database_list", &[]).unwrap();
        assert_eq!(databases.rows, vec![vec![Value::Text("main".into())]]);
    }

    #[test]
    fn test_read_allows_selects_and_reporting_pragmas() {
        let conn = items();
        let rows = read(
            &conn,
            "SELECT id, upper(name) AS name FROM items WHERE id > ?1 ORDER BY id",
            &[Value::Integer(0)],
        )
        .unwrap();
        assert_eq!(rows.columns, vec!["id", "name"]);
        assert_eq!(
            rows.rows,
            vec![
                vec![Value::Integer(1), Value::Text("A".into())],
                vec![Value::Integer(2), Value::Text("B".into())],
            ]
        );
        let allowed = [
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT i FROM n",
            "VALUES (1), (2)",
            "EXPLAIN QUERY PLAN SELECT * FROM items",
            "PRAGMA table_info(items)",
            "PRAGMA main.TABLE_INFO = items",
            "PRAGMA index_list(items)",
            "PRAGMA integrity_check",
            "PRAGMA page_size",
            "SELECT name FROM pragma_table_info('items')",
            "SELECT 1; ",
        ];
        for sql in allowed {
            let rows = read(&conn, sql, &[]).unwrap_or_else(|error| panic!("{sql:?}: {error}"));
            assert!(!rows.rows.is_empty(), "{sql:?} returned no row");
        }
    }

    #[test]
    fn test_read_reports_sql_errors_and_reads_bad_text_lossily() {
        let conn = items();
        let error = read(&conn, "SELECT nope FROM items", &[]).unwrap_err();
        assert!(
            matches!(&error, ReadError::Sql { sql, .. } if sql == "SELECT nope FROM items"),
            "{error}"
        );
        let rows = read(
            &conn,
            "SELECT CAST(x'ff41' AS TEXT) AS t, 1.5 AS r, x'01' AS b",
            &[],
        )
        .unwrap();
        assert_eq!(
            rows.into_json(),
            vec![
                serde_json::json!({"t": "\u{fffd}A", "r": 1.5, "b": [1]})
                    .as_object()
                    .unwrap()
                    .clone()
            ]
        );
    }

    #[test]
    fn test_tables_read_names_the_tables_and_refuses_writes() {
        let conn = items();
        conn.execute_batch("CREATE TABLE other (id INTEGER PRIMARY KEY)")
            .unwrap();
        let tables = tables_read(
            &conn,
            "SELECT items.name FROM items JOIN other ON other.id = items.id",
        )
        .unwrap();
        assert_eq!(
            tables,
            BTreeSet::from(["items".to_string(), "other".to_string()])
        );
        let error = tables_read(&conn, "DELETE FROM items RETURNING id").unwrap_err();
        assert!(matches!(error, ReadError::Refused { .. }), "{error}");
        assert_eq!(dump(&conn).len(), 2);
    }
}
