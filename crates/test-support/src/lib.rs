//! What the data-plane tests share (STYLE.md §6): a real upstream server, an in-process gateway
//! started from YAML with its exchange records, HTTP clients (real and raw), and helpers that wait
//! for a condition instead of sleeping.
//!
//! Everything listens on 127.0.0.1 with ephemeral ports, so tests run in parallel without
//! stepping on each other.
//!
//! ```no_run
//! # async fn example() {
//! use gatehouse_test_support::{GatewayHarness, Upstream, http_client};
//!
//! let upstream = Upstream::start().await;
//! let yaml = "apis:
//!   - name: shop
//!     stages: [{ name: prod }]
//!     routes:
//!       - { path: '/echo/{proxy+}', integration: { type: http, url: '${UPSTREAM}/echo/{proxy}' } }
//! ";
//! let mut gateway = GatewayHarness::with_upstream(yaml, &upstream).await;
//! let client = http_client();
//! let response = client.get(gateway.url("/prod/echo/hi")).send().await.expect("response");
//! assert_eq!(response.status(), 200);
//! drop(client);
//! let record = gateway.only_record().await; // exactly one exchange record
//! assert_eq!(record.status, 200);
//! # }
//! ```

mod checksum;
mod expect;
mod harness;
mod raw;
mod tls;
mod upstream;
mod wait;

pub use checksum::{
    Checksum, PATTERN_CHUNK, checksum, pattern_checksum, pattern_chunk, pattern_chunks,
    pattern_stream,
};
pub use expect::{error_record, gateway_error, raw_gateway_error};
pub use harness::{GatewayHarness, HarnessBuilder, RECORD_WAIT};
pub use raw::{Closed, RAW_READ_TIMEOUT, RawClient, RawResponse};
pub use tls::{h2c_client, http_client, self_signed_cert, tls_client};
pub use upstream::{CLOSE_MID_BODY_SENT, SeenRequest, Upstream};
pub use wait::{
    eventually, free_addr, free_port, peak_rss_bytes, reset_peak_rss, rss_bytes, wait_until,
};
