//! Pass 1 of an import ([`check_file`]): the whole file read and checked on two threads, and,
//! when pass 2 can take it, the [`Plan`] of its batches.
//!
//! The reading thread parses each event and makes the reader's checks (JSON, numbering,
//! parents, size); it copies each accepted event's bytes into a job, framed as a segment
//! holds them, and hands the job to a checking thread, which decodes every event's args
//! under the schema ([`ArgsChecks::on_json`]) and, for a planned batch, takes the SHA-256 of
//! its framed events. The first bad event is the one reported, whichever thread found it:
//! the checking thread only sees events the reader accepted, so a refusal there always comes
//! before the reader's own fault, if any.
//!
//! **The plan.** Each job of a file whose events are all in the form `serde_json` writes
//! ([`RawEvent::canonical`]: no raw newline inside), one newline between two events of a
//! batch, is a batch of pass 2: its file range, first event, count, writer client id and the
//! SHA-256 of its framed events. Pass 2 ([`replay`](super::replay)) then reads each range,
//! splits it at its newlines and frames the pieces, and writes a batch only when its SHA-256
//! is the one taken here: the bytes written are the bytes checked, so pass 2 does not make
//! the checks again. A file in any other shape has no plan: pass 2 reads and checks it again.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use sha2::{Digest as _, Sha256};

use super::{ArgsChecks, BatchLimits, ImportError, ImportPhase, Progress, open, to_event};
use crate::GlobalSeq;
use crate::export::read_export_raw;
use crate::export::{EventProblem, ExportFileError, ExportHeader, RawEvent, Rejected};
use crate::segment::MAX_OVERHEAD_LEN;

/// Jobs queued between the two threads (each one batch, up to a segment's bytes).
const JOBS_IN_FLIGHT: usize = 4;

/// The batches of pass 2, as pass 1 read them.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// In file order.
    pub batches: Vec<PlannedBatch>,
}

/// One batch of pass 2.
#[derive(Debug, Clone)]
pub(super) struct PlannedBatch {
    /// The file offsets of its first event's first byte and past its last event's last.
    pub range: Range<u64>,
    /// Its first event.
    pub first: GlobalSeq,
    /// Its events.
    pub count: u32,
    /// Its first event's client id (the segment's writer).
    pub client_id: String,
    /// SHA-256 of its events framed as a segment holds them
    /// ([`FramedEvents::framed`](crate::segment::FramedEvents::framed)).
    pub digest: [u8; 32],
}

/// Where an event's name is in a [`Job`].
#[derive(Debug, Clone)]
enum NameAt {
    /// In `framed` (the name as the file writes it, no escape).
    Framed(Range<usize>),
    /// In `names` (unescaped).
    Side(Range<usize>),
}

/// One event whose args the checking thread decodes.
#[derive(Debug, Clone)]
struct Queued {
    index: u64,
    seq: GlobalSeq,
    name: NameAt,
    args: Range<usize>,
}

/// What the reading thread hands the checking thread: consecutive accepted events.
#[derive(Debug, Default)]
struct Job {
    /// The events framed: each a 4-byte little-endian length and its bytes in the file.
    framed: Vec<u8>,
    /// Names that held an escape, unescaped.
    names: String,
    events: Vec<Queued>,
    /// The batch it is, while the file can still be planned.
    batch: Option<BatchStart>,
    /// Its last event's end in the file.
    end: u64,
}

/// What a planned batch knows of its first event.
#[derive(Debug, Clone)]
struct BatchStart {
    offset: u64,
    first: GlobalSeq,
    client_id: String,
}

impl Job {
    fn clear(&mut self) {
        self.framed.clear();
        self.names.clear();
        self.events.clear();
        self.batch = None;
        self.end = 0;
    }
}

/// What the checking thread found.
#[derive(Debug, Default)]
struct Checked {
    batches: Vec<PlannedBatch>,
    /// The first event it refused.
    refused: Option<ExportFileError>,
}

/// Pass 1: reads the whole file at `path` with every check (see the module doc); returns its
/// header and, when `plan` gives pass 2's limits and the file can be planned, the [`Plan`].
/// Blocking: run it on a blocking thread.
pub(super) fn check_file(
    path: &Path,
    max_event_bytes: usize,
    checks: &ArgsChecks,
    progress: Option<&Progress>,
    plan: Option<BatchLimits>,
) -> Result<(ExportHeader, Option<Plan>), ImportError> {
    let file = open(path)?;
    let (jobs_in, jobs_out) = sync_channel::<Job>(JOBS_IN_FLIGHT);
    let (spent_in, spent_out) = sync_channel::<Job>(JOBS_IN_FLIGHT + 2);
    let on_json = checks.on_json.clone();
    std::thread::scope(|scope| {
        let checker = scope.spawn(move || check_jobs(jobs_out, spent_in, on_json));
        let mut reading = Reading {
            limits: plan,
            planned: plan.is_some(),
            job: Job::default(),
            bytes: MAX_OVERHEAD_LEN,
            previous_newlines: 0,
            jobs: jobs_in,
            spent: spent_out,
        };
        let mut checked = 0u64;
        let read = read_export_raw(file, max_event_bytes, &mut |raw| {
            reading.take(checked, raw)?;
            if let Some(check) = &checks.on_event {
                check(&to_event(raw)?).map_err(Rejected::Event)?;
            }
            checked += 1;
            if let Some(progress) = progress.filter(|_| checked.is_multiple_of(1024)) {
                progress(ImportPhase::Checking, checked);
            }
            Ok(())
        });
        // The events taken so far are checked too, even when the read failed after them: a
        // refusal among them comes first.
        let planned = reading.planned;
        reading.finish();
        let found = checker.join().map_err(|_| ImportError::Internal {
            message: "the args checking thread panicked".into(),
        })?;
        let file_error = |error| ImportError::File {
            path: PathBuf::from(path),
            error,
        };
        if let Some(refused) = found.refused {
            return Err(file_error(refused));
        }
        let header = read.map_err(file_error)?;
        if let Some(progress) = progress {
            progress(ImportPhase::Checking, checked);
        }
        let plan = planned.then_some(Plan {
            batches: found.batches,
        });
        Ok((header, plan))
    })
}

/// The reading thread's side: accepted events into jobs.
struct Reading {
    limits: Option<BatchLimits>,
    /// Whether the file can still be planned.
    planned: bool,
    job: Job,
    /// The segment bytes of the job's events, with a segment's largest overhead.
    bytes: usize,
    /// `newlines_before` of the last event taken.
    previous_newlines: u64,
    jobs: SyncSender<Job>,
    spent: Receiver<Job>,
}

impl Reading {
    /// Adds the event at `index` to the job, handing the job on first when the event starts
    /// another batch.
    fn take(&mut self, index: u64, raw: &RawEvent<'_>) -> Result<(), Rejected> {
        let size = 4 + raw.json.len();
        let limits = self.limits.unwrap_or(BatchLimits {
            events: 1000,
            bytes: usize::MAX,
        });
        if !raw.canonical {
            self.planned = false;
        }
        if limits.full(self.job.events.len(), self.bytes, size) {
            self.send()?;
        }
        let starts = self.job.events.is_empty();
        if !starts && raw.newlines_before - self.previous_newlines != 1 {
            // Pass 2 could not split the batch at its newlines.
            self.planned = false;
        }
        self.previous_newlines = raw.newlines_before;
        if starts && self.planned {
            self.job.batch = Some(BatchStart {
                offset: raw.offset,
                first: raw.seq_num,
                client_id: raw.client_id.clone().into_owned(),
            });
        }
        let len = u32::try_from(raw.json.len())
            .map_err(|_| Rejected::Event("it is over 4 GiB".into()))?;
        let framed = &mut self.job.framed;
        framed.extend_from_slice(&len.to_le_bytes());
        let json_at = framed.len();
        framed.extend_from_slice(raw.json);
        // The name and args are slices of the event's bytes, or (a name with an escape)
        // a string of their own.
        let within = |part: &str| {
            let start = json_at + (part.as_ptr() as usize - raw.json.as_ptr() as usize);
            start..start + part.len()
        };
        let inside = |part: &str| {
            let (start, end) = (part.as_ptr() as usize, raw.json.as_ptr() as usize);
            start >= end && start + part.len() <= end + raw.json.len()
        };
        let name = if inside(&raw.name) {
            NameAt::Framed(within(&raw.name))
        } else {
            let start = self.job.names.len();
            self.job.names.push_str(&raw.name);
            NameAt::Side(start..self.job.names.len())
        };
        if !inside(raw.args) {
            return Err(Rejected::Event(
                "its args are not in its bytes (a bug)".into(),
            ));
        }
        self.job.events.push(Queued {
            index,
            seq: raw.seq_num,
            name,
            args: within(raw.args),
        });
        self.job.end = raw.offset + raw.json.len() as u64;
        self.bytes += size;
        Ok(())
    }

    /// Hands the job to the checking thread and starts another.
    fn send(&mut self) -> Result<(), Rejected> {
        let mut next = self.spent.try_recv().unwrap_or_default();
        next.clear();
        let mut job = std::mem::replace(&mut self.job, next);
        if !self.planned {
            job.batch = None;
        }
        self.bytes = MAX_OVERHEAD_LEN;
        // A closed channel: the checking thread is gone (it panicked).
        self.jobs.send(job).map_err(|_| Rejected::Stop)
    }

    /// Hands on the last job and closes the channel.
    fn finish(mut self) {
        if !self.job.events.is_empty() {
            let _ = self.send();
        }
    }
}

/// The checking thread: every event's args, and each planned batch's digest.
fn check_jobs(
    jobs: Receiver<Job>,
    spent: SyncSender<Job>,
    on_json: Option<super::ArgsJsonCheck>,
) -> Checked {
    let mut found = Checked::default();
    for job in jobs {
        if found.refused.is_some() {
            continue;
        }
        if let Some(check) = &on_json {
            for event in &job.events {
                let name = match &event.name {
                    NameAt::Framed(range) => text(&job.framed[range.clone()]),
                    NameAt::Side(range) => Some(&job.names[range.clone()]),
                };
                let args = text(&job.framed[event.args.clone()]);
                let (Some(name), Some(args)) = (name, args) else {
                    found.refused = Some(refused(event, "it is not UTF-8 (a bug)".into()));
                    break;
                };
                if let Err(message) = check(name, args) {
                    found.refused = Some(refused(event, message));
                    break;
                }
            }
            if found.refused.is_some() {
                continue;
            }
        }
        if let Some(start) = &job.batch {
            found.batches.push(PlannedBatch {
                range: start.offset..job.end,
                first: start.first,
                count: job.events.len() as u32,
                client_id: start.client_id.clone(),
                digest: Sha256::digest(&job.framed).into(),
            });
        }
        // The reading thread reuses the buffers; it may have stopped taking them.
        let _ = spent.try_send(job);
    }
    found
}

/// The bytes as the text they were read as (the reader took them from a `&str`).
fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

fn refused(event: &Queued, message: String) -> ExportFileError {
    ExportFileError::Event {
        index: event.index,
        seq: Some(event.seq),
        problem: EventProblem::Refused { message },
    }
}
