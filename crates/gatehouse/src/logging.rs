//! Gatehouse's own logs (not the access log): human-readable or JSON lines on stderr, so that
//! stdout stays free for the access log.

use tracing_subscriber::EnvFilter;

use crate::LogFormat;

pub(crate) fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|error| {
        eprintln!("warning: invalid log filter '{level}' ({error}); using 'info'");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
