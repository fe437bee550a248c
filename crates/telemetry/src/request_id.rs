//! Request ids: honour the client's `x-request-id` when it is sane, otherwise mint one.
//!
//! Minted ids look like UUID v4 (as API Gateway's `$context.requestId` does) but come from a
//! per-thread xorshift generator seeded once from the OS, so minting costs a few nanoseconds and
//! no system call on the request path.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

/// A request id, shared cheaply between the response header, the exchange record and the logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The longest client-supplied id we honour; longer ones are replaced.
    pub const MAX_LEN: usize = 128;

    /// Accepts a client-supplied id if it is 1..=128 visible ASCII characters without quotes or
    /// backslashes (so it is safe in logs and JSON without escaping surprises).
    pub fn from_client(value: &[u8]) -> Option<Self> {
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return None;
        }
        let sane = value
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if !sane {
            return None;
        }
        std::str::from_utf8(value).ok().map(|s| Self(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

/// As its text, for records stored by value (the trace store's).
impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&str>::deserialize(deserializer).map(|text| Self(Arc::from(text)))
    }
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // RandomState is seeded from the OS once per thread; hashing the thread id mixes threads apart.
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish() | 1
}

fn next_u64() -> u64 {
    STATE.with(|state| {
        // xorshift64*: fast, full period over non-zero states; not for secrets.
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// Mints a new request id in the UUID v4 text form (`8-4-4-4-12` lowercase hex).
pub fn new_request_id() -> RequestId {
    let hi = next_u64();
    let lo = next_u64();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let mut pos = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[pos] = b'-';
            pos += 1;
        }
        out[pos] = HEX[usize::from(byte >> 4)];
        out[pos + 1] = HEX[usize::from(byte & 0x0f)];
        pos += 2;
    }
    debug_assert_eq!(pos, 36);
    // Only ASCII hex digits and dashes were written above.
    let text = std::str::from_utf8(&out).unwrap_or_default();
    RequestId(Arc::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_uuid_v4_shaped_and_distinct() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let s = a.as_str();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(s.matches('-').count(), 4);
    }

    #[test]
    fn client_ids_are_checked() {
        let cases: &[(&[u8], bool)] = &[
            (b"abc-123", true),
            (b"", false),
            (b"has space", false),
            (b"quote\"", false),
            (b"back\\slash", false),
            (&[b'a'; 128], true),
            (&[b'a'; 129], false),
            ("ünï".as_bytes(), false),
        ];
        for (input, ok) in cases {
            assert_eq!(RequestId::from_client(input).is_some(), *ok, "{input:?}");
        }
    }
}
