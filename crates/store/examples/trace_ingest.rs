//! The trace store's ingest benchmark:
//!
//! ```text
//! cargo run --release -p gatehouse-store --example trace_ingest [-- TRACES [BATCH]]
//! ```
//!
//! It makes TRACES (default 200,000) sampled exchanges like the bench's (a GET proxied to an
//! HTTP upstream: a server and a client span each, routed, with a host and a user agent; one in
//! twenty a 5xx), turns them into `TracedExchange`s as the trace recorder does (timed on its own:
//! that is the recorder's cost), and appends them through a `SpanWriter` in batches of BATCH
//! (default 50, about what the recorder hands over per 10 ms poll at 5,000 sampled requests per
//! second) until a flush returns. A batch the queue refuses is retried after a millisecond, so
//! the figure is the rate the writer sustains. CPU time comes from `/proc` (the writer thread
//! does the work), so the figures hold on a busy machine.
//!
//! Then it runs the retention sweep, which folds the new blocks' trace keys into the trace index
//! (the writer's remaining cost per trace, paid every five minutes), and reads: 1,000 traces by
//! id, the newest 100 requests, a search for the rare 5xx, and the service graph's window of the
//! last minute.
//!
//! For instructions rather than time, run it under callgrind and read the writer thread's
//! total: `valgrind --tool=callgrind --separate-threads=yes target/release/examples/trace_ingest
//! 20000` (`bench/RESULTS.md` has the figures).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gatehouse_store::{MAX_GRAPH_SPANS, Store, StoreConfig, TraceSearch};
use gatehouse_telemetry::spans::TracedExchange;
use gatehouse_telemetry::{
    Decisions, Exchange, ExchangeKind, IntegrationOutcome, RouteLabels, Timing, TraceIds,
    new_request_id,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let traces: usize = args.next().map_or(Ok(200_000), |n| n.parse())?;
    let batch: usize = args.next().map_or(Ok(50), |n| n.parse())?;
    let temp = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(temp.path()))?;

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let exchanges = make_exchanges(traces, now);
    let cpu = thread_cpu();
    let started = Instant::now();
    let traced: Vec<TracedExchange> = exchanges
        .iter()
        .filter_map(TracedExchange::from_exchange)
        .collect();
    let (record_wall, record_cpu) = (started.elapsed(), thread_cpu() - cpu);
    drop(exchanges);
    println!(
        "recorder: {traces} exchanges -> records in {:.0} ms ({:.0} ns CPU per trace)",
        ms(record_wall),
        per(record_cpu, traces)
    );

    let mut batches: Vec<Vec<TracedExchange>> = Vec::new();
    let mut rest = traced.into_iter().peekable();
    while rest.peek().is_some() {
        batches.push(rest.by_ref().take(batch).collect());
    }
    let writer = store.span_writer();
    let (process0, main0) = (process_cpu(), thread_cpu());
    let started = Instant::now();
    let mut retries = 0u64;
    for batch in batches {
        // A refused batch is gone (the store counts its spans as dropped), so offer a copy
        // until one is taken.
        while writer.append_exchanges(batch.clone()).is_err() {
            retries += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    store.flush()?;
    let wall = started.elapsed();
    let writer_cpu = (process_cpu() - process0).saturating_sub(thread_cpu() - main0);
    let stats = store.stats();
    let db_bytes = std::fs::metadata(store.path())?.len()
        + std::fs::metadata(store.path().with_extension("db-wal")).map_or(0, |m| m.len());
    println!(
        "store:    {traces} traces in {:.0} ms = {:.0} traces/s; writer CPU {:.0} ms = {:.2} µs per \
         trace; {} spans, {} blocks ({:.0} traces each), {:.1} MiB on disk ({:.0} bytes per \
         trace); {retries} refused batches retried",
        ms(wall),
        traces as f64 / wall.as_secs_f64(),
        ms(writer_cpu),
        per(writer_cpu, traces) / 1000.0,
        stats.spans_written,
        stats.trace_blocks_written,
        traces as f64 / stats.trace_blocks_written.max(1) as f64,
        db_bytes as f64 / (1 << 20) as f64,
        db_bytes as f64 / traces as f64,
    );

    // The sweep folds the new blocks' trace keys into the index: the rest of the writer's cost.
    let process0 = process_cpu();
    let started = Instant::now();
    store.set_trace_retention(gatehouse_store::DEFAULT_TRACE_RETENTION_DAYS)?;
    println!(
        "index:    the sweep indexed {traces} traces in {:.0} ms ({:.0} ns CPU per trace)",
        ms(started.elapsed()),
        per(process_cpu() - process0, traces)
    );

    read(&store, traces, now)?;
    store.close();
    Ok(())
}

fn read(store: &Store, traces: usize, now: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let end = u64::try_from(now.as_nanos())? + 1;
    let started = Instant::now();
    let mut spans = 0;
    let gets = traces.min(1000);
    for i in 0..gets {
        spans += store.trace(&trace_id(i * (traces / gets)))?.len();
    }
    println!(
        "read:     {gets} traces by id in {:.0} ms ({spans} spans)",
        ms(started.elapsed())
    );
    let everything = TraceSearch {
        start_unix_nanos: 0,
        end_unix_nanos: end,
        limit: 100,
        ..TraceSearch::default()
    };
    let started = Instant::now();
    let found = store.search_traces(&everything)?.len();
    println!(
        "search:   newest {found} in {:.1} ms",
        ms(started.elapsed())
    );
    let faults = TraceSearch {
        fault_only: true,
        api: Some("shop".into()),
        ..everything.clone()
    };
    let started = Instant::now();
    let found = store.search_traces(&faults)?.len();
    println!(
        "search:   {found} faults of api shop (rare) in {:.1} ms",
        ms(started.elapsed())
    );
    let started = Instant::now();
    let (spans, capped) = store.spans_in_window(end - 60_000_000_000, end, MAX_GRAPH_SPANS)?;
    println!(
        "window:   {} spans of the last minute (capped: {capped}) in {:.0} ms",
        spans.len(),
        ms(started.elapsed())
    );
    Ok(())
}

fn trace_id(i: usize) -> [u8; 16] {
    let mut id = [0x5a; 16];
    id[8..].copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    id
}

/// Exchanges over the last minute before `now`, newest last, from a fixed xorshift seed.
fn make_exchanges(traces: usize, now: Duration) -> Vec<Exchange> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let route = |api: &str, path: &str| RouteLabels {
        api: Arc::from(api),
        api_version: Arc::from("v1"),
        stage: Arc::from("prod"),
        resource_path: Arc::from(path),
    };
    let routes = [route("pets", "/pets/{id}"), route("shop", "/items/{id}")];
    let span = Duration::from_secs(60);
    (0..traces)
        .map(|i| {
            let r = random();
            let status = if r % 20 == 0 { 503 } else { 200 };
            let latency = Duration::from_micros(300 + r % 5_000);
            let offset = span.mul_f64(i as f64 / traces as f64);
            let route = routes[(r >> 8) as usize % 2].clone();
            let path = format!(
                "/prod{}",
                route
                    .resource_path
                    .replace("{id}", &(r % 10_000).to_string())
            );
            Exchange {
                kind: ExchangeKind::Http,
                request_id: new_request_id(),
                trace: Some(TraceIds {
                    trace_id: trace_id(i),
                    span_id: (random() | 1).to_be_bytes(),
                    parent_id: None,
                    sampled: true,
                }),
                listener: Arc::from("public"),
                route: Some(route),
                canary: false,
                method: Some(http::Method::GET),
                host: Some(http::HeaderValue::from_static("api.example.com:8080")),
                path,
                protocol: http::Version::HTTP_11,
                tls: false,
                client: SocketAddr::from(([10, 0, (r >> 16) as u8, (r >> 24) as u8], 40_000)),
                user_agent: Some(http::HeaderValue::from_static("wrk/4.2.0")),
                status,
                error: None,
                error_message: None,
                integration: IntegrationOutcome {
                    kind: Some("http"),
                    status: Some(status),
                    error: None,
                    // As the gateway records it for a sampled request.
                    url: Some("http://127.0.0.1:8081/bench/hello".into()),
                },
                decisions: Decisions::default(),
                bytes_in: 0,
                bytes_out: 128,
                timing: Timing {
                    received_at: UNIX_EPOCH + now - span + offset,
                    routed: Some(Duration::from_micros(20)),
                    integration_start: Some(Duration::from_micros(40)),
                    integration_response: Some(latency - Duration::from_micros(50)),
                    integration_end: Some(latency - Duration::from_micros(20)),
                    done: latency,
                },
                websocket: None,
                execution: None,
            }
        })
        .collect()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn per(duration: Duration, n: usize) -> f64 {
    duration.as_nanos() as f64 / n.max(1) as f64
}

/// CPU time of the calling thread, from Linux's `/proc/thread-self/schedstat`.
fn thread_cpu() -> Duration {
    cpu_ns("/proc/thread-self/schedstat")
}

/// CPU time of every thread of the process.
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
