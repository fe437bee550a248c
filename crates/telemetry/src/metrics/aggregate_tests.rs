use std::time::Duration;

use super::*;
use crate::Decisions;
use crate::metrics::SKETCH_RELATIVE_ACCURACY;
use crate::metrics::routes::RouteIndex;
use crate::metrics::test_support::{find, routed, unrouted, websocket, with_latency};

const GRACE: Duration = Duration::from_secs(5);

/// The aggregator with the route index the consumer resolves records with, capped alike.
struct Aggregator {
    minutes: MinuteAggregator,
    routes: RouteIndex,
}

impl Aggregator {
    fn record(&mut self, exchange: &Exchange) -> Recorded {
        let route = self.routes.resolve(exchange);
        self.minutes.record(exchange, route)
    }

    fn take_due(&mut self, now_unix: i64) -> Vec<(i64, Vec<MetricPoint>)> {
        self.minutes.take_due(now_unix)
    }

    fn take_all(&mut self) -> Vec<(i64, Vec<MetricPoint>)> {
        self.minutes.take_all()
    }
}

fn aggregator(max_series: usize) -> Aggregator {
    Aggregator {
        minutes: MinuteAggregator::new(max_series, GRACE),
        routes: RouteIndex::new(max_series),
    }
}

/// The only bucket that closes when everything is taken.
fn single_minute(mut aggregator: Aggregator) -> Vec<MetricPoint> {
    let mut minutes = aggregator.take_all();
    assert_eq!(minutes.len(), 1, "expected one minute");
    minutes.remove(0).1
}

#[test]
fn counts_each_record_in_every_dimension_set_it_belongs_to() {
    let mut agg = aggregator(100);
    let mut stream = Vec::new();
    for _ in 0..3 {
        stream.push(routed("pets/prod//pets/{id}", "GET", 200, 10));
    }
    stream.push(routed("pets/prod//pets/{id}", "GET", 404, 11));
    stream.push(routed("pets/prod//pets", "POST", 500, 12));
    stream.push(routed("pets/beta//pets", "GET", 200, 13));
    let mut canary = routed("pets/beta//pets", "GET", 201, 14);
    canary.canary = true;
    stream.push(canary);
    stream.push(routed("orders/prod//orders", "PURGE", 429, 15));
    stream.push(unrouted(16));
    stream.push(unrouted(59));
    for exchange in &stream {
        let recorded = agg.record(exchange);
        assert!(!recorded.folded && !recorded.late);
    }
    let points = single_minute(agg);

    // (metric, dimensions, sample count, sum)
    let expected = [
        ("Count", "", 10, 10.0),
        ("Count", "api=pets", 7, 7.0),
        ("Count", "api=pets,stage=prod", 5, 5.0),
        ("Count", "api=pets,stage=beta", 2, 2.0),
        ("Count", "api=pets,stage=beta,canary=true", 1, 1.0),
        (
            "Count",
            "api=pets,stage=prod,route=/pets/{id},method=GET",
            4,
            4.0,
        ),
        (
            "Count",
            "api=pets,stage=prod,route=/pets,method=POST",
            1,
            1.0,
        ),
        (
            "Count",
            "api=orders,stage=prod,route=/orders,method=OTHER",
            1,
            1.0,
        ),
        ("4XXError", "", 10, 4.0),
        (
            "4XXError",
            "api=pets,stage=prod,route=/pets/{id},method=GET",
            4,
            1.0,
        ),
        ("4XXError", "api=orders", 1, 1.0),
        ("5XXError", "", 10, 1.0),
        ("5XXError", "api=pets", 7, 1.0),
        ("5XXError", "api=pets,stage=beta", 2, 0.0),
        ("Latency", "api=pets,stage=prod", 5, 5.0),
        ("BytesOut", "", 10, 0.0),
    ];
    for (metric, dimensions, count, sum) in expected {
        let set = find(&points, metric, dimensions)
            .unwrap_or_else(|| panic!("missing {metric} {{{dimensions}}}"));
        assert_eq!(
            (set.sample_count, set.sum),
            (count, sum),
            "{metric} {{{dimensions}}}"
        );
    }
    let series: std::collections::BTreeSet<_> = points.iter().map(|p| p.1.canonical()).collect();
    assert_eq!(series.len(), 11, "{series:#?}");
    for absent in ["IntegrationLatency", "ConnectCount", "ThrottleCount"] {
        assert!(
            points.iter().all(|p| p.0 != absent),
            "{absent} not expected"
        );
    }
}

#[test]
fn error_rates_are_the_average_of_their_samples() {
    let mut agg = aggregator(100);
    for (i, status) in [200, 200, 404, 403, 500, 502, 503, 200, 301, 200]
        .into_iter()
        .enumerate()
    {
        agg.record(&routed("a/s//r", "GET", status, i as u64));
    }
    let points = single_minute(agg);
    let route = "api=a,stage=s,route=/r,method=GET";
    let rate = |metric| find(&points, metric, route).and_then(StatisticSet::average);
    assert_eq!(rate("4XXError"), Some(0.2));
    assert_eq!(rate("5XXError"), Some(0.3));
}

#[test]
fn latency_percentiles_are_within_the_sketch_accuracy() {
    let mut agg = aggregator(100);
    let mut latencies = Vec::new();
    let mut integrations = Vec::new();
    for i in 1..=2_000u64 {
        let micros = 500 + (i * 7_919) % 250_000;
        // Every other request reached an integration.
        let integration = (i % 2 == 0).then_some(micros / 2);
        latencies.push(micros as f64 / 1000.0);
        integrations.extend(integration.map(|m| m as f64 / 1000.0));
        let exchange = with_latency(routed("a/s//r", "GET", 200, 30), micros, integration);
        agg.record(&exchange);
    }
    let points = single_minute(agg);
    for (metric, mut exact) in [("Latency", latencies), ("IntegrationLatency", integrations)] {
        exact.sort_by(f64::total_cmp);
        let set = find(&points, metric, "api=a").expect("series");
        assert_eq!(set.sample_count, exact.len() as u64, "{metric}");
        for q in [0.5, 0.99] {
            let truth = exact[((q * exact.len() as f64).ceil() as usize).saturating_sub(1)];
            let estimate = set.quantile(q).expect("quantile");
            let error = (estimate - truth).abs() / truth;
            assert!(
                error <= SKETCH_RELATIVE_ACCURACY + 1e-9,
                "{metric} p{q}: {estimate} vs {truth}"
            );
        }
    }
}

#[test]
fn decisions_count_where_their_phase_ran() {
    use crate::Decision::{Allowed, Hit, Miss, Rejected};
    let rejected = || Some(Rejected { reason: "test" });
    // (decisions, throttle, cache hit, cache miss, waf blocked)
    type Row = (
        Decisions,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
    );
    let cases: [Row; 5] = [
        (Decisions::default(), None, None, None, None),
        (
            Decisions {
                throttle: rejected(),
                ..Decisions::default()
            },
            Some(1.0),
            None,
            None,
            None,
        ),
        (
            Decisions {
                throttle: Some(Allowed),
                cache: Some(Hit),
                waf: Some(Allowed),
                ..Decisions::default()
            },
            Some(0.0),
            Some(1.0),
            Some(0.0),
            Some(0.0),
        ),
        (
            Decisions {
                cache: Some(Miss),
                waf: rejected(),
                ..Decisions::default()
            },
            None,
            Some(0.0),
            Some(1.0),
            Some(1.0),
        ),
        (
            Decisions {
                auth: rejected(),
                ..Decisions::default()
            },
            None,
            None,
            None,
            None,
        ),
    ];
    for (decisions, throttle, hit, miss, waf) in cases {
        let mut exchange = routed("a/s//r", "GET", 200, 0);
        exchange.decisions = decisions.clone();
        let samples = Samples::of(&exchange);
        let got = (
            samples.get(Metric::ThrottleCount),
            samples.get(Metric::CacheHitCount),
            samples.get(Metric::CacheMissCount),
            samples.get(Metric::WafBlockedCount),
        );
        assert_eq!(got, (throttle, hit, miss, waf), "{decisions:?}");
    }
}

#[test]
fn websocket_connections_count_connects_messages_and_duration_not_requests() {
    let mut agg = aggregator(100);
    agg.record(&websocket("chat/prod//ws", 5, 1_500, (3, 4)));
    agg.record(&websocket("chat/prod//ws", 6, 2_500, (10, 0)));
    let mut refused = websocket("chat/prod//ws", 7, 20, (0, 0));
    refused.status = 502;
    refused.websocket = None;
    agg.record(&refused);
    let points = single_minute(agg);
    let route = "api=chat,stage=prod,route=/ws,method=GET";
    let stat = |metric| find(&points, metric, route).map(|s| (s.sample_count, s.sum));
    assert_eq!(stat("ConnectCount"), Some((3, 3.0)));
    assert_eq!(stat("MessageCount"), Some((3, 17.0)));
    assert_eq!(stat("ConnectionDuration"), Some((3, 4_020.0)));
    for absent in ["Count", "Latency", "4XXError", "5XXError"] {
        assert_eq!(stat(absent), None, "{absent}");
    }
    let duration = find(&points, "ConnectionDuration", "").expect("all traffic");
    assert!(duration.has_sketch());
    assert_eq!(duration.max, 2_500.0);
}

#[test]
fn buckets_close_after_their_minute_and_the_grace_and_late_records_start_a_fresh_one() {
    let mut agg = aggregator(100);
    agg.record(&routed("a/s//r", "GET", 200, 10));
    agg.record(&routed("a/s//r", "GET", 200, 65));
    // Minute 0 ends at 60; with 5 s of grace it closes at 65.
    assert!(agg.take_due(64).is_empty());
    let closed = agg.take_due(65);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].0, 0);
    assert_eq!(find(&closed[0].1, "Count", "").map(|s| s.sum), Some(1.0));

    // A record for the closed minute goes into a fresh bucket for it.
    let late = agg.record(&routed("a/s//r", "GET", 500, 30));
    assert_eq!(
        late,
        Recorded {
            folded: false,
            late: true
        }
    );
    let on_time = agg.record(&routed("a/s//r", "GET", 200, 119));
    assert!(!on_time.late);
    let closed = agg.take_due(65);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].0, 0);
    assert_eq!(
        find(&closed[0].1, "5XXError", "api=a").map(|s| s.sum),
        Some(1.0)
    );

    assert!(agg.take_due(124).is_empty());
    let closed = agg.take_due(125);
    assert_eq!(closed.iter().map(|c| c.0).collect::<Vec<_>>(), [60]);
    assert_eq!(find(&closed[0].1, "Count", "").map(|s| s.sum), Some(2.0));
    assert!(agg.take_all().is_empty());
}

#[test]
fn series_past_the_cap_fold_into_the_overflow_series_once_per_record() {
    let mut agg = aggregator(3);
    // Creates {a}, {a,s} and {a,s,/one,GET}: the cap is reached.
    assert!(!agg.record(&routed("a/s//one", "GET", 200, 1)).folded);
    // Its route series is refused; {a} and {a,s} still count it.
    assert!(agg.record(&routed("a/s//two", "GET", 200, 2)).folded);
    // All three of its sets are refused; it still counts once in the overflow series.
    assert!(agg.record(&routed("b/s//one", "GET", 404, 3)).folded);
    assert!(!agg.record(&routed("a/s//one", "GET", 200, 4)).folded);
    // A new minute starts with a fresh cap.
    assert!(!agg.record(&routed("b/s//one", "GET", 200, 61)).folded);

    let minutes = agg.take_all();
    assert_eq!(minutes.len(), 2);
    let points = &minutes[0].1;
    let count = |dims| find(points, "Count", dims).map(|s| s.sum);
    assert_eq!(count(""), Some(4.0));
    assert_eq!(count("api=a"), Some(3.0));
    assert_eq!(count("api=a,stage=s"), Some(3.0));
    assert_eq!(count("api=a,stage=s,route=/one,method=GET"), Some(2.0));
    assert_eq!(count("api=__overflow__"), Some(2.0));
    assert_eq!(
        find(points, "4XXError", "api=__overflow__").map(|s| s.sum),
        Some(1.0)
    );
    assert_eq!(count("api=b"), None);
    assert_eq!(
        find(
            &minutes[1].1,
            "Count",
            "api=b,stage=s,route=/one,method=GET"
        )
        .map(|s| s.sum),
        Some(1.0)
    );
}

#[test]
fn points_come_in_a_stable_order() {
    let mut agg = aggregator(100);
    for i in 0..20 {
        agg.record(&routed(&format!("api{}/s//r", i % 7), "GET", 200, 0));
    }
    let points = single_minute(agg);
    let keys: Vec<_> = points
        .iter()
        .map(|(name, dims, _)| (dims.clone(), Metric::from_name(name)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn route_sets_without_a_route_id_still_get_series_while_their_minute_has_room() {
    let mut agg = aggregator(10);
    // Ten route sets take every route id, one quiet minute each.
    for i in 0..10_u64 {
        let route = format!("a/s//r{i}");
        assert!(!agg.record(&routed(&route, "GET", 200, i * 60)).folded);
    }
    // The eleventh has no id, but its minute has room for its series (kept by dimensions).
    for _ in 0..2 {
        assert!(!agg.record(&routed("a/s//late", "GET", 200, 600)).folded);
    }
    let minutes = agg.take_all();
    assert_eq!(minutes.len(), 11);
    let points = &minutes[10].1;
    let count = |dims| find(points, "Count", dims).map(|s| s.sum);
    assert_eq!(count("api=a,stage=s,route=/late,method=GET"), Some(2.0));
    assert_eq!(count("api=a,stage=s"), Some(2.0));
    assert_eq!(count(""), Some(2.0));
    assert_eq!(count("api=__overflow__"), None);
}

#[test]
fn records_at_the_edges_of_a_minute_land_in_the_right_bucket_in_any_order() {
    let mut agg = aggregator(10);
    let at = |secs: u64, nanos: u32| std::time::UNIX_EPOCH + Duration::new(secs, nanos);
    let cases = [
        (at(59, 999_999_999), 0),
        (at(60, 0), 60),
        (at(119, 999_999_999), 60),
        (at(59, 500_000_000), 0),
        (at(120, 0), 120),
        (at(0, 0), 0),
    ];
    for (time, minute) in cases {
        assert_eq!(agg.minutes.minute_of(time), minute, "{time:?}");
    }
    let before_epoch = std::time::UNIX_EPOCH - Duration::from_millis(1);
    assert_eq!(agg.minutes.minute_of(before_epoch), -60);
    assert_eq!(agg.minutes.minute_of(at(30, 0)), 0);
}
