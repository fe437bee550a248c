//! End-to-end log query benchmark: one million access-log lines in the gateway's default format
//! are stored through the store's `LogWriter`, then `stats … by bin(1m)` (and two other common
//! questions) run the way `POST /admin/logs/query` runs them: a newest-first store scan feeding
//! the query executor. Prints wall and CPU time per query.
//!
//! ```sh
//! cargo run --release -p gatehouse --example log_query_bench            # 1,000,000 lines
//! cargo run --release -p gatehouse --example log_query_bench -- 200000  # fewer
//! ```

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark program, not library code

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use gatehouse_logquery::EventRef;
use gatehouse_store::{LogBatch, LogScan, Retention, Store, StoreConfig};

const ROUTES: [&str; 6] = [
    "/pets",
    "/pets/{id}",
    "/orders",
    "/orders/{id}",
    "/users/{id}",
    "/health",
];

fn cpu_time() -> Duration {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10)
}

/// A small deterministic generator (xorshift), so every run stores the same lines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn line(rng: &mut Rng, i: u64, time_ms: i64) -> String {
    let route = ROUTES[(rng.next() % ROUTES.len() as u64) as usize];
    let status = match rng.next() % 100 {
        0..=1 => 503,
        2..=6 => 404,
        _ => 200,
    };
    let latency = 1
        + rng.next() % 40
        + if rng.next().is_multiple_of(100) {
            900
        } else {
            0
        };
    format!(
        concat!(
            "{{\"requestId\":\"{:016x}{:016x}\",\"time\":\"t\",\"requestTimeEpoch\":{},",
            "\"kind\":\"http\",\"ip\":\"10.0.{}.{}\",\"method\":\"GET\",\"host\":\"api.example.com\",",
            "\"path\":\"{}\",\"protocol\":\"HTTP/1.1\",\"route\":\"{}\",\"api\":\"petstore\",",
            "\"apiVersion\":\"v1\",\"stage\":\"prod\",\"status\":{},\"bytesIn\":0,\"bytesOut\":{},",
            "\"latencyMs\":{},\"integrationLatencyMs\":{},\"integrationStatus\":{},\"error\":null,",
            "\"errorMessage\":null,\"integrationError\":null,\"userAgent\":\"bench/1.0\",\"websocket\":null}}"
        ),
        i,
        rng.next(),
        time_ms,
        rng.next() % 256,
        rng.next() % 256,
        route.replace("{id}", &(rng.next() % 1000).to_string()),
        route,
        status,
        rng.next() % 4000,
        latency,
        latency.saturating_sub(1),
        status,
    )
}

fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig {
        dir: dir.path().to_owned(),
        retention: Retention::default(),
    })
    .unwrap();
    // One hour of traffic ending now.
    let end_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start_ms = end_ms - 3_600_000;
    let step = 3_600_000.0 / count as f64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let writer = store.log_writer();
    let started = Instant::now();
    let mut batch = LogBatch::new();
    for i in 0..count {
        let time_ms = start_ms + (i as f64 * step) as i64;
        batch.push("access/petstore/prod", time_ms, &line(&mut rng, i, time_ms));
        if batch.len() == 1000 {
            // Pace on the writer's queue instead of dropping.
            while writer.queued_bytes() > 32 << 20 {
                std::thread::sleep(Duration::from_millis(1));
            }
            writer.append(std::mem::take(&mut batch)).unwrap();
        }
    }
    writer.append(batch).unwrap();
    store.flush().unwrap();
    println!(
        "stored {count} lines in {:.2} s ({:.0} lines/s, generation included)",
        started.elapsed().as_secs_f64(),
        count as f64 / started.elapsed().as_secs_f64()
    );

    let queries = [
        "stats count(*), avg(latencyMs), pct(latencyMs, 99) by bin(1m)",
        "filter status >= 500 | stats count(*) by route",
        "stats pct(latencyMs, 99) as p99 by route | sort p99 desc | limit 10",
    ];
    for text in queries {
        let query = gatehouse_logquery::parse(text).unwrap();
        for round in 0..3 {
            let cpu = cpu_time();
            let wall = Instant::now();
            let mut executor = query.executor();
            let scan = LogScan {
                groups: vec!["access/*".into()],
                start_ms,
                end_ms: end_ms + 1,
                newest_first: true,
            };
            store
                .scan_logs(&scan, |event| {
                    executor.push(EventRef {
                        timestamp_ms: event.timestamp_ms,
                        group: event.group,
                        message: event.message,
                    });
                    ControlFlow::Continue(())
                })
                .unwrap();
            let result = executor.finish();
            println!(
                "{text:<70} round {round}: {:>6.0} ms wall, {:>6.0} ms CPU, {} records, {} rows",
                wall.elapsed().as_secs_f64() * 1000.0,
                (cpu_time() - cpu).as_secs_f64() * 1000.0,
                result.records_scanned,
                result.rows.len()
            );
        }
    }
    store.close();
}
