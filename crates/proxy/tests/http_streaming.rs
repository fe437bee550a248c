//! Large bodies stream through the gateway both ways without being buffered whole.
//!
//! Two independent proofs per direction: the far side sees the first half of the body while the
//! near side holds back the second half (a gateway that buffered whole bodies would deadlock and
//! time out), and the process's peak resident memory grows by far less than the body size.

use std::io;
use std::time::Duration;

use futures_util::StreamExt;
use gatehouse_test_support::{
    Checksum, GatewayHarness, PATTERN_CHUNK, Upstream, http_client, pattern_checksum,
    pattern_chunks, peak_rss_bytes, reset_peak_rss, rss_bytes, wait_until,
};

const MIB: u64 = 1024 * 1024;
const TOTAL: u64 = 100 * MIB;
const HALF: u64 = TOTAL / 2;
/// Much less than the body: what a streaming gateway, its socket buffers and the test need.
const MAX_PEAK_GROWTH: u64 = 40 * MIB;
const CALL: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
limits:
  max_payload_bytes: 209715200
apis:
  - name: bulk
    stages: [{ name: prod }]
    routes:
      - path: '/up/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/{proxy}' }
"#;

/// The memory probe is process-wide, so the tests that read it take turns.
static MEMORY_PROBE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Measures the growth of the peak resident set while `work` runs.
struct PeakGrowth {
    baseline: Option<u64>,
}

impl PeakGrowth {
    fn start() -> Self {
        let baseline = if reset_peak_rss() {
            rss_bytes()
        } else {
            peak_rss_bytes()
        };
        Self { baseline }
    }

    fn check(self) {
        let (Some(baseline), Some(peak)) = (self.baseline, peak_rss_bytes()) else {
            return; // no /proc: the hold-back proof above still stands
        };
        let growth = peak.saturating_sub(baseline);
        assert!(
            growth < MAX_PEAK_GROWTH,
            "peak RSS grew by {} MiB",
            growth / MIB
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_100_mb_streams_through_without_buffering() {
    let _probe = MEMORY_PROBE.lock().await;
    let upstream = Upstream::start().await;
    let mut harness = GatewayHarness::with_upstream(CONFIG, &upstream).await;
    let growth = PeakGrowth::start();

    let watcher = upstream.clone();
    let body = futures_util::stream::iter(pattern_chunks(TOTAL).enumerate()).then(
        move |(index, chunk)| {
            let watcher = watcher.clone();
            async move {
                if index as u64 * PATTERN_CHUNK as u64 == HALF {
                    let seen = wait_until(CALL, || async { watcher.uploaded_bytes() > 0 }).await;
                    if !seen {
                        return Err(io::Error::other(
                            "the upstream got nothing of the first half: uploads are buffered",
                        ));
                    }
                }
                Ok(chunk)
            }
        },
    );
    let client = http_client();
    let response = tokio::time::timeout(
        CALL,
        client
            .post(harness.url("/prod/up/upload"))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.expect("upload JSON");
    assert_eq!(answer["length"], TOTAL);
    assert_eq!(answer["checksum"], pattern_checksum(TOTAL));
    growth.check();
    drop(client);

    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.error, record.bytes_in),
        (200, None, TOTAL)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_of_100_mb_streams_through_without_buffering() {
    let _probe = MEMORY_PROBE.lock().await;
    let upstream = Upstream::start().await;
    let mut harness = GatewayHarness::with_upstream(CONFIG, &upstream).await;
    let growth = PeakGrowth::start();

    let client = http_client();
    let url = harness.url(&format!("/prod/up/stream/{TOTAL}?hold_at={HALF}"));
    let mut response = tokio::time::timeout(CALL, client.get(url).send())
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(TOTAL));
    let mut sum = Checksum::new();
    let mut released = false;
    while let Some(chunk) = tokio::time::timeout(CALL, response.chunk())
        .await
        .expect("in time")
        .expect("body")
    {
        sum.update(&chunk);
        if !released && sum.len() >= HALF {
            // The whole first half arrived while the upstream still holds the second one back.
            assert_eq!(upstream.streamed_bytes(), HALF);
            upstream.release_streams();
            released = true;
        }
    }
    assert!(released);
    assert_eq!(sum.len(), TOTAL);
    assert_eq!(sum.hex(), pattern_checksum(TOTAL));
    growth.check();
    drop(client);

    let record = harness.only_record().await;
    assert_eq!(
        (record.status, record.error, record.bytes_out),
        (200, None, TOTAL)
    );
}
