//! `eventsync serve` over TLS: a CA and a server certificate made at test time (rcgen),
//! the server on 127.0.0.1 with them, and the `eventsync+wss://` backend trusting that CA
//! explicitly through its CA file. Without the CA the client refuses the server (no silent
//! fallback); a plain `ws://` client gets nothing from a TLS port; HTTPS answers the HTTP
//! transport; bad PEM files are named.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eventsync_backends::object_store::memory::InMemory;
use eventsync_backends::object_store::path::Path as KeyPath;
use eventsync_backends::{
    BackendError, GlobalSeq, RemoteBackend, RemoteOptions, SegmentLog, SyncBackend, conformance,
};
use eventsync_server::{Limits, Opener, SyncServer, TlsError, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::config;

/// A hang guard, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1, as PEM files in `dir`:
/// (CA, server certificate, server key).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "eventsync test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.as_ref().pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// A TLS server over a memory bucket; its address and a sender that stops it.
async fn serve_tls(
    settings: &TlsSettings,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let bucket = Arc::new(InMemory::new());
    let opener: Opener = Arc::new(move |store_id| {
        let backend: Arc<dyn SyncBackend> = Arc::new(
            SegmentLog::new(
                bucket.clone(),
                KeyPath::default(),
                store_id.as_str(),
                config(),
            )
            .unwrap(),
        );
        Box::pin(async move { Ok(backend) })
    });
    let server = SyncServer::new(opener, Limits::default(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let settings = settings.clone();
    tokio::spawn(async move {
        server
            .serve_tls(listener, &settings, async move {
                let _ = stopped.await;
            })
            .await
    });
    (addr, stop)
}

fn client(addr: std::net::SocketAddr, host: &str, ca: Option<&Path>) -> RemoteBackend {
    let options = RemoteOptions {
        ca_file: ca.map(Path::to_path_buf),
        ..RemoteOptions::default()
    };
    let url = format!("eventsync+wss://{host}:{}/sync", addr.port());
    RemoteBackend::new(&url, "tls", &options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_wss_with_an_explicit_ca_syncs_and_without_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(dir.path());
    let settings = TlsSettings::from_pem_files(&cert, &key).unwrap();
    let (addr, stop) = serve_tls(&settings).await;

    // Trusting the CA: push, pull live, head, by name and by IP.
    let a = client(addr, "localhost", Some(&ca));
    let b = client(addr, "127.0.0.1", Some(&ca));
    let mut live = tokio::time::timeout(PATIENCE, b.pull(GlobalSeq::ZERO, true))
        .await
        .unwrap()
        .unwrap();
    let events = conformance::make_events(GlobalSeq::ZERO, 3, "a", 10);
    a.push(events.clone()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let page = tokio::time::timeout(PATIENCE, futures::StreamExt::next(&mut live))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.extend(page.events);
    }
    assert_eq!(seen, events);
    assert_eq!(b.head().await.unwrap(), GlobalSeq(3));
    assert!(a.exists().await.unwrap());

    // Without the CA: refused, as invalid (retrying cannot help), naming the certificate.
    match client(addr, "localhost", None).head().await {
        Err(BackendError::Invalid { message }) => {
            assert!(message.contains("certificate"), "{message}");
            assert!(message.contains("EVENTSYNC_CA_FILE"), "{message}");
        }
        other => panic!("a server signed by an unknown CA was accepted: {other:?}"),
    }
    // A name the certificate does not hold: refused too.
    let wrong_name = format!("eventsync+wss://127.0.0.2:{}/sync", addr.port());
    let options = RemoteOptions {
        ca_file: Some(ca.clone()),
        ..RemoteOptions::default()
    };
    let other = RemoteBackend::new(&wrong_name, "tls", &options).unwrap();
    assert!(matches!(
        other.head().await,
        Err(BackendError::Invalid { .. } | BackendError::Unavailable { .. })
    ));
    // A plain ws:// client gets no WebSocket from the TLS port.
    let plain = RemoteBackend::new(
        &format!("eventsync+ws://127.0.0.1:{}/sync", addr.port()),
        "tls",
        &RemoteOptions::default(),
    )
    .unwrap();
    assert!(plain.head().await.is_err());
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_https_answers_the_http_transport() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(dir.path());
    let settings = TlsSettings::from_pem_files(&cert, &key).unwrap();
    let (addr, stop) = serve_tls(&settings).await;
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = std::fs::read(&ca).unwrap();
    for cert in rustls_pemfile_certs(&ca_pem) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let body = r#"{"_tag":"Request","id":"1","tag":"SyncHttpRpc.Ping","payload":{"storeId":"tls"},"headers":[]}"#;
    let request = format!(
        "POST /sync?storeId=tls&transport=http HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = tokio::time::timeout(PATIENCE, tls.read_to_string(&mut response))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("SyncMessage.Pong"), "{response}");
    let _ = stop.send(());
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn test_bad_pem_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = make_certificates(dir.path());
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a pem file\n").unwrap();
    let missing = dir.path().join("missing.pem");
    for (c, k, what) in [
        (&empty, &key, "empty.pem"),
        (&missing, &key, "missing.pem"),
        (&cert, &empty, "empty.pem"),
        (&cert, &cert, "server.pem"),
    ] {
        match TlsSettings::from_pem_files(c, k) {
            Err(e @ (TlsError::Pem { .. } | TlsError::Config { .. })) => {
                assert!(e.to_string().contains(what), "{e}");
            }
            Ok(_) => panic!("{} and {} made a TLS server", c.display(), k.display()),
        }
    }
    // The CA's own key does not go with the server's certificate: the pair is checked.
    let (_, _, other_key) = make_certificates(&{
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        other
    });
    match TlsSettings::from_pem_files(&cert, &other_key) {
        Err(e @ TlsError::Config { .. }) => assert!(e.to_string().contains("server.pem"), "{e}"),
        other => panic!("a key of another certificate was accepted: {other:?}"),
    }
}
