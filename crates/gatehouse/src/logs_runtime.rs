//! The log side of a running gateway: the store sink the log writer feeds, live tail, metric
//! filters and retention.
//!
//! The embedded store opens when anything needs it: metrics, or a log (access or execution)
//! whose destination is the store. Log retention comes from the config's `logs` section: the
//! default applies to groups without an entry, and group patterns (`access/*`) are applied to
//! every existing group at start, on reload, and every [`RETENTION_REFRESH`] for groups created
//! since.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use gatehouse_config::{ExecutionLogLevel, LogsSettings, Settings};
use gatehouse_store::{Retention, Store, StoreConfig};
use gatehouse_telemetry::access_log::LogSink;
use serde_json::{Value, json};

use crate::log_sink::{SinkCounters, StoreLogSink};
use crate::metric_filters::{self, FilterCounters, MetricFilters, SharedFilters};
use crate::tail::TailHub;

/// How often group patterns are applied to groups created since the last time.
const RETENTION_REFRESH: Duration = Duration::from_secs(600);

/// Whether the config needs the embedded store.
pub(crate) fn needs_store(settings: &Settings) -> bool {
    let access = settings.access_log_config();
    let access_to_store = access
        .default
        .iter()
        .chain(access.stages.iter().filter_map(|s| s.log.as_ref()))
        .any(|log| log.destinations.store);
    settings.metrics.enabled || access_to_store || any_execution_log(settings)
}

/// Whether some stage records execution logs.
pub(crate) fn any_execution_log(settings: &Settings) -> bool {
    settings
        .stage_logging
        .iter()
        .any(|stage| stage.execution_log.level != ExecutionLogLevel::Off)
}

/// Opens the store under `data_dir` off the runtime threads.
pub(crate) async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let config = StoreConfig {
        dir: settings.data_dir.clone(),
        retention: Retention {
            minute: settings.metrics.retention_minute,
            five_minutes: settings.metrics.retention_five_minutes,
            hour: settings.metrics.retention_hour,
        },
    };
    let dir = config.dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(config))
        .await
        .context("the store task failed")?
        .with_context(|| format!("cannot open the store in {}", dir.display()))?;
    tracing::info!(path = %store.path().display(), "store open");
    Ok(store)
}

/// The log side's shared parts: what the admin API reads and what a reload swaps.
#[derive(Clone)]
pub(crate) struct LogsRuntime {
    pub(crate) store: Store,
    pub(crate) tail: TailHub,
    filters: SharedFilters,
    sink: Arc<SinkCounters>,
    filter_counters: Arc<FilterCounters>,
}

impl LogsRuntime {
    /// Compiles the metric filters (refusing bad ones) and applies retention.
    pub(crate) async fn start(store: Store, settings: &Settings) -> anyhow::Result<Self> {
        let filters = compile_filters(&settings.logs)?;
        let runtime = Self {
            store,
            tail: TailHub::default(),
            filters: Arc::new(arc_swap::ArcSwap::from_pointee(filters)),
            sink: Arc::default(),
            filter_counters: Arc::default(),
        };
        runtime.apply_retention(settings.logs.clone()).await;
        crate::logging::connect_store(runtime.store.log_writer(), runtime.tail.clone());
        let refresher = runtime.clone();
        let logs = settings.logs.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RETENTION_REFRESH);
            every.tick().await;
            loop {
                every.tick().await;
                refresher.apply_retention(logs.clone()).await;
            }
        });
        Ok(runtime)
    }

    /// The sink the log writer thread feeds.
    pub(crate) fn sink(&self) -> Box<dyn LogSink> {
        let filters = MetricFilters::new(
            Arc::clone(&self.filters),
            Some(self.store.metrics_writer()),
            Arc::clone(&self.filter_counters),
        );
        Box::new(StoreLogSink::new(
            self.store.log_writer(),
            self.tail.clone(),
            filters,
            Arc::clone(&self.sink),
        ))
    }

    /// Swaps in a reloaded config's metric filters and retention. The config was validated, so
    /// the filters compile.
    pub(crate) async fn reload(&self, logs: &LogsSettings) {
        match compile_filters(logs) {
            Ok(filters) => self.filters.store(Arc::new(filters)),
            Err(error) => tracing::error!(%error, "metric filters kept from the previous config"),
        }
        self.apply_retention(logs.clone()).await;
    }

    /// Sets the default retention and each existing group's own, from the config.
    async fn apply_retention(&self, logs: LogsSettings) {
        let store = self.store.clone();
        let applied = tokio::task::spawn_blocking(move || {
            store.set_default_log_retention(Some(days(logs.retention)))?;
            for group in store.log_groups()? {
                let wanted = logs
                    .groups
                    .iter()
                    .any(|g| gatehouse_config::glob_match(&g.pattern, &group.name))
                    .then(|| days(logs.retention_for(&group.name)));
                if wanted != group.retention_days {
                    store.set_log_retention(&group.name, wanted)?;
                }
            }
            Ok::<_, gatehouse_store::StoreError>(())
        })
        .await;
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot apply the log retention"),
            Err(error) => tracing::warn!(%error, "the log retention task failed"),
        }
    }

    /// Counters for `/admin/status`.
    pub(crate) fn status(&self) -> Value {
        let (followers, tailed) = self.tail.stats();
        json!({
            "linesStored": self.sink.lines.load(Ordering::Relaxed),
            "linesDropped": self.sink.dropped.load(Ordering::Relaxed),
            "tailFollowers": followers,
            "linesTailed": tailed,
            "metricFilterMatches": self.filter_counters.matched.load(Ordering::Relaxed),
            "metricFilterSeriesFolded": self.filter_counters.folded.load(Ordering::Relaxed),
            "metricFilterMinutesDropped": self.filter_counters.minutes_dropped.load(Ordering::Relaxed),
            "gatewayLinesDropped": crate::logging::dropped(),
        })
    }
}

fn compile_filters(logs: &LogsSettings) -> anyhow::Result<metric_filters::FilterSet> {
    metric_filters::compile(&logs.metric_filters).map_err(|errors| {
        let text: Vec<String> = errors
            .iter()
            .map(|e| format!("metric filter '{}': {}", e.name, e.message))
            .collect();
        anyhow::anyhow!(text.join("; "))
    })
}

/// Whole days, at least one.
fn days(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs() / 86_400)
        .unwrap_or(u32::MAX)
        .max(1)
}
