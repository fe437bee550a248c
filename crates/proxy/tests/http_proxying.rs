//! Proxying to a real upstream: what arrives there (method, path, query, body, forwarding
//! headers, request ids, header operations), what comes back (hop-by-hop headers removed), and
//! upstream connection reuse.

use std::time::Duration;

use gatehouse_test_support::{GatewayHarness, RawClient, Upstream, checksum, http_client};

const CALL: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
apis:
  - name: shop
    stages: [{ name: prod }]
    routes:
      - path: '/echo/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/echo/{proxy}' }
      - method: GET
        path: /headers
        integration: { type: http, url: '${UPSTREAM}/headers' }
      - path: '/ops/{proxy+}'
        integration:
          type: http
          url: '${UPSTREAM}/{proxy}'
          request_headers:
            set: { x-api-stage: '${context.stage}', x-static: fixed, x-overwritten: by-gateway }
            remove: [x-remove-me]
          response_headers:
            set: { x-served-by: gatehouse }
            remove: [server]
"#;

async fn start() -> (GatewayHarness, Upstream) {
    let upstream = Upstream::start().await;
    let harness = GatewayHarness::with_upstream(CONFIG, &upstream).await;
    (harness, upstream)
}

#[tokio::test]
async fn method_path_query_and_body_arrive_at_the_upstream() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    let body = b"hello, upstream".to_vec();
    let response = tokio::time::timeout(
        CALL,
        client
            .put(harness.url("/prod/echo/a/b%20c/?x=1&y=%2F"))
            .header("x-custom", "kept")
            .body(body.clone())
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.expect("echo JSON");
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/echo/a/b%20c/");
    assert_eq!(echo["query"], "x=1&y=%2F");
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(echo["checksum"], checksum(&body));
    assert_eq!(echo["headers"]["x-custom"], serde_json::json!(["kept"]));
    assert_eq!(
        echo["headers"]["host"],
        serde_json::json!([upstream.addr().to_string()])
    );
    drop(client);

    let record = harness.only_record().await;
    assert_eq!((record.status, record.error), (200, None));
    assert_eq!(record.bytes_in, body.len() as u64);
    assert_eq!(record.integration.kind, Some("http"));
    assert_eq!(record.integration.status, Some(200));
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_not_forwarded() {
    let (mut harness, upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let request = "GET /prod/echo/hop HTTP/1.1\r\n\
        Host: gw.test\r\n\
        Connection: keep-alive, x-client-hop\r\n\
        X-Client-Hop: connection-specific\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Authorization: Basic c2VjcmV0\r\n\
        Proxy-Connection: keep-alive\r\n\
        TE: deflate\r\n\
        X-End-To-End: kept\r\n\
        \r\n";
    let response = raw.roundtrip(request.as_bytes()).await.expect("response");
    assert_eq!(response.status, 200);
    drop(raw);

    let seen = upstream
        .last_seen()
        .expect("the request reached the upstream");
    for name in [
        "connection",
        "x-client-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
    ] {
        assert!(
            !seen.headers.contains_key(name),
            "{name} was forwarded: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.headers["x-end-to-end"], "kept");
    harness.only_record().await;
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_not_returned() {
    let (mut harness, _upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let response = raw
        .roundtrip(b"GET /prod/headers HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .expect("response");
    assert_eq!(response.status, 200);
    for name in [
        "x-upstream-hop",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
    ] {
        assert_eq!(
            response.header(name),
            None,
            "{name} was returned: {:?}",
            response.headers
        );
    }
    if let Some(connection) = response.header("connection") {
        assert!(
            !connection.contains("x-upstream-hop"),
            "connection: {connection}"
        );
    }
    assert_eq!(response.header("x-upstream-kept"), Some("yes"));
    assert_eq!(response.header("server"), Some("gatehouse-test-upstream"));
    drop(raw);
    harness.only_record().await;
}

#[tokio::test]
async fn forwarding_headers_are_set_and_appended() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(
        CALL,
        client
            .get(harness.url("/prod/echo/fwd"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("forwarded", "for=203.0.113.9")
            .header("x-forwarded-proto", "spoofed")
            .header("x-forwarded-host", "spoofed.example")
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(response.status(), 200);
    drop(client);

    let seen = upstream
        .last_seen()
        .expect("the request reached the upstream");
    let host = harness.addr().to_string();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], host.as_str());
    assert_eq!(
        seen.headers["forwarded"],
        format!("for=203.0.113.9, for=127.0.0.1;proto=http;host=\"{host}\"").as_str()
    );
    harness.only_record().await;
}

#[tokio::test]
async fn first_proxy_starts_the_forwarding_chain() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(CALL, client.get(harness.url("/prod/echo/fwd")).send())
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), 200);
    drop(client);

    let seen = upstream
        .last_seen()
        .expect("the request reached the upstream");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert!(
        seen.headers["forwarded"]
            .to_str()
            .expect("ascii")
            .starts_with("for=127.0.0.1;proto=http;")
    );
    harness.only_record().await;
}

#[tokio::test]
async fn header_operations_apply_to_request_and_response() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(
        CALL,
        client
            .get(harness.url("/prod/ops/headers"))
            .header("x-remove-me", "secret")
            .header("x-overwritten", "by-client")
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("server"),
        None,
        "removed by response_headers.remove"
    );
    assert_eq!(response.headers()["x-served-by"], "gatehouse");
    assert_eq!(response.headers()["x-upstream-kept"], "yes");
    drop(client);

    let seen = upstream
        .last_seen()
        .expect("the request reached the upstream");
    assert_eq!(seen.target, "/headers");
    assert!(!seen.headers.contains_key("x-remove-me"));
    assert_eq!(seen.headers["x-api-stage"], "prod");
    assert_eq!(seen.headers["x-static"], "fixed");
    assert_eq!(seen.headers["x-overwritten"], "by-gateway");
    harness.only_record().await;
}

#[tokio::test]
async fn sequential_requests_reuse_pooled_upstream_connections() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    const REQUESTS: u64 = 30;
    for i in 0..REQUESTS {
        let response = tokio::time::timeout(
            CALL,
            client.get(harness.url(&format!("/prod/echo/{i}"))).send(),
        )
        .await
        .expect("in time")
        .expect("response");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
    }
    drop(client);
    assert_eq!(upstream.requests(), REQUESTS);
    // A response is handed back to the pool as its body ends, so a request that follows at once
    // may occasionally open a second connection; never one per request.
    assert!(
        upstream.connections() <= 3,
        "{} upstream connections for {REQUESTS} requests",
        upstream.connections()
    );
    assert_eq!(harness.settle().await.len(), REQUESTS as usize);
}

/// An upstream that answers one request per connection with keep-alive and then closes the
/// socket shortly after, as servers with a short idle timeout do.
async fn closing_upstream() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_an_error() {
    let (url, accepted) = closing_upstream().await;
    let harness = GatewayHarness::builder(CONFIG)
        .env("UPSTREAM", url)
        .start()
        .await;
    let client = http_client();
    for _ in 0..3 {
        let response = tokio::time::timeout(CALL, client.get(harness.url("/prod/echo/x")).send())
            .await
            .expect("in time")
            .expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
        // Let the upstream close the idle connection before the next request.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
}
