//! `gatehouse demo` works on a fresh machine: it starts, proxies to its sample backend, answers
//! mock routes, relays a WebSocket, and stops on SIGTERM.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_sample_api() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "--log-format",
            "json",
            "demo",
            "--port",
            "0",
            "--admin-port",
            "0",
        ])
        .env("GATEHOUSE_DATA_DIR", data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut addr = None;
    let mut banner = String::new();
    while addr.is_none() || !banner.contains("Ctrl-C") {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("demo output");
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
            if value["message"] == "listening" {
                addr = value["addr"].as_str().map(str::to_owned);
            }
        } else {
            banner.push_str(&line);
            banner.push('\n');
        }
    }
    let base = format!("http://{}", addr.unwrap());
    assert!(banner.contains("/prod/petstore/pets"), "{banner}");

    let client = reqwest::Client::new();
    let pets: serde_json::Value = client
        .get(format!("{base}/prod/petstore/pets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pets[0]["name"], "Rex");
    let hello = client
        .get(format!("{base}/dev/petstore/hello/world"))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), 200);
    let hello: serde_json::Value = hello.json().await.unwrap();
    assert_eq!(hello["hello"], "world");
    let missing = client
        .get(format!("{base}/prod/petstore/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));

    let ws_url = format!("{}/prod/petstore/chat", base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text("ping me"))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "ping me");
    ws.close(None).await.unwrap();

    let status = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "demo did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success());
    assert!(
        data.path().join("gatehouse.db").exists(),
        "the demo keeps its metrics in GATEHOUSE_DATA_DIR"
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let access: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(access.len(), 4, "{stdout}");
    let ws_line = access
        .iter()
        .find(|l| l["kind"] == "websocket")
        .expect("websocket record");
    assert_eq!(ws_line["status"], 101);
    assert_eq!(ws_line["websocket"]["messagesIn"], 1);
    assert_eq!(ws_line["websocket"]["messagesOut"], 1);
}
