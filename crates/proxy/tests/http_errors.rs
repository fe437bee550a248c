//! Failures on either side of the gateway: unreachable, resetting, slow and truncating
//! upstreams; oversized payloads and heads; malformed and ambiguous requests. Each yields the
//! documented status and exactly one record with the right error class.

use std::time::{Duration, Instant};

use gatehouse_telemetry::ErrorClass;
use gatehouse_test_support::{
    CLOSE_MID_BODY_SENT, Closed, GatewayHarness, RawClient, Upstream, error_record, free_port,
    gateway_error, http_client, raw_gateway_error,
};

const CALL: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
limits:
  max_payload_bytes: 1024
  max_header_bytes: 1024
apis:
  - name: shop
    stages: [{ name: prod }]
    routes:
      - path: '/up/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/{proxy}', timeout_ms: 200 }
      - path: /down
        integration: { type: http, url: 'http://127.0.0.1:${DEAD_PORT}/nobody' }
"#;

async fn start() -> (GatewayHarness, Upstream) {
    let upstream = Upstream::start().await;
    let harness = GatewayHarness::builder(CONFIG)
        .upstream(&upstream)
        .env("DEAD_PORT", free_port().to_string())
        .start()
        .await;
    (harness, upstream)
}

#[tokio::test]
async fn unreachable_upstream_is_502_upstream_connect() {
    let (mut harness, _upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(CALL, client.get(harness.url("/prod/down")).send())
        .await
        .expect("in time")
        .expect("response");
    let request_id = gateway_error(response, 502, "Could not connect to the upstream").await;
    drop(client);
    let record = harness.only_record().await;
    error_record(&record, 502, ErrorClass::UpstreamConnect, &request_id);
    assert_eq!(record.integration.status, None);
    assert!(record.integration.error.is_some());
}

#[tokio::test]
async fn upstream_dropping_the_connection_is_502_upstream_reset() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(CALL, client.get(harness.url("/prod/up/reset")).send())
        .await
        .expect("in time")
        .expect("response");
    let request_id = gateway_error(
        response,
        502,
        "The upstream closed the connection without a valid response",
    )
    .await;
    drop(client);
    let record = harness.only_record().await;
    error_record(&record, 502, ErrorClass::UpstreamReset, &request_id);
    assert!(upstream.requests() >= 1);
}

#[tokio::test]
async fn slow_upstream_is_504_after_the_integration_timeout() {
    let (mut harness, _upstream) = start().await;
    let client = http_client();
    let started = Instant::now();
    let response =
        tokio::time::timeout(CALL, client.get(harness.url("/prod/up/delay/2000")).send())
            .await
            .expect("in time")
            .expect("response");
    let elapsed = started.elapsed();
    let request_id = gateway_error(response, 504, "Endpoint request timed out").await;
    assert!(
        elapsed >= Duration::from_millis(200),
        "answered after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}"
    );
    drop(client);
    let record = harness.only_record().await;
    error_record(&record, 504, ErrorClass::UpstreamTimeout, &request_id);
}

#[tokio::test]
async fn declared_payload_over_the_limit_is_413_before_reaching_the_upstream() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let mut request =
        b"POST /prod/up/upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 2048\r\n\r\n".to_vec();
    request.extend_from_slice(&[b'x'; 2048]);
    let response = raw.roundtrip(&request).await.expect("response");
    let request_id = raw_gateway_error(&response, 413, "Request payload too large");
    drop(raw);
    let record = harness.only_record().await;
    error_record(&record, 413, ErrorClass::PayloadTooLarge, &request_id);
    assert_eq!(upstream.requests(), 0, "the upstream never saw the request");
}

#[tokio::test]
async fn streamed_payload_over_the_limit_is_413() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let mut request =
        b"POST /prod/up/upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        request.extend_from_slice(b"200\r\n");
        request.extend_from_slice(&[b'y'; 0x200]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = raw.roundtrip(&request).await.expect("response");
    let request_id = raw_gateway_error(&response, 413, "Request payload too large");
    drop(raw);
    let record = harness.only_record().await;
    error_record(&record, 413, ErrorClass::PayloadTooLarge, &request_id);
    // The head went upstream before the body crossed the limit; the upload never completed.
    assert!(
        upstream.uploaded_bytes() <= 1024,
        "{} bytes reached the upstream",
        upstream.uploaded_bytes()
    );
}

#[tokio::test]
async fn header_block_over_the_limit_is_431_json() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(
        CALL,
        client
            .get(harness.url("/prod/up/echo/big"))
            .header("x-big", "h".repeat(1500))
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    let request_id = gateway_error(response, 431, "Request header fields too large").await;
    drop(client);
    let record = harness.only_record().await;
    error_record(&record, 431, ErrorClass::HeadersTooLarge, &request_id);
    assert_eq!(upstream.requests(), 0);
}

/// A head larger than the parser's buffer never reaches the service: hyper answers a bare 431
/// itself (no JSON, no request id) and closes. The gateway still records it.
#[tokio::test]
async fn head_refused_by_the_parser_is_431_and_recorded() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let request = format!(
        "GET /prod/up/echo/huge HTTP/1.1\r\nHost: gw.test\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(40_000)
    );
    // The gateway may close with part of the head unread, which resets the connection; then the
    // client may not see the 431 at all. The record is what must exist either way.
    if raw.send(request.as_bytes()).await.is_ok()
        && let Ok(response) = raw.read_response().await
    {
        assert_eq!(response.status, 431);
    }
    drop(raw);
    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.error),
        (431, Some(ErrorClass::HeadersTooLarge))
    );
    assert_eq!(upstream.requests(), 0);
}

/// A request line the parser cannot read gets hyper's bare 400 (no JSON body: the service never
/// sees the request) and is recorded as malformed.
#[tokio::test]
async fn malformed_request_line_is_400_and_recorded() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let response = raw
        .roundtrip(b"GET /a b c d\r\nHost: gw.test\r\n\r\n")
        .await
        .expect("response");
    assert_eq!(response.status, 400);
    assert_eq!(raw.wait_closed(CALL).await, Closed::ByPeer);
    drop(raw);
    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.error),
        (400, Some(ErrorClass::MalformedRequest))
    );
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn http11_request_without_host_is_400_json() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let response = raw
        .roundtrip(b"GET /prod/up/echo/x HTTP/1.1\r\n\r\n")
        .await
        .expect("response");
    let request_id = raw_gateway_error(&response, 400, "Bad request");
    drop(raw);
    let record = harness.only_record().await;
    error_record(&record, 400, ErrorClass::MalformedRequest, &request_id);
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn dot_segments_cannot_escape_a_greedy_route() {
    let (mut harness, upstream) = start().await;
    for path in [
        "/prod/up/echo/../../status/418",
        "/prod/up/echo/%2e%2e/x",
        "/prod/up/..%2fstatus/418",
    ] {
        let mut raw = RawClient::connect(harness.addr()).await;
        let request = format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n\r\n");
        let response = raw.roundtrip(request.as_bytes()).await.expect("response");
        let request_id = raw_gateway_error(&response, 400, "Bad request");
        drop(raw);
        let record = harness.only_record().await;
        error_record(&record, 400, ErrorClass::MalformedRequest, &request_id);
    }
    assert_eq!(
        upstream.requests(),
        0,
        "no traversal attempt reached the upstream"
    );
}

#[tokio::test]
async fn duplicate_host_headers_are_400_json() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let response = raw
        .roundtrip(b"GET /prod/up/echo/x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n")
        .await
        .expect("response");
    let request_id = raw_gateway_error(&response, 400, "Bad request");
    drop(raw);
    let record = harness.only_record().await;
    error_record(&record, 400, ErrorClass::MalformedRequest, &request_id);
    assert_eq!(upstream.requests(), 0);
}

/// `Content-Length` together with `Transfer-Encoding: chunked`: the chunked framing wins (RFC
/// 9112 §6.3), `Content-Length` is dropped, and the connection is closed after the answer, so
/// bytes after the chunked body are never read as a second request. The client gets 200 for the
/// one request it framed with chunked encoding; a smuggled request never reaches the upstream.
#[tokio::test]
async fn content_length_with_chunked_cannot_smuggle_a_request() {
    let (mut harness, upstream) = start().await;
    let smuggled = "GET /prod/up/echo/smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    let attempts = [
        // CL.TE: a front end trusting Content-Length would forward the smuggled request as body.
        format!(
            "POST /prod/up/echo/front HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
            5 + smuggled.len()
        ),
        // TE.CL: the same with the headers the other way round and a body inside the chunk.
        format!(
            "POST /prod/up/echo/front HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
            smuggled.len()
        ),
    ];
    for attempt in &attempts {
        let mut raw = RawClient::connect(harness.addr()).await;
        raw.send(attempt.as_bytes()).await.expect("send");
        let response = raw.read_response().await.expect("response");
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(response.header("connection"), Some("close"));
        assert_eq!(raw.wait_closed(CALL).await, Closed::ByPeer);
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "one upstream request per attempt: {seen:#?}");
    for request in &seen {
        assert_eq!(request.target, "/echo/front");
        assert!(
            !request.headers.contains_key("content-length"),
            "{:?}",
            request.headers
        );
    }
    let records = harness.settle().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    assert!(records.iter().all(|r| r.path == "/prod/up/echo/front"));
}

/// Framing the parser must refuse outright: conflicting lengths and a transfer coding that does
/// not end in chunked. Each gets a 400 and nothing reaches the upstream.
#[tokio::test]
async fn ambiguous_framing_is_refused_with_400() {
    let (mut harness, upstream) = start().await;
    let attempts = [
        "POST /prod/up/echo/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST /prod/up/echo/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "POST /prod/up/echo/x HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for attempt in attempts {
        let mut raw = RawClient::connect(harness.addr()).await;
        raw.send(attempt.as_bytes()).await.expect("send");
        let response = raw.read_response().await.expect("response");
        assert_eq!(response.status, 400, "{attempt:?}");
        assert_eq!(raw.wait_closed(CALL).await, Closed::ByPeer);
    }
    assert_eq!(upstream.requests(), 0);
    let records = harness.settle().await;
    assert_eq!(records.len(), attempts.len(), "{records:#?}");
    assert!(
        records
            .iter()
            .all(|r| r.status == 400 && r.error == Some(ErrorClass::MalformedRequest))
    );
}

#[tokio::test]
async fn upstream_closing_mid_body_aborts_the_response() {
    let (mut harness, _upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    raw.send(b"GET /prod/up/close-mid-body HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .expect("send");
    let (status, headers) = raw.read_head().await.expect("the head is forwarded");
    assert_eq!(status, 200);
    let announced: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .expect("content-length");
    // The client sees the body stop short and the connection close: it is not left hanging.
    let body = tokio::time::timeout(CALL, raw.read_to_close())
        .await
        .expect("the gateway closes");
    assert!(
        body.len() < announced,
        "got {} of {announced} bytes",
        body.len()
    );
    assert!(body.len() <= CLOSE_MID_BODY_SENT);
    drop(raw);
    let record = harness.only_record().await;
    assert_eq!(record.status, 200, "the head had been sent: {record:#?}");
    assert_eq!(record.error, Some(ErrorClass::UpstreamReset));
    assert_eq!(record.bytes_out, body.len() as u64);
}
