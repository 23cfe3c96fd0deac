//! `eventsync export FILE [--json]`: the backend's whole log, in LiveStore's export format
//! (version 1), streamed from the backend into the file.

use std::io::BufWriter;
use std::path::PathBuf;

use clap::Args;
use eventsync_backends::export::{ExportWriteError, write_export};

use super::{backend, open_configured_backend, out, progress_bar};
use crate::config::Config;
use eventsync::{Error, ErrorKind, Result};

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The file to write; it is replaced only once the whole export is written
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print one JSON object: file, storeId, exportedAt, eventCount, backend
    #[arg(long)]
    json: bool,
}

/// The export file is written in pieces of this size.
const WRITE_BUFFER: usize = 1 << 20;

/// Runs `export`: reads no local store, only the backend. The file is written next to its
/// final name and renamed into place when complete, so an interrupted export leaves no
/// half file behind.
pub(crate) async fn run(config: &Config, args: &ExportArgs) -> Result<()> {
    let url = &config.backend;
    let backend = open_configured_backend(config).await?;
    let folder = match args.file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_error = |e: std::io::Error| {
        Error::new(
            ErrorKind::Invalid,
            format!("writing {}", args.file.display()),
        )
        .with_source(e)
    };
    let temp = tempfile::NamedTempFile::new_in(&folder).map_err(file_error)?;
    let bar = progress_bar("events exported");
    let written = write_export(
        backend.as_ref(),
        BufWriter::with_capacity(WRITE_BUFFER, temp.as_file()),
        &config.store_id,
        &now_rfc3339(),
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await;
    bar.finish_and_clear();
    let header = written.map_err(|e| match e {
        ExportWriteError::Backend(e) => backend::backend_error(url, e),
        ExportWriteError::Io(e) => file_error(e),
        broken @ ExportWriteError::Broken { .. } => Error::new(
            ErrorKind::Data,
            format!("backend {}", backend::display_url(url)),
        )
        .with_source(broken),
    })?;
    temp.as_file().sync_all().map_err(file_error)?;
    temp.persist(&args.file).map_err(|e| file_error(e.error))?;
    if args.json {
        return out(serde_json::json!({
            "file": args.file.display().to_string(),
            "storeId": header.store_id,
            "exportedAt": header.exported_at,
            "eventCount": header.event_count,
            "backend": backend::display_url(url),
        }));
    }
    out(format!(
        "exported {} events of store {:?} to {}",
        header.event_count,
        header.store_id,
        args.file.display()
    ))
}

/// The wall clock as LiveStore's `exportedAt` writes it (`toISOString`: UTC, milliseconds).
fn now_rfc3339() -> String {
    #[allow(
        clippy::disallowed_methods,
        reason = "exportedAt is the wall-clock time the user exported at"
    )]
    let now = std::time::SystemTime::now();
    humantime::format_rfc3339_millis(now).to_string()
}
