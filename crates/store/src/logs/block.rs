//! The on-disk format of a log block: the events of one group, sorted by time, in one compressed
//! blob.
//!
//! Storing thousands of events per row is what makes ingest one insert per few thousand events
//! and scans a sequence of decompress-and-slice steps (Loki's chunks do the same). The raw block
//! is laid out text first so that, once decompressed, the buffer becomes the block's `String`
//! without a copy and is checked as UTF-8 in one pass:
//!
//! ```text
//! blob = format (1 byte = 1) | varint raw_len | varint text_len | lz4 block of raw
//! raw  = text (all messages, concatenated) | varint count | zigzag varint first_ts
//!        | count × (varint ts delta from the previous event, varint message length)
//! ```
//!
//! LZ4 (`lz4_flex`, pure Rust) compresses JSON access logs about five times over and decompresses
//! at several GB/s, which matters more here than the last few percent of ratio: decompression is
//! about 40 % of a full scan's CPU time. We use lz4_flex's faster decoder with its bounds checks
//! on (`checked-decode`) rather than its `safe-decode` one, which cost 15 % more scan time in
//! `examples/log_ingest.rs`. Decoding checks everything it reads, so a damaged blob is an error,
//! never a panic or an out-of-bounds access.

pub(crate) use crate::block_codec::BlockError;
use crate::block_codec::{
    after_format, compress_onto, decompress_exact, put_varint, take_len, take_varint,
};

/// The only block format so far; a new one gets a new first byte.
const FORMAT_V1: u8 = 1;
/// A block is closed once it holds this many events...
pub(crate) const MAX_BLOCK_EVENTS: usize = 4096;
/// ...or this many bytes of messages (one message may take it over, never more than one).
pub(crate) const MAX_BLOCK_TEXT_BYTES: usize = 1 << 20;
/// Decoding refuses blobs that claim more raw bytes than this: a full block plus its largest
/// message and headers is far less, so a larger claim means damage, and we would not allocate it.
const MAX_DECODED_BYTES: usize = 16 << 20;

/// One encoded block, ready to insert.
#[derive(Debug)]
pub(crate) struct EncodedBlock {
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) events: usize,
    pub(crate) bytes_raw: usize,
    pub(crate) data: Vec<u8>,
}

/// Encodes blocks, keeping its buffers between blocks.
#[derive(Default)]
pub(crate) struct BlockEncoder {
    raw: Vec<u8>,
}

impl BlockEncoder {
    /// Encodes `events`, which must be sorted by timestamp and non-empty.
    pub(crate) fn encode(&mut self, events: &[(i64, &str)]) -> EncodedBlock {
        debug_assert!(!events.is_empty());
        debug_assert!(events.is_sorted_by_key(|(ts, _)| *ts));
        let start_ms = events.first().map_or(0, |(ts, _)| *ts);
        let end_ms = events.last().map_or(0, |(ts, _)| *ts);
        let raw = &mut self.raw;
        raw.clear();
        for (_, message) in events {
            raw.extend_from_slice(message.as_bytes());
        }
        let text_len = raw.len();
        put_varint(raw, events.len() as u64);
        put_varint(raw, zigzag(start_ms));
        let mut previous = start_ms;
        for (ts, message) in events {
            // Sorted, so the difference is non-negative and fits in a u64 even across the whole
            // i64 range; decoding adds it back with the same wrapping arithmetic.
            put_varint(raw, ts.wrapping_sub(previous) as u64);
            put_varint(raw, message.len() as u64);
            previous = *ts;
        }
        let mut data = Vec::with_capacity(16 + lz4_flex::block::get_maximum_output_size(raw.len()));
        data.push(FORMAT_V1);
        put_varint(&mut data, raw.len() as u64);
        put_varint(&mut data, text_len as u64);
        compress_onto(&mut data, raw);
        EncodedBlock {
            start_ms,
            end_ms,
            events: events.len(),
            bytes_raw: raw.len(),
            data,
        }
    }
}

/// A decompressed block: its text and, per event, the timestamp and where its message starts.
/// Decoding checks that every message boundary is a character boundary, so slicing by the stored
/// offsets cannot fail afterwards.
#[derive(Default)]
pub(crate) struct DecodedBlock {
    text: String,
    /// (timestamp, start of the message in `text`), in time order.
    events: Vec<(i64, u32)>,
}

impl DecodedBlock {
    /// Decodes `data` into this block, reusing its buffers.
    pub(crate) fn decode_from(&mut self, data: &[u8]) -> Result<(), BlockError> {
        self.events.clear();
        let mut buf = std::mem::take(&mut self.text).into_bytes();
        let mut rest = after_format(data, FORMAT_V1)?;
        let raw_len = take_len(&mut rest)?;
        let text_len = take_len(&mut rest)?;
        // A raw length over the limit is refused as too large by `decompress_exact`.
        if raw_len <= MAX_DECODED_BYTES && text_len > raw_len {
            return Err(BlockError::Header);
        }
        decompress_exact(rest, raw_len, MAX_DECODED_BYTES, &mut buf)?;
        let mut header = &buf[text_len..];
        let count = take_len(&mut header)?;
        let mut ts = unzigzag(take_varint(&mut header)?);
        // Each event takes at least two header bytes, which bounds the allocation.
        if count > header.len() / 2 {
            return Err(BlockError::Header);
        }
        self.events.reserve(count);
        let mut start = 0usize;
        for _ in 0..count {
            ts = ts.wrapping_add(take_varint(&mut header)? as i64);
            let len = take_len(&mut header)?;
            self.events.push((ts, start as u32));
            start = start.checked_add(len).ok_or(BlockError::Entries)?;
        }
        if start != text_len || !header.is_empty() {
            return Err(BlockError::Entries);
        }
        buf.truncate(text_len);
        self.text = String::from_utf8(buf).map_err(|_| BlockError::Utf8)?;
        if !self
            .events
            .iter()
            .all(|&(_, start)| self.text.is_char_boundary(start as usize))
        {
            return Err(BlockError::Utf8);
        }
        Ok(())
    }

    /// How many events the block holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The uncompressed size of the messages.
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The timestamp of event `i`.
    pub(crate) fn timestamp(&self, i: usize) -> i64 {
        self.events[i].0
    }

    /// The message of event `i`.
    pub(crate) fn message(&self, i: usize) -> &str {
        let start = self.events[i].1 as usize;
        let end = self
            .events
            .get(i + 1)
            .map_or(self.text.len(), |&(_, next)| next as usize);
        &self.text[start..end]
    }

    /// The index range of the events with `start_ms <= timestamp < end_ms`.
    pub(crate) fn range(&self, start_ms: i64, end_ms: i64) -> std::ops::Range<usize> {
        let lo = self.events.partition_point(|&(ts, _)| ts < start_ms);
        let hi = self.events.partition_point(|&(ts, _)| ts < end_ms);
        lo..hi.max(lo)
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &EncodedBlock) -> DecodedBlock {
        let mut decoded = DecodedBlock::default();
        decoded.decode_from(&block.data).unwrap();
        decoded
    }

    #[test]
    fn blocks_round_trip_with_extreme_timestamps_and_unicode() {
        let events = [
            (i64::MIN, "first"),
            (-5, ""),
            (0, "zéro ✓"),
            (0, "same millisecond"),
            (i64::MAX, "last"),
        ];
        let block = BlockEncoder::default().encode(&events);
        assert_eq!((block.start_ms, block.end_ms), (i64::MIN, i64::MAX));
        assert_eq!(block.events, 5);
        let decoded = decode(&block);
        let back: Vec<(i64, &str)> = (0..decoded.len())
            .map(|i| (decoded.timestamp(i), decoded.message(i)))
            .collect();
        assert_eq!(back, events);
        assert_eq!(decoded.range(-5, 1), 1..4);
        assert_eq!(decoded.range(1, 1), 4..4);
        assert_eq!(decoded.range(10, 5), 4..4);
    }

    #[test]
    fn repetitive_messages_compress() {
        let line = r#"{"status":200,"method":"GET","path":"/pets/1","latency_ms":12}"#;
        let events: Vec<(i64, &str)> = (0..1000).map(|i| (1_000 + i, line)).collect();
        let block = BlockEncoder::default().encode(&events);
        assert!(
            block.data.len() * 10 < block.bytes_raw,
            "{}",
            block.data.len()
        );
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics() {
        let events = [(1, "héllo"), (2, "world")];
        let good = BlockEncoder::default().encode(&events).data;
        let mut decoded = DecodedBlock::default();
        assert!(matches!(decoded.decode_from(&[]), Err(BlockError::Header)));
        assert!(matches!(
            decoded.decode_from(&[9]),
            Err(BlockError::Format(9))
        ));
        let mut huge = vec![FORMAT_V1];
        put_varint(&mut huge, 1 << 40);
        put_varint(&mut huge, 0);
        assert!(matches!(
            decoded.decode_from(&huge),
            Err(BlockError::TooLarge(_))
        ));
        for cut in 1..good.len() {
            assert!(decoded.decode_from(&good[..cut]).is_err(), "cut at {cut}");
        }
        // Flipping any single byte is an error or a different but well-formed block.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            if decoded.decode_from(&bad).is_ok() {
                for i in 0..decoded.len() {
                    let _ = decoded.message(i);
                }
            }
        }
        decoded.decode_from(&good).unwrap();
        assert_eq!(decoded.message(0), "héllo");
    }
}
