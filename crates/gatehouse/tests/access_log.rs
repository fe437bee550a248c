//! Access logs end to end: the real binary writes unrouted requests in CLF to one file and a
//! stage's requests with a custom JSON template to another, and a reload swaps a stage's format
//! without a restart.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Gatehouse, TOKEN};

const JSON_TEMPLATE: &str = r#"{"id":"$context.requestId","route":"$context.resourcePath","status":$context.status,"stage":$context.stage,"type":$context.error.responseType}"#;

fn config(prod_format: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
         admin:\n  bind: 127.0.0.1:0\n  token: ${{GATEHOUSE_ADMIN_TOKEN}}\n\
         metrics:\n  enabled: false\n\
         access_log:\n  format: clf\n  destinations:\n    - file: {{ path: logs/unrouted.clf, max_size: 10MB, rotate_every: 1d }}\n\
         apis:\n  - name: shop\n    stages:\n      - name: prod\n        access_log:\n          format: '{prod_format}'\n          destinations:\n            - file: logs/prod.log\n\
         \x20   routes:\n      - method: GET\n        path: /hello\n        integration:\n          type: mock\n          body: hi\n"
    )
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), id)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn eventually_lines(path: &Path, count: usize) -> Vec<String> {
    for _ in 0..500 {
        let found = lines(path);
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} never had {count} lines: {:?}",
        path.display(),
        lines(path)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_templates_and_unrouted_clf_reach_their_files_and_reload_swaps_formats() {
    let mut gatehouse = Gatehouse::start(&config(JSON_TEMPLATE), &[]);
    let client = reqwest::Client::new();
    let (status, routed_id) = get(&client, gatehouse.url("/prod/hello")).await;
    assert_eq!(status, 200);
    let (status, missing_id) = get(&client, gatehouse.url("/nope")).await;
    assert_eq!(status, 404);

    let prod_path = gatehouse.dir().join("logs/prod.log");
    let unrouted_path = gatehouse.dir().join("logs/unrouted.clf");
    let prod = eventually_lines(&prod_path, 1).await;
    let line: serde_json::Value = serde_json::from_str(&prod[0]).unwrap();
    assert_eq!(line["id"], routed_id.as_str());
    assert_eq!(line["route"], "/hello");
    assert_eq!(line["status"], 200);
    assert_eq!(line["stage"], "prod");
    assert_eq!(line["type"], serde_json::Value::Null);
    let unrouted = eventually_lines(&unrouted_path, 1).await;
    assert!(
        unrouted[0].starts_with("127.0.0.1 - - ["),
        "{}",
        unrouted[0]
    );
    assert!(
        unrouted[0].contains("] \"GET /nope HTTP/1.1\" 404 "),
        "{}",
        unrouted[0]
    );
    assert!(unrouted[0].ends_with(&missing_id), "{}", unrouted[0]);

    // A reload swaps the stage's format; the file stays open and gets the new lines.
    gatehouse.write_config(&config("prod $context.requestId $context.status"));
    let reloaded = client
        .post(gatehouse.admin_url("/admin/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 200);
    let (_, second_id) = get(&client, gatehouse.url("/prod/hello")).await;
    let prod = eventually_lines(&prod_path, 2).await;
    assert_eq!(prod[1], format!("prod {second_id} 200"));

    gatehouse.signal("TERM");
    let status = tokio::task::block_in_place(|| gatehouse.wait_exit(Duration::from_secs(10)));
    assert!(status.success(), "{status:?}");
    assert_eq!(lines(&prod_path).len(), 2);
    assert_eq!(lines(&unrouted_path).len(), 1);
}

/// The trace id the caller sent is the one in the access log, in both forms, and on the response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continued_trace_id_reaches_the_access_log_and_the_response() {
    let template = r#"{"id":"$context.requestId","trace":"$context.traceId","xray":"$context.xrayTraceId","span":"$context.gatehouse.spanId"}"#;
    let gatehouse = Gatehouse::start(&config(template), &[]);
    let client = reqwest::Client::new();
    let response = client
        .get(gatehouse.url("/prod/hello"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-amzn-trace-id"],
        "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736"
    );
    let prod = eventually_lines(&gatehouse.dir().join("logs/prod.log"), 1).await;
    let line: serde_json::Value = serde_json::from_str(&prod[0]).unwrap();
    assert_eq!(line["trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["xray"], "1-4bf92f35-77b34da6a3ce929d0e0e4736");
    let span = line["span"].as_str().unwrap();
    assert_eq!(span.len(), 16);
    assert_ne!(span, "00f067aa0ba902b7", "the gateway logs its own span");
}
