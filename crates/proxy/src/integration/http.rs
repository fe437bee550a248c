//! The HTTP integration: forward the request to an upstream and stream the answer back.
//!
//! Upstream connections are pooled and kept alive per authority. The integration timeout covers
//! the time until the upstream's response head arrives (API Gateway's 29 s default); the body
//! then streams for as long as both sides keep it moving.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::{HeaderOps, HttpIntegration, PathParams};
use gatehouse_telemetry::IntegrationOutcome;
use gatehouse_telemetry::execution::{IntegrationRequest, IntegrationResponse};
use http::header::{self, HeaderValue};
use http::{Request, Response, Uri, Version, request::Parts};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{RequestBody, ResponseBody};
use crate::error::GatewayError;
use crate::headers::{X_REQUEST_ID, add_forwarded, remove_hop_by_hop};
use crate::integration::pool::{Http1Pool, PoolKey};
use crate::record::Recorder;
use crate::service::{RequestScope, reply_error};

type Connector = HttpsConnector<HttpConnector>;

/// Pooled upstream clients: one speaking HTTP/1.1, one speaking HTTP/2.
pub(crate) struct Upstream {
    http1: Arc<Http1Pool>,
    http2: Client<Connector, RequestBody>,
    tls: Arc<rustls::ClientConfig>,
}

impl Upstream {
    pub(crate) fn new() -> Result<Self, rustls::Error> {
        let tls = tls_client_config()?;
        Ok(Self {
            http1: Arc::new(Http1Pool::new(&tls)),
            http2: client(Arc::clone(&tls), true),
            tls,
        })
    }

    /// The TLS client settings shared by every upstream connection (also `wss://`).
    pub(crate) fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.tls)
    }
}

/// The TLS settings for connections to upstreams: the Mozilla root store, no client certificate.
fn tls_client_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn connector(tls: Arc<rustls::ClientConfig>, http2: bool) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(tls))
        .https_or_http();
    if http2 {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    }
}

fn client(tls: Arc<rustls::ClientConfig>, http2: bool) -> Client<Connector, RequestBody> {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .set_host(true);
    if http2 {
        builder.http2_only(true);
    }
    builder.build(connector(tls, http2))
}

/// Proxies one request to the integration's upstream.
pub(crate) async fn forward(
    scope: &RequestScope<'_>,
    integration: &HttpIntegration,
    mut parts: Parts,
    body: Incoming,
    params: &PathParams<'_>,
    mut recorder: Recorder,
) -> Response<ResponseBody> {
    recorder.exchange().integration.kind = Some("http");
    let uri = {
        let context = |var| scope.context_value(var, &parts.method, parts.uri.path());
        let mut url = integration.url.render(params, &context);
        if let Some(query) = parts.uri.query() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(query);
        }
        match url.parse::<Uri>() {
            Ok(uri) if uri.authority().is_some() => uri,
            _ => {
                recorder.exchange().integration.error =
                    Some("the integration URL is not a valid absolute URL after rendering".into());
                return reply_error(recorder, GatewayError::Internal, scope.request_id, None);
            }
        }
    };
    if scope.trace.is_some_and(|trace| trace.ids.sampled) {
        recorder.exchange().integration.url = Some(IntegrationOutcome::url_without_query(&uri));
    }
    let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    {
        let (method, path) = (&parts.method, parts.uri.path());
        let context = |var| scope.context_value(var, method, path);
        let headers = &mut parts.headers;
        remove_hop_by_hop(headers);
        headers.remove(header::HOST);
        add_forwarded(headers, &scope.conn.forwarding, original_host.as_ref());
        if let Ok(value) = HeaderValue::from_str(scope.request_id.as_str()) {
            headers.insert(X_REQUEST_ID, value);
        }
        if let Some(trace) = scope.trace {
            trace.propagate(headers);
        }
        apply(&integration.request_headers, headers, params, &context);
    }
    let method = parts.method.clone();
    let (body, upload) = RequestBody::new(
        body,
        scope.limits.max_payload_bytes,
        recorder.body_capture_limit(),
    );
    recorder.track_upload(Arc::clone(&upload));
    let upstream = &scope.gateway.upstream;
    let started = recorder.elapsed();
    recorder.exchange().timing.integration_start = Some(started);
    let (original_uri, outcome) = if integration.http2 {
        record_request(&mut recorder, &parts, &uri);
        let original_uri = std::mem::replace(&mut parts.uri, uri);
        parts.version = Version::HTTP_2;
        let request = Request::from_parts(parts, body);
        let sent = upstream.http2.request(request);
        let outcome = tokio::time::timeout(integration.timeout, sent)
            .await
            .map(|result| {
                result
                    .map(|response| (response, None))
                    .map_err(|error| SendError {
                        connect: error.is_connect(),
                        message: describe(&error),
                    })
            });
        (original_uri, outcome)
    } else {
        // The HTTP/1.1 pool sends what it is given: an origin-form target and our own Host.
        let Some(authority) = uri.authority().cloned() else {
            return reply_error(recorder, GatewayError::Internal, scope.request_id, None);
        };
        let key = PoolKey::new(uri.scheme(), &authority);
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, host);
        }
        let target = uri
            .path_and_query()
            .cloned()
            .map_or_else(|| Uri::from_static("/"), Uri::from);
        record_request(&mut recorder, &parts, &uri);
        let original_uri = std::mem::replace(&mut parts.uri, target);
        parts.version = Version::HTTP_11;
        let request = Request::from_parts(parts, body);
        let sent = upstream.http1.send(key, request);
        let outcome = tokio::time::timeout(integration.timeout, sent)
            .await
            .map(|result| {
                result
                    .map(|(response, loan)| (response, Some(loan)))
                    .map_err(|error| SendError {
                        connect: error.is_connect(),
                        message: error.to_string(),
                    })
            });
        (original_uri, outcome)
    };
    let answered = recorder.elapsed();
    let (response, loan) = match outcome {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => {
            recorder.exchange().integration.error = Some(error.message);
            let failure = if upload.limit_exceeded() {
                GatewayError::PayloadTooLarge
            } else if upload.client_gone() {
                let response = reply_error(
                    recorder,
                    GatewayError::MalformedRequest,
                    scope.request_id,
                    None,
                );
                return client_gone(response);
            } else if upload.client_failed() {
                GatewayError::MalformedRequest
            } else if error.connect {
                GatewayError::UpstreamConnect
            } else {
                GatewayError::UpstreamReset
            };
            return reply_error(recorder, failure, scope.request_id, None);
        }
        Err(_elapsed) => {
            recorder.exchange().integration.error = Some(format!(
                "no response within {} ms",
                integration.timeout.as_millis()
            ));
            return reply_error(
                recorder,
                GatewayError::UpstreamTimeout,
                scope.request_id,
                None,
            );
        }
    };

    let (mut parts, body) = response.into_parts();
    {
        let exchange = recorder.exchange();
        exchange.status = parts.status.as_u16();
        exchange.integration.status = Some(parts.status.as_u16());
        exchange.timing.integration_response = Some(answered);
    }
    if let Some(detail) = recorder.execution() {
        detail.integration_response = Some(IntegrationResponse {
            status: parts.status.as_u16(),
            headers: Some(parts.headers.clone()),
        });
    }
    remove_hop_by_hop(&mut parts.headers);
    {
        let context = |var| scope.context_value(var, &method, original_uri.path());
        apply(
            &integration.response_headers,
            &mut parts.headers,
            params,
            &context,
        );
    }
    Response::from_parts(parts, ResponseBody::upstream(body, recorder, loan))
}

/// Keeps the request as it goes upstream (method, full URL, final headers) for the execution log.
fn record_request(recorder: &mut Recorder, parts: &Parts, uri: &Uri) {
    if let Some(detail) = recorder.execution() {
        detail.integration_request = Some(IntegrationRequest {
            method: parts.method.clone(),
            url: uri.to_string(),
            headers: parts.headers.clone(),
        });
    }
}

/// An upstream exchange that failed, from either client.
struct SendError {
    connect: bool,
    message: String,
}

/// The record of a request whose client vanished mid-upload says so; the response is moot.
fn client_gone(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    response
        .body_mut()
        .mark_client_closed("client closed the connection during the upload");
    response
}

fn apply<'c>(
    ops: &HeaderOps,
    headers: &mut http::HeaderMap,
    params: &PathParams<'_>,
    context: &dyn Fn(gatehouse_config::ContextVar) -> std::borrow::Cow<'c, str>,
) {
    for name in &ops.remove {
        headers.remove(name);
    }
    for (name, template) in &ops.set {
        let value = match template.as_static() {
            Some(text) => HeaderValue::from_str(text),
            None => HeaderValue::from_str(&template.render(params, context)),
        };
        match value {
            Ok(value) => {
                headers.insert(name.clone(), value);
            }
            Err(_) => {
                tracing::debug!(header = %name, "header template rendered to an invalid value; skipped")
            }
        }
    }
}

/// One line: the error and its causes, e.g. `client error (Connect): tcp connect error: Connection refused`.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
