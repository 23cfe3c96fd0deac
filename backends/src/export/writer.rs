//! [`write_export`]: streams a backend's log into an export file, one event a line.

use std::io::Write;

use futures::StreamExt;

use super::{EXPORT_VERSION, ExportHeader};
use crate::{BackendError, GlobalSeq, JsonSegments, SyncBackend};

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
/// The log is read as checked segments whose events are JSON ([`SyncBackend::pull_json`]:
/// each event's JSON copied as the segment holds it, which is what `serde_json` writes for
/// it, nothing built), and `eventCount` is the head that read found when it started (the
/// backend's [`head`](SyncBackend::head) without it); the log is read up to that head, so
/// the count is right even when other clients push meanwhile. From where the JSON read stops
/// (a backend without it, a pack it refuses) the log is pulled (not live) page by page, each
/// event written as `serde_json` writes it: the same bytes either way. The bytes are a
/// function of the log, `store_id` and `exported_at` alone (fields in a fixed order, one
/// event a line), so two exports of the same log compare equal. `progress` is called with
/// the events written so far and the total after each page. `out` should be buffered (a
/// large buffer: the file is written in big pieces); it is flushed at the end. Call it
/// inside a Tokio runtime: the read runs as a task of its own.
pub async fn write_export<W: Write>(
    backend: &dyn SyncBackend,
    mut out: W,
    store_id: &str,
    exported_at: &str,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<ExportHeader, ExportWriteError> {
    let json = match backend.pull_json().await {
        Ok(json) => json,
        Err(error) => {
            tracing::warn!(%error, "reading the log's segments as JSON failed; pulling instead");
            None
        }
    };
    let head = match &json {
        Some(json) => json.head,
        None => backend.head().await?,
    };
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
    if let Some(json) = json
        && head > GlobalSeq::ZERO
    {
        write_json(json.segments, &mut out, head, &mut written, progress).await?;
    }
    if written < head.0 {
        let pages = backend.pull(GlobalSeq(written), false).await?;
        // The pull (its GETs, and decoding and checking what they bring) runs as a task of
        // its own, a few pages ahead, while this one encodes and writes.
        let (mut pages, _pulling) = pull_ahead(pages);
        'pages: while let Some(chunk) = pages.recv().await {
            for page in chunk {
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

/// Writes the events of `segments` (from [`pull_json`](SyncBackend::pull_json): each
/// event's JSON as the segment holds it, as `serde_json` writes it), up to `head`, counting
/// them in `written`. Where the stream fails or ends before `head`, it stops there: the
/// caller pulls the rest. Fails only when the file cannot be written.
async fn write_json<W: Write>(
    segments: JsonSegments,
    out: &mut W,
    head: GlobalSeq,
    written: &mut u64,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(), ExportWriteError> {
    let (mut segments, _pulling) = pull_ahead(segments);
    while let Some(chunk) = segments.recv().await {
        for segment in chunk {
            let segment = match segment {
                Ok(segment) => segment,
                Err(error) => {
                    tracing::warn!(%error, at = *written, "reading the log's segments as JSON stopped; pulling from there");
                    return Ok(());
                }
            };
            // `pull_json` checks that each segment follows the one before from `e1`, and
            // `decode_json` the numbering inside it: this only guards the count.
            if segment.header.first != GlobalSeq(*written + 1) {
                return Ok(());
            }
            for json in segment.events() {
                out.write_all(if *written == 0 { b"\n" } else { b",\n" })?;
                out.write_all(json)?;
                *written += 1;
                if *written == head.0 {
                    return Ok(());
                }
            }
        }
        progress(*written, head.0);
    }
    Ok(())
}

/// Items a read delivers ahead of their consumer, in chunks of what was ready at once.
const CHUNKS_AHEAD: usize = 2;

/// The most items in one chunk: about a pack's segments, so that the consumer wakes once a
/// pack rather than once a segment.
const CHUNK_ITEMS: usize = 64;

/// Runs `items` as a task of its own that sends them into the channel returned, in chunks
/// of those ready at once (at most [`CHUNK_ITEMS`]), at most [`CHUNKS_AHEAD`] chunks ahead,
/// and stops after an error; the task is aborted when the guard returned is dropped.
fn pull_ahead<T: Send + 'static>(
    items: futures::stream::BoxStream<'static, Result<T, BackendError>>,
) -> (
    tokio::sync::mpsc::Receiver<Vec<Result<T, BackendError>>>,
    AbortOnDrop,
) {
    let (sender, receiver) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
    let task = tokio::spawn(async move {
        let mut chunks = items.ready_chunks(CHUNK_ITEMS);
        while let Some(chunk) = chunks.next().await {
            let failed = chunk.iter().any(Result::is_err);
            if sender.send(chunk).await.is_err() || failed {
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

    /// A backend that has no `pull_json`: the export pulls every event.
    #[derive(Debug)]
    struct PullOnly(SegmentLog);

    #[async_trait::async_trait]
    impl SyncBackend for PullOnly {
        async fn push(&self, batch: Vec<crate::GlobalEvent>) -> Result<(), BackendError> {
            self.0.push(batch).await
        }
        async fn pull(
            &self,
            cursor: GlobalSeq,
            live: bool,
        ) -> Result<crate::PullStream, BackendError> {
            self.0.pull(cursor, live).await
        }
        async fn head(&self) -> Result<GlobalSeq, BackendError> {
            self.0.head().await
        }
        async fn ping(&self) -> Result<(), BackendError> {
            self.0.ping().await
        }
        async fn backend_id(&self) -> Result<String, BackendError> {
            self.0.backend_id().await
        }
        fn info(&self) -> crate::BackendInfo {
            self.0.info()
        }
    }

    async fn export_of(backend: &dyn SyncBackend) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_export(backend, &mut bytes, "s", "t", &mut |_, _| ())
            .await
            .unwrap();
        bytes
    }

    #[tokio::test]
    async fn test_the_export_from_packs_and_segments_as_json_is_the_export_of_the_pull() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let config = SegmentLogConfig {
            page_events: 3,
            pack_window_events: 4,
            pack_fanout: 2,
            ..SegmentLogConfig::default()
        };
        let open =
            || SegmentLog::new(store.clone(), Default::default(), "s", config.clone()).unwrap();
        let writer = open();
        let mut events: Vec<_> = (1..=23).map(test_event).collect();
        events[5].args = serde_json::json!({"n": [1.5, -2, null], "s": "é\n\"", "b": {}});
        for chunk in events.chunks(2) {
            writer.push(chunk.to_vec()).await.unwrap();
        }
        let report = writer.compact().await.unwrap();
        assert!(report.written >= 2 && report.merged >= 1, "{report:?}");
        let pulled = export_of(&PullOnly(open())).await;
        let mut read = Vec::new();
        read_export(&pulled[..], 1 << 20, &mut |e| {
            read.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(read, events);
        assert_eq!(export_of(&open()).await, pulled);

        // A damaged pack stops the JSON read there; the pull goes on from the last event
        // written (reading the segments of the pack it refuses): the same file.
        let paths = open().log_paths().await.unwrap();
        let packs: Vec<_> = {
            use futures::TryStreamExt;
            use object_store::ObjectStore;
            store
                .list(Some(paths.packs_dir()))
                .map_ok(|meta| meta.location)
                .try_collect()
                .await
                .unwrap()
        };
        let last = packs.iter().max().unwrap().clone();
        {
            use object_store::ObjectStoreExt as _;
            store.put(&last, b"not a pack".to_vec().into()).await
        }
        .unwrap();
        assert_eq!(export_of(&open()).await, pulled);
    }

    #[tokio::test]
    async fn test_the_head_pull_json_finds_is_the_backends_head() {
        // Listed in key order (`memory`: the chain of packs is read as the listing settles
        // it) and not assumed to be (unnamed: read once the listing ends).
        for kind in ["memory", "object_store"] {
            the_head_pull_json_finds_is_the_backends_head(kind).await;
        }
    }

    async fn the_head_pull_json_finds_is_the_backends_head(kind: &str) {
        let store = Arc::new(object_store::memory::InMemory::new());
        let config = SegmentLogConfig {
            pack_window_events: 4,
            pack_fanout: 2,
            ..SegmentLogConfig::default()
        };
        let open = || {
            SegmentLog::new(store.clone(), Default::default(), "s", config.clone())
                .unwrap()
                .with_description(kind, "memory://")
        };
        let writer = open();
        let head_of = || async {
            let log = open();
            let json = log.pull_json().await.unwrap().unwrap();
            let events: usize = {
                use futures::TryStreamExt;
                let segments: Vec<_> = json.segments.try_collect().await.unwrap();
                segments.iter().map(|s| s.events().count()).sum()
            };
            (json.head, events as u64, open().head().await.unwrap())
        };
        // Empty; segments only; packs and the segments after them (a window is packed once
        // the log goes on past it, so a segment always follows the last pack).
        assert_eq!(head_of().await, (GlobalSeq(0), 0, GlobalSeq(0)));
        let events: Vec<_> = (1..=11).map(test_event).collect();
        for chunk in events[..6].chunks(2) {
            writer.push(chunk.to_vec()).await.unwrap();
        }
        assert_eq!(head_of().await, (GlobalSeq(6), 6, GlobalSeq(6)));
        writer.push(events[6..8].to_vec()).await.unwrap();
        let report = writer.compact().await.unwrap();
        assert_eq!(report.packed_through, 4, "{report:?}");
        assert_eq!(head_of().await, (GlobalSeq(8), 8, GlobalSeq(8)));
        writer.push(events[8..].to_vec()).await.unwrap();
        assert_eq!(head_of().await, (GlobalSeq(11), 11, GlobalSeq(11)));
    }

    #[tokio::test]
    async fn test_an_empty_log_exports_a_valid_empty_file() {
        let (header, bytes) = export(&log()).await;
        assert_eq!(header.event_count, 0);
        let back = read_export(&bytes[..], 1 << 20, &mut |_| Ok(())).unwrap();
        assert_eq!(back.event_count, 0);
    }
}
