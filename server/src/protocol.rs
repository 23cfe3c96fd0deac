//! The wire of LiveStore's sync-cf 0.4.0 protocol: Effect-RPC envelopes, the pull and push
//! payloads, and the tagged errors, with the exact `_tag` strings a LiveStore client expects.
//! `docs/` and the module docs of `ws` and `http` say which transport sends what.

use eventsync_backends::{GlobalEvent, GlobalSeq};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most events in one pull chunk (LiveStore's own limit).
pub(crate) const MAX_EVENTS_PER_CHUNK: usize = 100;
/// Most bytes of events in one pull chunk (LiveStore keeps its frames under ~900 KB).
pub(crate) const MAX_BYTES_PER_CHUNK: usize = 900 * 1024;

/// An Effect `Option<T>`: `{"_tag":"None"}` or `{"_tag":"Some","value":T}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "_tag")]
pub(crate) enum EffectOption<T> {
    /// No value.
    None,
    /// A value.
    Some {
        /// The value.
        value: T,
    },
}

impl<T> EffectOption<T> {
    pub(crate) fn into_option(self) -> Option<T> {
        match self {
            EffectOption::None => None,
            EffectOption::Some { value } => Some(value),
        }
    }
}

/// A pull's cursor: the client's backend id and the last event it has.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Cursor {
    pub(crate) backend_id: String,
    pub(crate) event_sequence_number: u64,
}

/// The payload of `SyncWsRpc.Pull` / `SyncHttpRpc.Pull` (HTTP has no `live`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PullRequest {
    pub(crate) store_id: String,
    #[serde(default)]
    pub(crate) live: bool,
    pub(crate) cursor: EffectOption<Cursor>,
}

/// The payload of `SyncWsRpc.Push` / `SyncHttpRpc.Push`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PushRequest {
    pub(crate) store_id: String,
    pub(crate) batch: Vec<GlobalEvent>,
    pub(crate) backend_id: EffectOption<String>,
}

/// The payload of `SyncHttpRpc.Ping`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PingRequest {
    pub(crate) store_id: String,
}

/// eventsync's own RPC over the WebSocket transport (not LiveStore's): whether the store
/// exists, without creating it. Payload `{storeId}`; success value `{"exists": bool}`.
pub(crate) const EXISTS_WS: &str = "EventsyncWsRpc.Exists";
/// The same over HTTP.
pub(crate) const EXISTS_HTTP: &str = "EventsyncHttpRpc.Exists";

/// The payload of [`EXISTS_WS`] / [`EXISTS_HTTP`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExistsRequest {
    pub(crate) store_id: String,
}

/// The success value of an exists RPC.
pub(crate) fn exists_value(exists: bool) -> Value {
    json!({ "exists": exists })
}

/// A request payload that names its store.
pub(crate) trait ForStore {
    fn store_id(&self) -> &str;
}

impl ForStore for PullRequest {
    fn store_id(&self) -> &str {
        &self.store_id
    }
}

impl ForStore for PushRequest {
    fn store_id(&self) -> &str {
        &self.store_id
    }
}

impl ForStore for ExistsRequest {
    fn store_id(&self) -> &str {
        &self.store_id
    }
}

impl ForStore for PingRequest {
    fn store_id(&self) -> &str {
        &self.store_id
    }
}

/// One message from a client, decoded from a JSON object, or why it could not be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FromClient {
    /// An RPC call: `tag` names it, `payload` is still JSON.
    Request {
        id: String,
        tag: String,
        payload: Value,
    },
    /// Flow control after a chunk; ignored.
    Ack,
    /// The client cancelled request `request_id`.
    Interrupt { request_id: String },
    /// Liveness; answered with a pong.
    Ping,
    /// End of input; ignored.
    Eof,
}

/// Why a client's frame or body is not a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// JSON, but not an Effect-RPC message object.
    #[error("not an Effect-RPC message: {0}")]
    Envelope(String),
    /// A message object with a `_tag` this server does not know.
    #[error("unknown message _tag {0:?}")]
    UnknownTag(String),
}

/// Decodes one client message (one WebSocket text frame, or one HTTP body).
pub(crate) fn decode_from_client(text: &str) -> Result<FromClient, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(DecodeError::Envelope("expected one JSON object".into()));
    };
    let string_field = |object: &serde_json::Map<String, Value>, name: &str| match object.get(name)
    {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(DecodeError::Envelope(format!(
            "field {name:?} must be a string"
        ))),
    };
    let tag = string_field(&object, "_tag")?;
    match tag.as_str() {
        "Request" => Ok(FromClient::Request {
            id: string_field(&object, "id")?,
            tag: string_field(&object, "tag")?,
            payload: object.remove("payload").unwrap_or(Value::Null),
        }),
        "Ack" => Ok(FromClient::Ack),
        "Interrupt" => Ok(FromClient::Interrupt {
            request_id: string_field(&object, "requestId")?,
        }),
        "Ping" => Ok(FromClient::Ping),
        "Eof" => Ok(FromClient::Eof),
        _ => Err(DecodeError::UnknownTag(tag)),
    }
}

/// The errors a push or pull may end with: the only three LiveStore 0.4.0 declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RpcError {
    /// The push's parent is not the head: pull, rebase, push again.
    ServerAhead {
        minimum_expected: GlobalSeq,
        provided: GlobalSeq,
    },
    /// The client worked in another incarnation of the store.
    BackendIdMismatch { expected: String, received: String },
    /// Anything else; LiveStore retries it with back-off.
    Unknown { message: String },
}

impl RpcError {
    pub(crate) fn unknown(message: impl Into<String>) -> RpcError {
        RpcError::Unknown {
            message: message.into(),
        }
    }

    /// The error's tagged JSON.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            RpcError::ServerAhead {
                minimum_expected,
                provided,
            } => json!({
                "_tag": "ServerAheadError",
                "minimumExpectedNum": minimum_expected.0,
                "providedNum": provided.0,
            }),
            RpcError::BackendIdMismatch { expected, received } => json!({
                "_tag": "BackendIdMismatchError",
                "expected": expected,
                "received": received,
            }),
            RpcError::Unknown { message } => json!({
                "_tag": "UnknownError",
                "cause": { "name": "EventsyncServerError", "message": message },
            }),
        }
    }
}

/// `pageInfo` of a pull chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageInfo {
    NoMore,
    MoreKnown(u64),
    MoreUnknown,
}

impl PageInfo {
    fn to_json(self) -> Value {
        match self {
            PageInfo::NoMore => json!({"_tag": "NoMore"}),
            PageInfo::MoreKnown(remaining) => json!({"_tag": "MoreKnown", "remaining": remaining}),
            PageInfo::MoreUnknown => json!({"_tag": "MoreUnknown"}),
        }
    }
}

/// One `PullResponse`: `events` with the `createdAt` they were stamped with, if known.
pub(crate) fn pull_response(
    events: &[GlobalEvent],
    created_at: Option<&str>,
    page_info: PageInfo,
    backend_id: &str,
) -> Value {
    let metadata = match created_at {
        Some(at) => json!({
            "_tag": "Some",
            "value": {"_tag": "SyncMessage.SyncMetadata", "createdAt": at},
        }),
        None => json!({"_tag": "None"}),
    };
    let batch: Vec<Value> = events
        .iter()
        .map(|event| json!({"eventEncoded": event, "metadata": metadata}))
        .collect();
    json!({"batch": batch, "pageInfo": page_info.to_json(), "backendId": backend_id})
}

/// `{"_tag":"Chunk"}` carrying one stream item.
pub(crate) fn chunk(request_id: &str, value: Value) -> Value {
    json!({"_tag": "Chunk", "requestId": request_id, "values": [value]})
}

/// `{"_tag":"Exit"}` with a success; `value` absent for streams (their success is void).
pub(crate) fn exit_success(request_id: &str, value: Option<Value>) -> Value {
    let exit = match value {
        Some(value) => json!({"_tag": "Success", "value": value}),
        None => json!({"_tag": "Success"}),
    };
    json!({"_tag": "Exit", "requestId": request_id, "exit": exit})
}

/// `{"_tag":"Exit"}` with a typed failure.
pub(crate) fn exit_failure(request_id: &str, error: &RpcError) -> Value {
    json!({
        "_tag": "Exit",
        "requestId": request_id,
        "exit": {"_tag": "Failure", "cause": {"_tag": "Fail", "error": error.to_json()}},
    })
}

/// `{"_tag":"Pong"}`, the answer to a WebSocket ping.
pub(crate) fn pong() -> Value {
    json!({"_tag": "Pong"})
}

/// The success value of `SyncHttpRpc.Ping`.
pub(crate) fn http_pong() -> Value {
    json!({"_tag": "SyncMessage.Pong"})
}

/// Splits `events` into chunks of at most [`MAX_EVENTS_PER_CHUNK`] events and about
/// [`MAX_BYTES_PER_CHUNK`] bytes (a single larger event gets a chunk of its own).
pub(crate) fn split_chunks(events: &[GlobalEvent]) -> Vec<&[GlobalEvent]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, event) in events.iter().enumerate() {
        let len = serde_json::to_vec(event).map_or(0, |v| v.len());
        let full = i - start == MAX_EVENTS_PER_CHUNK || bytes + len > MAX_BYTES_PER_CHUNK;
        if i > start && full {
            chunks.push(&events[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += len;
    }
    if start < events.len() {
        chunks.push(&events[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> GlobalEvent {
        GlobalEvent {
            seq_num: GlobalSeq(n),
            parent_seq_num: GlobalSeq(n - 1),
            name: "v1.TodoCreated".into(),
            args: json!({"id": n.to_string(), "text": "x"}),
            client_id: "c".into(),
            session_id: "s".into(),
        }
    }

    #[test]
    fn test_decode_reads_the_envelopes_and_names_what_is_wrong() {
        let request = decode_from_client(
            r#"{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","payload":{"a":1},"traceId":"t","headers":[]}"#,
        )
        .unwrap();
        assert_eq!(
            request,
            FromClient::Request {
                id: "0".into(),
                tag: "SyncWsRpc.Pull".into(),
                payload: json!({"a": 1}),
            }
        );
        assert_eq!(
            decode_from_client(r#"{"_tag":"Ping"}"#),
            Ok(FromClient::Ping)
        );
        assert_eq!(
            decode_from_client(r#"{"_tag":"Interrupt","requestId":"3"}"#),
            Ok(FromClient::Interrupt {
                request_id: "3".into()
            })
        );
        assert!(matches!(decode_from_client("{"), Err(DecodeError::Json(_))));
        assert!(matches!(
            decode_from_client("[]"),
            Err(DecodeError::Envelope(_))
        ));
        assert!(matches!(
            decode_from_client(r#"{"_tag":"Request","tag":"x"}"#),
            Err(DecodeError::Envelope(m)) if m.contains("\"id\"")
        ));
        assert_eq!(
            decode_from_client(r#"{"_tag":"Nope"}"#),
            Err(DecodeError::UnknownTag("Nope".into()))
        );
    }

    #[test]
    fn test_payloads_decode_effect_options() {
        let pull: PullRequest = serde_json::from_value(json!({
            "storeId": "s", "payload": {"authToken": "t"}, "live": true,
            "cursor": {"_tag": "Some", "value": {"backendId": "b", "eventSequenceNumber": 4}}
        }))
        .unwrap();
        assert!(pull.live);
        assert_eq!(
            pull.cursor.into_option(),
            Some(Cursor {
                backend_id: "b".into(),
                event_sequence_number: 4
            })
        );
        let push: PushRequest = serde_json::from_value(json!({
            "storeId": "s", "batch": [event(1)], "backendId": {"_tag": "None"}
        }))
        .unwrap();
        assert_eq!(push.backend_id.into_option(), None);
    }

    #[test]
    fn test_errors_have_livestores_tags_and_fields() {
        let ahead = RpcError::ServerAhead {
            minimum_expected: GlobalSeq(6),
            provided: GlobalSeq(4),
        };
        assert_eq!(
            exit_failure("1", &ahead),
            json!({"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":6,"providedNum":4}}}})
        );
        assert_eq!(
            exit_success("2", None),
            json!({"_tag":"Exit","requestId":"2","exit":{"_tag":"Success"}})
        );
    }

    #[test]
    fn test_split_chunks_caps_events_per_chunk() {
        let events: Vec<GlobalEvent> = (1..=250).map(event).collect();
        let sizes: Vec<usize> = split_chunks(&events).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert!(split_chunks(&[]).is_empty());
    }
}
