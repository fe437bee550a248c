//! A real Prometheus server (Debian's `prometheus`, installed by `.ci/run`) scrapes the admin
//! API's `/metrics` with the bearer token and answers `histogram_quantile` over Gatehouse's
//! latency histogram; `promtool check metrics` accepts the exposition.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Gatehouse, TOKEN, start_upstream};

const CONFIG: &str = "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
admin:\n  bind: 127.0.0.1:0\n  token: ${GATEHOUSE_ADMIN_TOKEN}\n\
data_dir: data\n\
access_log:\n  destination: off\n\
apis:\n  - name: shop\n    stages:\n      - name: prod\n    routes:\n\
\x20     - method: GET\n        path: /slow/{ms}\n        integration:\n          type: http\n          url: ${UPSTREAM}/delay/{ms}\n";

fn tool(name: &str) -> Option<String> {
    let path = format!("/usr/bin/{name}");
    std::path::Path::new(&path).exists().then_some(path)
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn prometheus_value(client: &reqwest::Client, base: &str, query: &str) -> Option<f64> {
    let encoded: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let response = client
        .get(format!("{base}/api/v1/query?query={encoded}"))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_and_answers_histogram_quantile() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        eprintln!(
            "SKIPPED: prometheus/promtool not installed (.ci/run installs Debian's prometheus)"
        );
        return;
    };
    let upstream = start_upstream().await;
    let upstream_url = format!("http://{upstream}");
    let gatehouse = Gatehouse::start(CONFIG, &[("UPSTREAM", &upstream_url)]);
    let client = reqwest::Client::new();
    // 20 requests of ~30 ms: p99 falls in the (25 ms, 50 ms] bucket.
    for _ in 0..20 {
        let response = client
            .get(gatehouse.url("/prod/slow/30"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    // promtool accepts what a scrape returns, process metrics included.
    let exposition = client
        .get(gatehouse.admin_url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(exposition.contains(&format!("\n{name} ")), "{name} missing");
    }
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool complained:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // A real Prometheus server scrapes it with the token.
    let dir = tempfile::tempdir().unwrap();
    let admin = gatehouse.admin.unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: gatehouse\n    \
             authorization:\n      credentials: {TOKEN}\n    static_configs:\n      - targets: ['{admin}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _server = KillOnDrop(
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let total = loop {
        let value = prometheus_value(
            &client,
            &base,
            "sum(gatehouse_requests_total{api=\"shop\"})",
        )
        .await;
        if value == Some(20.0) || Instant::now() > deadline {
            break value;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        total,
        Some(20.0),
        "Prometheus never scraped the 20 requests"
    );
    let up = prometheus_value(&client, &base, "up{job=\"gatehouse\"}").await;
    assert_eq!(
        up,
        Some(1.0),
        "the scrape with the bearer token must succeed"
    );
    let p99 = prometheus_value(
        &client,
        &base,
        "histogram_quantile(0.99, sum by (le) (gatehouse_request_duration_seconds_bucket{route=\"/slow/{ms}\"}))",
    )
    .await
    .expect("histogram_quantile answers");
    assert!(
        p99 > 0.025 && p99 <= 0.05,
        "p99 of ~30 ms requests was {p99} s"
    );
}
