//! A small client for the admin API, used by `gatehouse reload`, `status`, `metrics`, `alarms`
//! and `logs`.

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub(crate) async fn call(
    method: Method,
    base: &str,
    path: &str,
    token: &str,
) -> anyhow::Result<(u16, Value)> {
    call_with_body(method, base, path, token, None).await
}

/// Like [`call`], with an optional JSON body.
pub(crate) async fn call_with_body(
    method: Method,
    base: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let response = send(method, base, path, token, body).await?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the admin API's answer")?
        .to_bytes();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if status == 401 {
        bail!("the admin API refused the token (set --token or GATEHOUSE_ADMIN_TOKEN)");
    }
    Ok((status, value))
}

/// A `GET` whose answer is read as it arrives (a server-sent-event stream); any status but 200
/// is an error carrying the API's message.
pub(crate) async fn stream(
    base: &str,
    path: &str,
    token: &str,
) -> anyhow::Result<hyper::body::Incoming> {
    let response = send(Method::GET, base, path, token, None).await?;
    let status = response.status().as_u16();
    if status == 200 {
        return Ok(response.into_body());
    }
    if status == 401 {
        bail!("the admin API refused the token (set --token or GATEHOUSE_ADMIN_TOKEN)");
    }
    let bytes = response.into_body().collect().await?.to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match body["message"].as_str() {
        Some(message) => bail!("{message}"),
        None => bail!("the admin API answered HTTP {status}"),
    }
}

async fn send(
    method: Method,
    base: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut request = Request::builder()
        .method(method)
        .uri(&url)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
    let request = request
        .body(Full::new(body))
        .with_context(|| format!("invalid admin URL '{base}'"))?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    client.request(request).await.with_context(|| {
        format!("cannot reach the admin API at {base} (is the gateway running? see --admin)")
    })
}

pub(crate) async fn reload(base: &str, token: &str) -> anyhow::Result<()> {
    let (status, body) = call(Method::POST, base, "/admin/reload", token).await?;
    if status == 200 {
        let config = &body["config"];
        println!(
            "reloaded: {} apis, {} stages, {} routes",
            config["apis"], config["stages"], config["routes"]
        );
        return Ok(());
    }
    if let Some(errors) = body["errors"].as_array() {
        for error in errors {
            eprintln!("{}", error.as_str().unwrap_or_default());
        }
    }
    bail!("reload rejected (HTTP {status}); the gateway keeps serving its previous config")
}

pub(crate) async fn status(base: &str, token: &str) -> anyhow::Result<()> {
    let (status, body) = call(Method::GET, base, "/admin/status", token).await?;
    if status != 200 {
        bail!("the admin API answered HTTP {status}: {body}");
    }
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}
