//! eventsync as a library: two clients of one store sync a todo list through a backend.
//!
//! Run with `cargo run --example todo` (a shared in-memory backend), or give a backend URL:
//! `cargo run --example todo -- file:///tmp/todo-backend` or `-- s3://bucket/prefix` (with
//! the usual `AWS_*` variables).

use std::sync::Arc;

use eventsync::backends::open::{OpenOptions, open_backend};
use eventsync::backends::{SegmentLog, SegmentLogConfig, SyncBackend};
use eventsync::schema::{MaterializeContext, Schema, Statement};
use eventsync::{Event, Store, StoreBuilder};
use serde::{Deserialize, Serialize};

/// The event `v1.TodoCreated`: a serde type (its JSON args), checked at commit and on every
/// replica. The [`Event`] impl gives its name in the log; a client-only event (UI state,
/// never sent to the backend) would also set `CLIENT_ONLY = true`.
#[derive(Serialize, Deserialize)]
struct TodoCreated {
    id: String,
    text: String,
}

impl Event for TodoCreated {
    const NAME: &'static str = "v1.TodoCreated";
}

/// A row of the read model, read back through serde.
#[derive(Debug, Deserialize, PartialEq)]
struct Todo {
    id: String,
    text: String,
}

/// Tables, events, and the materializers that turn events into rows.
fn schema() -> Schema {
    Schema::builder()
        .table(
            "todos",
            "CREATE TABLE todos (id TEXT PRIMARY KEY, text TEXT NOT NULL)",
        )
        .event(|args: TodoCreated, _: &MaterializeContext<'_>| {
            Ok(vec![Statement::new(
                "INSERT INTO todos (id, text) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                vec![args.id.into(), args.text.into()],
            )])
        })
        .build()
        .expect("a valid schema")
}

fn client(
    schema: &Arc<Schema>,
    backend: Arc<dyn SyncBackend>,
    dir: &std::path::Path,
    id: &str,
) -> StoreBuilder {
    Store::builder(schema.clone())
        .with_backend(backend)
        .with_store_id("todo-example")
        .with_data_dir(dir)
        .with_client_id(id)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = Arc::new(schema());
    // Each client gets its own backend handle; they share the log behind it.
    let url = std::env::args().nth(1);
    let memory = Arc::new(object_store::memory::InMemory::new());
    let backend = async || -> Result<Arc<dyn SyncBackend>, Box<dyn std::error::Error>> {
        Ok(match &url {
            Some(url) => open_backend(url, "todo-example", &OpenOptions::default()).await?,
            None => Arc::new(SegmentLog::new(
                memory.clone(),
                "example".into(),
                "todo-example",
                SegmentLogConfig::default(),
            )?),
        })
    };
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let alice = client(&schema, backend().await?, dir_a.path(), "alice")
        .open()
        .await?;
    let bob = client(&schema, backend().await?, dir_b.path(), "bob")
        .open()
        .await?;

    // A commit is readable at once in the session that made it.
    let session = alice.session().await?;
    session.commit(&TodoCreated {
        id: "t1".into(),
        text: "buy milk".into(),
    })?;
    let todos: Vec<Todo> = session.query("SELECT id, text FROM todos", &[])?;
    println!("alice sees {todos:?}");

    // Sync pushes it to the backend; bob pulls it.
    alice.sync().await?;
    bob.sync().await?;
    let todos: Vec<Todo> = bob
        .session()
        .await?
        .query("SELECT id, text FROM todos", &[])?;
    println!("bob sees   {todos:?}");
    assert_eq!(
        todos,
        vec![Todo {
            id: "t1".into(),
            text: "buy milk".into()
        }]
    );

    alice.shutdown().await?;
    bob.shutdown().await?;
    Ok(())
}
