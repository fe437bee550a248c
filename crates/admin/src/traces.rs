//! The trace endpoints: one trace by id, the search over stored requests, and the OTLP/HTTP
//! receiver (`POST /v1/traces`, protobuf or JSON) where the services behind the gateway send
//! their own spans, behind the admin token like every admin endpoint; and the service graph built
//! from the stored spans of a window.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};

use super::{ApiError, AppState, GraphQuery, TracesQuery, api_error};

/// The two encodings of OTLP/HTTP (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>), told
/// apart by `Content-Type`; the answer takes the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl OtlpEncoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }

    /// The encoding of a `Content-Type` value: its media type, parameters (`; charset=utf-8`)
    /// aside, case-insensitively (RFC 9110 §8.3.1).
    fn from_content_type(value: &str) -> Option<Self> {
        let media_type = value.split(';').next().unwrap_or_default().trim();
        [Self::Protobuf, Self::Json]
            .into_iter()
            .find(|encoding| media_type.eq_ignore_ascii_case(encoding.content_type()))
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/traces", get(search))
        .route("/admin/traces/{id}", get(trace))
        .route("/v1/traces", post(receive))
        .route("/admin/graph", get(graph))
}

/// Anything but the two OTLP encodings is refused with 415, so a misconfigured exporter says so
/// at once. Bodies are read uncompressed: a compressed one is refused with 415 too, rather than
/// failing to decode as a 400.
async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(encoding) = OtlpEncoding::from_content_type(content_type) else {
        let message = format!(
            "send spans as application/x-protobuf or application/json (OTLP/HTTP); \
             '{content_type}' is not read here"
        );
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response();
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
        .filter(|v| !v.eq_ignore_ascii_case("identity"));
    if let Some(content_encoding) = content_encoding {
        let message = format!(
            "send spans uncompressed (set the exporter's compression to none); \
             Content-Encoding '{content_encoding}' is not read here"
        );
        // RFC 9110 §12.5.3: in a 415, Accept-Encoding names the codings the server reads.
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [(header::ACCEPT_ENCODING, "identity")],
            message,
        )
            .into_response();
    }
    match state.control.receive_spans(encoding, body).await {
        Ok(answer) => ([(header::CONTENT_TYPE, encoding.content_type())], answer).into_response(),
        Err(error) => api_error(error),
    }
}

async fn trace(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.control.trace(id).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

async fn search(
    State(state): State<AppState>,
    query: Result<Query<TracesQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return api_error(ApiError::BadRequest(rejection.body_text())),
    };
    match state.control.search_traces(query).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

async fn graph(
    State(state): State<AppState>,
    query: Result<Query<GraphQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return api_error(ApiError::BadRequest(rejection.body_text())),
    };
    match state.control.graph(query).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}
