//! The protocol tests' harness: a sync server over a memory bucket on 127.0.0.1, and the
//! frames a LiveStore 0.4.0 client sends, over a WebSocket or HTTP.

use std::sync::Arc;
use std::time::Duration;

use eventsync_backends::object_store::memory::InMemory;
use eventsync_backends::object_store::path::Path;
use eventsync_backends::{GlobalEvent, GlobalSeq, SegmentLog, SyncBackend};
use eventsync_server::{Limits, Opener, SyncServer};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::support::{self, config};

/// A hang guard, not a timing assertion: a reply that never comes fails the test.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) struct Running {
    pub(crate) addr: std::net::SocketAddr,
    /// The memory bucket under the server, for direct clients.
    pub(crate) bucket: Arc<InMemory>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub(crate) fn log(bucket: &Arc<InMemory>, store: &str) -> SegmentLog {
    SegmentLog::new(bucket.clone(), Path::default(), store, config()).unwrap()
}

pub(crate) async fn start(limits: Limits, auth: Option<eventsync_server::Auth>) -> Running {
    start_on(Arc::new(InMemory::new()), limits, auth).await
}

/// A server over `bucket` (several servers may share one).
pub(crate) async fn start_on(
    bucket: Arc<InMemory>,
    limits: Limits,
    auth: Option<eventsync_server::Auth>,
) -> Running {
    let shared = Arc::clone(&bucket);
    let opener: Opener = Arc::new(move |store_id| {
        let backend: Arc<dyn SyncBackend> = Arc::new(log(&shared, store_id.as_str()));
        Box::pin(async move { Ok(backend) })
    });
    let server = SyncServer::new(opener, limits, auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let served = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        bucket,
        stop: Some(stop),
        served,
    }
}

impl Running {
    pub(crate) fn url(&self, scheme: &str, query: &str) -> String {
        format!("{scheme}://{}/sync?{query}", self.addr)
    }

    pub(crate) async fn head(&self, store: &str) -> GlobalSeq {
        log(&self.bucket, store).head().await.unwrap()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, self.served)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

pub(crate) fn event(n: u64, client: &str) -> GlobalEvent {
    GlobalEvent {
        seq_num: GlobalSeq(n),
        parent_seq_num: GlobalSeq(n - 1),
        name: "v1.TodoCreated".into(),
        args: json!({"id": format!("{client}-{n}"), "text": "buy milk"}),
        client_id: client.into(),
        session_id: format!("{client}-session"),
    }
}

pub(crate) fn request(id: &str, tag: &str, payload: Value) -> Value {
    json!({"_tag": "Request", "id": id, "tag": tag, "payload": payload,
           "traceId": "t", "spanId": "s", "sampled": false, "headers": []})
}

pub(crate) fn pull(id: &str, store: &str, live: bool, cursor: Option<(&str, u64)>) -> Value {
    request(
        id,
        "SyncWsRpc.Pull",
        json!({"storeId": store, "payload": {"authToken": "t"}, "live": live,
               "cursor": support::cursor(cursor)}),
    )
}

pub(crate) fn push(
    id: &str,
    store: &str,
    events: &[GlobalEvent],
    backend_id: Option<&str>,
) -> Value {
    let backend_id = match backend_id {
        Some(b) => json!({"_tag": "Some", "value": b}),
        None => json!({"_tag": "None"}),
    };
    request(
        id,
        "SyncWsRpc.Push",
        json!({"storeId": store, "batch": events, "backendId": backend_id}),
    )
}

pub(crate) struct Ws(pub(crate) WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Ws {
    pub(crate) async fn open(running: &Running, store: &str) -> Ws {
        let url = running.url("ws", &format!("storeId={store}&transport=ws"));
        let (socket, _) = connect_async(url).await.unwrap();
        Ws(socket)
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    pub(crate) async fn send_text(&mut self, text: String) {
        self.0.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next frame: a JSON message, or `Err(close code)`.
    pub(crate) async fn next(&mut self) -> Result<Value, Option<u16>> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.0.next())
                .await
                .expect("a frame arrives");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(text.as_str()).unwrap());
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    pub(crate) async fn recv(&mut self) -> Value {
        self.next().await.expect("a message, not a close")
    }

    /// The first pull chunk: the backend id.
    pub(crate) async fn backend_id(&mut self, store: &str) -> String {
        self.send(pull("0", store, true, None)).await;
        let first = self.recv().await;
        assert_eq!(first["_tag"], "Chunk", "{first}");
        first["values"][0]["backendId"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

pub(crate) async fn post(running: &Running, store: &str, body: String) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(running.url("http", &format!("storeId={store}&transport=http")))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) fn http_request(id: &str, tag: &str, payload: Value) -> String {
    request(id, tag, payload).to_string()
}

/// Reads pull chunks on `ws` until it has seen event `until`; returns the seqNums seen.
pub(crate) async fn read_until(ws: &mut Ws, until: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.last() != Some(&until) {
        let message = ws.recv().await;
        if message["_tag"] != "Chunk" {
            continue;
        }
        for item in message["values"][0]["batch"].as_array().unwrap() {
            seen.push(item["eventEncoded"]["seqNum"].as_u64().unwrap());
        }
    }
    seen
}
