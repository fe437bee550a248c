//! Builders of synthetic exchanges and sinks for the metrics tests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use crate::metrics::{Dimensions, MetricPoint, StatisticSet};
use crate::{
    Decisions, Exchange, ExchangeKind, IntegrationOutcome, RouteLabels, Timing, WebSocketStats,
    new_request_id,
};

/// A request received at `at_unix` (seconds) that no route matched, answered 404 in 1 ms.
pub(crate) fn unrouted(at_unix: u64) -> Exchange {
    Exchange {
        kind: ExchangeKind::Http,
        request_id: new_request_id(),
        trace: None,
        listener: Arc::from("default"),
        route: None,
        canary: false,
        method: Some(http::Method::GET),
        host: None,
        path: "/nowhere".into(),
        protocol: http::Version::HTTP_11,
        tls: false,
        client: std::net::SocketAddr::from(([127, 0, 0, 1], 1234)),
        user_agent: None,
        status: 404,
        error: None,
        error_message: None,
        integration: IntegrationOutcome::default(),
        decisions: Decisions::default(),
        bytes_in: 0,
        bytes_out: 0,
        timing: Timing {
            received_at: UNIX_EPOCH + Duration::from_secs(at_unix),
            routed: None,
            integration_start: None,
            integration_end: None,
            integration_response: None,
            done: Duration::from_millis(1),
        },
        websocket: None,
        execution: None,
    }
}

/// A routed request: `route` is `api/stage/resource_path`, e.g. `pets/prod//pets/{id}`.
pub(crate) fn routed(route: &str, method: &str, status: u16, at_unix: u64) -> Exchange {
    let mut parts = route.splitn(3, '/');
    let (api, stage, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    Exchange {
        route: Some(RouteLabels {
            api: Arc::from(api),
            api_version: Arc::from("v1"),
            stage: Arc::from(stage),
            resource_path: Arc::from(path),
        }),
        method: Some(http::Method::from_bytes(method.as_bytes()).expect("method")),
        status,
        ..unrouted(at_unix)
    }
}

/// Sets the total latency, and the integration latency when given (both in microseconds).
pub(crate) fn with_latency(
    mut exchange: Exchange,
    micros: u64,
    integration: Option<u64>,
) -> Exchange {
    exchange.timing.done = Duration::from_micros(micros);
    if let Some(integration) = integration {
        exchange.timing.integration_start = Some(Duration::from_micros(100));
        exchange.timing.integration_response = Some(Duration::from_micros(100 + integration));
    }
    exchange
}

/// A WebSocket connection that lasted `millis` and carried the given messages.
pub(crate) fn websocket(route: &str, at_unix: u64, millis: u64, messages: (u64, u64)) -> Exchange {
    let mut exchange = routed(route, "GET", 101, at_unix);
    exchange.kind = ExchangeKind::WebSocket;
    exchange.timing.done = Duration::from_millis(millis);
    exchange.websocket = Some(WebSocketStats {
        messages_in: messages.0,
        messages_out: messages.1,
        ..WebSocketStats::default()
    });
    exchange
}

/// Dimensions from their canonical text, e.g. `api=pets,stage=prod`.
pub(crate) fn dims(canonical: &str) -> Dimensions {
    Dimensions::parse(canonical).expect("canonical dimensions")
}

/// The minutes a sink received, in order.
pub(crate) type Written = Arc<Mutex<Vec<(i64, Vec<MetricPoint>)>>>;

/// A sink that keeps what it is given.
pub(crate) fn memory_sink() -> (Written, impl FnMut(i64, Vec<MetricPoint>) + Send + 'static) {
    let written = Written::default();
    let sink_side = Arc::clone(&written);
    (written, move |minute, points| {
        sink_side.lock().expect("sink lock").push((minute, points));
    })
}

/// The statistic set of `metric` for `dimensions` among `points`.
pub(crate) fn find<'a>(
    points: &'a [MetricPoint],
    metric: &str,
    dimensions: &str,
) -> Option<&'a StatisticSet> {
    let dimensions = dims(dimensions);
    points
        .iter()
        .find(|(name, d, _)| name == metric && *d == dimensions)
        .map(|(_, _, set)| set)
}
