//! Exchange records: exactly one per request, rejections included, with the fields and the
//! timing order the telemetry consumers rely on; clients that go away; a full telemetry bus.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gatehouse_telemetry::{ErrorClass, ExchangeKind};
use gatehouse_test_support::{
    GatewayHarness, RawClient, Upstream, error_record, eventually, free_port, h2c_client,
    http_client, raw_gateway_error, wait_until,
};
use http::Version;

const CALL: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
limits:
  max_payload_bytes: 4096
  max_header_bytes: 1024
apis:
  - name: shop
    version: v2
    stages: [{ name: prod }]
    routes:
      - path: '/echo/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/echo/{proxy}' }
      - path: '/up/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/{proxy}', timeout_ms: 200 }
      - path: /long/{proxy+}
        integration: { type: http, url: '${UPSTREAM}/{proxy}' }
      - path: /down
        integration: { type: http, url: 'http://127.0.0.1:${DEAD_PORT}/' }
      - { method: GET, path: /mock, integration: { type: mock, body: fixed } }
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
async fn proxied_request_record_has_every_field() {
    let (mut harness, _upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let client_addr = raw.local_addr();
    let body = vec![b'z'; 1000];
    let mut request = b"POST /prod/echo/rec?x=1 HTTP/1.1\r\nHost: gw.test:8080\r\nUser-Agent: records-test/1\r\nContent-Length: 1000\r\n\r\n".to_vec();
    request.extend_from_slice(&body);
    let response = raw.roundtrip(&request).await.expect("response");
    assert_eq!(response.status, 200);
    let request_id = response
        .header("x-request-id")
        .expect("request id")
        .to_owned();
    drop(raw);

    let record = harness.only_record().await;
    assert_eq!(record.kind, ExchangeKind::Http);
    assert_eq!(record.request_id.as_str(), request_id);
    assert_eq!(&*record.listener, "main");
    let route = record.route.as_ref().expect("route labels");
    assert_eq!(
        (
            &*route.api,
            &*route.api_version,
            &*route.stage,
            &*route.resource_path
        ),
        ("shop", "v2", "prod", "/echo/{proxy+}")
    );
    assert_eq!(record.method, Some(http::Method::POST));
    assert_eq!(
        record.host.as_ref().map(|h| h.as_bytes()),
        Some(&b"gw.test:8080"[..])
    );
    assert_eq!(record.path, "/prod/echo/rec", "the path without the query");
    assert_eq!((record.protocol, record.tls), (Version::HTTP_11, false));
    assert_eq!(record.client, client_addr);
    assert_eq!(
        record.user_agent.as_ref().map(|v| v.as_bytes()),
        Some(&b"records-test/1"[..])
    );
    assert_eq!(
        (record.status, record.error, record.error_message.as_deref()),
        (200, None, None)
    );
    assert_eq!(
        (record.integration.kind, record.integration.status),
        (Some("http"), Some(200))
    );
    assert_eq!(record.bytes_in, 1000);
    assert_eq!(record.bytes_out, response.body.len() as u64);
    assert!(!record.canary);
    assert!(record.websocket.is_none());

    let t = &record.timing;
    let routed = t.routed.expect("routed");
    let start = t.integration_start.expect("integration start");
    let answered = t.integration_response.expect("integration response");
    let end = t.integration_end.expect("integration end");
    assert!(
        routed <= start && start <= answered && answered <= end && end <= t.done,
        "{t:#?}"
    );
    assert!(t.done > Duration::ZERO);
    assert_eq!(t.latency(), t.done);
    assert!(t.integration_latency().expect("integration latency") <= t.done);
}

#[tokio::test]
async fn mock_record_timing_is_ordered() {
    let (mut harness, _upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(CALL, client.get(harness.url("/prod/mock")).send())
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.text().await.expect("body"), "fixed");
    drop(client);
    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.bytes_out, record.integration.kind),
        (200, 5, Some("mock"))
    );
    let t = &record.timing;
    let routed = t.routed.expect("routed");
    let start = t.integration_start.expect("integration start");
    let answered = t.integration_response.expect("integration response");
    assert!(
        routed <= start && start <= answered && answered <= t.done,
        "{t:#?}"
    );
}

/// No request is invisible: every way of being turned away yields exactly one record.
#[tokio::test]
async fn every_rejection_yields_exactly_one_record() {
    let (mut harness, upstream) = start().await;
    let big_header = "h".repeat(1500);
    let huge_header = "h".repeat(40_000);
    let cases: Vec<(String, u16, ErrorClass)> = vec![
        (
            "GET /prod/nope HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            404,
            ErrorClass::RouteNotFound,
        ),
        (
            "POST /prod/mock HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".into(),
            405,
            ErrorClass::MethodNotAllowed,
        ),
        (
            "POST /prod/echo/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n".into(),
            413,
            ErrorClass::PayloadTooLarge,
        ),
        (
            format!("GET /prod/mock HTTP/1.1\r\nHost: a\r\nX-Big: {big_header}\r\n\r\n"),
            431,
            ErrorClass::HeadersTooLarge,
        ),
        (
            "GET /prod/mock HTTP/1.1\r\n\r\n".into(),
            400,
            ErrorClass::MalformedRequest,
        ),
        (
            "GET /prod/down HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            502,
            ErrorClass::UpstreamConnect,
        ),
        (
            "GET /prod/up/reset HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            502,
            ErrorClass::UpstreamReset,
        ),
        (
            "GET /prod/up/delay/2000 HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            504,
            ErrorClass::UpstreamTimeout,
        ),
        // Refused by the parser: hyper answers itself, the gateway still records.
        (
            "GET /a b c\r\n\r\n".into(),
            400,
            ErrorClass::MalformedRequest,
        ),
        (
            format!("GET /prod/mock HTTP/1.1\r\nHost: a\r\nX-Huge: {huge_header}\r\n\r\n"),
            431,
            ErrorClass::HeadersTooLarge,
        ),
    ];
    for (request, status, class) in &cases {
        let mut raw = RawClient::connect(harness.addr()).await;
        // A parser rejection may reset the connection before the answer is read; the record
        // below is what counts.
        if raw.send(request.as_bytes()).await.is_ok()
            && let Ok(response) = raw.read_response().await
        {
            assert_eq!(response.status, *status, "{request:.60}");
        }
        drop(raw);
        let records = harness.settle().await;
        assert_eq!(records.len(), 1, "{request:.60}: {records:#?}");
        assert_eq!(
            (records[0].status, records[0].error),
            (*status, Some(*class)),
            "{request:.60}"
        );
    }
    assert_eq!(
        upstream.requests(),
        2,
        "only the reset and the delayed request went upstream"
    );
}

#[tokio::test]
async fn client_gone_mid_response_is_one_client_closed_record() {
    let (mut harness, upstream) = start().await;
    let total = 8 * 1024 * 1024;
    let hold = 1024 * 1024;
    let mut raw = RawClient::connect(harness.addr()).await;
    let request =
        format!("GET /prod/long/stream/{total}?hold_at={hold} HTTP/1.1\r\nHost: a\r\n\r\n");
    raw.send(request.as_bytes()).await.expect("send");
    let (status, _) = raw.read_head().await.expect("head");
    assert_eq!(status, 200);
    eventually(CALL, || {
        let streamed = upstream.streamed_bytes();
        async move { streamed == hold }
    })
    .await;
    drop(raw);
    // The gateway notices the client is gone when it next writes.
    upstream.release_streams();

    let record = harness.only_record().await;
    assert_eq!(record.error, Some(ErrorClass::ClientClosed), "{record:#?}");
    assert_eq!(
        record.status, 200,
        "the head was sent; the status the client got is kept"
    );
    assert!(record.bytes_out < total, "{} bytes out", record.bytes_out);
}

#[tokio::test]
async fn client_gone_while_the_upstream_thinks_is_one_client_closed_record() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    raw.send(b"GET /prod/long/delay/500 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    eventually(CALL, || {
        let requests = upstream.requests();
        async move { requests == 1 }
    })
    .await;
    drop(raw);

    let record = harness.only_record().await;
    assert_eq!(record.error, Some(ErrorClass::ClientClosed), "{record:#?}");
    assert_eq!(record.status, 499, "{record:#?}");
}

#[tokio::test]
async fn client_gone_mid_upload_is_one_client_closed_record() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    raw.send(
        b"POST /prod/long/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4000\r\n\r\n0123456789",
    )
    .await
    .expect("send");
    eventually(CALL, || {
        let uploaded = upstream.uploaded_bytes();
        async move { uploaded == 10 }
    })
    .await;
    drop(raw);

    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.error),
        (499, Some(ErrorClass::ClientClosed)),
        "{record:#?}"
    );
    assert_eq!(record.bytes_in, 10);
}

#[tokio::test]
async fn full_telemetry_bus_drops_and_counts_records_without_failing_requests() {
    let upstream = Upstream::start().await;
    let mut harness = GatewayHarness::builder(CONFIG)
        .upstream(&upstream)
        .env("DEAD_PORT", free_port().to_string())
        .bus_capacity(2)
        .start()
        .await;
    let client = http_client();
    for _ in 0..10 {
        let response = tokio::time::timeout(CALL, client.get(harness.url("/prod/mock")).send())
            .await
            .expect("in time")
            .expect("response");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
    }
    // One more that the gateway answers itself, also while the queue is full.
    let response = tokio::time::timeout(CALL, client.get(harness.url("/prod/none")).send())
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), 404);
    drop(client);

    let bus = Arc::clone(harness.bus());
    eventually(CALL, || {
        let stats = bus.stats();
        async move { stats[0].delivered + stats[0].dropped == 11 }
    })
    .await;
    let stats = &harness.bus().stats()[0];
    assert_eq!(
        (stats.name, stats.delivered, stats.dropped, stats.queued),
        ("test", 2, 9, 2)
    );
    assert_eq!(harness.bus().dropped(), 9);
    assert_eq!(harness.settle().await.len(), 2);
}

#[tokio::test]
async fn error_answer_to_head_has_no_body_and_one_record() {
    let (mut harness, _upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    raw.send(b"HEAD /prod/nope HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    let response = raw.read_response_to(true).await.expect("response");
    assert_eq!(response.status, 404);
    let request_id = response
        .header("x-request-id")
        .expect("request id")
        .to_owned();
    // The connection stays usable: no stray body bytes precede the next answer.
    let next = raw
        .roundtrip(b"GET /prod/nope HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("response");
    raw_gateway_error(&next, 404, "Not found");
    drop(raw);
    let records = harness.settle().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    error_record(&records[0], 404, ErrorClass::RouteNotFound, &request_id);
}

/// A client that stays connected but sends a broken chunked body gets a 400 and is recorded as
/// such, not as a client that went away.
#[tokio::test]
async fn malformed_chunked_upload_is_one_400_record() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    raw.send(b"POST /prod/long/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n")
        .await
        .expect("send");
    let response = raw.read_response().await.expect("response");
    let request_id = raw_gateway_error(&response, 400, "Bad request");
    drop(raw);

    let record = harness.only_record().await;
    error_record(&record, 400, ErrorClass::MalformedRequest, &request_id);
    assert!(upstream.requests() <= 1);
}

#[tokio::test]
async fn h2_stream_reset_mid_upload_is_one_client_closed_record() {
    let (mut harness, upstream) = start().await;
    let watcher = upstream.clone();
    // Two chunks, then the client gives up, once the upstream has them: the stream is reset.
    let body = futures_util::stream::iter(0..3).then(move |i| {
        let watcher = watcher.clone();
        async move {
            if i == 2 {
                wait_until(CALL, || async { watcher.uploaded_bytes() == 1000 }).await;
                return Err(std::io::Error::other("the client gives up"));
            }
            Ok(vec![b'u'; 500])
        }
    });
    let client = h2c_client();
    let outcome = tokio::time::timeout(
        CALL,
        client
            .post(harness.url("/prod/long/upload"))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    )
    .await
    .expect("in time");
    assert!(outcome.is_err(), "the client abandoned the request");
    drop(client);

    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.error),
        (499, Some(ErrorClass::ClientClosed)),
        "{record:#?}"
    );
    assert_eq!(record.protocol, Version::HTTP_2);
}
