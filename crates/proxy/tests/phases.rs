//! The plug-in point for WAF, auth, throttle and cache: phases run after routing, in order, may
//! answer the request themselves, and record their decisions on the exchange.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gatehouse_proxy::{Phase, PhaseContext, PhaseOutcome};
use gatehouse_telemetry::{Decision, ErrorClass};
use gatehouse_test_support::{GatewayHarness, Upstream, http_client};
use http::{Response, StatusCode};

const CONFIG: &str = r#"
apis:
  - name: shop
    stages: [{ name: prod }]
    routes:
      - path: '/up/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/{proxy}' }
"#;

/// Blocks requests carrying `x-block`, like a WAF rule; records its decision either way.
struct Blocker {
    calls: AtomicUsize,
}

impl Phase for Blocker {
    fn name(&self) -> &'static str {
        "waf"
    }

    fn on_request<'a>(
        &'a self,
        context: &'a mut PhaseContext<'_>,
    ) -> Pin<Box<dyn Future<Output = PhaseOutcome> + Send + 'a>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(&*context.route.resource_path, "/up/{proxy+}");
            if context.request.headers.contains_key("x-block") {
                context.decisions.waf = Some(Decision::Rejected {
                    reason: "test_rule",
                });
                let mut response =
                    Response::new(Bytes::from_static(b"{\"message\":\"Forbidden\"}"));
                *response.status_mut() = StatusCode::FORBIDDEN;
                return PhaseOutcome::Respond(response);
            }
            context.decisions.waf = Some(Decision::Allowed);
            PhaseOutcome::Continue
        })
    }
}

/// Answers every request it sees, like a cache hit; must never run after a phase that answered.
struct Cache;

impl Phase for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn on_request<'a>(
        &'a self,
        context: &'a mut PhaseContext<'_>,
    ) -> Pin<Box<dyn Future<Output = PhaseOutcome> + Send + 'a>> {
        Box::pin(async move {
            context.decisions.cache = Some(Decision::Hit);
            PhaseOutcome::Respond(Response::new(Bytes::from_static(b"cached")))
        })
    }
}

#[tokio::test]
async fn phases_run_in_order_and_may_answer() {
    let upstream = Upstream::start().await;
    let blocker = Arc::new(Blocker {
        calls: AtomicUsize::new(0),
    });
    let mut harness = GatewayHarness::builder(CONFIG)
        .upstream(&upstream)
        .phase(blocker.clone())
        .phase(Arc::new(Cache))
        .start()
        .await;
    let client = http_client();

    let blocked = client
        .get(harness.url("/prod/up/echo/x"))
        .header("x-block", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 403);
    let request_id = blocked.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let record = harness.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.request_id.as_str(), request_id);
    assert_eq!(record.status, 403);
    assert_eq!(record.error, Some(ErrorClass::RejectedByPhase));
    assert_eq!(
        record.decisions.waf,
        Some(Decision::Rejected {
            reason: "test_rule"
        })
    );
    assert_eq!(
        record.decisions.cache, None,
        "the cache phase must not run after a rejection"
    );
    assert_eq!(record.route.as_ref().unwrap().api.as_ref(), "shop");

    let hit = client
        .get(harness.url("/prod/up/echo/y"))
        .send()
        .await
        .unwrap();
    assert_eq!(hit.status(), 200);
    assert_eq!(hit.text().await.unwrap(), "cached");
    let record = harness.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.status, 200);
    assert_eq!(
        record.error, None,
        "an answer that is not an error is not a rejection"
    );
    assert_eq!(record.decisions.waf, Some(Decision::Allowed));
    assert_eq!(record.decisions.cache, Some(Decision::Hit));
    assert_eq!(upstream.requests(), 0, "answered by phases, never proxied");
    assert_eq!(blocker.calls.load(Ordering::SeqCst), 2);
}

/// A phase with a bug.
struct Panics;

impl Phase for Panics {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn on_request<'a>(
        &'a self,
        context: &'a mut PhaseContext<'_>,
    ) -> Pin<Box<dyn Future<Output = PhaseOutcome> + Send + 'a>> {
        Box::pin(async move {
            if context.request.uri.path().ends_with("/boom") {
                panic!("a bug in a phase");
            }
            PhaseOutcome::Continue
        })
    }
}

#[tokio::test]
async fn a_panicking_phase_answers_500_and_spares_the_connection() {
    let upstream = Upstream::start().await;
    let mut harness = GatewayHarness::builder(CONFIG)
        .upstream(&upstream)
        .phase(Arc::new(Panics))
        .start()
        .await;
    let client = http_client();
    let response = client
        .get(harness.url("/prod/up/echo/boom"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Internal server error");
    let record = harness.next_record(Duration::from_secs(5)).await;
    assert_eq!(
        (record.status, record.error),
        (500, Some(ErrorClass::Internal))
    );

    let fine = client
        .get(harness.url("/prod/up/echo/fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), 200);
    assert_eq!(upstream.connections(), 1);
}
