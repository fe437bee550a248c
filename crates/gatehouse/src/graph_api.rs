//! `GET /admin/graph`: the service graph of a window, built from the stored spans on a blocking
//! thread (the read and the build are both CPU and disk work) and answered as JSON.
//!
//! The read is capped at [`MAX_GRAPH_SPANS`] spans, the oldest of the window; the answer says
//! `capped: true` when spans were left out, so a short window can be asked for instead.

use gatehouse_admin::{ApiError, GraphQuery};
use gatehouse_store::{MAX_GRAPH_SPANS, Store};
use gatehouse_telemetry::spans::{ServiceGraph, build_graph};
use serde_json::{Value, json};

use crate::logs_api::{rfc3339_ms, time_range};

/// Answers `GET /admin/graph`.
pub(crate) async fn graph(store: &Store, query: GraphQuery) -> Result<Value, ApiError> {
    let (start_ms, end_ms) = time_range(
        query.start.as_deref(),
        query.end.as_deref(),
        query.since.as_deref(),
    )?;
    let ns = |ms: i64| u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
    let (start, end) = (ns(start_ms), ns(end_ms));
    let store = store.clone();
    let (graph, spans, capped) = tokio::task::spawn_blocking(move || {
        store
            .spans_in_window(start, end, MAX_GRAPH_SPANS)
            .map(|(spans, capped)| (build_graph(&spans), spans.len(), capped))
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("the graph task failed: {e}")))?
    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(json!({
        "window": {"start": rfc3339_ms(start_ms), "end": rfc3339_ms(end_ms)},
        "spans": spans,
        "capped": capped,
        "nodes": nodes_json(&graph),
        "edges": edges_json(&graph),
    }))
}

fn nodes_json(graph: &ServiceGraph) -> Vec<Value> {
    graph
        .nodes
        .iter()
        .map(|node| json!({"id": node.id(), "kind": node.kind.as_str(), "name": node.name}))
        .collect()
}

fn edges_json(graph: &ServiceGraph) -> Vec<Value> {
    let ms = |nanos: u64| nanos as f64 / 1e6;
    graph
        .edges
        .iter()
        .map(|edge| {
            json!({
                "from": edge.from.id(),
                "to": edge.to.id(),
                "requests": edge.requests,
                "errors": edge.errors,
                "faults": edge.faults,
                "throttles": edge.throttles,
                "latencyMs": {
                    "p50": ms(edge.latency.p50),
                    "p90": ms(edge.latency.p90),
                    "p99": ms(edge.latency.p99),
                },
            })
        })
        .collect()
}
