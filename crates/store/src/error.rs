//! The store's one error type. Each variant names what failed and carries the source, so the
//! binary can add context for the person at the terminal without guessing.

use std::path::PathBuf;

use gatehouse_telemetry::metrics::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot open the database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error("cannot migrate the database to schema version {version}: {source}")]
    Migrate {
        version: u32,
        source: rusqlite::Error,
    },

    #[error(
        "the database has schema version {found}, newer than this build supports ({supported}); \
         run a newer gatehouse or point `dir` at another data directory"
    )]
    NewerSchema { found: u32, supported: u32 },

    #[error("cannot start the store's writer thread: {0}")]
    SpawnWriter(#[source] std::io::Error),

    #[error("the store's writer thread has stopped; the store was closed or its thread failed")]
    WriterStopped,

    #[error("store write failed: {0}")]
    Write(#[source] rusqlite::Error),

    #[error("store query failed while {what}: {source}")]
    Query {
        what: &'static str,
        source: rusqlite::Error,
    },

    #[error("stored data point of metric '{metric}' at {ts} cannot be decoded: {source}")]
    Decode {
        metric: String,
        ts: i64,
        source: DecodeError,
    },

    #[error("invalid query: {0}")]
    InvalidQuery(String),

    #[error("invalid log group name '{group}': {reason}")]
    InvalidLogGroup { group: String, reason: &'static str },
}

impl StoreError {
    pub(crate) fn query(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Query { what, source }
    }
}
