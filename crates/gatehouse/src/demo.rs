//! `gatehouse demo`: the gateway on a built-in config, in front of a built-in sample backend,
//! so that one command on a fresh machine shows a working gateway.
//!
//! The sample backend is a small real HTTP server on a free loopback port: a pet list, an echo
//! endpoint that shows what the gateway forwarded, a slow endpoint that shows the integration
//! timeout, and a WebSocket echo.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

use crate::serve::{self, Source};

const GRACE: Duration = Duration::from_secs(5);

pub(crate) async fn run(port: u16, admin_port: u16) -> anyhow::Result<()> {
    let backend = start_backend()
        .await
        .context("starting the sample backend")?;
    let token = random_token()?;
    // Metrics persist across demo runs, but outside the current directory.
    let data_dir = std::env::var_os("GATEHOUSE_DATA_DIR").map_or_else(
        || std::env::temp_dir().join("gatehouse-demo"),
        std::path::PathBuf::from,
    );
    let env = HashMap::from([
        ("GATEHOUSE_PORT".to_owned(), port.to_string()),
        ("GATEHOUSE_ADMIN_PORT".to_owned(), admin_port.to_string()),
        ("GATEHOUSE_ADMIN_TOKEN".to_owned(), token.clone()),
        ("DEMO_BACKEND_URL".to_owned(), format!("http://{backend}")),
        ("DEMO_WS_URL".to_owned(), format!("ws://{backend}")),
        ("DEMO_DATA_DIR".to_owned(), data_dir.display().to_string()),
    ]);
    let source = Source::Embedded {
        name: "demo.yaml",
        text: include_str!("demo.yaml").to_owned(),
        env,
    };
    let running = serve::start(source).await.map_err(|error| {
        error.context(format!(
            "the demo could not start (is port {port} or {admin_port} in use? try --port and --admin-port)"
        ))
    })?;
    let base = running
        .listeners
        .first()
        .map(|(_, addr, _)| format!("http://{addr}"))
        .unwrap_or_default();
    let admin = running
        .admin
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    eprintln!(
        "\nGatehouse demo is running (sample backend on {backend}).\n\n\
         Try:\n  \
         curl -i {base}/prod/petstore/pets\n  \
         curl -i {base}/prod/petstore/pets/2\n  \
         curl -i -X POST {base}/prod/petstore/pets -d '{{\"name\":\"Kit\"}}'\n  \
         curl -i {base}/dev/petstore/hello/world\n  \
         curl -i {base}/prod/petstore/echo/anything?q=1      # what the upstream received\n  \
         curl -i {base}/prod/petstore/slow?ms=3000          # 504 after the 2 s integration timeout\n  \
         curl -i {base}/prod/petstore/nope                  # 404 with a JSON error and request id\n  \
         curl -i -X DELETE {base}/prod/petstore/pets         # 405 with Allow\n  \
         websocat ws://{addr}/prod/petstore/chat             # WebSocket echo, if you have websocat\n\n\
         Admin API ({admin}), token for this run: {token}\n  \
         curl -H 'Authorization: Bearer {token}' {admin}/admin/status\n\n\
         Metrics: curl -H 'Authorization: Bearer {token}' {admin}/metrics\n  \
         or, after a minute: GATEHOUSE_ADMIN_URL={admin} GATEHOUSE_ADMIN_TOKEN={token} gatehouse metrics query Count\n  \
         (stored in {data})\n\n\
         Logs: GATEHOUSE_ADMIN_URL={admin} GATEHOUSE_ADMIN_TOKEN={token} gatehouse logs query 'stats count(*) by status, route'\n  \
         gatehouse logs tail 'access/*' --filter 'status >= 400'     (with the same two variables)\n  \
         gatehouse logs query 'fields step, status, url' --group execution/petstore/dev\n\n\
         Access log lines follow on stdout too, one JSON object per request. Ctrl-C stops.\n",
        addr = base.trim_start_matches("http://"),
        data = data_dir.display(),
    );
    running.wait_for_signals(GRACE).await
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the admin token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn start_backend() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service_fn(backend))
                    .await;
            });
        }
    });
    Ok(addr)
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn pets() -> serde_json::Value {
    json!([
        {"id": 1, "name": "Rex", "type": "dog"},
        {"id": 2, "name": "Tom", "type": "cat"},
        {"id": 3, "name": "Nemo", "type": "fish"},
    ])
}

async fn backend(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if path == "/ws" && fastwebsockets::upgrade::is_upgrade_request(&request) {
        return Ok(websocket_echo(&mut request));
    }
    let response = match (&method, path.as_str()) {
        (&Method::GET, "/pets") => json_response(StatusCode::OK, pets()),
        (&Method::POST, "/pets") => {
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let pet: serde_json::Value = serde_json::from_slice(&body).unwrap_or(json!({}));
            json_response(StatusCode::CREATED, json!({"id": 4, "created": pet}))
        }
        (&Method::GET, p) if p.starts_with("/pets/") => {
            let id = p.trim_start_matches("/pets/");
            match pets().as_array().and_then(|all| {
                all.iter()
                    .find(|pet| pet["id"].as_u64().is_some_and(|n| n.to_string() == id))
                    .cloned()
            }) {
                Some(pet) => json_response(StatusCode::OK, pet),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    json!({"message": format!("no pet {id}")}),
                ),
            }
        }
        (&Method::GET, "/slow") => {
            let ms = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1000)
                .min(30_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            json_response(StatusCode::OK, json!({"sleptMs": ms}))
        }
        (_, p) if p.starts_with("/echo") => {
            let headers: serde_json::Map<String, serde_json::Value> = request
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("<binary>"))))
                .collect();
            let query = request.uri().query().map(str::to_owned);
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            json_response(
                StatusCode::OK,
                json!({"method": method.as_str(), "path": p, "query": query, "headers": headers, "bodyBytes": body.len()}),
            )
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"message": "the sample backend has no such path"}),
        ),
    };
    Ok(response)
}

fn websocket_echo(request: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let Ok((response, upgrade)) = fastwebsockets::upgrade::upgrade(request) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"message": "bad WebSocket handshake"}),
        );
    };
    tokio::spawn(async move {
        let Ok(ws) = upgrade.await else { return };
        let mut ws = fastwebsockets::FragmentCollector::new(ws);
        while let Ok(frame) = ws.read_frame().await {
            let echo = match frame.opcode {
                fastwebsockets::OpCode::Close => break,
                fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary => frame,
                _ => continue,
            };
            if ws.write_frame(echo).await.is_err() {
                break;
            }
        }
    });
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, Full::new(Bytes::new()))
}
