//! Masking of credentials in captured data, and the text form of a captured body.
//!
//! JSON fields are masked by a lenient scanner over the text rather than by parsing it: a body
//! cut at `max_body_bytes` is usually not valid JSON any more, and its secrets must be masked all
//! the same. The scanner copies the text as it is (key order, spacing) and replaces the value of
//! every member whose key matches, at any depth, whatever the value's type. A value cut off by
//! the cap is masked to the end of the text.

use std::borrow::Cow;

use super::REDACTED;

/// Masks the values of members named in `fields` (ASCII case ignored) in JSON `text`.
pub(super) fn mask_json_fields<'t>(text: &'t str, fields: &[String]) -> Cow<'t, str> {
    if fields.is_empty() {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    // Only ASCII bytes are compared, so every index used to slice is a char boundary.
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let (end, closed) = skip_string(bytes, i);
        let colon = skip_blank(bytes, end);
        let is_key = closed && bytes.get(colon) == Some(&b':');
        if is_key && matches_field(&text[i + 1..end - 1], fields) {
            let value = skip_blank(bytes, colon + 1);
            let value_end = skip_value(bytes, value);
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..value]);
            out.push('"');
            out.push_str(REDACTED);
            out.push('"');
            copied = value_end;
            i = value_end;
        } else {
            i = end;
        }
    }
    match out {
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(text),
    }
}

fn matches_field(key: &str, fields: &[String]) -> bool {
    fields.iter().any(|field| field.eq_ignore_ascii_case(key))
}

fn skip_blank(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index after the string starting at `start` (a quote), and whether it was closed.
fn skip_string(bytes: &[u8], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return (i + 1, true),
            _ => i += 1,
        }
    }
    (bytes.len(), false)
}

/// The index after the JSON value starting at `start`; the end of the text if it is cut off.
fn skip_value(bytes: &[u8], start: usize) -> usize {
    match bytes.get(start) {
        None => bytes.len(),
        Some(b'"') => skip_string(bytes, start).0,
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => {
                        i = skip_string(bytes, i).0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            bytes.len()
        }
        Some(_) => {
            let rest = &bytes[start..];
            start
                + rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(rest.len())
        }
    }
}

/// Whether a body is treated as JSON: its first non-blank byte opens an object or an array.
/// Deciding by content rather than by `Content-Type` errs on the side of masking.
pub(super) fn looks_like_json(bytes: &[u8]) -> bool {
    matches!(bytes.get(skip_blank(bytes, 0)), Some(b'{') | Some(b'['))
}

/// A body as UTF-8 text, allowing the cap to have cut a multi-byte character at the end (that
/// partial character is left out); `None` for anything else.
pub(super) fn as_text(bytes: &[u8]) -> Option<&str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&bytes[..error.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

/// Standard base64 with padding (RFC 4648 §4), for bodies that are not text.
pub(super) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(text: &str, fields: &[&str]) -> String {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        mask_json_fields(text, &fields).into_owned()
    }

    #[test]
    fn json_fields_are_masked_at_any_depth_and_any_type() {
        let cases = [
            (r#"{"password":"hunter2"}"#, r#"{"password":"***"}"#),
            (
                r#"{"a":{"b":[{"Password": 42}]}}"#,
                r#"{"a":{"b":[{"Password": "***"}]}}"#,
            ),
            (
                r#"{"token":{"x":[1,"}"]},"n":1}"#,
                r#"{"token":"***","n":1}"#,
            ),
            (
                r#"{"token":[1,2],"k":"token"}"#,
                r#"{"token":"***","k":"token"}"#,
            ),
            (
                r#"{"token" : true , "x":null}"#,
                r#"{"token" : "***" , "x":null}"#,
            ),
            (
                r#"{"tok\"en":"v","token":"a\"b"}"#,
                r#"{"tok\"en":"v","token":"***"}"#,
            ),
            (r#"["token","secret"]"#, r#"["token","secret"]"#),
            (
                r#"{"name":"ü€","secret":"ü€"}"#,
                r#"{"name":"ü€","secret":"***"}"#,
            ),
            // Cut off by the capture cap: masked to the end.
            (
                r#"{"user":"a","password":"hun"#,
                r#"{"user":"a","password":"***""#,
            ),
            (r#"{"token":{"a":"#, r#"{"token":"***""#),
            (r#"{"token":"#, r#"{"token":"***""#),
            (r#"{"tok"#, r#"{"tok"#),
        ];
        for (input, expected) in cases {
            assert_eq!(
                mask(input, &["password", "token", "secret"]),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn no_fields_or_no_match_borrows() {
        assert!(matches!(
            mask_json_fields("{\"a\":1}", &[]),
            Cow::Borrowed(_)
        ));
        let fields = vec!["b".to_owned()];
        assert!(matches!(
            mask_json_fields("{\"a\":1}", &fields),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn text_allows_a_cut_character_at_the_end_only() {
        assert_eq!(as_text(b"abc"), Some("abc"));
        assert_eq!(as_text("a€".as_bytes()), Some("a€"));
        assert_eq!(as_text(&"a€".as_bytes()[..2]), Some("a"));
        assert_eq!(as_text(b"a\xffb"), None);
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in vectors {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(base64(&[0xff, 0x00, 0xfe]), "/wD+");
    }

    #[test]
    fn json_detection_looks_at_the_first_non_blank_byte() {
        assert!(looks_like_json(b" \n{\"a\":1}"));
        assert!(looks_like_json(b"[1]"));
        assert!(!looks_like_json(b"a=1&b=2"));
        assert!(!looks_like_json(b""));
    }
}
