//! Webhook delivery against a real HTTP server on loopback.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gatehouse_alarms::{
    AlarmSpec, AlarmState, Comparison, Datapoint, DeliveryError, MissingData, NotificationStats,
    Notifier, RetryPolicy, Transition, WebhookNotifier, WebhookSpec,
};
use gatehouse_telemetry::metrics::{Dimensions, Statistic};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

/// What the server saw of one request.
#[derive(Debug)]
struct Received {
    attempt: usize,
    token: Option<String>,
    content_type: Option<String>,
    body: serde_json::Value,
}

/// A server that answers 500 to the first `failures` requests and 204 after that, and reports
/// every request it gets.
async fn server(failures: usize) -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (tx, count) = (tx.clone(), Arc::clone(&count));
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (tx, count) = (tx.clone(), Arc::clone(&count));
                async move {
                    let attempt = count.fetch_add(1, Ordering::SeqCst) + 1;
                    let header = |name: &str| {
                        request
                            .headers()
                            .get(name)
                            .map(|value| value.to_str().unwrap().to_owned())
                    };
                    let (token, content_type) = (header("x-token"), header("content-type"));
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let _ = tx.send(Received {
                        attempt,
                        token,
                        content_type,
                        body: serde_json::from_slice(&body).unwrap(),
                    });
                    let status = if attempt <= failures { 500 } else { 204 };
                    let response = hyper::Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

fn transition(addr: SocketAddr) -> Transition {
    let spec = AlarmSpec {
        name: "errors".into(),
        metric: "5XXError".into(),
        dimensions: Dimensions {
            api: Some("petstore".into()),
            stage: Some("prod".into()),
            ..Dimensions::default()
        },
        statistic: Statistic::Percentile(99.0),
        period_secs: 60,
        threshold: Some(1.5),
        anomaly: None,
        comparison: Comparison::GreaterThanOrEqualToThreshold,
        evaluation_periods: 3,
        datapoints_to_alarm: 2,
        treat_missing_data: MissingData::NotBreaching,
        min_sample_count: None,
        webhook: Some(WebhookSpec {
            url: format!("http://{addr}/hooks/alarm"),
            headers: vec![("x-token".into(), "s3cret".into())],
        }),
    };
    spec.validate().unwrap();
    Transition {
        alarm: "errors".into(),
        old_state: AlarmState::Ok,
        new_state: AlarmState::Alarm,
        reason: "Threshold crossed".into(),
        timestamp_unix: 1_795_680_075,
        datapoints: vec![
            Datapoint {
                timestamp_unix: 1_795_679_940,
                value: 2.0,
                band: None,
            },
            Datapoint {
                timestamp_unix: 1_795_680_000,
                value: 3.5,
                band: None,
            },
        ],
        spec: Arc::new(spec),
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the webhook was not called in time")
        .unwrap()
}

#[tokio::test]
async fn a_failed_delivery_is_retried_and_the_payload_describes_the_transition() {
    let (addr, mut rx) = server(1).await;
    let notifier = WebhookNotifier::new(tokio::runtime::Handle::current())
        .unwrap()
        .with_retry(fast_retries());
    notifier.notify(&transition(addr));

    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!((first.attempt, second.attempt), (1, 2));
    assert_eq!(first.body, second.body);
    assert_eq!(second.token.as_deref(), Some("s3cret"));
    assert_eq!(second.content_type.as_deref(), Some("application/json"));
    let expected = serde_json::json!({
        "alarm": "errors",
        "oldState": "OK",
        "newState": "ALARM",
        "reason": "Threshold crossed",
        "timestamp": "2026-11-26T08:01:15Z",
        "unix": 1_795_680_075,
        "datapoints": [
            {"timestamp": "2026-11-26T07:59:00Z", "unix": 1_795_679_940, "value": 2.0},
            {"timestamp": "2026-11-26T08:00:00Z", "unix": 1_795_680_000, "value": 3.5},
        ],
        "threshold": 1.5,
        "comparison": "GreaterThanOrEqualToThreshold",
        "metric": "5XXError",
        "dimensions": {"api": "petstore", "stage": "prod"},
        "statistic": "p99",
        "period": 60,
        "evaluationPeriods": 3,
        "datapointsToAlarm": 2,
        "treatMissingData": "notBreaching",
    });
    assert_eq!(second.body, expected);
    // Counted once the answer is read, which is just after the receiver saw the body.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while notifier.stats().delivered == 0 {
        assert!(std::time::Instant::now() < deadline, "never counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        notifier.stats(),
        NotificationStats {
            delivered: 1,
            failed: 0,
            dropped: 0
        }
    );
    // Delivered: no third attempt.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn delivery_gives_up_after_the_last_attempt() {
    let (addr, mut rx) = server(usize::MAX).await;
    let notifier = WebhookNotifier::new(tokio::runtime::Handle::current())
        .unwrap()
        .with_retry(fast_retries());
    let transition = transition(addr);
    let webhook = transition.spec.webhook.clone().unwrap();
    let body = Bytes::from(gatehouse_alarms::payload(&transition).to_string());
    let error = notifier
        .deliver("errors", &webhook, body)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DeliveryError::Status(status) if status == 500),
        "{error}"
    );
    for attempt in 1..=3 {
        assert_eq!(next(&mut rx).await.attempt, attempt);
    }
    assert!(rx.try_recv().is_err());

    // Nobody listening: a connection error, also retried, also given up on.
    drop(rx);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let webhook = WebhookSpec {
        url,
        headers: vec![],
    };
    let error = notifier
        .deliver("errors", &webhook, Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    assert!(matches!(error, DeliveryError::Send(_)), "{error}");
    assert_eq!(
        notifier.stats(),
        NotificationStats {
            delivered: 0,
            failed: 2,
            dropped: 0
        },
        "a delivery that gives up counts once, however many attempts it made"
    );
}
