//! Access logs: one line per [`Exchange`], rendered with its stage's `$context.*` template and
//! sent to that stage's destinations (the store, files with rotation, standard output), by a
//! dedicated thread.
//!
//! The writer owns its own OS thread because writing to a file or a pipe may block; a blocked
//! write stalls only this consumer, whose queue then fills and drops (counted by the bus), never
//! the request path. It drains its queue on a short poll rather than parking on it, so publishing
//! a record never wakes a thread, and each destination gets one write per batch. Formats and
//! destinations are swapped on reload through an `ArcSwap` the thread checks once per batch;
//! records keep flowing meanwhile.
//!
//! `format` compiles templates, `variables` defines what each `$context.*` name reads, `presets`
//! holds the named formats, `escape` keeps values from breaking a line's syntax, `rotate` is the
//! rotating file, and `config` is the table of stages the writer is given.

mod clock;
mod config;
mod escape;
mod format;
mod presets;
mod rotate;
mod variables;

#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod writer_tests;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use crate::Exchange;

pub use config::{
    AccessLogConfig, FileDestination, LogDestinations, Rotation, StageAccessLog,
    StageAccessLogEntry, UNROUTED_GROUP, access_log_group,
};
pub use format::{AccessLogFormat, FormatError, FormatKind, variable_names};
pub use presets::Preset;
pub use rotate::RotatingFile;
pub use variables::RenderScratch;

/// Where `store` destinations' lines go: implemented by the binary over the store's batched log
/// writer. Called on the access-log thread only; `append` must not block for long (queue, and
/// count what a full queue drops), and `flush` ends each batch.
pub trait LogSink: Send {
    /// One rendered line (without a line break) for `group`, timestamped with the request's
    /// arrival in Unix milliseconds.
    fn append(&mut self, group: &Arc<str>, timestamp_ms: i64, line: &[u8]);
    /// The end of a batch: hand what was appended to the store.
    fn flush(&mut self);
}

/// Why the writer could not start.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("cannot open the access log file {}: {source}", path.display())]
    OpenFile { path: PathBuf, source: io::Error },
    #[error("cannot start the access log thread: {0}")]
    Thread(#[source] io::Error),
}

struct Shared {
    config: ArcSwap<AccessLogConfig>,
    write_errors: AtomicU64,
}

/// The access-log consumer of the bus.
pub struct AccessLogWriter {
    thread: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AccessLogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogWriter").finish_non_exhaustive()
    }
}

impl AccessLogWriter {
    /// Opens every file destination (creating parent directories) and starts the writer thread.
    /// `store` receives the lines of `store` destinations; without it they are dropped (with a
    /// warning). The thread ends, after flushing, once every sender of `rx` is dropped.
    pub fn spawn(
        rx: mpsc::Receiver<Arc<Exchange>>,
        config: AccessLogConfig,
        store: Option<Box<dyn LogSink>>,
    ) -> Result<Self, AccessLogError> {
        let config = Arc::new(config);
        let mut state = State {
            table: Table::default(),
            applied: Arc::clone(&config),
            files: Vec::new(),
            stdout: Vec::new(),
            pending: 0,
            store,
            store_pending: false,
            scratch: RenderScratch::default(),
            line: Vec::with_capacity(1024),
            events: Vec::new(),
        };
        state.apply(Arc::clone(&config), true)?;
        let shared = Arc::new(Shared {
            config: ArcSwap::new(config),
            write_errors: AtomicU64::new(0),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("gatehouse-access-log".into())
            .spawn(move || run(rx, state, &thread_shared))
            .map_err(AccessLogError::Thread)?;
        Ok(Self { thread, shared })
    }

    /// A handle for reloads and status, which outlives nothing: the thread ends with the bus.
    pub fn handle(&self) -> AccessLogHandle {
        AccessLogHandle(Arc::clone(&self.shared))
    }

    /// See [`AccessLogHandle::reconfigure`].
    pub fn reconfigure(&self, config: AccessLogConfig) {
        self.handle().reconfigure(config);
    }

    /// See [`AccessLogHandle::write_errors`].
    pub fn write_errors(&self) -> u64 {
        self.handle().write_errors()
    }

    /// Waits for the thread to flush and end; call after the bus is dropped.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("access log writer thread panicked");
        }
    }
}

/// Reconfigures a running writer and reads its counters.
#[derive(Clone)]
pub struct AccessLogHandle(Arc<Shared>);

impl std::fmt::Debug for AccessLogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogHandle").finish_non_exhaustive()
    }
}

impl AccessLogHandle {
    /// Swaps in new formats and destinations (on reload). The thread picks them up before its
    /// next batch; files no longer named are closed, new ones opened (a file that cannot be
    /// opened is skipped, logged and counted as a write error).
    pub fn reconfigure(&self, config: AccessLogConfig) {
        self.0.config.store(Arc::new(config));
    }

    /// Failed writes so far (each loses one batch of lines for one destination).
    pub fn write_errors(&self) -> u64 {
        self.0.write_errors.load(Ordering::Relaxed)
    }
}

/// How long the writer sleeps when its queue is empty. Polling, rather than parking on the
/// channel, means a request never pays for waking the writer thread (a futex call and a context
/// switch per record under load); lines reach the destination at most this late.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// Write out once this much is buffered, even if the queue is not yet empty.
const WRITE_CHUNK: usize = 256 * 1024;

fn run(mut rx: mpsc::Receiver<Arc<Exchange>>, mut state: State, shared: &Shared) {
    loop {
        let config = shared.config.load_full();
        if !Arc::ptr_eq(&config, &state.applied) {
            // Only start-up reports open failures; on reload they are counted and logged.
            let _ = state.apply(config, false);
        }
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(exchange) => {
                    state.record(&exchange);
                    if state.pending >= WRITE_CHUNK {
                        state.write_out(&shared.write_errors);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        state.write_out(&shared.write_errors);
        if closed {
            return;
        }
        std::thread::sleep(IDLE_POLL);
    }
}

/// A stage's format and destinations as the thread uses them.
struct Route {
    format: Arc<AccessLogFormat>,
    /// The store log group, when the store is a destination.
    group: Option<Arc<str>>,
    stdout: bool,
    /// Indices into `State::files`.
    files: Vec<usize>,
}

#[derive(Default)]
struct Table {
    default: Option<Route>,
    /// api → stage → route (`None`: disabled for that stage).
    stages: FxHashMap<Arc<str>, FxHashMap<Arc<str>, Option<Route>>>,
}

struct FileOut {
    file: RotatingFile,
    buffer: Vec<u8>,
}

struct State {
    table: Table,
    applied: Arc<AccessLogConfig>,
    files: Vec<FileOut>,
    stdout: Vec<u8>,
    /// Bytes buffered for files and stdout since the last write.
    pending: usize,
    store: Option<Box<dyn LogSink>>,
    /// Whether the store was given lines since its last flush.
    store_pending: bool,
    scratch: RenderScratch,
    line: Vec<u8>,
    /// Execution-log events of the current exchange, reused.
    events: Vec<String>,
}

impl State {
    /// Builds the routing table for `config`, keeping files that stay configured open.
    fn apply(&mut self, config: Arc<AccessLogConfig>, strict: bool) -> Result<(), AccessLogError> {
        let now = now_unix();
        let mut old: Vec<Option<FileOut>> = std::mem::take(&mut self.files)
            .into_iter()
            .map(Some)
            .collect();
        let mut index: HashMap<PathBuf, usize> = HashMap::new();
        let mut uses_store = false;
        let mut failed = Vec::new();
        let mut route = |log: &StageAccessLog, group: String, files: &mut Vec<FileOut>| {
            let mut indices = Vec::new();
            for destination in &log.destinations.files {
                if let Some(&i) = index.get(&destination.path) {
                    indices.push(i);
                    continue;
                }
                let reused = old
                    .iter_mut()
                    .find(|f| {
                        f.as_ref()
                            .is_some_and(|f| f.file.path() == destination.path)
                    })
                    .and_then(Option::take);
                let opened = match reused {
                    Some(mut out) => {
                        out.file.set_rotation(destination.rotation.clone(), now);
                        Ok(out)
                    }
                    None => {
                        RotatingFile::open(&destination.path, destination.rotation.clone(), now)
                            .map(|file| FileOut {
                                file,
                                buffer: Vec::new(),
                            })
                    }
                };
                match opened {
                    Ok(out) => {
                        index.insert(destination.path.clone(), files.len());
                        indices.push(files.len());
                        files.push(out);
                    }
                    Err(source) => failed.push(AccessLogError::OpenFile {
                        path: destination.path.clone(),
                        source,
                    }),
                }
            }
            uses_store |= log.destinations.store;
            Route {
                format: Arc::clone(&log.format),
                group: log.destinations.store.then(|| Arc::from(group)),
                stdout: log.destinations.stdout,
                files: indices,
            }
        };
        let mut files = Vec::new();
        let mut table = Table {
            default: config
                .default
                .as_ref()
                .map(|log| route(log, UNROUTED_GROUP.to_owned(), &mut files)),
            stages: FxHashMap::default(),
        };
        for entry in &config.stages {
            let compiled = entry
                .log
                .as_ref()
                .map(|log| route(log, access_log_group(&entry.api, &entry.stage), &mut files));
            table
                .stages
                .entry(Arc::clone(&entry.api))
                .or_default()
                .insert(Arc::clone(&entry.stage), compiled);
        }
        self.files = files;
        self.table = table;
        self.applied = config;
        if uses_store && self.store.is_none() {
            tracing::warn!(
                "access logs name the store as a destination, but no store is available; those lines are dropped"
            );
        }
        match failed.into_iter().next() {
            Some(error) if strict => Err(error),
            Some(error) => {
                tracing::warn!(%error, "access log destination skipped");
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn record(&mut self, exchange: &Exchange) {
        if exchange.execution.is_some() {
            self.record_execution(exchange);
        }
        let route = match &exchange.route {
            None => self.table.default.as_ref(),
            Some(labels) => {
                let known = self
                    .table
                    .stages
                    .get(&*labels.api)
                    .is_some_and(|stages| stages.contains_key(&*labels.stage));
                if !known {
                    self.add_unlisted_stage(&labels.api, &labels.stage);
                }
                self.table
                    .stages
                    .get(&*labels.api)
                    .and_then(|stages| stages.get(&*labels.stage))
                    .and_then(Option::as_ref)
            }
        };
        let Some(route) = route else { return };
        self.line.clear();
        route
            .format
            .render_with(exchange, &mut self.scratch, &mut self.line);
        if let (Some(group), Some(store)) = (&route.group, &mut self.store) {
            let timestamp = i64::try_from(variables::epoch_millis(exchange)).unwrap_or(i64::MAX);
            store.append(group, timestamp, &self.line);
            self.store_pending = true;
        }
        let line_len = self.line.len() + 1;
        if route.stdout {
            self.stdout.extend_from_slice(&self.line);
            self.stdout.push(b'\n');
            self.pending += line_len;
        }
        for &i in &route.files {
            let buffer = &mut self.files[i].buffer;
            buffer.extend_from_slice(&self.line);
            buffer.push(b'\n');
            self.pending += line_len;
        }
    }

    /// The execution-log events of an exchange that carries a detail, into the store's
    /// `execution/{api}/{stage}` group (execution logs go only to the store).
    fn record_execution(&mut self, exchange: &Exchange) {
        let (Some(detail), Some(store)) = (&exchange.execution, &mut self.store) else {
            return;
        };
        let Some(group) = crate::execution::execution_log_group(exchange) else {
            return;
        };
        let group: Arc<str> = Arc::from(group);
        let timestamp = i64::try_from(variables::epoch_millis(exchange)).unwrap_or(i64::MAX);
        self.events.clear();
        crate::execution::execution_events(exchange, &detail.settings, &mut self.events);
        for event in &self.events {
            store.append(&group, timestamp, event.as_bytes());
        }
        self.store_pending |= !self.events.is_empty();
    }

    /// A stage the config did not list (the config crate lists them all) gets the default's
    /// format and destinations under its own store group.
    fn add_unlisted_stage(&mut self, api: &Arc<str>, stage: &Arc<str>) {
        let route = self.table.default.as_ref().map(|default| Route {
            format: Arc::clone(&default.format),
            group: default
                .group
                .as_ref()
                .map(|_| Arc::from(access_log_group(api, stage))),
            stdout: default.stdout,
            files: default.files.clone(),
        });
        self.table
            .stages
            .entry(Arc::clone(api))
            .or_default()
            .insert(Arc::clone(stage), route);
    }

    /// One write per destination for everything buffered, then the store's flush.
    fn write_out(&mut self, errors: &AtomicU64) {
        if !self.stdout.is_empty() {
            let mut out = io::stdout().lock();
            let result = out.write_all(&self.stdout).and_then(|()| out.flush());
            self.stdout.clear();
            count_error(result, "stdout", errors);
        }
        let now = if self.files.iter().any(|f| !f.buffer.is_empty()) {
            now_unix()
        } else {
            0
        };
        for out in &mut self.files {
            if out.buffer.is_empty() {
                continue;
            }
            let result = out.file.write_batch(&out.buffer, now);
            out.buffer.clear();
            count_error(result, &out.file.path().display().to_string(), errors);
        }
        self.pending = 0;
        // Flushed on every pass, not only after new lines: the sink also closes metric-filter
        // minutes on time.
        if let Some(store) = self.store.as_mut() {
            store.flush();
            self.store_pending = false;
        }
    }
}

fn count_error(result: io::Result<()>, destination: &str, errors: &AtomicU64) {
    if let Err(error) = result {
        let n = errors.fetch_add(1, Ordering::Relaxed);
        if n == 0 || n.is_power_of_two() {
            tracing::warn!(%error, destination, failures = n + 1, "access log write failed");
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
