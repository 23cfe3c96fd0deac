//! Where the leader actor runs: a task on the caller's runtime, or an OS thread with a
//! runtime of its own (see [`Tuning::leader_thread`](crate::settings::Tuning::leader_thread)).

use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind};

/// The running leader, as the store handle holds it (see [`Tuning::leader_thread`]).
pub(crate) enum LeaderTask {
    /// A task on the caller's runtime.
    Inline(tokio::task::JoinHandle<()>),
    /// An OS thread with a runtime of its own.
    Thread {
        /// Stops the actor at its next await, as a cancelled task would be.
        abort: oneshot::Sender<()>,
        /// Fires (or is dropped) when the thread has dropped the actor.
        done: oneshot::Receiver<()>,
    },
}

impl LeaderTask {
    pub(super) fn thread(
        run: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<LeaderTask, Error> {
        let (abort, abort_rx) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("eventsync-leader".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "the leader's runtime did not start");
                        return;
                    }
                };
                runtime.block_on(async move {
                    // Only an explicit abort stops it; a dropped handle leaves it running
                    // until its command channel closes, as the inline task does.
                    let aborted = async {
                        if abort_rx.await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        biased;
                        () = aborted => {}
                        () = run => {}
                    }
                });
                drop(runtime);
                let _ = done_tx.send(());
            })
            .map_err(|error| {
                Error::new(ErrorKind::Internal, "starting the leader's thread").with_source(error)
            })?;
        Ok(LeaderTask::Thread { abort, done })
    }

    /// Waits until the leader has stopped (after a shutdown or a close).
    pub(crate) async fn join(self) -> Result<(), Error> {
        match self {
            LeaderTask::Inline(task) => task.await.map_err(|error| {
                Error::new(ErrorKind::Internal, "the leader's task failed").with_source(error)
            }),
            LeaderTask::Thread { abort, done } => {
                let _keep_running = abort;
                let _ = done.await;
                Ok(())
            }
        }
    }

    /// Stops the leader at whatever it was awaiting and waits until it has been dropped.
    pub(crate) async fn abort(self) {
        match self {
            LeaderTask::Inline(task) => {
                task.abort();
                let _ = task.await;
            }
            LeaderTask::Thread { abort, done } => {
                let _ = abort.send(());
                let _ = done.await;
            }
        }
    }
}
