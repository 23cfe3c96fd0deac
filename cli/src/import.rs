//! `eventsync import FILE [--force] [--dry-run] [--json]`: a file in LiveStore's export
//! format (version 1) into the backend, checked whole (args against the todo schema) before
//! anything is written.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use eventsync_backends::export::{ImportError, ImportOptions, ImportPhase, ImportReport, import};

use super::{backend, out, progress_bar};
use crate::config::Config;
use eventsync::{Error, ErrorKind, Result};

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export file to read
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Replace a store that already has events: it gets a new backend id, and its clients
    /// follow their on_backend_id_mismatch policy
    #[arg(long)]
    force: bool,
    /// Check the file and the store, say what would be done, and write nothing
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object (the import report, camelCase, plus the backend URL)
    #[arg(long)]
    json: bool,
}

/// Runs `import`: talks to the backend only (no local store is opened).
pub(crate) async fn run(config: &Config, args: &ImportArgs) -> Result<()> {
    let url = &config.backend;
    if !args.dry_run && config.default_backend_dir().is_some() {
        config.ensure_data_dir()?;
    }
    let backend = backend::open_backend(config, url, &config.store_id).await?;
    let schema = eventsync_todo::todo_schema();
    let bar = progress_bar("events");
    let shown = bar.clone();
    let options = ImportOptions {
        force: args.force,
        dry_run: args.dry_run,
        check_args: None,
        check_args_json: Some(Arc::new(move |name: &str, args: &str| {
            schema
                .decode_args_json(name, args)
                .map_err(|e| format!("args do not decode under the schema: {e}"))
        })),
        progress: Some(Arc::new(move |phase, done| {
            match phase {
                // The total is known once the whole file was read.
                ImportPhase::Checking => {
                    shown.set_message("events checked");
                    shown.set_length(done);
                }
                ImportPhase::Pushing { total } => {
                    shown.set_message("events imported");
                    shown.set_length(total);
                }
            }
            shown.set_position(done);
        })),
    };
    let result = import(backend.as_ref(), &args.file, &options).await;
    bar.finish_and_clear();
    let report = result.map_err(|e| import_error(url, e))?;
    if args.json {
        let mut json = serde_json::to_value(&report)
            .map_err(|e| Error::internal("encoding the import report").with_source(e))?;
        json["backend"] = backend::display_url(url).into();
        json["storeId"] = config.store_id.clone().into();
        return out(json);
    }
    out(summary(&report, &config.store_id))
}

/// The report as one sentence a person reads.
fn summary(report: &ImportReport, store_id: &str) -> String {
    let events = report.file.event_count;
    let from = &report.file.store_id;
    if report.dry_run {
        let store = if report.replaces {
            format!(
                "replacing its {} events with a new backend id (--force)",
                report.previous_head
            )
        } else {
            "which is empty".into()
        };
        return format!(
            "dry run: the file is valid; would import {events} events (exported from store {from:?}) into store {store_id:?}, {store}; wrote nothing"
        );
    }
    let replaced = if report.replaces {
        format!(
            "; replaced its {} events (backend id {} -> {}): its clients follow on_backend_id_mismatch",
            report.previous_head,
            report.previous_backend_id.as_deref().unwrap_or("?"),
            report.backend_id.as_deref().unwrap_or("?")
        )
    } else {
        String::new()
    };
    format!(
        "imported {} events (exported from store {from:?}) into store {store_id:?} in {} push{}{replaced}",
        report.imported,
        report.pushes,
        if report.pushes == 1 { "" } else { "es" }
    )
}

/// An import error as the library's error, with the kind that says what to do.
fn import_error(url: &str, error: ImportError) -> Error {
    match error {
        ImportError::Backend {
            imported: 0,
            source,
        } => backend::backend_error(url, source),
        ImportError::Backend { imported, source } => backend::backend_error(url, source).context(
            format!("importing, after {imported} events were imported (run it again with --force)"),
        ),
        error @ (ImportError::Open { .. }
        | ImportError::File { .. }
        | ImportError::Changed { .. }
        | ImportError::Read { .. }
        | ImportError::NotEmpty { .. }) => Error::wrap(ErrorKind::Invalid, error),
        error @ (ImportError::Raced { .. } | ImportError::CreatedMeanwhile { .. }) => {
            Error::wrap(ErrorKind::Unavailable, error)
        }
        error @ ImportError::Internal { .. } => Error::wrap(ErrorKind::Internal, error),
    }
}
