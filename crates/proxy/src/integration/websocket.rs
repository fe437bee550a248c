//! The WebSocket integration: check the client's handshake, connect to the upstream, upgrade the
//! client, then relay frame by frame so that messages and bytes are counted each way and limits
//! are enforced.
//!
//! The upstream handshake happens before the client is answered, so an unreachable or refusing
//! upstream is a plain 502 and the subprotocol the upstream picked can be returned to the client.
//! Extensions are not negotiated (`Sec-WebSocket-Extensions` is dropped): frames stay
//! uncompressed and readable. One exchange is recorded per connection when it ends, with the
//! close code and which side closed ([`relay`]).

mod relay;
mod upstream;

use gatehouse_config::{PathParams, WebSocketIntegration};
use gatehouse_telemetry::execution::{IntegrationRequest, IntegrationResponse};
use gatehouse_telemetry::{ErrorClass, ExchangeKind, IntegrationOutcome};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, request::Parts};
use http_body_util::Empty;
use hyper::body::Incoming;

use crate::body::ResponseBody;
use crate::error::GatewayError;
use crate::record::Recorder;
use crate::service::{RequestScope, reply_error};
use relay::{CLOSE_GOING_AWAY, CLOSE_GRACE, Limits};
use upstream::{CONNECT_TIMEOUT, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION};

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
    let mut request = Request::from_parts(parts, body);
    if !fastwebsockets::upgrade::is_upgrade_request(&request) {
        return upgrade_required(recorder, scope);
    }
    // Checked before the upstream is dialled, so a bad handshake costs no upstream connection.
    let (response, client_upgrade) = match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok(pair) => pair,
        Err(fastwebsockets::WebSocketError::InvalidSecWebsocketVersion) => {
            return upgrade_required(recorder, scope);
        }
        Err(_) => {
            return reply_error(
                recorder,
                GatewayError::MalformedRequest,
                scope.request_id,
                None,
            );
        }
    };
    let (parts, _body) = request.into_parts();
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
        recorder.exchange().integration.error =
            Some("the WebSocket URL is invalid after rendering".into());
        return reply_error(recorder, GatewayError::Internal, scope.request_id, None);
    };

    let started = recorder.elapsed();
    {
        let exchange = recorder.exchange();
        exchange.timing.integration_start = Some(started);
        if exchange.trace.is_some_and(|trace| trace.sampled) {
            exchange.integration.url = Some(IntegrationOutcome::url_without_query(&uri));
        }
    }
    let mut sent = recorder.execution().map(|_| HeaderMap::new());
    let connect = upstream::connect(scope, &uri, &parts, sent.as_mut());
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect).await;
    let answered = recorder.elapsed();
    recorder.exchange().timing.integration_response = Some(answered);
    if let Some(detail) = recorder.execution() {
        // Dialling may fail before the handshake is built; the URL is worth logging anyway.
        detail.integration_request = Some(IntegrationRequest {
            method: Method::GET,
            url,
            headers: sent.unwrap_or_default(),
        });
        let status = match &connected {
            Ok(Ok(_)) => Some(StatusCode::SWITCHING_PROTOCOLS.as_u16()),
            Ok(Err(failure)) => failure.status,
            Err(_) => None,
        };
        if let Some(status) = status {
            let headers = match &connected {
                Ok(Ok((_, headers))) => Some(headers.clone()),
                _ => None,
            };
            detail.integration_response = Some(IntegrationResponse { status, headers });
        }
    }
    let (upstream_io, upstream_headers) = match connected {
        Ok(Ok(connected)) => connected,
        Ok(Err(failure)) => {
            let exchange = recorder.exchange();
            exchange.integration.status = failure.status;
            exchange.integration.error = Some(failure.message);
            return reply_error(recorder, failure.error, scope.request_id, None);
        }
        Err(_) => {
            recorder.exchange().integration.error =
                Some("WebSocket upstream did not answer in time".into());
            return reply_error(
                recorder,
                GatewayError::UpstreamTimeout,
                scope.request_id,
                None,
            );
        }
    };

    let (mut head, Empty { .. }) = response.into_parts();
    if let Some(protocol) = upstream_headers.get(SEC_WEBSOCKET_PROTOCOL) {
        head.headers
            .insert(SEC_WEBSOCKET_PROTOCOL, protocol.clone());
    }
    {
        let exchange = recorder.exchange();
        exchange.status = StatusCode::SWITCHING_PROTOCOLS.as_u16();
        exchange.integration.status = Some(StatusCode::SWITCHING_PROTOCOLS.as_u16());
    }
    let limits = Limits::from(integration);
    let shutdown = scope.gateway.connections.shutdown.clone();
    let permit = scope.conn.take_permit();
    let open = crate::conn::OpenWebSocket::new(&scope.gateway.connections.open_websockets);
    scope.gateway.connections.tracker.spawn(async move {
        let _permit = permit;
        let _open = open;
        match client_upgrade.await {
            Ok(client) => {
                relay::relay(client.into_inner(), upstream_io, limits, shutdown, recorder).await
            }
            Err(error) => {
                recorder.set_error(
                    ErrorClass::ClientClosed,
                    format!("client upgrade failed: {error}"),
                );
                recorder.publish();
                let (_, mut upstream) = fastwebsockets::after_handshake_split(
                    tokio::io::empty(),
                    upstream_io,
                    fastwebsockets::Role::Client,
                );
                let goodbye = fastwebsockets::Frame::close(CLOSE_GOING_AWAY, b"client went away");
                let _ = tokio::time::timeout(CLOSE_GRACE, upstream.write_frame(goodbye)).await;
            }
        }
    });
    Response::from_parts(head, ResponseBody::empty())
}

/// RFC 6455 §4.2.2 and RFC 9110 §15.5.22: a 426 names the protocol and version to upgrade to.
fn upgrade_required(recorder: Recorder, scope: &RequestScope<'_>) -> Response<ResponseBody> {
    let mut response = reply_error(
        recorder,
        GatewayError::UpgradeRequired,
        scope.request_id,
        None,
    );
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    response
}
