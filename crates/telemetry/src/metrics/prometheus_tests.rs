use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use super::*;
use crate::ConsumerStats;
use crate::metrics::routes::RouteIndex;
use crate::metrics::test_support::{routed, unrouted, websocket, with_latency};

/// The recorder with the route index the consumer resolves records with.
struct Recording {
    exposition: Exposition,
    recorder: Recorder,
    routes: RouteIndex,
}

impl Recording {
    fn new(max_series: usize) -> Self {
        let (exposition, recorder) = new();
        Self {
            exposition,
            recorder,
            routes: RouteIndex::new(max_series),
        }
    }

    /// Records like the consumer does; `true` if the record folded.
    fn record(&mut self, exchange: &Exchange) -> bool {
        let route = self.routes.resolve(exchange);
        self.recorder.record(exchange, route, self.routes.methods())
    }

    /// Flushes, as the consumer does after each batch, and renders.
    fn render(&mut self, extra: impl FnOnce(&mut Registry)) -> String {
        self.recorder.flush();
        self.exposition.render(extra)
    }
}

/// Records `exchanges` into a fresh exposition and renders it.
fn render(max_series: usize, exchanges: &[Exchange]) -> String {
    let mut recording = Recording::new(max_series);
    for exchange in exchanges {
        recording.record(exchange);
    }
    recording.render(|_| {})
}

fn sample_stream() -> Vec<Exchange> {
    let mut stream = vec![
        with_latency(
            routed("pets/prod//pets/{id}", "GET", 200, 0),
            3_000,
            Some(2_000),
        ),
        with_latency(routed("pets/prod//pets/{id}", "GET", 200, 0), 40_000, None),
        routed("pets/prod//pets/{id}", "GET", 404, 0),
        routed("pets/prod//pets", "POST", 503, 0),
        unrouted(0),
        websocket("chat/prod//ws", 0, 1_000, (3, 4)),
    ];
    stream[0].bytes_in = 10;
    stream[0].bytes_out = 100;
    stream[1].bytes_out = 50;
    stream
}

/// Checks the text format 0.0.4 line by line: every family has HELP and TYPE before its samples,
/// every sample is `name{label="value",…} number` with valid names, and there is no `# EOF`.
/// Returns the sample lines.
fn check_text_format(text: &str) -> Vec<&str> {
    let valid_name = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (keyword, name) = (parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("bad comment line {line:?}"));
            assert!(valid_name(name), "{line:?}");
            match keyword {
                Some("HELP") => {}
                Some("TYPE") => {
                    let kind = parts.next().unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram"].contains(&kind),
                        "{line:?}"
                    );
                    typed.insert(name.to_owned());
                }
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        assert!(value.parse::<f64>().is_ok(), "{line:?}");
        let name = series.split('{').next().unwrap_or_default();
        assert!(valid_name(name), "{line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line:?}");
        let labels = series.strip_prefix(name).unwrap_or_default();
        if !labels.is_empty() {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels {line:?}"));
            for pair in inner.split("\",") {
                let (label, value) = pair.split_once("=\"").expect("label=\"value\"");
                assert!(valid_name(label) && !label.starts_with("__"), "{line:?}");
                assert!(!value.contains('\n'), "{line:?}");
            }
        }
        samples.push(line);
    }
    assert!(!text.contains("# EOF"));
    samples
}

#[test]
fn exposition_counts_requests_durations_bytes_and_websockets() {
    let text = render(100, &sample_stream());
    let samples = check_text_format(&text);
    let route = r#"api="pets",stage="prod",route="/pets/{id}",method="GET""#;
    let expected = [
        format!(r#"gatehouse_requests_total{{{route},status_class="2xx"}} 2"#),
        format!(r#"gatehouse_requests_total{{{route},status_class="4xx"}} 1"#),
        r#"gatehouse_requests_total{api="pets",stage="prod",route="/pets",method="POST",status_class="5xx"} 1"#.into(),
        r#"gatehouse_requests_total{api="",stage="",route="",method="GET",status_class="4xx"} 1"#.into(),
        format!(r#"gatehouse_request_duration_seconds_bucket{{{route},le="0.005"}} 2"#),
        format!(r#"gatehouse_request_duration_seconds_bucket{{{route},le="0.05"}} 3"#),
        format!(r#"gatehouse_request_duration_seconds_count{{{route}}} 3"#),
        format!(r#"gatehouse_integration_duration_seconds_count{{{route}}} 1"#),
        format!(r#"gatehouse_request_bytes_total{{{route}}} 10"#),
        format!(r#"gatehouse_response_bytes_total{{{route}}} 150"#),
        r#"gatehouse_websocket_connections_total{api="chat",stage="prod",route="/ws",status_class="1xx"} 1"#.into(),
        r#"gatehouse_websocket_messages_total{api="chat",stage="prod",route="/ws",direction="in"} 3"#.into(),
        r#"gatehouse_websocket_messages_total{api="chat",stage="prod",route="/ws",direction="out"} 4"#.into(),
        "gatehouse_websocket_open_connections 0".into(),
        r#"gatehouse_metrics_series_folded_total{output="prometheus"} 0"#.into(),
    ];
    for line in &expected {
        assert!(samples.contains(&line.as_str()), "missing {line}\n{text}");
    }
    for header in [
        "# TYPE gatehouse_requests_total counter",
        "# TYPE gatehouse_request_duration_seconds histogram",
        "# TYPE gatehouse_websocket_open_connections gauge",
        "# HELP gatehouse_metrics_series_folded_total Records counted in the overflow series because the series cap was reached.",
    ] {
        assert!(
            text.lines().any(|l| l == header),
            "missing {header}\n{text}"
        );
    }
    // WebSocket connections are not requests.
    assert!(!text.contains(r#"route="/ws",method="GET",status_class"#));
    assert!(!text.contains(r#"gatehouse_request_duration_seconds_count{api="chat""#));
}

#[test]
fn route_label_sets_past_the_cap_fold_into_overflow_labels() {
    let mut recording = Recording::new(2);
    let folded: Vec<bool> = [
        routed("a/s//one", "GET", 200, 0),
        routed("a/s//two", "GET", 200, 0),
        routed("a/s//three", "GET", 500, 0),
        routed("a/s//one", "GET", 200, 0),
        routed("b/s//one", "PUT", 200, 0),
        unrouted(0),
    ]
    .iter()
    .map(|e| recording.record(e))
    .collect();
    assert_eq!(folded, [false, false, true, false, true, false]);
    recording.recorder.count_minute_bucket_fold();
    recording.exposition.set_open_websockets(7);
    let text = recording.render(|_| {});
    let samples = check_text_format(&text);
    for line in [
        r#"gatehouse_requests_total{api="__overflow__",stage="",route="",method="",status_class="2xx"} 1"#,
        r#"gatehouse_requests_total{api="__overflow__",stage="",route="",method="",status_class="5xx"} 1"#,
        r#"gatehouse_requests_total{api="a",stage="s",route="/one",method="GET",status_class="2xx"} 2"#,
        r#"gatehouse_metrics_series_folded_total{output="prometheus"} 2"#,
        r#"gatehouse_metrics_series_folded_total{output="minute_buckets"} 1"#,
        "gatehouse_websocket_open_connections 7",
    ] {
        assert!(samples.contains(&line), "missing {line}\n{text}");
    }
    assert!(!text.contains(r#"route="/three""#));
}

#[test]
fn extra_metrics_are_rendered_after_the_consumers_own() {
    let (exposition, _recorder) = new();
    let consumers = [
        ConsumerStats {
            name: "metrics",
            delivered: 10,
            dropped: 3,
            queued: 0,
        },
        ConsumerStats {
            name: "access_log",
            delivered: 13,
            dropped: 0,
            queued: 1,
        },
    ];
    let text = exposition.render(|registry| {
        register_bus_drops(registry, &consumers);
        register_alarm_notifications(registry, [4, 1, 0]);
    });
    let samples = check_text_format(&text);
    assert!(samples.contains(&r#"gatehouse_alarm_notifications_total{outcome="delivered"} 4"#));
    assert!(samples.contains(&r#"gatehouse_alarm_notifications_total{outcome="failed"} 1"#));
    assert!(samples.contains(&r#"gatehouse_alarm_notifications_total{outcome="dropped"} 0"#));
    assert!(samples.contains(&r#"gatehouse_telemetry_dropped_total{consumer="metrics"} 3"#));
    assert!(samples.contains(&r#"gatehouse_telemetry_dropped_total{consumer="access_log"} 0"#));
    assert!(text.contains("# TYPE gatehouse_telemetry_dropped_total counter\n"));
}

#[test]
fn promtool_accepts_the_exposition() {
    let mut stream = sample_stream();
    // Label values that need escaping.
    stream.push(routed("we\"ird/st\\age//line\nbreak", "PURGE", 302, 0));
    let mut recording = Recording::new(3);
    for exchange in &stream {
        recording.record(exchange);
    }
    recording.recorder.count_minute_bucket_fold();
    let consumers = [ConsumerStats {
        name: "metrics",
        delivered: 1,
        dropped: 2,
        queued: 0,
    }];
    let text = recording.render(|registry| register_bus_drops(registry, &consumers));
    check_text_format(&text);
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            eprintln!("skipping: promtool is not installed ({error}); apt-get install prometheus");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
