//! The gateway's own WebSocket handshake with the upstream (RFC 6455 §4.1), over TCP or TLS.
//!
//! The client's headers go along (cookies, authorization, the offered subprotocols) except the
//! hop-by-hop ones and those that belong to one handshake: the key and version are the gateway's
//! own, and extensions are never offered, so every frame the relay sees is plain.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri, request::Parts};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::GatewayError;
use crate::headers::{X_REQUEST_ID, add_forwarded, remove_hop_by_hop};
use crate::service::RequestScope;

/// How long the upstream has for TCP, TLS and the handshake together.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
pub(super) const SEC_WEBSOCKET_VERSION: HeaderName =
    HeaderName::from_static("sec-websocket-version");
pub(super) const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
pub(super) const SEC_WEBSOCKET_EXTENSIONS: HeaderName =
    HeaderName::from_static("sec-websocket-extensions");
pub(super) const SEC_WEBSOCKET_PROTOCOL: HeaderName =
    HeaderName::from_static("sec-websocket-protocol");

/// Why the upstream handshake failed: the gateway error to answer, the upstream's status if it
/// answered, and a message for the record.
pub(super) struct ConnectFailure {
    pub(super) error: GatewayError,
    pub(super) status: Option<u16>,
    pub(super) message: String,
}

impl ConnectFailure {
    fn connect(message: String) -> Self {
        Self {
            error: GatewayError::UpstreamConnect,
            status: None,
            message,
        }
    }

    fn invalid(status: StatusCode, message: String) -> Self {
        Self {
            error: GatewayError::UpstreamReset,
            status: Some(status.as_u16()),
            message,
        }
    }
}

/// The upgraded upstream connection and the headers of its 101 answer.
pub(super) type Connected = (TokioIo<Upgraded>, HeaderMap);

/// Dials the upstream and performs the handshake. When `sent` is given (an execution log wants
/// it), the handshake's request headers are copied into it.
pub(super) async fn connect(
    scope: &RequestScope<'_>,
    uri: &Uri,
    client: &Parts,
    sent: Option<&mut HeaderMap>,
) -> Result<Connected, ConnectFailure> {
    let secure = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        other => {
            return Err(ConnectFailure::connect(format!(
                "unsupported scheme {other:?}"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| ConnectFailure::connect("the URL has no host".into()))?;
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare_host, port)).await.map_err(|e| {
        ConnectFailure::connect(format!("tcp connect to {host}:{port} failed: {e}"))
    })?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if secure {
        let server_name = rustls_pki_types::ServerName::try_from(bare_host.to_owned())
            .map_err(|e| ConnectFailure::connect(format!("invalid TLS server name {host}: {e}")))?;
        let tls = scope.gateway.upstream.tls_config();
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(|e| {
                ConnectFailure::connect(format!("TLS handshake with {host} failed: {e}"))
            })?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };

    let key = fastwebsockets::handshake::generate_key();
    let request = handshake_request(scope, uri, client, &key)
        .map_err(|e| ConnectFailure::connect(format!("invalid upstream request: {e}")))?;
    if let Some(sent) = sent {
        sent.clone_from(request.headers());
    }
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ConnectFailure::connect(format!("HTTP handshake failed: {e}")))?;
    // Ends as soon as the connection is upgraded (or the sender is dropped).
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream WebSocket handshake connection failed");
        }
    });
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| ConnectFailure {
            error: GatewayError::UpstreamReset,
            status: None,
            message: format!("upstream handshake failed: {e}"),
        })?;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return Err(ConnectFailure {
            error: GatewayError::UpstreamRejected,
            status: Some(status.as_u16()),
            message: format!("upstream answered {status} instead of 101"),
        });
    }
    verify_accept(response.headers(), &key)
        .map_err(|message| ConnectFailure::invalid(status, message))?;
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| ConnectFailure::invalid(status, format!("upstream upgrade failed: {e}")))?;
    Ok((TokioIo::new(upgraded), response.headers().clone()))
}

fn handshake_request(
    scope: &RequestScope<'_>,
    uri: &Uri,
    client: &Parts,
    key: &str,
) -> Result<Request<Empty<Bytes>>, http::Error> {
    let mut headers = client.headers.clone();
    remove_hop_by_hop(&mut headers);
    for name in [
        &SEC_WEBSOCKET_KEY,
        &SEC_WEBSOCKET_VERSION,
        &SEC_WEBSOCKET_EXTENSIONS,
        &SEC_WEBSOCKET_ACCEPT,
    ] {
        headers.remove(name);
    }
    let original_host = headers.remove(header::HOST);
    add_forwarded(&mut headers, &scope.conn.forwarding, original_host.as_ref());
    if let Ok(value) = HeaderValue::from_str(scope.request_id.as_str()) {
        headers.insert(X_REQUEST_ID, value);
    }
    if let Some(trace) = scope.trace {
        trace.propagate(&mut headers);
    }
    if let Some(authority) = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        headers.insert(header::HOST, authority);
    }
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    headers.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_str(key)?);

    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut request = Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .body(Empty::new())?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// RFC 6455 §4.1: the client must fail the connection unless `Sec-WebSocket-Accept` answers its
/// key, and unless the server picked no extension it did not offer (we offer none).
fn verify_accept(headers: &HeaderMap, key: &str) -> Result<(), String> {
    if headers.contains_key(SEC_WEBSOCKET_EXTENSIONS) {
        return Err("upstream enabled a WebSocket extension the gateway did not offer".into());
    }
    let expected = expected_accept(key).ok_or("cannot compute Sec-WebSocket-Accept")?;
    match headers.get(SEC_WEBSOCKET_ACCEPT) {
        Some(accept) if *accept == expected => Ok(()),
        Some(_) => Err("upstream answered a wrong Sec-WebSocket-Accept".into()),
        None => Err("upstream answered 101 without Sec-WebSocket-Accept".into()),
    }
}

/// fastwebsockets computes the accept value only inside its server-side `upgrade`, so we let it
/// answer a stand-in request carrying our key (this crate has no sha1 or base64 of its own).
fn expected_accept(key: &str) -> Option<HeaderValue> {
    let request = Request::builder()
        .header(SEC_WEBSOCKET_KEY, key)
        .header(SEC_WEBSOCKET_VERSION, "13")
        .body(())
        .ok()?;
    let (response, _) = fastwebsockets::upgrade::upgrade(request).ok()?;
    response.headers().get(SEC_WEBSOCKET_ACCEPT).cloned()
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
