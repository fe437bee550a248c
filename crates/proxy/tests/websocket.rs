//! The WebSocket integration end to end on loopback: a gateway in process, a tokio-tungstenite
//! upstream whose behaviour the test picks through the path, and a tokio-tungstenite client.
//!
//! Routes are `/ws/{mode}` → `ws://upstream/{mode}`; the upstream modes are:
//! `echo` (echo data messages), `greet?n=N` (send N messages, then echo),
//! `close?n=N&code=C` (send N messages, then Close with code C), `big?size=N` (send one N-byte
//! frame, then echo) and `reject` (answer the handshake with 403). It always picks the first
//! subprotocol offered and reports what it saw as [`Event`]s.
#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gatehouse_proxy::{Gateway, Listener, Runtime};
use gatehouse_telemetry::spans::{AttrValue, spans_from_exchange};
use gatehouse_telemetry::{
    ErrorClass, Exchange, ExchangeKind, MAX_WEBSOCKET_MESSAGE_EVENTS, WebSocketDirection,
    WebSocketMessageKind, WebSocketStats,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every test finishes well within this, or fails instead of hanging.
const BOUND: Duration = Duration::from_secs(20);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(BOUND, test)
        .await
        .expect("test did not finish in time");
}

// ---------------------------------------------------------------------------------------------
// The upstream

/// What the upstream saw, in order, over all its connections.
#[derive(Debug)]
enum Event {
    Handshake { uri: String, headers: HeaderMap },
    Received(Message),
    Closed(Option<u16>),
}

struct Upstream {
    addr: SocketAddr,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_upstream(stream, events.clone()));
            }
        });
        Self {
            addr,
            events: receiver,
        }
    }

    async fn next_event(&mut self) -> Event {
        self.events.recv().await.expect("upstream is running")
    }

    async fn handshake(&mut self) -> (String, HeaderMap) {
        match self.next_event().await {
            Event::Handshake { uri, headers } => (uri, headers),
            other => panic!("expected a handshake, got {other:?}"),
        }
    }

    /// The next data message or ping the upstream received.
    async fn received(&mut self) -> Message {
        loop {
            match self.next_event().await {
                Event::Received(message) => return message,
                Event::Handshake { .. } => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The close code of the next Close the upstream received, skipping messages.
    async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Event::Closed(code) = self.next_event().await {
                return code;
            }
        }
    }
}

async fn serve_upstream(stream: TcpStream, events: mpsc::UnboundedSender<Event>) {
    let mut path = String::new();
    let mut query = HashMap::new();
    // The error type is tungstenite's, sized as it is.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let uri = request.uri();
        path = uri.path().to_owned();
        query = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let _ = events.send(Event::Handshake {
            uri: uri.to_string(),
            headers: request.headers().clone(),
        });
        if path == "/reject" {
            let mut refusal = ErrorResponse::new(Some("go away".into()));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        let offered = request
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok());
        if let Some(first) = offered.and_then(|list| list.split(',').next()) {
            response.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(first.trim()).unwrap(),
            );
        }
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let number = |key: &str| query.get(key).map_or(0, |v| v.parse::<usize>().unwrap());
    for i in 0..number("n") {
        ws.send(Message::text(format!("greeting {i}")))
            .await
            .unwrap();
    }
    match path.as_str() {
        "/close" => {
            let frame = CloseFrame {
                code: CloseCode::from(number("code") as u16),
                reason: "bye".into(),
            };
            ws.close(Some(frame)).await.unwrap();
        }
        "/big" => ws
            .send(Message::binary(vec![7u8; number("size")]))
            .await
            .unwrap(),
        _ => {}
    }
    // Reading on after a Close lets tungstenite answer it and see the connection end.
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Close(frame) => {
                let _ = events.send(Event::Closed(frame.map(|f| u16::from(f.code))));
            }
            Message::Text(_) | Message::Binary(_) => {
                let _ = events.send(Event::Received(message.clone()));
                let _ = ws.send(message).await;
            }
            other => {
                let _ = events.send(Event::Received(other));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway

struct Harness {
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    records: mpsc::Receiver<Arc<Exchange>>,
    upstream: Upstream,
}

/// A gateway whose `/ws/{mode}` route relays to a fresh upstream; `options` are extra keys of
/// the integration, e.g. `max_frame_bytes: 1024`.
async fn start(options: &[&str]) -> Harness {
    let upstream = Upstream::start().await;
    start_with_upstream(upstream.addr, options, upstream).await
}

async fn start_with_upstream(target: SocketAddr, options: &[&str], upstream: Upstream) -> Harness {
    let mut yaml = format!(
        "listeners:
  - {{ name: public, bind: '127.0.0.1:0' }}
apis:
  - name: chat
    stages: [{{ name: prod, path_prefix: '' }}]
    routes:
      - path: '/ws/{{mode}}'
        integration:
          type: websocket
          url: 'ws://{target}/{{mode}}'
"
    );
    for option in options {
        yaml.push_str(&format!("          {option}\n"));
    }
    let loaded = gatehouse_config::load_str(&yaml, "test.yaml", &std::env::temp_dir(), &|_| None)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let mut bus = gatehouse_telemetry::BusBuilder::new(1024);
    let records = bus.subscribe("test");
    let runtime = Runtime {
        table: loaded.table,
        limits: loaded.settings.limits.clone(),
        tracer: loaded.settings.tracing.tracer(),
    };
    let gateway = Gateway::new(runtime, Arc::new(bus.build()), vec![]).unwrap();
    let listener = Listener::bind(loaded.settings.listeners[0].clone())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    gateway.serve(listener);
    Harness {
        gateway,
        addr,
        records,
        upstream,
    }
}

impl Harness {
    async fn connect(&self, path: &str) -> Client {
        self.connect_with(path, &[]).await.0
    }

    async fn connect_with(
        &self,
        path: &str,
        headers: &[(&'static str, &str)],
    ) -> (Client, HeaderMap) {
        let mut request = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, HeaderValue::from_str(value).unwrap());
        }
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        (ws, response.headers().clone())
    }

    async fn record(&mut self) -> Arc<Exchange> {
        self.records.recv().await.expect("bus is open")
    }

    /// Asserts that nothing was published since the last record, by making a request whose
    /// record must come next.
    async fn assert_no_other_record(&mut self) {
        let (status, _, _) = raw_get(self.addr, "/ws/echo", "").await;
        assert_eq!(status, 426);
        let record = self.record().await;
        assert_eq!(record.status, 426, "unexpected record: {record:?}");
    }
}

fn stats(record: &Exchange) -> &WebSocketStats {
    record.websocket.as_ref().expect("a WebSocket record")
}

/// A plain HTTP/1.1 request that closes the connection; returns status, head and body.
async fn raw_get(addr: SocketAddr, path: &str, extra_headers: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// An upgrade request sent by hand, for handshakes the gateway refuses.
async fn raw_upgrade(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

async fn next_message(ws: &mut Client) -> Message {
    ws.next()
        .await
        .expect("connection open")
        .expect("valid frame")
}

/// Reads up to the peer's Close, lets tungstenite answer it, reads to the end, returns the code.
async fn expect_close(ws: &mut Client) -> Option<u16> {
    let code = loop {
        match next_message(ws).await {
            Message::Close(frame) => break frame.map(|f| u16::from(f.code)),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected Close, got {other:?}"),
        }
    };
    while let Some(Ok(_)) = ws.next().await {}
    code
}

/// Closes from the client side with 1000 and waits for the answer.
async fn close_normally(ws: &mut Client) {
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

// ---------------------------------------------------------------------------------------------
// Relaying

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_binary_are_echoed_and_one_record_counts_them() {
    bounded(async {
        let mut h = start(&[]).await;
        let mut ws = h.connect("/ws/echo").await;
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("hello"));
        assert_eq!(h.gateway.open_websockets(), 1, "an open relay is counted");
        ws.send(Message::binary(vec![1, 2, 3, 4])).await.unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Message::binary(vec![1, 2, 3, 4])
        );
        close_normally(&mut ws).await;
        assert_eq!(h.upstream.closed().await, Some(1000));

        let record = h.record().await;
        assert_eq!(record.kind, ExchangeKind::WebSocket);
        assert_eq!(record.status, 101);
        assert_eq!(record.integration.kind, Some("websocket"));
        assert_eq!(record.integration.status, Some(101));
        assert_eq!(record.error, None, "{:?}", record.error_message);
        let ws_stats = stats(&record);
        assert_eq!((ws_stats.messages_in, ws_stats.bytes_in), (2, 9));
        assert_eq!((ws_stats.messages_out, ws_stats.bytes_out), (2, 9));
        assert_eq!((record.bytes_in, record.bytes_out), (9, 9));
        assert_eq!(ws_stats.close_code, Some(1000));
        assert_eq!(ws_stats.closed_by, Some("client"));
        assert!(record.timing.done >= record.timing.integration_response.unwrap());
        h.assert_no_other_record().await;
        // The relay lingers briefly after publishing the record, until both sockets are shut.
        for _ in 0..250 {
            if h.gateway.open_websockets() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            h.gateway.open_websockets(),
            0,
            "a closed relay is not counted"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_message_reaches_the_upstream_intact() {
    bounded(async {
        let mut h = start(&[]).await;
        let mut ws = h.connect("/ws/echo").await;
        let parts: [(&str, OpCode, bool); 3] = [
            ("hel", OpCode::Data(Data::Text), false),
            ("lo, ", OpCode::Data(Data::Continue), false),
            ("world", OpCode::Data(Data::Continue), true),
        ];
        for (text, opcode, fin) in parts {
            ws.send(Message::Frame(Frame::message(
                text.as_bytes().to_vec(),
                opcode,
                fin,
            )))
            .await
            .unwrap();
        }
        assert_eq!(h.upstream.received().await, Message::text("hello, world"));
        assert_eq!(next_message(&mut ws).await, Message::text("hello, world"));
        close_normally(&mut ws).await;

        let record = h.record().await;
        let ws_stats = stats(&record);
        assert_eq!((ws_stats.messages_in, ws_stats.bytes_in), (1, 12));
        assert_eq!((ws_stats.messages_out, ws_stats.bytes_out), (1, 12));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_pong_pass_through_uncounted() {
    bounded(async {
        let mut h = start(&[]).await;
        let mut ws = h.connect("/ws/echo").await;
        ws.send(Message::Ping("are you there".into()))
            .await
            .unwrap();
        assert_eq!(
            h.upstream.received().await,
            Message::Ping("are you there".into())
        );
        assert_eq!(
            next_message(&mut ws).await,
            Message::Pong("are you there".into())
        );
        close_normally(&mut ws).await;

        let record = h.record().await;
        let ws_stats = stats(&record);
        assert_eq!(
            (
                ws_stats.messages_in,
                ws_stats.messages_out,
                ws_stats.bytes_in,
                ws_stats.bytes_out
            ),
            (0, 0, 0, 0)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_is_negotiated_end_to_end() {
    bounded(async {
        let mut h = start(&[]).await;
        let (mut ws, headers) = h
            .connect_with(
                "/ws/echo",
                &[("sec-websocket-protocol", "chat.v2, chat.v1")],
            )
            .await;
        assert_eq!(headers["sec-websocket-protocol"], "chat.v2");
        let (_, upstream_headers) = h.upstream.handshake().await;
        assert_eq!(
            upstream_headers["sec-websocket-protocol"],
            "chat.v2, chat.v1"
        );
        close_normally(&mut ws).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_headers_reach_the_upstream_but_extensions_do_not() {
    bounded(async {
        let mut h = start(&[]).await;
        let client_headers = [
            ("authorization", "Bearer secret-token"),
            ("cookie", "session=abc; theme=dark"),
            ("x-custom", "kept"),
            (
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            ),
        ];
        let (mut ws, response_headers) = h
            .connect_with("/ws/echo?room=7&user=ann", &client_headers)
            .await;
        let (uri, headers) = h.upstream.handshake().await;
        assert_eq!(uri, "/echo?room=7&user=ann");
        assert_eq!(headers["authorization"], "Bearer secret-token");
        assert_eq!(headers["cookie"], "session=abc; theme=dark");
        assert_eq!(headers["x-custom"], "kept");
        assert!(
            !headers.contains_key("sec-websocket-extensions"),
            "{headers:?}"
        );
        assert_eq!(headers["host"], h.upstream.addr.to_string());
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["x-forwarded-host"], h.addr.to_string());
        assert_eq!(headers["x-request-id"], response_headers["x-request-id"]);
        assert!(!response_headers.contains_key("sec-websocket-extensions"));
        close_normally(&mut ws).await;
        let record = h.record().await;
        assert_eq!(record.request_id.as_str(), response_headers["x-request-id"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_initiated_close_is_recorded_with_its_code() {
    bounded(async {
        let mut h = start(&[]).await;
        let mut ws = h.connect("/ws/close?n=2&code=4000").await;
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("greeting 0"));
        assert_eq!(next_message(&mut ws).await, Message::text("greeting 1"));
        assert_eq!(expect_close(&mut ws).await, Some(4000));
        // tungstenite answered the Close with the same code, relayed to the upstream.
        assert_eq!(h.upstream.closed().await, Some(4000));

        let record = h.record().await;
        let ws_stats = stats(&record);
        assert_eq!((ws_stats.messages_in, ws_stats.bytes_in), (1, 2));
        assert_eq!((ws_stats.messages_out, ws_stats.bytes_out), (2, 20));
        assert_eq!(ws_stats.close_code, Some(4000));
        assert_eq!(ws_stats.closed_by, Some("upstream"));
        assert_eq!(record.error, None);
        h.assert_no_other_record().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_without_close_is_recorded_as_1006_and_upstream_gets_1001() {
    bounded(async {
        let mut h = start(&[]).await;
        let mut ws = h.connect("/ws/echo").await;
        ws.send(Message::text("bye")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("bye"));
        drop(ws);
        assert_eq!(h.upstream.closed().await, Some(1001));

        let record = h.record().await;
        assert_eq!(record.error, Some(ErrorClass::ClientClosed));
        assert_eq!(record.status, 101);
        let ws_stats = stats(&record);
        assert_eq!(
            (ws_stats.close_code, ws_stats.closed_by),
            (Some(1006), Some("client"))
        );
        assert_eq!((ws_stats.messages_in, ws_stats.messages_out), (1, 1));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Limits

const SMALL_FRAMES: [&str; 2] = ["max_frame_bytes: 1024", "max_message_bytes: 4096"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_frame_over_the_limit_gets_1009_and_upstream_1001() {
    bounded(async {
        let mut h = start(&SMALL_FRAMES).await;
        let mut ws = h.connect("/ws/echo").await;
        // Exactly the limit is allowed.
        ws.send(Message::binary(vec![1u8; 1024])).await.unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Message::binary(vec![1u8; 1024])
        );
        ws.send(Message::binary(vec![2u8; 1025])).await.unwrap();
        assert_eq!(expect_close(&mut ws).await, Some(1009));
        assert_eq!(h.upstream.closed().await, Some(1001));

        let record = h.record().await;
        assert_eq!(record.error, Some(ErrorClass::WebSocketFrameTooLarge));
        assert_eq!(record.error.unwrap().as_str(), "websocket_frame_too_large");
        let ws_stats = stats(&record);
        assert_eq!(
            (ws_stats.close_code, ws_stats.closed_by),
            (Some(1009), Some("gateway"))
        );
        assert_eq!((ws_stats.messages_in, ws_stats.bytes_in), (1, 1024));
    })
    .await;
}

/// The gateway refuses a frame from its header, with most of the payload still on the wire;
/// closing the socket on unread data would reset it and lose the Close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_reaches_a_client_whose_oversized_frame_is_still_arriving() {
    bounded(async {
        let mut h = start(&SMALL_FRAMES).await;
        let mut ws = h.connect("/ws/echo").await;
        ws.send(Message::binary(vec![4u8; 4 << 20])).await.unwrap();
        assert_eq!(expect_close(&mut ws).await, Some(1009));
        assert_eq!(
            h.record().await.error,
            Some(ErrorClass::WebSocketFrameTooLarge)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_message_over_the_limit_gets_1009() {
    bounded(async {
        let mut h = start(&SMALL_FRAMES).await;
        let mut ws = h.connect("/ws/echo").await;
        let chunk = vec![3u8; 1000];
        ws.send(Message::Frame(Frame::message(
            chunk.clone(),
            OpCode::Data(Data::Binary),
            false,
        )))
        .await
        .unwrap();
        for _ in 0..3 {
            ws.send(Message::Frame(Frame::message(
                chunk.clone(),
                OpCode::Data(Data::Continue),
                false,
            )))
            .await
            .unwrap();
        }
        ws.send(Message::Frame(Frame::message(
            chunk,
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .unwrap();
        assert_eq!(expect_close(&mut ws).await, Some(1009));
        assert_eq!(h.upstream.closed().await, Some(1001));

        let record = h.record().await;
        assert_eq!(record.error, Some(ErrorClass::WebSocketMessageTooLarge));
        let ws_stats = stats(&record);
        assert_eq!(
            (ws_stats.close_code, ws_stats.closed_by),
            (Some(1009), Some("gateway"))
        );
        assert_eq!(ws_stats.messages_in, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_frame_over_the_limit_gets_1009_and_client_1001() {
    bounded(async {
        let mut h = start(&SMALL_FRAMES).await;
        let mut ws = h.connect("/ws/big?size=2000").await;
        assert_eq!(expect_close(&mut ws).await, Some(1001));
        assert_eq!(h.upstream.closed().await, Some(1009));

        let record = h.record().await;
        assert_eq!(record.error, Some(ErrorClass::WebSocketFrameTooLarge));
        let ws_stats = stats(&record);
        assert_eq!(
            (ws_stats.close_code, ws_stats.closed_by),
            (Some(1009), Some("gateway"))
        );
        assert_eq!(ws_stats.messages_out, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_is_closed_with_1001_both_ways() {
    bounded(async {
        let mut h = start(&["idle_timeout_ms: 300"]).await;
        let mut ws = h.connect("/ws/echo").await;
        ws.send(Message::text("one")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("one"));
        assert_eq!(expect_close(&mut ws).await, Some(1001));
        assert_eq!(h.upstream.closed().await, Some(1001));

        let record = h.record().await;
        assert_eq!(record.error, Some(ErrorClass::WebSocketIdleTimeout));
        let ws_stats = stats(&record);
        assert_eq!(
            (ws_stats.close_code, ws_stats.closed_by),
            (Some(1001), Some("gateway"))
        );
        assert_eq!((ws_stats.messages_in, ws_stats.messages_out), (1, 1));
        assert!(record.timing.done >= Duration::from_millis(300));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_is_closed_with_1001_when_its_lifetime_ends() {
    bounded(async {
        let mut h = start(&["max_lifetime_ms: 300"]).await;
        let mut ws = h.connect("/ws/echo").await;
        assert_eq!(expect_close(&mut ws).await, Some(1001));
        assert_eq!(h.upstream.closed().await, Some(1001));

        let record = h.record().await;
        assert_eq!(record.error, Some(ErrorClass::WebSocketLifetimeExceeded));
        let ws_stats = stats(&record);
        assert_eq!(
            (ws_stats.close_code, ws_stats.closed_by),
            (Some(1001), Some("gateway"))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_connections_with_1001_and_completes() {
    bounded(async {
        let mut h = start(&[]).await;
        let mut ws = h.connect("/ws/echo").await;
        ws.send(Message::text("still here")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("still here"));
        let client = tokio::spawn(async move { expect_close(&mut ws).await });
        assert!(
            h.gateway.shutdown(Duration::from_secs(10)).await,
            "shutdown did not drain"
        );
        assert_eq!(client.await.unwrap(), Some(1001));
        assert_eq!(h.upstream.closed().await, Some(1001));

        let record = h.record().await;
        assert_eq!(record.error, None);
        let ws_stats = stats(&record);
        assert_eq!(
            (ws_stats.close_code, ws_stats.closed_by),
            (Some(1001), Some("gateway"))
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Refused handshakes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_a_502_with_the_request_id() {
    bounded(async {
        let closed_port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let upstream = Upstream::start().await;
        let mut h = start_with_upstream(closed_port, &[], upstream).await;
        let (status, head, body) = raw_upgrade(h.addr, "/ws/echo").await;
        assert_eq!(status, 502);
        assert!(head.contains("content-type: application/json"), "{head}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let request_id = json["requestId"].as_str().unwrap();
        assert!(
            head.contains(&format!(
                "x-request-id: {}",
                request_id.to_ascii_lowercase()
            )),
            "{head}"
        );

        let record = h.record().await;
        assert_eq!(record.kind, ExchangeKind::WebSocket);
        assert_eq!(
            (record.status, record.error),
            (502, Some(ErrorClass::UpstreamConnect))
        );
        assert_eq!(record.request_id.as_str(), request_id);
        assert!(record.websocket.is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusing_the_handshake_is_a_502_recording_its_status() {
    bounded(async {
        let mut h = start(&[]).await;
        let (status, _, body) = raw_upgrade(h.addr, "/ws/reject").await;
        assert_eq!(status, 502);
        assert!(body.contains("requestId"), "{body}");

        let record = h.record().await;
        assert_eq!(
            (record.status, record.error),
            (502, Some(ErrorClass::UpstreamRejected))
        );
        assert_eq!(record.integration.status, Some(403));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_get_on_a_websocket_route_is_426() {
    bounded(async {
        let mut h = start(&[]).await;
        let (status, head, body) = raw_get(h.addr, "/ws/echo", "").await;
        assert_eq!(status, 426);
        assert!(head.contains("upgrade: websocket"), "{head}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(json["requestId"].is_string());

        let record = h.record().await;
        assert_eq!((record.kind, record.status), (ExchangeKind::WebSocket, 426));
        // The upstream was never dialled.
        assert!(h.upstream.events.try_recv().is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_websocket_version_is_426_without_dialling_the_upstream() {
    bounded(async {
        let mut h = start(&[]).await;
        let headers = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        let (status, head, _) = raw_get(h.addr, "/ws/echo", headers).await;
        assert_eq!(status, 426);
        assert!(head.contains("sec-websocket-version: 13"), "{head}");
        assert_eq!(h.record().await.status, 426);
        assert!(h.upstream.events.try_recv().is_err());
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Load

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_connections_each_get_their_own_record() {
    bounded(async {
        const CONNECTIONS: usize = 50;
        let mut h = start(&[]).await;
        let addr = h.addr;
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|i| {
                tokio::spawn(async move {
                    let url = format!("ws://{addr}/ws/echo?client={i}");
                    let (mut ws, response) = tokio_tungstenite::connect_async(url).await.unwrap();
                    for j in 0..3 {
                        let text = format!("client {i} message {j}");
                        ws.send(Message::text(text.clone())).await.unwrap();
                        assert_eq!(next_message(&mut ws).await, Message::text(text));
                    }
                    close_normally(&mut ws).await;
                    response.headers()["x-request-id"]
                        .to_str()
                        .unwrap()
                        .to_owned()
                })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        for client in clients {
            ids.insert(client.await.unwrap());
        }
        for _ in 0..CONNECTIONS {
            let record = h.record().await;
            assert!(
                ids.remove(record.request_id.as_str()),
                "unexpected record {record:?}"
            );
            let ws_stats = stats(&record);
            assert_eq!((ws_stats.messages_in, ws_stats.messages_out), (3, 3));
            assert_eq!(
                (ws_stats.close_code, ws_stats.closed_by),
                (Some(1000), Some("client"))
            );
        }
        assert!(ids.is_empty());
        h.assert_no_other_record().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_continues_the_callers_trace() {
    bounded(async {
        let mut h = start(&[]).await;
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
        let (mut ws, headers) = h
            .connect_with("/ws/echo", &[("traceparent", &traceparent)])
            .await;
        let root = "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736";
        assert_eq!(headers["x-amzn-trace-id"], root);
        let (_, upstream_headers) = h.upstream.handshake().await;
        close_normally(&mut ws).await;
        let record = h.record().await;
        let ids = record.trace.expect("a WebSocket record has a trace");
        let mut span = Vec::new();
        gatehouse_telemetry::trace::push_hex(&mut span, &ids.span_id);
        let span = String::from_utf8(span).unwrap();
        assert_eq!(
            upstream_headers["traceparent"],
            format!("00-{trace}-{span}-01").as_str()
        );
        assert_eq!(
            upstream_headers["x-amzn-trace-id"],
            format!("{root};Parent={span};Sampled=1").as_str()
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Message events on the connection span

/// A caller's `traceparent` that asks for the trace to be sampled (flags `01`) or not (`00`).
fn traceparent(sampled: bool) -> String {
    let flags = if sampled { "01" } else { "00" };
    format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_connection_records_each_message_with_direction_type_size_and_time() {
    use WebSocketDirection::{In, Out};
    use WebSocketMessageKind::{Binary, Text};
    bounded(async {
        let mut h = start(&[]).await;
        let (mut ws, _) = h
            .connect_with("/ws/greet?n=1", &[("traceparent", &traceparent(true))])
            .await;
        assert_eq!(next_message(&mut ws).await, Message::text("greeting 0"));
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("hello"));
        ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::binary(vec![1, 2, 3]));
        // A fragmented message is one message, of its first frame's type.
        for (part, opcode, fin) in [
            (&b"ab"[..], OpCode::Data(Data::Binary), false),
            (&b"cd"[..], OpCode::Data(Data::Continue), true),
        ] {
            let frame = Frame::message(part.to_vec(), opcode, fin);
            ws.send(Message::Frame(frame)).await.unwrap();
        }
        assert_eq!(
            next_message(&mut ws).await,
            Message::binary(b"abcd".to_vec())
        );
        ws.send(Message::Ping("not a message".into()))
            .await
            .unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Message::Pong("not a message".into())
        );
        close_normally(&mut ws).await;

        let record = h.record().await;
        assert!(record.trace.unwrap().sampled);
        let ws_stats = stats(&record);
        let seen: Vec<_> = ws_stats
            .message_events
            .iter()
            .map(|m| (m.direction, m.kind, m.size))
            .collect();
        assert_eq!(
            seen,
            [
                (Out, Text, 10),
                (In, Text, 5),
                (Out, Text, 5),
                (In, Binary, 3),
                (Out, Binary, 3),
                (In, Binary, 4),
                (Out, Binary, 4),
            ],
            "data messages only, in the order they were read"
        );
        let times: Vec<u64> = ws_stats.message_events.iter().map(|m| m.at_nanos).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap();
        let open = nanos(record.timing.integration_response.unwrap());
        assert!(times[0] >= open && times[6] <= nanos(record.timing.done));

        // The connection span carries them as events between open and close.
        let span = spans_from_exchange(&record).swap_remove(0);
        let names: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"websocket.open"));
        assert_eq!(names.last(), Some(&"websocket.close"));
        assert_eq!(names.iter().filter(|n| **n == "message").count(), 7);
        let second = &span.events[2];
        let attribute = |key: &str| {
            second
                .attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            attribute("message.type"),
            Some(AttrValue::Str("RECEIVED".into()))
        );
        assert_eq!(attribute("message.id"), Some(AttrValue::Int(1)));
        assert_eq!(
            attribute("message.uncompressed_size"),
            Some(AttrValue::Int(5))
        );
        assert_eq!(
            attribute("gatehouse.websocket.opcode"),
            Some(AttrValue::Str("text".into()))
        );
        assert_eq!(span.attribute("gatehouse.websocket.events_dropped"), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_connection_keeps_its_first_128_messages_and_counts_the_rest() {
    bounded(async {
        let mut h = start(&[]).await;
        let (mut ws, _) = h
            .connect_with("/ws/echo", &[("traceparent", &traceparent(true))])
            .await;
        for i in 0..100 {
            ws.send(Message::text(format!("m{i}"))).await.unwrap();
            assert_eq!(next_message(&mut ws).await, Message::text(format!("m{i}")));
        }
        close_normally(&mut ws).await;

        let record = h.record().await;
        let ws_stats = stats(&record);
        assert_eq!((ws_stats.messages_in, ws_stats.messages_out), (100, 100));
        assert_eq!(ws_stats.message_events.len(), MAX_WEBSOCKET_MESSAGE_EVENTS);
        // Each echo is read after the message it answers: the first 128 alternate, 64 each way.
        for (i, pair) in ws_stats.message_events.chunks(2).enumerate() {
            assert_eq!(pair[0].direction, WebSocketDirection::In, "{i}");
            assert_eq!(pair[1].direction, WebSocketDirection::Out, "{i}");
        }
        let span = spans_from_exchange(&record).swap_remove(0);
        assert_eq!(
            span.attribute_int("gatehouse.websocket.events_dropped"),
            Some(200 - 128)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_connection_records_no_message_events() {
    bounded(async {
        let mut h = start(&[]).await;
        let (mut ws, _) = h
            .connect_with("/ws/echo", &[("traceparent", &traceparent(false))])
            .await;
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("hello"));
        close_normally(&mut ws).await;

        let record = h.record().await;
        assert!(!record.trace.unwrap().sampled);
        let ws_stats = stats(&record);
        assert_eq!((ws_stats.messages_in, ws_stats.messages_out), (1, 1));
        assert!(ws_stats.message_events.is_empty());
    })
    .await;
}
