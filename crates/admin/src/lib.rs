//! The admin API: a separate listener (127.0.0.1 by default) for controlling a running gateway.
//!
//! Every endpoint except `/healthz` requires `Authorization: Bearer <token>`. The API does not
//! know how to reload or what status means; the binary supplies that through [`Control`], so
//! this crate stays independent of the data plane.
//!
//! Endpoints:
//! - `GET /healthz`: liveness, no token.
//! - `GET /admin/status`: version, uptime, config summary, telemetry counters.
//! - `POST /admin/reload`: re-read the config file; 200 with the new summary, or 400 with the
//!   errors (the old config keeps serving).
//! - `GET /metrics`: the Prometheus exposition.
//! - `GET /admin/metrics`, `GET /admin/metrics/query`: stored metrics.
//! - `GET /admin/alarms`, `GET /admin/alarms/history`: alarm states and their changes.
//! - `GET /admin/logs/groups`, `POST /admin/logs/query`, `GET /admin/logs/tail` (server-sent
//!   events): the log store.
//! - `GET /admin/traces/{id}` (W3C or X-Ray trace id; 400 if malformed, 404 if unknown) and
//!   `GET /admin/traces?api=&stage=&route=&status=&fault=true&min_duration=200ms&since=1h&limit=`:
//!   the trace store.
//! - `GET /admin/graph?since=1h` (or `start=` / `end=`): the service graph of a window of spans.
//! - `POST /v1/traces`: the OTLP/HTTP receiver, protobuf or JSON, for spans services send.
//! - `GET`, `PUT`, `DELETE /admin/alarms/{name}`: one alarm; `PUT` creates (201) or replaces
//!   (200) an alarm from a JSON body with the config file's alarm fields, 400 with the list of
//!   errors if it is invalid; config-file alarms answer 409 to `PUT` and `DELETE`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod logs;
mod traces;

pub use traces::OtlpEncoding;

/// A boxed future borrowed from the controller.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A metrics query as the admin API receives it (query string of `GET /admin/metrics/query`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    pub metric: String,
    pub api: Option<String>,
    pub stage: Option<String>,
    pub route: Option<String>,
    pub method: Option<String>,
    /// `Sum`, `Average`, `Minimum`, `Maximum`, `SampleCount` or `pNN`.
    pub stat: Option<String>,
    /// Seconds, a multiple of 60.
    pub period: Option<u32>,
    /// Unix seconds or RFC 3339.
    pub start: Option<String>,
    pub end: Option<String>,
    /// A duration back from now (`15m`, `1h`, `2d`), instead of `start`.
    pub since: Option<String>,
}

/// A log query as the admin API receives it (JSON body of `POST /admin/logs/query`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// The query, in the Logs Insights subset of `docs/log-queries.md`.
    pub query: String,
    /// Log groups: exact names or prefixes ending in `*`; every access log when empty.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Unix seconds or RFC 3339.
    pub start: Option<String>,
    pub end: Option<String>,
    /// A duration back from now (`15m`, `1h`, `2d`), instead of `start`.
    pub since: Option<String>,
}

/// What `GET /admin/logs/tail` follows (its query string).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailQuery {
    /// An exact group name or a prefix ending in `*`; every group when absent.
    pub group: Option<String>,
    /// A filter expression, as after `filter` in a query.
    pub filter: Option<String>,
}

/// The window of a service graph (query string of `GET /admin/graph`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphQuery {
    /// Unix seconds or RFC 3339.
    pub start: Option<String>,
    pub end: Option<String>,
    /// A duration back from now (`15m`, `1h`, `2d`), instead of `start`.
    pub since: Option<String>,
}

/// A trace search as the admin API receives it (query string of `GET /admin/traces`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesQuery {
    pub api: Option<String>,
    pub stage: Option<String>,
    /// A route template as in the config, e.g. `/pets/{id}`.
    pub route: Option<String>,
    pub status: Option<u16>,
    /// `true`: only faults (5xx).
    pub fault: Option<bool>,
    /// The shortest request listed, e.g. `200ms`, `1s`.
    pub min_duration: Option<String>,
    /// Unix seconds or RFC 3339.
    pub start: Option<String>,
    pub end: Option<String>,
    /// A duration back from now (`15m`, `1h`, `2d`), instead of `start`.
    pub since: Option<String>,
    pub limit: Option<usize>,
}

/// One item of a live tail.
#[derive(Debug, Clone)]
pub enum TailItem {
    /// A log event as JSON (`timestamp`, `group`, `message`).
    Event(Value),
    /// The follower fell behind and this many events were skipped.
    Dropped(u64),
}

/// The stream of a live tail; it ends when the gateway stops.
pub type LogTail = Pin<Box<dyn futures_util::Stream<Item = TailItem> + Send>>;

/// Why a query endpoint could not answer.
#[derive(Debug)]
pub enum ApiError {
    /// The request is wrong; the message says how (400).
    BadRequest(String),
    /// The feature is off or its backend failed (503).
    Unavailable(String),
    /// No such thing (404).
    NotFound(String),
    /// The thing exists but may not be changed this way; the message says how (409).
    Conflict(String),
    /// The request body is invalid: a summary and one entry per problem (400).
    Invalid {
        message: String,
        errors: Vec<String>,
    },
}

/// What a `PUT` did, with the written resource.
#[derive(Debug)]
pub enum Written {
    /// 201.
    Created(Value),
    /// 200.
    Replaced(Value),
}

fn alarms_need_metrics<T: Send + 'static>() -> BoxFuture<'static, Result<T, ApiError>> {
    Box::pin(async {
        Err(ApiError::Unavailable(
            "alarms need metrics to be enabled".into(),
        ))
    })
}

/// What the admin API asks of the running gateway.
pub trait Control: Send + Sync + 'static {
    /// Reloads the configuration. `Ok` carries a JSON summary of the new config, `Err` the
    /// validation errors, one per entry.
    fn reload(&self) -> BoxFuture<'_, Result<Value, Vec<String>>>;

    /// A JSON snapshot of the gateway's state.
    fn status(&self) -> Value;

    /// The Prometheus exposition, or `None` when metrics are disabled.
    fn prometheus(&self) -> Option<String> {
        None
    }

    /// Answers a metrics query with its data points.
    fn query_metrics(&self, _query: MetricsQuery) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(ApiError::Unavailable("metrics are disabled".into())) })
    }

    /// The alarms with their current state.
    fn alarms(&self) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async {
            Err(ApiError::Unavailable(
                "alarms need metrics to be enabled".into(),
            ))
        })
    }

    /// State changes of one alarm (or all), newest first.
    fn alarm_history(
        &self,
        _alarm: Option<String>,
        _since: Option<String>,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async {
            Err(ApiError::Unavailable(
                "alarms need metrics to be enabled".into(),
            ))
        })
    }

    /// Lists the log groups with their retention and size.
    fn log_groups(&self) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(ApiError::Unavailable("the log store is disabled".into())) })
    }

    /// Runs a log query.
    fn query_logs(&self, _query: LogsQuery) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(ApiError::Unavailable("the log store is disabled".into())) })
    }

    /// Follows new log events.
    fn tail_logs(&self, _query: TailQuery) -> Result<LogTail, ApiError> {
        Err(ApiError::Unavailable("the log store is disabled".into()))
    }

    /// One trace by id (W3C or X-Ray form), its spans in start order.
    fn trace(&self, _id: String) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(ApiError::Unavailable("the trace store is disabled".into())) })
    }

    /// Stores the spans of an OTLP/HTTP `ExportTraceServiceRequest` that a service sent in
    /// `encoding`; `Ok` carries the `ExportTraceServiceResponse` in the same encoding.
    fn receive_spans(
        &self,
        _encoding: OtlpEncoding,
        _body: bytes::Bytes,
    ) -> BoxFuture<'_, Result<Vec<u8>, ApiError>> {
        Box::pin(async { Err(ApiError::Unavailable("the trace store is disabled".into())) })
    }

    /// The stored requests matching a search, newest first.
    fn search_traces(&self, _query: TracesQuery) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(ApiError::Unavailable("the trace store is disabled".into())) })
    }

    /// The service graph of the spans of a window.
    fn graph(&self, _query: GraphQuery) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(ApiError::Unavailable("the trace store is disabled".into())) })
    }

    /// One alarm: its definition and state.
    fn alarm(&self, _name: String) -> BoxFuture<'_, Result<Value, ApiError>> {
        alarms_need_metrics()
    }

    /// Creates or replaces an alarm from a JSON document.
    fn put_alarm(&self, _name: String, _body: Value) -> BoxFuture<'_, Result<Written, ApiError>> {
        alarms_need_metrics()
    }

    /// Deletes an alarm created through the API.
    fn delete_alarm(&self, _name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        alarms_need_metrics()
    }

    /// Lists the metrics and dimension sets with data since `since_unix`.
    fn list_metrics(&self, _since_unix: Option<String>) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Err(ApiError::Unavailable("metrics are disabled".into())) })
    }
}

#[derive(Clone)]
struct AppState {
    control: Arc<dyn Control>,
    token: Arc<str>,
}

/// Builds the admin router; `token` is compared in constant time on every protected request.
pub fn router(control: Arc<dyn Control>, token: &str) -> Router {
    let state = AppState {
        control,
        token: Arc::from(token),
    };
    let protected = Router::new()
        .route("/admin/status", get(status))
        .route("/admin/reload", post(reload))
        .route("/metrics", get(prometheus))
        .route("/admin/metrics", get(list_metrics))
        .route("/admin/metrics/query", get(query_metrics))
        .route("/admin/alarms", get(alarms))
        .route("/admin/alarms/history", get(alarm_history))
        .merge(logs::routes())
        .merge(traces::routes())
        .route(
            "/admin/alarms/{name}",
            get(alarm).put(put_alarm).delete(delete_alarm),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(protected)
        .with_state(state)
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the admin API until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "message": "missing or invalid admin token" })),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Compares without an early exit, so the time taken does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn status(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(state.control.status())
}

/// The content type of the Prometheus text format this endpoint serves.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn prometheus(State(state): State<AppState>) -> Response {
    match state.control.prometheus() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        None => api_error(ApiError::Unavailable(
            "metrics are disabled in the config".into(),
        )),
    }
}

fn api_error(error: ApiError) -> Response {
    let (status, message) = match error {
        ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
        ApiError::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, message),
        ApiError::NotFound(message) => (StatusCode::NOT_FOUND, message),
        ApiError::Conflict(message) => (StatusCode::CONFLICT, message),
        ApiError::Invalid { message, errors } => {
            let body = json!({ "message": message, "errors": errors });
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    (status, axum::Json(json!({ "message": message }))).into_response()
}

async fn query_metrics(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<MetricsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(axum::extract::Query(query)) => query,
        Err(rejection) => return api_error(ApiError::BadRequest(rejection.body_text())),
    };
    match state.control.query_metrics(query).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    since: Option<String>,
}

async fn list_metrics(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<ListQuery>,
) -> Response {
    match state.control.list_metrics(query.since).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

async fn alarms(State(state): State<AppState>) -> Response {
    match state.control.alarms().await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    alarm: Option<String>,
    since: Option<String>,
}

async fn alarm_history(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<HistoryQuery>,
) -> Response {
    match state.control.alarm_history(query.alarm, query.since).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

async fn alarm(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match state.control.alarm(name).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

/// Takes any content type: the body must be JSON whatever the header says.
async fn put_alarm(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(body) => body,
        Err(error) => {
            return api_error(ApiError::BadRequest(format!(
                "the body must be a JSON object with the alarm's fields: {error}"
            )));
        }
    };
    match state.control.put_alarm(name, body).await {
        Ok(Written::Created(value)) => (StatusCode::CREATED, axum::Json(value)).into_response(),
        Ok(Written::Replaced(value)) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

async fn delete_alarm(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match state.control.delete_alarm(name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => api_error(error),
    }
}

async fn reload(State(state): State<AppState>) -> Response {
    match state.control.reload().await {
        Ok(summary) => (StatusCode::OK, axum::Json(json!({ "status": "reloaded", "config": summary }))).into_response(),
        Err(errors) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "status": "rejected", "message": "the new config is invalid; the old one keeps serving", "errors": errors })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake {
        reloads: AtomicUsize,
        fail: bool,
    }

    impl Control for Fake {
        fn reload(&self) -> BoxFuture<'_, Result<Value, Vec<String>>> {
            self.reloads.fetch_add(1, Ordering::SeqCst);
            let fail = self.fail;
            Box::pin(async move {
                if fail {
                    Err(vec!["gateway.yaml:3:5: apis[0].name: bad".into()])
                } else {
                    Ok(json!({"apis": 1}))
                }
            })
        }
        fn status(&self) -> Value {
            json!({"ok": true})
        }

        fn prometheus(&self) -> Option<String> {
            Some("# TYPE up gauge\nup 1\n".into())
        }

        fn put_alarm(&self, name: String, body: Value) -> BoxFuture<'_, Result<Written, ApiError>> {
            Box::pin(async move {
                match name.as_str() {
                    "from-file" => Err(ApiError::Conflict("edit the file".into())),
                    "bad" => Err(ApiError::Invalid {
                        message: "the alarm is invalid".into(),
                        errors: vec!["threshold: must be a finite number".into()],
                    }),
                    "existing" => Ok(Written::Replaced(body)),
                    _ => Ok(Written::Created(body)),
                }
            })
        }

        fn delete_alarm(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
            Box::pin(async move {
                match name.as_str() {
                    "existing" => Ok(()),
                    _ => Err(ApiError::NotFound(format!("no alarm named '{name}'"))),
                }
            })
        }

        fn receive_spans(
            &self,
            encoding: OtlpEncoding,
            body: bytes::Bytes,
        ) -> BoxFuture<'_, Result<Vec<u8>, ApiError>> {
            Box::pin(async move {
                match &body[..] {
                    b"garbage" => Err(ApiError::BadRequest("not a request".into())),
                    _ => Ok(format!("{encoding:?}").into_bytes()),
                }
            })
        }

        fn query_metrics(&self, query: MetricsQuery) -> BoxFuture<'_, Result<Value, ApiError>> {
            Box::pin(async move {
                if query.metric == "Nope" {
                    return Err(ApiError::BadRequest("unknown metric 'Nope'".into()));
                }
                Ok(json!({"metric": query.metric, "api": query.api, "period": query.period}))
            })
        }
    }

    async fn start(fail: bool) -> (String, Arc<Fake>, CancellationToken) {
        let fake = Arc::new(Fake {
            reloads: AtomicUsize::new(0),
            fail,
        });
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let app = router(fake.clone(), "s3cret-token-0123456789");
        tokio::spawn(serve(listener, app, shutdown.clone()));
        (base, fake, shutdown)
    }

    #[tokio::test]
    async fn token_is_required_except_for_health() {
        let (base, fake, shutdown) = start(false).await;
        let client = reqwest::Client::new();
        assert_eq!(
            client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic s3cret-token-0123456789"),
        ] {
            let mut request = client.post(format!("{base}/admin/reload"));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{auth:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
        }
        assert_eq!(fake.reloads.load(Ordering::SeqCst), 0);
        let response = client
            .post(format!("{base}/admin/reload"))
            .bearer_auth("s3cret-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(fake.reloads.load(Ordering::SeqCst), 1);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn rejected_reload_returns_the_errors() {
        let (base, _fake, shutdown) = start(true).await;
        let response = reqwest::Client::new()
            .post(format!("{base}/admin/reload"))
            .bearer_auth("s3cret-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0], "gateway.yaml:3:5: apis[0].name: bad");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn metrics_endpoints_need_the_token_and_answer_in_their_formats() {
        let (base, _fake, shutdown) = start(false).await;
        let client = reqwest::Client::new();
        assert_eq!(
            client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        let response = client
            .get(format!("{base}/metrics"))
            .bearer_auth("s3cret-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-type"], PROMETHEUS_CONTENT_TYPE);
        assert_eq!(response.text().await.unwrap(), "# TYPE up gauge\nup 1\n");

        let query = |q: &str| {
            client
                .get(format!("{base}/admin/metrics/query?{q}"))
                .bearer_auth("s3cret-token-0123456789")
                .send()
        };
        let ok: Value = query("metric=Latency&api=pets&period=300")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            ok,
            json!({"metric": "Latency", "api": "pets", "period": 300})
        );
        assert_eq!(query("metric=Nope").await.unwrap().status(), 400);
        assert_eq!(
            query("api=pets").await.unwrap().status(),
            400,
            "metric is required"
        );
        assert_eq!(
            query("metric=Count&colour=red").await.unwrap().status(),
            400,
            "unknown parameter"
        );
        let listed = client
            .get(format!("{base}/admin/metrics"))
            .bearer_auth("s3cret-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), 503, "the default answer is 'disabled'");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn the_span_receiver_reads_both_otlp_encodings_and_answers_in_the_same() {
        let (base, _fake, shutdown) = start(false).await;
        let client = reqwest::Client::new();
        let post = |content_type: Option<&str>, content_encoding: Option<&str>, body: &str| {
            let mut request = client
                .post(format!("{base}/v1/traces"))
                .bearer_auth("s3cret-token-0123456789")
                .body(body.to_owned());
            if let Some(value) = content_type {
                request = request.header("content-type", value);
            }
            if let Some(value) = content_encoding {
                request = request.header("content-encoding", value);
            }
            request.send()
        };
        for (content_type, content_encoding, answer_type, answer) in [
            (
                "application/x-protobuf",
                None,
                "application/x-protobuf",
                "Protobuf",
            ),
            ("application/json", None, "application/json", "Json"),
            (
                "Application/JSON; charset=utf-8",
                None,
                "application/json",
                "Json",
            ),
            (
                "application/json",
                Some("identity"),
                "application/json",
                "Json",
            ),
        ] {
            let response = post(Some(content_type), content_encoding, "{}")
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{content_type}");
            assert_eq!(response.headers()["content-type"], answer_type);
            assert_eq!(response.text().await.unwrap(), answer);
        }
        for content_type in [None, Some("text/plain"), Some("application/jsonl")] {
            let response = post(content_type, None, "{}").await.unwrap();
            assert_eq!(response.status(), 415, "{content_type:?}");
            let message = response.text().await.unwrap();
            assert!(message.contains("application/json"), "{message}");
        }
        let response = post(Some("application/json"), Some("gzip"), "{}")
            .await
            .unwrap();
        assert_eq!(response.status(), 415);
        assert_eq!(response.headers()["accept-encoding"], "identity");
        let message = response.text().await.unwrap();
        assert!(message.contains("'gzip'"), "{message}");
        let response = post(Some("application/json"), None, "garbage")
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn alarm_writes_answer_with_their_status_codes() {
        let (base, _fake, shutdown) = start(false).await;
        let client = reqwest::Client::new();
        let put = |name: &str, body: &'static str| {
            client
                .put(format!("{base}/admin/alarms/{name}"))
                .bearer_auth("s3cret-token-0123456789")
                .body(body)
                .send()
        };
        let created = put("new", r#"{"threshold": 1}"#).await.unwrap();
        assert_eq!(created.status(), 201);
        assert_eq!(
            created.json::<Value>().await.unwrap(),
            json!({"threshold": 1})
        );
        assert_eq!(put("existing", "{}").await.unwrap().status(), 200);
        assert_eq!(put("from-file", "{}").await.unwrap().status(), 409);
        let invalid = put("bad", "{}").await.unwrap();
        assert_eq!(invalid.status(), 400);
        assert_eq!(
            invalid.json::<Value>().await.unwrap()["errors"][0],
            "threshold: must be a finite number"
        );
        let not_json = put("new", "threshold: 1").await.unwrap();
        assert_eq!(not_json.status(), 400);
        let message = not_json.json::<Value>().await.unwrap()["message"].to_string();
        assert!(message.contains("must be a JSON object"), "{message}");
        assert_eq!(
            client
                .put(format!("{base}/admin/alarms/new"))
                .body("{}")
                .send()
                .await
                .unwrap()
                .status(),
            401
        );

        let delete = |name: &str| {
            client
                .delete(format!("{base}/admin/alarms/{name}"))
                .bearer_auth("s3cret-token-0123456789")
                .send()
        };
        assert_eq!(delete("existing").await.unwrap().status(), 204);
        assert_eq!(delete("nope").await.unwrap().status(), 404);
        let get = client
            .get(format!("{base}/admin/alarms/existing"))
            .bearer_auth("s3cret-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 503, "the default answer is 'disabled'");
        shutdown.cancel();
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
