//! Alarms end to end: an alarm from the config is evaluated by the running gateway, its state
//! change reaches a real webhook receiver, and `gatehouse alarms` shows state and history.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::time::Duration;

use support::{Gatehouse, TOKEN, run, webhook_receiver};

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
    let (url, mut hooks) = webhook_receiver().await;
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
