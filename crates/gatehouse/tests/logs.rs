//! The log store end to end, with the real binary: access and execution logs land in their
//! groups, `gatehouse logs query` answers Logs Insights-style questions over them (and points
//! at the mistake in a malformed query), `gatehouse logs tail` follows new events with a filter,
//! a metric filter turns matching lines into a metric, and everything is there after a restart.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Gatehouse, TOKEN, run};

const CONFIG: &str = "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
admin:\n  bind: 127.0.0.1:0\n  token: ${GATEHOUSE_ADMIN_TOKEN}\n\
data_dir: data\n\
logs:\n  retention_days: 7\n  metric_filters:\n\
\x20   - name: server-errors\n      group: 'access/*'\n      filter: 'status >= 500'\n      metric: ServerErrors\n      value: '1'\n\
apis:\n  - name: shop\n    stages:\n      - name: prod\n        execution_log:\n          level: info\n    routes:\n\
\x20     - method: GET\n        path: /items/{id}\n        integration:\n          type: mock\n          body: 'item {id}'\n\
\x20     - method: GET\n        path: /broken\n        integration:\n          type: mock\n          status: 503\n          body: 'down'\n";

fn cli(gatehouse: &Gatehouse, args: &[&str]) -> (i32, String, String) {
    let admin = gatehouse.admin_url("");
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&["--admin", &admin, "--token", TOKEN]);
    run(&all, &[])
}

fn query(gatehouse: &Gatehouse, text: &str, groups: &[&str]) -> Value {
    let mut args = vec!["logs", "query", text, "-o", "json"];
    for group in groups {
        args.extend_from_slice(&["--group", group]);
    }
    let (code, stdout, stderr) = cli(gatehouse, &args);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Polls a query until `done` accepts its answer (lines reach the store within about a second).
fn eventually(
    gatehouse: &Gatehouse,
    text: &str,
    groups: &[&str],
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = query(gatehouse, text, groups);
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "query {text:?} never satisfied: {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the gateway counts `followers` live-tail followers.
async fn wait_for_followers(client: &reqwest::Client, gatehouse: &Gatehouse, followers: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: Value = client
            .get(gatehouse.admin_url("/admin/status"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["logs"]["tailFollowers"] == followers {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {followers} followers: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rows(answer: &Value) -> Vec<Vec<Value>> {
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_and_execution_logs_are_stored_queried_tailed_and_counted() {
    let gatehouse = Gatehouse::start(CONFIG, &[]);

    // Follow the errors before sending anything: tail shows events from now on.
    let admin = gatehouse.admin_url("");
    let mut tail = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "logs",
            "tail",
            "access/*",
            "--filter",
            "status >= 500",
            "-o",
            "json",
        ])
        .args(["--admin", &admin, "--token", TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, tailed) = mpsc::channel::<String>();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // The tail subscribes when its request arrives; wait until the gateway counts it.
    let client = reqwest::Client::new();
    wait_for_followers(&client, &gatehouse, 1).await;

    for i in 0..10 {
        let response = client
            .get(gatehouse.url(&format!("/prod/items/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    for _ in 0..3 {
        let response = client
            .get(gatehouse.url("/prod/broken"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
    }
    for _ in 0..2 {
        let response = client
            .get(gatehouse.url("/prod/nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }

    // The tail saw exactly the three 503s, in order, and nothing else.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tailed
            .recv_timeout(Duration::from_secs(10))
            .expect("tail line");
        seen.push(line);
    }
    for line in &seen {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["group"], "access/shop/prod", "{line}");
        let message: Value = serde_json::from_str(event["message"].as_str().unwrap()).unwrap();
        assert_eq!(message["status"], 503, "{line}");
    }
    assert!(
        tailed.recv_timeout(Duration::from_millis(500)).is_err(),
        "only errors are tailed"
    );
    let _ = tail.kill();
    let _ = tail.wait();
    // The gateway lets go of a follower as soon as it disconnects.
    wait_for_followers(&client, &gatehouse, 0).await;

    // Counts by status over every access log (the 404s are in access/_unrouted).
    let by_status = eventually(
        &gatehouse,
        "stats count(*) as n by status | sort status",
        &[],
        |answer| {
            rows(answer)
                .iter()
                .filter_map(|row| row[1].as_u64())
                .sum::<u64>()
                == 15
        },
    );
    assert_eq!(by_status["columns"], serde_json::json!(["status", "n"]));
    assert_eq!(
        rows(&by_status),
        vec![
            vec![Value::from(200), Value::from(10)],
            vec![Value::from(404), Value::from(2)],
            vec![Value::from(503), Value::from(3)],
        ]
    );

    // The slowest routes question runs and names route templates, never raw paths.
    let routes = query(
        &gatehouse,
        "filter ispresent(route) | stats count() as n, pct(latencyMs, 99) as p99 by route | sort n desc",
        &["access/shop/prod"],
    );
    let names: Vec<Value> = rows(&routes).iter().map(|row| row[0].clone()).collect();
    assert_eq!(
        names,
        vec![Value::from("/items/{id}"), Value::from("/broken")]
    );

    // Execution logs: every request of the INFO stage has its steps in execution/shop/prod.
    let steps = eventually(
        &gatehouse,
        "filter step = \"route.matched\" | stats count(*) as n",
        &["execution/shop/prod"],
        |answer| rows(answer).first().and_then(|row| row.first()) == Some(&Value::from(13)),
    );
    assert_eq!(rows(&steps), vec![vec![Value::from(13)]]);

    // A malformed query is refused with the position of the mistake.
    let (code, _, stderr) = cli(&gatehouse, &["logs", "query", "stats avgg(latencyMs)"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("avgg"), "{stderr}");
    assert!(
        stderr.contains('^'),
        "the error points at the position: {stderr}"
    );

    // The groups list names every group with its retention from the config.
    let (code, stdout, stderr) = cli(&gatehouse, &["logs", "groups", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let groups: Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for expected in [
        "access/_unrouted",
        "access/shop/prod",
        "execution/shop/prod",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    // Logs and the metric filter's minute survive a restart (stopping flushes the open minute).
    let gatehouse = gatehouse.restart(&[]);
    let again = query(&gatehouse, "stats count(*) as n", &["access/*"]);
    assert_eq!(rows(&again), vec![vec![Value::from(15)]]);
    let (code, stdout, stderr) = cli(
        &gatehouse,
        &[
            "metrics",
            "query",
            "ServerErrors",
            "--since",
            "1h",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let metric: Value = serde_json::from_str(&stdout).unwrap();
    let total: f64 = metric["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 3.0, "{metric}");
}
