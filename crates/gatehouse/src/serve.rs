//! Running a gateway: load the config, start the telemetry consumers, the data plane and the
//! admin API, then react to signals (SIGHUP reloads, SIGTERM and Ctrl-C drain and stop).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use gatehouse_alarms::{DEFAULT_INTERVAL, Evaluator, EvaluatorHandle, WebhookNotifier};
use gatehouse_config::{ConfigErrors, Loaded, Settings};
use gatehouse_proxy::{Gateway, Listener, Runtime};
use gatehouse_store::{MetricWriter, Store};
use gatehouse_telemetry::metrics::{
    FanOut, MetricPoint, MetricSink, MetricsAggregator, MetricsConfig, MetricsHandle, OtlpConfig,
    OtlpExporter, OtlpHandle, SystemClock,
};
use gatehouse_telemetry::{AccessLogConfig, AccessLogHandle, AccessLogWriter, BusBuilder};
use serde_json::{Value, json};

use crate::logs_runtime::LogsRuntime;
use crate::traces_runtime::{TracesRuntime, TracesStatus};
use tokio_util::sync::CancellationToken;

mod control;

/// Where the config comes from: a file (re-read on every reload) or text built in (the demo).
#[derive(Clone)]
pub(crate) enum Source {
    File(PathBuf),
    Embedded {
        name: &'static str,
        text: String,
        env: HashMap<String, String>,
    },
}

impl Source {
    fn load(&self) -> Result<Loaded, ConfigErrors> {
        match self {
            Source::File(path) => gatehouse_config::load_file(path),
            Source::Embedded { name, text, env } => {
                let lookup = |key: &str| env.get(key).cloned().or_else(|| std::env::var(key).ok());
                gatehouse_config::load_str(text, name, std::path::Path::new("."), &lookup)
            }
        }
    }
}

/// Reads and compiles the config on the blocking pool: file I/O never runs on a runtime thread.
async fn load_off_runtime(source: &Source) -> anyhow::Result<Result<Loaded, ConfigErrors>> {
    let source = source.clone();
    tokio::task::spawn_blocking(move || source.load())
        .await
        .context("the config loader task failed")
}

/// A started gateway.
pub(crate) struct Running {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) control: Arc<Reloader>,
    pub(crate) listeners: Vec<(String, SocketAddr, bool)>,
    pub(crate) admin: Option<SocketAddr>,
    admin_shutdown: CancellationToken,
    admin_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    access_log: Option<AccessLogWriter>,
    metrics: Option<MetricsRuntime>,
    traces: Option<TracesRuntime>,
    store: Option<Store>,
}

/// Loads the config and serves it until a termination signal.
pub(crate) async fn run(source: Source, grace: Duration) -> anyhow::Result<()> {
    let running = start(source).await?;
    running.wait_for_signals(grace).await
}

pub(crate) async fn start(source: Source) -> anyhow::Result<Running> {
    let loaded = load_off_runtime(&source)
        .await?
        .map_err(|errors| anyhow!("the config is invalid:\n{errors}"))?;
    let settings = loaded.settings.clone();

    let mut bus = BusBuilder::new(settings.telemetry.bus_capacity);
    let store = if crate::logs_runtime::needs_store(&settings) {
        Some(crate::logs_runtime::open_store(&settings).await?)
    } else {
        None
    };
    let logs = match &store {
        Some(store) => Some(LogsRuntime::start(store.clone(), &settings).await?),
        None => None,
    };
    // With every access and execution log off there is no writer and no queue; turning one on
    // needs a restart.
    let access_log_config = settings.access_log_config();
    let access_log = if any_access_log(&access_log_config)
        || crate::logs_runtime::any_execution_log(&settings)
    {
        Some(AccessLogWriter::spawn(
            bus.subscribe("access_log"),
            access_log_config,
            logs.as_ref().map(LogsRuntime::sink),
        )?)
    } else {
        None
    };
    let metrics = match (&store, settings.metrics.enabled) {
        (Some(store), true) => {
            let file = loaded.source.file.display().to_string();
            Some(start_metrics(&settings, store.clone(), file, bus.subscribe("metrics")).await?)
        }
        _ => None,
    };
    let traces = match &store {
        Some(store) => Some(
            TracesRuntime::start(
                store.clone(),
                // Only sampled requests enter the recorder's queue; the rest cost it nothing.
                bus.subscribe_filtered("traces", gatehouse_telemetry::spans::is_sampled),
                settings.tracing.otlp.as_ref(),
                settings.tracing.retention_days,
            )
            .await?,
        ),
        None => None,
    };
    let gateway = Gateway::new(
        Runtime {
            table: Arc::clone(&loaded.table),
            limits: settings.limits.clone(),
            tracer: settings.tracing.tracer(),
        },
        Arc::new(bus.build()),
        Vec::new(),
    )?;

    let mut listeners = Vec::new();
    for listener_settings in &settings.listeners {
        let listener = Listener::bind(listener_settings.clone()).await?;
        let addr = listener.local_addr()?;
        tracing::info!(listener = listener.name(), %addr, tls = listener.is_tls(), "listening");
        listeners.push((listener.name().to_owned(), addr, listener.is_tls()));
        gateway.serve(listener);
    }

    let control = Arc::new(Reloader {
        source,
        gateway: Arc::clone(&gateway),
        access_log: access_log.as_ref().map(AccessLogWriter::handle),
        metrics: metrics.clone(),
        logs,
        traces: traces.as_ref().map(TracesRuntime::status),
        current: Mutex::new(loaded),
        started: Instant::now(),
        reloading: tokio::sync::Mutex::new(()),
    });
    let admin_shutdown = CancellationToken::new();
    let admin = match &settings.admin {
        Some(admin) => {
            let listener = gatehouse_admin::bind(admin.bind)
                .await
                .with_context(|| format!("admin API: cannot bind {}", admin.bind))?;
            let addr = listener.local_addr()?;
            let router = gatehouse_admin::router(
                Arc::clone(&control) as Arc<dyn gatehouse_admin::Control>,
                admin.token.expose(),
            );
            let task = tokio::spawn(gatehouse_admin::serve(
                listener,
                router,
                admin_shutdown.clone(),
            ));
            tracing::info!(%addr, "admin API listening");
            Some((addr, task))
        }
        None => None,
    };
    let (admin, admin_task) = admin.map_or((None, None), |(addr, task)| (Some(addr), Some(task)));
    Ok(Running {
        gateway,
        control,
        listeners,
        admin,
        admin_shutdown,
        admin_task,
        access_log,
        metrics,
        traces,
        store,
    })
}

/// The metrics pipeline: the store under `data_dir` and the aggregator feeding it.
#[derive(Clone)]
pub(crate) struct MetricsRuntime {
    pub(crate) store: Store,
    pub(crate) handle: MetricsHandle,
    pub(crate) alarms: Arc<crate::alarm_registry::AlarmRegistry>,
    notifier: WebhookNotifier,
    alarm_thread: Arc<Mutex<Option<EvaluatorHandle>>>,
    otlp: Arc<Mutex<Option<OtlpHandle>>>,
}

/// Hands each closed minute to the store's writer (which never blocks; a full queue is counted).
struct StoreSink(MetricWriter);

impl MetricSink for StoreSink {
    fn write(&mut self, minute_start_unix: i64, points: Vec<MetricPoint>) {
        if !self.0.submit(minute_start_unix, points) {
            tracing::warn!(
                minute = minute_start_unix,
                "metric store queue full; a minute of metrics was dropped"
            );
        }
    }
}

async fn start_metrics(
    settings: &Settings,
    store: Store,
    config_file: String,
    records: tokio::sync::mpsc::Receiver<Arc<gatehouse_telemetry::Exchange>>,
) -> anyhow::Result<MetricsRuntime> {
    let mut sinks: Vec<Box<dyn MetricSink>> = vec![Box::new(StoreSink(store.metrics_writer()))];
    let otlp = match &settings.metrics.otlp {
        Some(otlp) => {
            let (exporter, handle) = OtlpExporter::spawn(OtlpConfig {
                endpoint: otlp.endpoint.clone(),
                headers: otlp.headers.clone(),
                timeout: otlp.timeout,
                service_name: "gatehouse".into(),
                service_instance_id: instance_id(),
            })?;
            tracing::info!(endpoint = %otlp.endpoint, "exporting metrics over OTLP/HTTP");
            sinks.push(Box::new(exporter));
            Some(handle)
        }
        None => None,
    };
    let handle = MetricsAggregator::spawn(
        records,
        MetricsConfig {
            max_series: settings.metrics.max_series,
            ..MetricsConfig::default()
        },
        Box::new(FanOut(sinks)),
        Arc::new(SystemClock),
    )?;

    let notifier = WebhookNotifier::new(tokio::runtime::Handle::current())?;
    // With no alarms yet this reads nothing; the registry adds the file's and the API's.
    let evaluator = Evaluator::new(
        store.clone(),
        Vec::new(),
        Arc::new(SystemClock),
        Arc::new(notifier.clone()),
    )?;
    let alarm_thread = evaluator.clone().spawn(DEFAULT_INTERVAL)?;
    let alarms = crate::alarm_registry::AlarmRegistry::open(
        store.clone(),
        evaluator,
        settings.alarms.clone(),
        config_file,
    )
    .await
    .context("cannot start the alarms")?;
    Ok(MetricsRuntime {
        store,
        handle,
        alarms: Arc::new(alarms),
        notifier,
        alarm_thread: Arc::new(Mutex::new(Some(alarm_thread))),
        otlp: Arc::new(Mutex::new(otlp)),
    })
}

/// `service.instance.id` for OTLP: the host name and process id.
pub(crate) fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

impl Running {
    pub(crate) async fn wait_for_signals(self, grace: Duration) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    tracing::info!("SIGHUP received; reloading the config");
                    let _ = self.control.reload_now().await;
                }
                _ = terminate.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        self.stop(grace).await;
        Ok(())
    }

    /// Stops accepting, drains in-flight requests for at most `grace`, and flushes the access log.
    pub(crate) async fn stop(self, grace: Duration) {
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            "shutting down; draining in-flight requests"
        );
        self.admin_shutdown.cancel();
        let drained = self.gateway.shutdown(grace).await;
        if drained {
            tracing::info!("all connections drained");
        } else {
            tracing::warn!("grace period over; closing the connections still open");
        }
        let dropped = self.gateway.bus().dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "telemetry records were dropped because a consumer fell behind"
            );
        }
        // The admin router holds the controller, which holds the gateway and so the bus: let it
        // finish first, so that dropping the gateway closes the bus and the consumers drain.
        if let Some(task) = self.admin_task {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        drop(self.control);
        drop(self.gateway);
        if let Some(writer) = self.access_log {
            // The writer ends once every bus sender is gone; don't hang on stragglers.
            let joined = tokio::task::spawn_blocking(move || writer.join());
            let _ = tokio::time::timeout(Duration::from_secs(2), joined).await;
        }
        if let Some(traces) = self.traces {
            // The recorder hands over its last spans once every bus sender is gone.
            let joined = tokio::task::spawn_blocking(move || traces.join());
            let _ = tokio::time::timeout(Duration::from_secs(2), joined).await;
        }
        if let Some(metrics) = self.metrics {
            // The aggregator writes its open minutes when the bus closes; then the store commits.
            let closed = tokio::task::spawn_blocking(move || {
                let alarm_thread = metrics
                    .alarm_thread
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(alarm_thread) = alarm_thread {
                    alarm_thread.stop();
                }
                metrics.handle.join();
                let otlp = metrics
                    .otlp
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(otlp) = otlp {
                    let stats = otlp.join();
                    tracing::info!(
                        exported = stats.minutes_exported,
                        failed = stats.minutes_failed,
                        dropped = stats.minutes_dropped,
                        "OTLP export stopped"
                    );
                }
            });
            if tokio::time::timeout(Duration::from_secs(5), closed)
                .await
                .is_err()
            {
                tracing::warn!("the metrics pipeline did not stop in time");
            }
        }
        if let Some(store) = self.store {
            // Every producer (log writer, aggregator, alarms) has stopped: commit and close.
            let closed = tokio::task::spawn_blocking(move || store.close());
            if tokio::time::timeout(Duration::from_secs(5), closed)
                .await
                .is_err()
            {
                tracing::warn!("the store did not close in time");
            }
        }
    }
}

/// Reloads the config on demand (admin API, SIGHUP) and reports status.
pub(crate) struct Reloader {
    source: Source,
    gateway: Arc<Gateway>,
    access_log: Option<AccessLogHandle>,
    metrics: Option<MetricsRuntime>,
    /// The log store's runtime, when the store is open.
    logs: Option<LogsRuntime>,
    /// The trace recorder's counters and store, when the store is open.
    traces: Option<TracesStatus>,
    current: Mutex<Loaded>,
    started: Instant,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// The embedded store, when it is open.
    fn store(&self) -> Option<&Store> {
        self.logs.as_ref().map(|logs| &logs.store)
    }

    fn alarm_registry(
        &self,
    ) -> Result<&crate::alarm_registry::AlarmRegistry, gatehouse_admin::ApiError> {
        self.metrics
            .as_ref()
            .map(|metrics| &*metrics.alarms)
            .ok_or_else(control::disabled)
    }

    /// Loads, validates and swaps in the config. On error the old config keeps serving.
    pub(crate) async fn reload_now(&self) -> Result<Value, Vec<String>> {
        let _one_at_a_time = self.reloading.lock().await;
        let loaded = match load_off_runtime(&self.source).await {
            Err(error) => return Err(vec![error.to_string()]),
            Ok(Ok(loaded)) => loaded,
            Ok(Err(errors)) => {
                for error in errors.errors() {
                    tracing::warn!(error = %error, "config reload rejected");
                }
                return Err(errors.errors().iter().map(ToString::to_string).collect());
            }
        };
        {
            let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            warn_about_restart_only_changes(&current.settings, &loaded.settings);
        }
        if let Some(metrics) = &self.metrics {
            let file = loaded.source.file.display().to_string();
            let alarms = loaded.settings.alarms.clone();
            metrics.alarms.set_config(alarms, file).await;
        } else if !loaded.settings.alarms.is_empty() {
            tracing::warn!(
                "alarms need metrics; they are not evaluated while metrics.enabled is false"
            );
        }
        if let Some(logs) = &self.logs {
            logs.reload(&loaded.settings.logs).await;
        }
        if let Some(traces) = &self.traces {
            traces
                .set_retention(loaded.settings.tracing.retention_days)
                .await;
        }
        self.gateway.swap(Runtime {
            table: Arc::clone(&loaded.table),
            limits: loaded.settings.limits.clone(),
            tracer: loaded.settings.tracing.tracer(),
        });
        let access_log_config = loaded.settings.access_log_config();
        match &self.access_log {
            Some(writer) => writer.reconfigure(access_log_config),
            None if any_access_log(&access_log_config) => {
                tracing::warn!("access logs were off at start; turning them on takes a restart");
            }
            None => {}
        }
        let summary = summary_json(&loaded);
        tracing::info!(
            apis = loaded.summary.apis,
            stages = loaded.summary.stages,
            routes = loaded.summary.routes,
            "config reloaded"
        );
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(summary)
    }
}

fn warn_about_restart_only_changes(old: &Settings, new: &Settings) {
    if old.listeners != new.listeners {
        tracing::warn!("listener changes take effect only after a restart");
    }
    if old.admin != new.admin
        || old.telemetry != new.telemetry
        || old.limits.max_connections != new.limits.max_connections
    {
        tracing::warn!(
            "admin, telemetry and max_connections changes take effect only after a restart"
        );
    }
}

fn any_access_log(config: &AccessLogConfig) -> bool {
    config.default.is_some() || config.stages.iter().any(|s| s.log.is_some())
}

fn summary_json(loaded: &Loaded) -> Value {
    let summary = &loaded.summary;
    json!({
        "apis": summary.apis,
        "stages": summary.stages,
        "routes": summary.routes,
        "listeners": summary.listeners,
        "details": summary.api_details.iter().map(|api| json!({
            "name": api.name,
            "version": api.version,
            "host": api.host,
            "routes": api.routes,
            "stages": api.stages.iter().map(|(name, prefix)| json!({"name": name, "prefix": prefix})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
