//! Timestamps for access-log lines, formatted once per second and reused within it: under load
//! many consecutive records share a second, and formatting a date is the costliest variable.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Caches the second-resolution parts of both timestamp forms.
#[derive(Debug, Default)]
pub(crate) struct SecondClock {
    rfc_second: Option<u64>,
    rfc_prefix: String,
    clf_second: Option<u64>,
    clf: String,
}

impl SecondClock {
    /// `2026-11-26T06:59:24.942Z`: RFC 3339, UTC, millisecond precision.
    pub(crate) fn rfc3339(&mut self, time: SystemTime, out: &mut Vec<u8>) {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since_epoch.as_secs();
        if self.rfc_second != Some(second) {
            self.rfc_second = Some(second);
            self.rfc_prefix = utc(second)
                .and_then(|t| t.format(&Rfc3339).ok())
                .map(|t| t.trim_end_matches('Z').to_owned())
                .unwrap_or_default();
        }
        out.extend_from_slice(self.rfc_prefix.as_bytes());
        let _ = write!(out, ".{:03}Z", since_epoch.subsec_millis());
    }

    /// `26/Nov/2026:06:59:24 +0000`: the Common Log Format time API Gateway's
    /// `$context.requestTime` uses, in UTC.
    pub(crate) fn clf(&mut self, time: SystemTime, out: &mut Vec<u8>) {
        let second = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if self.clf_second != Some(second) {
            self.clf_second = Some(second);
            self.clf = utc(second)
                .map(|t| {
                    format!(
                        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
                        t.day(),
                        MONTHS[usize::from(u8::from(t.month())) - 1],
                        t.year(),
                        t.hour(),
                        t.minute(),
                        t.second()
                    )
                })
                .unwrap_or_default();
        }
        out.extend_from_slice(self.clf.as_bytes());
    }
}

fn utc(second: u64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(i64::try_from(second).ok()?).ok()
}
