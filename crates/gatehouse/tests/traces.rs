//! The trace store end to end, with the real binary: the admin API refuses malformed trace ids
//! (400) and answers unknown ones with 404, `gatehouse traces search` answers (an empty list when
//! nothing matches), and a request whose caller sent a sampled `traceparent` is recorded: its
//! trace is listed by api and route, continues the caller's trace id, and prints as a waterfall.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Gatehouse, TOKEN, run};

const CONFIG: &str = "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
admin:\n  bind: 127.0.0.1:0\n  token: ${GATEHOUSE_ADMIN_TOKEN}\n\
data_dir: data\n\
tracing:\n  retention_days: 3\n\
apis:\n  - name: shop\n    stages:\n      - name: prod\n        execution_log:\n          level: info\n    routes:\n\
\x20     - method: GET\n        path: /items/{id}\n        integration:\n          type: mock\n          body: 'item {id}'\n";

fn cli(gatehouse: &Gatehouse, args: &[&str]) -> (i32, String, String) {
    let admin = gatehouse.admin_url("");
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&["--admin", &admin, "--token", TOKEN]);
    run(&all, &[])
}

async fn admin_get(gatehouse: &Gatehouse, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(gatehouse.admin_url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_ids_are_checked_unknown_traces_are_404_and_the_search_answers() {
    let gatehouse = Gatehouse::start(CONFIG, &[]);
    let (_, status) = admin_get(&gatehouse, "/admin/status").await;
    assert_eq!(status["traces"]["retentionDays"], 3, "{status}");

    for bad in [
        "nope",
        "4bf92f3577b34da6a3ce929d0e0e473",
        "1-4bf92f35-77b34da6",
    ] {
        let (status, body) = admin_get(&gatehouse, &format!("/admin/traces/{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("not a trace id"),
            "{body}"
        );
    }
    for unknown in [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "1-4bf92f35-77b34da6a3ce929d0e0e4736",
    ] {
        let (status, body) = admin_get(&gatehouse, &format!("/admin/traces/{unknown}")).await;
        assert_eq!(status, 404, "{unknown}: {body}");
    }
    let (status, _) = admin_get(&gatehouse, "/admin/traces?since=1h&bogus=1").await;
    assert_eq!(status, 400, "unknown parameters are refused");
    let (status, _) = admin_get(&gatehouse, "/admin/traces?min_duration=soon").await;
    assert_eq!(status, 400);

    let (code, _, stderr) = cli(&gatehouse, &["traces", "get", "nope"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("not a trace id"), "{stderr}");
    let (code, stdout, stderr) = cli(&gatehouse, &["traces", "search", "--api", "nothing"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "no traces match\n");

    // The caller's trace, sampled: the gateway continues it and records it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = reqwest::Client::new()
        .get(gatehouse.url("/prod/items/7"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Traced: the request is listed and its trace prints as a waterfall.
    let deadline = Instant::now() + Duration::from_secs(15);
    let listed = loop {
        let (code, stdout, stderr) = cli(
            &gatehouse,
            &[
                "traces",
                "search",
                "--api",
                "shop",
                "--route",
                "/items/{id}",
                "-o",
                "json",
            ],
        );
        assert_eq!(code, 0, "{stderr}");
        let body: Value = serde_json::from_str(&stdout).unwrap();
        if let Some(first) = body["traces"].as_array().and_then(|t| t.first()) {
            break first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the trace was never listed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listed["name"], "GET /items/{id}");
    assert_eq!(listed["status"], 200);
    let id = listed["traceId"].as_str().unwrap();
    assert_eq!(id, trace_id, "the caller's trace is continued");
    let (code, stdout, stderr) = cli(&gatehouse, &["traces", "get", id]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(&format!("trace {id}")), "{stdout}");
    assert!(stdout.contains("GET /items/{id}"), "{stdout}");
}
