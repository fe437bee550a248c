//! Connection limits and timeouts: idle keep-alive connections, heads that never complete, and
//! the cap on concurrent connections.

use std::time::{Duration, Instant};

use gatehouse_test_support::{Closed, GatewayHarness, RawClient, eventually};

const WAIT: Duration = Duration::from_secs(5);

const ROUTES: &str = r#"
apis:
  - name: shop
    stages: [{ name: prod }]
    routes:
      - { method: GET, path: /ping, integration: { type: mock, body: pong } }
"#;

fn config(limits: &str) -> String {
    format!("limits:\n{limits}\n{ROUTES}")
}

const PING: &[u8] = b"GET /prod/ping HTTP/1.1\r\nHost: gw.test\r\n\r\n";

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let mut harness = GatewayHarness::builder(config("  idle_timeout_ms: 300"))
        .start()
        .await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let response = raw.roundtrip(PING).await.expect("response");
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"pong"[..])
    );
    let idle_since = Instant::now();
    assert_eq!(raw.wait_closed(WAIT).await, Closed::ByPeer);
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(250),
        "closed after only {idle:?}"
    );
    assert_eq!(harness.settle().await.len(), 1);
}

#[tokio::test]
async fn activity_keeps_a_connection_open_past_the_idle_timeout() {
    let mut harness = GatewayHarness::builder(config("  idle_timeout_ms: 400"))
        .start()
        .await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let started = Instant::now();
    // Requests every ~100 ms keep the connection busy for longer than the idle timeout.
    while started.elapsed() < Duration::from_millis(800) {
        let response = raw
            .roundtrip(PING)
            .await
            .expect("the connection is still open");
        assert_eq!(response.status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(raw);
    assert!(harness.settle().await.len() >= 5);
}

#[tokio::test]
async fn incomplete_head_is_closed_after_header_read_timeout() {
    let mut harness = GatewayHarness::builder(config(
        "  header_read_timeout_ms: 300\n  idle_timeout_ms: 60000",
    ))
    .start()
    .await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let started = Instant::now();
    raw.send(b"GET /prod/ping HTTP/1.1\r\nHost: gw.test\r\nX-Slow: ")
        .await
        .expect("send");
    assert_eq!(raw.wait_closed(WAIT).await, Closed::ByPeer);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
    // The head never completed, so there is no request to record.
    assert!(harness.settle().await.is_empty());
}

/// Regression: the watchdog slept towards the idle deadline and only noticed a head that began
/// meanwhile when it woke, so after a keep-alive pause the header timeout became the idle timeout.
#[tokio::test]
async fn head_begun_after_an_idle_pause_gets_the_header_timeout_not_the_idle_timeout() {
    let mut harness = GatewayHarness::builder(config(
        "  header_read_timeout_ms: 300\n  idle_timeout_ms: 60000",
    ))
    .start()
    .await;
    let mut raw = RawClient::connect(harness.addr()).await;
    assert_eq!(raw.roundtrip(PING).await.expect("response").status, 200);
    // The client pauses like a keep-alive client between requests, long enough for the watchdog
    // to settle on the 60 s idle deadline.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    raw.send(b"GET /prod/ping HTTP/1.1\r\nHost: gw.test\r\nX-Slow: ")
        .await
        .expect("send");
    assert_eq!(raw.wait_closed(WAIT).await, Closed::ByPeer);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after only {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "the head was allowed {elapsed:?}"
    );
    assert_eq!(
        harness.settle().await.len(),
        1,
        "only the completed request is recorded"
    );
}

#[tokio::test]
async fn slowloris_head_trickling_bytes_is_still_closed_in_time() {
    let mut harness = GatewayHarness::builder(config(
        "  header_read_timeout_ms: 300\n  idle_timeout_ms: 60000",
    ))
    .start()
    .await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let started = Instant::now();
    raw.send(b"GET /prod/ping HTTP/1.1\r\nHost: gw.test\r\n")
        .await
        .expect("send");
    // One header line every 50 ms: each byte resets an idle timer, but not the head deadline.
    let mut closed = false;
    for i in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if raw
            .send(format!("X-Drip-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    if !closed {
        assert_eq!(raw.wait_closed(WAIT).await, Closed::ByPeer);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "the trickled head was allowed {elapsed:?}"
    );
    assert!(harness.settle().await.is_empty());
}

#[tokio::test]
async fn third_connection_waits_until_one_of_max_connections_closes() {
    let mut harness = GatewayHarness::builder(config("  max_connections: 2"))
        .start()
        .await;
    let mut first = RawClient::connect(harness.addr()).await;
    let mut second = RawClient::connect(harness.addr()).await;
    assert_eq!(first.roundtrip(PING).await.expect("first").status, 200);
    assert_eq!(second.roundtrip(PING).await.expect("second").status, 200);

    // The kernel completes the third handshake, but the gateway does not accept it yet.
    let mut third = RawClient::connect(harness.addr()).await;
    third.send(PING).await.expect("send");
    let early = tokio::time::timeout(Duration::from_millis(300), third.read_response()).await;
    assert!(
        early.is_err(),
        "the third connection was served while two were open"
    );
    let gateway = std::sync::Arc::clone(harness.gateway());
    assert_eq!(
        gateway.open_connections(),
        3,
        "two connections and the accept loop"
    );

    drop(first);
    let response = tokio::time::timeout(WAIT, third.read_response())
        .await
        .expect("served once a slot frees up")
        .expect("response");
    assert_eq!(response.status, 200);
    drop((second, third));
    eventually(WAIT, || {
        let gateway = std::sync::Arc::clone(&gateway);
        async move { gateway.open_connections() == 1 }
    })
    .await;
    assert_eq!(harness.settle().await.len(), 3);
}
