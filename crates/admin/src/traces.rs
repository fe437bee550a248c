//! The trace endpoints: one trace by id, the search over stored requests, and the OTLP/HTTP
//! receiver (`POST /v1/traces`, protobuf) where the services behind the gateway send their own
//! spans, behind the admin token like every admin endpoint; and the service graph built from the
//! stored spans of a window.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};

use super::{ApiError, AppState, GraphQuery, TracesQuery, api_error};

const PROTOBUF: &str = "application/x-protobuf";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/traces", get(search))
        .route("/admin/traces/{id}", get(trace))
        .route("/v1/traces", post(receive))
        .route("/admin/graph", get(graph))
}

/// OTLP/HTTP allows protobuf and JSON; only protobuf is read, and anything else is refused with
/// 415 so a misconfigured exporter says so at once.
async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with(PROTOBUF) {
        let message = format!(
            "send spans as {PROTOBUF} (OTLP/HTTP protobuf); '{content_type}' is not read here"
        );
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response();
    }
    match state.control.receive_spans(body).await {
        Ok(answer) => ([(header::CONTENT_TYPE, PROTOBUF)], answer).into_response(),
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
