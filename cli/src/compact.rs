//! `eventsync compact [--json]`: packs every complete window of segments after the last pack
//! (see `docs/FORMAT.md`); safe to run from several clients at once.

use clap::Args;
use eventsync_backends::open_object_store;
use eventsync_backends::{SegmentLog, SegmentLogConfig};

use super::{backend, out};
use crate::config::Config;
use eventsync::{Error, Result};

/// Arguments of `compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Print one JSON object (the compact report, camelCase)
    #[arg(long)]
    json: bool,
}

/// Runs `compact`.
pub(crate) async fn run(config: &Config, args: &CompactArgs) -> Result<()> {
    let url = &config.backend;
    let (store, prefix) = open_object_store(url, &config.backend_options)
        .map_err(|e| backend::backend_error(url, e))?;
    let log = SegmentLog::new(store, prefix, &config.store_id, SegmentLogConfig::default())
        .map_err(|e| backend::backend_error(url, e))?;
    let report = log
        .compact()
        .await
        .map_err(|e| backend::backend_error(url, e))?;
    if args.json {
        let json = serde_json::to_value(&report)
            .map_err(|e| Error::internal("encoding the compact report").with_source(e))?;
        return out(json);
    }
    out(format!(
        "store {:?}: {} packs written, {} already there ({} segments); packed through e{}",
        config.store_id,
        report.written,
        report.already_there,
        report.segments,
        report.packed_through
    ))
}
