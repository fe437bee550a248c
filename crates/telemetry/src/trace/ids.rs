//! Trace and span ids: a fast thread-local generator and hex encoding.
//!
//! Ids need to be unpredictable enough not to collide, not secret: a xorshift64* generator per
//! thread, seeded once from the standard library's randomly keyed `RandomState` (which the OS seeds),
//! mints an id in a few nanoseconds without a lock or a system call.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_usize(&hasher as *const _ as usize);
    // xorshift must not start at zero.
    hasher.finish() | 1
}

/// One step of xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
/// generators"); `state` must be non-zero and stays non-zero.
pub fn xorshift64star(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// A random 64-bit number from this thread's generator.
pub fn random_u64() -> u64 {
    RNG.with(|cell| {
        let mut state = cell.get();
        let value = xorshift64star(&mut state);
        cell.set(state);
        value
    })
}

/// A new random, non-zero span id.
pub fn new_span_id() -> [u8; 8] {
    loop {
        let id = random_u64();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// A new trace id that is also a valid X-Ray trace id: 4 bytes of epoch seconds, then 12 random
/// bytes (X-Ray's `1-{8 hex time}-{24 hex random}`; the right-most 7 bytes are random, as W3C
/// level 2's random flag requires).
pub fn new_trace_id(epoch_seconds: u32) -> [u8; 16] {
    let mut id = [0; 16];
    id[..4].copy_from_slice(&epoch_seconds.to_be_bytes());
    id[4..12].copy_from_slice(&random_u64().to_be_bytes());
    id[12..].copy_from_slice(&(random_u64() as u32).to_be_bytes());
    id
}

/// The current wall-clock second, as X-Ray's trace ids carry it.
pub fn epoch_seconds() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` as lowercase hex.
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
}

/// Writes `bytes` as lowercase hex into `out`, which holds exactly two digits per byte.
pub(crate) fn hex_into(out: &mut [u8], bytes: &[u8]) {
    debug_assert_eq!(out.len(), bytes.len() * 2);
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
}

/// Decodes hex of exactly `N * 2` digits; `lowercase_only` refuses `A`–`F` (W3C requires
/// lowercase).
pub(crate) fn parse_hex<const N: usize>(text: &[u8], lowercase_only: bool) -> Option<[u8; N]> {
    if text.len() != N * 2 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if !lowercase_only => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_non_zero_and_distinct() {
        let a = new_span_id();
        let b = new_span_id();
        assert_ne!(a, [0; 8]);
        assert_ne!(a, b);
        let t = new_trace_id(0x5759_e988);
        assert_eq!(t[..4], [0x57, 0x59, 0xe9, 0x88]);
        assert_ne!(t[4..], [0; 12]);
    }

    #[test]
    fn hex_round_trips_and_respects_case() {
        let mut out = Vec::new();
        push_hex(&mut out, &[0x00, 0xab, 0xff]);
        assert_eq!(out, b"00abff");
        assert_eq!(parse_hex::<3>(b"00abff", true), Some([0x00, 0xab, 0xff]));
        assert_eq!(parse_hex::<3>(b"00ABff", true), None);
        assert_eq!(parse_hex::<3>(b"00ABff", false), Some([0x00, 0xab, 0xff]));
        assert_eq!(parse_hex::<3>(b"00abf", true), None);
        assert_eq!(parse_hex::<3>(b"00abfg", true), None);
    }
}
