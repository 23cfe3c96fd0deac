//! Commits N todos from one session, one at a time, each waiting until the leader has made
//! it durable (the session hears its own event back from the leader), on an offline store in
//! a new temporary data dir. For counting what one durable leader batch costs:
//!
//! ```text
//! cargo build --release --example durable_commits
//! strace -f -c -e trace=fsync,fdatasync target/release/examples/durable_commits 0
//! strace -f -c -e trace=fsync,fdatasync target/release/examples/durable_commits 1000
//! ```
//!
//! The difference of the two counts, divided by N, is the fsyncs per batch (the run with 0
//! commits counts opening and closing the store).

use std::sync::Arc;
use std::time::Duration;

use eventsync::Store;
use eventsync_todo::{TodoCreated, todo_schema};

#[tokio::main]
async fn main() -> eventsync::Result<()> {
    let commits: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("the number of commits"))
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("a temporary data dir");
    let store = Store::builder(Arc::new(todo_schema()))
        .with_data_dir(dir.path())
        .with_offline(true)
        .open()
        .await?;
    let session = store.session().await?;
    for n in 0..commits {
        let seq = session.commit(&TodoCreated {
            id: format!("t{n}"),
            text: format!("todo {n}"),
        })?;
        // Durable once the leader's head (as this session heard it) reached the commit.
        while seq.is_after(&session.sync_status().leader_head) {
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
    }
    drop(session);
    store.shutdown().await?;
    println!("{commits} durable commits, one leader batch each");
    Ok(())
}
