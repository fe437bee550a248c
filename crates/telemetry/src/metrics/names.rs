//! Every metric name, label name and reserved label value the metrics consumer emits, in one
//! place: the CloudWatch-style names of the minute buckets ([`Metric`]) and the Prometheus names of
//! the cumulative exposition.

use std::fmt;
use std::sync::Arc;

use http::Method;

/// A metric of the minute buckets, named as Amazon API Gateway names it in CloudWatch
/// (`AWS/ApiGateway` for REST, plus the WebSocket metrics), so alarms and dashboards carry over.
///
/// Every metric is a stream of samples kept in a [`StatisticSet`](super::StatisticSet): counts add a
/// sample of 1 (or 0) per request, so `Sum` is the count and `Average` the rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// One sample of 1 per HTTP request.
    Count,
    /// 1 for a 4xx answer, 0 otherwise; `Average` is the 4xx rate.
    Error4xx,
    /// 1 for a 5xx answer, 0 otherwise; `Average` is the 5xx rate.
    Error5xx,
    /// Request head received → last response byte sent, in milliseconds, with a sketch.
    Latency,
    /// Request sent upstream → upstream response head received, in milliseconds, with a sketch.
    IntegrationLatency,
    BytesIn,
    BytesOut,
    /// 1 when the throttle phase rejected the request, 0 when it let it through.
    ThrottleCount,
    /// 1 when the cache phase answered from the cache, 0 when it ran and did not.
    CacheHitCount,
    /// 1 when the cache phase ran and missed, 0 when it ran and hit.
    CacheMissCount,
    /// 1 when the WAF phase rejected the request, 0 when it let it through.
    WafBlockedCount,
    /// One sample of 1 per WebSocket connection (whether or not its handshake succeeded).
    ConnectCount,
    /// Messages in both directions of one WebSocket connection, as one sample per connection.
    MessageCount,
    /// How long one WebSocket connection lasted, in milliseconds, with a sketch.
    ConnectionDuration,
}

impl Metric {
    /// Every metric, in the order points are written.
    pub const ALL: [Metric; 14] = [
        Metric::Count,
        Metric::Error4xx,
        Metric::Error5xx,
        Metric::Latency,
        Metric::IntegrationLatency,
        Metric::BytesIn,
        Metric::BytesOut,
        Metric::ThrottleCount,
        Metric::CacheHitCount,
        Metric::CacheMissCount,
        Metric::WafBlockedCount,
        Metric::ConnectCount,
        Metric::MessageCount,
        Metric::ConnectionDuration,
    ];

    /// The stable name used in the store and the query API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Error4xx => "4XXError",
            Self::Error5xx => "5XXError",
            Self::Latency => "Latency",
            Self::IntegrationLatency => "IntegrationLatency",
            Self::BytesIn => "BytesIn",
            Self::BytesOut => "BytesOut",
            Self::ThrottleCount => "ThrottleCount",
            Self::CacheHitCount => "CacheHitCount",
            Self::CacheMissCount => "CacheMissCount",
            Self::WafBlockedCount => "WafBlockedCount",
            Self::ConnectCount => "ConnectCount",
            Self::MessageCount => "MessageCount",
            Self::ConnectionDuration => "ConnectionDuration",
        }
    }

    /// The metric of a stored name; `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The unit of its samples, as CloudWatch spells it: `Count`, `Milliseconds` or `Bytes`.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Latency | Self::IntegrationLatency | Self::ConnectionDuration => "Milliseconds",
            Self::BytesIn | Self::BytesOut => "Bytes",
            _ => "Count",
        }
    }

    /// Whether its statistic sets keep a sketch, so percentiles can be asked of them.
    pub fn is_distribution(self) -> bool {
        matches!(
            self,
            Self::Latency | Self::IntegrationLatency | Self::ConnectionDuration
        )
    }

    /// The position in [`Metric::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The value of the `api` dimension (and Prometheus label) of the overflow series, into which
/// records fold once the series cap is reached. The other dimensions of that series are absent
/// (empty labels in Prometheus), so its canonical form is `api=__overflow__`.
pub const OVERFLOW_API: &str = "__overflow__";

/// The method dimension of a request without a parseable method.
const METHOD_ABSENT: &str = "-";
/// The method dimension of a request whose method is not one of the nine of RFC 9110 and
/// RFC 5789; keeps the label bounded on routes that accept any method.
const METHOD_OTHER: &str = "OTHER";

/// How many method labels there are: the nine methods, `OTHER` and `-`.
pub(crate) const METHOD_LABELS: usize = 11;

/// The position of a method label in [`MethodLabels`], a small number the hot maps key on
/// instead of the label's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct MethodIndex(u8);

impl MethodIndex {
    pub(crate) fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// Interned method labels, so a record costs no allocation for its method dimension.
#[derive(Debug)]
pub(crate) struct MethodLabels {
    known: [Method; 9],
    /// Indexed by [`MethodIndex`]: the nine methods in `known`'s order, then `OTHER`, then `-`.
    labels: [Arc<str>; METHOD_LABELS],
}

impl MethodLabels {
    pub(crate) fn new() -> Self {
        let known = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::CONNECT,
            Method::OPTIONS,
            Method::TRACE,
            Method::PATCH,
        ];
        let labels = std::array::from_fn(|i| match known.get(i) {
            Some(method) => Arc::from(method.as_str()),
            None if i == known.len() => Arc::from(METHOD_OTHER),
            None => Arc::from(METHOD_ABSENT),
        });
        Self { known, labels }
    }

    /// The index of a request method's label.
    pub(crate) fn index(&self, method: Option<&Method>) -> MethodIndex {
        let position = match method {
            None => METHOD_LABELS - 1,
            Some(method) => self
                .known
                .iter()
                .position(|known| known == method)
                .unwrap_or(self.known.len()),
        };
        // At most 10: fits in a u8.
        MethodIndex(position as u8)
    }

    /// The label at an index from [`MethodLabels::index`].
    pub(crate) fn at(&self, index: MethodIndex) -> &Arc<str> {
        &self.labels[index.get()]
    }

    /// The label of a request method: its name, `OTHER` for extension methods, `-` when absent.
    pub(crate) fn label(&self, method: Option<&Method>) -> Arc<str> {
        Arc::clone(self.at(self.index(method)))
    }
}

/// Prometheus metric names as exposed (text format 0.0.4), and their label sets, whose field names
/// are the label names.
///
/// Counters are registered without their `_total` suffix, which the encoder adds
/// ([`registered_name`] strips it).
pub mod prometheus {
    use std::sync::Arc;

    use prometheus_client::encoding::EncodeLabelSet;

    /// `{api, stage, route, method, status_class}`; unrouted requests have empty api, stage, route.
    pub const REQUESTS_TOTAL: &str = "gatehouse_requests_total";
    /// Histogram `{api, stage, route, method}`.
    pub const REQUEST_DURATION_SECONDS: &str = "gatehouse_request_duration_seconds";
    /// Histogram `{api, stage, route, method}`.
    pub const INTEGRATION_DURATION_SECONDS: &str = "gatehouse_integration_duration_seconds";
    /// Counter `{api, stage, route, method}`.
    pub const REQUEST_BYTES_TOTAL: &str = "gatehouse_request_bytes_total";
    /// Counter `{api, stage, route, method}`.
    pub const RESPONSE_BYTES_TOTAL: &str = "gatehouse_response_bytes_total";
    /// Counter `{api, stage, route, status_class}`, counted when a connection closes.
    pub const WEBSOCKET_CONNECTIONS_TOTAL: &str = "gatehouse_websocket_connections_total";
    /// Counter `{api, stage, route, direction}`, counted when a connection closes.
    pub const WEBSOCKET_MESSAGES_TOTAL: &str = "gatehouse_websocket_messages_total";
    /// Gauge without labels, set by the proxy through `MetricsHandle::set_open_websockets`.
    pub const WEBSOCKET_OPEN_CONNECTIONS: &str = "gatehouse_websocket_open_connections";
    /// Counter `{output}`: records that fell into the overflow series.
    pub const SERIES_FOLDED_TOTAL: &str = "gatehouse_metrics_series_folded_total";
    /// Counter `{consumer}`: records the telemetry bus dropped because a queue was full.
    pub const TELEMETRY_DROPPED_TOTAL: &str = "gatehouse_telemetry_dropped_total";
    /// Counter `{outcome}`: alarm webhook deliveries by what became of them.
    pub const ALARM_NOTIFICATIONS_TOTAL: &str = "gatehouse_alarm_notifications_total";

    /// The name to register a metric under: counters lose `_total`, which the encoder appends.
    pub fn registered_name(exposed: &'static str) -> &'static str {
        exposed.strip_suffix("_total").unwrap_or(exposed)
    }

    /// The labels of one route; all empty for requests no route matched.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    pub(crate) struct RouteLabelSet {
        pub(crate) api: Arc<str>,
        pub(crate) stage: Arc<str>,
        /// The route template, never a raw path.
        pub(crate) route: Arc<str>,
        pub(crate) method: Arc<str>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    pub(crate) struct RequestLabelSet {
        #[prometheus(flatten)]
        pub(crate) route: RouteLabelSet,
        /// `1xx` … `5xx`.
        pub(crate) status_class: &'static str,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    pub(crate) struct WebSocketConnectionLabelSet {
        pub(crate) api: Arc<str>,
        pub(crate) stage: Arc<str>,
        pub(crate) route: Arc<str>,
        pub(crate) status_class: &'static str,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    pub(crate) struct WebSocketMessageLabelSet {
        pub(crate) api: Arc<str>,
        pub(crate) stage: Arc<str>,
        pub(crate) route: Arc<str>,
        /// `in` (client → upstream) or `out` (upstream → client).
        pub(crate) direction: &'static str,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    pub(crate) struct FoldedLabelSet {
        /// `minute_buckets` or `prometheus`.
        pub(crate) output: &'static str,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    pub(crate) struct ConsumerLabelSet {
        pub(crate) consumer: &'static str,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
    pub(crate) struct OutcomeLabelSet {
        /// One of [`NOTIFICATION_OUTCOMES`].
        pub(crate) outcome: &'static str,
    }

    /// `outcome` of alarm notifications: answered 2xx, given up after the last retry, or not
    /// attempted because too many deliveries were under way.
    pub const NOTIFICATION_OUTCOMES: [&str; 3] = ["delivered", "failed", "dropped"];

    /// `output` of records folded in the minute buckets.
    pub(crate) const OUTPUT_MINUTE_BUCKETS: &str = "minute_buckets";
    /// `output` of records folded in the Prometheus exposition.
    pub(crate) const OUTPUT_PROMETHEUS: &str = "prometheus";
    pub(crate) const DIRECTION_IN: &str = "in";
    pub(crate) const DIRECTION_OUT: &str = "out";

    /// Histogram bounds of the duration histograms, in seconds: 5 ms … 30 s.
    pub(crate) const DURATION_BUCKETS_SECONDS: [f64; 13] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
    ];

    /// The status class labels, indexed by [`status_class_index`].
    pub(crate) const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

    /// The index in [`STATUS_CLASSES`] of a status's class; statuses outside 100–599 count as
    /// `5xx` (a gateway never answers those, so one is a bug worth seeing among the errors).
    pub(crate) fn status_class_index(status: u16) -> usize {
        match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        }
    }

    /// `1xx` … `5xx`, as [`status_class_index`] classes it.
    pub(crate) fn status_class(status: u16) -> &'static str {
        STATUS_CLASSES[status_class_index(status)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_round_trip_and_are_unique() {
        for (i, metric) in Metric::ALL.into_iter().enumerate() {
            assert_eq!(metric.index(), i);
            assert_eq!(Metric::from_name(metric.name()), Some(metric));
        }
        assert_eq!(Metric::from_name("4xx"), None);
    }

    #[test]
    fn method_labels_are_bounded() {
        let labels = MethodLabels::new();
        let cases = [
            (Some(Method::GET), "GET"),
            (Some(Method::PATCH), "PATCH"),
            (Method::from_bytes(b"PURGE").ok(), "OTHER"),
            (None, "-"),
        ];
        for (method, label) in cases {
            assert_eq!(&*labels.label(method.as_ref()), label, "{method:?}");
        }
    }
}
