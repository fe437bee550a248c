//! The on-disk format of a trace block: the traced exchanges and received spans of one writer
//! commit, sorted by start time, in one compressed blob.
//!
//! An entry is either a gateway exchange ([`TracedExchange`], whose spans are built when read) or
//! a span a service sent (postcard [`Span`]). Entry headers come first and hold what a read needs
//! before it decodes an entry: the start, whether the entry is a request the search lists, and
//! how many spans it yields (a search's span count). The payloads follow. The trace id, by which
//! a trace read picks its entries, is not repeated in the header: both payloads begin with it
//! (after the record's version byte for an exchange; the first field of a span), so a read takes
//! it from there without decoding the rest, and the 16 random bytes that LZ4 cannot shrink are
//! stored once.
//!
//! ```text
//! blob    = format (1 byte = 1) | varint raw_len | lz4 block of raw
//! raw     = varint count | count × header | payloads (concatenated, in header order)
//! header  = varint start delta from the previous entry (nanoseconds) | kind (1 byte)
//!           | varint spans | varint payload length
//! kind    = 1 a gateway exchange (`TracedExchange::encode_into`: its own version byte, postcard)
//!         | 2 a span (postcard `Span`) | 3 a span that is a request's root (listed by search)
//! ```
//!
//! Decoding checks everything it reads, so a damaged blob is an error, never a panic.

use std::ops::Range;

use gatehouse_telemetry::spans::{Classification, Span, SpanKind, TracedExchange, attr};

use super::class_code;
use super::index::trace_key;
pub(crate) use crate::block_codec::BlockError;
use crate::block_codec::{
    after_format, compress_onto, decompress_exact, put_varint, take_len, take_varint,
};

/// The only block format so far; a new one gets a new first byte.
const FORMAT_V1: u8 = 1;
/// A block is closed once it holds this many entries...
pub(crate) const MAX_BLOCK_ENTRIES: usize = 4096;
/// ...or this many raw bytes (one entry may take it over).
pub(crate) const MAX_BLOCK_RAW_BYTES: usize = 1 << 20;
/// Decoding refuses blobs that claim more raw bytes than this.
const MAX_DECODED_BYTES: usize = 64 << 20;
/// The fewest bytes a header takes: the kind and three one-byte varints.
const HEADER_MIN_BYTES: usize = 4;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A request the gateway served: a [`TracedExchange`].
    Exchange = 1,
    /// A span a service sent, or any span that is not a request's root.
    Span = 2,
    /// A span that is the root of a request (a server span without `service.name`).
    RootSpan = 3,
}

impl EntryKind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Exchange,
            2 => Self::Span,
            3 => Self::RootSpan,
            _ => return None,
        })
    }

    /// Whether a trace search lists the entry.
    pub(crate) fn is_root(self) -> bool {
        self != Self::Span
    }

    /// Where the trace id begins in the payload: after an encoded record's version byte and the
    /// id's length (16, one byte), at the start of a span (their first fields; `block_tests`
    /// holds both to it).
    fn trace_id_at(self) -> usize {
        match self {
            Self::Exchange => 2,
            Self::Span | Self::RootSpan => 0,
        }
    }
}

/// An entry to write: borrowed from the writer's pending batches.
#[derive(Clone, Copy)]
pub(crate) enum Entry<'a> {
    Exchange(&'a TracedExchange),
    Span(&'a Span),
}

impl Entry<'_> {
    pub(crate) fn trace_id(&self) -> [u8; 16] {
        match self {
            Self::Exchange(traced) => traced.trace_id,
            Self::Span(span) => span.trace_id,
        }
    }

    /// When its first span starts.
    pub(crate) fn start(&self) -> u64 {
        match self {
            Self::Exchange(traced) => traced.start_unix_nanos,
            Self::Span(span) => span.start_unix_nanos,
        }
    }

    pub(crate) fn spans(&self) -> usize {
        match self {
            Self::Exchange(traced) => traced.span_count(),
            Self::Span(_) => 1,
        }
    }
}

/// The facts of a block its row carries, so that reads can choose blocks without their blobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockSummary {
    /// The earliest entry start.
    pub(crate) start_min: u64,
    /// The latest start of any span.
    pub(crate) start_max: u64,
    pub(crate) entries: u64,
    pub(crate) spans: u64,
    pub(crate) roots: u64,
    /// The longest root's duration.
    pub(crate) root_duration_max: u64,
    /// Bit `1 << class_code` for each roots' classification.
    pub(crate) root_classes: u8,
}

/// One encoded block, ready to insert; its blob is the builder's buffer.
#[derive(Debug)]
pub(crate) struct EncodedBlock<'a> {
    pub(crate) summary: BlockSummary,
    /// The index keys of its traces, sorted, without duplicates.
    pub(crate) keys: Vec<u64>,
    pub(crate) bytes_raw: usize,
    pub(crate) data: &'a [u8],
}

/// Builds blocks entry by entry, keeping its buffers between blocks.
#[derive(Default)]
pub(crate) struct BlockBuilder {
    headers: Vec<u8>,
    payloads: Vec<u8>,
    raw: Vec<u8>,
    /// The blob of the last block; kept, so that sizing it for the compressor zeroes only what
    /// it has never held.
    blob: Vec<u8>,
    keys: Vec<u64>,
    summary: BlockSummary,
    previous_start: u64,
}

impl BlockBuilder {
    /// Makes room for about `entries` more entries, so encoding rarely grows the buffers.
    pub(crate) fn reserve(&mut self, entries: usize) {
        let entries = entries.min(MAX_BLOCK_ENTRIES);
        self.headers.reserve(entries * 8);
        self.payloads.reserve(entries * 256);
        self.keys.reserve(entries);
    }

    /// Forgets the entries pushed since the last block.
    pub(crate) fn reset(&mut self) {
        self.headers.clear();
        self.payloads.clear();
        self.keys.clear();
        self.summary = BlockSummary::default();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.summary.entries == 0
    }

    /// Whether the block should be closed before another entry.
    pub(crate) fn is_full(&self) -> bool {
        self.summary.entries as usize >= MAX_BLOCK_ENTRIES
            || self.headers.len() + self.payloads.len() >= MAX_BLOCK_RAW_BYTES
    }

    /// Adds `entry`, which must not start before the previous one. An entry that cannot be
    /// encoded (postcard's in-memory encoder does not fail on these types, but a panic is not
    /// worth it) is left out and reported.
    pub(crate) fn push(&mut self, entry: Entry<'_>) -> Result<(), postcard::Error> {
        let start = entry.start();
        debug_assert!(self.is_empty() || start >= self.previous_start);
        let payload_start = self.payloads.len();
        let (kind, last_start, root) = match entry {
            Entry::Exchange(traced) => {
                traced.encode_into(&mut self.payloads)?;
                let root = (traced.duration_nanos(), traced.classification());
                (
                    EntryKind::Exchange,
                    traced.last_span_start_unix_nanos(),
                    Some(root),
                )
            }
            Entry::Span(span) => {
                let before = self.payloads.len();
                match postcard::to_extend(span, std::mem::take(&mut self.payloads)) {
                    Ok(payloads) => self.payloads = payloads,
                    Err(error) => {
                        self.payloads.truncate(before);
                        return Err(error);
                    }
                }
                let is_root =
                    span.kind == SpanKind::Server && span.attribute(attr::SERVICE_NAME).is_none();
                let root = is_root.then(|| (span.duration_nanos(), span.classification));
                let kind = if is_root {
                    EntryKind::RootSpan
                } else {
                    EntryKind::Span
                };
                (kind, span.start_unix_nanos, root)
            }
        };
        let spans = entry.spans();
        let trace_id = entry.trace_id();
        let delta = if self.is_empty() {
            start
        } else {
            start - self.previous_start
        };
        put_varint(&mut self.headers, delta);
        self.headers.push(kind as u8);
        put_varint(&mut self.headers, spans as u64);
        put_varint(
            &mut self.headers,
            (self.payloads.len() - payload_start) as u64,
        );
        self.keys.push(trace_key(&trace_id));

        let summary = &mut self.summary;
        if summary.entries == 0 {
            summary.start_min = start;
        }
        summary.start_max = summary.start_max.max(last_start).max(start);
        summary.entries += 1;
        summary.spans += spans as u64;
        if let Some((duration, class)) = root {
            add_root(summary, duration, class);
        }
        self.previous_start = start;
        Ok(())
    }

    /// Encodes the entries pushed since the last call and starts a new block.
    pub(crate) fn finish(&mut self) -> EncodedBlock<'_> {
        debug_assert!(!self.is_empty());
        let raw = &mut self.raw;
        raw.clear();
        put_varint(raw, self.summary.entries);
        raw.extend_from_slice(&self.headers);
        raw.extend_from_slice(&self.payloads);
        let data = &mut self.blob;
        data.clear();
        data.push(FORMAT_V1);
        put_varint(data, raw.len() as u64);
        compress_onto(data, raw);
        let bytes_raw = raw.len();
        let mut keys = std::mem::take(&mut self.keys);
        keys.sort_unstable();
        keys.dedup();
        self.headers.clear();
        self.payloads.clear();
        EncodedBlock {
            summary: std::mem::take(&mut self.summary),
            keys,
            bytes_raw,
            data: &self.blob,
        }
    }
}

fn add_root(summary: &mut BlockSummary, duration: u64, class: Classification) {
    summary.roots += 1;
    summary.root_duration_max = summary.root_duration_max.max(duration);
    summary.root_classes |= 1 << class_code(class);
}

/// One entry's header, as decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    pub(crate) trace_id: [u8; 16],
    pub(crate) start: u64,
    pub(crate) kind: EntryKind,
    pub(crate) spans: u64,
    payload: Range<usize>,
}

/// A decompressed block: its entries' headers and payloads.
#[derive(Default)]
pub(crate) struct DecodedBlock {
    raw: Vec<u8>,
    entries: Vec<EntryHeader>,
}

impl DecodedBlock {
    /// Decodes `data` into this block, reusing its buffers.
    pub(crate) fn decode_from(&mut self, data: &[u8]) -> Result<(), BlockError> {
        self.entries.clear();
        let mut rest = after_format(data, FORMAT_V1)?;
        let raw_len = take_len(&mut rest)?;
        decompress_exact(rest, raw_len, MAX_DECODED_BYTES, &mut self.raw)?;
        let mut input = &self.raw[..];
        let count = take_len(&mut input)?;
        // Each header takes at least HEADER_MIN_BYTES, which bounds the allocation.
        if count > input.len() / HEADER_MIN_BYTES {
            return Err(BlockError::Header);
        }
        self.entries.reserve(count);
        let mut start = 0u64;
        for i in 0..count {
            let delta = take_varint(&mut input)?;
            start = if i == 0 {
                delta
            } else {
                start.checked_add(delta).ok_or(BlockError::Header)?
            };
            let (&kind, rest) = input.split_first().ok_or(BlockError::Header)?;
            input = rest;
            let kind = EntryKind::from_byte(kind).ok_or(BlockError::Header)?;
            let spans = take_varint(&mut input)?;
            let len = take_len(&mut input)?;
            self.entries.push(EntryHeader {
                trace_id: [0; 16],
                start,
                kind,
                spans,
                // The length for now; made an offset range once the headers end.
                payload: 0..len,
            });
        }
        let mut offset = self.raw.len() - input.len();
        for entry in &mut self.entries {
            let end = offset
                .checked_add(entry.payload.end)
                .ok_or(BlockError::Entries)?;
            entry.payload = offset..end;
            let at = offset + entry.kind.trace_id_at();
            entry.trace_id = self
                .raw
                .get(at..at + 16)
                .filter(|_| at + 16 <= end)
                .and_then(|id| id.try_into().ok())
                .ok_or(BlockError::Entries)?;
            offset = end;
        }
        if offset != self.raw.len() {
            self.entries.clear();
            return Err(BlockError::Entries);
        }
        Ok(())
    }

    pub(crate) fn entries(&self) -> &[EntryHeader] {
        &self.entries
    }

    /// The payload of entry `i`.
    pub(crate) fn payload(&self, i: usize) -> &[u8] {
        &self.raw[self.entries[i].payload.clone()]
    }
}

/// A stored entry, decoded.
pub(crate) enum Decoded {
    Exchange(Box<TracedExchange>),
    Span(Span),
}

/// Decodes an entry's payload; `None` (and a warning) when it cannot be read.
pub(crate) fn decode_entry(kind: EntryKind, payload: &[u8]) -> Option<Decoded> {
    let decoded = match kind {
        EntryKind::Exchange => TracedExchange::decode(payload)
            .map(|traced| Decoded::Exchange(Box::new(traced)))
            .map_err(|e| e.to_string()),
        EntryKind::Span | EntryKind::RootSpan => postcard::from_bytes::<Span>(payload)
            .map(Decoded::Span)
            .map_err(|e| e.to_string()),
    };
    match decoded {
        Ok(decoded) => Some(decoded),
        Err(error) => {
            tracing::warn!(%error, "an unreadable stored trace entry was skipped");
            None
        }
    }
}

impl Decoded {
    pub(crate) fn spans(self) -> Vec<Span> {
        match self {
            Self::Exchange(traced) => traced.spans(),
            Self::Span(span) => vec![span],
        }
    }

    pub(crate) fn as_entry(&self) -> Entry<'_> {
        match self {
            Self::Exchange(traced) => Entry::Exchange(traced),
            Self::Span(span) => Entry::Span(span),
        }
    }
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;
