//! The layout of a data dir, in one place:
//!
//! ```text
//! {data_dir}/client-id              this client's id, made once (see `kept_client_id`)
//! {data_dir}/{store_id}/lock        held by the one leader of the store (an OS file lock)
//! {data_dir}/{store_id}/state.db    the read model: the user's tables, unconfirmed changesets
//! {data_dir}/{store_id}/eventlog.db the durable log: every event, the backend-confirmed head
//! ```
//!
//! The two databases are described in `leader/db.rs`; the store id was validated before it
//! names a folder here.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use eventsync_backends::{Entropy, StoreId};
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};

/// The file in a data dir that keeps the generated client id.
pub(crate) const CLIENT_ID_FILE: &str = "client-id";
/// The lock file in a store's folder.
pub(crate) const LOCK_FILE: &str = "lock";
/// The read model's database in a store's folder.
pub(crate) const STATE_DB: &str = "state.db";
/// The eventlog's database in a store's folder.
pub(crate) const EVENTLOG_DB: &str = "eventlog.db";

/// The folder of one store in a data dir: `{data_dir}/{store_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreDir {
    path: PathBuf,
}

impl StoreDir {
    /// The folder of store `store_id` in `data_dir` (nothing is created yet).
    pub(crate) fn new(data_dir: &Path, store_id: &StoreId) -> StoreDir {
        StoreDir {
            path: data_dir.join(store_id.as_str()),
        }
    }

    /// `{store}/state.db`.
    pub(crate) fn state_db(&self) -> PathBuf {
        self.path.join(STATE_DB)
    }

    /// `{store}/eventlog.db`.
    pub(crate) fn eventlog_db(&self) -> PathBuf {
        self.path.join(EVENTLOG_DB)
    }

    /// Creates the folder (and the data dir) when missing.
    pub(crate) fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.path).map_err(|error| {
            Error::invalid(format!("cannot create data dir {}", self.path.display()))
                .with_source(error)
        })
    }

    /// Takes the store's lock, waiting up to `timeout` (with one log line) while another
    /// process holds it: one leader per data dir and store.
    pub(crate) async fn lock(&self, timeout: Duration) -> Result<DirLock> {
        lock_dir(&self.path, timeout).await
    }
}

/// The client id kept in `{data_dir}/client-id`: read it, or on first use draw one (12
/// letters and digits) from `entropy` and write it there. A store opened without
/// [`StoreBuilder::with_client_id`](crate::StoreBuilder::with_client_id) uses it, and so does the command line, so both name a
/// data dir's client the same way.
pub fn kept_client_id(data_dir: &Path, entropy: &Entropy) -> Result<String> {
    let path = data_dir.join(CLIENT_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_owned();
            eventsync_backends::store_id::validate_store_id(&id).map_err(|_| {
                Error::invalid(format!(
                    "{}: invalid client id {}",
                    path.display(),
                    eventsync_backends::store_id::quote_id(&id)
                ))
            })?;
            Ok(id)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = entropy.alphanumeric(12);
            std::fs::write(&path, format!("{id}\n")).map_err(|error| {
                Error::invalid(format!("cannot write {}", path.display())).with_source(error)
            })?;
            Ok(id)
        }
        Err(error) => {
            Err(Error::invalid(format!("cannot read {}", path.display())).with_source(error))
        }
    }
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Takes the lock of `dir`, waiting up to `timeout` (with one log line) while another
/// process holds it.
async fn lock_dir(dir: &Path, timeout: Duration) -> Result<DirLock, Error> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| {
            Error::new(
                ErrorKind::Invalid,
                format!("cannot open lock file {}", path.display()),
            )
            .with_source(error)
        })?;
    let started = Instant::now();
    let mut warned = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(error)) => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    format!("cannot lock {}", path.display()),
                )
                .with_source(error));
            }
        }
        if started.elapsed() >= timeout {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "another eventsync process is using {} (waited {:.1?} for its lock); stop it or use another --data-dir",
                    dir.display(),
                    timeout
                ),
            ));
        }
        if !warned {
            tracing::warn!(dir = %dir.display(), "waiting for another eventsync process to release this data dir");
            warned = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_kept_client_id_is_made_once_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let first = kept_client_id(dir.path(), &Entropy::seeded(1)).unwrap();
        assert_eq!(first.len(), 12);
        // Another draw would give another id: the kept one wins.
        let second = kept_client_id(dir.path(), &Entropy::seeded(2)).unwrap();
        assert_eq!(first, second);
        let kept = std::fs::read_to_string(dir.path().join("client-id")).unwrap();
        assert_eq!(kept.trim(), first);
    }

    #[test]
    fn test_kept_client_id_refuses_an_unsafe_id_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-id"), "../escape\n").unwrap();
        let error = kept_client_id(dir.path(), &Entropy::seeded(1)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert!(error.to_string().contains("client-id"), "{error}");
        assert!(error.to_string().contains("../escape"), "{error}");
    }
}
