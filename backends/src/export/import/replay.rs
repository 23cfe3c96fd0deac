//! Pass 2 of an import along pass 1's [`Plan`]: each batch's range of the file read again,
//! split at its newlines (no event in the form `serde_json` writes holds a raw newline, and
//! pass 1 planned only batches with one newline between two events), framed, and handed on
//! only when its SHA-256 is the one pass 1 took of the same framed events. Nothing is parsed
//! or checked again: what is written is, byte for byte, what pass 1 checked. A file changed
//! in between fails with [`ImportError::Changed`] before its first changed batch is handed
//! on.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::check::{Plan, PlannedBatch};
use super::{ImportError, open};
use crate::GlobalSeq;
use crate::segment::FramedEvents;

/// Reads the batches of `plan` from the file at `path` and sends each one, framed, to
/// `batches`; stops early, without an error, when the receiver is gone (the pusher failed and
/// reports it).
pub(super) fn replay(
    path: &Path,
    plan: &Plan,
    batches: &mpsc::Sender<FramedEvents>,
) -> Result<(), ImportError> {
    let mut file = open(path)?;
    let mut region = Vec::new();
    for batch in &plan.batches {
        let changed = || ImportError::Changed {
            path: path.to_owned(),
            first: batch.first,
            last: GlobalSeq(batch.first.0 + u64::from(batch.count).saturating_sub(1)),
        };
        let len = usize::try_from(batch.range.end - batch.range.start).map_err(|_| changed())?;
        region.resize(len, 0);
        let read = file
            .seek(SeekFrom::Start(batch.range.start))
            .and_then(|_| file.read_exact(&mut region));
        if let Err(error) = read {
            return Err(match error.kind() {
                // Shorter than it was.
                std::io::ErrorKind::UnexpectedEof => changed(),
                _ => ImportError::Read {
                    path: path.to_owned(),
                    source: error,
                },
            });
        }
        let framed = frame(&region, batch).ok_or_else(changed)?;
        let digest: [u8; 32] = Sha256::digest(framed.framed()).into();
        if digest != batch.digest {
            return Err(changed());
        }
        if batches.blocking_send(framed).is_err() {
            break;
        }
    }
    Ok(())
}

/// The events of `region` (a batch's bytes in the file: its events, one newline between two)
/// framed as `batch` says they are numbered; `None` when they are not that.
fn frame(region: &[u8], batch: &PlannedBatch) -> Option<FramedEvents> {
    let mut framed = FramedEvents::with_capacity(region.len() + 4 * batch.count as usize);
    let mut seq = batch.first;
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', region).chain(std::iter::once(region.len()));
    for end in ends {
        // A piece is the separator's tail, an event, the next separator's head: whitespace
        // and a comma around a `{...}`.
        let piece = &region[start..end];
        start = end + 1;
        let skip = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\r' | b',');
        let from = piece.iter().position(|byte| !skip(byte))?;
        let to = piece.iter().rposition(|byte| !skip(byte))? + 1;
        let parent = GlobalSeq(seq.0.checked_sub(1)?);
        framed
            .push_written(seq, parent, &batch.client_id, &piece[from..to])
            .ok()?;
        seq = seq.next();
    }
    (framed.count() == batch.count).then_some(framed)
}
