//! Alarms through the admin API and the CLI, end to end on the real binary: created alarms are
//! evaluated at once and notify a real webhook receiver, survive a restart, and stop when
//! deleted; config file alarms are read-only and shadow API alarms of the same name.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::time::Duration;

use gatehouse_test_support::{eventually, free_port};
use serde_json::{Value, json};
use support::{Gatehouse, TOKEN, run, webhook_receiver};

const WAIT: Duration = Duration::from_secs(20);

fn config(alarms: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
admin:\n  bind: 127.0.0.1:0\n  token: ${{GATEHOUSE_ADMIN_TOKEN}}\n\
data_dir: data\n\
access_log:\n  destination: off\n\
{alarms}\
apis:\n  - name: shop\n    stages:\n      - name: prod\n    routes:\n\
\x20     - method: GET\n        path: /ping\n        integration:\n          type: mock\n          body: pong\n"
    )
}

/// A file alarm that never notifies: all traffic, missing data is fine.
fn file_alarm(name: &str) -> String {
    format!(
        "  - name: {name}\n    metric: Count\n    threshold: 1000000\n    comparison: GreaterThanThreshold\n    treat_missing_data: notBreaching\n"
    )
}

struct Admin {
    client: reqwest::Client,
    base: String,
}

impl Admin {
    fn new(gatehouse: &Gatehouse) -> Self {
        Admin {
            client: reqwest::Client::new(),
            base: gatehouse.admin_url(""),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    async fn prometheus(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    }
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|alarm| alarm["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_alarms_are_evaluated_at_once_survive_a_restart_and_stop_when_deleted() {
    let (url, mut hooks) = webhook_receiver().await;
    let gatehouse = Gatehouse::start(&config(""), &[]);
    let admin = Admin::new(&gatehouse);

    // No traffic and missing data is breaching: ALARM at the evaluation the creation triggers.
    let quiet = json!({
        "metric": "Count",
        "dimensions": {"api": "shop"},
        "threshold": 1,
        "comparison": "LessThanThreshold",
        "treat_missing_data": "breaching",
        "webhook": {"url": url, "headers": {"x-hook-secret": "s3cret"}},
    });
    let (status, created) = admin.put("/admin/alarms/quiet", quiet.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["source"], "api");
    assert_eq!(
        created["definition"]["webhook"]["headers"]["x-hook-secret"], "<redacted>",
        "header values are not shown"
    );
    let hook = tokio::time::timeout(WAIT, hooks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&hook["alarm"], &hook["oldState"], &hook["newState"]),
        (
            &json!("quiet"),
            &json!("INSUFFICIENT_DATA"),
            &json!("ALARM")
        )
    );
    assert_eq!(hook["receivedSecret"], "s3cret");
    eventually(WAIT, || async {
        admin
            .prometheus()
            .await
            .contains(r#"gatehouse_alarm_notifications_total{outcome="delivered"} 1"#)
    })
    .await;
    let (_, status) = admin.get("/admin/status").await;
    assert_eq!(
        status["alarms"]["notifications"]["delivered"], 1,
        "{status}"
    );

    // Invalid bodies: the config file's rules and messages, field by field; nothing changes.
    let (status, refused) = admin
        .put(
            "/admin/alarms/quiet",
            json!({"metric": "Count", "threshold": 1, "comparison": "LessThanThreshold", "period_seconds": 90}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["errors"],
        json!(["period_seconds: must be a positive multiple of 60"])
    );
    let (status, refused) = admin
        .put(
            "/admin/alarms/quiet",
            json!({"metric": "Count", "treshold": 1}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        refused["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("treshold: unknown field `treshold`"),
        "{refused}"
    );

    // Replacing keeps the creation time and the state.
    let mut replaced = quiet.clone();
    replaced["threshold"] = json!(2);
    let (status, body) = admin.put("/admin/alarms/quiet", replaced).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["createdAt"], created["createdAt"]);
    let (_, got) = admin.get("/admin/alarms/quiet").await;
    assert_eq!(got["definition"]["threshold"], 2.0);
    assert_eq!(got["state"], "ALARM");

    // The CLI: a YAML file with ${ENV} from the CLI's environment, checked locally first.
    let hook_down = format!("http://127.0.0.1:{}/hook", free_port());
    let file = gatehouse.dir().join("alarm.yaml");
    std::fs::write(
        &file,
        "metric: Count\ndimensions: { api: shop }\nthreshold: 1\ncomparison: LessThanThreshold\n\
         treat_missing_data: breaching\nwebhook:\n  url: ${HOOK_DOWN}\n",
    )
    .unwrap();
    let admin_url = gatehouse.admin_url("");
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--admin", &admin_url, "--token", TOKEN]);
        run(&all, &[("HOOK_DOWN", &hook_down)])
    };
    let (code, stdout, stderr) = cli(&[
        "alarms",
        "put",
        "unreachable",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("created alarm 'unreachable'"), "{stdout}");
    let (code, stdout, stderr) = cli(&["alarms", "get", "unreachable"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("metric: Count"), "{stdout}");
    assert!(stdout.contains(&hook_down), "{stdout}");
    let bad = gatehouse.dir().join("bad.yaml");
    std::fs::write(&bad, "metric: Count\nthreshold: 1\ncomparison: Below\n").unwrap();
    let (code, _, stderr) = cli(&["alarms", "put", "bad", "--file", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("bad.yaml:3:13: comparison: unknown variant `Below`"),
        "{stderr}"
    );
    assert_eq!(
        admin.get("/admin/alarms/bad").await.0,
        404,
        "nothing was sent"
    );

    // The unreachable webhook is given up on after its retries, and counted.
    eventually(WAIT, || async {
        admin
            .prometheus()
            .await
            .contains(r#"gatehouse_alarm_notifications_total{outcome="failed"} 1"#)
    })
    .await;

    // A restart: both alarms are read back from the store, restored and evaluated again.
    let gatehouse = gatehouse.restart(&[]);
    let admin = Admin::new(&gatehouse);
    let (_, list) = admin.get("/admin/alarms").await;
    assert_eq!(names(&list, "alarms"), ["quiet", "unreachable"], "{list}");
    assert_eq!(list["alarms"][0]["state"], "ALARM");
    assert_eq!(list["alarms"][0]["source"], "api");
    eventually(WAIT, || async {
        let (_, list) = admin.get("/admin/alarms").await;
        list["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["evaluatedAt"].is_string())
    })
    .await;

    // Deleted: gone from the list and the API, its history kept.
    assert_eq!(admin.delete("/admin/alarms/quiet").await.0, 204);
    assert_eq!(admin.get("/admin/alarms/quiet").await.0, 404);
    assert_eq!(admin.delete("/admin/alarms/quiet").await.0, 404);
    let (_, list) = admin.get("/admin/alarms").await;
    assert_eq!(names(&list, "alarms"), ["unreachable"]);
    let (_, history) = admin.get("/admin/alarms/history?alarm=quiet").await;
    assert_eq!(history["history"][0]["newState"], "ALARM");
    let (code, stdout, stderr) = {
        let admin_url = gatehouse.admin_url("");
        run(
            &[
                "alarms",
                "delete",
                "unreachable",
                "--admin",
                &admin_url,
                "--token",
                TOKEN,
            ],
            &[],
        )
    };
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("deleted alarm 'unreachable'"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_alarms_are_read_only_and_shadow_api_alarms_of_the_same_name() {
    let gatehouse = Gatehouse::start(
        &config(&format!("alarms:\n{}", file_alarm("from-file"))),
        &[],
    );
    let admin = Admin::new(&gatehouse);
    let body = json!({"metric": "Count", "threshold": 5, "comparison": "GreaterThanThreshold"});

    let (status, refused) = admin.put("/admin/alarms/from-file", body.clone()).await;
    assert_eq!(status, 409);
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("defined in the config file") && message.contains("gateway.yaml"),
        "{message}"
    );
    assert_eq!(admin.delete("/admin/alarms/from-file").await.0, 409);
    let (status, got) = admin.get("/admin/alarms/from-file").await;
    assert_eq!((status, &got["source"]), (200, &json!("config")));

    // An API alarm, then a reload whose file defines the same name: the file's wins.
    assert_eq!(admin.put("/admin/alarms/dup", body.clone()).await.0, 201);
    gatehouse.write_config(&config(&format!(
        "alarms:\n{}{}",
        file_alarm("from-file"),
        file_alarm("dup")
    )));
    let (status, reloaded) = admin
        .send(reqwest::Method::POST, "/admin/reload", None)
        .await;
    assert_eq!(status, 200, "{reloaded}");
    let (_, list) = admin.get("/admin/alarms").await;
    assert_eq!(names(&list, "alarms"), ["from-file", "dup"]);
    assert_eq!(list["alarms"][1]["source"], "config");
    assert_eq!(names(&list, "shadowed"), ["dup"]);
    let (_, got) = admin.get("/admin/alarms/dup").await;
    assert_eq!(got["source"], "config");
    assert!(got["shadows"].is_string(), "{got}");
    assert_eq!(admin.put("/admin/alarms/dup", body).await.0, 409);
    let admin_url = gatehouse.admin_url("");
    let (code, stdout, stderr) = run(&["alarms", "--admin", &admin_url, "--token", TOKEN], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("SHADOWED"), "{stdout}");

    // DELETE removes the shadowed API alarm; the file's stays, and is then read-only.
    assert_eq!(admin.delete("/admin/alarms/dup").await.0, 204);
    let (_, list) = admin.get("/admin/alarms").await;
    assert_eq!(names(&list, "shadowed"), Vec::<String>::new());
    assert_eq!(names(&list, "alarms"), ["from-file", "dup"]);
    assert_eq!(admin.delete("/admin/alarms/dup").await.0, 409);
}
