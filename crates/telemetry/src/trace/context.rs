//! The trace headers on the wire: W3C `traceparent` (Trace Context level 2) and AWS X-Ray's
//! `X-Amzn-Trace-Id`, parsed leniently (anything invalid is `None`, never an error the request
//! sees) and formatted for the upstream and the response.
//!
//! Both formats carry the same 128-bit trace id: X-Ray's `1-{8 hex}-{24 hex}` root is the 32 hex
//! digits of a W3C trace id split after the first eight (the epoch-seconds part), so a trace
//! started by either side can be continued in the other's format.

use http::HeaderValue;

use super::ids::{hex_into, parse_hex};

/// `trace-flags` bit 0: the caller recorded (sampled) its part of the trace.
pub const FLAG_SAMPLED: u8 = 0x01;
/// `trace-flags` bit 1 (level 2): the right-most 7 bytes of the trace id are random.
pub const FLAG_RANDOM: u8 = 0x02;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    /// The flags this gateway understands (sampled and random); other bits are dropped, as the
    /// spec asks of a participant that does not know them.
    pub flags: u8,
}

/// Parses a `traceparent` value (W3C Trace Context §3.2).
///
/// Version `00` must be exactly 55 characters. A higher version is parsed by its version-00
/// prefix, as the spec's forward-compatibility rules say: at least 55 characters and, if longer,
/// a `-` right after the flags. Version `ff`, uppercase hex and all-zero ids are invalid.
pub fn parse_traceparent(value: &[u8]) -> Option<TraceParent> {
    if value.len() < 55 {
        return None;
    }
    let version = parse_hex::<1>(&value[..2], true)?[0];
    match version {
        0xff => return None,
        0x00 if value.len() != 55 => return None,
        _ if value.len() > 55 && value[55] != b'-' => return None,
        _ => {}
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = parse_hex::<16>(&value[3..35], true)?;
    let parent_id = parse_hex::<8>(&value[36..52], true)?;
    let flags = parse_hex::<1>(&value[53..55], true)?[0];
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        flags: flags & (FLAG_SAMPLED | FLAG_RANDOM),
    })
}

/// The length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;
/// `Root=1-{8 hex}-{24 hex}`.
const XRAY_ROOT_FIELD_LEN: usize = 40;
/// `Root=…;Parent={16 hex};Sampled=0|1`.
const XRAY_FULL_LEN: usize = XRAY_ROOT_FIELD_LEN + 24 + 10;

/// Formats a version-00 `traceparent`: `00-{trace id}-{parent id}-{flags}`.
pub fn format_traceparent(trace_id: &[u8; 16], parent_id: &[u8; 8], flags: u8) -> HeaderValue {
    let mut trace_hex = [0; 32];
    hex_into(&mut trace_hex, trace_id);
    header_value(&traceparent_bytes(&trace_hex, parent_id, flags))
}

/// `traceparent` from the trace id already in hex, so one encoding serves both formats.
fn traceparent_bytes(
    trace_hex: &[u8; 32],
    parent_id: &[u8; 8],
    flags: u8,
) -> [u8; TRACEPARENT_LEN] {
    let mut out = [0; TRACEPARENT_LEN];
    out[..3].copy_from_slice(b"00-");
    out[3..35].copy_from_slice(trace_hex);
    out[35] = b'-';
    hex_into(&mut out[36..52], parent_id);
    out[52] = b'-';
    hex_into(&mut out[53..55], &[flags]);
    out
}

/// A parsed `X-Amzn-Trace-Id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XrayHeader {
    pub trace_id: [u8; 16],
    pub parent_id: Option<[u8; 8]>,
    /// `Sampled=1` or `0`; `None` for `Sampled=?` (the caller asks the gateway to decide) or no
    /// `Sampled` field.
    pub sampled: Option<bool>,
}

/// Parses `X-Amzn-Trace-Id: Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled=0|1|?`.
///
/// Fields are `;`-separated `Key=Value` pairs in any order, with optional spaces. `Root` is
/// required; `Parent` and `Sampled` are optional (a load balancer sends a root without a parent).
/// Other fields (`Self`, `Lineage`, custom data) are accepted and not kept. Hex of either case is
/// accepted (X-Ray itself writes lowercase); an all-zero id or a malformed known field makes the
/// whole header invalid.
pub fn parse_xray(value: &[u8]) -> Option<XrayHeader> {
    let text = std::str::from_utf8(value).ok()?;
    let mut root = None;
    let mut parent_id = None;
    let mut sampled = None;
    for field in text.split(';') {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        let (key, value) = field.split_once('=')?;
        match key.trim() {
            "Root" => root = Some(parse_xray_root(value.trim().as_bytes())?),
            "Parent" => {
                let id = parse_hex::<8>(value.trim().as_bytes(), false)?;
                if id == [0; 8] {
                    return None;
                }
                parent_id = Some(id);
            }
            "Sampled" => {
                sampled = match value.trim() {
                    "1" => Some(true),
                    "0" => Some(false),
                    "?" => None,
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    Some(XrayHeader {
        trace_id: root?,
        parent_id,
        sampled,
    })
}

/// Parses an X-Ray root, `1-{8 hex epoch}-{24 hex random}`, into a 16-byte trace id.
pub fn parse_xray_root(root: &[u8]) -> Option<[u8; 16]> {
    if root.len() != 35 || &root[..2] != b"1-" || root[10] != b'-' {
        return None;
    }
    let time = parse_hex::<4>(&root[2..10], false)?;
    let random = parse_hex::<12>(&root[11..], false)?;
    let mut id = [0; 16];
    id[..4].copy_from_slice(&time);
    id[4..].copy_from_slice(&random);
    (id != [0; 16]).then_some(id)
}

/// Appends the X-Ray root of a trace id: `1-{first 8 hex}-{last 24 hex}`.
pub fn push_xray_root(out: &mut Vec<u8>, trace_id: &[u8; 16]) {
    let mut trace_hex = [0; 32];
    hex_into(&mut trace_hex, trace_id);
    out.extend_from_slice(&xray_root_field(&trace_hex)[5..]);
}

/// `Root=1-{first 8 hex}-{last 24 hex}` from the trace id in hex.
fn xray_root_field(trace_hex: &[u8; 32]) -> [u8; XRAY_ROOT_FIELD_LEN] {
    let mut out = [0; XRAY_ROOT_FIELD_LEN];
    out[..7].copy_from_slice(b"Root=1-");
    out[7..15].copy_from_slice(&trace_hex[..8]);
    out[15] = b'-';
    out[16..].copy_from_slice(&trace_hex[8..]);
    out
}

/// Formats `X-Amzn-Trace-Id`: `Root=…`, then `;Parent=…` and `;Sampled=0|1` when given.
pub fn format_xray(
    trace_id: &[u8; 16],
    parent_id: Option<&[u8; 8]>,
    sampled: Option<bool>,
) -> HeaderValue {
    let mut trace_hex = [0; 32];
    hex_into(&mut trace_hex, trace_id);
    let mut out = [0; XRAY_FULL_LEN];
    out[..XRAY_ROOT_FIELD_LEN].copy_from_slice(&xray_root_field(&trace_hex));
    let mut len = XRAY_ROOT_FIELD_LEN;
    if let Some(parent) = parent_id {
        out[len..len + 8].copy_from_slice(b";Parent=");
        hex_into(&mut out[len + 8..len + 24], parent);
        len += 24;
    }
    if let Some(sampled) = sampled {
        out[len..len + 10].copy_from_slice(if sampled {
            b";Sampled=1"
        } else {
            b";Sampled=0"
        });
        len += 10;
    }
    header_value(&out[..len])
}

/// The two trace headers for the upstream from one hex encoding of the trace id: `traceparent`
/// and `X-Amzn-Trace-Id: Root=…;Parent={span_id};Sampled=0|1`. `span_id` is the gateway's span,
/// the upstream's parent.
pub fn format_upstream(
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
    flags: u8,
) -> (HeaderValue, HeaderValue) {
    let mut trace_hex = [0; 32];
    hex_into(&mut trace_hex, trace_id);
    let mut xray = [0; XRAY_FULL_LEN];
    xray[..XRAY_ROOT_FIELD_LEN].copy_from_slice(&xray_root_field(&trace_hex));
    xray[40..48].copy_from_slice(b";Parent=");
    hex_into(&mut xray[48..64], span_id);
    xray[64..73].copy_from_slice(b";Sampled=");
    xray[73] = if flags & FLAG_SAMPLED != 0 {
        b'1'
    } else {
        b'0'
    };
    (
        header_value(&traceparent_bytes(&trace_hex, span_id, flags)),
        header_value(&xray),
    )
}

fn header_value(bytes: &[u8]) -> HeaderValue {
    // Only ASCII letters, digits, '-', ';' and '=' were written.
    HeaderValue::from_bytes(bytes).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
