//! [`import`]: checks a whole export file, then pushes it into a backend in batches.
//!
//! Two passes over the file, so nothing is written unless all of it is valid and memory
//! stays flat. Pass 1 (`check.rs`) reads it to the end with every check, building no event
//! (each is checked as the reader parsed it, its strings and args borrowed from the read
//! buffer), while a second thread decodes the args under the schema straight from their
//! JSON text. Pass 2 reads it again on a blocking thread that frames the events as a segment
//! holds them ([`FramedEvents`]: an event whose JSON in the file is what `serde_json` writes
//! for it, as an eventsync export writes it, keeps the file's bytes; any other is built and
//! written again, the same bytes as before) in batches within the backend's
//! [`Capabilities`](crate::Capabilities), and hands them, two at most in flight, to the
//! pushing task. For a file pass 1 could plan (every event in that form, one a line, as an
//! eventsync export writes them), pass 2 (`replay.rs`) takes pass 1's batches and writes
//! each only when the SHA-256 of its framed events is the one pass 1 took: the checks are
//! not made again, and a file changed in between fails ([`ImportError::Changed`]) before a
//! changed batch is written. Any other file is read and checked again in full in pass 2.
//!
//! Into a store that does not exist yet, or that `force` replaces, pass 2 writes through the
//! backend's [`BulkLoad`]: a new incarnation no client sees until the end, several segment
//! writes in flight, published (`store.json` created or overwritten) once all are written.
//! Interrupted, such an import leaves the store as it was. Into an existing empty store,
//! whose clients may push too, it pushes one batch after another.

mod check;
mod replay;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

#[cfg(test)]
use super::read_export;
use super::{ExportFileError, ExportHeader, RawEvent, Rejected, max_event_bytes, read_export_raw};
use crate::segment::{FramedEvents, MAX_OVERHEAD_LEN};
use crate::{BackendError, BulkLoad, GlobalEvent, GlobalSeq, SyncBackend};
use check::{Plan, check_file};

/// Checks an event's args, for example against a schema; the error says what is wrong.
pub type ArgsCheck = Arc<dyn Fn(&GlobalEvent) -> Result<(), String> + Send + Sync>;

/// [`ArgsCheck`] on the event's name and its args' JSON text as the file has them, so that
/// the check pass builds no [`GlobalEvent`] (the command line decodes the args under the
/// schema straight from the text).
pub type ArgsJsonCheck = Arc<dyn Fn(&str, &str) -> Result<(), String> + Send + Sync>;

/// Called with the events checked (pass 1) or pushed (pass 2) so far.
pub type Progress = Arc<dyn Fn(ImportPhase, u64) + Send + Sync>;

/// Which pass an import is in, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPhase {
    /// Reading the whole file and checking it.
    Checking,
    /// Pushing the events, `total` of them.
    Pushing {
        /// The events the file holds.
        total: u64,
    },
}

/// How to import.
#[derive(Clone, Default)]
pub struct ImportOptions {
    /// Replace a store that already has events, giving it a new backend id (clients of the
    /// old store then follow their `on_backend_id_mismatch` policy).
    pub force: bool,
    /// Check the file and the store, say what would be done, and write nothing.
    pub dry_run: bool,
    /// Checks each event's args.
    pub check_args: Option<ArgsCheck>,
    /// Checks each event's args from their JSON text (the command line passes the schema's
    /// decoder); cheaper than [`check_args`](Self::check_args), and both run when both are
    /// given.
    pub check_args_json: Option<ArgsJsonCheck>,
    /// Told how far the import got.
    pub progress: Option<Progress>,
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("force", &self.force)
            .field("dry_run", &self.dry_run)
            .field("check_args", &self.check_args.is_some())
            .field("check_args_json", &self.check_args_json.is_some())
            .finish_non_exhaustive()
    }
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// The file's header.
    pub file: ExportHeader,
    /// How many events the store held before.
    pub previous_head: u64,
    /// The store held events and was (or would be) replaced with a new backend id.
    pub replaces: bool,
    /// Nothing was written.
    pub dry_run: bool,
    /// The store's backend id before the import (`None` when the store did not exist or in
    /// a dry run of an empty store).
    pub previous_backend_id: Option<String>,
    /// The backend id the events went into (`None` in a dry run).
    pub backend_id: Option<String>,
    /// Events pushed.
    pub imported: u64,
    /// Pushes made.
    pub pushes: u64,
}

/// Why an import failed. Unless the variant says otherwise, nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened.
    #[error("opening {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid export; nothing was written.
    #[error("{}: {error}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        error: ExportFileError,
    },
    /// The store already has events and `force` was not given.
    #[error(
        "the store already holds {} events: import only fills an empty store (--force replaces the store, with a new backend id)",
        head.0
    )]
    NotEmpty {
        /// The store's head.
        head: GlobalSeq,
    },
    /// Another client pushed into the store while the import was pushing: the events
    /// before `imported` are in the store; run the import again with `force`.
    #[error(
        "another client wrote into the store during the import (its head is {head}) after {imported} imported events; run the import again with --force"
    )]
    Raced {
        /// The store's head when the push was refused.
        head: GlobalSeq,
        /// Events pushed before.
        imported: u64,
    },
    /// Another client created the store while the import was writing into a new one (a
    /// store that did not exist): nothing was imported, the store is that client's; run
    /// the import again (with `force` to replace what it wrote).
    #[error(
        "another client created the store during the import (backend id {backend_id}); nothing was imported: run the import again, with --force to replace what that client wrote"
    )]
    CreatedMeanwhile {
        /// The backend id of the store that client created.
        backend_id: String,
    },
    /// The backend failed. Events pushed before it are in the store (none when the import
    /// wrote into a new store: that one is not published); run the import again with
    /// `force`.
    #[error("after {imported} imported events: {source}")]
    Backend {
        /// Events pushed before.
        imported: u64,
        /// The backend's error.
        source: BackendError,
    },
    /// The file changed between the check and the push: events `first` to `last` are not
    /// the bytes that were checked. They were not written; the events before them were (in
    /// a new store, unpublished: the store is as it was).
    #[error(
        "{}: the file changed after it was checked: events {first} to {last} are not what was checked, and were not written; run the import again (with --force if events before them were imported)",
        path.display()
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// The first event of the batch that changed.
        first: GlobalSeq,
        /// Its last event.
        last: GlobalSeq,
    },
    /// The file could not be read again in the second pass.
    #[error("reading {} again: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A blocking reader thread failed to run (a bug).
    #[error("the file reader stopped: {message}")]
    Internal {
        /// What happened.
        message: String,
    },
}

impl ImportError {
    fn backend(source: BackendError) -> ImportError {
        ImportError::Backend {
            imported: 0,
            source,
        }
    }
}

/// Reads the whole file at `path` and checks it (see [`read_export`](super::read_export)),
/// each event's args with `checks` too; returns its header. On a blocking thread: call it
/// from async code. No event is built unless [`ArgsChecks::on_event`] needs one.
pub async fn validate_file(
    path: &Path,
    max_event_bytes: usize,
    checks: ArgsChecks,
    progress: Option<Progress>,
) -> Result<ExportHeader, ImportError> {
    let path = path.to_owned();
    run_blocking(move || {
        check_file(&path, max_event_bytes, &checks, progress.as_ref(), None)
            .map(|(header, _)| header)
    })
    .await
}

/// The checks of an event's args an import makes, besides the reader's own.
#[derive(Clone, Default)]
pub struct ArgsChecks {
    /// On the event built from the file.
    pub on_event: Option<ArgsCheck>,
    /// On its name and args' JSON text.
    pub on_json: Option<ArgsJsonCheck>,
}

impl std::fmt::Debug for ArgsChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgsChecks")
            .field("on_event", &self.on_event.is_some())
            .field("on_json", &self.on_json.is_some())
            .finish()
    }
}

impl ArgsChecks {
    fn of(options: &ImportOptions) -> ArgsChecks {
        ArgsChecks {
            on_event: options.check_args.clone(),
            on_json: options.check_args_json.clone(),
        }
    }

    /// Runs the checks on `raw`; `built` is the event made of it, when the caller made one.
    fn check(&self, raw: &RawEvent<'_>, built: Option<&GlobalEvent>) -> Result<(), Rejected> {
        if let Some(check) = &self.on_json {
            check(&raw.name, raw.args).map_err(Rejected::Event)?;
        }
        if let Some(check) = &self.on_event {
            match built {
                Some(event) => check(event),
                None => check(&to_event(raw)?),
            }
            .map_err(Rejected::Event)?;
        }
        Ok(())
    }
}

/// The event `raw` describes (the reader checked that its args parse).
fn to_event(raw: &RawEvent<'_>) -> Result<GlobalEvent, Rejected> {
    raw.to_event()
        .map_err(|e| Rejected::Event(format!("its args do not parse: {e}")))
}

/// Imports the export file at `path` into `backend`: checks all of it, refuses a store that
/// has events unless `options.force` (which replaces the store: a new backend id, the old
/// log left under the old id), then pushes the events in batches within the backend's
/// limits. A dry run stops after the checks and writes nothing.
///
/// Interrupted half way (a kill, a backend failure), the store holds a prefix of the file;
/// running the import again with `force` starts it over in a new store.
pub async fn import(
    backend: &dyn SyncBackend,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let capabilities = backend.info().capabilities;
    let event_limit = max_event_bytes(capabilities.max_bytes_per_push);
    let limits = BatchLimits::of(&capabilities);
    let (header, plan) = {
        let (path, checks) = (path.to_owned(), ArgsChecks::of(options));
        let progress = options.progress.clone();
        // A dry run writes nothing: no plan for pass 2.
        let plan = (!options.dry_run).then_some(limits);
        run_blocking(move || check_file(&path, event_limit, &checks, progress.as_ref(), plan))
            .await?
    };
    let plan = plan.map(Arc::new);
    // Asking for the head would create a missing store: ask whether it exists first.
    let exists = backend.exists().await.map_err(ImportError::backend)?;
    let head = if exists {
        backend.head().await.map_err(ImportError::backend)?
    } else {
        GlobalSeq::ZERO
    };
    if head > GlobalSeq::ZERO && !options.force {
        return Err(ImportError::NotEmpty { head });
    }
    let replaces = head > GlobalSeq::ZERO;
    let mut report = ImportReport {
        file: header,
        previous_head: head.0,
        replaces,
        dry_run: options.dry_run,
        previous_backend_id: None,
        backend_id: None,
        imported: 0,
        pushes: 0,
    };
    if options.dry_run {
        return Ok(report);
    }
    if exists {
        let current = backend.backend_id().await.map_err(ImportError::backend)?;
        report.previous_backend_id = Some(current);
    }
    // A store that does not exist yet, or that is replaced: the log is written where no
    // client sees it, several segments at once, and published at the end.
    let bulk = if !exists || replaces {
        backend.bulk_load().await.map_err(ImportError::backend)?
    } else {
        None
    };
    if let Some(load) = bulk {
        let mut sink = Sink::Bulk(load);
        push_file(&mut sink, backend, path, options, plan, &mut report).await?;
        let Sink::Bulk(load) = sink else {
            return Err(ImportError::Internal {
                message: "the bulk load went missing".into(),
            });
        };
        let id = load.publish(replaces).await.map_err(|error| match error {
            BackendError::BackendIdMismatch { found, .. } => ImportError::CreatedMeanwhile {
                backend_id: found.unwrap_or_default(),
            },
            source => ImportError::backend(source),
        })?;
        report.backend_id = Some(id);
        return Ok(report);
    }
    report.backend_id = Some(if replaces {
        backend
            .replace_store()
            .await
            .map_err(ImportError::backend)?
    } else {
        backend.backend_id().await.map_err(ImportError::backend)?
    });
    push_file(
        &mut Sink::Push(backend),
        backend,
        path,
        options,
        plan,
        &mut report,
    )
    .await?;
    Ok(report)
}

/// Where pass 2 puts the batches.
enum Sink<'a> {
    /// One push after another into the live store.
    Push(&'a dyn SyncBackend),
    /// Into an unpublished incarnation, several writes in flight (nothing is in the store
    /// until it is published).
    Bulk(Box<dyn BulkLoad>),
}

impl Sink<'_> {
    async fn push(&mut self, batch: FramedEvents, imported: u64) -> Result<(), ImportError> {
        match self {
            Sink::Push(backend) => {
                let events = batch.events().map_err(|error| ImportError::Backend {
                    imported,
                    source: BackendError::Invalid {
                        message: error.to_string(),
                    },
                })?;
                backend.push(events).await.map_err(|error| match error {
                    BackendError::ServerAhead { head } => ImportError::Raced { head, imported },
                    source => ImportError::Backend { imported, source },
                })
            }
            Sink::Bulk(load) => load.push_framed(batch).await.map_err(ImportError::backend),
        }
    }
}

/// Pass 2: reads the file again on a blocking thread, in batches (`plan`'s, when pass 1
/// made one), and puts each in `sink`.
async fn push_file(
    sink: &mut Sink<'_>,
    backend: &dyn SyncBackend,
    path: &Path,
    options: &ImportOptions,
    plan: Option<Arc<Plan>>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let capabilities = backend.info().capabilities;
    let limits = BatchLimits::of(&capabilities);
    let event_limit = max_event_bytes(capabilities.max_bytes_per_push);
    let (batches, mut received) = mpsc::channel::<FramedEvents>(2);
    let reader = {
        let path = path.to_owned();
        let checks = ArgsChecks::of(options);
        tokio::task::spawn_blocking(move || match plan {
            Some(plan) => replay::replay(&path, &plan, &batches),
            None => read_in_batches(&path, event_limit, limits, &checks, &batches).map(drop),
        })
    };
    let mut failure = None;
    while let Some(batch) = received.recv().await {
        let count = u64::from(batch.count());
        if let Err(error) = sink.push(batch, report.imported).await {
            failure = Some(error);
            break;
        }
        report.imported += count;
        report.pushes += 1;
        if let Some(progress) = &options.progress {
            progress(
                ImportPhase::Pushing {
                    total: report.file.event_count,
                },
                report.imported,
            );
        }
    }
    // Dropping the receiver stops a reader that is still going.
    drop(received);
    let read = reader.await.map_err(|e| ImportError::Internal {
        message: e.to_string(),
    })?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    read.map(drop)
}

/// The most events and bytes one push may carry.
#[derive(Debug, Clone, Copy)]
struct BatchLimits {
    events: usize,
    bytes: usize,
}

impl BatchLimits {
    fn of(capabilities: &crate::Capabilities) -> BatchLimits {
        BatchLimits {
            events: capabilities.max_events_per_push.max(1),
            bytes: capabilities.max_bytes_per_push,
        }
    }

    /// Whether a batch of `count` events, whose segment would hold `bytes`, is full before
    /// an event that adds `size` bytes (an empty batch takes any event): where pass 1 plans
    /// a batch to end and pass 2 ends one.
    fn full(&self, count: usize, bytes: usize, size: usize) -> bool {
        count > 0 && (count >= self.events || bytes + size > self.bytes)
    }
}

/// Reads the file and sends its events in batches within `limits`, each event framed as a
/// segment holds it: its JSON from the file as it is when that is what `serde_json` writes
/// for it ([`RawEvent::canonical`]), written again from the event built of it otherwise.
fn read_in_batches(
    path: &Path,
    event_limit: usize,
    limits: BatchLimits,
    checks: &ArgsChecks,
    batches: &mpsc::Sender<FramedEvents>,
) -> Result<ExportHeader, ImportError> {
    let file = open(path)?;
    let mut batch = FramedEvents::new();
    let mut bytes = MAX_OVERHEAD_LEN;
    let mut written = Vec::new();
    let header = read_export_raw(file, event_limit, &mut |raw| {
        checks.check(raw, None)?;
        let json = if raw.canonical {
            raw.json
        } else {
            written.clear();
            serde_json::to_writer(&mut written, &to_event(raw)?)
                .map_err(|e| Rejected::Event(format!("it does not encode: {e}")))?;
            written.as_slice()
        };
        let size = 4 + json.len();
        if limits.full(batch.count() as usize, bytes, size) {
            batches
                .blocking_send(std::mem::take(&mut batch))
                .map_err(|_| Rejected::Stop)?;
            bytes = MAX_OVERHEAD_LEN;
        }
        bytes += size;
        batch
            .push_written(raw.seq_num, raw.parent_seq_num, &raw.client_id, json)
            .map_err(|e| Rejected::Event(e.to_string()))
    });
    let header = header.map_err(|error| ImportError::File {
        path: path.to_owned(),
        error,
    })?;
    if !batch.is_empty() {
        // A closed channel means the pusher failed, and reports that itself.
        let _ = batches.blocking_send(batch);
    }
    Ok(header)
}

fn open(path: &Path) -> Result<std::fs::File, ImportError> {
    std::fs::File::open(path).map_err(|source| ImportError::Open {
        path: path.to_owned(),
        source,
    })
}

async fn run_blocking<T: Send + 'static>(
    body: impl FnOnce() -> Result<T, ImportError> + Send + 'static,
) -> Result<T, ImportError> {
    tokio::task::spawn_blocking(body)
        .await
        .map_err(|e| ImportError::Internal {
            message: e.to_string(),
        })?
}

#[cfg(test)]
mod tests;
