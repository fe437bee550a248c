//! Standalone filter expressions (`logs tail --filter`, metric filters) and the field extractor,
//! plus properties of the executor that small tables do not show.

use gatehouse_logquery::{EventRef, FieldExtractor, Value, parse, parse_filter};

fn event(message: &str) -> EventRef<'_> {
    EventRef {
        timestamp_ms: 1_714_564_800_000,
        group: "api",
        message,
    }
}

#[test]
fn metric_filter_table() {
    let ok = r#"{"status":200,"latencyMs":12,"integration":{"status":"200"}}"#;
    let gateway_error = r#"{"status":504,"latencyMs":29000,"integration":{"status":""}}"#;
    let upstream_error = r#"{"status":"503","latencyMs":40,"integration":{"status":"503"}}"#;
    let no_integration = r#"{"status":502,"latencyMs":3}"#;
    let text = "GET /pets 500 12ms";
    let cases: &[(&str, [bool; 5])] = &[
        ("status >= 500", [false, true, true, true, false]),
        (
            "status >= 500 and integration.status = \"\"",
            [false, true, false, true, false],
        ),
        (
            "status >= 500 and not isempty(integration.status)",
            [false, false, true, false, false],
        ),
        (
            "latencyMs > 1000 or status = 503",
            [false, true, true, false, false],
        ),
        (
            "@message like / 5\\d\\d /",
            [false, false, false, false, true],
        ),
        ("status in [502, 504]", [false, true, false, true, false]),
        (
            "@log = \"api\" and not ispresent(status)",
            [false, false, false, false, true],
        ),
    ];
    let events = [ok, gateway_error, upstream_error, no_integration, text];
    for (expr, want) in cases {
        let filter = parse_filter(expr).expect("parses");
        let got: Vec<bool> = events.iter().map(|m| filter.matches(event(m))).collect();
        assert_eq!(got, want, "{expr}");
    }
}

#[test]
fn filter_errors_point_into_the_expression() {
    let cases = [
        ("", "empty filter expression at 1:1"),
        (
            "status >= ",
            "expected a field name or a value, found the end of the query at 1:11",
        ),
        (
            "status >= 500 |",
            "expected 'and', 'or' or the end of the expression, found '|' at 1:15",
        ),
    ];
    for (expr, want) in cases {
        let e = parse_filter(expr).expect_err("malformed");
        assert_eq!(
            format!("{} at {}:{}", e.message, e.line, e.column),
            want,
            "{expr}"
        );
    }
}

#[test]
fn filter_reports_its_fields_and_canonical_text() {
    let f = parse_filter("status>=500 AND integration.status=''").expect("parses");
    assert_eq!(f.referenced_fields(), ["status", "integration.status"]);
    assert_eq!(
        f.to_string(),
        "(status >= 500 and integration.status = \"\")"
    );
}

#[test]
fn field_extractor_reads_numbers_and_strings() {
    let line =
        r#"{"responseLatency":"42.5","status":200,"integration":{"latency":7},"ip":"10.0.0.1"}"#;
    let cases: &[(&str, Option<f64>, Option<Value>)] = &[
        (
            "responseLatency",
            Some(42.5),
            Some(Value::Str("42.5".into())),
        ),
        ("status", Some(200.0), Some(Value::Int(200))),
        ("integration.latency", Some(7.0), Some(Value::Int(7))),
        ("ip", None, Some(Value::Str("10.0.0.1".into()))),
        ("missing", None, None),
        (
            "@timestamp",
            Some(1_714_564_800_000.0),
            Some(Value::Time(1_714_564_800_000)),
        ),
    ];
    for (field, number, value) in cases {
        let x = FieldExtractor::new(field);
        assert_eq!(x.number(event(line)), *number, "{field}");
        assert_eq!(x.value(event(line)), *value, "{field}");
    }
    assert_eq!(FieldExtractor::new("a").number(event("not json")), None);
}

/// Makes `n` JSON events whose latency is a scrambled permutation of 0..n.
fn scrambled(n: u64) -> Vec<(i64, String)> {
    (0..n)
        .map(|i| {
            let latency = (i * 7919) % n;
            (
                i as i64 * 1000,
                format!(r#"{{"i":{i},"latency":{latency},"route":"/r{}"}}"#, i % 7),
            )
        })
        .collect()
}

#[test]
fn top_k_sort_returns_what_a_full_sort_returns() {
    let events = scrambled(10_000);
    let run = |q: &str| {
        let q = parse(q).expect("parses");
        q.run(events.iter().map(|(t, m)| EventRef {
            timestamp_ms: *t,
            group: "g",
            message: m,
        }))
    };
    // `limit` right after `sort` bounds the buffer; a filter in between does not.
    let top = run("fields i, latency | sort latency desc | limit 25");
    let full = run("fields i, latency | sort latency desc | filter latency >= 0 | limit 25");
    assert_eq!(top.rows, full.rows);
    assert_eq!(top.rows.len(), 25);
    assert_eq!(top.rows[0][1], Value::Int(9_999));
    assert_eq!(top.rows[24][1], Value::Int(9_975));
    // Without any limit, the default cap of 1000 rows applies.
    let capped = run("fields i | sort i desc");
    assert_eq!(capped.rows.len(), gatehouse_logquery::DEFAULT_LIMIT);
    assert_eq!(capped.rows[999][0], Value::Int(9_000));
}

#[test]
fn percentiles_are_exact_over_many_values() {
    let events = scrambled(10_000);
    let q = parse("stats pct(latency, 50) as p50, pct(latency, 99) as p99, pct(latency, 99.9) as p999, count_distinct(route) as routes")
        .expect("parses");
    let r = q.run(events.iter().map(|(t, m)| EventRef {
        timestamp_ms: *t,
        group: "g",
        message: m,
    }));
    // Nearest rank over 0..10000: the value at rank ceil(p% × 10000), counting from 1.
    assert_eq!(
        r.rows,
        vec![vec![
            Value::Int(4_999),
            Value::Int(9_899),
            Value::Int(9_989),
            Value::Int(7)
        ]]
    );
}

#[test]
fn a_query_runs_again_from_scratch() {
    let q = parse("stats count(*) as n").expect("parses");
    for _ in 0..2 {
        let mut exec = q.executor();
        exec.push(event("x"));
        assert_eq!(exec.finish().rows, vec![vec![Value::Int(1)]]);
    }
}

#[test]
fn results_serialize_as_json() {
    let q = parse("fields @timestamp, status, ratio, missing").expect("parses");
    let r = q.run([event(r#"{"status":200,"ratio":0.5}"#)]);
    let json = serde_json::to_string(&r).expect("serializes");
    assert_eq!(
        json,
        r#"{"columns":["@timestamp","status","ratio","missing"],"rows":[["2024-05-01T12:00:00.000Z",200,0.5,null]],"records_scanned":1,"records_matched":1}"#
    );
}
