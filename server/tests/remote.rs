//! The `eventsync+ws://` backend ([`RemoteBackend`]) against an in-process `eventsync serve`:
//! the conformance checks of the contract that a backend behind a server can keep, over a
//! memory bucket, a folder, and S3 (`EVENTSYNC_TEST_S3_URL`; a not-run report locally, a
//! failure under `CI=true`); then auth, bad URLs and a server that sends garbage.
//!
//! The checks that need raw access to the objects (corrupting, wiping, injecting faults)
//! are the segment log's, run by the backends crate; through a server they would test the
//! segment log again.

use std::sync::Arc;
use std::time::Duration;

use eventsync_backends::conformance::{self, S3_NOT_CONFIGURED, in_ci, report_not_run};
use eventsync_backends::object_store::memory::InMemory;
use eventsync_backends::object_store::path::Path;
use eventsync_backends::{
    BackendError, GlobalSeq, OpenOptions, RemoteBackend, RemoteOptions, SegmentLog, SyncBackend,
    open_backend,
};
use eventsync_server::{Limits, Opener, SyncServer, token_auth};
use futures::{SinkExt, StreamExt};

mod support;
use support::config;

/// A hang guard, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(300);

/// A server on 127.0.0.1, stopped when dropped.
struct Running {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _guard: Option<tempfile::TempDir>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Running {
    fn url(&self) -> String {
        format!("eventsync+ws://{}/sync", self.addr)
    }

    fn client(&self, store: &str, token: Option<&str>) -> RemoteBackend {
        let options = RemoteOptions {
            auth_token: token.map(str::to_owned),
            ..RemoteOptions::default()
        };
        RemoteBackend::new(&self.url(), store, &options).expect("a good URL")
    }
}

async fn serve(server: SyncServer, guard: Option<tempfile::TempDir>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        _guard: guard,
    }
}

fn memory_server(auth: Option<eventsync_server::Auth>) -> SyncServer {
    memory_server_on(Arc::new(InMemory::new()), auth)
}

fn memory_server_on(bucket: Arc<InMemory>, auth: Option<eventsync_server::Auth>) -> SyncServer {
    let opener: Opener = Arc::new(move |store_id| {
        let backend: Arc<dyn SyncBackend> = Arc::new(
            SegmentLog::new(bucket.clone(), Path::default(), store_id.as_str(), config()).unwrap(),
        );
        Box::pin(async move { Ok(backend) })
    });
    SyncServer::new(opener, Limits::default(), auth)
}

async fn start(kind: &str, test: &str) -> Option<Running> {
    let options = OpenOptions {
        segment_log: config(),
        ..OpenOptions::default()
    };
    match kind {
        "memory" => Some(serve(memory_server(None), None).await),
        "folder" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("file://{}", dir.path().join("backend").display());
            let server = SyncServer::from_url(&url, options, Limits::default(), None).unwrap();
            Some(serve(server, Some(dir)).await)
        }
        _ => {
            let Ok(url) = std::env::var("EVENTSYNC_TEST_S3_URL") else {
                assert!(!in_ci(), "CI requires the S3 run, but {S3_NOT_CONFIGURED}");
                report_not_run(
                    &format!("eventsync-server --test remote {test}"),
                    S3_NOT_CONFIGURED,
                );
                return None;
            };
            let run = eventsync_backends::Entropy::from_os().hex::<4>();
            let url = format!("{}/remote-{run}", url.trim_end_matches('/'));
            let server = SyncServer::from_url(&url, options, Limits::default(), None).unwrap();
            Some(serve(server, None).await)
        }
    }
}

fn store_id(label: &str) -> String {
    format!(
        "{label}-{}",
        eventsync_backends::Entropy::from_os().hex::<8>()
    )
}

/// One test per (server kind, check) of the checks that take a fresh `&dyn SyncBackend`
/// (the list is the conformance suite's, `eventsync_backends::backend_checks!`).
macro_rules! remote_conformance {
    ($kind:ident: $($check:ident),* $(,)?) => {
        mod $kind {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let name = concat!(stringify!($kind), "::", stringify!($check));
                    let Some(server) = start(stringify!($kind), name).await else { return };
                    let backend = server.client(&store_id(stringify!($check)), None);
                    let check = conformance::$check(&backend);
                    if tokio::time::timeout(PATIENCE, check).await.is_err() {
                        panic!("{name} did not finish within {PATIENCE:?}");
                    }
                }
            )*
        }
    };
}

eventsync_backends::backend_checks!(remote_conformance { memory: });
eventsync_backends::backend_checks!(remote_conformance { folder: });
eventsync_backends::backend_checks!(remote_conformance { s3: });

#[tokio::test]
async fn test_two_clients_share_a_store_and_learn_its_backend_id() {
    let server = serve(memory_server(None), None).await;
    let store = store_id("shared");
    let a = server.client(&store, None);
    let b = server.client(&store, None);
    let id = a.backend_id().await.unwrap();
    assert_eq!(b.backend_id().await.unwrap(), id);
    let mut live = b.pull(GlobalSeq::ZERO, true).await.unwrap();
    let first = live.next().await.unwrap().unwrap();
    assert!(first.events.is_empty());
    let events = conformance::make_events(GlobalSeq::ZERO, 5, "a", 10);
    a.push(events.clone()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let page = tokio::time::timeout(PATIENCE, live.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.extend(page.events);
    }
    assert_eq!(seen, events);
    drop(live);
    assert_eq!(b.head().await.unwrap(), GlobalSeq(5));
    // A fresh client reads the head from nothing, and a cursor pull learns the id first.
    let c = server.client(&store, None);
    assert_eq!(c.head().await.unwrap(), GlobalSeq(5));
    let d = server.client(&store, None);
    assert_eq!(
        conformance::pull_events(&d, GlobalSeq(3)).await,
        events[3..]
    );
    // A push on a stale head is ServerAhead, with the head.
    match c
        .push(conformance::make_events(GlobalSeq(2), 1, "c", 10))
        .await
    {
        Err(BackendError::ServerAhead { head }) => assert_eq!(head, GlobalSeq(5)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn test_a_new_connection_after_the_server_restarts() {
    let bucket = Arc::new(InMemory::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(
        memory_server_on(bucket.clone(), None).serve(listener, async move {
            let _ = stopped.await;
        }),
    );
    let url = format!("eventsync+ws://{addr}/sync");
    let client = RemoteBackend::new(&url, "s", &RemoteOptions::default()).unwrap();
    client
        .push(conformance::make_events(GlobalSeq::ZERO, 2, "a", 10))
        .await
        .unwrap();
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
    // Down: a retryable error, not a hang.
    match client.head().await {
        Err(e) => assert!(e.is_retryable(), "{e}"),
        Ok(head) => panic!("a stopped server answered head {head}"),
    }
    // Up again on the same port: the next call reconnects.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(memory_server_on(bucket, None).serve(listener, async move {
        let _ = stopped.await;
    }));
    assert_eq!(client.head().await.unwrap(), GlobalSeq(2));
    client.ping().await.unwrap();
    let _ = stop.send(());
}

#[tokio::test]
async fn test_the_token_goes_in_the_authorization_header() {
    let server = serve(memory_server(Some(token_auth("sekrit", None))), None).await;
    let good = server.client("s", Some("sekrit"));
    good.push(conformance::make_events(GlobalSeq::ZERO, 1, "a", 10))
        .await
        .unwrap();
    assert_eq!(good.head().await.unwrap(), GlobalSeq(1));
    for token in [Some("guessed-xyz"), None] {
        let bad = server.client("s", token);
        match bad.head().await {
            Err(BackendError::AccessDenied { message }) => {
                assert!(message.contains("auth token"), "{message}");
                assert!(
                    !message.contains("sekrit") && !message.contains("guessed-xyz"),
                    "{message}"
                );
            }
            other => panic!("token {token:?} gave {other:?}"),
        }
        assert!(matches!(
            bad.push(conformance::make_events(GlobalSeq(1), 1, "b", 10))
                .await,
            Err(BackendError::AccessDenied { .. })
        ));
    }
    assert_eq!(
        good.head().await.unwrap(),
        GlobalSeq(1),
        "nothing else landed"
    );
}

#[tokio::test]
async fn test_open_backend_takes_the_scheme_and_refuses_bad_urls() {
    let server = serve(memory_server(None), None).await;
    let backend = open_backend(&server.url(), "s", &OpenOptions::default())
        .await
        .unwrap();
    assert_eq!(backend.info().name, "eventsync+ws");
    assert_eq!(backend.head().await.unwrap(), GlobalSeq::ZERO);
    // Nobody listens on this port (it was just freed).
    let free = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let nobody = open_backend(
        &format!("eventsync+ws://{free}/sync"),
        "s",
        &OpenOptions::default(),
    )
    .await
    .unwrap();
    assert!(nobody.ping().await.unwrap_err().is_retryable());
    for url in [
        "eventsync+ws://",
        "eventsync+ws://h/p?storeId=x",
        "eventsync+ws://a:b@h/p",
    ] {
        assert!(
            matches!(
                open_backend(url, "s", &OpenOptions::default()).await,
                Err(BackendError::Invalid { .. })
            ),
            "{url}"
        );
    }
    // A server URL is not an object store: `serve --backend eventsync+ws://…` is refused.
    assert!(matches!(
        SyncServer::from_url(
            &server.url(),
            OpenOptions::default(),
            Limits::default(),
            None
        ),
        Err(BackendError::Invalid { .. })
    ));
}

/// A WebSocket server that answers every frame with `reply`.
async fn garbage_server(reply: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(_)) = ws.next().await {
                    if ws.send(reply.into()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn test_a_server_that_sends_garbage_gives_corrupt_errors() {
    for (reply, expect) in [
        ("not json", "not JSON"),
        (
            r#"{"_tag":"Chunk","requestId":"0","values":[{"batch":7}]}"#,
            "does not decode",
        ),
        (r#"{"_tag":"Surprise"}"#, "unknown message _tag"),
        (
            r#"{"_tag":"Exit","requestId":"0","exit":{"_tag":"Perhaps"}}"#,
            "neither Success",
        ),
    ] {
        let addr = garbage_server(reply).await;
        let client = RemoteBackend::new(
            &format!("eventsync+ws://{addr}/x"),
            "s",
            &RemoteOptions::default(),
        )
        .unwrap();
        let error = match client.pull(GlobalSeq::ZERO, false).await {
            Err(e) => e,
            Ok(stream) => {
                let items: Vec<_> = stream.collect().await;
                match items.into_iter().find_map(Result::err) {
                    Some(e) => e,
                    None => panic!("{reply}: the pull succeeded"),
                }
            }
        };
        match error {
            BackendError::Corrupt { message, .. } => {
                assert!(message.contains(expect), "{reply}: {message}")
            }
            other => panic!("{reply} gave {other}"),
        }
    }
}
