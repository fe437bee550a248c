//! The trace endpoints: one trace by id, and the search over stored requests.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState, TracesQuery, api_error};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/traces", get(search))
        .route("/admin/traces/{id}", get(trace))
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
