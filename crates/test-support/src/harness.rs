//! An in-process gateway started from a YAML string, with the exchange records it publishes.
//!
//! The harness subscribes one consumer to the telemetry bus, so a test sees every record the
//! gateway publishes. [`GatewayHarness::settle`] is the way to assert "exactly one record per
//! request": once the gateway has no connection left open, every recorder has been published (a
//! record is published at the latest when its connection task ends), so draining the queue then
//! yields all records, with no waiting for absence.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use gatehouse_proxy::{Gateway, Listener, Phase, Runtime};
use gatehouse_telemetry::{Bus, BusBuilder, Exchange, ExecutionLogSettings};
use tokio::sync::mpsc;

use crate::upstream::Upstream;
use crate::wait::eventually;

/// Prepended to a config that has no `listeners` section, so the gateway gets an ephemeral port.
const DEFAULT_LISTENER: &str = "listeners:\n  - { name: main, bind: \"127.0.0.1:0\" }\n";

/// How long harness helpers wait for records and connections before failing the test.
pub const RECORD_WAIT: Duration = Duration::from_secs(5);

/// Options for starting a [`GatewayHarness`].
pub struct HarnessBuilder {
    yaml: String,
    env: BTreeMap<String, String>,
    dir: Option<PathBuf>,
    bus_capacity: usize,
    phases: Vec<Arc<dyn Phase>>,
    execution_logs: Vec<(String, Arc<ExecutionLogSettings>)>,
}

impl std::fmt::Debug for HarnessBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarnessBuilder")
            .field("env", &self.env)
            .field("phases", &self.phases.len())
            .finish_non_exhaustive()
    }
}

impl HarnessBuilder {
    /// Makes `${name}` in the config expand to `value`.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.insert(name.to_owned(), value.into());
        self
    }

    /// Sets `${UPSTREAM}` to the upstream's base URL.
    pub fn upstream(self, upstream: &Upstream) -> Self {
        self.env("UPSTREAM", upstream.url())
    }

    /// The directory relative paths in the config are resolved against (default: the current one).
    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// The length of the test's record queue (default 4096); a full queue drops records.
    pub fn bus_capacity(mut self, capacity: usize) -> Self {
        self.bus_capacity = capacity;
        self
    }

    /// Adds a pipeline phase; phases run in the order they were added.
    pub fn phase(mut self, phase: Arc<dyn Phase>) -> Self {
        self.phases.push(phase);
        self
    }

    /// Gives every route of stage `stage` these execution-log settings (as if its config said so).
    pub fn execution_log(mut self, stage: &str, settings: ExecutionLogSettings) -> Self {
        self.execution_logs
            .push((stage.to_owned(), Arc::new(settings)));
        self
    }

    /// Loads the config, binds its listeners and starts serving on the current runtime.
    pub async fn start(self) -> GatewayHarness {
        let has_listeners = self.yaml.lines().any(|line| line.starts_with("listeners:"));
        let yaml = if has_listeners {
            self.yaml
        } else {
            format!("{DEFAULT_LISTENER}{}", self.yaml)
        };
        let dir = self.dir.unwrap_or_else(|| PathBuf::from("."));
        let env = self.env;
        let loaded =
            gatehouse_config::load_str(&yaml, "test.yaml", &dir, &|name| env.get(name).cloned())
                .unwrap_or_else(|errors| {
                    panic!("the test config does not load:\n{errors}\n---\n{yaml}")
                });
        let mut bus = BusBuilder::new(self.bus_capacity);
        let records = bus.subscribe("test");
        let mut table = loaded.table;
        if !self.execution_logs.is_empty() {
            let logs = self.execution_logs;
            table = Arc::new(table.with_execution_logs(|route| {
                logs.iter()
                    .find(|(stage, _)| **stage == *route.stage)
                    .map_or_else(|| Arc::clone(&route.execution_log), |(_, s)| Arc::clone(s))
            }));
        }
        let runtime = Runtime {
            table,
            limits: loaded.settings.limits,
            tracer: loaded.settings.tracing.tracer(),
        };
        let gateway =
            Gateway::new(runtime, Arc::new(bus.build()), self.phases).expect("gateway starts");
        let mut addrs = Vec::new();
        for settings in loaded.settings.listeners {
            let listener = Listener::bind(settings).await.expect("listener binds");
            addrs.push(listener.local_addr().expect("listener address"));
            gateway.serve(listener);
        }
        GatewayHarness {
            addrs,
            gateway,
            records,
            stopped: false,
        }
    }
}

/// A gateway serving on loopback; it is shut down when dropped.
pub struct GatewayHarness {
    addrs: Vec<SocketAddr>,
    gateway: Arc<Gateway>,
    records: mpsc::Receiver<Arc<Exchange>>,
    stopped: bool,
}

impl std::fmt::Debug for GatewayHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHarness")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl GatewayHarness {
    /// Starts configuring a gateway. A config without `listeners` gets one on 127.0.0.1:0.
    pub fn builder(yaml: impl Into<String>) -> HarnessBuilder {
        HarnessBuilder {
            yaml: yaml.into(),
            env: BTreeMap::new(),
            dir: None,
            bus_capacity: 4096,
            phases: Vec::new(),
            execution_logs: Vec::new(),
        }
    }

    /// Starts a gateway whose `${UPSTREAM}` is `upstream`'s URL.
    pub async fn with_upstream(yaml: &str, upstream: &Upstream) -> Self {
        Self::builder(yaml).upstream(upstream).start().await
    }

    /// The address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The addresses of all listeners, in config order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `http://ADDR{path}` on the first listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// `https://ADDR{path}` on the first listener.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr())
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    pub fn bus(&self) -> &Arc<Bus> {
        self.gateway.bus()
    }

    /// The next record, failing the test if none arrives within `within`.
    pub async fn next_record(&mut self, within: Duration) -> Arc<Exchange> {
        match tokio::time::timeout(within, self.records.recv()).await {
            Ok(Some(record)) => record,
            Ok(None) => panic!("the record queue closed"),
            Err(_) => panic!("no exchange record within {within:?}"),
        }
    }

    /// The next `n` records, failing the test if they do not all arrive within `within`.
    pub async fn records_until(&mut self, n: usize, within: Duration) -> Vec<Arc<Exchange>> {
        let deadline = tokio::time::Instant::now() + within;
        let mut records = Vec::with_capacity(n);
        while records.len() < n {
            match tokio::time::timeout_at(deadline, self.records.recv()).await {
                Ok(Some(record)) => records.push(record),
                Ok(None) => panic!(
                    "the record queue closed after {} of {n} records",
                    records.len()
                ),
                Err(_) => panic!(
                    "only {} of {n} exchange records within {within:?}",
                    records.len()
                ),
            }
        }
        records
    }

    /// Waits until no client connection is open, then returns every record not yet taken.
    ///
    /// Drop or close the test's clients first. Since a record is published at the latest when its
    /// connection ends, the result is complete: use it to assert that a request yielded exactly
    /// one record.
    pub async fn settle(&mut self) -> Vec<Arc<Exchange>> {
        let listeners = self.addrs.len();
        let gateway = Arc::clone(&self.gateway);
        eventually(RECORD_WAIT, || {
            let gateway = Arc::clone(&gateway);
            async move { gateway.open_connections() <= listeners }
        })
        .await;
        let mut records = Vec::new();
        while let Ok(record) = self.records.try_recv() {
            records.push(record);
        }
        records
    }

    /// [`settle`](Self::settle), asserting that exactly one record was published, and returns it.
    pub async fn only_record(&mut self) -> Arc<Exchange> {
        let mut records = self.settle().await;
        assert_eq!(
            records.len(),
            1,
            "expected exactly one exchange record, got {records:#?}"
        );
        records.remove(0)
    }

    /// Shuts the gateway down, giving in-flight requests `grace`; returns whether all drained.
    pub async fn shutdown(&mut self, grace: Duration) -> bool {
        self.stopped = true;
        self.gateway.shutdown(grace).await
    }
}

impl Drop for GatewayHarness {
    fn drop(&mut self) {
        if self.stopped || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        // The first poll of `shutdown` cancels every connection and stops the accept loops;
        // the rest is torn down with the test's runtime.
        let _ = self.gateway.shutdown(Duration::ZERO).now_or_never();
    }
}
