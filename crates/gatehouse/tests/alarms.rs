//! Alarms end to end: an alarm from the config is evaluated by the running gateway, its state
//! change reaches a real webhook receiver, and `gatehouse alarms` shows state and history.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::convert::Infallible;
use std::time::Duration;

use support::{Gatehouse, TOKEN, run};
use tokio::sync::mpsc;

/// A webhook receiver on loopback that hands every POSTed body to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<serde_json::Value>) {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let secret = request.headers().get("x-hook-secret").cloned();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let mut value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        value["receivedSecret"] = serde_json::json!(
                            secret.and_then(|s| s.to_str().ok().map(str::to_owned))
                        );
                        let _ = tx.send(value);
                        Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::new(),
                        )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, rx)
}

fn config() -> String {
    "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
admin:\n  bind: 127.0.0.1:0\n  token: ${GATEHOUSE_ADMIN_TOKEN}\n\
data_dir: data\n\
access_log:\n  destination: off\n\
alarms:\n  - name: no-traffic\n    metric: Count\n    dimensions:\n      api: shop\n\
\x20   threshold: 1\n    comparison: LessThanThreshold\n    treat_missing_data: breaching\n\
\x20   webhook:\n      url: ${HOOK_URL}\n      headers:\n        x-hook-secret: ${HOOK_SECRET}\n\
apis:\n  - name: shop\n    stages:\n      - name: prod\n    routes:\n\
\x20     - method: GET\n        path: /ping\n        integration:\n          type: mock\n          body: pong\n"
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_fires_its_webhook_and_shows_in_the_cli() {
    let (url, mut hooks) = receiver().await;
    let env = [("HOOK_URL", url.as_str()), ("HOOK_SECRET", "s3cret")];
    let gatehouse = Gatehouse::start(&config(), &env);

    // No traffic in the last complete minute, missing data is breaching: ALARM at the first
    // evaluation, which runs when the gateway starts.
    let hook = tokio::time::timeout(Duration::from_secs(20), hooks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hook["alarm"], "no-traffic");
    assert_eq!(hook["oldState"], "INSUFFICIENT_DATA");
    assert_eq!(hook["newState"], "ALARM");
    assert_eq!(hook["metric"], "Count");
    assert_eq!(hook["dimensions"]["api"], "shop");
    assert_eq!(
        hook["receivedSecret"], "s3cret",
        "configured headers are sent"
    );

    let admin = gatehouse.admin_url("");
    let (code, stdout, stderr) = run(&["alarms", "--admin", &admin, "--token", TOKEN], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("no-traffic") && stdout.contains("ALARM"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(
        &[
            "alarms",
            "history",
            "no-traffic",
            "-o",
            "json",
            "--admin",
            &admin,
            "--token",
            TOKEN,
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let history: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(history["history"][0]["newState"], "ALARM");
    assert_eq!(history["history"][0]["data"]["threshold"], 1.0);

    // The metric series the alarm watches carries the state change as a mark.
    let (code, stdout, stderr) = run(
        &[
            "metrics", "query", "Count", "--api", "shop", "-o", "json", "--admin", &admin,
            "--token", TOKEN,
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let series: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(series["alarmChanges"][0]["alarm"], "no-traffic", "{series}");
    assert_eq!(series["alarmChanges"][0]["newState"], "ALARM");

    // The state survives a restart: no second INSUFFICIENT_DATA → ALARM notification.
    let gatehouse = gatehouse.restart(&env);
    let client = reqwest::Client::new();
    let states: serde_json::Value = client
        .get(gatehouse.admin_url("/admin/alarms"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(states["alarms"][0]["state"], "ALARM", "{states}");
    assert!(
        tokio::time::timeout(Duration::from_secs(2), hooks.recv())
            .await
            .is_err(),
        "no repeat notification"
    );
}
