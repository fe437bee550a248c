//! OTLP export end to end: with `metrics.otlp` set, the running gateway POSTs its closed minutes as
//! OTLP/HTTP protobuf to a collector (here a real loopback receiver that decodes them).

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble;
use prost::Message;
use support::Gatehouse;
use tokio::sync::mpsc;

async fn collector() -> (String, mpsc::UnboundedReceiver<ExportMetricsServiceRequest>) {
    let (url, mut raw) = support::protobuf_receiver("/v1/metrics").await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((_, body)) = raw.recv().await {
            let _ = tx.send(ExportMetricsServiceRequest::decode(body).unwrap());
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_minutes_reach_an_otlp_collector() {
    let (url, mut requests) = collector().await;
    let config = format!(
        "listeners:\n  - name: public\n    bind: 127.0.0.1:0\ndata_dir: data\naccess_log:\n  destination: off\n\
         metrics:\n  otlp:\n    endpoint: {url}\n\
         apis:\n  - name: shop\n    stages:\n      - name: prod\n    routes:\n\
         \x20     - method: GET\n        path: /ping\n        integration:\n          type: mock\n          body: pong\n"
    );
    let mut gatehouse = Gatehouse::start(&config, &[]);
    let client = reqwest::Client::new();
    for _ in 0..7 {
        assert_eq!(
            client
                .get(gatehouse.url("/prod/ping"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // Shutdown closes the open minute and flushes the export.
    gatehouse.signal("TERM");
    let status = tokio::task::block_in_place(|| gatehouse.wait_exit(Duration::from_secs(20)));
    assert!(status.success());

    let mut count = 0.0;
    let mut saw_latency = false;
    while let Ok(Some(request)) =
        tokio::time::timeout(Duration::from_secs(2), requests.recv()).await
    {
        let resource = request.resource_metrics[0].resource.as_ref().unwrap();
        assert!(
            resource
                .attributes
                .iter()
                .any(|kv| kv.key == "service.name")
        );
        for metric in request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
        {
            match (&metric.name[..], &metric.data) {
                ("gatehouse.Count", Some(Data::Sum(sum))) => {
                    for point in &sum.data_points {
                        let api = point.attributes.iter().find(|kv| kv.key == "api");
                        let route = point.attributes.iter().find(|kv| kv.key == "route");
                        if api.is_some()
                            && route.is_some()
                            && let Some(AsDouble(v)) = point.value
                        {
                            count += v;
                        }
                    }
                }
                ("gatehouse.Latency", Some(Data::Summary(summary))) => {
                    saw_latency |= summary
                        .data_points
                        .iter()
                        .any(|p| p.count > 0 && !p.quantile_values.is_empty());
                }
                _ => {}
            }
        }
    }
    assert_eq!(
        count, 7.0,
        "the route-level Count series adds up to the requests sent"
    );
    assert!(
        saw_latency,
        "latency is exported as a summary with quantiles"
    );
}
