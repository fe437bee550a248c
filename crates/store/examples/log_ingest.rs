//! The log store's ingest and scan benchmark:
//!
//! ```text
//! cargo run --release -p gatehouse-store --example log_ingest [-- EVENTS [DIR]]
//! ```
//!
//! With DIR, the database is kept there, and a second run on the same DIR skips the ingest and
//! only reads (for profiling the read side).
//!
//! It writes EVENTS (default 1,000,000) realistic JSON access-log lines of about 300 bytes, over
//! an hour and four log groups, through a `LogWriter` in batches of 1,000, and reports the events
//! per second from the first append until a flush returns. The batches are built before the clock
//! starts: formatting lines is the log consumer's cost, not the store's. The producer paces itself
//! on `LogWriter::queued_bytes` instead of letting batches drop, so the figure is the rate the
//! writer sustains.
//!
//! Then it reads everything back: a full scan that also counts events per minute (what
//! `stats count(*) by bin(1m)` needs from the store), the latest 100 events newest first, and two
//! searches. The database lives in a temporary directory on the same disk as the system temp dir.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gatehouse_store::{LogBatch, LogScan, Store, StoreConfig};

const BATCH: usize = 1_000;
const SPAN_MS: i64 = 60 * 60 * 1000;
/// The producer waits while this much is queued (half the store's log share of the queue).
const PACE_BYTES: u64 = 32 * 1024 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let temp = tempfile::tempdir()?;
    let dir = match std::env::args().nth(2) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => temp.path().to_owned(),
    };
    let reuse = dir.join(gatehouse_store::DATABASE_FILE).exists();
    let store = Store::open(StoreConfig::new(&dir))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let all = LogScan::all(i64::MIN, i64::MAX);
    if !reuse {
        ingest(&store, events, now)?;
    }

    read(&store, &all)?;
    store.close();
    Ok(())
}

fn ingest(store: &Store, events: usize, now: i64) -> Result<(), Box<dyn std::error::Error>> {
    let writer = store.log_writer();
    let start_ms = now - SPAN_MS;
    let mut lines = LineMaker::new(42);
    let mut batches = Vec::with_capacity(events.div_ceil(BATCH));
    let mut raw_bytes = 0usize;
    for first in (0..events).step_by(BATCH) {
        let mut batch = LogBatch::with_capacity(BATCH, BATCH * 320);
        for i in first..(first + BATCH).min(events) {
            let ts = start_ms + (i as i64 * SPAN_MS) / events as i64;
            let group = lines.group();
            batch.push_with(group, ts, |text| lines.write(text, ts));
        }
        raw_bytes += batch.text_bytes();
        batches.push(batch);
    }
    println!(
        "generated {events} events, {:.1} MiB, {:.0} bytes per line on average",
        mib(raw_bytes as u64),
        raw_bytes as f64 / events as f64
    );

    let started = Instant::now();
    let cpu_before = process_cpu();
    for batch in batches {
        while writer.queued_bytes() > PACE_BYTES {
            std::thread::sleep(Duration::from_micros(200));
        }
        writer.append(batch)?;
    }
    store.flush()?;
    let ingest = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let stats = store.stats();
    println!(
        "ingest: {} events in {:.2?} = {:.0} events/s ({:.0} MiB/s of messages; {:.2?} CPU, all threads); {} blocks, {} dropped",
        stats.log_events_written,
        ingest,
        stats.log_events_written as f64 / ingest.as_secs_f64(),
        mib(raw_bytes as u64) / ingest.as_secs_f64(),
        cpu,
        stats.log_blocks_written,
        stats.log_events_dropped,
    );
    let groups = store.log_groups()?;
    let stored: u64 = groups.iter().map(|g| g.stored_bytes).sum();
    let db_bytes = std::fs::metadata(store.path())?.len();
    println!(
        "stored: {:.1} MiB compressed in blocks ({:.1}x), database file {:.1} MiB, {} groups",
        mib(stored),
        raw_bytes as f64 / stored as f64,
        mib(db_bytes),
        groups.len()
    );

    Ok(())
}

fn read(store: &Store, all: &LogScan) -> Result<(), Box<dyn std::error::Error>> {
    for round in 1..=3 {
        let started = Instant::now();
        let cpu = thread_cpu();
        let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
        let mut bytes = 0u64;
        let scan = store.scan_logs(all, |event| {
            *per_minute.entry(event.timestamp_ms / 60_000).or_default() += 1;
            bytes += event.message.len() as u64;
            ControlFlow::Continue(())
        })?;
        let elapsed = started.elapsed();
        let cpu = thread_cpu().saturating_sub(cpu);
        println!(
            "full scan (round {round}): {} events, {:.1} MiB, {} blocks in {:.0?} ({:.0?} CPU) = {:.0} events/s ({:.0} per CPU second); {} one-minute bins",
            scan.events,
            mib(bytes),
            scan.blocks_read,
            elapsed,
            cpu,
            scan.events as f64 / elapsed.as_secs_f64(),
            scan.events as f64 / cpu.as_secs_f64(),
            per_minute.len()
        );
    }

    let started = Instant::now();
    let mut latest = 0;
    let tail = LogScan {
        newest_first: true,
        ..all.clone()
    };
    let scan = store.scan_logs(&tail, |_| {
        latest += 1;
        if latest == 100 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    println!(
        "latest 100, newest first: {:.2?} ({} blocks read)",
        started.elapsed(),
        scan.blocks_read
    );

    for (what, text, limit) in [
        ("rare term, all groups", "req-00077777-", 10),
        ("common term, first 100", "Mozilla", 100),
    ] {
        let started = Instant::now();
        let cpu = thread_cpu();
        let found = store.search_logs(all, text, limit)?;
        println!(
            "search ({what}) {text:?}: {} found in {:.0?} ({:.0?} CPU)",
            found.len(),
            started.elapsed(),
            thread_cpu().saturating_sub(cpu)
        );
    }
    Ok(())
}

/// CPU time of the calling thread, from Linux's `/proc/thread-self/schedstat`. On a machine shared
/// with other builds the wall clock measures the scheduler as much as this code; CPU time does not.
fn thread_cpu() -> Duration {
    cpu_ns("/proc/thread-self/schedstat")
}

/// CPU time of every thread of the process (the writer thread does the ingest work).
fn process_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .map(|task| cpu_ns(task.path().join("schedstat")))
        .sum()
}

fn cpu_ns(path: impl AsRef<std::path::Path>) -> Duration {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Access-log lines in the shape of API Gateway's JSON format, from a fixed-seed generator so
/// every run writes the same data.
struct LineMaker {
    state: u64,
    request: u64,
}

const GROUPS: [(&str, u64); 4] = [
    ("access/pets/prod", 50),
    ("access/shop/prod", 25),
    ("access/pets/beta", 15),
    ("execution/pets/prod", 10),
];
const ROUTES: [(&str, &str); 5] = [
    ("GET", "/pets/{id}"),
    ("GET", "/pets"),
    ("POST", "/pets"),
    ("GET", "/orders/{id}"),
    ("DELETE", "/pets/{id}"),
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
    "curl/8.5.0",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
];

impl LineMaker {
    fn new(seed: u64) -> Self {
        Self {
            state: seed,
            request: 0,
        }
    }

    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn group(&mut self) -> &'static str {
        let mut pick = self.next() % 100;
        for (group, share) in GROUPS {
            if pick < share {
                return group;
            }
            pick -= share;
        }
        GROUPS[0].0
    }

    fn write(&mut self, out: &mut String, ts: i64) {
        use std::fmt::Write;
        self.request += 1;
        let r = self.next();
        let (method, route) = ROUTES[(r % 5) as usize];
        let id = (r >> 8) % 100_000;
        let path = route.replace("{id}", &id.to_string());
        let status = match (r >> 24) % 100 {
            0..=89 => 200,
            90..=95 => 404,
            96..=98 => 429,
            _ => 502,
        };
        let latency = 1 + (r >> 32) % 250;
        let (request, suffix) = (self.request, self.next() as u32);
        let _ = write!(
            out,
            r#"{{"requestId":"req-{:08}-{:08x}","ip":"10.{}.{}.{}","requestTime":{ts},"httpMethod":"{method}","routeKey":"{method} {route}","path":"{path}","status":{status},"protocol":"HTTP/1.1","responseLength":{},"integrationLatency":{},"responseLatency":{},"userAgent":"{}"}}"#,
            request,
            suffix,
            (r >> 40) % 256,
            (r >> 48) % 256,
            (r >> 56) % 256,
            200 + (r >> 20) % 5000,
            latency,
            latency + 1 + (r >> 36) % 5,
            AGENTS[((r >> 44) % 4) as usize],
        );
    }
}
