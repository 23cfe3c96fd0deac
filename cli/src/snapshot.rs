//! `eventsync snapshot [--json]`: syncs, then writes a snapshot of the local state at the
//! backend-confirmed head into the backend, for fresh clients to boot from.

use clap::Args;

use super::{out, with_store};
use crate::config::Config;
use eventsync::Store;
use eventsync::{Error, Result};

/// Arguments of `snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Print one JSON object (`key`, `created`, `at`, the schema hash)
    #[arg(long)]
    json: bool,
}

/// Runs `snapshot`.
pub(crate) async fn run(config: &Config, args: &SnapshotArgs) -> Result<()> {
    if config.offline {
        return Err(Error::invalid(
            "`snapshot` writes to the backend: it cannot run with --offline",
        ));
    }
    with_store(config, async |store: &Store| {
        store.sync().await?;
        let put = store.snapshot().await?;
        let at = put.at;
        if args.json {
            return out(serde_json::json!({
                "key": put.key,
                "created": put.created,
                "at": at.0,
                "storeId": config.store_id,
            }));
        }
        if put.created {
            out(format!("wrote snapshot {} (state at {at})", put.key))
        } else {
            out(format!(
                "snapshot {} (state at {at}) was already there: nothing written",
                put.key
            ))
        }
    })
    .await
}
