use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{api_with_route, errors, loaded};
use crate::{AccessLogSettings, Integration};

const MOCK: &str = "      - path: /x\n        integration: { type: mock }\n";

fn http_route(extra: &str) -> String {
    api_with_route(&format!(
        "      - path: /pets/{{id}}\n        integration:\n          type: http\n          url: '${{stageVariables.backend}}/pets/{{id}}'\n{extra}"
    ))
}

/// Each case: a name, the YAML, the expected errors (`line:col: path: message`).
#[test]
fn validation_rule_table() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("empty listeners", format!("listeners: []\n{}", api_with_route(MOCK)),
            vec!["1:12: listeners: at least one listener is required; leave `listeners` out for the default 127.0.0.1:8080"]),
        ("bad bind", "listeners:\n  - { name: a, bind: 'localhost:80' }\n".to_owned(),
            vec!["2:22: listeners[0].bind: invalid socket address 'localhost:80': expected ip:port such as 127.0.0.1:8080 or [::1]:8080"]),
        ("duplicate listener name and bind",
            "listeners:\n  - { name: a, bind: '127.0.0.1:1' }\n  - { name: a, bind: '127.0.0.1:1' }\n".to_owned(),
            vec![
                "3:13: listeners[1].name: listener name 'a' is already used by listeners[0]",
                "3:22: listeners[1].bind: address 127.0.0.1:1 is already used by listeners[0]",
            ]),
        ("admin on a listener's address",
            "listeners:\n  - { name: a, bind: '127.0.0.1:9901' }\nadmin: { token: '${GATEHOUSE_ADMIN_TOKEN}' }\n".to_owned(),
            vec!["3:8: admin.bind: address 127.0.0.1:9901 is already used by listeners[0]"]),
        ("missing tls files",
            "listeners:\n  - name: a\n    bind: 127.0.0.1:1\n    tls: { cert_file: c.pem, key_file: /nonexistent/k.pem }\n".to_owned(),
            vec![
                "4:23: listeners[0].tls.cert_file: cannot read '/etc/gatehouse/c.pem': No such file or directory (os error 2)",
                "4:40: listeners[0].tls.key_file: cannot read '/nonexistent/k.pem': No such file or directory (os error 2)",
            ]),
        ("zero limits", "limits: { max_payload_bytes: 0, idle_timeout_ms: 0 }\n".to_owned(),
            vec!["1:30: limits.max_payload_bytes: must be at least 1", "1:50: limits.idle_timeout_ms: must be at least 1"]),
        ("access log file without path", "access_log: { destination: file }\n".to_owned(),
            vec!["1:13: access_log.path: is required when destination is file"]),
        ("access log path without file", "access_log: { path: x.log }\n".to_owned(),
            vec!["1:21: access_log.path: is only used when destination is file; remove it or set destination: file"]),
        ("bad api name, version and base path",
            "apis:\n  - name: 'pet store'\n    version: ''\n    base_path: pets\n    stages: [{ name: prod }]\n    routes: []\n".to_owned(),
            vec![
                "2:11: apis[0].name: must be non-empty and use only letters, digits, '-' and '_'",
                "3:14: apis[0].version: must not be empty",
                "4:16: apis[0].base_path: base_path must start with '/', got 'pets'",
                "6:13: apis[0].routes: at least one route is required",
            ]),
        ("duplicate api version and stage across versions",
            format!("{}  - name: demo\n    base_path: /v2\n    stages: [{{ name: prod }}]\n    routes:\n{MOCK}", api_with_route(MOCK)),
            vec![
                "9:5: apis[1].version: api 'demo' version 'v1' is already defined at apis[0]",
                "11:22: apis[1].stages[0].name: stage 'prod' is already defined for api 'demo' at apis[0] (stage names are unique across versions)",
            ]),
        ("no stages and bad host",
            format!("apis:\n  - name: a\n    host: 'api.example.com:443'\n    stages: []\n    routes:\n{MOCK}"),
            vec![
                "3:11: apis[0].host: must be a bare host name such as api.example.com (no scheme, port or path), got 'api.example.com:443'",
                "4:13: apis[0].stages: at least one stage is required",
            ]),
        ("bad stage variable name and prefix",
            format!("apis:\n  - name: a\n    stages:\n      - {{ name: p, path_prefix: x, variables: {{ 'a-b': 1 }} }}\n    routes:\n{MOCK}"),
            vec![
                "4:33: apis[0].stages[0].path_prefix: path_prefix must start with '/', got 'x'",
                "4:49: apis[0].stages[0].variables.a-b: stage variable names use only letters, digits and '_'",
            ]),
        ("route path rules",
            api_with_route(concat!(
                "      - { path: pets, integration: { type: mock } }\n",
                "      - { path: '/a/{x}.json', integration: { type: mock } }\n",
                "      - { path: '/{p+}/x', integration: { type: mock } }\n",
                "      - { path: '/{a}/{a}', integration: { type: mock } }\n",
            )),
            vec![
                "7:17: apis[0].routes[0].path: must start with '/', got 'pets'",
                "8:17: apis[0].routes[1].path: segment '{x}.json': a parameter must be a whole segment such as '{id}'",
                "9:17: apis[0].routes[2].path: segment '{p+}': a greedy parameter can only be the last segment",
                "10:17: apis[0].routes[3].path: parameter 'a' appears twice",
            ]),
        ("unknown stage variable names the stage",
            api_with_route("      - path: /x\n        integration: { type: http, url: '${stageVariables.host}/x' }\n"),
            vec!["8:41: apis[0].routes[0].integration.url: unknown stage variable 'host' (stage 'prod' defines: backend, env)"]),
        ("url must be absolute http",
            api_with_route("      - path: /x\n        integration: { type: http, url: 'ftp://h/x' }\n"),
            vec!["8:41: apis[0].routes[0].integration.url: must be an absolute URL starting with http:// or https://, got 'ftp://h/x' (stage 'prod')"]),
        ("url host must be literal",
            api_with_route("      - path: /{h}\n        integration: { type: http, url: 'http://{h}/x' }\n"),
            vec!["8:41: apis[0].routes[0].integration.url: the scheme and host of 'http://{h}/x' must be literal text or stage variables, not path parameters or context values (stage 'prod')"]),
        ("http timeout and headers",
            http_route("          timeout_ms: 10\n          request_headers: { set: { 'bad header': x, X-A: 1, x-a: 2 }, remove: ['a b'] }\n"),
            vec![
                "11:23: apis[0].routes[0].integration.timeout_ms: must be at least 50 (milliseconds)",
                "12:37: apis[0].routes[0].integration.request_headers.set.bad header: invalid header name 'bad header'",
                "12:62: apis[0].routes[0].integration.request_headers.set.x-a: header 'x-a' is set twice (names are case-insensitive)",
                "12:81: apis[0].routes[0].integration.request_headers.remove[0]: invalid header name 'a b'",
            ]),
        ("mock status",
            api_with_route("      - path: /x\n        integration: { type: mock, status: 700 }\n"),
            vec![
                "8:44: apis[0].routes[0].integration.status: must be an HTTP status code from 100 to 599",
            ]),
        ("invalid header value",
            api_with_route("      - path: /x\n        integration: { type: mock, headers: { x-a: \"a\\nb\" } }\n"),
            vec!["8:52: apis[0].routes[0].integration.headers.x-a: invalid header value 'a\nb' (stage 'prod')"]),
        ("websocket rules",
            api_with_route("      - path: /ws\n        method: POST\n        integration: { type: websocket, url: 'ws://h/ws' }\n      - path: /ws2\n        integration: { type: websocket, url: 'http://h/ws', max_frame_bytes: 10, max_message_bytes: 5 }\n"),
            vec![
                "8:17: apis[0].routes[0].method: a websocket route must be GET or ANY (the upgrade is a GET request)",
                "11:101: apis[0].routes[1].integration.max_message_bytes: must be at least max_frame_bytes (10)",
            ]),
    ];
    let mut mismatches = Vec::new();
    for (name, input, expected) in cases {
        let got = errors(&input);
        if got != expected {
            mismatches.push(format!(
                "case: {name}\n  expected: {expected:#?}\n  got: {got:#?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn defaults_apply_when_sections_are_omitted() {
    let loaded = loaded(&api_with_route(MOCK));
    let settings = &loaded.settings;
    assert_eq!(settings.listeners.len(), 1);
    assert_eq!(settings.listeners[0].name, "default");
    assert_eq!(
        settings.listeners[0].bind,
        "127.0.0.1:8080".parse::<SocketAddr>().expect("addr")
    );
    assert!(settings.listeners[0].http2);
    assert_eq!(settings.limits.max_payload_bytes, 10_485_760);
    assert_eq!(settings.limits.max_header_bytes, 16_384);
    assert_eq!(settings.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(settings.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(settings.limits.max_connections, 10_000);
    assert_eq!(settings.admin, None);
    assert_eq!(settings.data_dir, PathBuf::from("/etc/gatehouse/data"));
    assert_eq!(settings.access_log, AccessLogSettings::default());
    assert!(settings.access_log.destinations.store);
    assert_eq!(settings.telemetry.bus_capacity, 65_536);
    let route = loaded.table.routes().next().expect("one route");
    let Integration::Mock(mock) = &route.integration else {
        panic!("expected a mock");
    };
    assert_eq!(mock.status, http::StatusCode::OK);
    assert_eq!(mock.body.as_static(), Some(""));
    assert_eq!(&*route.api_version, "v1");
    assert_eq!(&*route.method_label, "ANY");
}

#[test]
fn typed_values_from_environment_and_paths_from_config_dir() {
    let yaml = format!(
        "listeners:\n  - name: public\n    bind: '[::1]:${{PORT}}'\n    http2: ${{H2:-false}}\nadmin:\n  token: ${{GATEHOUSE_ADMIN_TOKEN}}\ndata_dir: /var/lib/gh\naccess_log: {{ destination: file, path: logs/a.log }}\nlimits:\n  max_connections: ${{MAXC:-12}}\n{}",
        api_with_route(MOCK)
    );
    let settings = loaded(&yaml).settings;
    assert_eq!(
        settings.listeners[0].bind,
        "[::1]:8181".parse::<SocketAddr>().expect("addr")
    );
    assert!(!settings.listeners[0].http2);
    assert_eq!(settings.limits.max_connections, 12);
    let admin = settings.admin.expect("admin");
    assert_eq!(
        admin.bind,
        "127.0.0.1:9901".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(admin.token.expose(), "0123456789abcdef0123");
    assert_eq!(format!("{:?}", admin.token), "<redacted>");
    assert_eq!(settings.data_dir, PathBuf::from("/var/lib/gh"));
    let files = &settings.access_log.destinations.files;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, PathBuf::from("/etc/gatehouse/logs/a.log"));
}

#[test]
fn tls_files_are_resolved_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cert.pem"), "x").expect("write");
    std::fs::write(dir.path().join("key.pem"), "x").expect("write");
    let yaml = "listeners:\n  - name: tls\n    bind: 127.0.0.1:8443\n    tls: { cert_file: cert.pem, key_file: ./key.pem }\n";
    let loaded = crate::load_str(yaml, "g.yaml", dir.path(), &super::test_env).expect("loads");
    let tls = loaded.settings.listeners[0].tls.clone().expect("tls");
    assert_eq!(tls.cert_file, dir.path().join("cert.pem"));
    assert_eq!(tls.key_file, dir.path().join("key.pem"));
}

#[test]
fn http_integration_is_compiled_per_stage() {
    let yaml = "apis:
  - name: pets
    base_path: /petstore
    stages:
      - { name: dev, variables: { backend: 'http://dev:1', env: dev } }
      - { name: prod, variables: { backend: 'https://prod:2', env: prod } }
    routes:
      - method: GET
        path: /pets/{id}
        integration:
          type: http
          url: '${stageVariables.backend}/pets/{id}'
          http2: true
          request_headers: { set: { x-env: '${stageVariables.env}', x-id: '{id}' }, remove: [X-Internal] }
          response_headers: { remove: [server] }
";
    let loaded = loaded(yaml);
    let urls: Vec<(String, String)> = loaded
        .table
        .routes()
        .map(|r| match &r.integration {
            Integration::Http(http) => (r.stage.to_string(), http.url.to_string()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        urls,
        vec![
            ("dev".to_owned(), "http://dev:1/pets/{id}".to_owned()),
            ("prod".to_owned(), "https://prod:2/pets/{id}".to_owned()),
        ]
    );
    let route = loaded.table.routes().nth(1).expect("prod route");
    let Integration::Http(http) = &route.integration else {
        panic!("expected http");
    };
    assert!(http.http2);
    assert_eq!(http.timeout, Duration::from_millis(29_000));
    assert_eq!(http.request_headers.set[0].0, "x-env");
    assert_eq!(http.request_headers.set[0].1.as_static(), Some("prod"));
    assert!(!http.request_headers.set[1].1.is_static());
    assert_eq!(
        http.request_headers.remove,
        vec![http::HeaderName::from_static("x-internal")]
    );
    assert_eq!(&*route.full_path, "/prod/petstore/pets/{id}");
    assert_eq!(&*route.resource_path, "/pets/{id}");
    assert_eq!(loaded.summary.routes, 2);
    assert_eq!(
        loaded.summary.to_string(),
        "1 api, 2 stages, 2 routes, 1 listener\n  pets v1: 1 route; stages: dev at /dev/petstore, prod at /prod/petstore"
    );
}
