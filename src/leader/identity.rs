//! The backend's identity, as the leader sees it: the id recorded in `eventlog.db` against
//! the one the backend has now. [`reconcile_backend_id`] is the one place that applies
//! [`OnBackendIdMismatch`], at open ([`check_at_open`]) and while the leader runs
//! ([`Leader::on_backend_id`]), so both give the same outcome.
//!
//! While it runs, the leader hears of a changed store from the backend: a push or its live
//! pull fails with [`BackendError::BackendIdMismatch`]. It then stops pushing, drops what
//! the pull delivers, and once no push is in flight has the pull task re-read the id
//! ([`SyncBackend::backend_id`], which moves the backend to the new store and recreates a
//! missing `store.json`). The id that comes back goes through [`reconcile_backend_id`].
//!
//! [`BackendError::BackendIdMismatch`]: eventsync_backends::BackendError::BackendIdMismatch

use std::sync::Arc;

use eventsync_backends::{BackendError, GlobalEvent, GlobalSeq, SyncBackend};

use super::db::LeaderDb;
use super::reseed::ReseedError;
use super::{Leader, TaskDone, db_error};
use crate::error::{Error, ErrorKind};
use crate::schema::Schema;
use crate::seq::EventSeq;
use crate::settings::OnBackendIdMismatch;
use crate::sync_state::SyncState;

/// What [`reconcile_backend_id`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reconciled {
    /// The recorded id is the backend's.
    Unchanged,
    /// No id was recorded (the first contact with the backend); it is now.
    Recorded,
    /// `reset`: the local data was deleted and the new id recorded. `notice` says so.
    Reset { notice: String },
    /// `ignore`: the new id was recorded; the confirmed events must go to the new store.
    Ignored,
}

/// Compares the `recorded` backend id with the backend's `current` one and applies `policy`
/// when they differ. The only place [`OnBackendIdMismatch`] is applied. `shutdown` is an
/// error of kind [`ErrorKind::Closed`], naming both ids.
pub(crate) fn reconcile_backend_id(
    db: &mut LeaderDb,
    schema: &Schema,
    policy: OnBackendIdMismatch,
    recorded: Option<&str>,
    current: &str,
) -> Result<Reconciled, Error> {
    let known = match recorded {
        None => {
            db.set_backend_id(current).map_err(db_error)?;
            return Ok(Reconciled::Recorded);
        }
        Some(known) if known == current => return Ok(Reconciled::Unchanged),
        Some(known) => known,
    };
    let change = format!(
        "the backend's id changed from {known} to {current}: the store was wiped and recreated"
    );
    match policy {
        OnBackendIdMismatch::Reset => {
            tracing::warn!("{change}; clearing local data and following the new store");
            db.reset(schema, current).map_err(db_error)?;
            Ok(Reconciled::Reset {
                notice: format!(
                    "{change}; local data was reset to follow the new store (on_backend_id_mismatch = reset): open a new session"
                ),
            })
        }
        OnBackendIdMismatch::Shutdown => Err(Error::new(
            ErrorKind::Closed,
            format!("{change}; local data kept, store stopped (on_backend_id_mismatch = shutdown)"),
        )),
        OnBackendIdMismatch::Ignore => {
            tracing::warn!("{change}; keeping local data and carrying on in the new store");
            db.set_backend_id(current).map_err(db_error)?;
            Ok(Reconciled::Ignored)
        }
    }
}

/// Where the leader starts with the backend's identity, from [`check_at_open`].
pub(crate) struct AtOpen {
    /// The recorded (now reconciled) backend id.
    pub backend_id: Option<String>,
    /// Whether the backend's id was read and reconciled: until it is, nothing is pushed.
    pub verified: bool,
    /// `ignore` applied: the confirmed events must first go to the new store.
    pub reseed: bool,
}

/// At open: reads the backend's id and reconciles it with the recorded one. An unreachable
/// backend does not stop the open (the pull task reads the id later); `shutdown` does.
pub(crate) async fn check_at_open(
    db: &mut LeaderDb,
    schema: &Schema,
    policy: OnBackendIdMismatch,
    backend: Option<&Arc<dyn SyncBackend>>,
) -> Result<AtOpen, Error> {
    let (_, recorded) = db.sync_status().map_err(db_error)?;
    let unverified = |backend_id| AtOpen {
        backend_id,
        verified: false,
        reseed: false,
    };
    let Some(backend) = backend else {
        return Ok(unverified(recorded));
    };
    match backend.backend_id().await {
        Ok(current) => {
            let outcome = reconcile_backend_id(db, schema, policy, recorded.as_deref(), &current)?;
            Ok(AtOpen {
                backend_id: Some(current),
                verified: true,
                reseed: outcome == Reconciled::Ignored,
            })
        }
        // A transient failure is routine for a local-first store (offline is normal):
        // `sync()` reports it to whoever waits, so it is not a warning.
        Err(error) if error.is_retryable() => {
            tracing::info!(%error, "backend unreachable at open; syncing will retry");
            Ok(unverified(recorded))
        }
        Err(error) => {
            tracing::warn!(%error, "backend refused the open; syncing will retry");
            Ok(unverified(recorded))
        }
    }
}

/// Where a running leader stands with the backend's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Identity {
    /// Not compared with the backend yet (it was unreachable at open): the pull task reads
    /// the id first; nothing is pushed until then.
    Unverified,
    /// The recorded id is the backend's: push and pull as usual.
    Verified,
    /// The backend reported another store. Nothing is pushed and pulled pages are dropped;
    /// once no push is in flight the pull task is asked to re-read the id (`requested`).
    Recheck { requested: bool },
    /// `ignore` applied: the confirmed events are being put into the new store. Nothing
    /// else is pushed and pulled pages are dropped until that is done.
    Reseeding,
}

impl Leader {
    /// The backend says the store is not the one this leader works with (a push or the pull
    /// failed with `BackendIdMismatch`).
    pub(super) fn on_identity_lost(&mut self, error: &BackendError) {
        let Some(online) = &mut self.online else {
            return;
        };
        if matches!(online.identity, Identity::Recheck { .. }) {
            return;
        }
        tracing::warn!(%error, "the backend's store changed; re-reading its id");
        online.identity = Identity::Recheck { requested: false };
        self.drop_held();
    }

    /// Asks the pull task to re-read the backend's id, once no push is in flight (a push
    /// must not land in the new store before the leader reconciled with it).
    pub(super) fn maybe_recheck(&mut self) {
        let Some(online) = &mut self.online else {
            return;
        };
        if online.identity == (Identity::Recheck { requested: false }) && !online.push_in_flight {
            online.identity = Identity::Recheck { requested: true };
            self.restart_pull_with(true, false);
        }
    }

    /// The backend's id, read by the pull task: reconcile it with the recorded one.
    pub(super) fn on_backend_id(&mut self, id: String) {
        // A reset rewrites both files in transactions of its own.
        self.make_durable();
        let Some(online) = &mut self.online else {
            return;
        };
        let recorded = online.backend_id.clone();
        let was = online.identity;
        let outcome = reconcile_backend_id(
            &mut self.db,
            &self.schema,
            self.tuning.on_backend_id_mismatch,
            recorded.as_deref(),
            &id,
        );
        match outcome {
            Err(error) => self.fail(error),
            Ok(Reconciled::Unchanged | Reconciled::Recorded) => {
                online.backend_id = Some(id);
                if was != Identity::Reseeding {
                    online.identity = Identity::Verified;
                }
                if matches!(was, Identity::Recheck { .. }) {
                    // Pages dropped while rechecking: read them again.
                    self.restart_pull_before_pushing();
                }
            }
            Ok(Reconciled::Reset { notice }) => {
                online.backend_id = Some(id);
                online.identity = Identity::Verified;
                self.reset_after_replacement(&notice);
            }
            Ok(Reconciled::Ignored) => {
                online.backend_id = Some(id);
                self.start_reseed();
            }
        }
    }

    /// `reset` while running: the database was reset by [`reconcile_backend_id`]; the
    /// leader's sync state follows it, sessions and waiting syncs are closed with `notice`
    /// (their read models hold the old state), and the pull starts over from the new store.
    fn reset_after_replacement(&mut self, notice: &str) {
        self.state = SyncState::at(EventSeq::ROOT);
        self.state_head = EventSeq::ROOT;
        self.drop_held();
        self.drop_lag();
        for waiter in self.waiters.drain(..) {
            let _ = waiter
                .reply
                .send(Err(Error::new(ErrorKind::Closed, notice.to_owned())));
        }
        // Dropping the links also tells the sessions' tasks to end once they have read this.
        for (_, link) in std::mem::take(&mut self.sessions) {
            let _ = link.sender.send(super::SessionMessage::Closed {
                reason: notice.to_owned(),
            });
        }
        if let Some(online) = &mut self.online {
            online.push_retry_at = None;
            online.push_backoff.reset();
        }
        self.restart_pull_before_pushing();
    }

    /// `ignore`: puts the events the old store had confirmed into the new one, in a task;
    /// [`Leader::on_reseeded`] takes over when it is done.
    pub(super) fn start_reseed(&mut self) {
        let confirmed = match self.confirmed_events() {
            Ok(confirmed) => confirmed,
            Err(error) => return self.fail(error),
        };
        let Some(online) = &mut self.online else {
            return;
        };
        online.identity = Identity::Reseeding;
        let max_events = self
            .tuning
            .push_batch_events
            .min(online.backend.info().capabilities.max_events_per_push)
            .max(1);
        let backend = online.backend.clone();
        let done = online.tasks_done.clone();
        let backoff = online.push_backoff.fork();
        tracing::info!(
            events = confirmed.len(),
            "putting this client's confirmed events into the new store"
        );
        self.io.spawn(async move {
            let result = super::reseed::reseed(backend, confirmed, max_events, backoff).await;
            let _ = done.send(TaskDone::Reseeded(result));
        });
    }

    /// The synced events the backend had confirmed, in wire form, ascending.
    fn confirmed_events(&self) -> Result<Vec<GlobalEvent>, Error> {
        let head = self.state.upstream_head.global;
        let base = self.db.base();
        if base > GlobalSeq::ZERO {
            // Its events up to the snapshot are in no local file: it cannot put them back.
            return Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "on_backend_id_mismatch = ignore cannot carry this store into the new one: \
                     it started from a snapshot at {base} and does not hold events e1 to {base} \
                     (use `reset`)"
                ),
            ));
        }
        Ok(self
            .db
            .all_events()
            .map_err(db_error)?
            .into_iter()
            .filter(|event| !event.is_client_only() && event.seq.global <= head)
            .map(|event| event.to_global())
            .collect())
    }

    /// The reseed task ended: carry on, re-read the id, or stop.
    pub(super) fn on_reseeded(&mut self, result: Result<(), ReseedError>) {
        let Some(online) = &mut self.online else {
            return;
        };
        match result {
            Ok(()) => {
                tracing::info!("the new store continues this client's log; syncing resumes");
                online.identity = Identity::Verified;
                self.restart_pull_before_pushing();
            }
            Err(ReseedError::Backend(error @ BackendError::BackendIdMismatch { .. })) => {
                online.identity = Identity::Verified;
                self.on_identity_lost(&error);
            }
            Err(ReseedError::Backend(error)) => self.fail(Error::from(error)),
            Err(ReseedError::Diverged { at }) => {
                let id = online.backend_id.clone().unwrap_or_default();
                self.fail(Error::new(
                    ErrorKind::Closed,
                    format!(
                        "the new store {id} holds other events than this client's log from {at} on, so it cannot carry on in it (on_backend_id_mismatch = ignore); local data kept, store stopped: reopen with on_backend_id_mismatch = reset to follow the new store"
                    ),
                ))
            }
        }
    }
}
