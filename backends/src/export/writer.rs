//! [`write_export`]: streams a backend's log into an export file, one event a line.

use std::io::Write;

use futures::StreamExt;

use super::{EXPORT_VERSION, ExportHeader};
use crate::{BackendError, GlobalSeq, SyncBackend};

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportWriteError {
    /// Reading the backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Writing the file failed.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    /// The backend's log is not the gapless chain it promised (a backend bug).
    #[error("the backend's log is broken: {message}")]
    Broken {
        /// What was out of place.
        message: String,
    },
}

/// Writes the whole log of `backend`, as it is when this starts, into `out` in LiveStore's
/// export format version 1; returns the header written.
///
/// `eventCount` is the backend's head, read first; the log is then pulled (not live) page by
/// page and each event written as it comes, up to that head, so the count is right even when
/// other clients push meanwhile. The bytes are a function of the log, `store_id` and
/// `exported_at` alone (fields in a fixed order, one event a line), so two exports of the same
/// log compare equal. `progress` is called with the events written so far and the total after each page.
/// `out` should be buffered (a large buffer: the file is written in big pieces); it is
/// flushed at the end. Call it inside a Tokio runtime: the pull runs as a task of its own.
pub async fn write_export<W: Write>(
    backend: &dyn SyncBackend,
    mut out: W,
    store_id: &str,
    exported_at: &str,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<ExportHeader, ExportWriteError> {
    let head = backend.head().await?;
    let header = ExportHeader {
        version: EXPORT_VERSION,
        store_id: store_id.to_owned(),
        exported_at: exported_at.to_owned(),
        event_count: head.0,
    };
    write!(out, "{{\"version\":{EXPORT_VERSION},\"storeId\":")?;
    serde_json::to_writer(&mut out, store_id).map_err(std::io::Error::from)?;
    out.write_all(b",\"exportedAt\":")?;
    serde_json::to_writer(&mut out, exported_at).map_err(std::io::Error::from)?;
    write!(out, ",\"eventCount\":{},\"events\":[", head.0)?;
    let mut written = 0u64;
    if head > GlobalSeq::ZERO {
        let pages = backend.pull(GlobalSeq::ZERO, false).await?;
        // The pull (its GETs, and decoding and checking what they bring) runs as a task of
        // its own, a few pages ahead, while this one encodes and writes.
        let (mut pages, _pulling) = pull_ahead(pages);
        'pages: while let Some(page) = pages.recv().await {
            for event in page?.events {
                let expected = GlobalSeq(written + 1);
                if event.seq_num != expected || event.parent_seq_num != GlobalSeq(written) {
                    return Err(ExportWriteError::Broken {
                        message: format!(
                            "expected {expected} after e{written}, got {} with parent {}",
                            event.seq_num, event.parent_seq_num
                        ),
                    });
                }
                out.write_all(if written == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut out, &event).map_err(std::io::Error::from)?;
                written += 1;
                if written == head.0 {
                    break 'pages;
                }
            }
            progress(written, head.0);
        }
    }
    if written != head.0 {
        return Err(ExportWriteError::Broken {
            message: format!("the head is {head}, but the log ends at e{written}"),
        });
    }
    progress(written, head.0);
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    Ok(header)
}

/// Pages a pull delivers, read ahead of their consumer.
const PAGES_AHEAD: usize = 2;

/// Runs `pages` as a task of its own that sends each page into the channel returned, at
/// most [`PAGES_AHEAD`] ahead, and stops after an error; the task is aborted when the
/// guard returned is dropped.
fn pull_ahead(
    mut pages: crate::PullStream,
) -> (
    tokio::sync::mpsc::Receiver<Result<crate::PullPage, BackendError>>,
    AbortOnDrop,
) {
    let (sender, receiver) = tokio::sync::mpsc::channel(PAGES_AHEAD);
    let task = tokio::spawn(async move {
        while let Some(page) = pages.next().await {
            let failed = page.is_err();
            if sender.send(page).await.is_err() || failed {
                break;
            }
        }
    });
    (receiver, AbortOnDrop(task))
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::export::{read_export, test_event};
    use crate::{SegmentLog, SegmentLogConfig};

    fn log() -> SegmentLog {
        let config = SegmentLogConfig {
            page_events: 2,
            ..SegmentLogConfig::default()
        };
        let store = Arc::new(object_store::memory::InMemory::new());
        SegmentLog::new(store, Default::default(), "s", config).unwrap()
    }

    async fn export(log: &SegmentLog) -> (ExportHeader, Vec<u8>) {
        let mut bytes = Vec::new();
        let mut calls = 0;
        let header = write_export(
            log,
            &mut bytes,
            "s",
            "2026-01-01T00:00:00.000Z",
            &mut |_, _| calls += 1,
        )
        .await
        .unwrap();
        assert!(calls >= 1);
        (header, bytes)
    }

    #[tokio::test]
    async fn test_an_export_reads_back_as_the_same_events() {
        let log = log();
        let events: Vec<_> = (1..=5).map(test_event).collect();
        log.push(events[..3].to_vec()).await.unwrap();
        log.push(events[3..].to_vec()).await.unwrap();
        let (header, bytes) = export(&log).await;
        assert_eq!(header.event_count, 5);
        let mut read = Vec::new();
        let back = read_export(&bytes[..], 1 << 20, &mut |e| {
            read.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(back, header);
        assert_eq!(read, events);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 7, "one event a line: {text}");
        assert!(text.starts_with(
            r#"{"version":1,"storeId":"s","exportedAt":"2026-01-01T00:00:00.000Z","eventCount":5,"events":["#
        ));
    }

    #[tokio::test]
    async fn test_an_empty_log_exports_a_valid_empty_file() {
        let (header, bytes) = export(&log()).await;
        assert_eq!(header.event_count, 0);
        let back = read_export(&bytes[..], 1 << 20, &mut |_| Ok(())).unwrap();
        assert_eq!(back.event_count, 0);
    }
}
