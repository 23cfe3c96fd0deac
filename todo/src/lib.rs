//! The example app of eventsync: a todo list. Its schema is used by the command line's `todo`
//! commands, the demo, the tests and the benches.
//!
//! Ordering: `todo list` sorts by `created_seq`, the global sequence number of the event that
//! created the todo, then by id. Not by rowid: a replica that rolled back a pending
//! `TodoCreated` and replayed it (renumbered) after upstream events gets a new rowid, so
//! rowids differ between replicas that materialized the same log. `created_seq` is a function
//! of the log alone.

use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

use eventsync::Event;
use eventsync::schema::{MaterializeContext, Schema, SchemaBuilder, Statement};

/// The `todos` table. `created_seq` holds the creating event's global sequence number.
pub const TODOS_DDL: &str = "CREATE TABLE todos (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    deleted_at INTEGER,
    created_seq INTEGER NOT NULL
)";

/// The client-only `ui_state` table: one row with the list filter.
pub const UI_STATE_DDL: &str =
    "CREATE TABLE ui_state (id INTEGER PRIMARY KEY CHECK (id = 1), filter TEXT)";

/// `v1.TodoCreated`: a new todo. A second creation with the same id is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TodoCreated {
    /// The todo's id (unique, chosen by the client).
    pub id: String,
    /// Its text.
    pub text: String,
}
impl Event for TodoCreated {
    const NAME: &'static str = "v1.TodoCreated";
}

/// `v1.TodoCompleted`: marks a todo done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TodoCompleted {
    /// The todo's id.
    pub id: String,
}
impl Event for TodoCompleted {
    const NAME: &'static str = "v1.TodoCompleted";
}

/// `v1.TodoUncompleted`: marks a todo not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TodoUncompleted {
    /// The todo's id.
    pub id: String,
}
impl Event for TodoUncompleted {
    const NAME: &'static str = "v1.TodoUncompleted";
}

/// `v1.TodoRenamed`: changes a todo's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TodoRenamed {
    /// The todo's id.
    pub id: String,
    /// Its new text.
    pub text: String,
}
impl Event for TodoRenamed {
    const NAME: &'static str = "v1.TodoRenamed";
}

/// `v1.TodoDeleted`: soft-deletes a todo (the first deletion's time is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TodoDeleted {
    /// The todo's id.
    pub id: String,
    /// When, in milliseconds since the Unix epoch (given by the committer: materializers
    /// never read the clock).
    pub deleted_at: i64,
}
impl Event for TodoDeleted {
    const NAME: &'static str = "v1.TodoDeleted";
}

/// Which todos the UI shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TodoFilter {
    /// Every todo.
    All,
    /// Not completed.
    Active,
    /// Completed.
    Completed,
}

impl TodoFilter {
    fn as_str(self) -> &'static str {
        match self {
            TodoFilter::All => "all",
            TodoFilter::Active => "active",
            TodoFilter::Completed => "completed",
        }
    }
}

/// `v1.UiStateSet` (client-only): sets the UI's filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UiStateSet {
    /// The filter.
    pub filter: TodoFilter,
}
impl Event for UiStateSet {
    const NAME: &'static str = "v1.UiStateSet";
    const CLIENT_ONLY: bool = true;
}

/// A todo as `todo list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    /// The todo's id.
    pub id: String,
    /// Its text.
    pub text: String,
    /// Whether it is done (SQLite stores it as 0 or 1).
    #[serde(deserialize_with = "bool_from_int")]
    pub completed: bool,
}

/// Reads a boolean stored as an SQLite integer (or a JSON boolean).
fn bool_from_int<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flag::deserialize(deserializer)? {
        Flag::Bool(flag) => flag,
        Flag::Int(number) => number != 0,
    })
}

/// The todo app's schema.
pub fn todo_schema() -> Schema {
    todo_schema_builder()
        .build()
        // The schema is a constant, checked by the tests below.
        .expect("the todo schema is valid")
}

/// The todo app's schema, not built yet: tests add a table to get another schema (another
/// hash) with the same events.
pub fn todo_schema_builder() -> SchemaBuilder {
    Schema::builder()
        .table("todos", TODOS_DDL)
        .client_only_table("ui_state", UI_STATE_DDL)
        .event(|args: TodoCreated, ctx: &MaterializeContext<'_>| {
            let created_seq = i64::try_from(ctx.event().seq.global.0).map_err(|_| {
                eventsync::schema::MaterializerError::new("sequence number exceeds i64")
            })?;
            Ok(vec![Statement::new(
                "INSERT INTO todos (id, text, completed, deleted_at, created_seq) \
                     VALUES (?1, ?2, 0, NULL, ?3) ON CONFLICT (id) DO NOTHING",
                vec![args.id.into(), args.text.into(), created_seq.into()],
            )])
        })
        .event(|args: TodoCompleted, _: &MaterializeContext<'_>| {
            Ok(vec![Statement::new(
                "UPDATE todos SET completed = 1 WHERE id = ?1",
                vec![args.id.into()],
            )])
        })
        .event(|args: TodoUncompleted, _: &MaterializeContext<'_>| {
            Ok(vec![Statement::new(
                "UPDATE todos SET completed = 0 WHERE id = ?1",
                vec![args.id.into()],
            )])
        })
        .event(|args: TodoRenamed, _: &MaterializeContext<'_>| {
            Ok(vec![Statement::new(
                "UPDATE todos SET text = ?2 WHERE id = ?1",
                vec![args.id.into(), args.text.into()],
            )])
        })
        .event(|args: TodoDeleted, _: &MaterializeContext<'_>| {
            Ok(vec![Statement::new(
                "UPDATE todos SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
                vec![args.id.into(), args.deleted_at.into()],
            )])
        })
        .event(|args: UiStateSet, _: &MaterializeContext<'_>| {
            Ok(vec![Statement::new(
                "INSERT INTO ui_state (id, filter) VALUES (1, ?1) \
                     ON CONFLICT (id) DO UPDATE SET filter = excluded.filter",
                vec![Value::from(args.filter.as_str().to_string())],
            )])
        })
}

/// The query behind `todo list`: todos not deleted, in creation order (`id`, `text`,
/// `completed`). The order is the same on every replica of the same log (see the module doc).
pub fn list_todos_sql() -> &'static str {
    "SELECT id, text, completed FROM todos WHERE deleted_at IS NULL ORDER BY created_seq, id"
}

/// Runs [`list_todos_sql`] on `conn`.
pub fn list_todos(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<Todo>> {
    let mut stmt = conn.prepare_cached(list_todos_sql())?;
    let rows = stmt.query_map([], |row| {
        Ok(Todo {
            id: row.get(0)?,
            text: row.get(1)?,
            completed: row.get(2)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use eventsync::materialize::{Record, apply_event};
    use eventsync::{EncodedEvent, EventMeta, EventSeq};

    fn event(global: u64, name: &str, args: serde_json::Value) -> EncodedEvent {
        EncodedEvent {
            seq: EventSeq::global(global),
            parent: EventSeq::global(global - 1),
            name: name.into(),
            args,
            client_id: "c".into(),
            session_id: "s".into(),
            meta: EventMeta::default(),
        }
    }

    #[test]
    fn test_todo_schema_builds_with_client_only_ui_event() {
        let schema = todo_schema();
        assert!(schema.event_def(UiStateSet::NAME).unwrap().is_client_only());
        assert!(
            !schema
                .event_def(TodoCreated::NAME)
                .unwrap()
                .is_client_only()
        );
        let names: Vec<_> = schema.tables().iter().map(|t| t.name()).collect();
        assert_eq!(names, ["todos", "ui_state"]);
    }

    #[test]
    fn test_args_serialize_camel_case() {
        let args = serde_json::to_value(TodoDeleted {
            id: "a".into(),
            deleted_at: 5,
        })
        .unwrap();
        assert_eq!(args, json!({"id": "a", "deletedAt": 5}));
        let args = serde_json::to_value(UiStateSet {
            filter: TodoFilter::Active,
        })
        .unwrap();
        assert_eq!(args, json!({"filter": "active"}));
    }

    #[test]
    fn test_list_orders_by_creating_event_not_id() {
        let schema = todo_schema();
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        schema.create_tables(&conn).unwrap();
        let events = [
            event(1, TodoCreated::NAME, json!({"id": "z", "text": "first"})),
            event(2, TodoCreated::NAME, json!({"id": "a", "text": "second"})),
            event(3, TodoCreated::NAME, json!({"id": "m", "text": "third"})),
            event(4, TodoCompleted::NAME, json!({"id": "a"})),
            event(5, TodoDeleted::NAME, json!({"id": "m", "deletedAt": 9})),
            event(6, TodoCreated::NAME, json!({"id": "z", "text": "dup"})),
        ];
        for e in &events {
            apply_event(&conn, &schema, e, Record::Nothing).unwrap();
        }
        let todos = list_todos(&conn).unwrap();
        let expected = vec![
            Todo {
                id: "z".into(),
                text: "first".into(),
                completed: false,
            },
            Todo {
                id: "a".into(),
                text: "second".into(),
                completed: true,
            },
        ];
        assert_eq!(todos, expected);
    }
}
