//! `eventsync copy --from URL --to URL [--json]`: moves a store to another backend with its
//! history, keeping its backend id; resumable, and verified at the end.

use clap::Args;
use eventsync_backends::copy::{CopyError, StoreLocation, copy_store};
use eventsync_backends::open_object_store;

use super::{backend, out, progress_bar};
use crate::config::Config;
use eventsync::{Error, ErrorKind, Result};

/// Arguments of `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The backend URL to copy the store (--store) from
    #[arg(long, value_name = "URL")]
    from: String,
    /// The backend URL to copy it to: empty, or holding an interrupted copy of the same store
    #[arg(long, value_name = "URL")]
    to: String,
    /// Print one JSON object (the copy report, camelCase, plus both URLs)
    #[arg(long)]
    json: bool,
}

/// Runs `copy`.
pub(crate) async fn run(config: &Config, args: &CopyArgs) -> Result<()> {
    let location = |url: &str| {
        open_object_store(url, &config.backend_options)
            .map(|(store, prefix)| StoreLocation {
                store,
                prefix,
                store_id: config.store_id.clone(),
            })
            .map_err(|e| backend::backend_error(url, e))
    };
    let (from, to) = (location(&args.from)?, location(&args.to)?);
    let bar = progress_bar("objects copied");
    let shown = bar.clone();
    let copied = copy_store(&from, &to, &move |done, total| {
        shown.set_length(total);
        shown.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    let report = copied.map_err(|e| copy_error(args, e))?;
    let (from_url, to_url) = (
        backend::display_url(&args.from),
        backend::display_url(&args.to),
    );
    if args.json {
        let mut json = serde_json::to_value(&report)
            .map_err(|e| Error::internal("encoding the copy report").with_source(e))?;
        json["from"] = from_url.into();
        json["to"] = to_url.into();
        json["storeId"] = config.store_id.clone().into();
        return out(json);
    }
    let vanished = if report.vanished > 0 {
        format!(
            ", {} snapshots pruned at the source meanwhile (not copied)",
            report.vanished
        )
    } else {
        String::new()
    };
    out(format!(
        "copied store {:?} from {from_url} to {to_url}: {} objects written, {} already there{vanished}; verified {} events (backend id {})",
        config.store_id,
        report.copied,
        report.already_there,
        report.verified_events,
        report.backend_id
    ))
}

/// A copy error as the library's error, naming the side it concerns.
fn copy_error(args: &CopyArgs, error: CopyError) -> Error {
    match error {
        CopyError::Source(e) => backend::backend_error(&args.from, e),
        CopyError::Target(e) => backend::backend_error(&args.to, e),
        error @ (CopyError::NoSource { .. } | CopyError::OtherStore { .. }) => {
            Error::wrap(ErrorKind::Invalid, error)
        }
        error @ (CopyError::Differs { .. } | CopyError::Verify { .. }) => {
            Error::wrap(ErrorKind::Data, error)
        }
    }
}
