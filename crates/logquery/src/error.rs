//! The one error type of the crate: a message and the position in the query text it is about.
//!
//! Every syntax and name-resolution error carries a byte offset; `QueryError` turns it into a line
//! and column and, when displayed, repeats the offending line with a caret under the position, so
//! a user at a terminal sees at once what is wrong and where.

use std::fmt;

/// A malformed query or filter expression, with the position the message is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct QueryError {
    /// Byte offset into the query text.
    pub offset: usize,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong, starting lowercase.
    pub message: String,
    /// The line of the query that holds the position, for the caret display.
    line_text: String,
}

impl QueryError {
    /// Builds an error about byte `offset` of `source`; an offset past the end points just after
    /// the last character.
    pub(crate) fn at(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[offset..]
            .find('\n')
            .map_or(source.len(), |i| offset + i);
        let line = source[..line_start].matches('\n').count() + 1;
        let column = source[line_start..offset].chars().count() + 1;
        QueryError {
            offset,
            line,
            column,
            message: message.into(),
            line_text: source[line_start..line_end]
                .trim_end_matches('\r')
                .to_owned(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} at {}:{}", self.message, self.line, self.column)?;
        writeln!(f, "  {}", self.line_text)?;
        // Keep tabs so the caret lines up under the same character in a terminal.
        let indent: String = self
            .line_text
            .chars()
            .take(self.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "  {indent}^")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_the_column_of_the_right_line() {
        let e = QueryError::at("fields a\n| stats avgg(x)", 17, "unknown function 'avgg'");
        assert_eq!((e.line, e.column), (2, 9));
        assert_eq!(
            e.to_string(),
            "unknown function 'avgg' at 2:9\n  | stats avgg(x)\n          ^"
        );
    }

    #[test]
    fn offset_at_end_points_after_the_last_character() {
        let e = QueryError::at("limit", 99, "expected a number");
        assert_eq!((e.offset, e.column), (5, 6));
        assert_eq!(e.to_string(), "expected a number at 1:6\n  limit\n       ^");
    }
}
