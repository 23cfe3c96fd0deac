//! One [`StoreHub`] per store: its backend, its backend id, the lock that serializes this
//! server's pushes, and the broadcast channel that feeds live pulls. A tail (one live
//! backend pull per store, running while anyone listens) publishes what other servers or
//! direct clients appended; this server's own pushes are published at once.
//!
//! Opening a hub only opens its backend: the backend id (which creates a missing store) is
//! read at the first pull or push, outside the lock of the hub map, so a slow backend or a
//! thousand stores opening at once do not wait on one another, and asking whether a store
//! exists creates nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use eventsync_backends::{BackendError, GlobalEvent, GlobalSeq, StoreId, SyncBackend};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::{OnceCell, broadcast};

use crate::config::Limits;
use crate::protocol::{ForStore, PageInfo, RpcError, pull_response, split_chunks};

/// Opens the backend of one store; the server calls it once per store id.
pub type Opener = Arc<
    dyn Fn(StoreId) -> BoxFuture<'static, Result<Arc<dyn SyncBackend>, BackendError>> + Send + Sync,
>;

/// Events that landed, as live pulls receive them.
#[derive(Debug)]
pub(crate) struct Landed {
    pub(crate) events: Vec<GlobalEvent>,
    /// When this server saw them land (RFC 3339).
    pub(crate) created_at: String,
}

/// How often an idle tail checks whether anyone still listens.
const TAIL_IDLE_CHECK: Duration = Duration::from_secs(2);
/// The pause before a failed tail pull is tried again.
const TAIL_RETRY: Duration = Duration::from_secs(1);

/// The state of one store on this server.
pub(crate) struct StoreHub {
    pub(crate) id: StoreId,
    backend: Arc<dyn SyncBackend>,
    /// The backend's identity, once read (`None` before the first pull or push).
    backend_id: Mutex<Option<String>>,
    /// Serializes the first read of the backend id.
    backend_id_read: tokio::sync::Mutex<()>,
    push_lock: tokio::sync::Mutex<()>,
    live: broadcast::Sender<Arc<Landed>>,
    /// Whether the tail task runs; checked and set together with subscribing.
    tail_running: Mutex<bool>,
}

impl std::fmt::Debug for StoreHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHub")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// `createdAt` of events that land now.
#[allow(
    clippy::disallowed_methods,
    reason = "createdAt is the wall-clock time an event landed, as LiveStore's server stamps it; it only labels events, nothing decides on it"
)]
fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where [`StoreHub::send_backlog`] puts each message; `false` means stop (the reader left).
pub(crate) trait Sink {
    fn send(&mut self, message: serde_json::Value) -> bool;
}

impl Sink for Vec<serde_json::Value> {
    fn send(&mut self, message: serde_json::Value) -> bool {
        self.push(message);
        true
    }
}

impl StoreHub {
    async fn open(
        id: StoreId,
        opener: &Opener,
        limits: &Limits,
    ) -> Result<Arc<StoreHub>, BackendError> {
        let backend = opener(id.clone()).await?;
        let (live, _) = broadcast::channel(limits.live_buffer);
        Ok(Arc::new(StoreHub {
            id,
            backend,
            backend_id: Mutex::new(None),
            backend_id_read: tokio::sync::Mutex::new(()),
            push_lock: tokio::sync::Mutex::new(()),
            live,
            tail_running: Mutex::new(false),
        }))
    }

    /// The id clients must hold: the backend's identity, read (creating a missing store) on
    /// first use.
    pub(crate) async fn backend_id(&self) -> Result<String, RpcError> {
        if let Some(id) = lock(&self.backend_id).clone() {
            return Ok(id);
        }
        let _reading = self.backend_id_read.lock().await;
        if let Some(id) = lock(&self.backend_id).clone() {
            return Ok(id);
        }
        let id = self.backend.backend_id().await.map_err(|e| {
            tracing::warn!(store = %self.id, error = %e, "cannot read the backend id");
            RpcError::unknown(format!("cannot read the store's backend id: {e}"))
        })?;
        *lock(&self.backend_id) = Some(id.clone());
        Ok(id)
    }

    /// Whether the store exists, without creating it (eventsync's `exists` RPC).
    pub(crate) async fn exists(&self) -> Result<bool, RpcError> {
        self.backend
            .exists()
            .await
            .map_err(|e| RpcError::unknown(format!("cannot tell whether the store exists: {e}")))
    }

    /// Decodes an RPC payload and checks it names this store.
    pub(crate) fn decode<T: serde::de::DeserializeOwned + ForStore>(
        &self,
        payload: serde_json::Value,
    ) -> Result<T, RpcError> {
        let request: T = serde_json::from_value(payload)
            .map_err(|e| RpcError::unknown(format!("bad request payload: {e}")))?;
        if request.store_id() != self.id.as_str() {
            return Err(RpcError::unknown(format!(
                "the payload's storeId differs from the URL's ({})",
                self.id
            )));
        }
        Ok(request)
    }

    /// Re-reads the backend's identity after the backend said the store changed.
    async fn refresh_backend_id(&self) -> Result<String, RpcError> {
        let _reading = self.backend_id_read.lock().await;
        match self.backend.backend_id().await {
            Ok(id) => {
                tracing::warn!(store = %self.id, backend_id = %id, "the store was replaced; new backend id");
                *lock(&self.backend_id) = Some(id.clone());
                Ok(id)
            }
            Err(e) => {
                tracing::warn!(store = %self.id, error = %e, "cannot re-read the backend id");
                Err(RpcError::unknown(format!(
                    "the store was replaced and its new backend id cannot be read: {e}"
                )))
            }
        }
    }

    /// Checks a client's backend id against ours.
    pub(crate) async fn check_backend_id(&self, received: &str) -> Result<(), RpcError> {
        let expected = self.backend_id().await?;
        if received == expected {
            Ok(())
        } else {
            Err(RpcError::BackendIdMismatch {
                expected,
                received: received.to_string(),
            })
        }
    }

    async fn mismatch_after(&self, received: Option<String>) -> RpcError {
        let old = lock(&self.backend_id).clone().unwrap_or_default();
        match self.refresh_backend_id().await {
            Ok(expected) => RpcError::BackendIdMismatch {
                expected,
                received: received.unwrap_or(old),
            },
            Err(e) => e,
        }
    }

    /// Appends `batch` through the backend (serialized on this server), publishes it to the
    /// live pulls, and maps the backend's refusal to LiveStore's errors.
    pub(crate) async fn push(
        &self,
        batch: Vec<GlobalEvent>,
        client_backend_id: Option<String>,
    ) -> Result<(), RpcError> {
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let provided = first.parent_seq_num;
        match &client_backend_id {
            Some(id) => self.check_backend_id(id).await?,
            // The store is created (and its id learned) before anything is appended to it.
            None => {
                self.backend_id().await?;
            }
        }
        let _serialized = self.push_lock.lock().await;
        match self.backend.push(batch.clone()).await {
            Ok(()) => {
                tracing::debug!(store = %self.id, events = batch.len(), head = %batch[batch.len() - 1].seq_num, "push");
                self.publish(batch);
                Ok(())
            }
            Err(BackendError::ServerAhead { head }) => {
                tracing::info!(store = %self.id, head = head.0, provided = provided.0, "ServerAheadError");
                Err(RpcError::ServerAhead {
                    minimum_expected: head,
                    provided,
                })
            }
            Err(BackendError::BackendIdMismatch { .. }) => {
                Err(self.mismatch_after(client_backend_id).await)
            }
            Err(BackendError::Invalid { message }) => match self.backend.head().await {
                // LiveStore's answer to a push whose parent is not the head, ahead included.
                Ok(head) if head != provided => {
                    tracing::info!(store = %self.id, head = head.0, provided = provided.0, "ServerAheadError");
                    Err(RpcError::ServerAhead {
                        minimum_expected: head,
                        provided,
                    })
                }
                _ => {
                    tracing::info!(store = %self.id, %message, "push refused");
                    Err(RpcError::unknown(format!("push refused: {message}")))
                }
            },
            Err(e) => {
                tracing::warn!(store = %self.id, error = %e, "push failed");
                Err(RpcError::unknown(format!("push failed: {e}")))
            }
        }
    }

    fn publish(&self, events: Vec<GlobalEvent>) {
        // No receiver is fine: nobody pulls live.
        let _ = self.live.send(Arc::new(Landed {
            events,
            created_at: now_rfc3339(),
        }));
    }

    /// A receiver of every event that lands from now on; starts the tail if it is not running.
    pub(crate) fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<Arc<Landed>> {
        let mut running = lock(&self.tail_running);
        let receiver = self.live.subscribe();
        if !*running {
            *running = true;
            tokio::spawn(Arc::clone(self).tail());
        }
        receiver
    }

    /// Follows the backend's log while anyone listens, publishing what lands.
    async fn tail(self: Arc<Self>) {
        let mut from = None;
        loop {
            let cursor = match from {
                Some(cursor) => cursor,
                None => match self.backend.head().await {
                    Ok(head) => head,
                    Err(e) => {
                        tracing::warn!(store = %self.id, error = %e, "tail: cannot read the head");
                        if self.stop_tail_if_idle() {
                            return;
                        }
                        tokio::time::sleep(TAIL_RETRY).await;
                        continue;
                    }
                },
            };
            from = Some(cursor);
            let mut stream = match self.backend.pull(cursor, true).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(store = %self.id, error = %e, "tail: pull failed");
                    if self.stop_tail_if_idle() {
                        return;
                    }
                    tokio::time::sleep(TAIL_RETRY).await;
                    continue;
                }
            };
            let mut idle_check = tokio::time::interval(TAIL_IDLE_CHECK);
            loop {
                tokio::select! {
                    page = stream.next() => match page {
                        Some(Ok(page)) => {
                            if let Some(last) = page.events.last() {
                                from = Some(last.seq_num);
                                self.publish(page.events);
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(store = %self.id, error = %e, "tail: live pull ended");
                            if matches!(e, BackendError::BackendIdMismatch { .. }) {
                                let _ = self.refresh_backend_id().await;
                                from = None;
                            }
                            tokio::time::sleep(TAIL_RETRY).await;
                            break;
                        }
                        None => break,
                    },
                    _ = idle_check.tick() => {
                        if self.stop_tail_if_idle() {
                            return;
                        }
                    }
                }
            }
        }
    }

    fn stop_tail_if_idle(&self) -> bool {
        let mut running = lock(&self.tail_running);
        if self.live.receiver_count() == 0 {
            *running = false;
            true
        } else {
            false
        }
    }

    /// Sends the events after `cursor` as pull responses of at most 100 events, the last
    /// one `NoMore`; an empty log still gets one empty `NoMore` chunk unless
    /// `skip_if_empty`. With a `budget` (bytes of events), stops after the chunk that
    /// reaches it, which then says `MoreKnown` (the caller pulls again from there): one HTTP
    /// answer never holds a whole large backlog. Returns the last event sent (or `cursor`);
    /// `None` when the sink refused a message.
    pub(crate) async fn send_backlog(
        &self,
        request_id: &str,
        cursor: GlobalSeq,
        skip_if_empty: bool,
        budget: Option<usize>,
        sink: &mut impl Sink,
    ) -> Result<Option<GlobalSeq>, RpcError> {
        let backend_id = self.backend_id().await?;
        let fail = |e: BackendError| RpcError::unknown(format!("pull failed: {e}"));
        let head = match self.backend.head().await {
            Ok(head) => head,
            Err(BackendError::BackendIdMismatch { .. }) => {
                return Err(self.mismatch_after(Some(backend_id)).await);
            }
            Err(e) => return Err(fail(e)),
        };
        tracing::debug!(store = %self.id, cursor = cursor.0, head = head.0, "pull: backlog");
        let mut stream = self.backend.pull(cursor, false).await.map_err(fail)?;
        let mut last = cursor;
        let mut sent_any = false;
        let mut spent = 0usize;
        while let Some(page) = stream.next().await {
            let page = match page {
                Ok(page) => page,
                Err(BackendError::BackendIdMismatch { .. }) => {
                    return Err(self.mismatch_after(Some(backend_id)).await);
                }
                Err(e) => return Err(fail(e)),
            };
            let page_done = page.page_info == eventsync_backends::PageInfo::NoMore;
            let chunks = split_chunks(&page.events);
            let count = chunks.len();
            for (i, events) in chunks.into_iter().enumerate() {
                last = events[events.len() - 1].seq_num;
                let end = page_done && i + 1 == count;
                let over = budget.is_some_and(|budget| {
                    spent += events
                        .iter()
                        .map(|event| serde_json::to_vec(event).map_or(0, |v| v.len()))
                        .sum::<usize>();
                    spent >= budget
                });
                let info = if end {
                    PageInfo::NoMore
                } else if head > last {
                    PageInfo::MoreKnown(head.0 - last.0)
                } else {
                    PageInfo::MoreUnknown
                };
                sent_any = true;
                tracing::debug!(store = %self.id, events = events.len(), last = last.0, page = ?info, "pull: chunk");
                let response = pull_response(events, None, info, &backend_id);
                if !sink.send(crate::protocol::chunk(request_id, response)) {
                    return Ok(None);
                }
                if over && !end {
                    tracing::debug!(store = %self.id, last = last.0, "pull: answer full, more to pull");
                    return Ok(Some(last));
                }
            }
            if page_done {
                break;
            }
        }
        if !sent_any && !skip_if_empty {
            let response = pull_response(&[], None, PageInfo::NoMore, &backend_id);
            if !sink.send(crate::protocol::chunk(request_id, response)) {
                return Ok(None);
            }
        }
        Ok(Some(last))
    }
}

/// The stores this server has opened, at most `max_stores`.
pub(crate) struct Hubs {
    opener: Opener,
    limits: Limits,
    /// Held only to find or add a store's cell; a store is opened in its cell, outside it.
    hubs: Mutex<HashMap<StoreId, Arc<OnceCell<Arc<StoreHub>>>>>,
}

impl std::fmt::Debug for Hubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hubs").finish_non_exhaustive()
    }
}

impl Hubs {
    pub(crate) fn new(opener: Opener, limits: Limits) -> Hubs {
        Hubs {
            opener,
            limits,
            hubs: Mutex::new(HashMap::new()),
        }
    }

    /// The hub of `id`, opening its backend on first use. Stores open concurrently: the map
    /// is locked only to find the store's cell.
    pub(crate) async fn get(&self, id: &StoreId) -> Result<Arc<StoreHub>, BackendError> {
        let cell = {
            let mut hubs = lock(&self.hubs);
            match hubs.get(id) {
                Some(cell) => Arc::clone(cell),
                None => {
                    if hubs.len() >= self.limits.max_stores {
                        return Err(BackendError::Unavailable {
                            message: format!(
                                "this server serves at most {} stores",
                                self.limits.max_stores
                            ),
                        });
                    }
                    let cell = Arc::new(OnceCell::new());
                    hubs.insert(id.clone(), Arc::clone(&cell));
                    cell
                }
            }
        };
        let opened = cell
            .get_or_try_init(|| StoreHub::open(id.clone(), &self.opener, &self.limits))
            .await;
        match opened {
            Ok(hub) => Ok(Arc::clone(hub)),
            Err(e) => {
                // A store that failed to open does not keep a place.
                let mut hubs = lock(&self.hubs);
                if hubs
                    .get(id)
                    .is_some_and(|c| Arc::ptr_eq(c, &cell) && !c.initialized())
                {
                    hubs.remove(id);
                }
                Err(e)
            }
        }
    }
}
