//! The data plane: listeners, routing, pipeline phases and integrations.
//!
//! A [`Gateway`] holds everything requests share: the compiled routing table and limits (swapped
//! whole on reload), the upstream connection pools, the pipeline phases and the telemetry bus.
//! The binary binds [`Listener`]s and hands them to [`Gateway::serve`].
//!
//! **Architecture invariant:** a request reads the routing table once, when its head arrives,
//! and finishes on that table even if a reload swaps in another meanwhile.
//!
//! **Architecture invariant:** this crate never depends on storage or the admin API; it only
//! publishes [`gatehouse_telemetry::Exchange`] records.

mod body;
mod conn;
mod error;
mod headers;
mod integration;
mod phase;
mod record;
mod service;
mod tls;
mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use gatehouse_config::{Limits, RouteTable};
use gatehouse_telemetry::Bus;
use gatehouse_telemetry::trace::Tracer;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use body::ResponseBody;
pub use conn::Listener;
pub use error::{GatewayError, error_body, error_response};
pub use phase::{Phase, PhaseContext, PhaseOutcome};
pub use tls::TlsError;

use conn::Connections;
use integration::http::Upstream;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("listener '{name}': cannot bind {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("listener TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("upstream TLS setup: {0}")]
    UpstreamTls(#[from] rustls::Error),
}

/// What a reload swaps: the routing table, the limits and the tracing rules, always together.
#[derive(Debug)]
pub struct Runtime {
    pub table: Arc<RouteTable>,
    pub limits: Limits,
    /// Trace context and sampling (`TracingSettings::tracer`).
    pub tracer: Tracer,
}

/// The shared state of the data plane.
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    bus: Arc<Bus>,
    upstream: Upstream,
    phases: Box<[Arc<dyn Phase>]>,
    connections: Connections,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("phases", &self.phases.len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds a gateway. `max_connections` of `runtime.limits` is fixed for the process lifetime.
    pub fn new(
        runtime: Runtime,
        bus: Arc<Bus>,
        phases: Vec<Arc<dyn Phase>>,
    ) -> Result<Arc<Self>, ListenerError> {
        let connections = Connections {
            limit: Arc::new(Semaphore::new(runtime.limits.max_connections)),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            open_websockets: Arc::default(),
        };
        Ok(Arc::new(Self {
            runtime: ArcSwap::from_pointee(runtime),
            bus,
            upstream: Upstream::new()?,
            phases: phases.into(),
            connections,
        }))
    }

    /// Swaps in a new routing table, limits and tracing rules. Requests already routed finish on the old table.
    pub fn swap(&self, runtime: Runtime) {
        self.runtime.store(Arc::new(runtime));
    }

    /// The routing table and limits new requests use.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub(crate) fn limits(&self) -> Limits {
        self.runtime.load().limits.clone()
    }

    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// Starts accepting on `listener` in the background until [`Gateway::shutdown`].
    pub fn serve(self: &Arc<Self>, listener: Listener) {
        let gateway = Arc::clone(self);
        self.connections
            .tracker
            .spawn(conn::accept_loop(listener, gateway));
    }

    /// WebSocket connections being relayed right now.
    pub fn open_websockets(&self) -> i64 {
        self.connections
            .open_websockets
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connections (and WebSocket relays) currently open.
    pub fn open_connections(&self) -> usize {
        // The tracker also counts one accept loop per listener.
        self.connections.tracker.len()
    }

    /// Stops accepting, asks every connection to finish its in-flight requests, and waits up to
    /// `grace` for them. Returns whether everything drained in time; what is left is dropped.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.connections.shutdown.cancel();
        self.connections.tracker.close();
        tokio::time::timeout(grace, self.connections.tracker.wait())
            .await
            .is_ok()
    }
}
