//! What materializers deal with: the [`Statement`]s they return, the [`MaterializerError`]
//! they may fail with, and the [`MaterializeContext`] that lets them read the current state.

use rusqlite::types::Value;
use serde_json::Value as Json;

use crate::event::EncodedEvent;
use crate::rows;
use crate::schema::EventDef;

/// One SQL statement a materializer wants executed, with its bound parameters (`?1`, `?2`…).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL text. Keep it constant per materializer (values go in `params`): statements
    /// are prepared once and cached by their text.
    pub sql: String,
    /// Positional parameters.
    pub params: Vec<Value>,
}

impl Statement {
    /// A statement from its SQL text and positional parameters.
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Statement {
        Statement {
            sql: sql.into(),
            params,
        }
    }
}

/// The error a user's materializer returns: a message saying what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MaterializerError {
    message: String,
}

impl MaterializerError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> MaterializerError {
        MaterializerError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<rusqlite::Error> for MaterializerError {
    fn from(error: rusqlite::Error) -> MaterializerError {
        MaterializerError::new(format!("query failed: {error}"))
    }
}

/// What a materializer sees besides its args: the event, and read access to the current
/// state (the tables as of the events before this one).
pub struct MaterializeContext<'a> {
    pub(crate) conn: &'a rusqlite::Connection,
    pub(crate) event: &'a EncodedEvent,
    pub(crate) def: &'a EventDef,
}

impl std::fmt::Debug for MaterializeContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaterializeContext")
            .field("event", &self.event)
            .field("def", &self.def)
            .finish_non_exhaustive()
    }
}

impl<'a> MaterializeContext<'a> {
    /// A context for materializing `event` (defined by `def`) against `conn`.
    pub(crate) fn new(
        conn: &'a rusqlite::Connection,
        event: &'a EncodedEvent,
        def: &'a EventDef,
    ) -> MaterializeContext<'a> {
        MaterializeContext { conn, event, def }
    }

    /// The event being materialized (its number, ids and raw args).
    pub fn event(&self) -> &EncodedEvent {
        self.event
    }

    /// The event's definition.
    pub fn event_def(&self) -> &EventDef {
        self.def
    }

    /// Runs a read-only query and returns every row as SQLite values. A statement that
    /// would write, or change the connection, is refused (by the reader every read query
    /// shares): materializers write only through the statements they return.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, MaterializerError> {
        Ok(self.read(sql, params)?.rows)
    }

    /// The first row of a read-only query, or `None` when it returns no row.
    pub fn query_row(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<Vec<Value>>, MaterializerError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// A read-only query's rows as JSON objects keyed by column name (blobs become arrays of
    /// bytes).
    pub fn query_json(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<serde_json::Map<String, Json>>, MaterializerError> {
        Ok(self.read(sql, params)?.into_json())
    }

    fn read(&self, sql: &str, params: &[Value]) -> Result<rows::Rows, MaterializerError> {
        rows::read(self.conn, sql, params)
            .map_err(|error| MaterializerError::new(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::Schema;

    fn nothing(
        _: serde_json::Value,
        _: &MaterializeContext<'_>,
    ) -> Result<Vec<Statement>, MaterializerError> {
        Ok(Vec::new())
    }

    fn base() -> crate::schema::SchemaBuilder {
        Schema::builder()
            .table("items", "CREATE TABLE items (id TEXT PRIMARY KEY)")
            .define_event(EventDef::synced("v1.ItemAdded"), nothing)
    }

    fn item_added() -> EncodedEvent {
        EncodedEvent {
            seq: crate::EventSeq::global(1),
            parent: crate::EventSeq::ROOT,
            name: "v1.ItemAdded".into(),
            args: json!({"id": "b"}),
            client_id: "c".into(),
            session_id: "s".into(),
            meta: Default::default(),
        }
    }

    /// A connection with the schema's tables and one item, `a`.
    fn with_one_item(schema: &Schema) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        schema.create_tables(&conn).unwrap();
        conn.execute("INSERT INTO items VALUES ('a')", []).unwrap();
        conn
    }

    #[test]
    fn test_context_query_refuses_writes() {
        let schema = base().build().unwrap();
        let conn = with_one_item(&schema);
        let event = item_added();
        let def = schema.event_def("v1.ItemAdded").unwrap();
        let ctx = MaterializeContext::new(&conn, &event, def);
        let rows = ctx
            .query_json(
                "SELECT id FROM items WHERE id = ?1",
                &[Value::from("a".to_string())],
            )
            .unwrap();
        assert_eq!(rows, vec![json!({"id": "a"}).as_object().unwrap().clone()]);
        assert_eq!(
            ctx.query_row("SELECT id FROM items WHERE id = 'zz'", &[])
                .unwrap(),
            None
        );
        let error = ctx.query("DELETE FROM items", &[]).unwrap_err();
        assert!(error.message().contains("only reads"));
        let count: i64 = conn
            .query_row("SELECT count(*) FROM items", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 1);
    }

    /// Statements SQLite calls read-only that would still change the connection the
    /// materializer runs in (its transaction, its savepoint, its databases, its settings).
    #[test]
    fn test_context_query_refuses_what_changes_the_connection() {
        let schema = base().build().unwrap();
        let conn = with_one_item(&schema);
        let event = item_added();
        let def = schema.event_def("v1.ItemAdded").unwrap();
        let ctx = MaterializeContext::new(&conn, &event, def);
        let settings = "SELECT * FROM pragma_foreign_keys, pragma_query_only, pragma_database_list";
        let before = ctx.query(settings, &[]).unwrap();
        for sql in [
            "BEGIN",
            "SAVEPOINT sneaky",
            "ATTACH DATABASE ':memory:' AS other",
            "PRAGMA foreign_keys = OFF",
            "PRAGMA query_only = 1",
            "INSERT INTO items VALUES ('x') RETURNING id",
            "WITH doomed AS (SELECT id FROM items) DELETE FROM items WHERE id IN doomed",
        ] {
            let error = ctx.query(sql, &[]).unwrap_err();
            assert!(
                error.message().contains(sql) && error.message().contains("only reads"),
                "{error}"
            );
            assert!(conn.is_autocommit(), "{sql:?} opened a transaction");
            assert_eq!(ctx.query(settings, &[]).unwrap(), before, "after {sql:?}");
            assert_eq!(
                ctx.query("SELECT id FROM items", &[]).unwrap(),
                vec![vec![Value::Text("a".into())]],
                "after {sql:?}"
            );
        }
    }

    /// Text that is not UTF-8 is read lossily, not a panic.
    #[test]
    fn test_context_query_reads_bad_text() {
        let schema = base().build().unwrap();
        let conn = with_one_item(&schema);
        let event = item_added();
        let def = schema.event_def("v1.ItemAdded").unwrap();
        let ctx = MaterializeContext::new(&conn, &event, def);
        let rows = ctx.query("SELECT CAST(x'ff' AS TEXT)", &[]).unwrap();
        assert_eq!(rows, vec![vec![Value::Text("\u{fffd}".into())]]);
    }
}
