//! The HTTP transport: one POSTed `Request` per call, answered with a JSON array of every
//! message of that call (chunks, then the `Exit`). LiveStore's client ignores the status,
//! so protocol errors are `200` with a failure `Exit`; input that is not a request at all
//! gets `400` with a `Defect`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventsync_backends::GlobalSeq;
use serde_json::{Value, json};

use crate::hub::StoreHub;
use crate::protocol::{
    self, ExistsRequest, FromClient, PingRequest, PullRequest, PushRequest, RpcError,
};

/// A JSON array answer.
pub(crate) fn answer(status: StatusCode, messages: Vec<Value>) -> Response {
    let content_type = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (status, content_type, Value::Array(messages).to_string()).into_response()
}

/// A `400` whose body says what was wrong, as a `Defect` LiveStore can report.
pub(crate) fn defect(status: StatusCode, message: &str) -> Response {
    answer(status, vec![json!({"_tag": "Defect", "defect": message})])
}

/// Serves one POSTed body for store `hub`; a pull answers at most about `max_pull_bytes`
/// of events (the rest on the client's next pull, announced by `MoreKnown`).
pub(crate) async fn call(hub: Arc<StoreHub>, body: &[u8], max_pull_bytes: usize) -> Response {
    let Ok(text) = std::str::from_utf8(body) else {
        return defect(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let (id, tag, payload) = match protocol::decode_from_client(text) {
        Ok(FromClient::Request { id, tag, payload }) => (id, tag, payload),
        Ok(_) => {
            return defect(
                StatusCode::BAD_REQUEST,
                "the HTTP transport takes one Request per POST",
            );
        }
        Err(e) => return defect(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut messages = Vec::new();
    let result = match tag.as_str() {
        "SyncHttpRpc.Ping" => hub
            .decode::<PingRequest>(payload)
            .map(|_| Some(protocol::http_pong())),
        "SyncHttpRpc.Pull" => match hub.decode::<PullRequest>(payload) {
            Err(e) => Err(e),
            Ok(request) => pull(&hub, &id, request, max_pull_bytes, &mut messages)
                .await
                .map(|()| None),
        },
        "SyncHttpRpc.Push" => match hub.decode::<PushRequest>(payload) {
            Err(e) => Err(e),
            Ok(request) => hub
                .push(request.batch, request.backend_id.into_option())
                .await
                .map(|()| Some(json!({}))),
        },
        protocol::EXISTS_HTTP => match hub.decode::<ExistsRequest>(payload) {
            Err(e) => Err(e),
            Ok(_) => hub.exists().await.map(|e| Some(protocol::exists_value(e))),
        },
        other => {
            let e = RpcError::unknown(format!(
                "unknown RPC {:?}",
                other.escape_default().to_string()
            ));
            return answer(
                StatusCode::BAD_REQUEST,
                vec![protocol::exit_failure(&id, &e)],
            );
        }
    };
    match result {
        Ok(value) => messages.push(protocol::exit_success(&id, value)),
        Err(e) => messages.push(protocol::exit_failure(&id, &e)),
    }
    answer(StatusCode::OK, messages)
}

async fn pull(
    hub: &StoreHub,
    id: &str,
    request: PullRequest,
    max_bytes: usize,
    messages: &mut Vec<Value>,
) -> Result<(), RpcError> {
    let cursor = match request.cursor.into_option() {
        Some(cursor) => {
            hub.check_backend_id(&cursor.backend_id).await?;
            GlobalSeq(cursor.event_sequence_number)
        }
        None => GlobalSeq::ZERO,
    };
    hub.send_backlog(id, cursor, false, Some(max_bytes), messages)
        .await?;
    Ok(())
}
