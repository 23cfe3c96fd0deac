//! `eventsync log [--json] [--since N] [--follow]`: the backend's events, read straight from
//! the backend (no local store is opened).

use clap::Args;
use futures::StreamExt;

use super::{backend, ctrl_c, event_line, open_configured_backend, out};
use crate::config::Config;
use eventsync::{Error, Result};
use eventsync_backends::GlobalSeq;

/// Arguments of `log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// One JSON object a line: seqNum, parentSeqNum, name, args, clientId, sessionId
    #[arg(long)]
    json: bool,
    /// Only the events after event N
    #[arg(long, value_name = "N", default_value_t = 0)]
    since: u64,
    /// Keep printing new events as they land, until Ctrl-C
    #[arg(long)]
    follow: bool,
}

/// Runs `log`.
pub(crate) async fn run(config: &Config, args: &LogArgs) -> Result<()> {
    let url = &config.backend;
    let store = open_configured_backend(config).await?;
    let mut pages = store
        .pull(GlobalSeq(args.since), args.follow)
        .await
        .map_err(|e| backend::backend_error(url, e))?;
    let mut printed = 0u64;
    loop {
        let page = tokio::select! {
            () = ctrl_c() => break,
            page = pages.next() => page,
        };
        let Some(page) = page else { break };
        let page = page.map_err(|e| backend::backend_error(url, e))?;
        for event in &page.events {
            if args.json {
                let line = serde_json::to_string(event).map_err(|e| {
                    Error::internal(format!("encoding {}", event.seq_num)).with_source(e)
                })?;
                out(line)?;
            } else {
                out(event_line(event))?;
            }
            printed += 1;
        }
    }
    if printed == 0 && !args.json {
        eprintln!(
            "no events after e{} in store {:?}",
            args.since, config.store_id
        );
    }
    Ok(())
}
