//! W3C `tracestate`: vendor-specific trace data the gateway passes on without reading it.
//!
//! The gateway keeps what the spec lets it keep (Trace Context §3.3): well-formed list members in
//! their order, at most 32 of them, at most 512 characters in all. It drops what is broken member
//! by member rather than the whole header, so one vendor's bad entry does not erase the others'.
//! The gateway adds no member of its own.

use http::HeaderValue;

/// The most list members a `tracestate` may carry.
pub const MAX_MEMBERS: usize = 32;
/// The length the gateway trims a propagated `tracestate` to.
pub const MAX_LENGTH: usize = 512;
/// Members longer than this are the first to go when the header is too long (spec §3.3.1.5).
const LONG_MEMBER: usize = 128;

/// Cleans the `tracestate` header lines of one request for propagation: combines the lines,
/// drops invalid members, later duplicates of a key and members past the 32nd, then trims to
/// 512 characters by removing members longer than 128 characters, then whole members from the
/// end. `None` when nothing is left.
pub fn sanitize<'a>(lines: impl Iterator<Item = &'a HeaderValue>) -> Option<HeaderValue> {
    let mut members: Vec<&[u8]> = Vec::new();
    'lines: for line in lines {
        for member in line.as_bytes().split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue;
            }
            let Some(key) = valid_member(member) else {
                continue;
            };
            if members.iter().any(|m| key_of(m) == key) {
                continue;
            }
            if members.len() == MAX_MEMBERS {
                break 'lines;
            }
            members.push(member);
        }
    }
    let joined_len = |members: &[&[u8]]| -> usize {
        members.iter().map(|m| m.len()).sum::<usize>() + members.len().saturating_sub(1)
    };
    while joined_len(&members) > MAX_LENGTH {
        match members.iter().rposition(|m| m.len() > LONG_MEMBER) {
            Some(at) => members.remove(at),
            None => members.pop().unwrap_or_default(),
        };
    }
    if members.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&members.join(&b","[..])).ok()
}

fn key_of(member: &[u8]) -> &[u8] {
    member.split(|&b| b == b'=').next().unwrap_or_default()
}

/// The key of a well-formed `key=value` list member.
fn valid_member(member: &[u8]) -> Option<&[u8]> {
    let at = member.iter().position(|&b| b == b'=')?;
    let (key, value) = (&member[..at], &member[at + 1..]);
    (valid_key(key) && valid_value(value)).then_some(key)
}

fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` (lcalpha then up to 255 key chars) or `tenant-id@system-id` (a lowercase letter or
/// digit then up to 240 key chars, `@`, a lowercase letter then up to 13 key chars).
fn valid_key(key: &[u8]) -> bool {
    let body_ok = |part: &[u8], first: fn(&u8) -> bool, max: usize| {
        !part.is_empty()
            && part.len() <= max
            && first(&part[0])
            && part[1..].iter().all(|&b| key_char(b))
    };
    match key.iter().position(|&b| b == b'@') {
        None => body_ok(key, u8::is_ascii_lowercase, 256),
        Some(at) => {
            let tenant_first = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            body_ok(&key[..at], tenant_first, 241)
                && body_ok(&key[at + 1..], u8::is_ascii_lowercase, 14)
        }
    }
}

/// 1 to 256 printable ASCII characters other than `,` and `=`, spaces allowed but not last.
fn valid_value(value: &[u8]) -> bool {
    let non_blank = |b: u8| matches!(b, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    match value.split_last() {
        Some((&last, rest)) => {
            value.len() <= 256 && non_blank(last) && rest.iter().all(|&b| b == b' ' || non_blank(b))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(lines: &[&str]) -> Option<String> {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_str(l).unwrap())
            .collect();
        sanitize(values.iter()).map(|v| v.to_str().unwrap().to_owned())
    }

    /// Each case: the header lines and what is propagated.
    #[test]
    fn tracestate_table() {
        let long_key = format!("a{}", "b".repeat(255));
        let too_long_key = format!("a{}", "b".repeat(256));
        let cases: Vec<(Vec<String>, Option<&str>)> = vec![
            (
                vec!["rojo=00f067aa0ba902b7".into()],
                Some("rojo=00f067aa0ba902b7"),
            ),
            (
                vec!["rojo=1, congo=t61rcWkgMzE".into()],
                Some("rojo=1,congo=t61rcWkgMzE"),
            ),
            (
                vec!["rojo=1".into(), "congo=2".into()],
                Some("rojo=1,congo=2"),
            ),
            (vec!["rojo=1,,  ,\tcongo=2".into()], Some("rojo=1,congo=2")),
            (
                vec!["tenant1@vendor=x,0t@v-_*/=y".into()],
                Some("tenant1@vendor=x,0t@v-_*/=y"),
            ),
            (
                vec!["value=with spaces inside".into()],
                Some("value=with spaces inside"),
            ),
            // Invalid members go, the rest stays.
            (vec!["Rojo=1,congo=2".into()], Some("congo=2")),
            (vec!["1abc=1,congo=2".into()], Some("congo=2")),
            (vec!["rojo=,congo=2".into()], Some("congo=2")),
            (vec!["rojo=a=b,congo=2".into()], Some("congo=2")),
            (vec!["rojo,congo=2".into()], Some("congo=2")),
            (vec!["t@Vendor=1,t@=1,@v=1,congo=2".into()], Some("congo=2")),
            (vec!["t@vendorvendorvend=1,congo=2".into()], Some("congo=2")),
            // Later duplicates of a key go.
            (vec!["rojo=1,congo=2,rojo=3".into()], Some("rojo=1,congo=2")),
            (vec!["Bad Header".into()], None),
            (vec![String::new()], None),
        ];
        for (lines, expected) in cases {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let got = clean(&lines);
            assert_eq!(got.as_deref(), expected, "{lines:?}");
        }
        // Keys of 256 characters are the longest allowed.
        let got = clean(&[&format!("{long_key}=1,{too_long_key}=2")]);
        assert_eq!(got, Some(format!("{long_key}=1")));
    }

    #[test]
    fn at_most_32_members_are_kept() {
        let header: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        let got = clean(&[&header.join(",")]).unwrap();
        assert_eq!(got, header[..32].join(","));
    }

    #[test]
    fn long_headers_lose_long_members_first_then_members_from_the_end() {
        let long = format!("big={}", "x".repeat(200));
        let small: Vec<String> = (0..20)
            .map(|i| format!("k{i:02}={}", "v".repeat(20)))
            .collect();
        // 20 small members of 24 characters: 499 characters with commas; the long one pushes
        // the total past 512 and goes, although it came first.
        let mut members = vec![long.clone()];
        members.extend(small.iter().cloned());
        assert_eq!(clean(&[&members.join(",")]).unwrap(), small.join(","));
        // Without long members, whole members go from the end until the rest fits.
        let many: Vec<String> = (0..30)
            .map(|i| format!("k{i:02}={}", "v".repeat(20)))
            .collect();
        let got = clean(&[&many.join(",")]).unwrap();
        assert_eq!(got, many[..20].join(","));
        assert!(got.len() <= MAX_LENGTH);
    }
}
