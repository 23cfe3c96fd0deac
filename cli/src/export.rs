//! `eventsync export FILE [--json]`: the backend's whole log, in LiveStore's export format
//! (version 1), streamed from the backend into the file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

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

/// After every this many bytes written, the bytes so far are flushed to disk on a thread of
/// its own ([`SyncingFile`]).
const SYNC_EVERY: u64 = 16 << 20;

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
    let mut file = SyncingFile::new(temp.as_file()).map_err(file_error)?;
    let written = write_export(
        backend.as_ref(),
        BufWriter::with_capacity(WRITE_BUFFER, &mut file),
        &config.store_id,
        &now_rfc3339(),
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await;
    bar.finish_and_clear();
    let synced = file.finish();
    drop(file);
    let header = written.map_err(|e| match e {
        ExportWriteError::Backend(e) => backend::backend_error(url, e),
        ExportWriteError::Io(e) => file_error(e),
        broken @ ExportWriteError::Broken { .. } => Error::new(
            ErrorKind::Data,
            format!("backend {}", backend::display_url(url)),
        )
        .with_source(broken),
    })?;
    synced.map_err(file_error)?;
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

/// The export file, written as it comes, with what is written so far flushed to disk
/// (`sync_data`) on a thread of its own after every [`SYNC_EVERY`] bytes: the disk writes
/// while the export reads the backend, and the fsync at the end has only the last piece
/// to wait for instead of the whole file. Writes never wait for a flush; one asked for while
/// another runs is left to the next.
struct SyncingFile<'a> {
    file: &'a File,
    /// Bytes written since the last flush was asked for.
    unsynced: u64,
    /// Asks the thread for a flush; dropped to end it.
    flushes: Option<SyncSender<()>>,
    flusher: Option<JoinHandle<std::io::Result<()>>>,
}

impl<'a> SyncingFile<'a> {
    fn new(file: &'a File) -> std::io::Result<SyncingFile<'a>> {
        let handle = file.try_clone()?;
        let (flushes, asked) = sync_channel::<()>(1);
        let flusher = std::thread::Builder::new()
            .name("export-fsync".into())
            .spawn(move || {
                for () in asked {
                    handle.sync_data()?;
                }
                Ok(())
            })?;
        Ok(SyncingFile {
            file,
            unsynced: 0,
            flushes: Some(flushes),
            flusher: Some(flusher),
        })
    }

    /// Ends the flushing thread and returns its first error: the file descriptor is shared,
    /// so an error the thread's flush saw may not be reported again by a later fsync.
    fn finish(&mut self) -> std::io::Result<()> {
        self.flushes = None;
        match self.flusher.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(error))) => Err(error),
            Some(Err(_)) => Err(std::io::Error::other(
                "the thread flushing the file panicked",
            )),
        }
    }
}

impl Write for SyncingFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buf)?;
        self.unsynced += written as u64;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            if let Some(flushes) = &self.flushes {
                // Full: a flush is running and will be followed by another; gone: the thread
                // stopped on an error, which `finish` returns.
                let _ = flushes.try_send(());
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for SyncingFile<'_> {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
