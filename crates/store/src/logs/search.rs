//! Full-text search: the events of a scan whose message contains a piece of text, ignoring ASCII
//! case.
//!
//! There is no inverted index. Like CloudWatch Logs Insights, a search reads every block of its
//! groups in its time range, so the time range (and the group list) is what makes it cheap; the
//! substring test itself is a `memchr::memmem` search over a lower-cased copy of each message,
//! which runs at several GB/s. Case folding is ASCII only: letters outside ASCII match exactly.
//! A token index (say a bloom filter per block) could later skip blocks for rare terms without
//! changing this interface.

use std::ops::ControlFlow;

use memchr::memmem::Finder;
use rusqlite::Connection;

use super::{LogScan, scan};
use crate::StoreError;

/// One event, owned: what a search returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    pub timestamp_ms: i64,
    pub group: String,
    pub message: String,
}

/// Whether a message contains a piece of text, ignoring ASCII case.
pub(crate) struct TextMatcher {
    finder: Finder<'static>,
    folded: Vec<u8>,
}

impl TextMatcher {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            finder: Finder::new(text.to_ascii_lowercase().as_bytes()).into_owned(),
            folded: Vec::new(),
        }
    }

    pub(crate) fn is_match(&mut self, message: &str) -> bool {
        if self.finder.needle().is_empty() {
            return true;
        }
        self.folded.clear();
        self.folded
            .extend(message.bytes().map(|byte| byte.to_ascii_lowercase()));
        self.finder.find(&self.folded).is_some()
    }
}

/// The first `limit` events of `scan` (in its order) whose message contains `text`.
pub(crate) fn search(
    conn: &Connection,
    scan_spec: &LogScan,
    text: &str,
    limit: usize,
) -> Result<Vec<LogEvent>, StoreError> {
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    let mut matcher = TextMatcher::new(text);
    scan::scan(conn, scan_spec, |event| {
        if matcher.is_match(event.message) {
            found.push(LogEvent {
                timestamp_ms: event.timestamp_ms,
                group: event.group.to_owned(),
                message: event.message.to_owned(),
            });
            if found.len() >= limit {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_ignores_ascii_case_only() {
        let cases = [
            ("error", "ERROR: upstream timed out", true),
            ("Timed Out", "ERROR: upstream timed out", true),
            ("", "anything", true),
            ("missing", "ERROR: upstream timed out", false),
            ("ÉTÉ", "été", false), // non-ASCII letters match exactly
            ("été", "Un été chaud", true),
            ("/pets/{id}", r#"{"route":"/PETS/{ID}"}"#, true),
        ];
        for (needle, message, expected) in cases {
            assert_eq!(
                TextMatcher::new(needle).is_match(message),
                expected,
                "{needle:?} in {message:?}"
            );
        }
    }
}
