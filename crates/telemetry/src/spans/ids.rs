//! Trace and span ids as text: W3C Trace Context's lowercase hex (32 digits for a trace, 16 for a
//! span), and AWS X-Ray's `1-{8 hex epoch seconds}-{24 hex}` form of the same 128 bits, which
//! people paste from X-Ray consoles and `X-Amzn-Trace-Id` headers.

/// Why a trace id could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceIdError {
    #[error(
        "'{0}' is not a trace id: use 32 hex digits (W3C) or 1-8hex-24hex (X-Ray), not all zeros"
    )]
    Malformed(String),
}

/// Reads a trace id in W3C form (32 hex digits) or X-Ray form (`1-5759e988-bd862e3fe1be46a994272793`).
/// Upper-case digits are accepted; an all-zero id is invalid in both standards.
pub fn parse_trace_id(text: &str) -> Result<[u8; 16], TraceIdError> {
    let malformed = || TraceIdError::Malformed(text.to_owned());
    let text = text.trim();
    let hex: String = match text.split('-').collect::<Vec<_>>().as_slice() {
        [w3c] if w3c.len() == 32 => (*w3c).to_owned(),
        ["1", epoch, unique] if epoch.len() == 8 && unique.len() == 24 => {
            format!("{epoch}{unique}")
        }
        _ => return Err(malformed()),
    };
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed());
    }
    let mut id = [0u8; 16];
    for (byte, pair) in id.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let digit = |b: u8| char::from(b).to_digit(16).map_or(0, |d| d as u8);
        *byte = digit(pair[0]) << 4 | digit(pair[1]);
    }
    if id == [0; 16] {
        return Err(malformed());
    }
    Ok(id)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// The W3C form: 32 lowercase hex digits.
pub fn trace_id_hex(id: &[u8; 16]) -> String {
    hex(id)
}

/// 16 lowercase hex digits.
pub fn span_id_hex(id: &[u8; 8]) -> String {
    hex(id)
}

/// The id of child `index` of span `parent`: a SplitMix64 mix of the two, so ids are stable for
/// one exchange, spread over the whole space, and never zero (W3C forbids an all-zero span id).
pub fn child_span_id(parent: [u8; 8], index: u32) -> [u8; 8] {
    let mut z = u64::from_be_bytes(parent)
        .wrapping_add(0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(u64::from(index) + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == 0 {
        z = 1;
    }
    z.to_be_bytes()
}
