use std::time::{Duration, Instant};

use super::*;
use crate::metrics::test_support::{Written, find, memory_sink, routed, websocket};
use crate::metrics::{ManualClock, StatisticSet};
use crate::{Bus, BusBuilder};

/// Polls `condition` until it holds, failing after five seconds.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

struct Running {
    bus: Bus,
    handle: MetricsHandle,
    written: Written,
    clock: Arc<ManualClock>,
}

fn start(now_unix: i64) -> Running {
    let mut builder = BusBuilder::new(1024);
    let rx = builder.subscribe("metrics");
    let bus = builder.build();
    let (written, sink) = memory_sink();
    let clock = Arc::new(ManualClock::new(now_unix));
    let handle = MetricsAggregator::spawn(
        rx,
        MetricsConfig::default(),
        Box::new(sink),
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .expect("spawn");
    Running {
        bus,
        handle,
        written,
        clock,
    }
}

fn written_minutes(written: &Written) -> Vec<i64> {
    written.lock().expect("lock").iter().map(|w| w.0).collect()
}

fn count_in(written: &Written, index: usize, dims: &str) -> Option<f64> {
    let written = written.lock().expect("lock");
    find(&written[index].1, "Count", dims).map(|s: &StatisticSet| s.sum)
}

#[test]
fn shutdown_flushes_every_open_bucket_in_order() {
    let Running {
        bus,
        handle,
        written,
        ..
    } = start(0);
    for at in [130, 5, 70, 10] {
        bus.publish(routed("a/s//r", "GET", 200, at));
    }
    drop(bus);
    handle.join();
    assert_eq!(written_minutes(&written), [0, 60, 120]);
    assert_eq!(count_in(&written, 0, "api=a"), Some(2.0));
    let stats = handle.stats();
    assert_eq!((stats.records, stats.minutes_written), (4, 3));
    handle.join();
}

#[test]
fn the_clock_closes_minutes_and_late_records_are_written_again() {
    let Running {
        bus,
        handle,
        written,
        clock,
    } = start(10);
    bus.publish(routed("a/s//r", "GET", 200, 10));
    bus.publish(routed("a/s//r", "GET", 200, 61));
    eventually("two records", || handle.stats().records == 2);
    clock.set(64);
    // Nothing is due before the grace has passed; give the thread a few polls to prove it.
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(handle.stats().minutes_written, 0);
    clock.set(65);
    eventually("minute 0 written", || handle.stats().minutes_written == 1);
    assert_eq!(written_minutes(&written), [0]);
    assert_eq!(count_in(&written, 0, ""), Some(1.0));

    bus.publish(routed("a/s//r", "GET", 200, 59));
    eventually("the late minute written", || {
        handle.stats().minutes_written == 2
    });
    assert_eq!(handle.stats().late_records, 1);
    assert_eq!(written_minutes(&written), [0, 0]);
    drop(bus);
    handle.join();
    assert_eq!(written_minutes(&written), [0, 0, 60]);
}

#[test]
fn the_handle_renders_what_the_thread_counted() {
    let Running { bus, handle, .. } = start(0);
    bus.publish(routed("a/s//r", "DELETE", 204, 0));
    bus.publish(websocket("a/s//ws", 0, 100, (1, 2)));
    eventually("two records", || handle.stats().records == 2);
    handle.set_open_websockets(3);
    let text = handle.render_prometheus();
    for line in [
        r#"gatehouse_requests_total{api="a",stage="s",route="/r",method="DELETE",status_class="2xx"} 1"#,
        r#"gatehouse_websocket_messages_total{api="a",stage="s",route="/ws",direction="out"} 2"#,
        "gatehouse_websocket_open_connections 3",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    let with_drops = handle.render_prometheus_with(|registry| {
        crate::metrics::register_bus_drops(registry, &bus.stats());
    });
    assert!(with_drops.contains(r#"gatehouse_telemetry_dropped_total{consumer="metrics"} 0"#));
    drop(bus);
    handle.join();
}
