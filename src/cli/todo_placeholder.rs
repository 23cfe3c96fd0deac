//! PLACEHOLDER until crate::todo lands: the todo example's names, as the CLI uses them.
//! After the merge, delete this file and point the `use` in `cli/mod.rs` at `crate::todo`.

use serde::{Deserialize, Serialize};

use crate::schema::Schema;

/// The todo example's schema.
pub fn todo_schema() -> Schema {
    Schema::default()
}

/// `v1.TodoCreated`.
#[derive(Debug, Serialize)]
pub struct TodoCreated {
    pub id: String,
    pub text: String,
}
impl TodoCreated {
    pub const NAME: &str = "v1.TodoCreated";
}

/// `v1.TodoCompleted`.
#[derive(Debug, Serialize)]
pub struct TodoCompleted {
    pub id: String,
}
impl TodoCompleted {
    pub const NAME: &str = "v1.TodoCompleted";
}

/// `v1.TodoUncompleted`.
#[derive(Debug, Serialize)]
pub struct TodoUncompleted {
    pub id: String,
}
impl TodoUncompleted {
    pub const NAME: &str = "v1.TodoUncompleted";
}

/// `v1.TodoDeleted`.
#[derive(Debug, Serialize)]
pub struct TodoDeleted {
    pub id: String,
    #[serde(rename = "deletedAt")]
    pub deleted_at: String,
}
impl TodoDeleted {
    pub const NAME: &str = "v1.TodoDeleted";
}

/// The live todos, oldest first.
pub fn list_todos_sql() -> &'static str {
    "SELECT id, text, completed FROM todos WHERE deleted_at IS NULL ORDER BY rowid"
}

/// One row of [`list_todos_sql`].
#[derive(Debug, Deserialize)]
pub struct Todo {
    pub id: String,
    pub text: String,
    pub completed: bool,
}
