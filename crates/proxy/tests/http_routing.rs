//! Routing over real sockets: mock answers with path parameters and stage variables, stage
//! prefixes, host-bound apis, 404, 405 with `Allow`, HEAD, and request ids.

use std::time::Duration;

use gatehouse_telemetry::ErrorClass;
use gatehouse_test_support::{
    GatewayHarness, RawClient, Upstream, error_record, gateway_error, http_client,
    raw_gateway_error,
};

const CALL: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
apis:
  - name: shop
    base_path: /shop
    stages:
      - name: prod
        variables: { greeting: hello, backend: "${UPSTREAM}" }
      - name: beta
        path_prefix: /b
        variables: { greeting: hi, backend: "${UPSTREAM}" }
    routes:
      - method: GET
        path: '/items/{id}'
        integration:
          type: mock
          headers: { x-stage: '${context.stage}', x-route: '${context.resourcePath}' }
          body: '{"id":"{id}","greeting":"${stageVariables.greeting}","stage":"${context.stage}"}'
      - method: POST
        path: /items
        integration: { type: mock, status: 201, body: created }
      - path: '/echo/{proxy+}'
        integration: { type: http, url: '${stageVariables.backend}/echo/{proxy}' }
  - name: hosted
    host: api.example.test
    stages: [{ name: main, path_prefix: '/' }]
    routes:
      - { method: GET, path: /who, integration: { type: mock, body: hosted } }
"#;

async fn start() -> (GatewayHarness, Upstream) {
    let upstream = Upstream::start().await;
    let harness = GatewayHarness::with_upstream(CONFIG, &upstream).await;
    (harness, upstream)
}

#[tokio::test]
async fn mock_answers_with_path_params_and_stage_variables() {
    let (mut harness, _upstream) = start().await;
    let client = http_client();
    let response =
        tokio::time::timeout(CALL, client.get(harness.url("/prod/shop/items/42")).send())
            .await
            .expect("in time")
            .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-stage"], "prod");
    assert_eq!(response.headers()["x-route"], "/items/{id}");
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: serde_json::Value = response.json().await.expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({ "id": "42", "greeting": "hello", "stage": "prod" })
    );
    drop(client);

    let record = harness.only_record().await;
    assert_eq!(record.status, 200);
    assert_eq!(record.error, None);
    assert_eq!(record.request_id.as_str(), request_id);
    let route = record
        .route
        .as_ref()
        .expect("a routed request has route labels");
    assert_eq!(
        (&*route.api, &*route.stage, &*route.resource_path),
        ("shop", "prod", "/items/{id}")
    );
    assert_eq!(record.integration.kind, Some("mock"));
    assert_eq!(record.path, "/prod/shop/items/42");
}

#[tokio::test]
async fn stage_prefix_selects_the_stage_and_its_variables() {
    let (mut harness, _upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(CALL, client.get(harness.url("/b/shop/items/7")).send())
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({ "id": "7", "greeting": "hi", "stage": "beta" })
    );

    // The default prefix of a stage is its name: /beta is not a prefix of anything.
    let response = tokio::time::timeout(CALL, client.get(harness.url("/beta/shop/items/7")).send())
        .await
        .expect("in time")
        .expect("response");
    gateway_error(response, 404, "Not found").await;
    drop(client);

    let records = harness.settle().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0].route.as_ref().map(|r| &*r.stage), Some("beta"));
    assert_eq!(records[1].error, Some(ErrorClass::RouteNotFound));
}

#[tokio::test]
async fn unknown_route_is_404_json_with_one_record() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(
        CALL,
        client.get(harness.url("/prod/shop/nothing-here")).send(),
    )
    .await
    .expect("in time")
    .expect("response");
    let request_id = gateway_error(response, 404, "Not found").await;
    drop(client);

    let record = harness.only_record().await;
    error_record(&record, 404, ErrorClass::RouteNotFound, &request_id);
    assert!(record.route.is_none());
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let (mut harness, _upstream) = start().await;
    let client = http_client();
    let response =
        tokio::time::timeout(CALL, client.delete(harness.url("/prod/shop/items")).send())
            .await
            .expect("in time")
            .expect("response");
    assert_eq!(response.headers()["allow"], "POST");
    let request_id = gateway_error(response, 405, "Method not allowed").await;
    drop(client);

    let record = harness.only_record().await;
    error_record(&record, 405, ErrorClass::MethodNotAllowed, &request_id);
    assert_eq!(record.method, Some(http::Method::DELETE));
}

#[tokio::test]
async fn head_is_routed_like_get_and_has_no_body() {
    let (mut harness, _upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    raw.send(b"HEAD /prod/shop/items/42 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .expect("send");
    let response = raw.read_response_to(true).await.expect("response");
    assert_eq!(response.status, 200);
    assert!(response.header("x-request-id").is_some());
    assert_eq!(response.header("x-stage"), Some("prod"));
    // The same connection serves the next request: no body bytes were left on the wire.
    raw.send(b"GET /prod/shop/items/43 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let response = raw.read_response().await.expect("second response");
    assert_eq!(response.json()["id"], "43");
    drop(raw);

    let records = harness.settle().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    let head = records
        .iter()
        .find(|r| r.method == Some(http::Method::HEAD))
        .expect("the HEAD record");
    assert_eq!((head.status, head.error, head.bytes_out), (200, None, 0));
}

#[tokio::test]
async fn host_bound_api_matches_on_the_host_header_only() {
    let (mut harness, _upstream) = start().await;
    let mut raw = RawClient::connect(harness.addr()).await;
    let response = raw
        .roundtrip(b"GET /who HTTP/1.1\r\nHost: API.Example.test:8080\r\n\r\n")
        .await
        .expect("response");
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"hosted"[..])
    );
    let response = raw
        .roundtrip(b"GET /who HTTP/1.1\r\nHost: other.example.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("response");
    let request_id = raw_gateway_error(&response, 404, "Not found");
    drop(raw);

    let records = harness.settle().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0].route.as_ref().map(|r| &*r.api), Some("hosted"));
    error_record(&records[1], 404, ErrorClass::RouteNotFound, &request_id);
}

#[tokio::test]
async fn client_request_id_is_passed_upstream_and_returned() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    let response = tokio::time::timeout(
        CALL,
        client
            .get(harness.url("/prod/shop/echo/id"))
            .header("x-request-id", "client-chosen-id-1")
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id-1");
    let echo: serde_json::Value = response.json().await.expect("echo JSON");
    assert_eq!(
        echo["headers"]["x-request-id"],
        serde_json::json!(["client-chosen-id-1"])
    );
    drop(client);

    let record = harness.only_record().await;
    assert_eq!(record.request_id.as_str(), "client-chosen-id-1");
    assert_eq!(upstream.requests(), 1);
}

#[tokio::test]
async fn request_id_is_created_when_missing_or_unusable() {
    let (mut harness, upstream) = start().await;
    let client = http_client();
    let mut minted = Vec::new();
    // An id with a quote is not honoured (it would be unsafe in logs); one is minted instead.
    for sent in [None, Some("has\"quote")] {
        let mut request = client.get(harness.url("/prod/shop/echo/id"));
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        let response = tokio::time::timeout(CALL, request.send())
            .await
            .expect("in time")
            .expect("response");
        let returned = response.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_ne!(Some(returned.as_str()), sent);
        assert_eq!(returned.len(), 36, "a UUID-shaped id: {returned}");
        let echo: serde_json::Value = response.json().await.expect("echo JSON");
        assert_eq!(
            echo["headers"]["x-request-id"],
            serde_json::json!([returned.clone()])
        );
        minted.push(returned);
    }
    assert_ne!(minted[0], minted[1]);
    drop(client);

    let records = harness.settle().await;
    let ids: Vec<&str> = records.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, minted);
    assert_eq!(upstream.requests(), 2);
}
