use super::{api_with_route, errors};

const MOCK_ROUTE: &str = "      - path: /x\n        integration: { type: mock }\n";

/// `check(input, expected errors)` for parse, env and decode errors.
#[test]
fn load_error_table() {
    let typo = api_with_route("      - path: /x\n        integraton: { type: mock }\n");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "yaml syntax error points at the offending token",
            "limits:\n  max_connections: 10\n bad: [\n".to_owned(),
            vec!["3:2: invalid YAML: while parsing a block mapping, did not find expected key"],
        ),
        (
            "unknown top-level section",
            "listners: []\n".to_owned(),
            vec![
                "1:1: listners: unknown field `listners`, expected one of `listeners`, `limits`, `admin`, `data_dir`, `access_log`, `execution_log`, `logs`, `telemetry`, `metrics`, `alarms`, `tracing`, `apis`",
            ],
        ),
        (
            "unknown field in a route points at the key",
            typo.clone(),
            vec![
                "8:9: apis[0].routes[0].integraton: unknown field `integraton`, expected one of `method`, `path`, `integration`",
            ],
        ),
        (
            "unknown field inside an integration keeps the full path",
            api_with_route("      - path: /x\n        integration: { type: mock, stauts: 201 }\n"),
            vec![
                "8:36: apis[0].routes[0].integration.stauts: unknown field `stauts`, expected one of `status`, `headers`, `body`",
            ],
        ),
        (
            "type error points at the value",
            "limits:\n  max_connections: lots\n".to_owned(),
            vec!["2:20: limits.max_connections: invalid type: string \"lots\", expected usize"],
        ),
        (
            "quoted numbers stay strings",
            "limits:\n  max_connections: '10'\n".to_owned(),
            vec!["2:20: limits.max_connections: invalid type: string \"10\", expected usize"],
        ),
        (
            "missing required field points at the mapping",
            "admin:\n  bind: 127.0.0.1:9901\n".to_owned(),
            vec!["2:3: admin: missing field `token`"],
        ),
        (
            "unknown integration type",
            api_with_route("      - path: /x\n        integration: { type: lambda }\n"),
            vec![
                "8:30: apis[0].routes[0].integration.type: unknown integration type 'lambda', expected one of http, mock, websocket",
            ],
        ),
        (
            "missing integration type",
            api_with_route("      - path: /x\n        integration: { status: 200 }\n"),
            vec![
                "8:22: apis[0].routes[0].integration: missing field `type` (one of http, mock, websocket)",
            ],
        ),
        (
            "unknown method",
            api_with_route(
                "      - path: /x\n        method: FETCH\n        integration: { type: mock }\n",
            ),
            vec![
                "8:17: apis[0].routes[0].method: unknown variant `FETCH`, expected one of `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`, `OPTIONS`, `ANY`",
            ],
        ),
        (
            "duplicate keys are refused at the second key",
            "limits:\n  max_connections: 1\n  max_connections: 2\n".to_owned(),
            vec![
                "3:3: limits.max_connections: duplicate key 'max_connections'; each key may appear only once in a mapping",
            ],
        ),
        (
            "unset variable without a default",
            "admin:\n  token: ${NOPE}\n".to_owned(),
            vec![
                "2:10: admin.token: environment variable 'NOPE' is not set; set it, or give a default with '${NOPE:-default}'",
            ],
        ),
        (
            "anchors are refused",
            "limits: &l\n  max_connections: 1\n".to_owned(),
            vec!["1:9: YAML anchors and aliases are not supported; repeat the value instead"],
        ),
        (
            "several documents are refused",
            "limits: {}\n---\nlimits: {}\n".to_owned(),
            vec!["2:1: multiple YAML documents are not supported; keep one document per file"],
        ),
        (
            "root must be a mapping",
            "- a\n- b\n".to_owned(),
            vec!["1:1: expected a mapping of sections, found a list"],
        ),
        (
            "errors in several routes are all reported",
            api_with_route(
                "      - path: /a\n        integration: { type: mock, x: 1 }\n      - path: /b\n        integration: { type: mock, y: 1 }\n",
            ),
            vec![
                "8:36: apis[0].routes[0].integration.x: unknown field `x`, expected one of `status`, `headers`, `body`",
                "10:36: apis[0].routes[1].integration.y: unknown field `y`, expected one of `status`, `headers`, `body`",
            ],
        ),
    ];
    let _ = MOCK_ROUTE;
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
fn display_has_one_error_per_line_with_file_name() {
    let Err(errors) = super::load("limits:\n  max_connections: x\n  idle_timeout_ms: y\n") else {
        panic!("expected errors");
    };
    // Decoding stops at the first error inside one section; fields are visited in name order.
    assert_eq!(
        errors.to_string(),
        "gateway.yaml:3:20: limits.idle_timeout_ms: invalid type: string \"y\", expected u64"
    );
    let errors = super::errors("admin:\n  token: short\ntelemetry:\n  bus_capacity: 0\n");
    assert_eq!(
        errors,
        vec![
            "2:10: admin.token: must be at least 16 characters long (got 5); generate one with `openssl rand -hex 32`",
            "4:17: telemetry.bus_capacity: must be at least 1",
        ]
    );
}

#[test]
fn unreadable_file_has_no_position() {
    let Err(errors) = crate::load_file(std::path::Path::new("/nonexistent/gateway.yaml")) else {
        panic!("expected an error");
    };
    let error = &errors.errors()[0];
    assert_eq!((error.line, error.column), (0, 0));
    assert!(
        errors
            .to_string()
            .starts_with("/nonexistent/gateway.yaml: cannot read the configuration file:")
    );
}
