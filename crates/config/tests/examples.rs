//! Every example in `examples/` loads with a fake environment and routes as its comments promise.

use std::path::{Path, PathBuf};

use gatehouse_config::{Integration, Loaded, Resolution, load_str};
use http::Method;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn fake_env(name: &str) -> Option<String> {
    match name {
        "GATEHOUSE_ADMIN_TOKEN" => Some("test-token-0123456789".to_owned()),
        "UPSTREAM_URL" => Some("http://127.0.0.1:3000".to_owned()),
        _ => None,
    }
}

fn load_example(name: &str) -> Loaded {
    let dir = examples_dir();
    let text = std::fs::read_to_string(dir.join(name)).expect("example is readable");
    match load_str(&text, name, &dir, &fake_env) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{name} failed to load:\n{errors}"),
    }
}

fn matched<'a>(loaded: &'a Loaded, method: Method, path: &'a str) -> &'a Integration {
    match loaded.table.resolve(None, &method, path) {
        Resolution::Matched { route, .. } => &route.integration,
        other => panic!("{method} {path}: expected a match, got {other:?}"),
    }
}

#[test]
fn quickstart_loads_and_routes() {
    let loaded = load_example("quickstart.yaml");
    assert_eq!(loaded.settings.listeners[0].bind.port(), 8080);
    assert_eq!(
        loaded.settings.admin.as_ref().map(|a| a.bind.port()),
        Some(9901)
    );
    assert_eq!(loaded.settings.data_dir, examples_dir().join("data"));
    assert_eq!(loaded.summary.routes, 8);
    let Integration::Mock(mock) = matched(&loaded, Method::GET, "/prod/quickstart/whoami") else {
        panic!("expected a mock");
    };
    assert!(
        mock.headers
            .iter()
            .any(|(name, value)| name == "x-stage-color" && value.as_static() == Some("blue"))
    );
    assert!(
        matches!(matched(&loaded, Method::DELETE, "/dev/quickstart/x/y"), Integration::Mock(m) if m.status == 404)
    );
}

#[test]
fn http_proxy_loads_and_routes_every_path() {
    let loaded = load_example("http-proxy.yaml");
    for path in ["/", "/a", "/a/b/c"] {
        let Integration::Http(http) = matched(&loaded, Method::POST, path) else {
            panic!("expected http for {path}");
        };
        assert!(http.url.to_string().starts_with("http://127.0.0.1:3000/"));
        assert_eq!(http.timeout.as_millis(), 29_000);
    }
}

#[test]
fn websocket_loads_with_its_limits() {
    let loaded = load_example("websocket.yaml");
    let Integration::WebSocket(ws) = matched(&loaded, Method::GET, "/prod/chat") else {
        panic!("expected a websocket integration");
    };
    assert_eq!(ws.url.as_static(), Some("ws://127.0.0.1:9001/chat"));
    assert_eq!(ws.max_frame_bytes, 1_048_576);
    assert_eq!(ws.max_message_bytes, 4_194_304);
    assert_eq!(ws.idle_timeout.as_secs(), 600);
    assert_eq!(ws.max_lifetime.as_secs(), 7_200);
    assert!(matches!(
        matched(&loaded, Method::GET, "/prod/status"),
        Integration::Http(_)
    ));
}

#[test]
fn examples_need_the_admin_token() {
    let dir = examples_dir();
    let text = std::fs::read_to_string(dir.join("quickstart.yaml")).expect("readable");
    let Err(errors) = load_str(&text, "quickstart.yaml", &dir, &|_| None) else {
        panic!("expected an error without GATEHOUSE_ADMIN_TOKEN");
    };
    assert!(
        errors
            .to_string()
            .contains("admin.token: environment variable 'GATEHOUSE_ADMIN_TOKEN' is not set")
    );
}
