//! The WebSocket integration: connect to the upstream first, then upgrade the client, then relay
//! frame by frame so that messages and bytes are counted each way and limits are enforced.
//!
//! The upstream handshake happens before the client's, so an unreachable upstream is a plain
//! 502 and the subprotocol the upstream picked can be returned to the client. Extensions are
//! not negotiated (`Sec-WebSocket-Extensions` is dropped): frames stay uncompressed and
//! readable. One exchange is recorded per connection when it ends, with the close code and
//! which side closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket, WebSocketError, WebSocketRead, WebSocketWrite};
use gatehouse_config::{PathParams, WebSocketIntegration};
use gatehouse_telemetry::{ErrorClass, ExchangeKind, WebSocketStats};
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, request::Parts};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::body::ResponseBody;
use crate::error::GatewayError;
use crate::headers::{X_REQUEST_ID, add_forwarded, remove_hop_by_hop};
use crate::record::Recorder;
use crate::service::{RequestScope, reply_error};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After one side sent Close, how long the other side has to answer with its own Close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_TOO_BIG: u16 = 1009;

const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");
const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
const SEC_WEBSOCKET_EXTENSIONS: HeaderName = HeaderName::from_static("sec-websocket-extensions");
const SEC_WEBSOCKET_PROTOCOL: HeaderName = HeaderName::from_static("sec-websocket-protocol");

type UpstreamSocket = WebSocket<TokioIo<Upgraded>>;

pub(crate) async fn upgrade(
    scope: &RequestScope<'_>,
    integration: &WebSocketIntegration,
    parts: Parts,
    body: Incoming,
    params: &PathParams<'_>,
    mut recorder: Recorder,
) -> Response<ResponseBody> {
    {
        let exchange = recorder.exchange();
        exchange.kind = ExchangeKind::WebSocket;
        exchange.integration.kind = Some("websocket");
    }
    let request = Request::from_parts(parts, body);
    if !fastwebsockets::upgrade::is_upgrade_request(&request) {
        return reply_error(recorder, GatewayError::UpgradeRequired, scope.request_id, None);
    }
    let (parts, body) = request.into_parts();
    let url = {
        let context = |var| scope.context_value(var, &parts.method, parts.uri.path());
        let mut url = integration.url.render(params, &context);
        if let Some(query) = parts.uri.query() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(query);
        }
        url
    };
    let Ok(uri) = url.parse::<Uri>() else {
        recorder.exchange().integration.error = Some("the WebSocket URL is invalid after rendering".into());
        return reply_error(recorder, GatewayError::Internal, scope.request_id, None);
    };

    let started = recorder.elapsed();
    recorder.exchange().timing.integration_start = Some(started);
    let upstream = tokio::time::timeout(CONNECT_TIMEOUT, connect_upstream(scope, &uri, &parts)).await;
    let answered = recorder.elapsed();
    recorder.exchange().timing.integration_response = Some(answered);
    let (upstream_ws, upstream_response) = match upstream {
        Ok(Ok(pair)) => pair,
        Ok(Err(failure)) => {
            let (error, status, message) = failure.into_parts();
            let exchange = recorder.exchange();
            exchange.integration.status = status;
            exchange.integration.error = Some(message);
            return reply_error(recorder, error, scope.request_id, None);
        }
        Err(_) => {
            recorder.exchange().integration.error = Some("WebSocket upstream did not answer in time".into());
            return reply_error(recorder, GatewayError::UpstreamTimeout, scope.request_id, None);
        }
    };

    let mut request = Request::from_parts(parts, body);
    let (response, client_upgrade) = match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok(pair) => pair,
        Err(_) => return reply_error(recorder, GatewayError::MalformedRequest, scope.request_id, None),
    };
    let (mut head, Empty { .. }) = response.into_parts();
    if let Some(protocol) = upstream_response.get(SEC_WEBSOCKET_PROTOCOL) {
        head.headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol.clone());
    }
    {
        let exchange = recorder.exchange();
        exchange.status = StatusCode::SWITCHING_PROTOCOLS.as_u16();
        exchange.integration.status = Some(StatusCode::SWITCHING_PROTOCOLS.as_u16());
    }

    let limits = Limits::from(integration);
    let shutdown = scope.gateway.connections.shutdown.clone();
    scope.gateway.connections.tracker.spawn(async move {
        match client_upgrade.await {
            Ok(client_ws) => relay(client_ws, upstream_ws, limits, shutdown, recorder).await,
            Err(error) => {
                recorder.set_error(ErrorClass::ClientClosed, format!("client upgrade failed: {error}"));
                recorder.publish();
            }
        }
    });
    Response::from_parts(head, ResponseBody::empty())
}

struct ConnectFailure {
    error: GatewayError,
    status: Option<u16>,
    message: String,
}

impl ConnectFailure {
    fn into_parts(self) -> (GatewayError, Option<u16>, String) {
        (self.error, self.status, self.message)
    }

    fn connect(message: String) -> Self {
        Self { error: GatewayError::UpstreamConnect, status: None, message }
    }
}

async fn connect_upstream(
    scope: &RequestScope<'_>,
    uri: &Uri,
    client_head: &Parts,
) -> Result<(UpstreamSocket, http::HeaderMap), ConnectFailure> {
    let secure = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        other => return Err(ConnectFailure::connect(format!("unsupported scheme {other:?}"))),
    };
    let host = uri.host().ok_or_else(|| ConnectFailure::connect("URL has no host".into()))?;
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let host_for_connect = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((host_for_connect, port))
        .await
        .map_err(|e| ConnectFailure::connect(format!("tcp connect to {host}:{port} failed: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn IoBox> = if secure {
        let server_name = rustls_pki_types::ServerName::try_from(host_for_connect.to_owned())
            .map_err(|e| ConnectFailure::connect(format!("invalid TLS server name {host}: {e}")))?;
        let tls = crate::integration::http::tls_client_config()
            .map_err(|e| ConnectFailure::connect(format!("TLS setup failed: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(|e| ConnectFailure::connect(format!("TLS handshake with {host} failed: {e}")))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };

    let mut headers = client_head.headers.clone();
    remove_hop_by_hop(&mut headers);
    for name in [&SEC_WEBSOCKET_KEY, &SEC_WEBSOCKET_VERSION, &SEC_WEBSOCKET_EXTENSIONS, &SEC_WEBSOCKET_ACCEPT] {
        headers.remove(name);
    }
    let original_host = headers.remove(header::HOST);
    add_forwarded(&mut headers, scope.conn.client.ip(), scope.conn.tls, original_host.as_ref());
    if let Ok(value) = HeaderValue::from_str(scope.request_id.as_str()) {
        headers.insert(X_REQUEST_ID, value);
    }
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut request = Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .body(Empty::<Bytes>::new())
        .map_err(|e| ConnectFailure::connect(format!("invalid upstream request: {e}")))?;
    *request.headers_mut() = headers;
    let request_headers = request.headers_mut();
    if let Ok(value) = HeaderValue::from_str(authority) {
        request_headers.insert(header::HOST, value);
    }
    request_headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    request_headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    request_headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    if let Ok(key) = HeaderValue::from_str(&fastwebsockets::handshake::generate_key()) {
        request_headers.insert(SEC_WEBSOCKET_KEY, key);
    }

    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ConnectFailure::connect(format!("HTTP handshake failed: {e}")))?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream WebSocket handshake connection failed");
        }
    });
    let mut response = sender.send_request(request).await.map_err(|e| ConnectFailure {
        error: GatewayError::UpstreamReset,
        status: None,
        message: format!("upstream handshake failed: {e}"),
    })?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(ConnectFailure {
            error: GatewayError::UpstreamRejected,
            status: Some(response.status().as_u16()),
            message: format!("upstream answered {} instead of 101", response.status()),
        });
    }
    let upgraded = hyper::upgrade::on(&mut response).await.map_err(|e| ConnectFailure {
        error: GatewayError::UpstreamReset,
        status: Some(101),
        message: format!("upstream upgrade failed: {e}"),
    })?;
    let ws = WebSocket::after_handshake(TokioIo::new(upgraded), Role::Client);
    Ok((ws, response.headers().clone()))
}

trait IoBox: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> IoBox for T {}

/// Per-connection limits, copied out of the route so the relay owns them.
#[derive(Clone, Copy)]
struct Limits {
    max_frame: usize,
    max_message: usize,
    idle: Duration,
    lifetime: Duration,
}

impl From<&WebSocketIntegration> for Limits {
    fn from(ws: &WebSocketIntegration) -> Self {
        Self {
            max_frame: ws.max_frame_bytes,
            max_message: ws.max_message_bytes,
            idle: ws.idle_timeout,
            lifetime: ws.max_lifetime,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }
}

/// How one direction of the relay ended.
#[derive(Debug)]
enum PumpEnd {
    /// The sender sent Close (forwarded to the other side) with this code.
    Closed(Option<u16>),
    /// The sender's frame broke a limit; both sides get this close code.
    Limit(u16, ErrorClass),
    /// The sender's connection failed or ended without a Close.
    Broken(String),
    /// Writing to the receiving side failed.
    WriteFailed(String),
}

#[derive(Default)]
struct Counters {
    messages: u64,
    bytes: u64,
}

async fn pump<R, W>(
    from: &mut WebSocketRead<R>,
    to: &mut WebSocketWrite<W>,
    limits: Limits,
    counters: &mut Counters,
    activity: &std::sync::atomic::AtomicU64,
    epoch: tokio::time::Instant,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut message_size = 0usize;
    let mut no_obligations = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
    loop {
        let frame = match from.read_frame(&mut no_obligations).await {
            Ok(frame) => frame,
            Err(WebSocketError::FrameTooLarge) => return PumpEnd::Limit(CLOSE_TOO_BIG, ErrorClass::WebSocketFrameTooLarge),
            Err(error) => return PumpEnd::Broken(error.to_string()),
        };
        activity.store(epoch.elapsed().as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
        let len = frame.payload.len();
        match frame.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                message_size = if frame.opcode == OpCode::Continuation { message_size + len } else { len };
                if message_size > limits.max_message {
                    return PumpEnd::Limit(CLOSE_TOO_BIG, ErrorClass::WebSocketMessageTooLarge);
                }
                counters.bytes += len as u64;
                if frame.fin {
                    counters.messages += 1;
                    message_size = 0;
                }
            }
            _ => {}
        }
        let close = (frame.opcode == OpCode::Close).then(|| close_code(&frame.payload));
        if let Err(error) = to.write_frame(frame).await {
            return PumpEnd::WriteFailed(error.to_string());
        }
        if let Some(code) = close {
            return PumpEnd::Closed(code);
        }
    }
}

fn close_code(payload: &Payload<'_>) -> Option<u16> {
    let bytes: &[u8] = payload;
    (bytes.len() >= 2).then(|| u16::from_be_bytes([bytes[0], bytes[1]]))
}

type Halves<S> = (WebSocketRead<ReadHalf<S>>, WebSocketWrite<WriteHalf<S>>);

fn split<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>, max_frame: usize) -> Halves<S> {
    ws.set_auto_close(false);
    ws.set_auto_pong(false);
    ws.set_max_message_size(max_frame);
    ws.split(tokio::io::split)
}

async fn relay(
    client: WebSocket<TokioIo<Upgraded>>,
    upstream: UpstreamSocket,
    limits: Limits,
    shutdown: CancellationToken,
    mut recorder: Recorder,
) {
    let (mut client_rx, mut client_tx) = split(client, limits.max_frame);
    let (mut upstream_rx, mut upstream_tx) = split(upstream, limits.max_frame);
    let epoch = tokio::time::Instant::now();
    let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut inbound = Counters::default();
    let mut outbound = Counters::default();

    // Runs both directions until one ends, a limit or timeout fires, or the gateway shuts down.
    let first = {
        let c2u = pump(&mut client_rx, &mut upstream_tx, limits, &mut inbound, &last, epoch);
        let u2c = pump(&mut upstream_rx, &mut client_tx, limits, &mut outbound, &last, epoch);
        tokio::pin!(c2u, u2c);
        let idle = idle_watch(&last, epoch, limits.idle);
        let lifetime = tokio::time::sleep(limits.lifetime);
        tokio::pin!(idle, lifetime);
        tokio::select! {
            end = &mut c2u => First::Pump(Side::Client, end),
            end = &mut u2c => First::Pump(Side::Upstream, end),
            () = &mut idle => First::Gateway(ErrorClass::WebSocketIdleTimeout, "idle timeout"),
            () = &mut lifetime => First::Gateway(ErrorClass::WebSocketLifetimeExceeded, "connection lifetime exceeded"),
            () = shutdown.cancelled() => First::Gateway(ErrorClass::Internal, "gateway shutting down"),
        }
    };

    let mut stats = WebSocketStats::default();
    match first {
        First::Pump(side, PumpEnd::Closed(code)) => {
            stats.close_code = code;
            stats.closed_by = Some(side.label());
            // Let the other side answer the Close it was sent, for a bounded time.
            let reply = match side {
                Side::Client => pump(&mut upstream_rx, &mut client_tx, limits, &mut outbound, &last, epoch),
                Side::Upstream => pump(&mut client_rx, &mut upstream_tx, limits, &mut inbound, &last, epoch),
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, reply).await;
        }
        First::Pump(side, PumpEnd::Limit(code, class)) => {
            stats.close_code = Some(code);
            stats.closed_by = Some("gateway");
            recorder.set_error(class, format!("{} broke a WebSocket size limit", side.label()));
            // The side that broke the limit hears why; the other side is told we are going away.
            let (client_code, upstream_code) = match side {
                Side::Client => (code, CLOSE_GOING_AWAY),
                Side::Upstream => (CLOSE_GOING_AWAY, code),
            };
            close_both(&mut client_tx, &mut upstream_tx, (client_code, upstream_code), b"message too big").await;
        }
        First::Pump(side, PumpEnd::Broken(reason)) => {
            stats.closed_by = Some(side.label());
            stats.close_code = Some(1006);
            let other_code = if side == Side::Client { CLOSE_GOING_AWAY } else { CLOSE_PROTOCOL_ERROR };
            match side {
                Side::Client => send_close(&mut upstream_tx, other_code, b"client went away").await,
                Side::Upstream => {
                    recorder.set_error(ErrorClass::UpstreamReset, format!("upstream connection failed: {reason}"));
                    send_close(&mut client_tx, CLOSE_GOING_AWAY, b"upstream went away").await;
                }
            }
        }
        First::Pump(side, PumpEnd::WriteFailed(reason)) => {
            let receiver = if side == Side::Client { Side::Upstream } else { Side::Client };
            stats.closed_by = Some(receiver.label());
            stats.close_code = Some(1006);
            if receiver == Side::Upstream {
                recorder.set_error(ErrorClass::UpstreamReset, format!("writing to upstream failed: {reason}"));
                send_close(&mut client_tx, CLOSE_GOING_AWAY, b"upstream went away").await;
            } else {
                send_close(&mut upstream_tx, CLOSE_GOING_AWAY, b"client went away").await;
            }
        }
        First::Gateway(class, reason) => {
            stats.close_code = Some(CLOSE_GOING_AWAY);
            stats.closed_by = Some("gateway");
            if class != ErrorClass::Internal {
                recorder.set_error(class, reason);
            }
            let codes = (CLOSE_GOING_AWAY, CLOSE_GOING_AWAY);
            close_both(&mut client_tx, &mut upstream_tx, codes, reason.as_bytes()).await;
        }
    }
    stats.messages_in = inbound.messages;
    stats.bytes_in = inbound.bytes;
    stats.messages_out = outbound.messages;
    stats.bytes_out = outbound.bytes;
    let exchange = recorder.exchange();
    exchange.bytes_in = stats.bytes_in;
    exchange.bytes_out = stats.bytes_out;
    exchange.timing.integration_end = None;
    exchange.websocket = Some(stats);
    recorder.publish();
}

enum First {
    Pump(Side, PumpEnd),
    Gateway(ErrorClass, &'static str),
}

async fn idle_watch(last: &std::sync::atomic::AtomicU64, epoch: tokio::time::Instant, idle: Duration) {
    loop {
        let last_ms = last.load(std::sync::atomic::Ordering::Relaxed);
        let deadline = epoch + Duration::from_millis(last_ms) + idle;
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

async fn send_close<W: AsyncWrite + Unpin>(to: &mut WebSocketWrite<W>, code: u16, reason: &[u8]) {
    let _ = tokio::time::timeout(CLOSE_GRACE, to.write_frame(Frame::close(code, reason))).await;
}

async fn close_both<A, B>(
    client: &mut WebSocketWrite<A>,
    upstream: &mut WebSocketWrite<B>,
    (client_code, upstream_code): (u16, u16),
    reason: &[u8],
) where
    A: AsyncWrite + Unpin,
    B: AsyncWrite + Unpin,
{
    tokio::join!(send_close(client, client_code, reason), send_close(upstream, upstream_code, reason));
}
