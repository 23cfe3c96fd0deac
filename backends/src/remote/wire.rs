//! The client's side of LiveStore's sync-cf WebSocket wire, as `eventsync serve` speaks it:
//! the request envelopes this backend sends and the server frames it reads, each decoded
//! into a typed value or a [`BackendError::Corrupt`] naming what was wrong.

use serde_json::{Value, json};

use crate::{BackendError, GlobalEvent, GlobalSeq, PageInfo, PullPage};

/// What `Corrupt` errors about server frames name as their key.
pub(crate) const FRAME: &str = "server frame";

fn corrupt(message: impl Into<String>) -> BackendError {
    BackendError::Corrupt {
        key: FRAME.into(),
        message: message.into(),
    }
}

/// `{"_tag":"Request"}` calling `tag` with `payload`.
pub(crate) fn request(id: u64, tag: &str, payload: Value) -> String {
    json!({"_tag": "Request", "id": id.to_string(), "tag": tag, "payload": payload, "headers": []})
        .to_string()
}

/// `{"_tag":"Interrupt"}`: the client cancels request `id`.
pub(crate) fn interrupt(id: u64) -> String {
    json!({"_tag": "Interrupt", "requestId": id.to_string()}).to_string()
}

/// `{"_tag":"Ping"}`, answered with `{"_tag":"Pong"}`.
pub(crate) fn ping() -> String {
    json!({"_tag": "Ping"}).to_string()
}

/// An Effect `Option<T>` as JSON.
fn effect_option(value: Option<Value>) -> Value {
    match value {
        Some(value) => json!({"_tag": "Some", "value": value}),
        None => json!({"_tag": "None"}),
    }
}

/// The payload of `SyncWsRpc.Pull`: a cursor needs the backend id.
pub(crate) fn pull_payload(store_id: &str, cursor: Option<(&str, GlobalSeq)>, live: bool) -> Value {
    let cursor = cursor
        .map(|(backend_id, seq)| json!({"backendId": backend_id, "eventSequenceNumber": seq.0}));
    json!({"storeId": store_id, "live": live, "cursor": effect_option(cursor)})
}

/// The payload of `SyncWsRpc.Push`.
pub(crate) fn push_payload(
    store_id: &str,
    batch: &[GlobalEvent],
    backend_id: Option<&str>,
) -> Value {
    json!({
        "storeId": store_id,
        "batch": batch,
        "backendId": effect_option(backend_id.map(|id| json!(id))),
    })
}

/// eventsync's own RPC (not LiveStore's): whether the store exists, without creating it.
pub(crate) const EXISTS: &str = "EventsyncWsRpc.Exists";

/// The payload of [`EXISTS`].
pub(crate) fn exists_payload(store_id: &str) -> Value {
    json!({ "storeId": store_id })
}

/// The answer of [`EXISTS`]: the `exists` flag of a success, or the error it maps to. A
/// server that predates the RPC answers that it does not know it, which is said so.
pub(crate) fn decode_exists_exit(exit: &Value) -> Result<bool, BackendError> {
    if let Err(e) = decode_exit(exit, None) {
        return Err(match e {
            BackendError::Unavailable { message } if message.contains("unknown RPC") => {
                BackendError::Invalid {
                    message: format!(
                        "the server cannot tell whether a store exists (it is older than this client): {message}"
                    ),
                }
            }
            other => other,
        });
    }
    exit.get("value")
        .and_then(|value| value.get("exists"))
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            corrupt(format!(
                "an exists answer without a boolean exists: {}",
                cut(&exit.to_string())
            ))
        })
}

/// One message from the server, by its `_tag`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FromServer {
    /// Stream items of request `request_id`.
    Chunk { request_id: u64, values: Vec<Value> },
    /// The end of request `request_id`: its `exit` object, still JSON.
    Exit { request_id: u64, exit: Value },
    /// The answer to a ping.
    Pong,
}

/// Decodes one text frame from the server.
pub(crate) fn decode_from_server(text: &str) -> Result<FromServer, BackendError> {
    let value: Value = serde_json::from_str(text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(corrupt("not a JSON object"));
    };
    let request_id = |object: &serde_json::Map<String, Value>| match object.get("requestId") {
        Some(Value::String(id)) => id
            .parse::<u64>()
            .map_err(|_| corrupt(format!("requestId {id:?} is not one of ours"))),
        _ => Err(corrupt("requestId is missing or not a string")),
    };
    match object.get("_tag").and_then(Value::as_str) {
        Some("Chunk") => {
            let request_id = request_id(&object)?;
            match object.remove("values") {
                Some(Value::Array(values)) => Ok(FromServer::Chunk { request_id, values }),
                _ => Err(corrupt("a Chunk without a values array")),
            }
        }
        Some("Exit") => {
            let request_id = request_id(&object)?;
            match object.remove("exit") {
                Some(exit @ Value::Object(_)) => Ok(FromServer::Exit { request_id, exit }),
                _ => Err(corrupt("an Exit without an exit object")),
            }
        }
        Some("Pong") => Ok(FromServer::Pong),
        Some(other) => Err(corrupt(format!(
            "unknown message _tag {:?}",
            other.escape_default().to_string()
        ))),
        None => Err(corrupt("a message without a _tag")),
    }
}

/// How a request ended: success, or the error it maps to.
pub(crate) fn decode_exit(
    exit: &Value,
    sent_parent: Option<GlobalSeq>,
) -> Result<(), BackendError> {
    match exit.get("_tag").and_then(Value::as_str) {
        Some("Success") => Ok(()),
        Some("Failure") => {
            let cause = exit.get("cause");
            let error = match cause.and_then(|c| c.get("_tag")).and_then(Value::as_str) {
                Some("Fail") => cause.and_then(|c| c.get("error")),
                _ => {
                    return Err(BackendError::Unavailable {
                        message: format!(
                            "the server's request failed without a typed error: {}",
                            cut(&exit.to_string())
                        ),
                    });
                }
            };
            Err(decode_error(error, sent_parent))
        }
        _ => Err(corrupt(format!(
            "an Exit that is neither Success nor Failure: {}",
            cut(&exit.to_string())
        ))),
    }
}

/// LiveStore's three tagged errors mapped onto [`BackendError`].
fn decode_error(error: Option<&Value>, sent_parent: Option<GlobalSeq>) -> BackendError {
    let Some(error) = error else {
        return corrupt("a Fail cause without an error");
    };
    let text = |name: &str| error.get(name).and_then(Value::as_str).map(str::to_owned);
    match error.get("_tag").and_then(Value::as_str) {
        Some("ServerAheadError") => {
            let Some(head) = error.get("minimumExpectedNum").and_then(Value::as_u64) else {
                return corrupt("a ServerAheadError without a numeric minimumExpectedNum");
            };
            let head = GlobalSeq(head);
            match sent_parent {
                // The server says "ServerAhead" also for a batch that starts after its head.
                Some(parent) if parent > head => BackendError::Invalid {
                    message: format!(
                        "the batch starts after {parent} but the backend's head is {head}: the events in between were never pushed"
                    ),
                },
                _ => BackendError::ServerAhead { head },
            }
        }
        Some("BackendIdMismatchError") => BackendError::BackendIdMismatch {
            // The server's `received` is the id this client sent, its `expected` the current one.
            expected: text("received").unwrap_or_default(),
            found: text("expected"),
        },
        Some("UnknownError") => {
            let message = error
                .get("cause")
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                .map_or_else(|| cut(&error.to_string()), str::to_owned);
            // `eventsync serve` words a push its backend refused as invalid so; retrying it
            // would never help.
            if message.starts_with("push refused:") || message.starts_with("bad request payload") {
                BackendError::Invalid {
                    message: format!("the server refused the request: {message}"),
                }
            } else {
                BackendError::Unavailable {
                    message: format!("the server failed: {message}"),
                }
            }
        }
        _ => corrupt(format!("an unknown error: {}", cut(&error.to_string()))),
    }
}

/// One `PullResponse` (a chunk's value): its page and the backend id it names.
pub(crate) fn decode_pull_response(value: Value) -> Result<(PullPage, String), BackendError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        event_encoded: GlobalEvent,
    }
    #[derive(serde::Deserialize)]
    #[serde(tag = "_tag")]
    enum Info {
        NoMore,
        MoreKnown { remaining: u64 },
        MoreUnknown,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Response {
        batch: Vec<Item>,
        page_info: Info,
        backend_id: String,
    }
    let response: Response = serde_json::from_value(value)
        .map_err(|e| corrupt(format!("a pull response that does not decode: {e}")))?;
    let page_info = match response.page_info {
        Info::NoMore => PageInfo::NoMore,
        Info::MoreKnown { remaining } => PageInfo::More {
            remaining: Some(remaining),
        },
        Info::MoreUnknown => PageInfo::More { remaining: None },
    };
    let events = response
        .batch
        .into_iter()
        .map(|i| i.event_encoded)
        .collect();
    Ok((PullPage { events, page_info }, response.backend_id))
}

/// At most 200 bytes of `text`, for messages.
fn cut(text: &str) -> String {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_decode_names_what_is_wrong_in_a_frame() {
        for (frame, expect) in [
            ("{", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"a":1}"#, "without a _tag"),
            (r#"{"_tag":"Nope"}"#, "unknown message _tag"),
            (
                r#"{"_tag":"Chunk","requestId":"x","values":[]}"#,
                "not one of ours",
            ),
            (r#"{"_tag":"Chunk","requestId":"1"}"#, "values array"),
            (r#"{"_tag":"Exit","requestId":"1","exit":3}"#, "exit object"),
        ] {
            match decode_from_server(frame) {
                Err(BackendError::Corrupt { key, message }) => {
                    assert_eq!(key, FRAME);
                    assert!(message.contains(expect), "{frame}: {message}");
                }
                other => panic!("{frame} gave {other:?}"),
            }
        }
        assert_eq!(
            decode_from_server(r#"{"_tag":"Pong"}"#).unwrap(),
            FromServer::Pong
        );
    }

    #[test]
    fn test_exits_map_to_backend_errors() {
        let fail =
            |error: Value| json!({"_tag": "Failure", "cause": {"_tag": "Fail", "error": error}});
        let ahead =
            fail(json!({"_tag": "ServerAheadError", "minimumExpectedNum": 6, "providedNum": 4}));
        assert!(matches!(
            decode_exit(&ahead, Some(GlobalSeq(4))),
            Err(BackendError::ServerAhead { head: GlobalSeq(6) })
        ));
        assert!(matches!(
            decode_exit(&ahead, Some(GlobalSeq(9))),
            Err(BackendError::Invalid { .. })
        ));
        let mismatch =
            fail(json!({"_tag": "BackendIdMismatchError", "expected": "new", "received": "old"}));
        match decode_exit(&mismatch, None) {
            Err(BackendError::BackendIdMismatch { expected, found }) => {
                assert_eq!((expected.as_str(), found.as_deref()), ("old", Some("new")));
            }
            other => panic!("{other:?}"),
        }
        let unknown = fail(json!({"_tag": "UnknownError", "cause": {"message": "disk on fire"}}));
        match decode_exit(&unknown, None) {
            Err(e @ BackendError::Unavailable { .. }) => {
                assert!(e.to_string().contains("disk on fire"))
            }
            other => panic!("{other:?}"),
        }
        assert!(decode_exit(&json!({"_tag": "Success"}), None).is_ok());
        assert!(matches!(
            decode_exit(&json!({"_tag": "Maybe"}), None),
            Err(BackendError::Corrupt { .. })
        ));
    }

    #[test]
    fn test_exists_answers_decode() {
        let yes = json!({"_tag": "Success", "value": {"exists": true}});
        assert!(decode_exists_exit(&yes).unwrap());
        let no = json!({"_tag": "Success", "value": {"exists": false}});
        assert!(!decode_exists_exit(&no).unwrap());
        assert!(matches!(
            decode_exists_exit(&json!({"_tag": "Success", "value": {}})),
            Err(BackendError::Corrupt { .. })
        ));
        let old = json!({"_tag": "Failure", "cause": {"_tag": "Fail", "error": {
            "_tag": "UnknownError", "cause": {"message": "unknown RPC \"EventsyncWsRpc.Exists\""}}}});
        match decode_exists_exit(&old) {
            Err(BackendError::Invalid { message }) => {
                assert!(message.contains("older"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_pull_responses_become_pages() {
        let (page, id) = decode_pull_response(json!({
            "batch": [{"eventEncoded": {"name": "v1.X", "args": {}, "seqNum": 1, "parentSeqNum": 0, "clientId": "c", "sessionId": "s"}, "metadata": {"_tag": "None"}}],
            "pageInfo": {"_tag": "MoreKnown", "remaining": 3},
            "backendId": "b1",
        }))
        .unwrap();
        assert_eq!(id, "b1");
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.page_info, PageInfo::More { remaining: Some(3) });
        assert!(matches!(
            decode_pull_response(
                json!({"batch": [], "pageInfo": {"_tag": "Sometimes"}, "backendId": "b"})
            ),
            Err(BackendError::Corrupt { .. })
        ));
    }
}
