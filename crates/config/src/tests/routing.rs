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
