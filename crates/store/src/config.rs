//! What the binary tells the store: where its data directory is and how long each resolution of
//! metric data is kept.

use std::path::PathBuf;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the store lives and what it keeps.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The data directory; created if missing. The database is `gatehouse.db` inside it.
    pub dir: PathBuf,
    pub retention: Retention,
}

impl StoreConfig {
    /// A config for `dir` with default retention.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            retention: Retention::default(),
        }
    }
}

/// How long metric rows of each resolution are kept, measured from the start of their period.
/// The defaults are CloudWatch's: 1-minute data for 15 days, 5-minute data for 63 days and 1-hour
/// data for 455 days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub minute: Duration,
    pub five_minutes: Duration,
    pub hour: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            minute: 15 * DAY,
            five_minutes: 63 * DAY,
            hour: 455 * DAY,
        }
    }
}

impl Retention {
    /// The retention of rows of `resolution_secs` (60, 300 or 3600).
    pub(crate) fn for_resolution(&self, resolution_secs: u32) -> Duration {
        match resolution_secs {
            60 => self.minute,
            300 => self.five_minutes,
            _ => self.hour,
        }
    }

    /// The oldest period start still kept for `resolution_secs` at `now_unix`.
    pub(crate) fn cutoff(&self, resolution_secs: u32, now_unix: i64) -> i64 {
        let keep =
            i64::try_from(self.for_resolution(resolution_secs).as_secs()).unwrap_or(i64::MAX);
        now_unix.saturating_sub(keep)
    }
}
