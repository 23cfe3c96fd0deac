//! `eventsync serve`: LiveStore's sync protocol (`@livestore/sync-cf` 0.4.0, WebSocket and
//! HTTP transports) over any eventsync [`SyncBackend`], so unmodified LiveStore clients,
//! and eventsync clients without bucket credentials, sync into a bucket, a folder or memory.
//!
//! Appends go through [`SyncBackend::push`], so the backend still numbers every event and
//! several servers over one bucket stay correct (the loser of a race answers
//! `ServerAheadError`). Each store's live pulls are fed by this server's pushes and by a
//! tail of the backend, so events appended elsewhere reach them too.
//!
//! # Layout
//!
//! - `protocol`: the wire (Effect-RPC envelopes, payloads, LiveStore's tagged errors).
//! - `config`: [`Limits`].
//! - `auth`: the [`Auth`] hook and [`token_auth`].
//! - `query`: the routing query (`storeId`, `transport`, the double-encoded `payload`).
//! - `hub`: one store's backend, backend id, push lock, broadcast and tail.
//! - `ws` and `http`: the two transports.
//! - `tls`: [`TlsSettings`] and the [`TlsListener`] behind [`SyncServer::serve_tls`].
//! - `load`: a load generator (WebSocket clients speaking the protocol), for
//!   `eventsync bench --serve` and the load tests; it uses nothing else of this crate.
//! - here: [`SyncServer`], the router and graceful shutdown.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod auth;
pub mod config;
mod http;
mod hub;
pub mod load;
mod protocol;
mod query;
pub mod tls;
mod ws;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use eventsync_backends::{BackendError, OpenOptions, StoreId, SyncBackend, open_backend};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower_http::cors::CorsLayer;

pub use auth::{Auth, AuthRefusal, AuthRequest, token_auth};
pub use config::Limits;
pub use hub::Opener;
pub use tls::{TlsError, TlsListener, TlsSettings};

use crate::hub::Hubs;
use crate::query::{Transport, parse_query};

/// A sync server: build it with [`SyncServer::new`] or [`SyncServer::from_url`], then
/// [`serve`](SyncServer::serve) it on a listener.
#[derive(Debug, Clone)]
pub struct SyncServer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    hubs: Hubs,
    limits: Limits,
    auth: Option<Auth>,
    connections: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
}

impl SyncServer {
    /// A server whose stores' backends `opener` opens.
    pub fn new(opener: Opener, limits: Limits, auth: Option<Auth>) -> SyncServer {
        let (shutdown, _) = watch::channel(false);
        SyncServer {
            shared: Arc::new(Shared {
                hubs: Hubs::new(opener, limits.clone()),
                connections: Arc::new(Semaphore::new(limits.max_connections)),
                limits,
                auth,
                shutdown,
            }),
        }
    }

    /// A server over the backend `url` names (as [`open_backend`] reads it), one store per
    /// store id. Checks the URL once, up front.
    pub fn from_url(
        url: &str,
        options: OpenOptions,
        limits: Limits,
        auth: Option<Auth>,
    ) -> Result<SyncServer, BackendError> {
        eventsync_backends::open_object_store(url, &options)?;
        let url = url.to_string();
        let opener: Opener = Arc::new(move |store_id: StoreId| {
            let url = url.clone();
            let options = options.clone();
            Box::pin(async move {
                let backend: Arc<dyn SyncBackend> =
                    open_backend(&url, store_id.as_str(), &options).await?;
                Ok(backend)
            })
        });
        Ok(SyncServer::new(opener, limits, auth))
    }

    /// The router: every path, routed by the query; CORS for browsers.
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(entry)
            .with_state(Arc::clone(&self.shared))
            .layer(CorsLayer::very_permissive())
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting, lets pushes in
    /// flight finish, closes every WebSocket (1001) and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_on(listener, shutdown).await
    }

    /// [`serve`](SyncServer::serve) over TLS (`wss://` and `https://`) with `tls`.
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls: &TlsSettings,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = TlsListener::new(listener, tls)?;
        self.serve_on(listener, shutdown).await
    }

    async fn serve_on<L>(
        self,
        listener: L,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()>
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let shared = Arc::clone(&self.shared);
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down");
            shared.shutdown.send_replace(true);
        };
        axum::serve(listener, self.router())
            .with_graceful_shutdown(signal)
            .await?;
        // Every connection holds a permit until its socket is closed.
        let all = u32::try_from(self.shared.limits.max_connections).unwrap_or(u32::MAX);
        let _ = self.shared.connections.acquire_many(all).await;
        Ok(())
    }
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::info!(%status, %message, "request refused");
    (status, message).into_response()
}

/// Every request: check the query, run the auth hook, and hand over to a transport.
async fn entry(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    body: Body,
) -> Response {
    let query = match parse_query(raw.as_deref()) {
        Ok(query) => query,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let refusal = shared.auth.as_ref().and_then(|auth| {
        auth.check(&AuthRequest {
            store_id: &query.store_id,
            payload: query.payload.as_ref(),
            headers: &headers,
        })
        .err()
    });
    match query.transport {
        Transport::Ws => {
            let upgrade = match upgrade {
                Ok(upgrade) => upgrade,
                Err(_) => {
                    return refuse(
                        StatusCode::UPGRADE_REQUIRED,
                        "transport=ws needs a WebSocket upgrade",
                    );
                }
            };
            let upgrade = upgrade
                .max_message_size(shared.limits.max_message_bytes)
                .max_frame_size(shared.limits.max_message_bytes);
            if let Some(refusal) = refusal {
                tracing::info!(store = %query.store_id, reason = %refusal.reason, "WebSocket refused");
                return upgrade.on_upgrade(move |mut socket| async move {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: ws::close::POLICY,
                            reason: refusal.reason.into(),
                        })))
                        .await;
                });
            }
            let Ok(permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "too many connections (at most {})",
                        shared.limits.max_connections
                    ),
                );
            };
            let hub = match shared.hubs.get(&query.store_id).await {
                Ok(hub) => hub,
                Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            };
            let limits = shared.limits.clone();
            let shutdown = shared.shutdown.subscribe();
            upgrade.on_upgrade(move |socket| serve_socket(socket, hub, limits, shutdown, permit))
        }
        Transport::Http => {
            if method != Method::POST {
                return refuse(StatusCode::METHOD_NOT_ALLOWED, "transport=http takes POST");
            }
            if let Some(refusal) = refusal {
                return refuse(refusal.status, refusal.reason);
            }
            let body = match axum::body::to_bytes(body, shared.limits.max_message_bytes).await {
                Ok(body) => body,
                Err(_) => {
                    return http::defect(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("the body is over {} bytes", shared.limits.max_message_bytes),
                    );
                }
            };
            let hub = match shared.hubs.get(&query.store_id).await {
                Ok(hub) => hub,
                Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            };
            http::call(hub, &body, shared.limits.max_http_pull_bytes).await
        }
    }
}

async fn serve_socket(
    socket: axum::extract::ws::WebSocket,
    hub: Arc<hub::StoreHub>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    ws::run(socket, hub, limits, shutdown).await;
    drop(permit);
}
