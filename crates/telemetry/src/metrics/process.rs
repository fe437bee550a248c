//! The standard Prometheus process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, …), read from `/proc/self` at scrape time, with the names the
//! official client libraries use so existing dashboards work. On systems without `/proc` they are
//! left out.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Clock ticks per second and page size of Linux on the platforms Gatehouse targets.
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_SIZE: f64 = 4096.0;

/// Adds the process metrics of the current process to `registry`.
pub fn register_process_metrics(registry: &mut Registry) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the parenthesised command name, which may itself contain spaces.
    let Some(fields) = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>())
    else {
        return;
    };
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (utime, stime, threads, start_ticks) = (field(14), field(15), field(20), field(22));

    let cpu = Counter::<f64, AtomicU64>::default();
    cpu.inc_by((utime + stime) / TICKS_PER_SECOND);
    registry.register(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        cpu,
    );

    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let mut pages = statm
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        let (size, resident) = (pages.next().unwrap_or(0.0), pages.next().unwrap_or(0.0));
        let virtual_bytes = Gauge::<f64, AtomicU64>::default();
        virtual_bytes.set(size * PAGE_SIZE);
        registry.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            virtual_bytes,
        );
        let resident_bytes = Gauge::<f64, AtomicU64>::default();
        resident_bytes.set(resident * PAGE_SIZE);
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            resident_bytes,
        );
    }

    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let open = Gauge::<i64>::default();
        open.set(i64::try_from(entries.count()).unwrap_or(i64::MAX));
        registry.register("process_open_fds", "Number of open file descriptors", open);
    }

    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix("btime ")?.trim().parse::<f64>().ok())
    });
    if let Some(boot_time) = boot_time {
        let start = Gauge::<f64, AtomicU64>::default();
        start.set(boot_time + start_ticks / TICKS_PER_SECOND);
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            start,
        );
    }

    let thread_count = Gauge::<i64>::default();
    thread_count.set(threads as i64);
    registry.register(
        "process_threads",
        "Number of OS threads in the process",
        thread_count,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_read_from_proc() {
        let mut registry = Registry::default();
        register_process_metrics(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
            "process_threads",
        ] {
            assert!(
                text.contains(&format!("\n{name} ")),
                "{name} missing from:\n{text}"
            );
        }
    }
}
