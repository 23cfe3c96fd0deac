//! TLS for `eventsync serve` (`wss://` and `https://`), with rustls and its `ring`
//! provider: [`TlsSettings::from_pem_files`] reads a certificate chain and a private key,
//! and [`TlsListener`] accepts TCP connections and completes their handshakes off the
//! accept path (a client that stalls its handshake holds up nobody), handing axum only the
//! connections whose handshake finished.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; past this, accepting waits.
const MAX_HANDSHAKES: usize = 1024;

/// Why the TLS settings could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {message}")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the certificate and key together.
    #[error("the certificate {cert} and key {key} do not make a TLS server: {message}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        message: String,
    },
}

/// A server's TLS configuration: its certificate chain and key, checked.
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsSettings").finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1), and checks that they go together.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsSettings, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| TlsError::Pem {
                what: "certificate",
                path: cert.to_path_buf(),
                message: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Pem {
                what: "certificate",
                path: cert.to_path_buf(),
                message: "no CERTIFICATE block in the file".into(),
            });
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
            what: "private key",
            path: key.to_path_buf(),
            message: e.to_string(),
        })?;
        let config_error = |message: String| TlsError::Config {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            message,
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| config_error(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsSettings {
            config: Arc::new(config),
        })
    }
}

/// An axum listener that serves TLS: TCP connections are accepted by a task that runs each
/// handshake as a task of its own, at most [`MAX_HANDSHAKES`] at once, each within
/// [`HANDSHAKE_TIMEOUT`]. Dropping the listener stops accepting.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::AbortHandle,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl TlsListener {
    /// Serves TLS with `settings` on the connections `listener` accepts.
    pub fn new(listener: TcpListener, settings: &TlsSettings) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::clone(&settings.config));
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener {
            ready,
            local,
            acceptor: task.abort_handle(),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept(), if handshakes.len() < MAX_HANDSHAKES => {
                match accepted {
                    Ok((tcp, addr)) => {
                        let _ = tcp.set_nodelay(true);
                        let acceptor = acceptor.clone();
                        let ready = ready.clone();
                        handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(tls)) => {
                                    let _ = ready.send((tls, addr)).await;
                                }
                                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as axum does.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
            () = ready.closed() => return,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task ended (it never does while the listener lives).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
