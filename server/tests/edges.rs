//! The server's edges: stores open without waiting on one another (the hub map is not
//! locked while a backend id is read), asking whether a store exists creates nothing (over
//! WebSocket, over HTTP and through the `eventsync+ws` backend), an HTTP pull answers a
//! bounded part of a large backlog and says `MoreKnown`, and the store limit holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventsync_backends::object_store::memory::InMemory;
use eventsync_backends::object_store::path::Path;
use eventsync_backends::{
    BackendError, BackendInfo, GlobalEvent, GlobalSeq, PullStream, RemoteBackend, RemoteOptions,
    SegmentLog, SyncBackend,
};
use eventsync_server::{Limits, Opener, SyncServer};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

mod support;

/// A hang guard, not a timing assertion: a reply that never comes fails the test.
const PATIENCE: Duration = Duration::from_secs(30);

fn log(bucket: &Arc<InMemory>, store: &str) -> SegmentLog {
    SegmentLog::new(bucket.clone(), Path::default(), store, support::config()).unwrap()
}

/// A segment log whose `backend_id` waits for a permit of `gate`: a backend whose identity
/// takes long to read.
#[derive(Debug)]
struct Gated {
    inner: SegmentLog,
    gate: Arc<Semaphore>,
    reads: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl SyncBackend for Gated {
    async fn push(&self, batch: Vec<GlobalEvent>) -> Result<(), BackendError> {
        self.inner.push(batch).await
    }
    async fn pull(&self, cursor: GlobalSeq, live: bool) -> Result<PullStream, BackendError> {
        self.inner.pull(cursor, live).await
    }
    async fn head(&self) -> Result<GlobalSeq, BackendError> {
        self.inner.head().await
    }
    async fn ping(&self) -> Result<(), BackendError> {
        self.inner.ping().await
    }
    async fn backend_id(&self) -> Result<String, BackendError> {
        let _permit = self.gate.acquire().await.expect("the gate stays open");
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.backend_id().await
    }
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }
}

struct Running {
    addr: std::net::SocketAddr,
    bucket: Arc<InMemory>,
    /// Backend id reads of the gated stores.
    reads: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Running {
    fn url(&self, scheme: &str, store: &str, transport: &str) -> String {
        format!(
            "{scheme}://{}/sync?storeId={store}&transport={transport}",
            self.addr
        )
    }
}

/// A server over a memory bucket; stores named `gated-*` read their id through `gate`.
async fn start(limits: Limits, gate: Arc<Semaphore>) -> Running {
    let bucket = Arc::new(InMemory::new());
    let shared = Arc::clone(&bucket);
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    let opener: Opener = Arc::new(move |store_id| {
        let inner = log(&shared, store_id.as_str());
        let backend: Arc<dyn SyncBackend> = if store_id.as_str().starts_with("gated-") {
            Arc::new(Gated {
                inner,
                gate: Arc::clone(&gate),
                reads: Arc::clone(&counted),
            })
        } else {
            Arc::new(inner)
        };
        Box::pin(async move { Ok(backend) })
    });
    let server = SyncServer::new(opener, limits, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        bucket,
        reads,
        stop: Some(stop),
    }
}

fn request(id: &str, tag: &str, payload: Value) -> Value {
    json!({"_tag": "Request", "id": id, "tag": tag, "payload": payload, "headers": []})
}

fn pull(id: &str, store: &str, cursor: Option<(&str, u64)>) -> Value {
    request(
        id,
        "SyncWsRpc.Pull",
        json!({"storeId": store, "live": false, "cursor": support::cursor(cursor)}),
    )
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Socket, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

async fn recv(ws: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame arrives")
            .expect("the socket stays open")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

async fn post(running: &Running, store: &str, body: Value) -> Value {
    let text = reqwest::Client::new()
        .post(running.url("http", store, "http"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn event(n: u64, text: &str) -> GlobalEvent {
    GlobalEvent {
        seq_num: GlobalSeq(n),
        parent_seq_num: GlobalSeq(n - 1),
        name: "v1.TodoCreated".into(),
        args: json!({"id": n.to_string(), "text": text}),
        client_id: "c".into(),
        session_id: "s".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_store_whose_backend_id_is_slow_does_not_hold_up_other_stores() {
    let gate = Arc::new(Semaphore::new(0));
    let running = start(Limits::default(), Arc::clone(&gate)).await;
    // The gated store's pull waits inside its backend id read.
    let (mut stuck, _) = connect_async(running.url("ws", "gated-a", "ws"))
        .await
        .unwrap();
    send(&mut stuck, pull("0", "gated-a", None)).await;
    // Another store connects, pushes and pulls meanwhile (with the map locked during the
    // read, its upgrade would wait for the gate, and this would hang).
    let (mut free, _) =
        tokio::time::timeout(PATIENCE, connect_async(running.url("ws", "free", "ws")))
            .await
            .expect("another store opens while one reads its backend id")
            .unwrap();
    send(&mut free, pull("0", "free", None)).await;
    let first = recv(&mut free).await;
    assert_eq!(first["values"][0]["pageInfo"]["_tag"], "NoMore", "{first}");
    assert_eq!(recv(&mut free).await["exit"]["_tag"], "Success");
    // A second client of the same gated store waits on the same read, not a second one.
    let (mut also_stuck, _) = connect_async(running.url("ws", "gated-a", "ws"))
        .await
        .unwrap();
    send(&mut also_stuck, pull("0", "gated-a", None)).await;
    // Opening the gate lets both go on, with the same id, read once.
    gate.add_permits(1);
    let a = recv(&mut stuck).await;
    let b = recv(&mut also_stuck).await;
    let id = a["values"][0]["backendId"].as_str().unwrap().to_string();
    assert_eq!(b["values"][0]["backendId"], id.as_str());
    assert_eq!(
        log(&running.bucket, "gated-a").backend_id().await.unwrap(),
        id
    );
    assert_eq!(
        running.reads.load(Ordering::SeqCst),
        1,
        "two pulls waiting on a store's id read it once"
    );
}

#[tokio::test]
async fn test_exists_creates_nothing_over_ws_http_and_the_remote_backend() {
    let running = start(Limits::default(), Arc::new(Semaphore::new(1))).await;
    let exists = |id: &str, store: &str, tag: &str| request(id, tag, json!({"storeId": store}));
    // WebSocket: a connection and the question create nothing.
    let (mut ws, _) = connect_async(running.url("ws", "w", "ws")).await.unwrap();
    send(&mut ws, exists("1", "w", "EventsyncWsRpc.Exists")).await;
    let answer = recv(&mut ws).await;
    assert_eq!(
        answer["exit"],
        json!({"_tag": "Success", "value": {"exists": false}}),
        "{answer}"
    );
    // HTTP: the same.
    let answer = post(&running, "h", exists("2", "h", "EventsyncHttpRpc.Exists")).await;
    assert_eq!(
        answer[0]["exit"]["value"],
        json!({"exists": false}),
        "{answer}"
    );
    // The eventsync+ws backend.
    let remote = RemoteBackend::new(
        &format!("eventsync+ws://{}/sync", running.addr),
        "r",
        &RemoteOptions::default(),
    )
    .unwrap();
    assert!(!remote.exists().await.unwrap());
    for store in ["w", "h", "r"] {
        assert!(
            !log(&running.bucket, store).exists().await.unwrap(),
            "asking created store {store}"
        );
    }
    // Once a client has pushed, every way says it exists.
    remote.push(vec![event(1, "x")]).await.unwrap();
    assert!(remote.exists().await.unwrap());
    assert!(log(&running.bucket, "r").exists().await.unwrap());
    send(&mut ws, pull("3", "w", None)).await;
    let _chunk = recv(&mut ws).await;
    let _exit = recv(&mut ws).await;
    send(&mut ws, exists("4", "w", "EventsyncWsRpc.Exists")).await;
    assert_eq!(recv(&mut ws).await["exit"]["value"]["exists"], true);
    // A payload for another store is refused, as for any RPC.
    send(&mut ws, exists("5", "other", "EventsyncWsRpc.Exists")).await;
    let refused = recv(&mut ws).await;
    assert_eq!(
        refused["exit"]["cause"]["error"]["_tag"], "UnknownError",
        "{refused}"
    );
}

#[tokio::test]
async fn test_an_http_pull_answers_a_bounded_part_and_says_more_known() {
    // About 1 KiB of events per event: a 20 KiB answer holds one chunk of 100 events.
    let limits = Limits {
        max_http_pull_bytes: 20 * 1024,
        ..Limits::default()
    };
    let running = start(limits, Arc::new(Semaphore::new(1))).await;
    let text = "t".repeat(1000);
    let direct = log(&running.bucket, "big");
    for start in (1..=350).step_by(50) {
        let batch: Vec<GlobalEvent> = (start..start + 50).map(|n| event(n, &text)).collect();
        direct.push(batch).await.unwrap();
    }
    let backend_id = direct.backend_id().await.unwrap();
    let pull = |id: &str, cursor: Option<u64>| {
        let cursor = match cursor {
            Some(n) => {
                json!({"_tag": "Some", "value": {"backendId": backend_id, "eventSequenceNumber": n}})
            }
            None => json!({"_tag": "None"}),
        };
        request(
            id,
            "SyncHttpRpc.Pull",
            json!({"storeId": "big", "cursor": cursor}),
        )
    };
    let mut cursor = None;
    let mut seen = Vec::new();
    let mut answers = 0;
    loop {
        answers += 1;
        assert!(answers <= 10, "the pulls end");
        let answer = post(&running, "big", pull(&answers.to_string(), cursor)).await;
        let messages = answer.as_array().unwrap();
        let (exit, chunks) = messages.split_last().unwrap();
        assert_eq!(exit["exit"], json!({"_tag": "Success"}), "{answer}");
        assert_eq!(chunks.len(), 1, "one chunk reaches the 20 KiB bound");
        let page = &chunks[0]["values"][0];
        for item in page["batch"].as_array().unwrap() {
            seen.push(item["eventEncoded"]["seqNum"].as_u64().unwrap());
        }
        let last = *seen.last().unwrap();
        cursor = Some(last);
        if last == 350 {
            assert_eq!(page["pageInfo"], json!({"_tag": "NoMore"}));
            break;
        }
        assert_eq!(
            page["pageInfo"],
            json!({"_tag": "MoreKnown", "remaining": 350 - last}),
            "answer {answers}"
        );
    }
    assert_eq!(seen, (1..=350).collect::<Vec<_>>());
    assert_eq!(answers, 4, "100 + 100 + 100 + 50 events");
    // The default bound answers all 350 events at once.
    let running = start(Limits::default(), Arc::new(Semaphore::new(1))).await;
    let direct = log(&running.bucket, "big");
    for start in (1..=350).step_by(50) {
        let batch: Vec<GlobalEvent> = (start..start + 50).map(|n| event(n, &text)).collect();
        direct.push(batch).await.unwrap();
    }
    let answer = post(
        &running,
        "big",
        request(
            "1",
            "SyncHttpRpc.Pull",
            json!({"storeId": "big", "cursor": {"_tag": "None"}}),
        ),
    )
    .await;
    assert_eq!(
        answer.as_array().unwrap().len(),
        5,
        "four chunks and the Exit"
    );
}

#[tokio::test]
async fn test_stores_past_the_limit_are_refused() {
    let limits = Limits {
        max_stores: 2,
        ..Limits::default()
    };
    let running = start(limits, Arc::new(Semaphore::new(1))).await;
    for store in ["one", "two"] {
        let (mut ws, _) = connect_async(running.url("ws", store, "ws")).await.unwrap();
        send(&mut ws, json!({"_tag": "Ping"})).await;
        assert_eq!(recv(&mut ws).await, json!({"_tag": "Pong"}));
    }
    match connect_async(running.url("ws", "three", "ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("at most 2 stores"), "{body}");
        }
        other => panic!("a third store was not refused: {:?}", other.map(|_| ())),
    }
    // The stores already open still work.
    assert!(connect_async(running.url("ws", "one", "ws")).await.is_ok());
}
