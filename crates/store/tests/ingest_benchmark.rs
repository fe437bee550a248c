//! A quick ingest benchmark, ignored by default:
//!
//! ```text
//! cargo test -p gatehouse-store --release --test ingest_benchmark -- --ignored --nocapture
//! ```
//!
//! It writes 100 minutes of 1,000 series (half counters, half latency distributions of 100
//! samples) and prints the points per second from the first submit to the final flush, which
//! includes the 5-minute and 1-hour rollups.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use gatehouse_store::{MetricQuery, Store, StoreConfig};
use gatehouse_telemetry::metrics::{Dimensions, StatisticSet};

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn ingest_benchmark() {
    const SERIES: usize = 1_000;
    const MINUTES: i64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let writer = store.metrics_writer();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let base = (now / 3600 - 3) * 3600;

    let dims: Vec<Dimensions> = (0..SERIES / 2)
        .map(|i| Dimensions {
            api: Some(format!("api-{}", i % 10).into()),
            stage: Some("prod".into()),
            route: Some(format!("/r/{i}").into()),
            method: Some("GET".into()),
            canary: None,
        })
        .collect();
    let batches: Vec<Vec<_>> = (0..MINUTES)
        .map(|m| {
            dims.iter()
                .flat_map(|d| {
                    let mut count = StatisticSet::counter();
                    let mut latency = StatisticSet::distribution();
                    for i in 0..100 {
                        count.add(1.0);
                        latency.add(1.0 + ((m * 100 + i) % 997) as f64 * 0.5);
                    }
                    [
                        ("Count".to_owned(), d.clone(), count),
                        ("Latency".to_owned(), d.clone(), latency),
                    ]
                })
                .collect()
        })
        .collect();

    let started = Instant::now();
    for (m, points) in (0..).zip(batches) {
        assert!(writer.submit(base + m * 60, points));
    }
    store.flush().unwrap();
    let elapsed = started.elapsed();
    let stats = store.stats();
    assert_eq!(stats.points_written, SERIES as u64 * MINUTES as u64);
    println!(
        "ingest: {} points in {:.2?} = {:.0} points/s ({} batches)",
        stats.points_written,
        elapsed,
        stats.points_written as f64 / elapsed.as_secs_f64(),
        stats.batches_committed
    );

    let started = Instant::now();
    let points = store
        .query_metrics(&MetricQuery {
            metric: "Latency".into(),
            dimensions: dims[0].clone(),
            period_secs: 60,
            start_unix: base,
            end_unix: base + MINUTES * 60,
        })
        .unwrap();
    assert_eq!(points.len(), MINUTES as usize);
    println!(
        "query: {MINUTES} minutes of one series in {:.2?}",
        started.elapsed()
    );
    store.close();
}
