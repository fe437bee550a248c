//! `gatehouse serve` end to end: hot reload under load, rejected reloads, draining on SIGTERM,
//! the admin token, and the access log file.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::{Gatehouse, TOKEN, start_upstream};

fn config(version: u32, with_slow_route: bool) -> String {
    let slow = if with_slow_route {
        "      - method: GET\n        path: /slow/{ms}\n        integration:\n          type: http\n          url: ${UPSTREAM}/delay/{ms}\n"
    } else {
        ""
    };
    format!(
        "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
         admin:\n  bind: 127.0.0.1:0\n  token: ${{GATEHOUSE_ADMIN_TOKEN}}\n\
         access_log:\n  destination: file\n  path: access.log\n\
         apis:\n  - name: app\n    stages:\n      - name: prod\n        path_prefix: \"\"\n    routes:\n\
         \x20     - method: GET\n        path: /version\n        integration:\n          type: mock\n          body: 'v{version}'\n\
         \x20     - method: GET\n        path: /up/{{proxy+}}\n        integration:\n          type: http\n          url: ${{UPSTREAM}}/{{proxy}}\n\
         {slow}"
    )
}

async fn version(client: &reqwest::Client, gatehouse: &Gatehouse) -> String {
    client
        .get(gatehouse.url("/version"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn reload_via_admin(client: &reqwest::Client, gatehouse: &Gatehouse) -> reqwest::Response {
    client
        .post(gatehouse.admin_url("/admin/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

async fn eventually_version(client: &reqwest::Client, gatehouse: &Gatehouse, expected: &str) {
    for _ in 0..200 {
        if version(client, gatehouse).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("version never became {expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_steady_load_fail_no_request() {
    let upstream = start_upstream().await;
    let upstream_url = format!("http://{upstream}");
    let gatehouse = Gatehouse::start(&config(1, false), &[("UPSTREAM", &upstream_url)]);
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        let urls = [gatehouse.url("/version"), gatehouse.url("/up/anything")];
        load.push(tokio::spawn(async move {
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let response = client.get(&urls[i % 2]).send().await;
                let good = match response {
                    Ok(r) => r.status() == 200 && r.text().await.is_ok(),
                    Err(_) => false,
                };
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for round in 2..22u32 {
        gatehouse.write_config(&config(round, false));
        if round % 2 == 0 {
            let response = reload_via_admin(&client, &gatehouse).await;
            assert_eq!(response.status(), 200, "{:?}", response.text().await);
        } else {
            gatehouse.signal("HUP");
            gatehouse.wait_for_log("config reloaded", Duration::from_secs(10));
        }
        eventually_version(&client, &gatehouse, &format!("v{round}")).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_request_finishes_on_the_table_it_started_with() {
    let upstream = start_upstream().await;
    let upstream_url = format!("http://{upstream}");
    let gatehouse = Gatehouse::start(&config(1, true), &[("UPSTREAM", &upstream_url)]);
    let client = reqwest::Client::new();
    let slow = tokio::spawn({
        let (client, url) = (client.clone(), gatehouse.url("/slow/600"));
        async move { client.get(url).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    gatehouse.write_config(&config(2, false));
    assert_eq!(reload_via_admin(&client, &gatehouse).await.status(), 200);
    // The route is gone for new requests …
    let gone = client.get(gatehouse.url("/slow/1")).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    // … but the request that started before the reload completes normally.
    let response = slow.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slept 600");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_refused_and_the_old_one_keeps_serving() {
    let upstream = start_upstream().await;
    let upstream_url = format!("http://{upstream}");
    let gatehouse = Gatehouse::start(&config(1, false), &[("UPSTREAM", &upstream_url)]);
    let client = reqwest::Client::new();
    let broken = config(2, false).replace("type: mock", "type: mock\n          bogus_field: 1");
    gatehouse.write_config(&broken);

    let response = reload_via_admin(&client, &gatehouse).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["errors"][0].as_str().unwrap();
    assert!(error.contains("gateway.yaml:"), "{error}");
    assert!(error.contains("bogus_field"), "{error}");
    assert_eq!(version(&client, &gatehouse).await, "v1");

    gatehouse.signal("HUP");
    gatehouse.wait_for_log("config reload rejected", Duration::from_secs(10));
    assert_eq!(version(&client, &gatehouse).await, "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_requires_the_token() {
    let gatehouse = Gatehouse::start(&config(1, false), &[("UPSTREAM", "http://127.0.0.1:9")]);
    let client = reqwest::Client::new();
    let denied = client
        .post(gatehouse.admin_url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let wrong = client
        .get(gatehouse.admin_url("/admin/status"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let status = client
        .get(gatehouse.admin_url("/admin/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    let body: serde_json::Value = status.json().await.unwrap();
    assert_eq!(body["config"]["apis"], 1);
    // The admin listener is separate from the data plane.
    let not_on_data_plane = client
        .get(gatehouse.url("/admin/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_on_data_plane.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_flushes_the_access_log() {
    let upstream = start_upstream().await;
    let upstream_url = format!("http://{upstream}");
    let mut gatehouse = Gatehouse::start(&config(1, true), &[("UPSTREAM", &upstream_url)]);
    let client = reqwest::Client::new();
    assert_eq!(version(&client, &gatehouse).await, "v1");
    let slow = tokio::spawn({
        let (client, url) = (client.clone(), gatehouse.url("/slow/800"));
        async move { client.get(url).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    gatehouse.signal("TERM");
    let response = slow.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slept 800");
    let status = tokio::task::block_in_place(|| gatehouse.wait_exit(Duration::from_secs(10)));
    assert!(status.success(), "{status:?}");
    // New connections are refused once it is gone.
    assert!(reqwest::get(gatehouse.url("/version")).await.is_err());

    let log = std::fs::read_to_string(gatehouse.dir().join("access.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    let slow_line = lines
        .iter()
        .find(|l| l["path"] == "/slow/800")
        .expect("slow request logged");
    assert_eq!(slow_line["status"], 200);
    assert_eq!(slow_line["route"], "/slow/{ms}");
    assert!(slow_line["latencyMs"].as_f64().unwrap() >= 800.0);
    for field in [
        "requestId",
        "time",
        "ip",
        "method",
        "path",
        "route",
        "api",
        "stage",
        "status",
        "bytesOut",
        "latencyMs",
        "integrationLatencyMs",
    ] {
        assert!(slow_line.get(field).is_some(), "missing {field}");
    }
}
