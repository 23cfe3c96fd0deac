//! `eventsync serve --listen ADDR [--backend URL] [--auth-token T] [--tls-cert F --tls-key F]`: LiveStore's sync
//! protocol over the configured backend, so LiveStore apps (`makeWsSync({ url })`) sync
//! into it. Stops gracefully on SIGTERM or Ctrl-C.

use clap::Args;
use eventsync_backends::StoreId;
use eventsync_server::{Limits, SyncServer, TlsSettings, token_auth};

use super::{backend, ctrl_c, out};
use crate::config::Config;
use eventsync::{Error, ErrorKind, Result};

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    listen: String,
    /// Refuse clients whose syncPayload.authToken (or `Authorization: Bearer`) is not this
    /// token; compared in constant time. Never logged
    #[arg(
        long,
        value_name = "TOKEN",
        env = "EVENTSYNC_AUTH_TOKEN",
        hide_env_values = true
    )]
    auth_token: Option<String>,
    /// With --auth-token: the token grants this store only (default: every store)
    #[arg(long, value_name = "ID", requires = "auth_token")]
    token_store: Option<String>,
    /// Most open WebSocket connections
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Most live pulls on one WebSocket connection
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_live_pulls_per_connection)]
    max_live_pulls: usize,
    /// Largest WebSocket message or HTTP body, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Most stores served
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_stores)]
    max_stores: usize,
    /// About how many bytes of events one HTTP pull answers; the rest follows at the
    /// client's next pull (`MoreKnown`)
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_http_pull_bytes)]
    max_http_pull_bytes: usize,
    /// Serve TLS (wss:// and https://) with this PEM certificate chain, leaf first
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

/// Runs `serve` until SIGTERM or Ctrl-C.
pub(crate) async fn run(config: &Config, args: &ServeArgs) -> Result<()> {
    if config.default_backend_dir().is_some() {
        config.ensure_data_dir()?;
    }
    let invalid = |message: String| Error::new(ErrorKind::Invalid, message);
    let auth = match &args.auth_token {
        None => None,
        Some(token) if token.is_empty() => return Err(invalid("--auth-token is empty".into())),
        Some(token) => {
            let store = args
                .token_store
                .as_deref()
                .map(StoreId::new)
                .transpose()
                .map_err(|e| invalid(format!("--token-store: {e}")))?;
            Some(token_auth(token.clone(), store))
        }
    };
    let limits = Limits {
        max_connections: args.max_connections.max(1),
        max_live_pulls_per_connection: args.max_live_pulls.max(1),
        max_message_bytes: args.max_message_bytes.max(1024),
        max_stores: args.max_stores.max(1),
        max_http_pull_bytes: args.max_http_pull_bytes.max(1),
        ..Limits::default()
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(TlsSettings::from_pem_files(cert, key).map_err(|e| invalid(e.to_string()))?)
        }
        _ => None,
    };
    let server = SyncServer::from_url(
        &config.backend,
        config.backend_options.clone(),
        limits,
        auth,
    )
    .map_err(|e| backend::backend_error(&config.backend, e))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot listen on {}", args.listen),
            )
            .with_source(e)
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal("reading the listening address").with_source(e))?;
    let (ws, http) = if tls.is_some() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    out(format!(
        "eventsync serve: listening on {addr} ({ws}://{addr}/sync, {http}://{addr}/sync), backend {}{}",
        backend::display_url(&config.backend),
        if args.auth_token.is_some() {
            ", auth token required"
        } else {
            ""
        }
    ))?;
    let served = match &tls {
        Some(tls) => server.serve_tls(listener, tls, terminate()).await,
        None => server.serve(listener, terminate()).await,
    };
    served.map_err(|e| Error::new(ErrorKind::Unavailable, "serving").with_source(e))?;
    out("eventsync serve: stopped")
}

/// SIGTERM (on Unix) or Ctrl-C.
async fn terminate() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                tokio::select! {
                    _ = sigterm.recv() => {}
                    () = ctrl_c() => {}
                }
            }
            Err(_) => ctrl_c().await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}
