//! The WebSocket transport: one JSON message per text frame. Each connection has a bounded
//! outgoing queue drained by its own writer task; whoever fills it (a slow reader) is
//! closed, so nobody else waits. Pushes run as tasks (pings are answered meanwhile) and
//! finish before the socket closes; live pulls are tasks fed by the store's broadcast.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use eventsync_backends::GlobalSeq;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::config::Limits;
use crate::hub::{Sink, StoreHub};
use crate::protocol::{
    self, DecodeError, ExistsRequest, FromClient, PageInfo, PullRequest, PushRequest, RpcError,
};

/// WebSocket close codes used here.
pub(crate) mod close {
    /// The server is shutting down.
    pub(crate) const GOING_AWAY: u16 = 1001;
    /// A frame type the protocol does not use (binary).
    pub(crate) const UNSUPPORTED: u16 = 1003;
    /// A text frame that is not JSON or not a message.
    pub(crate) const INVALID_PAYLOAD: u16 = 1007;
    /// Refused: auth, an unknown message, or a reader too slow.
    pub(crate) const POLICY: u16 = 1008;
}

enum Outgoing {
    Text(String),
    Close(u16, String),
}

/// The sending half of a connection: never waits; a full queue marks the reader slow.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    slow: Arc<Notify>,
}

impl Sink for Outbox {
    fn send(&mut self, message: Value) -> bool {
        match self.tx.try_send(Outgoing::Text(message.to_string())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.slow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Serves one upgraded connection of store `hub` until the client leaves, it misbehaves,
/// or `shutdown` turns true.
pub(crate) async fn run(
    socket: WebSocket,
    hub: Arc<StoreHub>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(limits.connection_queue);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let (frame, last) = match message {
                Outgoing::Text(text) => (Message::Text(text.into()), false),
                Outgoing::Close(code, reason) => (
                    Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })),
                    true,
                ),
            };
            if sink.send(frame).await.is_err() || last {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut out = Outbox {
        tx: tx.clone(),
        slow: Arc::new(Notify::new()),
    };
    let mut pulls: HashMap<String, AbortHandle> = HashMap::new();
    let mut pull_tasks = JoinSet::new();
    let mut pushes = JoinSet::new();
    let closing: Option<(u16, String)> = loop {
        tokio::select! {
            _ = shutdown.wait_for(|down| *down) => {
                break Some((close::GOING_AWAY, "server shutting down".into()));
            }
            () = out.slow.notified() => {
                tracing::info!(store = %hub.id, "closing a WebSocket whose reader is too slow");
                break Some((close::POLICY, "reader too slow".into()));
            }
            Some(_) = pull_tasks.join_next(), if !pull_tasks.is_empty() => {}
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        break Some((close::UNSUPPORTED, "binary frames are not supported".into()));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(e)) => {
                        // An oversize frame lands here; tungstenite answers it with 1009.
                        tracing::info!(store = %hub.id, error = %e, "WebSocket error");
                        break None;
                    }
                };
                match protocol::decode_from_client(text.as_str()) {
                    Ok(FromClient::Ping) => {
                        out.send(protocol::pong());
                    }
                    Ok(FromClient::Ack | FromClient::Eof) => {}
                    Ok(FromClient::Interrupt { request_id }) => {
                        if let Some(pull) = pulls.remove(&request_id) {
                            pull.abort();
                        }
                    }
                    Ok(FromClient::Request { id, tag, payload }) => match tag.as_str() {
                        "SyncWsRpc.Pull" => {
                            pulls.retain(|_, pull| !pull.is_finished());
                            match hub.decode::<PullRequest>(payload) {
                                Err(e) => {
                                    out.send(protocol::exit_failure(&id, &e));
                                }
                                Ok(_) if pulls.len() >= limits.max_live_pulls_per_connection => {
                                    let e = RpcError::unknown(format!(
                                        "too many live pulls on one connection (at most {})",
                                        limits.max_live_pulls_per_connection
                                    ));
                                    out.send(protocol::exit_failure(&id, &e));
                                }
                                Ok(request) => {
                                    let handle = pull_tasks.spawn(pull(
                                        Arc::clone(&hub),
                                        id.clone(),
                                        request,
                                        out.clone(),
                                    ));
                                    if let Some(old) = pulls.insert(id, handle) {
                                        old.abort();
                                    }
                                }
                            }
                        }
                        "SyncWsRpc.Push" => match hub.decode::<PushRequest>(payload) {
                            Err(e) => {
                                out.send(protocol::exit_failure(&id, &e));
                            }
                            Ok(request) => {
                                let hub = Arc::clone(&hub);
                                let mut out = out.clone();
                                pushes.spawn(async move {
                                    let reply = match hub
                                        .push(request.batch, request.backend_id.into_option())
                                        .await
                                    {
                                        Ok(()) => protocol::exit_success(&id, Some(serde_json::json!({}))),
                                        Err(e) => protocol::exit_failure(&id, &e),
                                    };
                                    out.send(reply);
                                });
                            }
                        },
                        protocol::EXISTS_WS => match hub.decode::<ExistsRequest>(payload) {
                            Err(e) => {
                                out.send(protocol::exit_failure(&id, &e));
                            }
                            Ok(_) => {
                                let hub = Arc::clone(&hub);
                                let mut out = out.clone();
                                pushes.spawn(async move {
                                    let reply = match hub.exists().await {
                                        Ok(exists) => protocol::exit_success(&id, Some(protocol::exists_value(exists))),
                                        Err(e) => protocol::exit_failure(&id, &e),
                                    };
                                    out.send(reply);
                                });
                            }
                        },
                        other => {
                            let e = RpcError::unknown(format!("unknown RPC {:?}", other.escape_default().to_string()));
                            out.send(protocol::exit_failure(&id, &e));
                        }
                    },
                    Err(e @ (DecodeError::Json(_) | DecodeError::Envelope(_))) => {
                        break Some((close::INVALID_PAYLOAD, cut(&e.to_string())));
                    }
                    Err(e @ DecodeError::UnknownTag(_)) => {
                        break Some((close::POLICY, cut(&e.to_string())));
                    }
                }
            }
        }
    };
    pull_tasks.abort_all();
    // Appends in flight finish and are answered before the socket closes.
    while pushes.join_next().await.is_some() {}
    if let Some((code, reason)) = closing {
        // Even a full queue takes the close: it goes after what is queued.
        let _ = tx.send(Outgoing::Close(code, reason)).await;
    }
    drop(tx);
    drop(out);
    let _ = writer.await;
}

/// A close reason fits in a control frame (at most 123 bytes).
fn cut(reason: &str) -> String {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// One `SyncWsRpc.Pull`: the backlog, then (live) every event that lands, in order, each
/// once. A gap (a lagging broadcast, or events that landed before the tail saw them) is
/// filled from the backend.
async fn pull(hub: Arc<StoreHub>, id: String, request: PullRequest, mut out: Outbox) {
    let cursor = match request.cursor.into_option() {
        Some(cursor) => {
            if let Err(e) = hub.check_backend_id(&cursor.backend_id).await {
                out.send(protocol::exit_failure(&id, &e));
                return;
            }
            GlobalSeq(cursor.event_sequence_number)
        }
        None => GlobalSeq::ZERO,
    };
    let mut live = request.live.then(|| hub.subscribe());
    let mut last = match hub.send_backlog(&id, cursor, false, None, &mut out).await {
        Ok(Some(last)) => last,
        Ok(None) => return,
        Err(e) => {
            out.send(protocol::exit_failure(&id, &e));
            return;
        }
    };
    let Some(live) = live.as_mut() else {
        out.send(protocol::exit_success(&id, None));
        return;
    };
    loop {
        let landed = match live.recv().await {
            Ok(landed) => landed,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                match hub.send_backlog(&id, last, true, None, &mut out).await {
                    Ok(Some(now)) => last = now,
                    Ok(None) => return,
                    Err(e) => {
                        out.send(protocol::exit_failure(&id, &e));
                        return;
                    }
                }
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let new: Vec<_> = landed
            .events
            .iter()
            .filter(|event| event.seq_num > last)
            .cloned()
            .collect();
        let Some(first) = new.first() else { continue };
        if first.parent_seq_num != last {
            match hub.send_backlog(&id, last, true, None, &mut out).await {
                Ok(Some(now)) => last = now,
                Ok(None) => return,
                Err(e) => {
                    out.send(protocol::exit_failure(&id, &e));
                    return;
                }
            }
            continue;
        }
        last = new[new.len() - 1].seq_num;
        let backend_id = match hub.backend_id().await {
            Ok(id) => id,
            Err(e) => {
                out.send(protocol::exit_failure(&id, &e));
                return;
            }
        };
        for events in protocol::split_chunks(&new) {
            let response = protocol::pull_response(
                events,
                Some(&landed.created_at),
                PageInfo::NoMore,
                &backend_id,
            );
            if !out.send(protocol::chunk(&id, response)) {
                return;
            }
        }
    }
}
