//! The `gatehouse` command: serve a config, validate one, run the demo, or talk to a running
//! gateway's admin API.

mod admin_client;
mod alarm_registry;
mod alarms_api;
mod alarms_cli;
mod demo;
mod graph_api;
mod graph_cli;
mod log_sink;
mod logging;
mod logs_api;
mod logs_cli;
mod logs_runtime;
mod metric_filters;
mod metrics_api;
mod metrics_cli;
mod serve;
mod tail;
mod traces_api;
mod traces_cli;
mod traces_runtime;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc instead of the system allocator: requests allocate many small, short-lived objects,
/// and glibc's malloc was a visible share of the profile (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse",
    version,
    about = "A self-hosted API gateway with built-in monitoring",
    long_about = "Gatehouse proxies HTTP, REST and WebSocket APIs with stages and routes, and \
                  records every request (access log, metrics, traces) without an outside stack.\n\n\
                  Start with `gatehouse demo`, then write a config (see examples/) and run \
                  `gatehouse serve --config FILE`."
)]
struct Cli {
    /// Format of Gatehouse's own log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GATEHOUSE_LOG_FORMAT")]
    log_format: LogFormat,

    /// Worker threads of the async runtime (default: one per CPU core).
    #[arg(long, global = true, env = "GATEHOUSE_WORKERS")]
    workers: Option<usize>,

    /// Log filter, e.g. `info` or `gatehouse=debug,hyper=info`.
    #[arg(long, global = true, default_value = "info", env = "GATEHOUSE_LOG")]
    log_level: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway with a config file. SIGHUP reloads it; SIGTERM or Ctrl-C drains and stops.
    Serve {
        /// The YAML config file.
        #[arg(long, short, env = "GATEHOUSE_CONFIG")]
        config: PathBuf,
        /// How long in-flight requests may take to finish at shutdown.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        shutdown_grace: Duration,
    },
    /// Check a config file and print a summary, or every error with file, line and column.
    Validate {
        /// The YAML config file.
        file: PathBuf,
    },
    /// Start the gateway on a built-in config with a sample backend, and print URLs to try.
    Demo {
        /// Data-plane port.
        #[arg(long, env = "GATEHOUSE_PORT", default_value_t = 8080)]
        port: u16,
        /// Admin API port.
        #[arg(long, env = "GATEHOUSE_ADMIN_PORT", default_value_t = 9901)]
        admin_port: u16,
    },
    /// Ask a running gateway to reload its config file.
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a running gateway's status.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a running gateway's alarms and their state changes; create, show and delete alarms.
    Alarms {
        #[command(subcommand)]
        command: Option<AlarmsCommand>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Query a running gateway's metrics.
    Metrics {
        #[command(subcommand)]
        command: Box<MetricsCommand>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Query, follow and list a running gateway's stored logs.
    Logs {
        #[command(subcommand)]
        command: LogsCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a running gateway's stored traces: one as a waterfall, or a search.
    Traces {
        #[command(subcommand)]
        command: traces_cli::TracesCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show the service graph of a running gateway's recent spans: who called whom, how often,
    /// how it went and how long it took.
    Graph {
        #[command(flatten)]
        args: graph_cli::GraphArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum LogsCommand {
    /// Run a query (a Logs Insights subset, see docs/log-queries.md) and print the rows.
    Query {
        /// e.g. 'filter status >= 500 | stats count(*) by bin(5m)'
        query: String,
        /// A log group, or a prefix ending in `*`; repeatable (default: every access log).
        #[arg(long, short)]
        group: Vec<String>,
        /// How far back to look, e.g. 15m, 1h, 2d (ignored with --start).
        #[arg(long, default_value = "1h")]
        since: String,
        /// Start time: Unix seconds or RFC 3339.
        #[arg(long)]
        start: Option<String>,
        /// End time: Unix seconds or RFC 3339 (default now).
        #[arg(long)]
        end: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Follow new events as they are stored, until interrupted.
    Tail {
        /// A log group, or a prefix ending in `*` (default: every group).
        group: Option<String>,
        /// Only events matching this filter expression, e.g. 'status >= 500'.
        #[arg(long)]
        filter: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// List the log groups with their size and retention.
    Groups {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum MetricsCommand {
    /// List the metrics and dimension sets that have data.
    List {
        /// How far back to look, e.g. 15m, 1h, 2d.
        #[arg(long, default_value = "1h")]
        since: String,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Print one metric's data points over time.
    Query {
        /// Count, 4XXError, 5XXError, Latency, IntegrationLatency, BytesIn, BytesOut, ...
        metric: String,
        /// Only this api (by name).
        #[arg(long)]
        api: Option<String>,
        /// Only this stage (needs --api).
        #[arg(long)]
        stage: Option<String>,
        /// A route template as in the config, e.g. /pets/{id}.
        #[arg(long)]
        route: Option<String>,
        /// Only this method (with --route), e.g. GET.
        #[arg(long)]
        method: Option<String>,
        /// Sum, Average, Minimum, Maximum, SampleCount or pNN (default: Sum for counts, Average otherwise).
        #[arg(long)]
        stat: Option<String>,
        /// Seconds per data point, a multiple of 60.
        #[arg(long, default_value_t = 60)]
        period: u32,
        /// How far back to look, e.g. 15m, 1h, 2d (ignored with --start).
        #[arg(long, default_value = "1h")]
        since: String,
        /// Start time: Unix seconds or RFC 3339.
        #[arg(long)]
        start: Option<String>,
        /// End time: Unix seconds or RFC 3339 (default now).
        #[arg(long)]
        end: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AlarmsCommand {
    /// Every alarm with its state, since when, and why (the default).
    List {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// State changes, newest first.
    History {
        /// Only this alarm.
        alarm: Option<String>,
        /// How far back, e.g. 1h, 1d.
        #[arg(long, default_value = "1d")]
        since: String,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// One alarm's definition (as YAML, ready to edit and put back) and state.
    Get {
        name: String,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Create or replace an alarm from a YAML or JSON file with a config alarm's fields.
    Put {
        name: String,
        /// The alarm file; `name` may be left out of it.
        #[arg(long, short)]
        file: PathBuf,
    },
    /// Delete an alarm created with `put` (config file alarms are changed in the file).
    Delete { name: String },
}

/// How the CLI prints query results.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Aligned columns with a sparkline.
    Table,
    /// The admin API's JSON.
    Json,
    /// Only the sparkline.
    Spark,
}

/// How to reach a running gateway's admin API.
#[derive(clap::Args, Debug)]
struct AdminArgs {
    /// Base URL of the admin API.
    #[arg(
        long = "admin",
        global = true,
        env = "GATEHOUSE_ADMIN_URL",
        default_value = "http://127.0.0.1:9901"
    )]
    url: String,
    /// The admin token.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

impl AdminArgs {
    fn token(&self) -> anyhow::Result<String> {
        self.token.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "the admin API needs a token: pass --token or set GATEHOUSE_ADMIN_TOKEN"
            )
        })
    }
}

/// Parses `250ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 30s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "'{text}': unknown unit '{unit}' (use ms, s, m or h)"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Validate { file } = &cli.command {
        return validate(file);
    }
    logging::init(cli.log_format, &cli.log_level);
    // One worker means one thread: the current-thread scheduler does the same work without the
    // work-stealing machinery (and is what a single nginx worker is compared against).
    let mut builder = match cli.workers {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        Some(workers) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                shutdown_grace,
            } => serve::run(serve::Source::File(config), shutdown_grace).await,
            Command::Demo { port, admin_port } => demo::run(port, admin_port).await,
            Command::Reload { admin } => admin_client::reload(&admin.url, &admin.token()?).await,
            Command::Status { admin } => admin_client::status(&admin.url, &admin.token()?).await,
            Command::Alarms { command, admin } => {
                let command = command.unwrap_or(AlarmsCommand::List {
                    output: Output::Table,
                });
                alarms_cli::run(command, &admin.url, &admin.token()?).await
            }
            Command::Metrics { command, admin } => {
                metrics_cli::run(*command, &admin.url, &admin.token()?).await
            }
            Command::Logs { command, admin } => {
                logs_cli::run(command, &admin.url, &admin.token()?).await
            }
            Command::Traces { command, admin } => {
                traces_cli::run(command, &admin.url, &admin.token()?).await
            }
            Command::Graph { args, admin } => {
                graph_cli::run(args, &admin.url, &admin.token()?).await
            }
            Command::Validate { .. } => unreachable!("handled above"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(file: &std::path::Path) -> ExitCode {
    match gatehouse_config::load_file(file) {
        Ok(loaded) => {
            println!("{}: ok", file.display());
            println!("{}", loaded.summary);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.errors().len();
            eprintln!(
                "{}: {n} error{}",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        let cases = [
            ("30s", Some(Duration::from_secs(30))),
            ("250ms", Some(Duration::from_millis(250))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("5", Some(Duration::from_secs(5))),
            ("5d", None),
            ("soon", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text).ok(), expected, "{text}");
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
