//! Protocols on both sides: HTTP/2 with prior knowledge (h2c), HTTPS with ALPN choosing
//! HTTP/1.1 or HTTP/2, a plain HTTP/1.1-only listener, and HTTP/2 to the upstream.

use std::time::Duration;

use gatehouse_telemetry::ErrorClass;
use gatehouse_test_support::{
    GatewayHarness, RawClient, Upstream, error_record, gateway_error, h2c_client, http_client,
    self_signed_cert, tls_client,
};
use http::Version;

const CALL: Duration = Duration::from_secs(10);

const ROUTES: &str = r#"
apis:
  - name: shop
    stages: [{ name: prod }]
    routes:
      - path: '/echo/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/echo/{proxy}' }
      - path: '/h2/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/echo/{proxy}', http2: true }
"#;

async fn echo(client: &reqwest::Client, url: String) -> (Version, serde_json::Value) {
    let response = tokio::time::timeout(CALL, client.post(url).body("ping").send())
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let version = response.version();
    (version, response.json().await.expect("echo JSON"))
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served_and_proxied_as_http11() {
    let upstream = Upstream::start().await;
    let mut harness = GatewayHarness::with_upstream(ROUTES, &upstream).await;
    let client = h2c_client();
    let (version, answer) = echo(&client, harness.url("/prod/echo/h2c")).await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(answer["version"], "HTTP/1.1");
    assert_eq!(answer["body_len"], 4);
    let seen = upstream.last_seen().expect("reached the upstream");
    assert!(
        seen.headers.contains_key("x-forwarded-host"),
        "the :authority becomes X-Forwarded-Host"
    );
    drop(client);

    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.error, record.protocol),
        (200, None, Version::HTTP_2)
    );
    assert!(!record.tls);
}

#[tokio::test]
async fn http11_only_listener_does_not_serve_h2c_prior_knowledge() {
    let upstream = Upstream::start().await;
    let yaml =
        format!("listeners:\n  - {{ name: h1, bind: \"127.0.0.1:0\", http2: false }}\n{ROUTES}");
    let mut harness = GatewayHarness::with_upstream(&yaml, &upstream).await;
    let mut raw = RawClient::connect(harness.addr()).await;
    raw.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("send the h2 preface");
    let bytes = raw.read_to_close().await;
    assert!(
        !bytes.starts_with(&[0, 0]),
        "no HTTP/2 SETTINGS frame from an HTTP/1.1-only listener"
    );
    drop(raw);
    let (version, _) = echo(&http_client(), harness.url("/prod/echo/h1")).await;
    assert_eq!(version, Version::HTTP_11);
    assert_eq!(upstream.requests(), 1);
    harness.settle().await;
}

async fn tls_harness(upstream: &Upstream, dir: &std::path::Path) -> GatewayHarness {
    let (cert, key) = self_signed_cert(dir);
    let yaml = format!(
        "listeners:\n  - {{ name: tls, bind: \"127.0.0.1:0\", tls: {{ cert_file: '{}', key_file: '{}' }} }}\n{ROUTES}",
        cert.display(),
        key.display()
    );
    GatewayHarness::builder(yaml)
        .upstream(upstream)
        .dir(dir)
        .start()
        .await
}

#[tokio::test]
async fn https_alpn_negotiates_http11() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Upstream::start().await;
    let mut harness = tls_harness(&upstream, dir.path()).await;
    let client = tls_client(&dir.path().join("cert.pem"), true);
    let (version, answer) = echo(&client, harness.https_url("/prod/echo/tls1")).await;
    assert_eq!(version, Version::HTTP_11);
    assert_eq!(answer["body_len"], 4);
    let seen = upstream.last_seen().expect("reached the upstream");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    drop(client);

    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.protocol, record.tls),
        (200, Version::HTTP_11, true)
    );
}

#[tokio::test]
async fn https_alpn_negotiates_http2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Upstream::start().await;
    let mut harness = tls_harness(&upstream, dir.path()).await;
    let client = tls_client(&dir.path().join("cert.pem"), false);
    let (version, answer) = echo(&client, harness.https_url("/prod/echo/tls2")).await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(answer["body_len"], 4);
    drop(client);

    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.protocol, record.tls),
        (200, Version::HTTP_2, true)
    );
}

#[tokio::test]
async fn untrusted_tls_handshake_yields_no_response_and_no_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Upstream::start().await;
    let mut harness = tls_harness(&upstream, dir.path()).await;
    let other = tempfile::tempdir().expect("temp dir");
    self_signed_cert(other.path());
    let client = tls_client(&other.path().join("cert.pem"), false);
    let outcome = tokio::time::timeout(CALL, client.get(harness.https_url("/prod/echo/x")).send())
        .await
        .expect("in time");
    assert!(
        outcome.is_err(),
        "a certificate the client does not trust fails the handshake"
    );
    drop(client);
    assert!(
        harness.settle().await.is_empty(),
        "no request was made, so nothing is recorded"
    );
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn integration_with_http2_speaks_http2_to_the_upstream() {
    let upstream = Upstream::start().await;
    let mut harness = GatewayHarness::with_upstream(ROUTES, &upstream).await;
    let client = http_client();
    for i in 0..3 {
        let (version, answer) = echo(&client, harness.url(&format!("/prod/h2/{i}"))).await;
        assert_eq!(version, Version::HTTP_11);
        assert_eq!(answer["version"], "HTTP/2.0");
        assert_eq!(answer["body_len"], 4);
        assert_eq!(answer["path"], format!("/echo/{i}"));
    }
    assert_eq!(
        upstream.connections(),
        1,
        "HTTP/2 requests share one upstream connection"
    );
    drop(client);
    let records = harness.settle().await;
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.status == 200 && r.error.is_none()));
}

/// Regression: HTTP/2 refused header blocks over `max_header_bytes` itself, with a bare 431 and
/// no record; like HTTP/1 they now reach the gateway, which answers JSON and records them.
#[tokio::test]
async fn h2_header_block_over_the_limit_is_431_json_with_a_record() {
    let upstream = Upstream::start().await;
    let yaml = format!("limits:\n  max_header_bytes: 1024\n  max_payload_bytes: 1024\n{ROUTES}");
    let mut harness = GatewayHarness::with_upstream(&yaml, &upstream).await;
    let client = h2c_client();
    let response = tokio::time::timeout(
        CALL,
        client
            .get(harness.url("/prod/echo/big"))
            .header("x-big", "h".repeat(1500))
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(response.version(), Version::HTTP_2);
    let request_id = gateway_error(response, 431, "Request header fields too large").await;

    // Payload limits hold on HTTP/2 too, declared or streamed.
    let response = tokio::time::timeout(
        CALL,
        client
            .post(harness.url("/prod/echo/big"))
            .body(vec![0u8; 5000])
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    let declared_id = gateway_error(response, 413, "Request payload too large").await;
    let chunks =
        futures_util::stream::iter((0..5).map(|_| Ok::<_, std::io::Error>(vec![1u8; 1000])));
    let response = tokio::time::timeout(
        CALL,
        client
            .post(harness.url("/prod/echo/big"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    let streamed_id = gateway_error(response, 413, "Request payload too large").await;
    drop(client);

    let records = harness.settle().await;
    assert_eq!(records.len(), 3, "{records:#?}");
    error_record(&records[0], 431, ErrorClass::HeadersTooLarge, &request_id);
    assert_eq!(records[0].protocol, Version::HTTP_2);
    error_record(&records[1], 413, ErrorClass::PayloadTooLarge, &declared_id);
    error_record(&records[2], 413, ErrorClass::PayloadTooLarge, &streamed_id);
    // The declared one never went upstream; the streamed one may have, depending on how far
    // its head got before the body crossed the limit.
    assert!(
        upstream.requests() <= 1,
        "{} upstream requests",
        upstream.requests()
    );
}
