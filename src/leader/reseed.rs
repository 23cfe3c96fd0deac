//! `on_backend_id_mismatch = ignore`: the leader keeps its data and carries on in a new
//! store, whose log must therefore continue this leader's. [`reseed`] puts the events the
//! old store had confirmed to this leader into the new store: it reads how much of them the
//! new store already holds (nothing after a wipe; all of them when another client that
//! ignores the change got there first), and pushes the rest. A new store that holds other
//! events is [`ReseedError::Diverged`].
//!
//! Cost: the confirmed events are held in memory once, and the new store is read up to as
//! many events. This runs once per wipe, not per sync.

use std::sync::Arc;

use eventsync_backends::{BackendError, GlobalEvent, GlobalSeq, PageInfo, SyncBackend};
use futures::StreamExt;

use super::pull::Backoff;
use crate::event::EncodedEvent;

/// Why a reseed stopped.
#[derive(Debug)]
pub(crate) enum ReseedError {
    /// The backend failed in a way retrying does not fix (or the store changed again).
    Backend(BackendError),
    /// The new store holds another event than this leader's at `at`.
    Diverged { at: GlobalSeq },
}

impl From<BackendError> for ReseedError {
    fn from(error: BackendError) -> ReseedError {
        ReseedError::Backend(error)
    }
}

/// Makes the new store's log begin with `confirmed` (events `e1 ..` in wire form), pushing
/// at most `max_events` per push. Transient failures and lost races are retried, after
/// `backoff` for the former.
pub(crate) async fn reseed(
    backend: Arc<dyn SyncBackend>,
    confirmed: Vec<GlobalEvent>,
    max_events: usize,
    mut backoff: Backoff,
) -> Result<(), ReseedError> {
    loop {
        match attempt(backend.as_ref(), &confirmed, max_events).await {
            Ok(()) => return Ok(()),
            // Another client pushed meanwhile: look again at what the store holds.
            Err(ReseedError::Backend(BackendError::ServerAhead { .. })) => {}
            Err(ReseedError::Backend(error)) if error.is_retryable() => {
                tracing::info!(%error, "putting events into the new store failed; retrying");
                tokio::time::sleep(backoff.next()).await;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn attempt(
    backend: &dyn SyncBackend,
    confirmed: &[GlobalEvent],
    max_events: usize,
) -> Result<(), ReseedError> {
    let held = agreed_prefix(backend, confirmed).await?;
    for batch in confirmed[held..].chunks(max_events.max(1)) {
        backend.push(batch.to_vec()).await?;
    }
    Ok(())
}

/// How many of `confirmed` the store already holds, from `e1`: they must be the same events
/// (number, name, args, client, session), or the store holds another log.
async fn agreed_prefix(
    backend: &dyn SyncBackend,
    confirmed: &[GlobalEvent],
) -> Result<usize, ReseedError> {
    if confirmed.is_empty() {
        return Ok(0);
    }
    let mut pages = backend.pull(GlobalSeq::ZERO, false).await?;
    let mut held = 0;
    while let Some(page) = pages.next().await {
        let page = page?;
        for event in page.events {
            let ours = EncodedEvent::from_global(confirmed[held].clone());
            if !EncodedEvent::from_global(event.clone()).is_same_as(&ours) {
                return Err(ReseedError::Diverged { at: event.seq_num });
            }
            held += 1;
            if held == confirmed.len() {
                return Ok(held);
            }
        }
        if page.page_info == PageInfo::NoMore {
            break;
        }
    }
    Ok(held)
}
