//! `eventsync sync [--watch]`: push pending events, pull new ones; `--watch` keeps a live
//! pull running and prints each new event until Ctrl-C.

use clap::Args;
use futures::StreamExt;

use super::{backend, ctrl_c, event_line, out, with_store};
use crate::config::Config;
use eventsync::Store;
use eventsync::{Error, Result};
use eventsync_backends::GlobalSeq;

/// Arguments of `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Keep syncing and print each new event until Ctrl-C
    #[arg(long)]
    watch: bool,
}

/// Runs `sync`.
pub(crate) async fn run(config: &Config, args: &SyncArgs) -> Result<()> {
    if config.offline {
        return Err(Error::invalid("`sync` cannot run with --offline"));
    }
    with_store(config, async |store: &Store| {
        store.sync().await?;
        let status = store.status().await?;
        let backend_head = status
            .backend_head
            .map_or_else(|| "unknown".to_string(), |head| head.to_string());
        out(format!(
            "synced store {:?}: local head {}, backend head {backend_head}, {} pending",
            status.store_id, status.local_head, status.pending
        ))?;
        if args.watch {
            watch(store, status.backend_confirmed_head.global).await?;
        }
        Ok(())
    })
    .await
}

/// Prints the backend's events after `cursor` as they land, until Ctrl-C. The leader pulls
/// the same events into the local replica on its own.
async fn watch(store: &Store, cursor: GlobalSeq) -> Result<()> {
    let backend = store
        .backend()
        .ok_or_else(|| Error::invalid("sync --watch needs a backend: drop --offline"))?;
    let url = backend.info().url;
    let mut pages = backend
        .pull(cursor, true)
        .await
        .map_err(|e| backend::backend_error(&url, e))?;
    eprintln!("watching for new events (Ctrl-C to stop)");
    loop {
        tokio::select! {
            () = ctrl_c() => return Ok(()),
            page = pages.next() => match page {
                None => return Ok(()),
                Some(Err(e)) => return Err(backend::backend_error(&url, e)),
                Some(Ok(page)) => {
                    for event in &page.events {
                        out(event_line(event))?;
                    }
                }
            }
        }
    }
}
