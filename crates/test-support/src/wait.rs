//! Waiting without sleeping blindly, free ports and memory probes.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// How often [`eventually`] re-checks its condition.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// Re-checks `condition` until it holds, failing the test if it does not within `within`.
pub async fn eventually<F, Fut>(within: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !wait_until(within, condition).await {
        panic!("condition not met within {within:?}");
    }
}

/// Re-checks `condition` until it holds; `false` if it does not within `within`. For places where
/// a panic would not fail the test, such as a request body stream polled by the client's task.
pub async fn wait_until<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A loopback port nobody listens on right now (bound and released), e.g. for "connection refused".
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A loopback address nobody listens on right now.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The process's resident set size in bytes (`VmRSS`), where /proc is available.
pub fn rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|kib| kib * 1024)
}

/// The process's peak resident set size in bytes (`VmHWM`), where /proc is available.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// Resets the peak resident set size to the current one (Linux `clear_refs` 5); `false` if the
/// kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
