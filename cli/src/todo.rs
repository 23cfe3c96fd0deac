//! `eventsync todo add|list|done|rm`: the example todo app on the library. Each change
//! commits through a session, then syncs (push and pull) unless `--offline`.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;

use super::{context, out, with_store};
use crate::config::{Config, generate_id};
use eventsync::ClientSession;
use eventsync::Store;
use eventsync::{Error, Result};
use eventsync_todo::{
    Todo, TodoCompleted, TodoCreated, TodoDeleted, TodoUncompleted, list_todos_sql,
};

/// The todo subcommands.
#[derive(Debug, Subcommand)]
pub enum TodoCommand {
    /// Add a todo (the words are joined with spaces); prints its id
    Add {
        /// The todo's text
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// List the todos of this client's replica, oldest first (run `sync` to pull first)
    List {
        /// Print a JSON array of {id, text, completed}
        #[arg(long)]
        json: bool,
    },
    /// Mark a todo done (again: mark it not done)
    Done {
        /// The todo's id
        id: String,
    },
    /// Delete a todo
    Rm {
        /// The todo's id
        id: String,
    },
}

/// Runs one todo subcommand.
pub(crate) async fn run(config: &Config, command: &TodoCommand) -> Result<()> {
    match command {
        TodoCommand::List { json } => {
            with_store(config, async |store: &Store| {
                let todos = list(&store.session().await?)?;
                print_list(&todos, *json)
            })
            .await
        }
        TodoCommand::Add { text } => {
            let text = text.join(" ");
            if text.trim().is_empty() {
                return Err(Error::invalid("todo text is empty"));
            }
            change(config, async |session: &ClientSession| {
                let id = generate_id(10);
                let args = TodoCreated {
                    id: id.clone(),
                    text: text.clone(),
                };
                session.commit(&args)?;
                Ok(format!("added {id}: {text}"))
            })
            .await
        }
        TodoCommand::Done { id } => {
            change(config, async |session: &ClientSession| {
                let todo = find(session, id, config)?;
                if todo.completed {
                    session.commit(&TodoUncompleted { id: id.clone() })?;
                    Ok(format!("not done {id}: {}", todo.text))
                } else {
                    session.commit(&TodoCompleted { id: id.clone() })?;
                    Ok(format!("done {id}: {}", todo.text))
                }
            })
            .await
        }
        TodoCommand::Rm { id } => {
            change(config, async |session: &ClientSession| {
                let todo = find(session, id, config)?;
                let args = TodoDeleted {
                    id: id.clone(),
                    deleted_at: now_millis(),
                };
                session.commit(&args)?;
                Ok(format!("removed {id}: {}", todo.text))
            })
            .await
        }
    }
}

/// Opens the store, commits through `body` (which returns the line to print), then syncs
/// unless offline.
async fn change(
    config: &Config,
    body: impl AsyncFnOnce(&ClientSession) -> Result<String>,
) -> Result<()> {
    with_store(config, async |store: &Store| {
        let line = body(&store.session().await?).await?;
        if config.offline {
            out(format!("{line} (offline: pending until the next sync)"))
        } else {
            store.sync().await.map_err(|e| {
                context(
                    e,
                    format!("{line}, kept locally, but syncing failed (run `sync` later)"),
                )
            })?;
            out(line)
        }
    })
    .await
}

/// The live todos, oldest first.
pub(crate) fn list(session: &ClientSession) -> Result<Vec<Todo>> {
    session.query(list_todos_sql(), &[])
}

/// The live todo with this id, or an error naming it.
fn find(session: &ClientSession, id: &str, config: &Config) -> Result<Todo> {
    list(session)?
        .into_iter()
        .find(|todo| todo.id == id)
        .ok_or_else(|| {
            Error::invalid(format!(
                "no todo with id {id:?} in store {:?} (see `eventsync todo list`)",
                config.store_id
            ))
        })
}

/// A todo as `list --json` prints it.
pub(crate) fn todo_json(todo: &Todo) -> serde_json::Value {
    serde_json::json!({"id": todo.id, "text": todo.text, "completed": todo.completed})
}

fn print_list(todos: &[Todo], json: bool) -> Result<()> {
    if json {
        let array: Vec<_> = todos.iter().map(todo_json).collect();
        return out(serde_json::Value::Array(array));
    }
    if todos.is_empty() {
        return out("no todos");
    }
    let width = todos.iter().map(|t| t.id.len()).max().unwrap_or(2).max(2);
    out(format!("{:<width$}  DONE  TEXT", "ID"))?;
    for todo in todos {
        let mark = if todo.completed { "[x]" } else { "[ ]" };
        out(format!("{:<width$}  {mark}   {}", todo.id, todo.text))?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch: a deletion's time, chosen by the committer because
/// materializers never read the clock.
#[allow(
    clippy::disallowed_methods,
    reason = "the command line is the caller that passes the time in"
)]
pub(crate) fn now_millis() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_todo_json_has_the_three_fields() {
        let todo = Todo {
            id: "a1".into(),
            text: "milk".into(),
            completed: true,
        };
        assert_eq!(
            todo_json(&todo),
            serde_json::json!({"id": "a1", "text": "milk", "completed": true})
        );
    }
}
