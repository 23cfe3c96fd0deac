//! What materializers deal with: the [`Statement`]s they return, the [`MaterializerError`]
//! they may fail with, and the [`MaterializeContext`] that lets them read the current state.

use rusqlite::types::Value;
use serde_json::Value as Json;

use crate::event::EncodedEvent;
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
    /// would write is refused: materializers write only through the statements they return.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, MaterializerError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        if !stmt.readonly() {
            return Err(MaterializerError::new(format!(
                "ctx.query only reads, and this statement writes: {sql}"
            )));
        }
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..columns)
                .map(|index| row.get::<_, Value>(index))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(values);
        }
        Ok(out)
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
        let names: Vec<String> = {
            let stmt = self.conn.prepare_cached(sql)?;
            stmt.column_names().into_iter().map(String::from).collect()
        };
        let rows = self.query(sql, params)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                names
                    .iter()
                    .cloned()
                    .zip(row.into_iter().map(value_to_json))
                    .collect()
            })
            .collect())
    }
}

/// An SQLite value as JSON.
fn value_to_json(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(i) => Json::from(i),
        Value::Real(f) => Json::from(f),
        Value::Text(s) => Json::from(s),
        Value::Blob(b) => Json::from(b),
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
            .event(EventDef::synced("v1.ItemAdded"), nothing)
    }

    #[test]
    fn test_context_query_refuses_writes() {
        let schema = base().build().unwrap();
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        schema.create_tables(&conn).unwrap();
        conn.execute("INSERT INTO items VALUES ('a')", []).unwrap();
        let event = EncodedEvent {
            seq: crate::EventSeq::global(1),
            parent: crate::EventSeq::ROOT,
            name: "v1.ItemAdded".into(),
            args: json!({"id": "b"}),
            client_id: "c".into(),
            session_id: "s".into(),
            meta: Default::default(),
        };
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
}
