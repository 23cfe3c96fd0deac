//! [`RemoteBackend`]: a [`SyncBackend`] that syncs through `eventsync serve` with LiveStore's
//! sync-cf WebSocket protocol, so a client needs the server's URL (and maybe a token), not
//! bucket credentials. URLs: `eventsync+ws://host:port/path` and `eventsync+wss://…`.
//!
//! `wss://` uses rustls (`tls`): the system's roots plus an optional CA file.
//!
//! One connection per backend (opened on first use, reopened on the next call after it
//! failed); calls are told apart by request id (`conn`); the frames are in `wire`.
//! `head()` has no RPC of its own: it is a non-live pull from the last head this backend saw,
//! read up to the first `pageInfo` that tells the head, then interrupted. `exists()` is
//! eventsync's own RPC (`EventsyncWsRpc.Exists`), which LiveStore's protocol lacks.

mod conn;
mod tls;
mod wire;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use self::conn::{Conn, Reply};
use crate::redact::redact_url;
use crate::store_id::StoreId;
use crate::{
    BackendError, BackendInfo, Capabilities, GlobalEvent, GlobalSeq, PageInfo, PullPage,
    PullStream, SyncBackend,
};

/// Most events one push through the server may carry: LiveStore's own push limit.
pub const MAX_EVENTS_PER_PUSH: usize = 100;
/// Most bytes of events (as JSON) one push may carry: under `eventsync serve`'s default
/// 2 MiB frame limit, like LiveStore's ~900 KB frames.
pub const MAX_BYTES_PER_PUSH: usize = 900 * 1024;

/// The longest pause of a live pull between reconnection attempts.
const LIVE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Settings of a backend reached through `eventsync serve`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RemoteOptions {
    /// The token sent as `Authorization: Bearer` on the upgrade request (the server's
    /// `--auth-token`). Never printed: `Debug` shows only whether it is set.
    #[serde(alias = "auth_token")]
    pub auth_token: Option<String>,
    /// A PEM file of CA certificates that `eventsync+wss://` trusts besides the system's
    /// roots: for a server whose certificate a private CA signed (`EVENTSYNC_CA_FILE`).
    /// Verification is never switched off.
    #[serde(alias = "ca_file")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Whether `url` names a server rather than an object store.
pub fn is_remote_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("eventsync+ws:") || lower.starts_with("eventsync+wss:")
}

/// A backend behind `eventsync serve`, spoken to over one WebSocket.
#[derive(Debug, Clone)]
pub struct RemoteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    /// The `ws://` URL with the query, what we connect to.
    ws_url: String,
    /// The URL as the user wrote it, without credentials, for messages and `info()`.
    shown: String,
    store_id: String,
    token: Option<String>,
    /// The TLS client settings of a `wss://` server; `None` for `ws://`.
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    backend_id: Mutex<Option<String>>,
    /// The last head this backend saw; where `head()` starts reading.
    last_head: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("RemoteBackend")
            .field("url", &self.shown)
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

fn invalid(message: String) -> BackendError {
    BackendError::Invalid { message }
}

impl RemoteBackend {
    /// The backend of store `store_id` behind the server at `url`
    /// (`eventsync+ws://host:port/path`). Checks the URL; connects on first use.
    pub fn new(
        url: &str,
        store_id: &str,
        options: &RemoteOptions,
    ) -> Result<RemoteBackend, BackendError> {
        let store_id = StoreId::new(store_id)?;
        let shown = redact_url(url);
        let parsed = url::Url::parse(url.trim())
            .map_err(|e| invalid(format!("server URL {shown} does not parse: {e}")))?;
        let scheme = match parsed.scheme() {
            "eventsync+ws" => "ws",
            "eventsync+wss" => "wss",
            other => {
                return Err(invalid(format!(
                    "{shown} is not a server URL (scheme {other:?}); write eventsync+ws://host:port/path"
                )));
            }
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(format!(
                "server URL {shown} holds credentials; give the token with EVENTSYNC_AUTH_TOKEN instead"
            )));
        }
        let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
            return Err(invalid(format!(
                "server URL {shown} has no host; write eventsync+ws://host:port/path"
            )));
        };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid(format!(
                "server URL {shown} has a query or fragment; the store id comes from --store (EVENTSYNC_STORE), the token from EVENTSYNC_AUTH_TOKEN"
            )));
        }
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        let mut ws = url::Url::parse(&format!("{scheme}://{host}{port}{}", parsed.path()))
            .map_err(|e| {
                invalid(format!(
                    "server URL {shown} does not make a WebSocket URL: {e}"
                ))
            })?;
        ws.query_pairs_mut()
            .append_pair("storeId", store_id.as_str())
            .append_pair("transport", "ws");
        if let Some(token) = &options.auth_token
            && token.is_empty()
        {
            return Err(invalid("the auth token is empty".into()));
        }
        let tls = match scheme {
            "wss" => Some(tls::client_config(options.ca_file.as_deref())?),
            _ if options.ca_file.is_some() => {
                return Err(invalid(format!(
                    "a CA file is set but {shown} is not TLS; write eventsync+wss://"
                )));
            }
            _ => None,
        };
        Ok(RemoteBackend {
            inner: Arc::new(Inner {
                ws_url: ws.to_string(),
                shown,
                store_id: store_id.as_str().to_string(),
                token: options.auth_token.clone(),
                tls,
                conn: tokio::sync::Mutex::new(None),
                backend_id: Mutex::new(None),
                last_head: AtomicU64::new(0),
            }),
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A request in flight; dropping it before its exit interrupts it on the server.
struct Call {
    conn: Arc<Conn>,
    id: u64,
    replies: mpsc::UnboundedReceiver<Result<Reply, BackendError>>,
    exited: bool,
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.exited {
            self.conn.interrupt(self.id);
        }
    }
}

impl Call {
    async fn next(&mut self) -> Result<Reply, BackendError> {
        let reply = match self.replies.recv().await {
            Some(reply) => reply,
            None => Err(BackendError::Unavailable {
                message: "the connection to the server closed".into(),
            }),
        };
        if !matches!(reply, Ok(Reply::Chunk(_))) {
            self.exited = true;
        }
        reply
    }
}

impl Inner {
    /// The open connection, or a new one when there is none or it failed.
    async fn conn(&self) -> Result<Arc<Conn>, BackendError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.is_ended()
        {
            return Ok(Arc::clone(conn));
        }
        let conn = Conn::connect(
            &self.ws_url,
            self.token.as_deref(),
            self.tls.clone(),
            &self.shown,
        )
        .await?;
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    async fn call(&self, tag: &str, payload: serde_json::Value) -> Result<Call, BackendError> {
        let conn = self.conn().await?;
        let (id, replies) = conn.call(tag, payload)?;
        Ok(Call {
            conn,
            id,
            replies,
            exited: false,
        })
    }

    fn known_backend_id(&self) -> Option<String> {
        lock(&self.backend_id).clone()
    }

    /// Checks a pull response's backend id against ours, learning it if we had none.
    fn check_backend_id(&self, found: &str) -> Result<(), BackendError> {
        let mut known = lock(&self.backend_id);
        match known.as_deref() {
            Some(expected) if expected != found => Err(BackendError::BackendIdMismatch {
                expected: expected.to_string(),
                found: Some(found.to_string()),
            }),
            Some(_) => Ok(()),
            None => {
                *known = Some(found.to_string());
                Ok(())
            }
        }
    }

    fn saw_head(&self, seq: GlobalSeq) {
        self.last_head.fetch_max(seq.0, Ordering::Relaxed);
    }

    /// The server's backend id, read afresh: the first chunk of a pull without a cursor.
    async fn read_backend_id(&self) -> Result<String, BackendError> {
        let payload = wire::pull_payload(&self.store_id, None, false);
        let mut call = self.call("SyncWsRpc.Pull", payload).await?;
        loop {
            match call.next().await? {
                Reply::Chunk(values) => {
                    if let Some(value) = values.into_iter().next() {
                        let (_, id) = wire::decode_pull_response(value)?;
                        return Ok(id);
                    }
                }
                Reply::Exit(exit) => {
                    wire::decode_exit(&exit, None)?;
                    return Err(BackendError::Corrupt {
                        key: wire::FRAME.into(),
                        message: "a pull ended without a response naming the backend id".into(),
                    });
                }
            }
        }
    }

    /// Starts `SyncWsRpc.Pull` after `cursor`; a cursor past 0 needs the backend id.
    async fn start_pull(&self, cursor: GlobalSeq, live: bool) -> Result<Call, BackendError> {
        let backend_id = match self.known_backend_id() {
            Some(id) => Some(id),
            None if cursor == GlobalSeq::ZERO => None,
            None => {
                let id = self.read_backend_id().await?;
                self.check_backend_id(&id)?;
                Some(id)
            }
        };
        let payload = wire::pull_payload(
            &self.store_id,
            backend_id.as_deref().map(|id| (id, cursor)),
            live,
        );
        self.call("SyncWsRpc.Pull", payload).await
    }
}

/// Refuses what the server would refuse anyway, before sending it, with the same words as
/// the segment log: empty, too many events, misnumbered, too big.
fn validate(batch: &[GlobalEvent]) -> Result<(), BackendError> {
    let Some(first) = batch.first() else {
        return Err(invalid("cannot push an empty batch".into()));
    };
    if batch.len() > MAX_EVENTS_PER_PUSH {
        return Err(invalid(format!(
            "a batch of {} events is over the limit of {MAX_EVENTS_PER_PUSH} events per push through a server; split it",
            batch.len()
        )));
    }
    let mut parent = first.parent_seq_num;
    let mut bytes = 0usize;
    for (index, event) in batch.iter().enumerate() {
        if event.parent_seq_num != parent || event.seq_num != parent.next() {
            return Err(invalid(format!(
                "event {index} of the batch is {} with parent {}; expected {} with parent {parent}",
                event.seq_num,
                event.parent_seq_num,
                parent.next(),
            )));
        }
        parent = event.seq_num;
        let len = serde_json::to_vec(event).map_or(usize::MAX, |v| v.len());
        if len > MAX_BYTES_PER_PUSH {
            return Err(invalid(format!(
                "event {} ({}) alone encodes to {len} bytes; the limit is {MAX_BYTES_PER_PUSH} bytes per push through a server, so it can never be pushed",
                event.seq_num, event.name
            )));
        }
        bytes = bytes.saturating_add(len);
    }
    if bytes > MAX_BYTES_PER_PUSH {
        return Err(invalid(format!(
            "a batch of {} events encodes to {bytes} bytes, over the limit of {MAX_BYTES_PER_PUSH} bytes per push through a server; split it",
            batch.len()
        )));
    }
    Ok(())
}

/// The state of a pull stream between pages.
struct Pulling {
    inner: Arc<Inner>,
    cursor: GlobalSeq,
    live: bool,
    call: Option<Call>,
    ready: VecDeque<PullPage>,
    done: bool,
    /// Failed attempts in a row of a live pull, for its back-off.
    failures: u32,
}

impl Pulling {
    /// Ends the stream with `error`, or (a live pull, a retryable error) waits and reconnects.
    async fn failed(&mut self, error: BackendError) -> Option<BackendError> {
        self.call = None;
        if self.live && error.is_retryable() {
            self.failures = self.failures.saturating_add(1);
            let pause = Duration::from_millis(100u64 << self.failures.min(6)).min(LIVE_RETRY_MAX);
            tracing::debug!(error = %error, ?pause, "live pull through the server failed; retrying");
            tokio::time::sleep(pause).await;
            None
        } else {
            self.done = true;
            Some(error)
        }
    }

    async fn next(&mut self) -> Option<Result<PullPage, BackendError>> {
        loop {
            if let Some(page) = self.ready.pop_front() {
                return Some(Ok(page));
            }
            if self.done {
                return None;
            }
            let call = match self.call.as_mut() {
                Some(call) => call,
                None => match self.inner.start_pull(self.cursor, self.live).await {
                    Ok(call) => self.call.insert(call),
                    Err(e) => match self.failed(e).await {
                        Some(e) => return Some(Err(e)),
                        None => continue,
                    },
                },
            };
            let reply = call.next().await;
            match reply {
                Ok(Reply::Chunk(values)) => {
                    for value in values {
                        let page = wire::decode_pull_response(value).and_then(|(page, id)| {
                            self.inner.check_backend_id(&id)?;
                            Ok(page)
                        });
                        match page {
                            Ok(page) => {
                                if let Some(last) = page.events.last() {
                                    self.cursor = last.seq_num;
                                    self.inner.saw_head(last.seq_num);
                                }
                                self.failures = 0;
                                self.ready.push_back(page);
                            }
                            Err(e) => {
                                self.done = true;
                                self.call = None;
                                self.ready.clear();
                                return Some(Err(e));
                            }
                        }
                    }
                }
                Ok(Reply::Exit(exit)) => {
                    self.call = None;
                    match wire::decode_exit(&exit, None) {
                        Ok(()) if !self.live => self.done = true,
                        Ok(()) => {
                            let e = BackendError::Unavailable {
                                message: "the server ended a live pull".into(),
                            };
                            if let Some(e) = self.failed(e).await {
                                return Some(Err(e));
                            }
                        }
                        Err(e) => {
                            if let Some(e) = self.failed(e).await {
                                return Some(Err(e));
                            }
                        }
                    }
                }
                Err(e) => {
                    if let Some(e) = self.failed(e).await {
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl SyncBackend for RemoteBackend {
    async fn push(&self, batch: Vec<GlobalEvent>) -> Result<(), BackendError> {
        validate(&batch)?;
        let parent = batch[0].parent_seq_num;
        let last = batch[batch.len() - 1].seq_num;
        let payload = wire::push_payload(
            &self.inner.store_id,
            &batch,
            self.inner.known_backend_id().as_deref(),
        );
        let mut call = self.inner.call("SyncWsRpc.Push", payload).await?;
        loop {
            match call.next().await? {
                Reply::Chunk(_) => continue,
                Reply::Exit(exit) => {
                    wire::decode_exit(&exit, Some(parent))?;
                    self.inner.saw_head(last);
                    return Ok(());
                }
            }
        }
    }

    async fn pull(&self, cursor: GlobalSeq, live: bool) -> Result<PullStream, BackendError> {
        let mut pulling = Pulling {
            inner: Arc::clone(&self.inner),
            cursor,
            live,
            call: None,
            ready: VecDeque::new(),
            done: false,
            failures: 0,
        };
        // The first request is made now, so a refused connection fails the call itself.
        pulling.call = Some(self.inner.start_pull(cursor, live).await?);
        Ok(futures::stream::unfold(pulling, |mut pulling| async move {
            let item = pulling.next().await?;
            Some((item, pulling))
        })
        .boxed())
    }

    async fn head(&self) -> Result<GlobalSeq, BackendError> {
        let from = GlobalSeq(self.inner.last_head.load(Ordering::Relaxed));
        let mut call = self.inner.start_pull(from, false).await?;
        let mut last = from;
        loop {
            match call.next().await? {
                Reply::Chunk(values) => {
                    for value in values {
                        let (page, id) = wire::decode_pull_response(value)?;
                        self.inner.check_backend_id(&id)?;
                        if let Some(event) = page.events.last() {
                            last = event.seq_num;
                        }
                        let head = match page.page_info {
                            PageInfo::NoMore => last,
                            PageInfo::More { remaining: Some(n) } => {
                                GlobalSeq(last.0.saturating_add(n))
                            }
                            PageInfo::More { remaining: None } => continue,
                        };
                        self.inner.saw_head(head);
                        return Ok(head);
                    }
                }
                Reply::Exit(exit) => {
                    wire::decode_exit(&exit, None)?;
                    self.inner.saw_head(last);
                    return Ok(last);
                }
            }
        }
    }

    async fn ping(&self) -> Result<(), BackendError> {
        let conn = self.inner.conn().await?;
        conn.ping()?.await.map_err(|_| BackendError::Unavailable {
            message: format!(
                "{} closed the connection before answering a ping",
                self.inner.shown
            ),
        })
    }

    async fn backend_id(&self) -> Result<String, BackendError> {
        let id = self.inner.read_backend_id().await?;
        *lock(&self.inner.backend_id) = Some(id.clone());
        Ok(id)
    }

    /// Asks the server (eventsync's own `EventsyncWsRpc.Exists`, which creates nothing).
    async fn exists(&self) -> Result<bool, BackendError> {
        let payload = wire::exists_payload(&self.inner.store_id);
        let mut call = self.inner.call(wire::EXISTS, payload).await?;
        loop {
            match call.next().await? {
                Reply::Chunk(_) => continue,
                Reply::Exit(exit) => return wire::decode_exists_exit(&exit),
            }
        }
    }

    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "eventsync+ws".into(),
            url: self.inner.shown.clone(),
            store_id: self.inner.store_id.clone(),
            capabilities: Capabilities {
                live_pull: true,
                page_info_known: true,
                max_events_per_push: MAX_EVENTS_PER_PUSH,
                max_bytes_per_push: MAX_BYTES_PER_PUSH,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(url: &str) -> Result<RemoteBackend, BackendError> {
        RemoteBackend::new(url, "s", &RemoteOptions::default())
    }

    #[test]
    fn test_urls_are_checked_and_become_ws_urls() {
        let backend = open("eventsync+ws://127.0.0.1:8787/sync").unwrap();
        assert_eq!(
            backend.inner.ws_url,
            "ws://127.0.0.1:8787/sync?storeId=s&transport=ws"
        );
        assert_eq!(backend.info().name, "eventsync+ws");
        assert_eq!(
            open("eventsync+wss://example.com/x").unwrap().inner.ws_url,
            "wss://example.com/x?storeId=s&transport=ws"
        );
        for (url, expect) in [
            ("eventsync+ws://u:hunter22@h:1/p", "credentials"),
            ("eventsync+ws:///p", "no host"),
            ("eventsync+ws://h:1/p?storeId=x", "query"),
            ("eventsync+ws://h:99999/p", "does not parse"),
            ("eventsync+http://h/p", "not a server URL"),
        ] {
            match open(url) {
                Err(BackendError::Invalid { message }) => {
                    assert!(message.contains(expect), "{url}: {message}");
                    assert!(!message.contains("hunter22"), "{message}");
                }
                other => panic!("{url} gave {other:?}"),
            }
        }
        assert!(matches!(
            RemoteBackend::new("eventsync+ws://h/p", "../x", &RemoteOptions::default()),
            Err(BackendError::Invalid { .. })
        ));
    }

    #[test]
    fn test_the_token_is_never_shown() {
        let options = RemoteOptions {
            auth_token: Some("sekrit-token".into()),
            ..RemoteOptions::default()
        };
        assert!(!format!("{options:?}").contains("sekrit"));
        let backend = RemoteBackend::new("eventsync+ws://h:1/p", "s", &options).unwrap();
        assert!(!format!("{backend:?}").contains("sekrit"));
        assert!(!format!("{:?}", backend.info()).contains("sekrit"));
    }

    #[test]
    fn test_validate_refuses_what_the_server_would() {
        let events = crate::conformance::make_events(GlobalSeq::ZERO, 3, "c", 10);
        assert!(validate(&events).is_ok());
        let mut gap = events.clone();
        gap.remove(1);
        for bad in [Vec::new(), gap] {
            assert!(matches!(validate(&bad), Err(BackendError::Invalid { .. })));
        }
        let big = crate::conformance::make_events(GlobalSeq::ZERO, 1, "c", MAX_BYTES_PER_PUSH);
        match validate(&big) {
            Err(BackendError::Invalid { message }) => assert!(message.contains("never")),
            other => panic!("{other:?}"),
        }
    }
}
