//! Escaping a value for the kind of line it lands in, so that no value (a path, a user agent, an
//! upstream's error text) can break a line's syntax or forge a second line.

use std::io::Write;

/// Appends `text` as the content of a JSON string (RFC 8259), without the quotes.
pub(crate) fn json(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&text[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&text[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
}

/// Appends `text` with the five XML entities escaped; characters XML 1.0 forbids (C0 controls
/// other than tab, newline and carriage return) become U+FFFD.
pub(crate) fn xml(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        let escape: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&apos;",
            b'\n' => b"&#10;",
            b'\r' => b"&#13;",
            b'\t' => b"&#9;",
            0..=0x1f => "\u{fffd}".as_bytes(),
            _ => continue,
        };
        out.extend_from_slice(&text[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
}

/// Appends a CSV field (RFC 4180). Inside a field the template already quotes, only quotes are
/// doubled; otherwise a field holding a comma, quote or line break is quoted.
pub(crate) fn csv(out: &mut Vec<u8>, text: &[u8], quoted: bool) {
    let needs_quotes = !quoted
        && text
            .iter()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if needs_quotes {
        out.push(b'"');
    }
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'"' {
            out.extend_from_slice(&text[start..=i]);
            out.push(b'"');
            start = i + 1;
        }
    }
    out.extend_from_slice(&text[start..]);
    if needs_quotes {
        out.push(b'"');
    }
}

/// Appends `text` for a plain-text line (CLF and other free-form templates): quotes and
/// backslashes get a backslash, control characters become `\xHH`, as nginx does, so a line
/// stays one line and a quoted field stays one field.
pub(crate) fn text(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        if !(b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f) {
            continue;
        }
        out.extend_from_slice(&text[start..i]);
        if b == b'"' || b == b'\\' {
            out.extend_from_slice(&[b'\\', b]);
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
}
