//! Metrics end to end: requests through the real binary show up in `/metrics` at once, are stored
//! per minute, survive a restart, and answer `gatehouse metrics query`.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::time::Duration;

use support::{Gatehouse, TOKEN, run};

const CONFIG: &str = "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
admin:\n  bind: 127.0.0.1:0\n  token: ${GATEHOUSE_ADMIN_TOKEN}\n\
data_dir: data\n\
access_log:\n  destination: off\n\
apis:\n  - name: shop\n    stages:\n      - name: prod\n    routes:\n\
\x20     - method: GET\n        path: /items/{id}\n        integration:\n          type: mock\n          body: 'item {id}'\n";

fn query(gatehouse: &Gatehouse, args: &[&str]) -> serde_json::Value {
    let admin = gatehouse.admin_url("");
    let mut all = vec!["metrics", "query"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json", "--admin", &admin, "--token", TOKEN]);
    let (code, stdout, stderr) = run(&all, &[]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn total(answer: &serde_json::Value) -> f64 {
    answer["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_become_metrics_that_survive_a_restart() {
    let gatehouse = Gatehouse::start(CONFIG, &[]);
    let client = reqwest::Client::new();
    for i in 0..12 {
        let response = client
            .get(gatehouse.url(&format!("/prod/items/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    for _ in 0..3 {
        let response = client
            .get(gatehouse.url("/prod/nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }

    // Prometheus sees them at once, with the token only.
    let denied = client
        .get(gatehouse.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let scrape = async || {
        let response = client
            .get(gatehouse.admin_url("/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        response.text().await.unwrap()
    };
    let routed = r#"gatehouse_requests_total{api="shop",stage="prod",route="/items/{id}",method="GET",status_class="2xx"} 12"#;
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape().await;
        if text.contains(routed) && text.contains(r#"status_class="4xx"} 3"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(text.contains(routed), "{text}");
    assert!(text.contains(r#"status_class="4xx"} 3"#), "{text}");

    // The minute is written to the store at shutdown and is there after the restart.
    let gatehouse = gatehouse.restart(&[]);
    let count = query(&gatehouse, &["Count", "--since", "1h"]);
    assert_eq!(count["statistic"], "Sum");
    assert_eq!(total(&count), 15.0, "{count}");
    let errors = query(&gatehouse, &["4XXError", "--since", "1h"]);
    assert_eq!(total(&errors), 3.0, "{errors}");
    let route = query(
        &gatehouse,
        &[
            "Latency",
            "--api",
            "shop",
            "--stage",
            "prod",
            "--route",
            "/items/{id}",
            "--method",
            "GET",
            "--stat",
            "p99",
            "--period",
            "300",
            "--since",
            "1h",
        ],
    );
    let points = route["datapoints"].as_array().unwrap();
    assert!(!points.is_empty(), "{route}");
    assert_eq!(
        points
            .iter()
            .map(|p| p["sampleCount"].as_u64().unwrap())
            .sum::<u64>(),
        12
    );
    assert!(points[0]["value"].as_f64().unwrap() >= 0.0);
    assert_eq!(route["unit"], "Milliseconds");

    let (code, _, stderr) = run(
        &[
            "metrics",
            "query",
            "Latency",
            "--stat",
            "median",
            "--admin",
            &gatehouse.admin_url(""),
            "--token",
            TOKEN,
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("unknown statistic"), "{stderr}");
}

/// Exact quantile at rank floor(q·(n−1)), the rank DDSketch's accuracy guarantee is stated for.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_percentiles_are_within_the_sketch_error_of_the_exact_latencies() {
    let upstream = support::start_upstream().await;
    let config = CONFIG
        .replace("destination: off", "destination: file\n  path: access.log")
        .replace(
            "          type: mock\n          body: 'item {id}'\n",
            "          type: http\n          url: ${UPSTREAM}/delay/{id}\n",
        );
    let upstream_url = format!("http://{upstream}");
    let env = [("UPSTREAM", upstream_url.as_str())];
    let gatehouse = Gatehouse::start(&config, &env);
    let client = reqwest::Client::new();
    // A latency distribution we control: 240 requests, delays 1..=40 ms, six of each, 8 at a time.
    let delays: Vec<u64> = (0..240).map(|i| 1 + (i * 7) % 40).collect();
    let mut tasks = Vec::new();
    for chunk in delays.chunks(30) {
        let (client, urls) = (
            client.clone(),
            chunk
                .iter()
                .map(|ms| gatehouse.url(&format!("/prod/items/{ms}")))
                .collect::<Vec<_>>(),
        );
        tasks.push(tokio::spawn(async move {
            for url in urls {
                assert_eq!(client.get(url).send().await.unwrap().status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let gatehouse = gatehouse.restart(&env);

    // The exact latencies, from the access log: the same timestamps the metrics are made of.
    let log = std::fs::read_to_string(gatehouse.dir().join("access.log")).unwrap();
    let mut exact: Vec<f64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["latencyMs"]
                .as_f64()
                .unwrap()
        })
        .collect();
    exact.sort_by(f64::total_cmp);
    assert_eq!(exact.len(), 240, "client-side count and logged count agree");

    let count = query(
        &gatehouse,
        &[
            "Count", "--api", "shop", "--stage", "prod", "--period", "3600", "--since", "2h",
        ],
    );
    assert_eq!(total(&count), 240.0, "{count}");
    for (stat, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        let answer = query(
            &gatehouse,
            &[
                "Latency",
                "--api",
                "shop",
                "--stage",
                "prod",
                "--route",
                "/items/{id}",
                "--method",
                "GET",
                "--stat",
                stat,
                "--period",
                "86400",
                "--since",
                "2h",
            ],
        );
        let points = answer["datapoints"].as_array().unwrap();
        // One day-long datapoint merges every minute of the run (unless it straddled midnight UTC).
        if points.len() != 1 {
            eprintln!("the run straddled a day boundary; percentile check skipped");
            continue;
        }
        let estimate = points[0]["value"].as_f64().unwrap();
        let truth = exact_quantile(&exact, q);
        // 1 % relative accuracy, plus the access log's rounding to whole microseconds.
        let bound = truth * 0.01 + 0.002;
        assert!(
            (estimate - truth).abs() <= bound,
            "{stat}: stored {estimate} ms, exact {truth} ms"
        );
    }
}
