//! The Prometheus exposition: cumulative counters and histograms per route, kept with
//! `prometheus-client` in a registry owned by the metrics consumer (never a global one), and
//! rendered in the classic text format 0.0.4 that `promtool check metrics` and every Prometheus
//! server accept.
//!
//! The consumer thread updates the metrics (atomics inside `prometheus-client`'s families) as it
//! drains records; rendering reads them from whichever thread serves `/metrics`. Label sets are
//! capped like the minute buckets: once `max_series` route label sets exist, records of new ones
//! are counted under `api="__overflow__"` with empty stage, route and method.

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::names::prometheus::{
    self as names, ConsumerLabelSet, DURATION_BUCKETS_SECONDS, FoldedLabelSet, OutcomeLabelSet,
    RequestLabelSet, RouteLabelSet, WebSocketConnectionLabelSet, WebSocketMessageLabelSet,
    registered_name,
};
use super::names::{MethodLabels, OVERFLOW_API};
use crate::{ConsumerStats, Exchange, ExchangeKind};

/// The `Content-Type` of [`MetricsHandle::render_prometheus`](super::MetricsHandle): the classic
/// text format, version 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type HistogramFamily = Family<RouteLabelSet, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS_SECONDS)
}

/// The read side: the registry and the gauge the proxy sets. Shared with every renderer.
#[derive(Debug)]
pub(crate) struct Exposition {
    registry: Registry,
    open_websockets: Gauge,
}

impl Exposition {
    /// Renders every metric, then those `extra` registers into a fresh registry (names there
    /// must not repeat the consumer's own).
    pub(crate) fn render(&self, extra: impl FnOnce(&mut Registry)) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let mut extra_registry = Registry::default();
        extra(&mut extra_registry);
        let encoded = prometheus_text::encode(&mut out, &self.registry)
            .and_then(|()| prometheus_text::encode(&mut out, &extra_registry));
        // Writing into a String cannot fail, and the label encoders used here never do either.
        if encoded.is_err() {
            tracing::error!("encoding the Prometheus exposition failed");
        }
        out
    }

    pub(crate) fn set_open_websockets(&self, open: i64) {
        self.open_websockets.set(open);
    }
}

/// Handles of one route's HTTP series; each is a reference to the family's own metric.
struct HttpSeries {
    requests: Counter,
    request_duration: Histogram,
    integration_duration: Histogram,
    request_bytes: Counter,
    response_bytes: Counter,
}

/// The write side, owned by the consumer thread.
pub(crate) struct Recorder {
    requests: Family<RequestLabelSet, Counter>,
    request_duration: HistogramFamily,
    integration_duration: HistogramFamily,
    request_bytes: Family<RouteLabelSet, Counter>,
    response_bytes: Family<RouteLabelSet, Counter>,
    websocket_connections: Family<WebSocketConnectionLabelSet, Counter>,
    websocket_messages: Family<WebSocketMessageLabelSet, Counter>,
    folded: Family<FoldedLabelSet, Counter>,
    /// Route label sets that have their own series.
    /// FxHash: bounded label sets from the config, looked up per request.
    admitted: FxHashSet<RouteLabelSet>,
    /// The HTTP series of each (route labels, status class), cloned out of the families once:
    /// a family lookup hashes its label strings with SipHash under a lock, five times a request.
    http: FxHashMap<(RouteLabelSet, &'static str), HttpSeries>,
    max_series: usize,
    methods: MethodLabels,
    empty: Arc<str>,
    overflow: RouteLabelSet,
}

/// Creates the metrics, registers them and returns both sides.
pub(crate) fn new(max_series: usize) -> (Exposition, Recorder) {
    let empty: Arc<str> = Arc::from("");
    let recorder = Recorder {
        requests: Family::default(),
        request_duration: HistogramFamily::new_with_constructor(duration_histogram),
        integration_duration: HistogramFamily::new_with_constructor(duration_histogram),
        request_bytes: Family::default(),
        response_bytes: Family::default(),
        websocket_connections: Family::default(),
        websocket_messages: Family::default(),
        folded: Family::default(),
        admitted: FxHashSet::default(),
        http: FxHashMap::default(),
        max_series,
        methods: MethodLabels::new(),
        overflow: RouteLabelSet {
            api: Arc::from(OVERFLOW_API),
            stage: Arc::clone(&empty),
            route: Arc::clone(&empty),
            method: Arc::clone(&empty),
        },
        empty,
    };
    // Present from the start, so an alert on its rate sees a zero rather than no series.
    for output in [names::OUTPUT_MINUTE_BUCKETS, names::OUTPUT_PROMETHEUS] {
        drop(recorder.folded.get_or_create(&FoldedLabelSet { output }));
    }
    let open_websockets = Gauge::default();
    let mut registry = Registry::default();
    let r = &recorder;
    registry.register(
        registered_name(names::REQUESTS_TOTAL),
        "HTTP requests answered, by route and status class; unrouted requests have empty api, stage and route",
        r.requests.clone(),
    );
    registry.register(
        registered_name(names::REQUEST_DURATION_SECONDS),
        "Time from the request head to the last response byte",
        r.request_duration.clone(),
    );
    registry.register(
        registered_name(names::INTEGRATION_DURATION_SECONDS),
        "Time from sending the request upstream to the upstream response head",
        r.integration_duration.clone(),
    );
    registry.register(
        registered_name(names::REQUEST_BYTES_TOTAL),
        "Request body bytes received from clients",
        r.request_bytes.clone(),
    );
    registry.register(
        registered_name(names::RESPONSE_BYTES_TOTAL),
        "Response body bytes sent to clients",
        r.response_bytes.clone(),
    );
    registry.register(
        registered_name(names::WEBSOCKET_CONNECTIONS_TOTAL),
        "WebSocket connections, counted when they close, by handshake status class",
        r.websocket_connections.clone(),
    );
    registry.register(
        registered_name(names::WEBSOCKET_MESSAGES_TOTAL),
        "WebSocket messages relayed, counted when their connection closes",
        r.websocket_messages.clone(),
    );
    registry.register(
        registered_name(names::WEBSOCKET_OPEN_CONNECTIONS),
        "WebSocket connections open now",
        open_websockets.clone(),
    );
    registry.register(
        registered_name(names::SERIES_FOLDED_TOTAL),
        "Records counted in the overflow series because the series cap was reached",
        r.folded.clone(),
    );
    let exposition = Exposition {
        registry,
        open_websockets,
    };
    (exposition, recorder)
}

impl Recorder {
    /// Counts one record; `true` if its route label set was over the cap and folded.
    pub(crate) fn record(&mut self, exchange: &Exchange) -> bool {
        let (labels, folded) = self.route_labels(exchange);
        if folded {
            self.count_folded(names::OUTPUT_PROMETHEUS);
        }
        let status_class = names::status_class(exchange.status);
        match exchange.kind {
            ExchangeKind::Http => {
                let Self {
                    http,
                    requests,
                    request_duration,
                    integration_duration,
                    request_bytes,
                    response_bytes,
                    ..
                } = self;
                let series = http.entry((labels, status_class)).or_insert_with_key(
                    |(labels, status_class)| HttpSeries {
                        requests: requests
                            .get_or_create(&RequestLabelSet {
                                route: labels.clone(),
                                status_class,
                            })
                            .clone(),
                        request_duration: request_duration.get_or_create(labels).clone(),
                        integration_duration: integration_duration.get_or_create(labels).clone(),
                        request_bytes: request_bytes.get_or_create(labels).clone(),
                        response_bytes: response_bytes.get_or_create(labels).clone(),
                    },
                );
                let timing = &exchange.timing;
                series.request_bytes.inc_by(exchange.bytes_in);
                series.response_bytes.inc_by(exchange.bytes_out);
                series
                    .request_duration
                    .observe(timing.latency().as_secs_f64());
                if let Some(integration) = timing.integration_latency() {
                    series
                        .integration_duration
                        .observe(integration.as_secs_f64());
                }
                series.requests.inc();
            }
            ExchangeKind::WebSocket => {
                self.request_bytes
                    .get_or_create(&labels)
                    .inc_by(exchange.bytes_in);
                self.response_bytes
                    .get_or_create(&labels)
                    .inc_by(exchange.bytes_out);
                let RouteLabelSet {
                    api, stage, route, ..
                } = labels;
                self.websocket_connections
                    .get_or_create(&WebSocketConnectionLabelSet {
                        api: Arc::clone(&api),
                        stage: Arc::clone(&stage),
                        route: Arc::clone(&route),
                        status_class,
                    })
                    .inc();
                let (messages_in, messages_out) = exchange
                    .websocket
                    .as_ref()
                    .map_or((0, 0), |ws| (ws.messages_in, ws.messages_out));
                for (direction, messages) in [
                    (names::DIRECTION_IN, messages_in),
                    (names::DIRECTION_OUT, messages_out),
                ] {
                    self.websocket_messages
                        .get_or_create(&WebSocketMessageLabelSet {
                            api: Arc::clone(&api),
                            stage: Arc::clone(&stage),
                            route: Arc::clone(&route),
                            direction,
                        })
                        .inc_by(messages);
                }
            }
        }
        folded
    }

    /// Counts one record folded in the minute buckets.
    pub(crate) fn count_minute_bucket_fold(&self) {
        self.count_folded(names::OUTPUT_MINUTE_BUCKETS);
    }

    fn count_folded(&self, output: &'static str) {
        self.folded.get_or_create(&FoldedLabelSet { output }).inc();
    }

    /// The record's route labels, or the overflow labels once the cap is reached.
    fn route_labels(&mut self, exchange: &Exchange) -> (RouteLabelSet, bool) {
        let method = self.methods.label(exchange.method.as_ref());
        let Some(route) = &exchange.route else {
            // One label set per method label: bounded without the cap.
            let labels = RouteLabelSet {
                api: Arc::clone(&self.empty),
                stage: Arc::clone(&self.empty),
                route: Arc::clone(&self.empty),
                method,
            };
            return (labels, false);
        };
        let labels = RouteLabelSet {
            api: Arc::clone(&route.api),
            stage: Arc::clone(&route.stage),
            route: Arc::clone(&route.resource_path),
            method,
        };
        if self.admitted.contains(&labels) {
            return (labels, false);
        }
        if self.admitted.len() >= self.max_series {
            return (self.overflow.clone(), true);
        }
        self.admitted.insert(labels.clone());
        (labels, false)
    }
}

/// Registers `gatehouse_telemetry_dropped_total{consumer}` from the bus's per-consumer counts;
/// for [`MetricsHandle::render_prometheus_with`](super::MetricsHandle::render_prometheus_with).
pub fn register_bus_drops(registry: &mut Registry, consumers: &[ConsumerStats]) {
    let dropped = Family::<ConsumerLabelSet, Counter>::default();
    for consumer in consumers {
        dropped
            .get_or_create(&ConsumerLabelSet {
                consumer: consumer.name,
            })
            .inc_by(consumer.dropped);
    }
    registry.register(
        registered_name(names::TELEMETRY_DROPPED_TOTAL),
        "Telemetry records dropped because a consumer's queue was full",
        dropped,
    );
}

/// Registers `gatehouse_alarm_notifications_total{outcome}` from the alarm notifier's counts,
/// given in the order of [`NOTIFICATION_OUTCOMES`](names::NOTIFICATION_OUTCOMES): delivered,
/// failed, dropped.
pub fn register_alarm_notifications(registry: &mut Registry, counts: [u64; 3]) {
    let notifications = Family::<OutcomeLabelSet, Counter>::default();
    for (outcome, count) in names::NOTIFICATION_OUTCOMES.into_iter().zip(counts) {
        notifications
            .get_or_create(&OutcomeLabelSet { outcome })
            .inc_by(count);
    }
    registry.register(
        registered_name(names::ALARM_NOTIFICATIONS_TOTAL),
        "Alarm webhook deliveries, by outcome",
        notifications,
    );
}

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
