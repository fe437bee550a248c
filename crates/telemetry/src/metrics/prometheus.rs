//! The Prometheus exposition: cumulative counters and histograms per route, kept with
//! `prometheus-client` in a registry owned by the metrics consumer (never a global one), and
//! rendered in the classic text format 0.0.4 that `promtool check metrics` and every Prometheus
//! server accept.
//!
//! The consumer thread counts each HTTP record into plain fields of its route's [`HttpSeries`]
//! (no lock, no atomic), and [`Recorder::flush`] adds what a batch counted to the shared metrics
//! once per batch, that is every time the queue runs dry and at least every 4096 records. A scrape
//! therefore lags the records the consumer has taken by at most one poll interval (10 ms plus the
//! batch). Series are found by position, from the [`RouteRef`] the consumer resolved once per
//! record, not by hashing label strings. Label sets are capped like the minute buckets: once
//! `max_series` route label sets exist, records of new ones are counted under
//! `api="__overflow__"` with empty stage, route and method.

use std::sync::Arc;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::{LocalHistogram, SharedHistogram};
use super::names::prometheus::{
    self as names, ConsumerLabelSet, FoldedLabelSet, OutcomeLabelSet, RequestLabelSet,
    RouteLabelSet, STATUS_CLASSES, WebSocketConnectionLabelSet, WebSocketMessageLabelSet,
    registered_name,
};
use super::names::{METHOD_LABELS, MethodLabels, OVERFLOW_API};
use super::routes::RouteRef;
use crate::{ConsumerStats, Exchange, ExchangeKind};

/// The `Content-Type` of [`MetricsHandle::render_prometheus`](super::MetricsHandle): the classic
/// text format, version 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type HistogramFamily = Family<RouteLabelSet, SharedHistogram>;

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

/// What one batch counted for an HTTP series, not yet in the shared metrics.
#[derive(Default)]
struct Pending {
    requests: [u64; STATUS_CLASSES.len()],
    request_bytes: u64,
    response_bytes: u64,
    request_duration: LocalHistogram,
    integration_duration: LocalHistogram,
}

/// One route label set's HTTP series: handles to the families' own metrics (created with the
/// series, the requests counter of a status class with its first record) and what the current
/// batch counted.
struct HttpSeries {
    labels: RouteLabelSet,
    requests: [Option<Counter>; STATUS_CLASSES.len()],
    request_duration: SharedHistogram,
    integration_duration: SharedHistogram,
    request_bytes: Counter,
    response_bytes: Counter,
    pending: Pending,
    /// Whether `pending` holds anything, i.e. the series is in [`Recorder::dirty`].
    dirty: bool,
}

impl HttpSeries {
    fn publish(&mut self) {
        let pending = &mut self.pending;
        for (counter, count) in self.requests.iter().zip(pending.requests) {
            if let Some(counter) = counter
                && count > 0
            {
                counter.inc_by(count);
            }
        }
        self.request_bytes.inc_by(pending.request_bytes);
        self.response_bytes.inc_by(pending.response_bytes);
        self.request_duration.publish(&mut pending.request_duration);
        self.integration_duration
            .publish(&mut pending.integration_duration);
        *pending = Pending::default();
        self.dirty = false;
    }
}

/// Where a series sits in [`Recorder::http`]: the overflow series, then one unrouted series per
/// method label, then one per route id.
fn position(route: RouteRef) -> usize {
    match route {
        RouteRef::Refused => 0,
        RouteRef::Unrouted(method) => 1 + method.get(),
        RouteRef::Admitted(id) => 1 + METHOD_LABELS + id.index(),
    }
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
    folded_minute_buckets: Counter,
    folded_prometheus: Counter,
    /// HTTP series by [`position`]; `None` until the first HTTP record of a label set.
    http: Vec<Option<Box<HttpSeries>>>,
    /// Positions of the series with pending counts, for [`Recorder::flush`].
    dirty: Vec<usize>,
    empty: Arc<str>,
    overflow: RouteLabelSet,
}

/// Creates the metrics, registers them and returns both sides.
pub(crate) fn new() -> (Exposition, Recorder) {
    let empty: Arc<str> = Arc::from("");
    let mut recorder = Recorder {
        requests: Family::default(),
        request_duration: HistogramFamily::default(),
        integration_duration: HistogramFamily::default(),
        request_bytes: Family::default(),
        response_bytes: Family::default(),
        websocket_connections: Family::default(),
        websocket_messages: Family::default(),
        folded: Family::default(),
        folded_minute_buckets: Counter::default(),
        folded_prometheus: Counter::default(),
        http: Vec::new(),
        dirty: Vec::new(),
        overflow: RouteLabelSet {
            api: Arc::from(OVERFLOW_API),
            stage: Arc::clone(&empty),
            route: Arc::clone(&empty),
            method: Arc::clone(&empty),
        },
        empty,
    };
    // Present from the start, so an alert on its rate sees a zero rather than no series.
    let folded_counter = |output| {
        recorder
            .folded
            .get_or_create(&FoldedLabelSet { output })
            .clone()
    };
    recorder.folded_minute_buckets = folded_counter(names::OUTPUT_MINUTE_BUCKETS);
    recorder.folded_prometheus = folded_counter(names::OUTPUT_PROMETHEUS);
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
    /// Counts one record whose route resolved to `route`; `true` if its route label set was over
    /// the cap and folded. HTTP records reach the exposition at the next [`Recorder::flush`].
    pub(crate) fn record(
        &mut self,
        exchange: &Exchange,
        route: RouteRef,
        methods: &MethodLabels,
    ) -> bool {
        let folded = route == RouteRef::Refused;
        if folded {
            self.folded_prometheus.inc();
        }
        match exchange.kind {
            ExchangeKind::Http => self.record_http(exchange, route, methods),
            ExchangeKind::WebSocket => {
                let labels = self.labels(exchange, route, methods);
                self.record_websocket(exchange, labels);
            }
        }
        folded
    }

    /// Adds the counts of every record since the last flush to the shared metrics.
    pub(crate) fn flush(&mut self) {
        for position in self.dirty.drain(..) {
            if let Some(Some(series)) = self.http.get_mut(position) {
                series.publish();
            }
        }
    }

    /// Counts one record folded in the minute buckets.
    pub(crate) fn count_minute_bucket_fold(&self) {
        self.folded_minute_buckets.inc();
    }

    fn record_http(&mut self, exchange: &Exchange, route: RouteRef, methods: &MethodLabels) {
        let position = position(route);
        if !matches!(self.http.get(position), Some(Some(_))) {
            let labels = self.labels(exchange, route, methods);
            let series = self.new_http_series(labels);
            if self.http.len() <= position {
                self.http.resize_with(position + 1, || None);
            }
            self.http[position] = Some(Box::new(series));
        }
        let Some(Some(series)) = self.http.get_mut(position) else {
            return;
        };
        let class = names::status_class_index(exchange.status);
        let requests = &mut series.requests[class];
        if requests.is_none() {
            let labels = RequestLabelSet {
                route: series.labels.clone(),
                status_class: STATUS_CLASSES[class],
            };
            *requests = Some(self.requests.get_or_create(&labels).clone());
        }
        if !series.dirty {
            series.dirty = true;
            self.dirty.push(position);
        }
        let pending = &mut series.pending;
        pending.requests[class] += 1;
        pending.request_bytes += exchange.bytes_in;
        pending.response_bytes += exchange.bytes_out;
        let timing = &exchange.timing;
        pending
            .request_duration
            .observe(timing.latency().as_secs_f64());
        if let Some(integration) = timing.integration_latency() {
            pending
                .integration_duration
                .observe(integration.as_secs_f64());
        }
    }

    /// A new series for `labels`, whose histograms and byte counters appear in the exposition
    /// from now on (as they did when the first record created them in the families).
    fn new_http_series(&self, labels: RouteLabelSet) -> HttpSeries {
        HttpSeries {
            requests: Default::default(),
            request_duration: self.request_duration.get_or_create(&labels).clone(),
            integration_duration: self.integration_duration.get_or_create(&labels).clone(),
            request_bytes: self.request_bytes.get_or_create(&labels).clone(),
            response_bytes: self.response_bytes.get_or_create(&labels).clone(),
            labels,
            pending: Pending::default(),
            dirty: false,
        }
    }

    /// WebSocket connections are rare next to requests: counted straight into the families.
    fn record_websocket(&self, exchange: &Exchange, labels: RouteLabelSet) {
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
                status_class: names::status_class(exchange.status),
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

    /// The label set a record counts under: its route's, the overflow labels once the cap is
    /// reached, or empty api, stage and route when no route matched.
    fn labels(
        &self,
        exchange: &Exchange,
        route: RouteRef,
        methods: &MethodLabels,
    ) -> RouteLabelSet {
        let method = methods.label(exchange.method.as_ref());
        match (route, &exchange.route) {
            (RouteRef::Refused, _) => self.overflow.clone(),
            (RouteRef::Admitted(_), Some(route)) => RouteLabelSet {
                api: Arc::clone(&route.api),
                stage: Arc::clone(&route.stage),
                route: Arc::clone(&route.resource_path),
                method,
            },
            // An admitted route always has labels; the empty ones are only a fallback.
            (RouteRef::Unrouted(_) | RouteRef::Admitted(_), _) => RouteLabelSet {
                api: Arc::clone(&self.empty),
                stage: Arc::clone(&self.empty),
                route: Arc::clone(&self.empty),
                method,
            },
        }
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
