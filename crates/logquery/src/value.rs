//! Field values and the rules for comparing them.
//!
//! [`Value`] is what a query returns; `Val` is its borrowed twin used while evaluating, so a string
//! field read from a log line points into that line instead of being copied.
//!
//! **Comparison rule.** Access logs often render numbers as strings (`"status": "200"`), so a
//! comparison between a number and a string compares numerically when the string parses as a number,
//! and is false otherwise. Two strings compare as strings, two numbers as numbers (integers exactly).
//! A missing field, or JSON `null`, equals the empty string `""` and nothing else, and is neither less
//! nor greater than anything; `!=` is always the negation of `=`.
//!
//! **Sort rule.** Ascending order puts strings (by Unicode code point) before booleans before numbers,
//! as CloudWatch puts non-numbers before numbers; strings that parse as numbers sort as numbers.
//! Missing values sort last in either direction.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// One field of one result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Missing, or JSON `null`.
    Null,
    Bool(bool),
    /// An integer, kept exact.
    Int(i64),
    Float(f64),
    Str(String),
    /// A point in time, milliseconds since the Unix epoch; shown as RFC 3339 (`@timestamp`, `bin()`).
    Time(i64),
}

impl Value {
    /// The value as a number: numbers and times as they are, strings when they parse as a number.
    pub fn as_f64(&self) -> Option<f64> {
        self.as_val().number().map(Num::as_f64)
    }

    pub(crate) fn as_val(&self) -> Val<'_> {
        match self {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Int(i) => Val::Int(*i),
            Value::Float(f) => Val::Float(*f),
            Value::Str(s) => Val::Str(Cow::Borrowed(s)),
            Value::Time(t) => Val::Time(*t),
        }
    }
}

/// Renders the value as a table cell: `Null` as the empty string, times as RFC 3339.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Time(t) => f.write_str(&rfc3339(*t)),
        }
    }
}

/// Serializes as the natural JSON value; times as RFC 3339 strings, non-finite floats as `null`.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(x) if x.is_finite() => s.serialize_f64(*x),
            Value::Float(_) => s.serialize_unit(),
            Value::Str(v) => s.serialize_str(v),
            Value::Time(t) => s.serialize_str(&rfc3339(*t)),
        }
    }
}

/// A value during evaluation; strings borrow from the log line when they can.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Val<'a> {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Time(i64),
}

/// See [`Val::sort_class`].
pub(crate) type SortClass = (u8, Option<Num>);

/// A number with integers kept exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    pub fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    pub fn into_value(self) -> Value {
        match self {
            Num::Int(i) => Value::Int(i),
            Num::Float(f) => Value::Float(f),
        }
    }
}

/// Parses a whole string as a number: an integer exactly, else a finite float.
pub(crate) fn parse_number(s: &str) -> Option<Num> {
    let first = *s.as_bytes().first()?;
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Num::Int(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Num::Float)
}

impl<'a> Val<'a> {
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// A copy that borrows this value's string instead of cloning it.
    pub fn view(&self) -> Val<'_> {
        match self {
            Val::Str(s) => Val::Str(Cow::Borrowed(s)),
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(*b),
            Val::Int(i) => Val::Int(*i),
            Val::Float(f) => Val::Float(*f),
            Val::Time(t) => Val::Time(*t),
        }
    }

    /// The value as a number, parsing strings.
    pub fn number(&self) -> Option<Num> {
        match self {
            Val::Int(i) | Val::Time(i) => Some(Num::Int(*i)),
            Val::Float(f) => Some(Num::Float(*f)),
            Val::Str(s) => parse_number(s),
            Val::Null | Val::Bool(_) => None,
        }
    }

    /// The value as text, for `like` and regular expressions; `None` for a missing value.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Null => None,
            Val::Str(s) => Some(Cow::Borrowed(s)),
            Val::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Val::Int(i) => Some(Cow::Owned(i.to_string())),
            Val::Float(f) => Some(Cow::Owned(f.to_string())),
            Val::Time(t) => Some(Cow::Owned(rfc3339(*t))),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::Int(*i),
            Val::Float(f) => Value::Float(*f),
            Val::Str(s) => Value::Str(s.as_ref().to_owned()),
            Val::Time(t) => Value::Time(*t),
        }
    }

    /// Equality under the comparison rule in the module documentation.
    pub fn equals(&self, other: &Val<'_>) -> bool {
        match (self, other) {
            (Val::Null, Val::Null) => true,
            (Val::Null, Val::Str(s)) | (Val::Str(s), Val::Null) => s.is_empty(),
            (Val::Null, _) | (_, Val::Null) => false,
            (Val::Str(a), Val::Str(b)) => a == b,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Bool(b), Val::Str(s)) | (Val::Str(s), Val::Bool(b)) => {
                s.as_ref() == if *b { "true" } else { "false" }
            }
            _ => self.compare(other) == Some(Ordering::Equal),
        }
    }

    /// Ordering for `<`, `<=`, `>`, `>=`; `None` when the values are not comparable.
    pub fn compare(&self, other: &Val<'_>) -> Option<Ordering> {
        match (self, other) {
            (Val::Null, _) | (_, Val::Null) => None,
            (Val::Str(a), Val::Str(b)) => Some(a.as_ref().cmp(b.as_ref())),
            (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
            (Val::Bool(_), _) | (_, Val::Bool(_)) => None,
            (a, b) => a.number()?.cmp(b.number()?),
        }
    }

    /// The total order used by `sort` (ascending; the caller reverses for `desc`, nulls excepted).
    pub fn sort_cmp(&self, other: &Val<'_>) -> Ordering {
        self.sort_cmp_classified(self.sort_class(), other, other.sort_class())
    }

    /// Where the value falls in the sort order's classes, and its number; computed once per row
    /// when many rows are sorted, since it may parse a string.
    pub fn sort_class(&self) -> SortClass {
        match self {
            Val::Str(s) => match parse_number(s) {
                Some(n) => (2, Some(n)),
                None => (0, None),
            },
            Val::Bool(_) => (1, None),
            Val::Null => (3, None),
            v => (2, v.number()),
        }
    }

    /// [`Val::sort_cmp`] with both classes already known.
    pub fn sort_cmp_classified(&self, a: SortClass, other: &Val<'_>, b: SortClass) -> Ordering {
        let ((ca, na), (cb, nb)) = (a, b);
        if ca != cb {
            return ca.cmp(&cb);
        }
        match (self, other, na, nb) {
            (_, _, Some(a), Some(b)) => a
                .cmp(b)
                .unwrap_or_else(|| a.as_f64().total_cmp(&b.as_f64())),
            (Val::Str(a), Val::Str(b), _, _) => a.cmp(b),
            (Val::Bool(a), Val::Bool(b), _, _) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

/// Formats Unix milliseconds as RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(v))
    }

    #[test]
    fn comparison_rule_table() {
        use Ordering::*;
        let cases: &[(Val, Val, bool, Option<Ordering>)] = &[
            (Val::Int(500), Val::Int(500), true, Some(Equal)),
            (s("503"), Val::Int(500), false, Some(Greater)),
            (s("200"), Val::Float(200.0), true, Some(Equal)),
            (s("abc"), Val::Int(1), false, None),
            (s("abc"), s("abd"), false, Some(Less)),
            (s("10"), s("9"), false, Some(Less)),
            (Val::Null, s(""), true, None),
            (Val::Null, Val::Null, true, None),
            (Val::Null, Val::Int(0), false, None),
            (Val::Bool(true), s("true"), true, None),
            (
                Val::Int(9_007_199_254_740_993),
                Val::Int(9_007_199_254_740_992),
                false,
                Some(Greater),
            ),
        ];
        for (a, b, eq, ord) in cases {
            assert_eq!(a.equals(b), *eq, "{a:?} = {b:?}");
            assert_eq!(a.compare(b), *ord, "{a:?} cmp {b:?}");
        }
    }

    #[test]
    fn sort_puts_strings_before_numbers_and_nulls_last() {
        let mut v = vec![
            Val::Null,
            Val::Int(10),
            s("b"),
            s("9"),
            Val::Bool(false),
            s("a"),
        ];
        v.sort_by(|a, b| a.sort_cmp(b));
        assert_eq!(
            v,
            vec![
                s("a"),
                s("b"),
                Val::Bool(false),
                s("9"),
                Val::Int(10),
                Val::Null
            ]
        );
    }

    #[test]
    fn rfc3339_formats_utc_with_millis() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_564_800_123), "2024-05-01T12:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }
}
