//! What the log store's and the trace store's blocks share on disk: a format byte, LEB128
//! varints in their headers, and an LZ4 body whose raw size the header states, so a damaged or
//! hostile block is refused before anything large is allocated.

/// Why a stored block could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BlockError {
    #[error("unknown block format {0}")]
    Format(u8),
    #[error("truncated or malformed header")]
    Header,
    #[error("claims {0} raw bytes, more than any block holds")]
    TooLarge(usize),
    #[error("lz4: {0}")]
    Decompress(#[from] lz4_flex::block::DecompressError),
    #[error("decompressed to {found} bytes instead of {expected}")]
    Length { expected: usize, found: usize },
    #[error("messages are not UTF-8")]
    Utf8,
    #[error("entry lengths do not add up to the block")]
    Entries,
}

/// The rest of `data` after its format byte, which must be `format`.
pub(crate) fn after_format(data: &[u8], format: u8) -> Result<&[u8], BlockError> {
    let (&found, rest) = data.split_first().ok_or(BlockError::Header)?;
    if found != format {
        return Err(BlockError::Format(found));
    }
    Ok(rest)
}

/// Appends `raw` compressed with LZ4 to `data`.
pub(crate) fn compress_onto(data: &mut Vec<u8>, raw: &[u8]) {
    let header = data.len();
    data.resize(
        header + lz4_flex::block::get_maximum_output_size(raw.len()),
        0,
    );
    let written = match lz4_flex::block::compress_into(raw, &mut data[header..]) {
        Ok(written) => written,
        // Unreachable: the output was sized by the codec's own bound.
        Err(error) => unreachable!("lz4 output buffer too small: {error}"),
    };
    data.truncate(header + written);
}

/// Decompresses `compressed` into `buf`, which ends up exactly `raw_len` bytes long; a block
/// claiming more than `max` bytes is refused unread. Only the part of `buf` beyond its current
/// length is zeroed: the decompressor overwrites every byte, which the length check confirms.
pub(crate) fn decompress_exact(
    compressed: &[u8],
    raw_len: usize,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<(), BlockError> {
    if raw_len > max {
        return Err(BlockError::TooLarge(raw_len));
    }
    buf.resize(raw_len, 0);
    let found = lz4_flex::block::decompress_into(compressed, buf)?;
    if found != raw_len {
        return Err(BlockError::Length {
            expected: raw_len,
            found,
        });
    }
    Ok(())
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn take_varint(input: &mut &[u8]) -> Result<u64, BlockError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(BlockError::Header)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(BlockError::Header)
}

pub(crate) fn take_len(input: &mut &[u8]) -> Result<usize, BlockError> {
    usize::try_from(take_varint(input)?).map_err(|_| BlockError::Header)
}
