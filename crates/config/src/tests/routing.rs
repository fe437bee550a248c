use http::Method;

use super::loaded;
use crate::{Loaded, Resolution};

const TABLE: &str = "apis:
  - name: pets
    base_path: /petstore
    stages:
      - { name: dev }
      - { name: prod, path_prefix: /live/ }
    routes:
      - { method: GET, path: /pets, integration: { type: mock, body: list } }
      - { method: POST, path: /pets, integration: { type: mock, body: create } }
      - { method: GET, path: '/pets/{id}', integration: { type: mock, body: one } }
      - { path: '/pets/{id}', integration: { type: mock, body: any-one } }
      - { method: DELETE, path: '/pets/{id}/tags/{tag}', integration: { type: mock, body: untag } }
      - { method: GET, path: /, integration: { type: mock, body: root } }
  - name: proxy
    stages: [{ name: main, path_prefix: '' }]
    routes:
      - { path: '/files/{proxy+}', integration: { type: mock, body: files } }
  - name: hosted
    host: API.Example.com
    stages: [{ name: main, path_prefix: '/' }]
    routes:
      - { method: GET, path: /pets, integration: { type: mock, body: hosted-list } }
      - { method: PUT, path: /only-put, integration: { type: mock, body: hosted-put } }
  - name: fallback
    stages: [{ name: main, path_prefix: '' }]
    routes:
      - { method: GET, path: /only-put, integration: { type: mock, body: fallback-get } }
";

fn describe(loaded: &Loaded, host: Option<&str>, method: &str, path: &str) -> String {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    match loaded.table.resolve(host, &method, path) {
        Resolution::Matched { route, params } => {
            let crate::Integration::Mock(mock) = &route.integration else {
                return "not a mock".to_owned();
            };
            let mut out = format!("{} {}", route.stage, mock.body.as_static().unwrap_or("?"));
            for (name, value) in params.iter() {
                out.push_str(&format!(" {name}={value}"));
            }
            out
        }
        Resolution::MethodNotAllowed { allow } => format!("405 allow: {allow}"),
        Resolution::NotFound => "404".to_owned(),
    }
}

#[test]
fn resolution_table() {
    let loaded = loaded(TABLE);
    let cases: &[(Option<&str>, &str, &str, &str)] = &[
        (None, "GET", "/dev/petstore/pets", "dev list"),
        (None, "POST", "/live/petstore/pets", "prod create"),
        (None, "GET", "/dev/petstore/pets/7", "dev one id=7"),
        (None, "PATCH", "/dev/petstore/pets/7", "dev any-one id=7"),
        (None, "HEAD", "/dev/petstore/pets/7", "dev one id=7"),
        (None, "HEAD", "/dev/petstore/pets", "dev list"),
        (
            None,
            "DELETE",
            "/dev/petstore/pets",
            "405 allow: GET, HEAD, POST",
        ),
        (
            None,
            "GET",
            "/dev/petstore/pets/7/tags/x",
            "405 allow: DELETE",
        ),
        (
            None,
            "DELETE",
            "/dev/petstore/pets/a%2Fb/tags/x%20y",
            "dev untag id=a%2Fb tag=x%20y",
        ),
        (None, "GET", "/dev/petstore", "dev root"),
        (None, "GET", "/dev/petstore/", "dev root"),
        (None, "GET", "/live/petstore/", "prod root"),
        (None, "GET", "/prod/petstore/pets", "404"),
        (None, "GET", "/dev/petstore/pets/", "404"),
        (None, "GET", "/files/a", "main files proxy=a"),
        (
            None,
            "GET",
            "/files/a/b/c.txt",
            "main files proxy=a/b/c.txt",
        ),
        (None, "GET", "/files/", "404"),
        (None, "GET", "/files", "404"),
        (Some("api.example.com"), "GET", "/pets", "main hosted-list"),
        (
            Some("API.EXAMPLE.COM:8443"),
            "GET",
            "/pets",
            "main hosted-list",
        ),
        (Some("api.example.com."), "GET", "/pets", "main hosted-list"),
        (Some("other.example.com"), "GET", "/pets", "404"),
        (None, "GET", "/pets", "404"),
        (
            Some("api.example.com"),
            "GET",
            "/dev/petstore/pets",
            "dev list",
        ),
        (
            Some("api.example.com"),
            "GET",
            "/only-put",
            "main fallback-get",
        ),
        (
            Some("api.example.com"),
            "POST",
            "/only-put",
            "405 allow: PUT",
        ),
        (Some("[::1]:8080"), "GET", "/only-put", "main fallback-get"),
    ];
    for (host, method, path, expected) in cases {
        assert_eq!(
            describe(&loaded, *host, method, path),
            *expected,
            "{host:?} {method} {path}"
        );
    }
}

#[test]
fn root_mounted_proxy_does_not_match_an_empty_remainder() {
    let loaded = loaded(
        "apis:
  - name: p
    stages: [{ name: main, path_prefix: '' }]
    routes:
      - { path: '/{proxy+}', integration: { type: mock, body: greedy } }
",
    );
    assert_eq!(describe(&loaded, None, "GET", "/"), "404");
    assert_eq!(describe(&loaded, None, "GET", "/x"), "main greedy proxy=x");
    assert_eq!(
        describe(&loaded, None, "GET", "//x"),
        "main greedy proxy=/x"
    );
}

#[test]
fn conflict_table() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "same method twice",
            "      - { method: GET, path: /a, integration: { type: mock } }\n      - { method: GET, path: //a/, integration: { type: mock } }\n      - { method: GET, path: /a, integration: { type: mock } }\n",
            &[
                "9:30: apis[0].routes[2].path: route GET /prod/a conflicts with apis[0].routes[0] (api 'demo' v1, stage 'prod') (stage 'prod')",
            ],
        ),
        (
            "different parameter names",
            "      - { method: GET, path: '/a/{id}', integration: { type: mock } }\n      - { method: POST, path: '/a/{key}', integration: { type: mock } }\n",
            &[
                "8:31: apis[0].routes[1].path: path conflicts with the route path '/prod/a/{id}' at apis[0].routes[0]; two routes cannot differ only in parameter names, and a greedy parameter cannot sit beside another parameter (stage 'prod')",
            ],
        ),
        (
            "greedy beside a parameter",
            "      - { path: '/a/{id}', integration: { type: mock } }\n      - { path: '/a/{rest+}', integration: { type: mock } }\n",
            &[
                "8:17: apis[0].routes[1].path: path conflicts with the route path '/prod/a/{id}' at apis[0].routes[0]; two routes cannot differ only in parameter names, and a greedy parameter cannot sit beside another parameter (stage 'prod')",
            ],
        ),
    ];
    let mut mismatches = Vec::new();
    for (name, routes, expected) in cases {
        let got = super::errors(&super::api_with_route(routes));
        if got != *expected {
            mismatches.push(format!(
                "case: {name}\n  expected: {expected:#?}\n  got: {got:#?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn stages_with_the_same_mount_conflict() {
    let errors = super::errors(
        "apis:
  - name: a
    stages: [{ name: one, path_prefix: / }, { name: two, path_prefix: '' }]
    routes:
      - { path: /x, integration: { type: mock } }
",
    );
    assert_eq!(
        errors,
        vec![
            "5:17: apis[0].routes[0].path: route ANY /x conflicts with apis[0].routes[0] (api 'a' v1, stage 'one') (stage 'two')"
        ]
    );
}

const WITH_VARIABLES: &str = "apis:
  - name: shop
    stages:
      - { name: dev, variables: { host: dev.internal, unused: x, token: t1 } }
      - { name: prod, variables: { host: prod.internal, unused: y, token: t2 } }
    routes:
      - path: '/items/{id}'
        integration:
          type: http
          url: 'http://${stageVariables.host}/items/{id}'
          request_headers: { set: { x-token: '${stageVariables.token}', x-host: '${stageVariables.host}' } }
      - { method: GET, path: /plain, integration: { type: mock, body: plain } }
";

/// (stage, route path, the stage variables used with their values).
type UsedVariables = (String, String, Vec<(String, String)>);

#[test]
fn routes_list_the_stage_variables_their_integration_uses() {
    let loaded = loaded(WITH_VARIABLES);
    let used: Vec<UsedVariables> = loaded
        .table
        .routes()
        .map(|route| {
            let vars = route
                .stage_variables_used
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (
                route.stage.to_string(),
                route.resource_path.to_string(),
                vars,
            )
        })
        .collect();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        used,
        [
            (
                "dev".to_owned(),
                "/items/{id}".to_owned(),
                vec![pair("host", "dev.internal"), pair("token", "t1")]
            ),
            (
                "prod".to_owned(),
                "/items/{id}".to_owned(),
                vec![pair("host", "prod.internal"), pair("token", "t2")]
            ),
            ("dev".to_owned(), "/plain".to_owned(), vec![]),
            ("prod".to_owned(), "/plain".to_owned(), vec![]),
        ]
    );
}

#[test]
fn execution_logs_are_off_until_a_stage_is_given_settings() {
    use gatehouse_telemetry::{ExecutionLogLevel, ExecutionLogSettings};
    use std::sync::Arc;

    let loaded = loaded(WITH_VARIABLES);
    assert!(
        loaded
            .table
            .routes()
            .all(|r| r.execution_log.level == ExecutionLogLevel::Off)
    );
    let info = Arc::new(ExecutionLogSettings {
        level: ExecutionLogLevel::Info,
        ..ExecutionLogSettings::default()
    });
    let table = loaded.table.with_execution_logs(|route| {
        if &*route.stage == "prod" {
            Arc::clone(&info)
        } else {
            Arc::clone(&route.execution_log)
        }
    });
    let level = |stage: &str, path: &str| match table.resolve(None, &Method::GET, path) {
        Resolution::Matched { route, .. } => {
            assert_eq!(&*route.stage, stage);
            route.execution_log.level
        }
        _ => panic!("{path} does not resolve"),
    };
    assert_eq!(level("prod", "/prod/items/1"), ExecutionLogLevel::Info);
    assert_eq!(level("prod", "/prod/plain"), ExecutionLogLevel::Info);
    assert_eq!(level("dev", "/dev/items/1"), ExecutionLogLevel::Off);
    // The routes listing and the router hold the same new routes.
    for route in table.routes().filter(|r| &*r.stage == "prod") {
        assert!(Arc::ptr_eq(&route.execution_log, &info));
    }
    // The original table is untouched.
    assert!(
        loaded
            .table
            .routes()
            .all(|r| r.execution_log.level == ExecutionLogLevel::Off)
    );
}
