//! Table tests for the evaluator: queries over a small fixed set of events (JSON access-log lines
//! of one group, plain-text application lines of another), each with the table it must return.

use gatehouse_logquery::{EventRef, QueryResult, parse};

/// 2024-05-01T12:00:00Z.
const T0: i64 = 1_714_564_800_000;

/// (seconds after T0, group, message), oldest first.
const EVENTS: &[(i64, &str, &str)] = &[
    (
        0,
        "api",
        r#"{"requestId":"r1","ip":"10.0.0.1","httpMethod":"GET","resourcePath":"/pets","status":200,"responseLatency":10,"integration":{"status":"200","latency":8}}"#,
    ),
    (
        10,
        "api",
        r#"{"requestId":"r2","ip":"10.0.0.2","httpMethod":"GET","resourcePath":"/pets/{id}","status":"404","responseLatency":5,"integration":{"status":"404","latency":4}}"#,
    ),
    (
        20,
        "api",
        r#"{"requestId":"r3","ip":"10.0.0.1","httpMethod":"POST","resourcePath":"/pets","status":502,"responseLatency":30000,"integration":{"status":"","latency":null},"error":"upstream_timeout"}"#,
    ),
    (
        30,
        "app",
        "2024-05-01 12:00:30 ERROR [db] connection refused from 10.0.0.9",
    ),
    (
        65,
        "api",
        r#"{"requestId":"r4","ip":"10.0.0.3","httpMethod":"GET","resourcePath":"/pets","status":200,"responseLatency":20,"integration":{"status":"200","latency":15}}"#,
    ),
    (
        70,
        "api",
        r#"{"requestId":"r5","ip":"10.0.0.1","httpMethod":"DELETE","resourcePath":"/pets/{id}","status":500,"responseLatency":100,"integration":{"status":"500","latency":90}}"#,
    ),
    (
        90,
        "app",
        "2024-05-01 12:01:30 INFO [http] served /pets in 12ms",
    ),
    (
        125,
        "api",
        r#"{"requestId":"r6","ip":"10.0.0.2","httpMethod":"GET","resourcePath":"/pets","status":200,"responseLatency":12.5,"integration":{"status":"200","latency":10},"userAgent":"curl/8.0 \"quoted\""}"#,
    ),
    (
        130,
        "app",
        "2024-05-01 12:02:10 ERROR [http] timeout after 30000ms",
    ),
];

/// Runs `query` over the events, newest first as the store pushes them.
fn run(query: &str) -> String {
    let q = match parse(query) {
        Ok(q) => q,
        Err(e) => return format!("error: {e}"),
    };
    let events = EVENTS.iter().rev().map(|(s, group, message)| EventRef {
        timestamp_ms: T0 + s * 1000,
        group,
        message,
    });
    render(&q.run(events))
}

fn render(r: &QueryResult) -> String {
    let mut lines = vec![r.columns.join(" | ")];
    for row in &r.rows {
        let cells: Vec<String> = row.iter().map(ToString::to_string).collect();
        lines.push(cells.join(" | "));
    }
    lines.push(format!(
        "-- matched {} of {}",
        r.records_matched, r.records_scanned
    ));
    lines.join("\n")
}

fn check(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (query, want) in cases {
        let got = run(query);
        if got != want.trim() {
            failures.push(format!(
                "{query}\n--- want:\n{}\n--- got:\n{got}",
                want.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn fields_and_filters() {
    check(&[
        (
            "fields requestId, status | filter ispresent(requestId)",
            "
requestId | status
r6 | 200
r5 | 500
r4 | 200
r3 | 502
r2 | 404
r1 | 200
-- matched 6 of 9",
        ),
        // "404" is a string in r2's line; it still compares as a number.
        (
            "filter status >= 500 | fields requestId, status, error",
            "
requestId | status | error
r5 | 500 | 
r3 | 502 | upstream_timeout
-- matched 2 of 9",
        ),
        (
            "filter status = 404 | fields requestId",
            "requestId\nr2\n-- matched 1 of 9",
        ),
        (
            "filter status = \"200\" | fields requestId",
            "requestId\nr6\nr4\nr1\n-- matched 3 of 9",
        ),
        (
            "filter httpMethod in [\"POST\", \"DELETE\"] | fields requestId",
            "requestId\nr5\nr3\n-- matched 2 of 9",
        ),
        (
            "filter ispresent(httpMethod) and httpMethod not in [\"GET\"] | fields requestId",
            "requestId\nr5\nr3\n-- matched 2 of 9",
        ),
        // A missing field equals "": the plain-text lines have no integration.status either.
        (
            "filter integration.status = \"\" | fields @log, requestId",
            "
@log | requestId
app | 
app | 
app | 
api | r3
-- matched 4 of 9",
        ),
        (
            "filter @message like /ERROR/ | fields @timestamp, @log",
            "
@timestamp | @log
2024-05-01T12:02:10.000Z | app
2024-05-01T12:00:30.000Z | app
-- matched 2 of 9",
        ),
        (
            "filter @message =~ /(?i)error/ and @log = \"app\" | stats count(*)",
            "count(*)\n2\n-- matched 2 of 9",
        ),
        (
            "filter @log = \"app\" and @message not like /ERROR/ | fields @message",
            "@message\n2024-05-01 12:01:30 INFO [http] served /pets in 12ms\n-- matched 1 of 9",
        ),
        // With no fields command the output is @timestamp and @message.
        (
            "filter @message like \"served\"",
            "@timestamp | @message\n2024-05-01T12:01:30.000Z | 2024-05-01 12:01:30 INFO [http] served /pets in 12ms\n-- matched 1 of 9",
        ),
        (
            "filter userAgent like \"quoted\" | fields userAgent",
            "userAgent\ncurl/8.0 \"quoted\"\n-- matched 1 of 9",
        ),
        (
            "filter resourcePath > \"/pets/\" | dedup resourcePath | fields resourcePath",
            "resourcePath\n/pets/{id}\n-- matched 2 of 9",
        ),
        (
            "filter not (status < 500 or isempty(status)) | fields requestId",
            "requestId\nr5\nr3\n-- matched 2 of 9",
        ),
        (
            "fields @log | dedup @log",
            "@log\napp\napi\n-- matched 9 of 9",
        ),
        (
            "display requestId | fields status | display status",
            "status\n\n200\n\n500\n200\n\n502\n404\n200\n-- matched 9 of 9",
        ),
    ]);
}

#[test]
fn aliases_sort_and_limit() {
    check(&[
        (
            "fields integration.latency as il | filter il > 9 | sort il desc",
            "
il
90
15
10
-- matched 3 of 9",
        ),
        (
            "fields requestId, responseLatency | filter ispresent(requestId) | sort responseLatency asc | limit 3",
            "
requestId | responseLatency
r2 | 5
r1 | 10
r6 | 12.5
-- matched 6 of 9",
        ),
        // Missing values sort last in either direction; ties keep arrival order.
        (
            "fields requestId, error | sort error desc | limit 3",
            "
requestId | error
r3 | upstream_timeout
 | 
r6 | 
-- matched 9 of 9",
        ),
        // Without sort, a limit stops the scan once it is full.
        (
            "fields requestId | limit 2",
            "requestId\n\nr6\n-- matched 2 of 2",
        ),
        (
            "sort @timestamp asc | limit 1 | fields @log",
            "@log\napi\n-- matched 9 of 9",
        ),
    ]);
}

#[test]
fn stats() {
    check(&[
        (
            "stats count(*) as n, avg(responseLatency) as avg, min(responseLatency), max(responseLatency), sum(responseLatency) by bin(1m)",
            "
bin(1m) | n | avg | min(responseLatency) | max(responseLatency) | sum(responseLatency)
2024-05-01T12:00:00.000Z | 4 | 10005 | 5 | 30000 | 30015
2024-05-01T12:01:00.000Z | 3 | 60 | 20 | 100 | 120
2024-05-01T12:02:00.000Z | 2 | 12.5 | 12.5 | 12.5 | 12.5
-- matched 9 of 9",
        ),
        (
            "filter status >= 500 | stats count(*) as errors by bin(1m)",
            "
bin(1m) | errors
2024-05-01T12:00:00.000Z | 1
2024-05-01T12:01:00.000Z | 1
-- matched 2 of 9",
        ),
        (
            "filter ispresent(resourcePath) | stats pct(responseLatency, 50) as p50, pct(responseLatency, 99) as p99 by resourcePath | sort p99 desc",
            "
resourcePath | p50 | p99
/pets | 12.5 | 30000
/pets/{id} | 5 | 100
-- matched 6 of 9",
        ),
        (
            "filter ispresent(ip) | stats count(*) as requests by ip | sort requests desc | limit 2",
            "
ip | requests
10.0.0.1 | 3
10.0.0.2 | 2
-- matched 6 of 9",
        ),
        (
            "stats count_distinct(ip) as ips, count(ip) as with_ip, count() as all by @log",
            "
@log | ips | with_ip | all
api | 3 | 6 | 6
app | 0 | 0 | 3
-- matched 9 of 9",
        ),
        (
            "stats count(*) as n by ip | filter n >= 2 and ispresent(ip)",
            "
ip | n
10.0.0.1 | 3
10.0.0.2 | 2
-- matched 9 of 9",
        ),
        // Without `by`, stats answers one row even when nothing matched.
        (
            "filter status = 999 | stats count(*) as n, avg(responseLatency) as a",
            "n | a\n0 | \n-- matched 0 of 9",
        ),
        (
            "stats count(*) by bin(1m) as minute, @log | sort minute desc | limit 2",
            "
minute | @log | count(*)
2024-05-01T12:02:00.000Z | api | 1
2024-05-01T12:02:00.000Z | app | 1
-- matched 9 of 9",
        ),
        (
            "stats sum(status) as s, max(integration.status) as m by httpMethod | fields httpMethod, s, m",
            "
httpMethod | s | m
DELETE | 500 | 500
GET | 1004 | 404
POST | 502 | 
 |  | 
-- matched 9 of 9",
        ),
    ]);
}

#[test]
fn parse_globs_and_regexes() {
    check(&[
        (
            "filter @log = \"app\" | parse @message \"* * * [*] *\" as date, time, level, component, text | fields time, level, component, text",
            "
time | level | component | text
12:02:10 | ERROR | http | timeout after 30000ms
12:01:30 | INFO | http | served /pets in 12ms
12:00:30 | ERROR | db | connection refused from 10.0.0.9
-- matched 3 of 9",
        ),
        (
            "parse @message /(?<level>[A-Z]{4,5}) \\[(?<component>\\w+)\\]/ | filter ispresent(level) | stats count(*) as n by level, component",
            "
level | component | n
ERROR | db | 1
ERROR | http | 1
INFO | http | 1
-- matched 3 of 9",
        ),
        // parse works on any field, also one read from JSON.
        (
            "parse resourcePath \"/pets/*\" as rest | filter ispresent(rest) | fields requestId, rest",
            "
requestId | rest
r5 | {id}
r2 | {id}
-- matched 2 of 9",
        ),
        (
            "parse \"served * in *ms\" as path, ms | filter ms > 10 | fields path, ms",
            "path | ms\n/pets | 12\n-- matched 1 of 9",
        ),
        (
            "sort @timestamp asc | parse @message \"[*]\" as component | filter ispresent(component) | fields component | limit 2",
            "
component
db
http
-- matched 9 of 9",
        ),
    ]);
}

#[test]
fn the_common_questions() {
    check(&[
        // Slowest routes.
        (
            "stats pct(responseLatency, 99) as p99 by resourcePath | sort p99 desc | limit 10",
            "
resourcePath | p99
/pets | 30000
/pets/{id} | 100
 | 
-- matched 9 of 9",
        ),
        // Errors per minute, beside all requests.
        (
            "filter ispresent(status) | stats count(*) as requests, sum(status >= 500) as errors, avg(status >= 500) as error_rate by bin(1m)",
            "
bin(1m) | requests | errors | error_rate
2024-05-01T12:00:00.000Z | 3 | 1 | 0.3333333333333333
2024-05-01T12:01:00.000Z | 2 | 1 | 0.5
2024-05-01T12:02:00.000Z | 1 | 0 | 0
-- matched 6 of 9",
        ),
        // Top client IPs.
        (
            "filter ispresent(ip) | stats count(*) as requests by ip | sort requests desc | limit 10",
            "
ip | requests
10.0.0.1 | 3
10.0.0.2 | 2
10.0.0.3 | 1
-- matched 6 of 9",
        ),
        // The most recent error of each route.
        (
            "filter status >= 400 | sort @timestamp desc | dedup resourcePath | fields @timestamp, resourcePath, status",
            "
@timestamp | resourcePath | status
2024-05-01T12:01:10.000Z | /pets/{id} | 500
2024-05-01T12:00:20.000Z | /pets | 502
-- matched 3 of 9",
        ),
    ]);
}
