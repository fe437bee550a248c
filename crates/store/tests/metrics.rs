//! Metric storage end to end, on real SQLite files in a temporary directory: rollups and queries
//! at several periods, merging of repeated minutes, restarts, retention and the series list.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_store::{
    MetricDatapoint, MetricQuery, MetricWriter, Retention, Store, StoreConfig, StoreError,
};
use gatehouse_telemetry::metrics::{Dimensions, SKETCH_RELATIVE_ACCURACY, StatisticSet};

const HOUR: i64 = 3600;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn pets_prod() -> Dimensions {
    Dimensions {
        api: Some("pets".into()),
        stage: Some("prod".into()),
        ..Default::default()
    }
}

fn distribution(values: &[f64]) -> StatisticSet {
    let mut stats = StatisticSet::distribution();
    for v in values {
        stats.add(*v);
    }
    stats
}

fn query(
    store: &Store,
    metric: &str,
    dims: Dimensions,
    period: u32,
    start: i64,
    end: i64,
) -> Vec<MetricDatapoint> {
    store
        .query_metrics(&MetricQuery {
            metric: metric.to_owned(),
            dimensions: dims,
            period_secs: period,
            start_unix: start,
            end_unix: end,
        })
        .unwrap()
}

/// The exact `q` quantile: the sample of rank `floor(q * (n - 1))`, the rank DDSketch's
/// accuracy guarantee is stated for.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64) as usize]
}

/// 50 latency samples for minute `m`, spread between 10 and 60 ms.
fn minute_samples(m: i64) -> Vec<f64> {
    (0..50)
        .map(|i| 10.0 + ((m * 50 + i) * 7919 % 5000) as f64 * 0.01)
        .collect()
}

#[test]
fn queries_at_any_period_merge_rollups_exactly_and_percentiles_from_sketches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let writer = store.metrics_writer();
    let base = (now() / HOUR - 3) * HOUR;
    let minutes = 120;
    let mut raw: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for m in 0..minutes {
        let ts = base + m * 60;
        let samples = minute_samples(m);
        let mut count = StatisticSet::counter();
        for _ in &samples {
            count.add(1.0);
        }
        let points = vec![
            ("Latency".to_owned(), pets_prod(), distribution(&samples)),
            ("Count".to_owned(), Dimensions::default(), count),
        ];
        assert!(writer.submit(ts, points));
        raw.insert(ts, samples);
    }
    store.flush().unwrap();

    // (period, start offset, end offset) from `base`.
    let cases = [
        (60, 0, 2 * HOUR),
        (120, 0, 2 * HOUR),
        (300, 0, 2 * HOUR),
        (900, 0, 2 * HOUR),
        (3600, 0, 2 * HOUR),
        (7200, 0, 2 * HOUR),
        (420, 0, 2 * HOUR),
        // A start inside a bucket returns that bucket whole; the end is exclusive of buckets
        // starting at it and inclusive of the whole bucket that straddles it.
        (3600, 1000, 2 * HOUR),
        (300, 310, 1800),
        (3600, 0, HOUR),
        (3600, 0, HOUR + 1),
        (60, 30 * 60, 31 * 60),
        (60, -10 * HOUR, -HOUR),
    ];
    for (period, start, end) in cases {
        let (start, end) = (base + start, base + end);
        let p = i64::from(period);
        let mut expected: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for (ts, samples) in &raw {
            let bucket = ts.div_euclid(p) * p;
            if bucket >= start.div_euclid(p) * p && bucket < end {
                expected.entry(bucket).or_default().extend(samples);
            }
        }
        let context = format!("period {period}, start {start}, end {end}");
        let latency = query(&store, "Latency", pets_prod(), period, start, end);
        let count = query(&store, "Count", Dimensions::default(), period, start, end);
        let stamps: Vec<i64> = latency.iter().map(|d| d.timestamp_unix).collect();
        assert_eq!(
            stamps,
            expected.keys().copied().collect::<Vec<_>>(),
            "{context}"
        );
        assert_eq!(count.len(), latency.len(), "{context}");
        for ((point, count), samples) in latency.iter().zip(&count).zip(expected.values_mut()) {
            samples.sort_by(f64::total_cmp);
            let n = samples.len() as u64;
            assert_eq!(point.stats.sample_count, n, "{context}");
            assert_eq!(count.stats.sum, n as f64, "{context}");
            assert_eq!(point.stats.min, samples[0], "{context}");
            assert_eq!(point.stats.max, samples[samples.len() - 1], "{context}");
            let exact_sum: f64 = samples.iter().sum();
            assert!(
                (point.stats.sum - exact_sum).abs() < 1e-6 * exact_sum,
                "{context}"
            );
            for q in [0.5, 0.99] {
                let exact = exact_quantile(samples, q);
                let estimate = point.stats.quantile(q).unwrap();
                let error = (estimate - exact).abs() / exact;
                assert!(
                    error <= SKETCH_RELATIVE_ACCURACY + 1e-9,
                    "{context}: p{q} {estimate} vs exact {exact}"
                );
            }
        }
    }
}

#[test]
fn the_same_minute_submitted_twice_merges_instead_of_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let writer = store.metrics_writer();
    let minute = (now() / HOUR - 1) * HOUR + 5 * 60;
    // One node's minute, then another's: once in separate batches, once in the same batch.
    for (ts, flush_between) in [(minute, true), (minute + 60, false)] {
        assert!(writer.submit(
            ts,
            vec![(
                "Latency".into(),
                pets_prod(),
                distribution(&[5.0, 7.0, 9.0])
            )]
        ));
        if flush_between {
            store.flush().unwrap();
        }
        assert!(writer.submit(
            ts,
            vec![("Latency".into(), pets_prod(), distribution(&[1.0, 20.0]))]
        ));
    }
    store.flush().unwrap();

    for period in [60, 300, 3600] {
        let points = query(&store, "Latency", pets_prod(), period, minute, minute + 120);
        let counts: Vec<u64> = points.iter().map(|p| p.stats.sample_count).collect();
        let expected = if period == 60 { vec![5, 5] } else { vec![10] };
        assert_eq!(counts, expected, "period {period}");
        assert_eq!((points[0].stats.min, points[0].stats.max), (1.0, 20.0));
        assert_eq!(points[0].stats.quantile(1.0), Some(20.0));
    }
    assert_eq!(store.stats().points_written, 4);
}

#[test]
fn data_written_before_a_restart_is_there_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let minute = (now() / HOUR - 1) * HOUR;
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    store.metrics_writer().submit(
        minute,
        vec![("Latency".into(), pets_prod(), distribution(&[1.0, 2.0]))],
    );
    store.close();

    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let points = query(&store, "Latency", pets_prod(), 60, minute, minute + 60);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].stats.sample_count, 2);
    // The rest of the minute, written after the restart, merges with what was there.
    store.metrics_writer().submit(
        minute,
        vec![("Latency".into(), pets_prod(), distribution(&[3.0]))],
    );
    drop(store); // dropping the last handle also commits and stops the writer

    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    for period in [60, 300, 3600] {
        let points = query(&store, "Latency", pets_prod(), period, minute, minute + 60);
        assert_eq!(points[0].stats.sample_count, 3, "period {period}");
        assert_eq!(points[0].stats.max, 3.0);
    }
}

fn rows_per_resolution(db: &Path, metric: &str) -> [u32; 3] {
    let conn = rusqlite::Connection::open(db).unwrap();
    [60, 300, 3600].map(|resolution| {
        conn.query_row(
            "SELECT count(*) FROM metric_points p JOIN series s ON s.id = p.series_id
             WHERE s.metric = ?1 AND p.resolution_secs = ?2",
            rusqlite::params![metric, resolution],
            |row| row.get(0),
        )
        .unwrap()
    })
}

#[test]
fn retention_removes_old_rows_of_each_resolution_and_dead_series() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        dir: dir.path().to_owned(),
        retention: Retention {
            minute: Duration::from_secs(3600),
            five_minutes: Duration::from_secs(3 * 3600),
            hour: Duration::from_secs(10 * 3600),
        },
    };
    let now = now();
    // (metric named after its age, age, rows expected after the sweep: minute, 5 min, hour)
    let cases = [
        ("age-30m", 30 * 60, [1, 1, 1]),
        ("age-2h", 2 * HOUR, [0, 1, 1]),
        ("age-5h", 5 * HOUR, [0, 0, 1]),
        ("age-20h", 20 * HOUR, [0, 0, 0]),
    ];
    let store = Store::open(config.clone()).unwrap();
    let writer = store.metrics_writer();
    for (metric, age, _) in cases {
        writer.submit(
            now - age,
            vec![(metric.into(), Dimensions::default(), distribution(&[1.0]))],
        );
    }
    store.flush().unwrap();
    let db = store.path().to_owned();
    for (metric, _, _) in cases {
        assert_eq!(
            rows_per_resolution(&db, metric),
            [1, 1, 1],
            "{metric} before the sweep"
        );
    }
    store.close();

    // The writer sweeps once at open, before anything queued after it.
    let store = Store::open(config).unwrap();
    store.flush().unwrap();
    for (metric, _, expected) in cases {
        assert_eq!(rows_per_resolution(&db, metric), expected, "{metric}");
    }
    let listed: Vec<String> = store
        .list_series(0)
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(listed, ["age-2h", "age-30m", "age-5h"]);
    // A query reads the resolution that still holds the data.
    let at = now - 2 * HOUR;
    assert!(
        query(
            &store,
            "age-2h",
            Dimensions::default(),
            60,
            at - 60,
            at + 60
        )
        .is_empty()
    );
    assert_eq!(
        query(
            &store,
            "age-2h",
            Dimensions::default(),
            300,
            at - 60,
            at + 60
        )
        .len(),
        1
    );
}

#[test]
fn list_series_returns_series_seen_since_with_their_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let writer = store.metrics_writer();
    let minute = (now() / 60 - 30) * 60;
    let canary = Dimensions {
        route: Some("/pets/{id}".into()),
        method: Some("GET".into()),
        canary: Some(true),
        ..pets_prod()
    };
    writer.submit(
        minute - 600,
        vec![("Old".into(), Dimensions::default(), StatisticSet::counter())],
    );
    writer.submit(
        minute,
        vec![
            ("Count".into(), canary.clone(), StatisticSet::counter()),
            (
                "Count".into(),
                Dimensions::default(),
                StatisticSet::counter(),
            ),
        ],
    );
    store.flush().unwrap();

    let all = store.list_series(0).unwrap();
    assert_eq!(all.len(), 3);
    let recent = store.list_series(minute).unwrap();
    assert_eq!(
        recent,
        vec![
            ("Count".to_owned(), Dimensions::default()),
            ("Count".to_owned(), canary)
        ]
    );
}

#[test]
fn unknown_series_are_empty_and_dimensions_match_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let minute = (now() / 60 - 5) * 60;
    store.metrics_writer().submit(
        minute,
        vec![("Count".into(), pets_prod(), distribution(&[1.0]))],
    );
    store.flush().unwrap();

    let api_only = Dimensions {
        api: Some("pets".into()),
        ..Default::default()
    };
    let cases = [
        ("Nothing", pets_prod(), 0),
        ("Count", Dimensions::default(), 0),
        ("Count", api_only, 0),
        ("Count", pets_prod(), 1),
    ];
    for (metric, dims, expected) in cases {
        let points = query(&store, metric, dims.clone(), 60, minute, minute + 60);
        assert_eq!(points.len(), expected, "{metric} {dims}");
    }
}

#[test]
fn invalid_queries_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    for (period, start, end) in [
        (0, 0, 60),
        (90, 0, 60),
        (61, 0, 60),
        (3601, 0, 60),
        (60, 120, 60),
    ] {
        let result = store.query_metrics(&MetricQuery {
            metric: "Count".into(),
            dimensions: Dimensions::default(),
            period_secs: period,
            start_unix: start,
            end_unix: end,
        });
        let err = result.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidQuery(_)),
            "{period}: {err}"
        );
    }
}

#[test]
fn store_and_writer_can_be_shared_across_threads() {
    fn assert_shared<T: Clone + Send + Sync + 'static>() {}
    fn assert_sendable<T: Clone + Send + 'static>() {}
    assert_shared::<Store>();
    assert_sendable::<MetricWriter>();
}
