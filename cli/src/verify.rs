//! `eventsync verify [--json] [--snapshots]`: audits the store's whole log in the bucket,
//! names every bad key, and exits non-zero on any fault.

use clap::Args;
use eventsync_backends::copy::StoreLocation;
use eventsync_backends::open_object_store;
use eventsync_backends::verify::{
    ObjectAudit, PackAudit, SnapshotAudit, SnapshotContentCheck, VerifyError, VerifyReport,
    verify_store,
};
use std::sync::Arc;

use super::{backend, out, progress_bar};
use crate::config::Config;
use eventsync::snapshot::ReplayCheck;
use eventsync::{Error, ErrorKind, Result};

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Print one JSON object (the report, camelCase, with every fault)
    #[arg(long)]
    json: bool,
    /// Also replay the log into a fresh database up to each snapshot of this build's schema
    /// and compare the state with the snapshot's content hash (every snapshot's header, S,
    /// schema folder and chain link are checked without it)
    #[arg(long)]
    snapshots: bool,
}

/// Runs `verify`.
pub(crate) async fn run(config: &Config, args: &VerifyArgs) -> Result<()> {
    let url = &config.backend;
    let (store, prefix) = open_object_store(url, &config.backend_options)
        .map_err(|e| backend::backend_error(url, e))?;
    let place = StoreLocation {
        store,
        prefix,
        store_id: config.store_id.clone(),
    };
    let replay = if args.snapshots {
        let backend = backend::open_backend(config, url, &config.store_id).await?;
        let check = ReplayCheck::new(Arc::new(eventsync_todo::todo_schema()), backend)
            .map_err(|e| Error::internal("preparing the replay").with_source(e))?;
        Some(check)
    } else {
        None
    };
    let snapshots = SnapshotAudit {
        content: replay
            .as_ref()
            .map(|check| check as &dyn SnapshotContentCheck),
    };
    let hooks: Vec<&dyn ObjectAudit> = vec![&PackAudit, &snapshots];
    let bar = progress_bar("segments checked");
    let shown = bar.clone();
    let verified = verify_store(&place, &hooks, &move |done, total| {
        shown.set_length(total);
        shown.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    let report = verified.map_err(|e| match e {
        VerifyError::Backend(e) => backend::backend_error(url, e),
        error @ VerifyError::NoStore { .. } => Error::wrap(ErrorKind::Invalid, error),
    })?;
    if args.json {
        let mut json = serde_json::to_value(&report)
            .map_err(|e| Error::internal("encoding the verify report").with_source(e))?;
        json["backend"] = backend::display_url(url).into();
        json["storeId"] = config.store_id.clone().into();
        json["sound"] = report.is_sound().into();
        out(json)?;
    } else {
        out(summary(config, url, &report))?;
        for fault in &report.faults {
            out(format!("FAULT {}: {}", fault.key, fault.message))?;
        }
    }
    if report.is_sound() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Data,
            format!(
                "verify: {} fault(s) in store {:?}, the first at {}",
                report.faults.len(),
                config.store_id,
                report.faults[0].key
            ),
        ))
    }
}

/// The one-line summary of a report.
fn summary(config: &Config, url: &str, report: &VerifyReport) -> String {
    let families: String = report
        .families
        .iter()
        .map(|family| format!(", {} {}", family.checked, family.name))
        .collect();
    let verdict = if report.is_sound() {
        "sound".to_owned()
    } else {
        format!("{} fault(s)", report.faults.len())
    };
    format!(
        "store {:?} at {} (backend id {}): {} segments, {} events, head e{}{families}: {verdict}",
        config.store_id,
        backend::display_url(url),
        report.backend_id,
        report.segments,
        report.events,
        report.head
    )
}
