//! The wall clock that decides when a minute bucket is closed, behind a trait so tests (here and
//! in other crates) can move time by hand instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as the metrics consumer sees them.
pub trait Clock: Send + Sync {
    fn now_unix(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        unix_seconds(SystemTime::now())
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    pub fn new(now_unix: i64) -> Self {
        Self {
            now: AtomicI64::new(now_unix),
        }
    }

    pub fn set(&self, now_unix: i64) {
        self.now.store(now_unix, Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.now.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Whole seconds since the epoch; times before it are negative.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        // Round towards the past, so a bucket of a pre-epoch time still contains it.
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            if before.subsec_nanos() > 0 {
                -whole - 1
            } else {
                -whole
            }
        }
    }
}

/// The start of the minute `unix` falls in: `floor(unix / 60) * 60`.
pub(crate) fn minute_start(unix: i64) -> i64 {
    unix.div_euclid(60) * 60
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn minutes_start_at_the_floor_even_before_the_epoch() {
        let cases = [(0, 0), (59, 0), (60, 60), (125, 120), (-1, -60), (-60, -60)];
        for (unix, start) in cases {
            assert_eq!(minute_start(unix), start, "{unix}");
        }
        assert_eq!(
            unix_seconds(UNIX_EPOCH - Duration::from_millis(500)),
            -1,
            "half a second before the epoch is in second -1"
        );
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(61_500)), 61);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(100);
        clock.advance(5);
        assert_eq!(clock.now_unix(), 105);
        clock.set(7);
        assert_eq!(clock.now_unix(), 7);
    }
}
