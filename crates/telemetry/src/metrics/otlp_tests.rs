use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, metric::Data, number_data_point,
};
use prost::Message;

use super::*;
use crate::metrics::{Dimensions, SKETCH_RELATIVE_ACCURACY, StatisticSet};

const MINUTE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// One request as the receiver saw it.
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A local OTLP/HTTP receiver (shared with the trace exporter's tests) on its own thread that answers with scripted statuses (200 once the
/// script is used up) and records every request.
pub(crate) struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) fn start(script: Vec<StatusCode>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let recorded = Arc::clone(&received);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (recorded, script) = (Arc::clone(&recorded), Arc::clone(&script));
                    let service = service_fn(move |request: http::Request<Incoming>| {
                        let (recorded, script) = (Arc::clone(&recorded), Arc::clone(&script));
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes();
                            recorded.lock().unwrap().push(Received {
                                headers: parts.headers,
                                body,
                            });
                            let status =
                                script.lock().unwrap().pop_front().unwrap_or(StatusCode::OK);
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = status;
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            });
        });
        Self { addr, received }
    }

    pub(crate) fn endpoint(&self) -> Uri {
        format!("http://{}/v1/metrics", self.addr).parse().unwrap()
    }

    /// The bodies received so far, in order.
    pub(crate) fn bodies(&self) -> Vec<Bytes> {
        let received = self.received.lock().unwrap();
        received.iter().map(|r| r.body.clone()).collect()
    }

    fn requests(&self) -> Vec<ExportMetricsServiceRequest> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .map(|r| ExportMetricsServiceRequest::decode(r.body.clone()).unwrap())
            .collect()
    }
}

pub(crate) fn config(endpoint: Uri) -> OtlpConfig {
    OtlpConfig {
        endpoint,
        headers: vec![(
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_static("secret"),
        )],
        timeout: Duration::from_secs(5),
        service_name: "gatehouse".into(),
        service_instance_id: "node-1".into(),
    }
}

pub(crate) fn fast_retries() -> ExportPolicy {
    ExportPolicy {
        first_backoff: Duration::from_millis(10),
        ..ExportPolicy::default()
    }
}

/// Polls `condition` every 10 ms for up to 10 s.
pub(crate) fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn dims(api: &str, route: Option<&str>) -> Dimensions {
    Dimensions {
        api: Some(api.into()),
        stage: Some("prod".into()),
        route: route.map(Into::into),
        method: route.map(|_| "GET".into()),
        canary: None,
    }
}

fn counter(samples: &[f64]) -> StatisticSet {
    let mut set = StatisticSet::counter();
    samples.iter().for_each(|v| set.add(*v));
    set
}

fn one_point() -> Vec<MetricPoint> {
    vec![("Count".into(), Dimensions::default(), counter(&[1.0]))]
}

fn string_attributes(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                other => panic!("unexpected attribute value {other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn find<'a>(metrics: &'a [Metric], name: &str) -> &'a Metric {
    metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[test]
fn a_minute_is_exported_as_delta_sums_and_latency_summaries() {
    let receiver = Receiver::start(Vec::new());
    let (mut exporter, handle) = OtlpExporter::spawn(config(receiver.endpoint())).unwrap();

    let latencies: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 0.37).collect();
    let mut latency = StatisticSet::distribution();
    latencies.iter().for_each(|v| latency.add(*v));
    let canary = Dimensions {
        canary: Some(true),
        ..dims("pets", None)
    };
    let route = dims("pets", Some("/pets/{id}"));
    exporter.write(
        MINUTE,
        vec![
            ("Count".into(), route.clone(), counter(&[1.0, 1.0, 1.0])),
            ("Count".into(), Dimensions::default(), counter(&[1.0; 5])),
            ("4XXError".into(), canary, counter(&[0.0, 1.0, 1.0])),
            ("BytesOut".into(), route.clone(), counter(&[1000.0, 234.0])),
            ("Latency".into(), route, latency),
        ],
    );
    let stats = handle.join();
    assert_eq!(
        stats,
        OtlpStats {
            minutes_exported: 1,
            ..OtlpStats::default()
        }
    );

    let received = receiver.received.lock().unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].headers["content-type"],
        "application/x-protobuf"
    );
    assert_eq!(received[0].headers["x-api-key"], "secret");
    drop(received);
    let requests = receiver.requests();
    let resource_metrics = &requests[0].resource_metrics;
    assert_eq!(resource_metrics.len(), 1);
    assert_eq!(
        string_attributes(&resource_metrics[0].resource.as_ref().unwrap().attributes),
        pairs(&[
            ("service.name", "gatehouse"),
            ("service.instance.id", "node-1")
        ])
    );
    let metrics = &resource_metrics[0].scope_metrics[0].metrics;
    let mut names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "gatehouse.4XXError",
            "gatehouse.BytesOut",
            "gatehouse.Count",
            "gatehouse.Latency"
        ]
    );
    let start = u64::try_from(MINUTE).unwrap() * 1_000_000_000;
    let end = start + 60_000_000_000;

    let count = find(metrics, "gatehouse.Count");
    assert_eq!(count.unit, "{request}");
    let Some(Data::Sum(sum)) = &count.data else {
        panic!("Count is not a sum: {count:?}")
    };
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Delta as i32
    );
    assert!(sum.is_monotonic);
    let values: Vec<_> = sum
        .data_points
        .iter()
        .map(|p| {
            assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (start, end));
            let Some(number_data_point::Value::AsDouble(v)) = p.value else {
                panic!("not a double: {p:?}")
            };
            (string_attributes(&p.attributes), v)
        })
        .collect();
    let route_attributes = pairs(&[
        ("api", "pets"),
        ("stage", "prod"),
        ("route", "/pets/{id}"),
        ("method", "GET"),
    ]);
    assert_eq!(values, [(route_attributes.clone(), 3.0), (Vec::new(), 5.0)]);

    let errors = find(metrics, "gatehouse.4XXError");
    let Some(Data::Sum(sum)) = &errors.data else {
        panic!("4XXError is not a sum")
    };
    assert_eq!(
        string_attributes(&sum.data_points[0].attributes),
        pairs(&[("api", "pets"), ("stage", "prod"), ("canary", "true")])
    );
    assert_eq!(
        sum.data_points[0].value,
        Some(number_data_point::Value::AsDouble(2.0))
    );

    let bytes = find(metrics, "gatehouse.BytesOut");
    assert_eq!(bytes.unit, "By");
    let Some(Data::Sum(sum)) = &bytes.data else {
        panic!("BytesOut is not a sum")
    };
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Delta as i32
    );
    assert_eq!(
        sum.data_points[0].value,
        Some(number_data_point::Value::AsDouble(1234.0))
    );

    let latency = find(metrics, "gatehouse.Latency");
    assert_eq!(latency.unit, "ms");
    let Some(Data::Summary(summary)) = &latency.data else {
        panic!("Latency is not a summary")
    };
    let point = &summary.data_points[0];
    assert_eq!(string_attributes(&point.attributes), route_attributes);
    assert_eq!(
        (point.start_time_unix_nano, point.time_unix_nano),
        (start, end)
    );
    assert_eq!(point.count, 1000);
    assert!((point.sum - latencies.iter().sum::<f64>()).abs() < 1e-6);
    let quantiles: Vec<f64> = point.quantile_values.iter().map(|v| v.quantile).collect();
    let mut expected = vec![0.0];
    expected.extend(OTLP_SUMMARY_QUANTILES);
    expected.push(1.0);
    assert_eq!(quantiles, expected);
    for value in &point.quantile_values {
        let rank = (value.quantile * latencies.len() as f64).ceil() as usize;
        let exact = latencies[rank.clamp(1, latencies.len()) - 1];
        let error = (value.value - exact).abs() / exact;
        assert!(
            error <= SKETCH_RELATIVE_ACCURACY + 1e-9,
            "q={}: {} vs {exact}",
            value.quantile,
            value.value
        );
    }
}

#[test]
fn a_503_is_retried_and_the_minute_exported() {
    let receiver = Receiver::start(vec![StatusCode::SERVICE_UNAVAILABLE]);
    let (mut exporter, handle) =
        OtlpExporter::spawn_with(config(receiver.endpoint()), fast_retries()).unwrap();
    exporter.write(MINUTE, one_point());
    eventually("the retried export", || {
        handle.stats().minutes_exported == 1
    });
    let stats = handle.join();
    assert_eq!((stats.retries, stats.minutes_failed), (1, 0));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0], requests[1],
        "the retry resends the same minute"
    );
}

#[test]
fn a_400_is_not_retried() {
    let receiver = Receiver::start(vec![StatusCode::BAD_REQUEST]);
    let (mut exporter, handle) =
        OtlpExporter::spawn_with(config(receiver.endpoint()), fast_retries()).unwrap();
    exporter.write(MINUTE, one_point());
    eventually("the failed export", || handle.stats().minutes_failed == 1);
    let stats = handle.join();
    assert_eq!((stats.retries, stats.minutes_exported), (0, 0));
    assert_eq!(receiver.requests().len(), 1);
}

#[test]
fn a_full_queue_drops_and_counts_minutes_without_blocking() {
    // A collector that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint: Uri = format!("http://{}/v1/metrics", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let (connected, on_connect) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            open.push(stream);
            let _ = connected.send(());
        }
    });
    let policy = ExportPolicy {
        queue_minutes: 2,
        attempts: 1,
        first_backoff: Duration::from_millis(10),
    };
    let config = OtlpConfig {
        timeout: Duration::from_millis(300),
        ..config(endpoint)
    };
    let (mut exporter, handle) = OtlpExporter::spawn_with(config, policy).unwrap();
    exporter.write(MINUTE, one_point());
    on_connect.recv_timeout(Duration::from_secs(10)).unwrap();

    // The first minute is in flight: two more fit in the queue, three are dropped.
    let started = Instant::now();
    for i in 1..=5 {
        exporter.write(MINUTE + 60 * i, one_point());
    }
    assert!(started.elapsed() < Duration::from_secs(1), "write blocked");
    assert_eq!(handle.stats().minutes_dropped, 3);

    let stats = handle.join();
    assert_eq!(
        stats,
        OtlpStats {
            minutes_exported: 0,
            minutes_failed: 3,
            minutes_dropped: 3,
            retries: 0,
        }
    );
}

#[test]
fn a_relative_endpoint_is_refused() {
    let error = OtlpExporter::spawn(config(Uri::from_static("/v1/metrics")))
        .err()
        .unwrap();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn fan_out_hands_every_sink_the_same_minute() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = |name: &'static str| {
        let seen = Arc::clone(&seen);
        Box::new(move |minute: i64, points: Vec<MetricPoint>| {
            seen.lock().unwrap().push((name, minute, points.len()));
        }) as Box<dyn MetricSink>
    };
    let mut fan_out = FanOut(vec![sink("store"), sink("otlp")]);
    fan_out.write(MINUTE, one_point());
    assert_eq!(
        *seen.lock().unwrap(),
        [("store", MINUTE, 1), ("otlp", MINUTE, 1)]
    );
}
