//! The LiveStore sync protocol on 127.0.0.1, spoken by a WebSocket client
//! (tokio-tungstenite) and an HTTP client (reqwest), frame by frame as a LiveStore 0.4.0
//! client sends them; and every kind of bad input: an error frame, a 4xx or a close, no
//! panic, and the log unchanged.

use std::sync::Arc;
use std::time::Duration;

use eventsync_backends::{GlobalEvent, GlobalSeq, SyncBackend};
use eventsync_server::{Limits, token_auth};
use futures::SinkExt;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

#[path = "protocol/harness.rs"]
mod harness;
mod support;

use harness::*;

#[tokio::test]
async fn test_ws_ping_pull_push_broadcast_and_errors() {
    let running = start(Limits::default(), None).await;
    let mut a = Ws::open(&running, "store1").await;
    let mut b = Ws::open(&running, "store1").await;
    a.send(json!({"_tag": "Ping"})).await;
    assert_eq!(a.recv().await, json!({"_tag": "Pong"}));

    // An empty store still answers one empty NoMore chunk, and a live pull sends no Exit.
    a.send(pull("0", "store1", true, None)).await;
    let first = a.recv().await;
    assert_eq!(first["_tag"], "Chunk");
    assert_eq!(first["requestId"], "0");
    let value = &first["values"][0];
    assert_eq!(value["batch"], json!([]));
    assert_eq!(value["pageInfo"], json!({"_tag": "NoMore"}));
    let backend_id = value["backendId"].as_str().unwrap().to_string();
    assert!(!backend_id.is_empty());
    assert_eq!(b.backend_id("store1").await, backend_id);
    a.send(json!({"_tag": "Ack", "requestId": "0"})).await;

    // A push is broadcast to every live pull, the pusher's own included, and acknowledged.
    a.send(push("1", "store1", &[event(1, "A")], None)).await;
    let mut got_chunk = false;
    let mut got_exit = false;
    while !(got_chunk && got_exit) {
        let message = a.recv().await;
        match message["_tag"].as_str().unwrap() {
            "Chunk" => {
                assert_eq!(message["requestId"], "0");
                let item = &message["values"][0]["batch"][0];
                assert_eq!(
                    item["eventEncoded"],
                    serde_json::to_value(event(1, "A")).unwrap()
                );
                assert_eq!(item["metadata"]["_tag"], "Some");
                assert_eq!(
                    item["metadata"]["value"]["_tag"],
                    "SyncMessage.SyncMetadata"
                );
                got_chunk = true;
            }
            "Exit" => {
                assert_eq!(
                    message,
                    json!({"_tag": "Exit", "requestId": "1", "exit": {"_tag": "Success", "value": {}}})
                );
                got_exit = true;
            }
            other => panic!("unexpected {other}: {message}"),
        }
    }
    let on_b = b.recv().await;
    assert_eq!(on_b["values"][0]["batch"][0]["eventEncoded"]["seqNum"], 1);

    // B pushes on a stale head: ServerAheadError with the head; the log is unchanged.
    b.send(push("1", "store1", &[event(1, "B")], Some(&backend_id)))
        .await;
    assert_eq!(
        b.recv().await,
        json!({"_tag": "Exit", "requestId": "1", "exit": {"_tag": "Failure", "cause": {"_tag": "Fail",
            "error": {"_tag": "ServerAheadError", "minimumExpectedNum": 1, "providedNum": 0}}}})
    );
    // A push whose parent is past the head is also ServerAheadError (LiveStore's rule).
    b.send(push("2", "store1", &[event(5, "B")], Some(&backend_id)))
        .await;
    let ahead = b.recv().await;
    assert_eq!(
        ahead["exit"]["cause"]["error"]["_tag"], "ServerAheadError",
        "{ahead}"
    );
    assert_eq!(ahead["exit"]["cause"]["error"]["providedNum"], 4);

    // Another backend id: BackendIdMismatchError, on push and on pull.
    b.send(push("3", "store1", &[event(2, "B")], Some("other")))
        .await;
    let mismatch = b.recv().await;
    assert_eq!(
        mismatch["exit"]["cause"]["error"],
        json!({"_tag": "BackendIdMismatchError", "expected": backend_id, "received": "other"})
    );
    b.send(pull("4", "store1", false, Some(("other", 0)))).await;
    let mismatch = b.recv().await;
    assert_eq!(mismatch["requestId"], "4");
    assert_eq!(
        mismatch["exit"]["cause"]["error"]["_tag"],
        "BackendIdMismatchError"
    );

    // A non-live pull from a cursor: the events after it, then Exit with no value.
    b.send(pull("5", "store1", false, Some((&backend_id, 0))))
        .await;
    let chunk = b.recv().await;
    assert_eq!(chunk["values"][0]["batch"].as_array().unwrap().len(), 1);
    assert_eq!(
        b.recv().await,
        json!({"_tag": "Exit", "requestId": "5", "exit": {"_tag": "Success"}})
    );
    assert_eq!(running.head("store1").await, GlobalSeq(1));
    running.stop().await;
}

#[tokio::test]
async fn test_live_pull_carries_events_appended_directly_to_the_backend() {
    let running = start(Limits::default(), None).await;
    let mut ws = Ws::open(&running, "shared").await;
    let backend_id = ws.backend_id("shared").await;
    // Another writer (an eventsync client, or another server) appends to the bucket.
    let direct = log(&running.bucket, "shared");
    assert_eq!(direct.backend_id().await.unwrap(), backend_id);
    direct
        .push(vec![event(1, "D"), event(2, "D")])
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = ws.recv().await;
        for item in message["values"][0]["batch"].as_array().unwrap() {
            seen.push(item["eventEncoded"]["seqNum"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, vec![1, 2]);
    running.stop().await;
}

#[tokio::test]
async fn test_http_ping_push_and_paged_pull() {
    let running = start(Limits::default(), None).await;
    let (status, answer) = post(
        &running,
        "h",
        http_request("0", "SyncHttpRpc.Ping", json!({"storeId": "h"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!([{"_tag": "Exit", "requestId": "0", "exit": {"_tag": "Success", "value": {"_tag": "SyncMessage.Pong"}}}])
    );
    let events: Vec<GlobalEvent> = (1..=250).map(|n| event(n, "H")).collect();
    for (i, batch) in events.chunks(100).enumerate() {
        let body = http_request(
            &format!("p{i}"),
            "SyncHttpRpc.Push",
            json!({"storeId": "h", "batch": batch, "backendId": {"_tag": "None"}}),
        );
        let (status, answer) = post(&running, "h", body).await;
        assert_eq!(status, 200);
        assert_eq!(
            answer[0]["exit"],
            json!({"_tag": "Success", "value": {}}),
            "{answer}"
        );
    }
    let body = http_request(
        "1",
        "SyncHttpRpc.Pull",
        json!({"storeId": "h", "cursor": {"_tag": "None"}}),
    );
    let (_, answer) = post(&running, "h", body).await;
    let messages = answer.as_array().unwrap();
    assert_eq!(messages.len(), 4, "three chunks and the Exit");
    let page = |i: usize| &messages[i]["values"][0];
    assert_eq!(page(0)["batch"].as_array().unwrap().len(), 100);
    assert_eq!(
        page(0)["pageInfo"],
        json!({"_tag": "MoreKnown", "remaining": 150})
    );
    assert_eq!(
        page(1)["pageInfo"],
        json!({"_tag": "MoreKnown", "remaining": 50})
    );
    assert_eq!(page(2)["batch"].as_array().unwrap().len(), 50);
    assert_eq!(page(2)["pageInfo"], json!({"_tag": "NoMore"}));
    assert_eq!(page(2)["batch"][49]["eventEncoded"]["seqNum"], 250);
    assert_eq!(
        messages[3],
        json!({"_tag": "Exit", "requestId": "1", "exit": {"_tag": "Success"}})
    );

    // A stale push over HTTP: ServerAheadError, nothing written.
    let body = http_request(
        "2",
        "SyncHttpRpc.Push",
        json!({"storeId": "h", "batch": [event(1, "X")], "backendId": {"_tag": "None"}}),
    );
    let (_, answer) = post(&running, "h", body).await;
    assert_eq!(
        answer[0]["exit"]["cause"]["error"]["minimumExpectedNum"],
        250
    );
    assert_eq!(running.head("h").await, GlobalSeq(250));

    // CORS: a browser's preflight is answered.
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            running.url("http", "storeId=h&transport=http"),
        )
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-livestore-store-id",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert!(
        preflight
            .headers()
            .contains_key("access-control-allow-origin")
    );
    running.stop().await;
}

#[tokio::test]
async fn test_bad_http_input_gets_4xx_or_an_error_and_leaves_the_log() {
    let limits = Limits {
        max_message_bytes: 64 * 1024,
        ..Limits::default()
    };
    let running = start(limits, None).await;
    let push_body = |events: &[GlobalEvent]| {
        http_request(
            "9",
            "SyncHttpRpc.Push",
            json!({"storeId": "bad", "batch": events, "backendId": {"_tag": "None"}}),
        )
    };
    let (status, _) = post(&running, "bad", push_body(&[event(1, "A")])).await;
    assert_eq!(status, 200);

    let oversize = "x".repeat(100 * 1024);
    let big = GlobalEvent {
        args: json!({"id": "big", "text": oversize}),
        ..event(2, "A")
    };
    assert_eq!(post(&running, "bad", push_body(&[big])).await.0, 413);
    let (status, answer) = post(&running, "bad", "{not json".into()).await;
    assert_eq!(status, 400);
    assert_eq!(answer[0]["_tag"], "Defect", "{answer}");
    assert_eq!(
        post(&running, "bad", r#"{"_tag":"Bogus"}"#.into()).await.0,
        400
    );
    let (status, answer) = post(
        &running,
        "bad",
        http_request("1", "SyncHttpRpc.Nope", json!({})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(answer[0]["exit"]["cause"]["error"]["_tag"], "UnknownError");
    // A push that skips numbers (2, then 4): refused, nothing written.
    let (_, answer) = post(&running, "bad", push_body(&[event(2, "A"), event(4, "A")])).await;
    assert_eq!(
        answer[0]["exit"]["cause"]["error"]["_tag"], "UnknownError",
        "{answer}"
    );
    // A payload naming another store than the URL.
    let body = http_request(
        "3",
        "SyncHttpRpc.Push",
        json!({"storeId": "other", "batch": [event(2, "A")], "backendId": {"_tag": "None"}}),
    );
    let (_, answer) = post(&running, "bad", body).await;
    assert_eq!(answer[0]["exit"]["cause"]["error"]["_tag"], "UnknownError");
    // A payload with the wrong shape.
    let (_, answer) = post(
        &running,
        "bad",
        http_request(
            "4",
            "SyncHttpRpc.Push",
            json!({"storeId": "bad", "batch": 7}),
        ),
    )
    .await;
    assert_eq!(answer[0]["exit"]["cause"]["error"]["_tag"], "UnknownError");
    // Bad store ids and queries.
    for query in [
        "storeId=..&transport=http",
        "storeId=a%2Fb&transport=http",
        "transport=http",
        "storeId=s&transport=carrier-pigeon",
    ] {
        let status = reqwest::Client::new()
            .post(running.url("http", query))
            .body(push_body(&[event(2, "A")]))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 400, "{query}");
    }
    assert_eq!(running.head("bad").await, GlobalSeq(1));
    running.stop().await;
}

#[tokio::test]
async fn test_bad_ws_input_gets_an_error_frame_or_a_close_and_leaves_the_log() {
    let limits = Limits {
        max_message_bytes: 64 * 1024,
        max_live_pulls_per_connection: 2,
        ..Limits::default()
    };
    let running = start(limits, None).await;
    let mut ws = Ws::open(&running, "bad").await;
    ws.send(push("0", "bad", &[event(1, "A")], None)).await;
    assert_eq!(ws.recv().await["exit"]["_tag"], "Success");

    // Error frames: an unknown RPC, a push that skips numbers, a bad payload, a foreign store.
    ws.send(request("1", "SyncWsRpc.Nope", json!({}))).await;
    assert_eq!(
        ws.recv().await["exit"]["cause"]["error"]["_tag"],
        "UnknownError"
    );
    ws.send(push("2", "bad", &[event(2, "A"), event(4, "A")], None))
        .await;
    assert_eq!(
        ws.recv().await["exit"]["cause"]["error"]["_tag"],
        "UnknownError"
    );
    ws.send(request("3", "SyncWsRpc.Push", json!({"storeId": "bad"})))
        .await;
    assert_eq!(
        ws.recv().await["exit"]["cause"]["error"]["_tag"],
        "UnknownError"
    );
    ws.send(push("4", "other", &[event(2, "A")], None)).await;
    assert_eq!(
        ws.recv().await["exit"]["cause"]["error"]["_tag"],
        "UnknownError"
    );
    // Live pulls per connection are bounded.
    ws.send(pull("5", "bad", true, None)).await;
    ws.send(pull("6", "bad", true, None)).await;
    ws.send(pull("7", "bad", true, None)).await;
    let mut refused = 0;
    for _ in 0..3 {
        let message = ws.recv().await;
        if message["_tag"] == "Exit" {
            assert_eq!(message["requestId"], "7");
            assert_eq!(message["exit"]["cause"]["error"]["_tag"], "UnknownError");
            refused += 1;
        }
    }
    assert_eq!(refused, 1);
    // An interrupted pull frees its place.
    ws.send(json!({"_tag": "Interrupt", "requestId": "5"}))
        .await;
    ws.send(json!({"_tag": "Ping"})).await;
    assert_eq!(ws.recv().await, json!({"_tag": "Pong"}));
    ws.send(pull("8", "bad", true, None)).await;
    assert_eq!(ws.recv().await["_tag"], "Chunk");

    // Closes: malformed JSON (1007), an unknown message tag (1008), binary (1003), oversize.
    ws.send_text("{not json".into()).await;
    assert_eq!(ws.next().await, Err(Some(1007)));
    let mut ws = Ws::open(&running, "bad").await;
    ws.send(json!({"_tag": "Bogus"})).await;
    assert_eq!(ws.next().await, Err(Some(1008)));
    let mut ws = Ws::open(&running, "bad").await;
    ws.0.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(ws.next().await, Err(Some(1003)));
    let mut ws = Ws::open(&running, "bad").await;
    let big = GlobalEvent {
        args: json!({"text": "x".repeat(100 * 1024)}),
        ..event(2, "A")
    };
    let _ =
        ws.0.send(Message::Text(
            push("9", "bad", &[big], None).to_string().into(),
        ))
        .await;
    assert!(
        ws.next().await.is_err(),
        "an oversize frame closes the socket"
    );

    // A bad store id or a missing upgrade never reaches a socket.
    for query in [
        "storeId=..&transport=ws",
        "storeId=a%20b&transport=ws",
        "transport=ws",
    ] {
        let refused = connect_async(running.url("ws", query)).await;
        assert!(refused.is_err(), "{query}");
    }
    let status = reqwest::get(running.url("http", "storeId=bad&transport=ws"))
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 426);
    assert_eq!(running.head("bad").await, GlobalSeq(1));
    running.stop().await;
}

#[tokio::test]
async fn test_connection_flood_is_refused_beyond_the_limit() {
    let limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let running = start(limits, None).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut ws = Ws::open(&running, "flood").await;
        ws.send(json!({"_tag": "Ping"})).await;
        assert_eq!(ws.recv().await, json!({"_tag": "Pong"}));
        open.push(ws);
    }
    for _ in 0..20 {
        match connect_async(running.url("ws", "storeId=flood&transport=ws")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 503);
            }
            other => panic!(
                "a connection past the limit was not refused: {:?}",
                other.map(|_| ())
            ),
        }
    }
    // The open ones still work; a closed one frees its place.
    open[0].send(json!({"_tag": "Ping"})).await;
    assert_eq!(open[0].recv().await, json!({"_tag": "Pong"}));
    let mut closed = open.pop().unwrap();
    closed.0.close(None).await.unwrap();
    while closed.next().await.is_ok() {}
    let mut again = None;
    for _ in 0..100 {
        if let Ok((socket, _)) =
            connect_async(running.url("ws", "storeId=flood&transport=ws")).await
        {
            again = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "a freed place is reused");
    running.stop().await;
}

#[tokio::test]
async fn test_auth_refuses_ws_with_a_reason_and_http_with_401() {
    let running = start(Limits::default(), Some(token_auth("sekrit", None))).await;
    // `{"authToken":"sekrit"}`, double-encoded as LiveStore does.
    let good = "payload=%257B%2522authToken%2522%253A%2522sekrit%2522%257D";
    let bad = "payload=%257B%2522authToken%2522%253A%2522nope%2522%257D";
    let (mut ok, _) = connect_async(running.url("ws", &format!("storeId=a&transport=ws&{good}")))
        .await
        .unwrap();
    ok.send(Message::Text(json!({"_tag": "Ping"}).to_string().into()))
        .await
        .unwrap();
    let mut ok = Ws(ok);
    assert_eq!(ok.recv().await, json!({"_tag": "Pong"}));
    let (refused, _) = connect_async(running.url("ws", &format!("storeId=a&transport=ws&{bad}")))
        .await
        .unwrap();
    let mut refused = Ws(refused);
    assert_eq!(refused.next().await, Err(Some(1008)));
    let ping = http_request("0", "SyncHttpRpc.Ping", json!({"storeId": "a"}));
    for (query, expected) in [(good, 200), (bad, 401), ("", 401)] {
        let status = reqwest::Client::new()
            .post(running.url("http", &format!("storeId=a&transport=http&{query}")))
            .body(ping.clone())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), expected, "{query}");
    }
    running.stop().await;
}

#[tokio::test]
async fn test_shutdown_closes_sockets_with_going_away() {
    let running = start(Limits::default(), None).await;
    let mut ws = Ws::open(&running, "down").await;
    let _ = ws.backend_id("down").await;
    let addr = running.addr;
    running.stop().await;
    assert_eq!(ws.next().await, Err(Some(1001)));
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn test_two_servers_over_one_bucket_the_loser_gets_server_ahead_and_sees_the_winner() {
    let one = start(Limits::default(), None).await;
    let two = start_on(Arc::clone(&one.bucket), Limits::default(), None).await;
    let mut a = Ws::open(&one, "both").await;
    let mut b = Ws::open(&two, "both").await;
    let backend_id = a.backend_id("both").await;
    assert_eq!(
        b.backend_id("both").await,
        backend_id,
        "one store, one backend id"
    );
    a.send(push("1", "both", &[event(1, "A")], Some(&backend_id)))
        .await;
    assert_eq!(read_until(&mut a, 1).await, vec![1]);
    // B, on the other server, pushes on the head it knew: it lost the race.
    b.send(push("1", "both", &[event(1, "B")], Some(&backend_id)))
        .await;
    let mut lost = None;
    let mut seen = Vec::new();
    while lost.is_none() || seen.last() != Some(&1) {
        let message = b.recv().await;
        match message["_tag"].as_str().unwrap() {
            "Exit" => lost = Some(message["exit"]["cause"]["error"].clone()),
            "Chunk" => {
                for item in message["values"][0]["batch"].as_array().unwrap() {
                    assert_eq!(item["eventEncoded"]["clientId"], "A");
                    seen.push(item["eventEncoded"]["seqNum"].as_u64().unwrap());
                }
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        lost.unwrap(),
        json!({"_tag": "ServerAheadError", "minimumExpectedNum": 1, "providedNum": 0})
    );
    // B rebases and pushes again through its server; A's live pull on the other server
    // gets it from the tail.
    b.send(push("2", "both", &[event(2, "B")], Some(&backend_id)))
        .await;
    assert_eq!(read_until(&mut a, 2).await, vec![2]);
    assert_eq!(one.head("both").await, GlobalSeq(2));
    two.stop().await;
    one.stop().await;
}

#[tokio::test]
async fn test_a_slow_reader_is_closed_and_does_not_hold_up_the_others() {
    let limits = Limits {
        connection_queue: 8,
        ..Limits::default()
    };
    let running = start(limits, None).await;
    // S opens a live pull, then stops reading.
    let mut slow = Ws::open(&running, "slow").await;
    let backend_id = slow.backend_id("slow").await;
    let mut reader = Ws::open(&running, "slow").await;
    assert_eq!(reader.backend_id("slow").await, backend_id);
    let mut pusher = Ws::open(&running, "slow").await;
    let total = 1000;
    // R keeps reading all along.
    let reading = tokio::spawn(async move { read_until(&mut reader, total).await });
    // 24 MB of events, more than the socket buffers between the server and S hold.
    let text = "x".repeat(24 * 1024);
    for start in (1..=total).step_by(10) {
        let batch: Vec<GlobalEvent> = (start..start + 10)
            .map(|n| GlobalEvent {
                args: json!({"id": n.to_string(), "text": text}),
                ..event(n, "P")
            })
            .collect();
        pusher
            .send(push(&start.to_string(), "slow", &batch, Some(&backend_id)))
            .await;
        // Every push is answered while S reads nothing.
        let answer = pusher.recv().await;
        assert_eq!(answer["exit"]["_tag"], "Success", "{answer}");
    }
    let seen = reading.await.unwrap();
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "the reading client got everything"
    );
    // S, reading at last, finds its socket closed as too slow after what was queued.
    let closed = loop {
        match slow.next().await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(closed, Some(1008));
    assert_eq!(running.head("slow").await, GlobalSeq(total));
    running.stop().await;
}
