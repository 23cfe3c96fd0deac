//! One WebSocket connection to `eventsync serve`: a writer task sending frames, a reader
//! task dispatching the server's frames to the calls waiting on them by request id, and
//! pings answered in order. When the socket ends every pending call fails, with
//! [`BackendError::Unavailable`] (retryable) unless the server said why it refused us.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::wire::{self, FromServer};
use crate::BackendError;

/// What a call receives: stream items, then its exit; or the error that ended the socket.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The values of one `Chunk`.
    Chunk(Vec<Value>),
    /// The request's `exit` object.
    Exit(Value),
}

/// Why the connection ended, kept to fail later calls with.
#[derive(Debug, Clone)]
enum Ended {
    /// Transient: reconnect and retry.
    Unavailable(String),
    /// The server refused our token.
    Denied(String),
    /// The server sent something that is not the protocol.
    Corrupt(String),
}

impl Ended {
    fn error(&self) -> BackendError {
        match self {
            Ended::Unavailable(message) => BackendError::Unavailable {
                message: message.clone(),
            },
            Ended::Denied(message) => BackendError::AccessDenied {
                message: message.clone(),
            },
            Ended::Corrupt(message) => BackendError::Corrupt {
                key: wire::FRAME.into(),
                message: message.clone(),
            },
        }
    }
}

type Waiter = mpsc::UnboundedSender<Result<Reply, BackendError>>;

#[derive(Default)]
struct State {
    pending: HashMap<u64, Waiter>,
    pongs: VecDeque<oneshot::Sender<()>>,
    ended: Option<Ended>,
}

/// One open connection. Dropping the last handle closes it.
pub(crate) struct Conn {
    out: mpsc::UnboundedSender<Message>,
    state: Arc<Mutex<State>>,
    next_id: AtomicU64,
    reader: tokio::task::AbortHandle,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.out.send(Message::Close(None));
        self.reader.abort();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// An HTTP refusal of the upgrade mapped to an error.
fn refused(status: u16, body: Option<&[u8]>, url: &str) -> BackendError {
    let why = body
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
        .unwrap_or_default();
    let message = format!("{url} answered HTTP {status}: {why}");
    match status {
        401 | 403 => BackendError::AccessDenied { message },
        400 | 404 | 405 | 426 => BackendError::Invalid { message },
        _ => BackendError::Unavailable { message },
    }
}

impl Conn {
    /// Connects to `url` (a `ws://` URL with its query), sending `token` as a bearer token.
    /// `shown` is the URL to name in errors.
    pub(crate) async fn connect(
        url: &str,
        token: Option<&str>,
        tls: Option<Arc<rustls::ClientConfig>>,
        shown: &str,
    ) -> Result<Arc<Conn>, BackendError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| BackendError::Invalid {
                message: format!("cannot make a WebSocket request to {shown}: {e}"),
            })?;
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                BackendError::Invalid {
                    message: "the auth token holds characters an HTTP header cannot carry".into(),
                }
            })?;
            value.set_sensitive(true);
            request.headers_mut().insert("authorization", value);
        }
        use tokio_tungstenite::tungstenite::Error as WsError;
        let connector = tls.map(tokio_tungstenite::Connector::Rustls);
        let connected =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
        let (socket, _) = match connected.await {
            Ok(connected) => connected,
            Err(WsError::Http(response)) => {
                return Err(refused(
                    response.status().as_u16(),
                    response.body().as_deref(),
                    shown,
                ));
            }
            Err(WsError::Url(e)) => {
                return Err(BackendError::Invalid {
                    message: format!("cannot connect to {shown}: {e}"),
                });
            }
            Err(WsError::Io(e)) if super::tls::is_certificate_error(&e) => {
                return Err(BackendError::Invalid {
                    message: format!(
                        "cannot connect to {shown}: {e}; if a private CA signed the server's certificate, give its PEM file with EVENTSYNC_CA_FILE"
                    ),
                });
            }
            Err(e) => {
                return Err(BackendError::Unavailable {
                    message: format!("cannot connect to {shown}: {e}"),
                });
            }
        };
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                let last = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || last {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let shown = shown.to_string();
        let reader = tokio::spawn(async move {
            let ended = loop {
                let text = match stream.next().await {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        break if code == 1008 && reason != "reader too slow" {
                            Ended::Denied(format!("{shown} refused the connection: {reason}"))
                        } else {
                            Ended::Unavailable(format!(
                                "{shown} closed the connection ({code} {reason})"
                            ))
                        };
                    }
                    Some(Ok(Message::Binary(_))) => {
                        break Ended::Corrupt("the server sent a binary frame".into());
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        break Ended::Unavailable(format!("connection to {shown} failed: {e}"));
                    }
                    None => break Ended::Unavailable(format!("{shown} closed the connection")),
                };
                match wire::decode_from_server(text.as_str()) {
                    Ok(FromServer::Pong) => {
                        if let Some(waiter) = lock(&shared).pongs.pop_front() {
                            let _ = waiter.send(());
                        }
                    }
                    Ok(FromServer::Chunk { request_id, values }) => {
                        if let Some(waiter) = lock(&shared).pending.get(&request_id) {
                            let _ = waiter.send(Ok(Reply::Chunk(values)));
                        }
                    }
                    Ok(FromServer::Exit { request_id, exit }) => {
                        if let Some(waiter) = lock(&shared).pending.remove(&request_id) {
                            let _ = waiter.send(Ok(Reply::Exit(exit)));
                        }
                    }
                    Err(BackendError::Corrupt { message, .. }) => break Ended::Corrupt(message),
                    Err(e) => break Ended::Corrupt(e.to_string()),
                }
            };
            let mut state = lock(&shared);
            for (_, waiter) in state.pending.drain() {
                let _ = waiter.send(Err(ended.error()));
            }
            state.pongs.clear();
            state.ended = Some(ended);
        });
        Ok(Arc::new(Conn {
            out,
            state,
            next_id: AtomicU64::new(0),
            reader: reader.abort_handle(),
        }))
    }

    /// Whether the socket has ended (the next call should reconnect).
    pub(crate) fn is_ended(&self) -> bool {
        lock(&self.state).ended.is_some()
    }

    /// Sends request `tag`; its replies arrive on the receiver, in order.
    pub(crate) fn call(
        &self,
        tag: &str,
        payload: Value,
    ) -> Result<(u64, mpsc::UnboundedReceiver<Result<Reply, BackendError>>), BackendError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut state = lock(&self.state);
            if let Some(ended) = &state.ended {
                return Err(ended.error());
            }
            state.pending.insert(id, tx);
        }
        self.send(wire::request(id, tag, payload))?;
        Ok((id, rx))
    }

    /// Cancels request `id` (a pull whose stream was dropped).
    pub(crate) fn interrupt(&self, id: u64) {
        let waiting = lock(&self.state).pending.remove(&id).is_some();
        if waiting {
            let _ = self.send(wire::interrupt(id));
        }
    }

    /// Sends a ping; the receiver fires at its pong.
    pub(crate) fn ping(&self) -> Result<oneshot::Receiver<()>, BackendError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = lock(&self.state);
            if let Some(ended) = &state.ended {
                return Err(ended.error());
            }
            state.pongs.push_back(tx);
        }
        self.send(wire::ping())?;
        Ok(rx)
    }

    fn send(&self, text: String) -> Result<(), BackendError> {
        self.out
            .send(Message::Text(text.into()))
            .map_err(|_| BackendError::Unavailable {
                message: "the connection to the server is closed".into(),
            })
    }
}
