//! Times log queries over one million generated access-log lines held in memory.
//!
//! `cargo run --release -p gatehouse-logquery --example bench_stats [N [SUBSTRING]]`
//!
//! With SUBSTRING, only the queries that contain it run (handy under a profiler).
//!
//! The lines (about 300 bytes each, API Gateway's access-log keys with a nested `integration`
//! object) are written into one buffer, as a store's decoded block would hold them, and each query
//! runs over all of them, newest first. Only the evaluation is timed; reading the store comes on
//! top. As a baseline for the JSON extraction, the same lines are also parsed into
//! `serde_json::Value`s, reading one field.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use gatehouse_logquery::{EventRef, parse};

// The gatehouse binary runs on mimalloc; measure with the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUERIES: &[&str] = &[
    "stats count(*), avg(responseLatency), pct(responseLatency, 99) by bin(1m)",
    "filter status >= 500 | stats count(*) by resourcePath",
    "stats count(*) as requests, avg(status >= 500) as error_rate, pct(responseLatency, 50), pct(responseLatency, 99) by resourcePath, bin(5m)",
    "filter ispresent(ip) | stats count(*) as requests by ip | sort requests desc | limit 10",
    "filter @message like /DELETE/ | fields @timestamp, requestId, status | sort @timestamp desc | limit 20",
    "filter integration.status = \"\" and status >= 500 | stats count(*)",
];

const ROUTES: &[&str] = &[
    "/pets",
    "/pets/{id}",
    "/orders",
    "/orders/{id}/items",
    "/users/{id}",
    "/health",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic and dependency-free.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One buffer of lines and, per event, its timestamp and byte range; newest first.
fn generate(n: usize) -> (String, Vec<(i64, usize, usize)>) {
    const START_MS: i64 = 1_714_564_800_000;
    // Spread the events over six hours: 360 one-minute bins.
    let step = 6 * 3_600_000 / n.max(1) as i64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = String::with_capacity(n * 320);
    let mut index = Vec::with_capacity(n);
    for i in 0..n {
        let ts = START_MS + i as i64 * step.max(1);
        let start = buf.len();
        let status = match rng.below(100) {
            0..=1 => 500 + rng.below(5) as u32,
            2..=6 => 400 + rng.below(30) as u32,
            _ => 200,
        };
        let latency = 5
            + rng.below(80)
            + if rng.below(100) == 0 {
                rng.below(5000)
            } else {
                0
            };
        let integration_status = if status >= 502 {
            String::new()
        } else {
            status.to_string()
        };
        let r = rng.next();
        let _ = write!(
            buf,
            r#"{{"requestId":"{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}","ip":"10.{}.{}.{}","requestTime":"{}","httpMethod":"{}","resourcePath":"{}","status":{},"protocol":"HTTP/1.1","responseLength":{},"responseLatency":{},"integrationLatency":{},"integration":{{"status":"{}","latency":{}}},"userAgent":"Mozilla/5.0 (X11; Linux x86_64)"}}"#,
            r >> 32,
            r & 0xffff,
            rng.below(0x1000),
            rng.below(0x1000),
            rng.next() & 0xffff_ffff_ffff,
            rng.below(4),
            rng.below(256),
            rng.below(256),
            gatehouse_logquery::rfc3339(ts),
            METHODS[rng.below(METHODS.len() as u64) as usize],
            ROUTES[rng.below(ROUTES.len() as u64) as usize],
            status,
            rng.below(20_000),
            latency,
            latency.saturating_sub(3),
            integration_status,
            latency.saturating_sub(3),
        );
        index.push((ts, start, buf.len()));
    }
    index.reverse();
    (buf, index)
}

/// The best wall-clock time and the best CPU time (user + system) of `runs` runs. On a machine
/// shared with other work the CPU time is the steadier figure.
fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut best = Duration::MAX;
    let mut best_cpu = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let (t, cpu) = (Instant::now(), cpu_time());
        let out = f();
        best = best.min(t.elapsed());
        best_cpu = best_cpu.min(cpu_time().saturating_sub(cpu));
        last = Some(out);
    }
    (best, best_cpu, last.expect("at least one run"))
}

/// This process's CPU time from /proc/self/stat (Linux; zero elsewhere), in clock ticks of 10 ms.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields 14 and 15 (utime, stime) follow the command name, which is in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = (after.split_whitespace())
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 1_000_000,
    };
    let t = Instant::now();
    let (buf, index) = generate(n);
    println!(
        "generated {n} lines, {:.0} bytes each on average, in {:.2?}",
        buf.len() as f64 / n as f64,
        t.elapsed()
    );
    let events = || {
        index.iter().map(|&(ts, a, b)| EventRef {
            timestamp_ms: ts,
            group: "/gatehouse/access",
            message: &buf[a..b],
        })
    };
    println!(
        "\n| query | rows | matched | wall, best of 3 | CPU, best of 3 | CPU per event |\n|---|---|---|---|---|---|"
    );
    let only = std::env::args().nth(2);
    for q in QUERIES {
        if only.as_ref().is_some_and(|s| !q.contains(s.as_str())) {
            continue;
        }
        let query = parse(q)?;
        let (time, cpu, result) = best_of(3, || query.run(events()));
        println!(
            "| `{}` | {} | {} | {:.0} ms | {:.0} ms | {:.0} ns |",
            q.replace('|', "\\|"),
            result.rows.len(),
            result.records_matched,
            time.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e9 / n as f64
        );
    }
    if only.is_some() {
        return Ok(());
    }
    let (time, cpu, sum) = best_of(3, || {
        let mut sum = 0.0;
        for e in events() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(e.message) {
                sum += v["responseLatency"].as_f64().unwrap_or(0.0);
            }
        }
        sum
    });
    println!(
        "\nbaseline: serde_json::Value per line, reading responseLatency (sum {sum}): wall {:.0} ms, CPU {:.0} ms, {:.0} ns per line",
        time.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e9 / n as f64
    );
    Ok(())
}
