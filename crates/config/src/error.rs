//! Errors reported to the person who wrote the configuration file.
//!
//! Every problem found while loading — YAML syntax, an unset environment variable, an unknown field,
//! a wrong type, a failed validation rule, a routing conflict — becomes one [`ConfigError`] that names
//! the file, the 1-based line and column, and the field path (`apis[0].routes[2].integration.url`).
//! Loading collects as many of them as it practically can into [`ConfigErrors`] so a user fixes a
//! file in one round trip instead of one error at a time. [`Diagnostics`] is the collector the
//! loader passes around; it turns field paths into positions through the YAML [`PositionIndex`].

use std::fmt;

use crate::yaml::{Pos, PositionIndex};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to the loader (for display only).
    pub file: String,
    /// 1-based line, or 0 when the position is unknown (for example, the file is unreadable).
    pub line: u32,
    /// 1-based column, or 0 when the position is unknown.
    pub column: u32,
    /// The field path, such as `apis[0].routes[2].integration.url`; empty for the whole file.
    pub path: String,
    /// What is wrong, starting lowercase, and what to do about it when that is known.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All problems found in one configuration file, in file order where positions are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Wraps a list of errors; callers guarantee it is not empty.
    pub(crate) fn new(errors: Vec<ConfigError>) -> Self {
        debug_assert!(
            !errors.is_empty(),
            "ConfigErrors must hold at least one error"
        );
        Self { errors }
    }

    /// The individual errors.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// Consumes the collection, returning the individual errors.
    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where in the file an error points: the value at a path, or the key that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The value at the path (or the closest existing ancestor).
    Value,
    /// The mapping key of the path's last segment, e.g. for unknown or duplicate fields.
    Key,
}

/// Collects errors during one load, resolving field paths to positions.
pub(crate) struct Diagnostics<'a> {
    file: &'a str,
    index: &'a PositionIndex,
    errors: Vec<ConfigError>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(file: &'a str, index: &'a PositionIndex) -> Self {
        Self {
            file,
            index,
            errors: Vec::new(),
        }
    }

    /// Records an error about the value at `path`.
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.push(path, Anchor::Value, message.into());
    }

    /// Records an error about the key at `path` (the last segment's name, not its value).
    pub(crate) fn key_error(&mut self, path: &str, message: impl Into<String>) {
        self.push(path, Anchor::Key, message.into());
    }

    pub(crate) fn push(&mut self, path: &str, anchor: Anchor, message: String) {
        let pos = self.index.locate(path, anchor);
        self.push_at(path, pos, message);
    }

    /// Records an error at an explicit position (used where the index cannot tell, e.g. duplicates).
    pub(crate) fn push_at(&mut self, path: &str, (line, column): Pos, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            path: path.to_owned(),
            message,
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Returns `Err` with every error collected so far, sorted by position, or `Ok(value)`.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(value);
        }
        Err(sorted(self.errors))
    }

    pub(crate) fn into_errors(self) -> ConfigErrors {
        sorted(self.errors)
    }
}

fn sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    // Stable sort keeps the discovery order of errors that share a position.
    errors.sort_by_key(|e| (e.line, e.column));
    ConfigErrors::new(errors)
}

/// Appends `.key` to a field path (no dot at the root).
pub(crate) fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Appends `[index]` to a field path.
pub(crate) fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}
