//! The admin API's view of a running gateway: the binary's implementation of
//! `gatehouse_admin::Control` over the [`Reloader`], kept apart from the wiring in `serve.rs`.

use serde_json::{Value, json};

use gatehouse_telemetry::metrics::{
    register_alarm_notifications, register_bus_drops, register_process_metrics,
};

use super::{Reloader, summary_json};
use crate::logs_runtime::LogsRuntime;
use crate::traces_runtime::TracesStatus;

fn logs_disabled() -> gatehouse_admin::ApiError {
    gatehouse_admin::ApiError::Unavailable(
        "the log store is off (it needs the store: metrics or a store log destination)".into(),
    )
}

fn traces_disabled() -> gatehouse_admin::ApiError {
    gatehouse_admin::ApiError::Unavailable(
        "the trace store is off (it needs the store: metrics or a store log destination)".into(),
    )
}

pub(super) fn disabled() -> gatehouse_admin::ApiError {
    gatehouse_admin::ApiError::Unavailable(
        "metrics are disabled in the config (metrics.enabled)".into(),
    )
}

impl gatehouse_admin::Control for Reloader {
    fn reload(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, Vec<String>>> + Send + '_>>
    {
        Box::pin(self.reload_now())
    }

    fn prometheus(&self) -> Option<String> {
        let metrics = self.metrics.as_ref()?;
        metrics
            .handle
            .set_open_websockets(self.gateway.open_websockets());
        let consumers = self.gateway.bus().stats();
        let notifications = metrics.notifier.stats();
        Some(metrics.handle.render_prometheus_with(|registry| {
            register_bus_drops(registry, &consumers);
            register_process_metrics(registry);
            let counts = [
                notifications.delivered,
                notifications.failed,
                notifications.dropped,
            ];
            register_alarm_notifications(registry, counts);
        }))
    }

    fn query_metrics(
        &self,
        query: gatehouse_admin::MetricsQuery,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move {
            match &self.metrics {
                Some(metrics) => crate::metrics_api::query(&metrics.store, query).await,
                None => Err(disabled()),
            }
        })
    }

    fn alarms(&self) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move { Ok(self.alarm_registry()?.list().await) })
    }

    fn alarm(
        &self,
        name: String,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move { self.alarm_registry()?.get(&name).await })
    }

    fn put_alarm(
        &self,
        name: String,
        body: Value,
    ) -> gatehouse_admin::BoxFuture<'_, Result<gatehouse_admin::Written, gatehouse_admin::ApiError>>
    {
        Box::pin(async move { self.alarm_registry()?.put(name, body).await })
    }

    fn delete_alarm(
        &self,
        name: String,
    ) -> gatehouse_admin::BoxFuture<'_, Result<(), gatehouse_admin::ApiError>> {
        Box::pin(async move { self.alarm_registry()?.delete(name).await })
    }

    fn alarm_history(
        &self,
        alarm: Option<String>,
        since: Option<String>,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move {
            match &self.metrics {
                Some(metrics) => crate::alarms_api::history(&metrics.store, alarm, since).await,
                None => Err(disabled()),
            }
        })
    }

    fn list_metrics(
        &self,
        since: Option<String>,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move {
            match &self.metrics {
                Some(metrics) => crate::metrics_api::list(&metrics.store, since).await,
                None => Err(disabled()),
            }
        })
    }

    fn log_groups(
        &self,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move {
            match self.store() {
                Some(store) => crate::logs_api::groups(store).await,
                None => Err(logs_disabled()),
            }
        })
    }

    fn query_logs(
        &self,
        query: gatehouse_admin::LogsQuery,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move {
            match self.store() {
                Some(store) => crate::logs_api::query(store, query).await,
                None => Err(logs_disabled()),
            }
        })
    }

    fn tail_logs(
        &self,
        query: gatehouse_admin::TailQuery,
    ) -> Result<gatehouse_admin::LogTail, gatehouse_admin::ApiError> {
        match &self.logs {
            Some(logs) => crate::logs_api::tail(&logs.tail, query),
            None => Err(logs_disabled()),
        }
    }

    fn trace(
        &self,
        id: String,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move {
            match &self.traces {
                Some(traces) => crate::traces_api::trace(traces.store(), id).await,
                None => Err(traces_disabled()),
            }
        })
    }

    fn receive_spans(
        &self,
        encoding: gatehouse_admin::OtlpEncoding,
        body: bytes::Bytes,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Vec<u8>, gatehouse_admin::ApiError>> {
        Box::pin(async move {
            match &self.traces {
                Some(traces) => crate::traces_api::receive(traces.store(), encoding, &body),
                None => Err(traces_disabled()),
            }
        })
    }

    fn search_traces(
        &self,
        query: gatehouse_admin::TracesQuery,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move {
            match &self.traces {
                Some(traces) => crate::traces_api::search(traces.store(), query).await,
                None => Err(traces_disabled()),
            }
        })
    }

    fn graph(
        &self,
        query: gatehouse_admin::GraphQuery,
    ) -> gatehouse_admin::BoxFuture<'_, Result<Value, gatehouse_admin::ApiError>> {
        Box::pin(async move {
            match &self.traces {
                Some(traces) => crate::graph_api::graph(traces.store(), query).await,
                None => Err(traces_disabled()),
            }
        })
    }

    fn status(&self) -> Value {
        let config = summary_json(&self.current.lock().unwrap_or_else(|p| p.into_inner()));
        let consumers: Vec<Value> = self
            .gateway
            .bus()
            .stats()
            .into_iter()
            .map(|c| json!({"name": c.name, "delivered": c.delivered, "dropped": c.dropped, "queued": c.queued}))
            .collect();
        let notifications = self.metrics.as_ref().map(|metrics| {
            let stats = metrics.notifier.stats();
            json!({"delivered": stats.delivered, "failed": stats.failed, "dropped": stats.dropped})
        });
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": self.started.elapsed().as_secs(),
            "config": config,
            "telemetry": { "consumers": consumers },
            "alarms": { "notifications": notifications },
            "logs": self.logs.as_ref().map(LogsRuntime::status),
            "traces": self.traces.as_ref().map(TracesStatus::json),
        })
    }
}
