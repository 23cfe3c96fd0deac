//! `eventsync snapshot [--json] [--prune] [--keep N]`: syncs, then writes a snapshot of the
//! local state at the backend-confirmed head into the backend, for fresh clients to boot
//! from, then deletes the older snapshots but the newest `snapshot_keep` of each schema hash
//! (`[tuning]`, default 3; 0 keeps them all; a failure to prune is a warning, the snapshot
//! is written). `--prune` only prunes: it opens the backend,
//! not the store, and writes nothing.

use clap::Args;
use eventsync_backends::SnapshotPrune;

use super::{backend, out, with_store};
use crate::config::Config;
use eventsync::Store;
use eventsync::{Error, Result};

/// Arguments of `snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Print one JSON object (`key`, `created`, `at`, the store id, and `pruned`: the keys
    /// `kept` and `deleted`)
    #[arg(long)]
    json: bool,
    /// Write no snapshot: only delete the snapshots but the newest `--keep` of each schema
    /// hash
    #[arg(long)]
    prune: bool,
    /// How many snapshots of each schema hash to keep (default: `snapshot_keep` of
    /// `[tuning]`, 3; 0 keeps every one, and cannot go with --prune)
    #[arg(long, value_name = "N")]
    keep: Option<u64>,
}

/// Runs `snapshot`.
pub(crate) async fn run(config: &Config, args: &SnapshotArgs) -> Result<()> {
    if config.offline {
        return Err(Error::invalid(
            "`snapshot` writes to the backend: it cannot run with --offline",
        ));
    }
    let keep = args.keep.unwrap_or(config.tuning.snapshot_keep);
    if args.prune {
        return prune_only(config, args, keep).await;
    }
    with_store(config, async |store: &Store| {
        store.sync().await?;
        let put = store.snapshot().await?;
        // Best effort, as a leader's: the snapshot is written; older ones wait for the next
        // prune when this one fails.
        let pruned = if keep == 0 {
            None
        } else {
            match store.prune_snapshots(keep).await {
                Ok(pruned) => Some(pruned),
                Err(error) => {
                    tracing::warn!(%error, "could not prune the older snapshots");
                    None
                }
            }
        };
        let at = put.at;
        if args.json {
            return out(serde_json::json!({
                "key": put.key,
                "created": put.created,
                "at": at.0,
                "storeId": config.store_id,
                "pruned": pruned,
            }));
        }
        let pruned = pruned.map_or_else(String::new, |pruned| {
            format!("; {}", pruned_line(&pruned, keep))
        });
        if put.created {
            out(format!(
                "wrote snapshot {} (state at {at}){pruned}",
                put.key
            ))
        } else {
            out(format!(
                "snapshot {} (state at {at}) was already there: nothing written{pruned}",
                put.key
            ))
        }
    })
    .await
}

/// `snapshot --prune`: the backend alone, no store (no sync, no local data needed).
async fn prune_only(config: &Config, args: &SnapshotArgs, keep: u64) -> Result<()> {
    if keep == 0 {
        return Err(Error::invalid(
            "`snapshot --prune --keep 0` would delete every snapshot: keep at least 1",
        ));
    }
    let url = &config.backend;
    let backend = backend::open_backend(config, url, &config.store_id).await?;
    let pruned = backend
        .prune_snapshots(keep)
        .await
        .map_err(|e| backend::backend_error(url, e))?;
    if args.json {
        return out(serde_json::json!({
            "storeId": config.store_id,
            "pruned": pruned,
        }));
    }
    out(format!(
        "store {:?}: {}",
        config.store_id,
        pruned_line(&pruned, keep)
    ))
}

fn pruned_line(pruned: &SnapshotPrune, keep: u64) -> String {
    format!(
        "{} older snapshots deleted, {} kept (the newest {keep} of each schema)",
        pruned.deleted.len(),
        pruned.kept.len()
    )
}
