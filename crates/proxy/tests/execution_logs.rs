//! Execution logs end to end: what the data plane captures on the published exchange for a stage
//! that logs (the integration request as sent upstream, its answer, the data trace with bodies
//! capped at `max_body_bytes`), what it leaves out for a stage that does not, and how the
//! captured detail renders with credentials masked.
#![allow(clippy::unwrap_used)] // tests panic on purpose

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gatehouse_proxy::{Phase, PhaseContext, PhaseOutcome};
use gatehouse_telemetry::execution::{
    ExecutionDetail, ExecutionLogLevel, ExecutionLogSettings, PhaseResult, execution_events,
};
use gatehouse_telemetry::{Decision, ErrorClass, Exchange};
use gatehouse_test_support::{GatewayHarness, Upstream, free_port, http_client};
use http::HeaderName;
use serde_json::Value;

const CALL: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 64;

const CONFIG: &str = r#"
apis:
  - name: shop
    version: v1
    stages:
      - { name: prod, variables: { backend: '${UPSTREAM}', unused: x } }
      - { name: dev, variables: { backend: '${UPSTREAM}', unused: x } }
      - { name: errors, variables: { backend: '${UPSTREAM}', unused: x } }
    routes:
      - path: '/echo/{proxy+}'
        integration:
          type: http
          url: '${stageVariables.backend}/echo/{proxy}'
          request_headers: { set: { x-added: 'by-route' } }
      - { path: /down, integration: { type: http, url: 'http://127.0.0.1:${DEAD_PORT}/' } }
      - { method: GET, path: /mock, integration: { type: mock, status: 202, body: '{"ok":true}' } }
      - { method: GET, path: /ws, integration: { type: websocket, url: 'ws://127.0.0.1:${WS_PORT}/ws' } }
"#;

fn info_with_trace() -> ExecutionLogSettings {
    ExecutionLogSettings {
        level: ExecutionLogLevel::Info,
        data_trace: true,
        max_body_bytes: MAX_BODY,
        redact_headers: vec![HeaderName::from_static("x-secret")],
        redact_json_fields: vec!["password".into()],
    }
}

/// A phase that lets everything through and says so.
struct Allow;

impl Phase for Allow {
    fn name(&self) -> &'static str {
        "waf"
    }

    fn on_request<'a>(
        &'a self,
        context: &'a mut PhaseContext<'_>,
    ) -> Pin<Box<dyn Future<Output = PhaseOutcome> + Send + 'a>> {
        Box::pin(async move {
            context.decisions.waf = Some(Decision::Allowed);
            PhaseOutcome::Continue
        })
    }
}

async fn start(ws_port: u16) -> (GatewayHarness, Upstream) {
    let upstream = Upstream::start().await;
    let harness = GatewayHarness::builder(CONFIG)
        .upstream(&upstream)
        .env("DEAD_PORT", free_port().to_string())
        .env("WS_PORT", ws_port.to_string())
        .phase(Arc::new(Allow))
        .execution_log("prod", info_with_trace())
        .execution_log(
            "errors",
            ExecutionLogSettings {
                level: ExecutionLogLevel::Error,
                ..ExecutionLogSettings::default()
            },
        )
        .start()
        .await;
    (harness, upstream)
}

fn detail(record: &Exchange) -> &ExecutionDetail {
    record
        .execution
        .as_deref()
        .expect("the exchange carries an execution detail")
}

fn render(record: &Exchange) -> Vec<Value> {
    let mut events = Vec::new();
    execution_events(record, &detail(record).settings, &mut events);
    events
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn step<'e>(events: &'e [Value], name: &str) -> &'e Value {
    events
        .iter()
        .find(|e| e["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step in {events:#?}"))
}

#[tokio::test]
async fn info_with_data_trace_captures_the_upstream_exchange_and_capped_bodies() {
    let (mut harness, upstream) = start(free_port()).await;
    let body = format!(r#"{{"password":"hunter2","pad":"{}"}}"#, "p".repeat(200));
    let response = http_client()
        .post(harness.url("/prod/echo/items?x=1"))
        .header("authorization", "Bearer s3cret-token")
        .header("x-secret", "classified")
        .header("content-type", "application/json")
        .body(body.clone())
        .timeout(CALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let response_bytes = response.bytes().await.unwrap();
    let record = harness.only_record().await;
    let detail = detail(&record);

    assert_eq!(detail.settings.level, ExecutionLogLevel::Info);
    let params: Vec<(&str, &str)> = detail
        .path_params
        .iter()
        .map(|(k, v)| (&**k, &**v))
        .collect();
    assert_eq!(params, [("proxy", "items")]);
    let variables: Vec<(&str, &str)> = detail
        .stage_variables
        .iter()
        .map(|(k, v)| (&**k, &**v))
        .collect();
    assert_eq!(variables, [("backend", upstream.url().as_str())]);
    assert_eq!(detail.phases.len(), 1);
    assert_eq!(detail.phases[0].phase, "waf");
    assert_eq!(detail.phases[0].result, PhaseResult::Continued);

    // The integration request as the upstream got it.
    let sent = detail.integration_request.as_ref().unwrap();
    assert_eq!(sent.method, http::Method::POST);
    assert_eq!(sent.url, format!("{}/echo/items?x=1", upstream.url()));
    let seen = upstream.last_seen().unwrap();
    for name in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "forwarded",
        "x-request-id",
        "x-added",
        "authorization",
        "host",
    ] {
        assert_eq!(sent.headers.get(name), seen.headers.get(name), "{name}");
        assert!(sent.headers.contains_key(name), "{name} was recorded");
    }
    assert_eq!(sent.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(sent.headers["x-request-id"], request_id.as_str());
    let answer = detail.integration_response.as_ref().unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .headers
            .as_ref()
            .unwrap()
            .contains_key("content-type")
    );

    // The data trace: client headers as received, bodies capped at max_body_bytes.
    let client_headers = detail.request_headers.as_ref().unwrap();
    assert_eq!(client_headers["authorization"], "Bearer s3cret-token");
    let request_body = detail.request_body.as_ref().unwrap();
    assert_eq!(request_body.bytes, &body.as_bytes()[..MAX_BODY]);
    assert_eq!(request_body.total, body.len() as u64);
    assert!(request_body.truncated());
    let response_body = detail.response_body.as_ref().unwrap();
    assert_eq!(response_body.bytes, &response_bytes[..MAX_BODY]);
    assert_eq!(response_body.total, response_bytes.len() as u64);
    assert_eq!(record.bytes_out, response_bytes.len() as u64);
    let response_headers = detail.response_headers.as_ref().unwrap();
    assert_eq!(response_headers["x-request-id"], request_id.as_str());

    // Rendered, the secrets are masked wherever they were captured.
    let events = render(&record);
    let text = serde_json::to_string(&events).unwrap();
    for secret in ["s3cret-token", "classified", "hunter2"] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
    let received = step(&events, "request.received");
    assert_eq!(received["headers"]["authorization"], "***");
    assert_eq!(received["headers"]["x-secret"], "***");
    assert!(
        received["body"]
            .as_str()
            .unwrap()
            .starts_with(r#"{"password":"***","pad":"ppp"#)
    );
    assert_eq!(received["bodyTruncated"], true);
    assert_eq!(received["bodyBytes"], body.len());
    let integration = step(&events, "integration.request");
    assert_eq!(integration["headers"]["authorization"], "***");
    assert_eq!(integration["headers"]["x-forwarded-proto"], "http");
    assert_eq!(integration["url"], sent.url.as_str());
    assert_eq!(step(&events, "integration.response")["status"], 200);
    assert_eq!(step(&events, "request.completed")["status"], 200);
}

#[tokio::test]
async fn stage_with_logging_off_captures_nothing() {
    let (mut harness, _upstream) = start(free_port()).await;
    let response = http_client()
        .post(harness.url("/dev/echo/items"))
        .header("authorization", "Bearer s3cret-token")
        .body("hello")
        .timeout(CALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let record = harness.only_record().await;
    assert!(record.execution.is_none());
}

#[tokio::test]
async fn error_level_keeps_a_detail_only_for_failures() {
    let (mut harness, _upstream) = start(free_port()).await;
    let client = http_client();
    let ok = client
        .get(harness.url("/errors/echo/fine"))
        .timeout(CALL)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    ok.bytes().await.unwrap();
    let record = harness.next_record(CALL).await;
    assert!(record.execution.is_none(), "a success at ERROR level");

    let down = client
        .get(harness.url("/errors/down"))
        .timeout(CALL)
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 502);
    down.bytes().await.unwrap();
    let record = harness.next_record(CALL).await;
    let detail = detail(&record);
    assert_eq!(detail.settings.level, ExecutionLogLevel::Error);
    assert!(detail.integration_request.is_none(), "no capture at ERROR");
    let events = render(&record);
    let steps: Vec<&str> = events.iter().map(|e| e["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["request.received", "error", "request.completed"]);
    assert_eq!(
        events[1]["errorClass"],
        ErrorClass::UpstreamConnect.as_str()
    );
    assert!(events[1]["cause"].as_str().is_some_and(|c| !c.is_empty()));
}

#[tokio::test]
async fn upstream_failure_at_info_logs_the_request_and_the_cause() {
    let (mut harness, _upstream) = start(free_port()).await;
    let response = http_client()
        .get(harness.url("/prod/down"))
        .timeout(CALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    response.bytes().await.unwrap();
    let record = harness.only_record().await;
    let detail = detail(&record);
    let sent = detail.integration_request.as_ref().unwrap();
    assert!(sent.url.starts_with("http://127.0.0.1:"));
    assert!(detail.integration_response.is_none());
    // The gateway's own error body is what the client got, so it is what the trace shows.
    let body = detail.response_body.as_ref().unwrap();
    assert!(String::from_utf8_lossy(&body.bytes).contains("\"requestId\""));
    let events = render(&record);
    let steps: Vec<&str> = events.iter().map(|e| e["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "request.received",
            "route.matched",
            "phase.decision",
            "integration.request",
            "error",
            "request.completed"
        ]
    );
}

#[tokio::test]
async fn mock_records_its_status() {
    let (mut harness, _upstream) = start(free_port()).await;
    let response = http_client()
        .get(harness.url("/prod/mock"))
        .timeout(CALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.bytes().await.unwrap();
    let record = harness.only_record().await;
    let detail = detail(&record);
    assert!(detail.integration_request.is_none());
    let answer = detail.integration_response.as_ref().unwrap();
    assert_eq!((answer.status, answer.headers.is_none()), (202, true));
    assert_eq!(
        detail.response_body.as_ref().unwrap().bytes,
        br#"{"ok":true}"#
    );
    let events = render(&record);
    let integration = step(&events, "integration.response");
    assert_eq!(integration["integration"], "mock");
    assert_eq!(integration["status"], 202);
    assert_eq!(step(&events, "request.completed")["body"], r#"{"ok":true}"#);
}

#[tokio::test]
async fn websocket_records_the_upstream_handshake() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                break;
            }
            socket.send(message).await.unwrap();
        }
    });
    let (mut harness, _upstream) = start(ws_port).await;
    let url = format!("ws://{}/prod/ws", harness.addr());
    let (mut client, _) = tokio::time::timeout(CALL, tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .unwrap();
    client.send("hi".into()).await.unwrap();
    let echoed = tokio::time::timeout(CALL, client.next()).await.unwrap();
    assert_eq!(echoed.unwrap().unwrap().into_text().unwrap(), "hi");
    client.close(None).await.unwrap();
    drop(client);

    let record = harness.next_record(CALL).await;
    let detail = detail(&record);
    let sent = detail.integration_request.as_ref().unwrap();
    assert_eq!(sent.method, http::Method::GET);
    assert_eq!(sent.url, format!("ws://127.0.0.1:{ws_port}/ws"));
    assert!(sent.headers.contains_key("sec-websocket-key"));
    assert_eq!(sent.headers["x-forwarded-for"], "127.0.0.1");
    let answer = detail.integration_response.as_ref().unwrap();
    assert_eq!(answer.status, 101);
    assert!(
        answer
            .headers
            .as_ref()
            .unwrap()
            .contains_key("sec-websocket-accept")
    );
    let events = render(&record);
    let done = step(&events, "request.completed");
    assert_eq!(done["websocket"]["messagesIn"], 1);
}
