//! Table tests for the parser: each query maps to its canonical form, or to the error it gets
//! and where. Canonical forms must parse back to themselves.

use gatehouse_logquery::parse;

/// Parses `input` and returns the canonical query, or `error: <message> at <line>:<column>`.
fn render(input: &str) -> String {
    match parse(input) {
        Ok(q) => q.to_string(),
        Err(e) => format!("error: {} at {}:{}", e.message, e.line, e.column),
    }
}

fn check(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (input, want) in cases {
        let got = render(input);
        if got != *want {
            failures.push(format!("{input}\n   want: {want}\n    got: {got}"));
        } else if !want.starts_with("error:") {
            let again = render(&got);
            if again != got {
                failures.push(format!(
                    "{input}\n  canonical form does not round-trip: {again}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn valid_queries() {
    check(&[
        ("fields @timestamp, @message", "fields @timestamp, @message"),
        ("FIELDS a , b as c", "fields a, b as c"),
        ("fields `user-agent` as ua", "fields `user-agent` as ua"),
        ("display a, b", "display a, b"),
        ("filter status >= 500", "filter status >= 500"),
        (
            "filter status>=500 and method=\"GET\"",
            "filter (status >= 500 and method = \"GET\")",
        ),
        // `and` binds tighter than `or`; `not` tighter than both.
        (
            "filter a = 1 or b = 2 and c = 3",
            "filter (a = 1 or (b = 2 and c = 3))",
        ),
        (
            "filter (a = 1 or b = 2) and c = 3",
            "filter ((a = 1 or b = 2) and c = 3)",
        ),
        ("filter not a = 1 and b = 2", "filter (not a = 1 and b = 2)"),
        ("filter NOT (a = 1 OR b = 2)", "filter not (a = 1 or b = 2)"),
        (
            "filter a != 'x' and b == 2.5",
            "filter (a != \"x\" and b = 2.5)",
        ),
        ("filter a <> 1", "filter a != 1"),
        (
            "filter a < 1 or a <= 2 or a > -3 or a >= 1e3",
            "filter (((a < 1 or a <= 2) or a > -3) or a >= 1000.0)",
        ),
        (
            "filter method in [\"GET\", \"POST\"]",
            "filter method in [\"GET\", \"POST\"]",
        ),
        (
            "filter status not in [500, 502,504]",
            "filter status not in [500, 502, 504]",
        ),
        ("filter x in []", "filter x in []"),
        (
            "filter @message like /time(d)?out/",
            "filter @message like /time(d)?out/",
        ),
        (
            "filter @message like /a\\/b/i",
            "filter @message like /(?i)a\\/b/",
        ),
        ("filter path like \"/pets\"", "filter path like \"/pets\""),
        (
            "filter path not like \"/health\"",
            "filter path not like \"/health\"",
        ),
        ("filter @message =~ /ERROR/", "filter @message like /ERROR/"),
        (
            "filter ispresent(error) and not isempty(integration.status)",
            "filter (ispresent(error) and not isempty(integration.status))",
        ),
        ("filter cached = true", "filter cached = true"),
        (
            "filter integration.status = \"\"",
            "filter integration.status = \"\"",
        ),
        ("stats count(*)", "stats count(*)"),
        ("stats count()", "stats count(*)"),
        ("stats count(ip) as n", "stats count(ip) as n"),
        (
            "stats count(*) as n, avg(latency), pct(latency, 99), count_distinct(ip) by route, bin(5m)",
            "stats count(*) as n, avg(latency), pct(latency, 99), count_distinct(ip) by route, bin(5m)",
        ),
        (
            "stats sum(b), min(b), max(b) by bin(1h) as hour",
            "stats sum(b), min(b), max(b) by bin(1h) as hour",
        ),
        (
            "stats pct(latency, 99.9) by status as s",
            "stats pct(latency, 99.9) by status as s",
        ),
        (
            "stats sum(status>=500) as errors, avg(status >= 500)",
            "stats sum(status >= 500) as errors, avg(status >= 500)",
        ),
        (
            "stats count(a = 1 or b = 2)",
            "stats count((a = 1 or b = 2))",
        ),
        ("sort n desc", "sort n desc"),
        ("sort @timestamp", "sort @timestamp asc"),
        ("sort a asc, b desc", "sort a asc, b desc"),
        ("limit 20", "limit 20"),
        (
            "parse @message \"* [*] *\" as a, b, c",
            "parse @message \"* [*] *\" as a, b, c",
        ),
        (
            "parse \"user=*,\" as user",
            "parse @message \"user=*,\" as user",
        ),
        (
            "parse @message /(?<ip>\\S+) (?<verb>\\w+)/",
            "parse @message /(?<ip>\\S+) (?<verb>\\w+)/",
        ),
        ("dedup route, status", "dedup route, status"),
        (
            "fields @timestamp, ip # the client\n| filter status = 500\n| sort @timestamp desc\n| limit 5",
            "fields @timestamp, ip | filter status = 500 | sort @timestamp desc | limit 5",
        ),
        (
            "stats pct(responseLatency, 99) as p99 by resourcePath | sort p99 desc | limit 10",
            "stats pct(responseLatency, 99) as p99 by resourcePath | sort p99 desc | limit 10",
        ),
        (
            "stats count(*) as n by ip | filter n > 10",
            "stats count(*) as n by ip | filter n > 10",
        ),
        // Keywords are contextual: a field may be called `by` or `limit`.
        (
            "filter limit = 1 | fields by",
            "filter limit = 1 | fields by",
        ),
    ]);
}

#[test]
fn malformed_queries_point_at_the_problem() {
    check(&[
        (
            "",
            "error: empty query: expected a command such as 'fields' or 'filter' at 1:1",
        ),
        (
            "stats avgg(latency)",
            "error: unknown function 'avgg'; expected count, sum, avg, min, max, pct or count_distinct at 1:7",
        ),
        (
            "fields a |",
            "error: expected a command (fields, display, filter, stats, sort, limit, parse or dedup), found the end of the query at 1:11",
        ),
        (
            "select a",
            "error: unknown command 'select'; expected fields, display, filter, stats, sort, limit, parse or dedup at 1:1",
        ),
        (
            "fields a b",
            "error: expected '|' or the end of the query, found 'b' at 1:10",
        ),
        (
            "filter status",
            "error: expected a comparison (=, !=, <, <=, >, >=, in, like, =~), found the end of the query at 1:14",
        ),
        (
            "filter status >",
            "error: expected a field name or a value, found the end of the query at 1:16",
        ),
        (
            "filter (a = 1",
            "error: expected ')', found the end of the query at 1:14",
        ),
        (
            "filter a = 1 b",
            "error: expected '|' or the end of the query, found 'b' at 1:14",
        ),
        (
            "filter a in [1, b]",
            "error: expected a string, number or boolean, found 'b' at 1:17",
        ),
        (
            "filter a like 5",
            "error: expected a \"substring\" or a /regular expression/, found '5' at 1:15",
        ),
        (
            "filter a like /(/",
            "error: invalid regular expression: unclosed group at 1:15",
        ),
        (
            "filter a like /x/q",
            "error: unknown regular expression flag 'q'; expected i, m, s or x at 1:18",
        ),
        (
            "filter strlen(a) > 1",
            "error: unknown function 'strlen' in a filter; expected ispresent or isempty at 1:8",
        ),
        (
            "filter a = 5m",
            "error: '5m' is not a number; durations are only allowed in bin() at 1:12",
        ),
        ("filter a = \"x", "error: unterminated string at 1:12"),
        (
            "stats count(*) by bin(5)",
            "error: expected a period such as 30s, 5m, 1h or 1d, found '5' at 1:23",
        ),
        (
            "stats count(*) by bin(5y)",
            "error: unknown time unit 'y'; expected ms, s, m, h, d or w at 1:24",
        ),
        (
            "stats count(*) by bin(0m)",
            "error: the period must be a positive whole number at 1:23",
        ),
        (
            "stats pct(latency)",
            "error: expected ',' and a percentile from 0 to 100, found ')' at 1:18",
        ),
        (
            "stats pct(latency, 101)",
            "error: the percentile must be from 0 to 100 at 1:20",
        ),
        (
            "stats count(*), count()",
            "error: stats has two columns named 'count(*)'; give one an alias with 'as' at 1:17",
        ),
        ("stats max(a > 1)", "error: expected ')', found '>' at 1:13"),
        (
            "stats latency",
            "error: expected an aggregate function (count, sum, avg, min, max, pct or count_distinct), found 'latency' at 1:7",
        ),
        (
            "stats count(*) | stats count(*)",
            "error: only one stats command is allowed in a query at 1:18",
        ),
        (
            "stats count(*) as n by route | sort latency",
            "error: unknown field 'latency' after stats; the fields here are route, n at 1:37",
        ),
        (
            "limit 0",
            "error: limit must be a whole number from 1 to 10000 at 1:7",
        ),
        (
            "limit 10001",
            "error: limit must be a whole number from 1 to 10000 at 1:7",
        ),
        (
            "limit x",
            "error: expected a number of rows, found 'x' at 1:7",
        ),
        (
            "parse @message \"* *\" as a",
            "error: the pattern has 2 '*' but 1 names follow 'as' at 1:16",
        ),
        (
            "parse @message \"*\"",
            "error: expected 'as' and the names of the fields to create, found the end of the query at 1:19",
        ),
        (
            "parse @message /(\\S+)/",
            "error: the regular expression has no named group such as (?<name>...) at 1:16",
        ),
        (
            "parse @message 5",
            "error: expected a glob pattern in quotes or a /regular expression/, found '5' at 1:16",
        ),
        (
            "fields a\n| stats avgg(x)",
            "error: unknown function 'avgg'; expected count, sum, avg, min, max, pct or count_distinct at 2:9",
        ),
        ("fields a ; b", "error: unexpected character ';' at 1:10"),
    ]);
}

#[test]
fn error_display_shows_the_line_and_a_caret() {
    let e = parse("fields a\n| stats avgg(latency)").expect_err("unknown function");
    assert_eq!(
        e.to_string(),
        "unknown function 'avgg'; expected count, sum, avg, min, max, pct or count_distinct at 2:9\n  \
         | stats avgg(latency)\n          ^"
    );
}

#[test]
fn referenced_fields_are_the_event_fields_read() {
    let cases: &[(&str, &[&str])] = &[
        (
            "filter status >= 500 | stats count(*) by resourcePath",
            &["status", "resourcePath"],
        ),
        ("stats avg(l) by bin(1m)", &["@timestamp", "l"]),
        ("fields a as b | filter b = 1", &["a"]),
        (
            "parse @message \"* *\" as x, y | stats count(*) by x",
            &["@message"],
        ),
        (
            "filter integration.status = \"\"",
            &["integration.status", "@timestamp", "@message"],
        ),
    ];
    for (q, want) in cases {
        let q = parse(q).expect("parses");
        assert_eq!(q.referenced_fields(), *want, "{q}");
    }
}
