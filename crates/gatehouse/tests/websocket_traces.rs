//! A WebSocket connection's trace end to end, with the real binary: a client whose handshake
//! carries a sampled `traceparent` exchanges messages with an echo upstream through the gateway,
//! and the stored trace's connection span (`GET /admin/traces/{id}`) has one `message` event per
//! data message, in order, with its direction, number, size and opcode, between the open and
//! close events.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use support::{Gatehouse, TOKEN};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket upstream on loopback that echoes every data message.
async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = ws.send(message).await;
                    }
                }
            });
        }
    });
    addr
}

async fn stored_trace(gatehouse: &Gatehouse, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = reqwest::Client::new()
            .get(gatehouse.admin_url(&format!("/admin/traces/{id}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            return response.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the trace was never stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_connections_span_has_its_messages_as_events() {
    let upstream = echo_upstream().await;
    let config = format!(
        "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
         admin:\n  bind: 127.0.0.1:0\n  token: ${{GATEHOUSE_ADMIN_TOKEN}}\n\
         data_dir: data\naccess_log:\n  destination: off\n\
         apis:\n  - name: chat\n    stages:\n      - name: prod\n    routes:\n\
         \x20     - method: GET\n        path: /chat\n        integration:\n          type: websocket\n          url: ws://{upstream}/\n"
    );
    let gatehouse = Gatehouse::start(&config, &[]);
    let trace_id = "7bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = gatehouse
        .url("/prod/chat")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let sent = [
        Message::text("hello"),
        Message::binary(vec![0u8; 300]),
        Message::text("bye"),
    ];
    for message in &sent {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), *message);
    }
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}

    let trace = stored_trace(&gatehouse, trace_id).await;
    let server = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "server")
        .unwrap();
    let events = server["events"].as_array().unwrap();
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "websocket.open",
            "message",
            "message",
            "message",
            "message",
            "message",
            "message",
            "websocket.close"
        ],
        "{server}"
    );
    let messages: Vec<(String, i64, i64, String)> = events[1..7]
        .iter()
        .map(|e| {
            let a = &e["attributes"];
            (
                a["message.type"].as_str().unwrap().to_owned(),
                a["message.id"].as_i64().unwrap(),
                a["message.uncompressed_size"].as_i64().unwrap(),
                a["gatehouse.websocket.opcode"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let m = |ty: &str, id, size, opcode: &str| (ty.to_owned(), id, size, opcode.to_owned());
    assert_eq!(
        messages,
        [
            m("RECEIVED", 1, 5, "text"),
            m("SENT", 1, 5, "text"),
            m("RECEIVED", 2, 300, "binary"),
            m("SENT", 2, 300, "binary"),
            m("RECEIVED", 3, 3, "text"),
            m("SENT", 3, 3, "text"),
        ]
    );
    let times: Vec<u64> = events
        .iter()
        .map(|e| e["timeUnixNano"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(times[0] >= server["startUnixNano"].as_u64().unwrap());
    assert!(times[7] <= server["endUnixNano"].as_u64().unwrap());
    assert_eq!(server["attributes"]["gatehouse.websocket.messages_in"], 3);
    assert!(
        server["attributes"]
            .get("gatehouse.websocket.events_dropped")
            .is_none()
    );
}
