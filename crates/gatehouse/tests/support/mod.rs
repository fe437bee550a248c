//! Starts the real `gatehouse` binary on loopback and finds its ports from its JSON logs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-admin-token-0123456789";

pub struct Gatehouse {
    child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    logs: mpsc::Receiver<String>,
}

impl Gatehouse {
    /// Writes `config` to a temp dir and runs `gatehouse serve` on it with `env`.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gateway.yaml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn(dir, path, env)
    }

    /// Stops the gateway with SIGTERM (so it drains and flushes) and starts it again on the same
    /// directory and config.
    pub fn restart(self, env: &[(&str, &str)]) -> Self {
        let mut this = self;
        this.signal("TERM");
        let status = this.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "{status:?}");
        let dir = std::mem::replace(&mut this.dir, tempfile::tempdir().expect("tempdir"));
        let config = this.config.clone();
        drop(this);
        Self::spawn(dir, config, env)
    }

    fn spawn(dir: tempfile::TempDir, path: PathBuf, env: &[(&str, &str)]) -> Self {
        let config = std::fs::read_to_string(&path).expect("read config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&path)
            .args(["--shutdown-grace", "10s"])
            .env("GATEHOUSE_ADMIN_TOKEN", TOKEN)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn gatehouse");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut gatehouse = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: None,
            dir,
            config: path,
            logs: rx,
        };
        let wants_admin = config.contains("admin:");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while gatehouse.addr.port() == 0 || (wants_admin && gatehouse.admin.is_none()) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = gatehouse.logs.recv_timeout(remaining) else {
                panic!(
                    "gatehouse did not report its addresses in time; its stderr:\n{}",
                    seen.join("\n")
                )
            };
            seen.push(line.clone());
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let addr = value["addr"].as_str().and_then(|a| a.parse().ok());
            match value["message"].as_str() {
                Some("listening") => gatehouse.addr = addr.expect("listener addr"),
                Some("admin API listening") => gatehouse.admin = addr,
                _ => {}
            }
        }
        gatehouse
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.expect("admin listener"))
    }

    pub fn write_config(&self, config: &str) {
        std::fs::write(&self.config, config).expect("rewrite config");
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for a log line whose message contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(remaining) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within {timeout:?}"),
            }
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with arguments, returning (exit code, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command.args(args).env_remove("GATEHOUSE_ADMIN_TOKEN");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run gatehouse");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A tiny upstream: `/delay/{ms}` sleeps then answers `slept {ms}`, anything else answers `ok`.
pub async fn start_upstream() -> SocketAddr {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service =
                    service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                        let path = request.uri().path().to_owned();
                        let body = match path
                            .strip_prefix("/delay/")
                            .and_then(|ms| ms.parse::<u64>().ok())
                        {
                            Some(ms) => {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                                format!("slept {ms}")
                            }
                            None => "ok".to_owned(),
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A webhook receiver on loopback that hands every POSTed body to the test.
/// The `x-hook-secret` header it received is added to each body as `receivedSecret`.
pub async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
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
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::new()),
                        ))
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

/// A protobuf receiver on loopback at `path` (an OTLP collector, say): every request must be a
/// `POST` of `application/x-protobuf`; it is answered 200 and handed over as headers and body.
pub async fn protobuf_receiver(
    path: &'static str,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(http::HeaderMap, bytes::Bytes)>,
) {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!("http://{}{path}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
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
                        assert_eq!(request.uri().path(), path);
                        assert_eq!(request.headers()["content-type"], "application/x-protobuf");
                        let headers = request.headers().clone();
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .expect("request body")
                            .to_bytes();
                        let _ = tx.send((headers, body));
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::new()),
                        ))
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
