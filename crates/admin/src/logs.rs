//! The log endpoints: groups, queries and live tail (as server-sent events).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;

use super::{ApiError, AppState, LogsQuery, TailItem, TailQuery, api_error};

/// How often an idle tail sends a comment, so proxies and clients see the stream alive.
const TAIL_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/logs/groups", get(groups))
        .route("/admin/logs/query", post(query))
        .route("/admin/logs/tail", get(tail))
}

async fn groups(State(state): State<AppState>) -> Response {
    match state.control.log_groups().await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

async fn query(
    State(state): State<AppState>,
    body: Result<axum::Json<LogsQuery>, JsonRejection>,
) -> Response {
    let query = match body {
        Ok(axum::Json(query)) => query,
        Err(rejection) => return api_error(ApiError::BadRequest(rejection.body_text())),
    };
    match state.control.query_logs(query).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => api_error(error),
    }
}

async fn tail(
    State(state): State<AppState>,
    query: Result<Query<TailQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return api_error(ApiError::BadRequest(rejection.body_text())),
    };
    let items = match state.control.tail_logs(query) {
        Ok(items) => items,
        Err(error) => return api_error(error),
    };
    let events = items.map(|item| {
        Ok::<_, Infallible>(match item {
            TailItem::Event(value) => Event::default().data(value.to_string()),
            TailItem::Dropped(missed) => Event::default()
                .event("dropped")
                .data(format!("{{\"dropped\":{missed}}}")),
        })
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(TAIL_KEEP_ALIVE))
        .into_response()
}
