//! Graceful shutdown: requests in flight finish, idle connections close, new connections are
//! refused as soon as shutdown starts.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_test_support::{
    Closed, GatewayHarness, RawClient, Upstream, eventually, http_client,
};

const CALL: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
apis:
  - name: shop
    stages: [{ name: prod }]
    routes:
      - path: '/up/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/{proxy}' }
      - { method: GET, path: /ping, integration: { type: mock, body: pong } }
"#;

#[tokio::test]
async fn in_flight_request_completes_during_graceful_shutdown() {
    let upstream = Upstream::start().await;
    let mut harness = GatewayHarness::with_upstream(CONFIG, &upstream).await;
    let client = http_client();
    let slow = tokio::spawn(client.get(harness.url("/prod/up/delay/400")).send());
    eventually(CALL, || {
        let requests = upstream.requests();
        async move { requests == 1 }
    })
    .await;

    let drained = tokio::time::timeout(CALL, harness.shutdown(Duration::from_secs(5)))
        .await
        .expect("in time");
    assert!(drained, "everything drained within the grace period");
    let response = tokio::time::timeout(CALL, slow)
        .await
        .expect("in time")
        .expect("task")
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.expect("JSON")["delayed_ms"],
        400
    );
    let records = harness.settle().await;
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].status, records[0].error), (200, None));
}

#[tokio::test]
async fn new_connections_are_refused_once_shutdown_starts() {
    let upstream = Upstream::start().await;
    let mut harness = GatewayHarness::with_upstream(CONFIG, &upstream).await;
    let addr = harness.addr();
    let client = http_client();
    let slow = tokio::spawn(client.get(harness.url("/prod/up/delay/1000")).send());
    eventually(CALL, || {
        let requests = upstream.requests();
        async move { requests == 1 }
    })
    .await;

    let gateway = Arc::clone(harness.gateway());
    let shutdown = tokio::spawn(async move { gateway.shutdown(Duration::from_secs(5)).await });
    // While the slow request is still in flight, the listener is already closed.
    eventually(CALL, || async move {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(
        !slow.is_finished(),
        "the in-flight request is still running"
    );

    let response = tokio::time::timeout(CALL, slow)
        .await
        .expect("in time")
        .expect("task")
        .expect("response");
    assert_eq!(response.status(), 200);
    assert!(
        tokio::time::timeout(CALL, shutdown)
            .await
            .expect("in time")
            .expect("task")
    );
    assert_eq!(harness.settle().await.len(), 1);
}

#[tokio::test]
async fn idle_keep_alive_connections_close_at_shutdown() {
    let mut harness = GatewayHarness::builder(CONFIG)
        .env("UPSTREAM", "http://127.0.0.1:9")
        .start()
        .await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let response = raw
        .roundtrip(b"GET /prod/ping HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .expect("response");
    assert_eq!(response.status, 200);
    assert!(
        tokio::time::timeout(CALL, harness.shutdown(Duration::from_secs(5)))
            .await
            .expect("in time")
    );
    assert_eq!(raw.wait_closed(CALL).await, Closed::ByPeer);
    assert_eq!(harness.settle().await.len(), 1);
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let upstream = Upstream::start().await;
    let mut harness = GatewayHarness::with_upstream(CONFIG, &upstream).await;
    let mut raw = RawClient::connect(harness.addr()).await;
    raw.send(b"GET /prod/up/delay/5000 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .expect("send");
    eventually(CALL, || {
        let requests = upstream.requests();
        async move { requests == 1 }
    })
    .await;
    let started = std::time::Instant::now();
    let drained = harness.shutdown(Duration::from_millis(200)).await;
    assert!(!drained, "a 5 s request cannot drain in 200 ms");
    assert!(started.elapsed() < Duration::from_secs(2));
}
