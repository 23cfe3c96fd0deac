//! One leader per data dir and store: an exclusive OS file lock on `{dir}/lock`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, ErrorKind};

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Takes the lock of `dir`, waiting up to `timeout` (with one log line) while another
/// process holds it.
pub(crate) async fn lock_dir(dir: &Path, timeout: Duration) -> Result<DirLock, Error> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| {
            Error::new(
                ErrorKind::Invalid,
                format!("cannot open lock file {}: {error}", path.display()),
            )
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
                    format!("cannot lock {}: {error}", path.display()),
                ));
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
