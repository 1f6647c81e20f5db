//! GIF's variable-width LZW, decoded straight into the frame's index buffer.
//!
//! Written here because it was three quarters of a GIF thumbnail's time: weezl, which the gif
//! crate uses, keeps each table entry as a linked suffix chain and walks it per code. Here a
//! table entry is a back-reference instead (where its string already is in the output, and how
//! long it is), the way LZ77 works, so a code costs one short copy. A new entry is the previous
//! string plus the first byte of the current one, and those two sit next to each other in the
//! output, so no string is ever stored. This is the classic design (giflib and stb_image keep
//! prefix chains; libnsgif and Wuffs also copy from the output).
//!
//! The input is hostile: every code is checked against the table, the output is never written
//! past its end, and the loop ends when the output is full or the data runs out.

use crate::Error;

/// Codes are at most 12 bits wide.
const MAX_CODES: usize = 4096;

fn malformed(what: &str) -> Error {
    Error::MalformedImage(format!("gif image: {what}"))
}

/// Decodes `blocks` (the frame's data sub-blocks as stored: a length byte, that many bytes,
/// and so on up to an empty one) with `min_code_size` until `out` is full. The sub-blocks are
/// read where they are, never joined into a copy. Data after that, and after an end code, is ignored; a stream that ends before
/// `out` is full is truncated. `min_code_size` must be 2 to 8 (GIF's own range is 2 to 8, and
/// 1 for 2-colour images by some encoders).
pub fn decode(min_code_size: u8, data: &[u8], out: &mut [u8]) -> Result<(), Error> {
    if !(1..=8).contains(&min_code_size) {
        return Err(malformed(&format!(
            "LZW minimum code size {min_code_size} is outside 1 to 8"
        )));
    }
    let clear = 1usize << min_code_size;
    let end = clear + 1;
    // Where each entry's string is in `out`, and its length. Codes are masked to 12 bits, so
    // indexing these needs no bounds check.
    let mut start = vec![0u32; MAX_CODES].into_boxed_slice();
    let mut length = vec![0u32; MAX_CODES].into_boxed_slice();
    let (start, length): (&mut [u32; MAX_CODES], &mut [u32; MAX_CODES]) = (
        (&mut *start).try_into().expect("MAX_CODES long"),
        (&mut *length).try_into().expect("MAX_CODES long"),
    );
    let mut size = u32::from(min_code_size) + 1;
    let mut next = clear + 2;
    // The previous string (where and how long); a length of 0 means none since a clear.
    let (mut prev_from, mut prev_len) = (0usize, 0usize);
    let mut pos = 0usize;
    let mut bits = Bits::new(data);
    while pos < out.len() {
        let code = bits.take(size).ok_or_else(truncated)? as usize & (MAX_CODES - 1);
        if code == clear {
            (size, next, prev_len) = (u32::from(min_code_size) + 1, clear + 2, 0);
            continue;
        }
        let room = out.len() - pos;
        let len = if code < clear {
            out[pos] = code as u8;
            1
        } else if code < next && code != end {
            let (from, len) = (start[code] as usize, length[code] as usize);
            copy_back(out, from, pos, len.min(room));
            len
        } else if code == next && prev_len > 0 {
            // The entry being made: the previous string and its own first byte.
            copy_back(out, prev_from, pos, prev_len.min(room));
            if prev_len < room {
                out[pos + prev_len] = out[prev_from];
            }
            prev_len + 1
        } else if code == end {
            return Err(truncated());
        } else {
            return Err(malformed(&format!("LZW code {code} is not in the table")));
        };
        if prev_len > 0 && next < MAX_CODES {
            start[next] = prev_from as u32;
            length[next] = prev_len as u32 + 1;
            next += 1;
            if next == 1 << size && size < 12 {
                size += 1;
            }
        }
        (prev_from, prev_len) = (pos, len);
        pos += len;
    }
    Ok(())
}

fn truncated() -> Error {
    malformed("the image data ends before the image does")
}

/// The stream's codes, least significant bit first, read across the sub-blocks.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    /// Where the current sub-block's bytes end (`at` is then at the next length byte).
    block_end: usize,
    buf: u64,
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            at: 0,
            block_end: 0,
            buf: 0,
            count: 0,
        }
    }

    /// The next `n` (at most 12) bits, or `None` at the end of the data.
    #[inline(always)]
    fn take(&mut self, n: u32) -> Option<u32> {
        if self.count < n {
            self.refill();
            if self.count < n {
                return None;
            }
        }
        let v = (self.buf & ((1 << n) - 1)) as u32;
        self.buf >>= n;
        self.count -= n;
        Some(v)
    }

    /// Tops the buffer up to at least 56 bits, eight bytes at a time inside a sub-block.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(word) = self.data.get(self.at..self.at + 8)
            && self.at + 8 <= self.block_end
        {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            self.buf |= word << self.count;
            let bytes = (63 - self.count) / 8;
            self.at += bytes as usize;
            self.count += bytes * 8;
            // The bytes shifted in past `count` are read again next time, into the same places.
            self.buf &= (1u64 << self.count) - 1;
        } else {
            while self.count <= 56 {
                if self.at == self.block_end {
                    // The next sub-block; an empty one (or none) ends the data.
                    match self.data.get(self.at) {
                        Some(&len) if len > 0 => {
                            self.at += 1;
                            self.block_end = (self.at + len as usize).min(self.data.len());
                        }
                        _ => break,
                    }
                }
                let Some(&byte) = self.data.get(self.at) else {
                    break;
                };
                self.buf |= u64::from(byte) << self.count;
                self.at += 1;
                self.count += 8;
            }
        }
    }
}

/// Where a GIF file's first image is, found by walking its blocks.
pub struct FirstImage<'a> {
    /// Offset of the LZW minimum code size byte; the data sub-blocks follow it.
    pub at: usize,
    pub left: u16,
    pub top: u16,
    pub width: u16,
    pub height: u16,
    pub interlaced: bool,
    /// The image's own colour table, else the file's.
    pub palette: &'a [u8],
}

/// Walks the header, the global colour table and the extensions to the first image
/// descriptor. `None` for anything unexpected (the gif crate's decoder then decides).
pub fn first_image(data: &[u8]) -> Option<FirstImage<'_>> {
    let table_len = |flags: u8| {
        if flags & 0x80 != 0 {
            3usize << ((flags & 7) + 1)
        } else {
            0
        }
    };
    let global = table_len(*data.get(10)?);
    let mut palette = data.get(13..13 + global)?;
    let mut at = 13 + global;
    loop {
        match *data.get(at)? {
            0x21 => {
                at += 2;
                while *data.get(at)? != 0 {
                    at += 1 + data[at] as usize;
                }
                at += 1;
            }
            0x2c => {
                let d = data.get(at..at + 10)?;
                let le = |i: usize| u16::from_le_bytes([d[i], d[i + 1]]);
                let local = table_len(d[9]);
                if local > 0 {
                    palette = data.get(at + 10..at + 10 + local)?;
                }
                return Some(FirstImage {
                    at: at + 10 + local,
                    left: le(1),
                    top: le(3),
                    width: le(5),
                    height: le(7),
                    interlaced: d[9] & 0x40 != 0,
                    palette,
                });
            }
            _ => return None,
        }
    }
}

/// Copies `len` bytes from `from` to `to` within `out` (`from + len <= to` always holds for
/// table strings; the copy is a memmove all the same). Short strings, most of a photo's, are
/// copied as one 16-byte chunk (one SIMD load and store) where both ends have room: bytes past
/// `len` are written too, and the strings that follow overwrite them.
#[inline(always)]
fn copy_back(out: &mut [u8], from: usize, to: usize, len: usize) {
    if len <= 16 && to + 16 <= out.len() {
        let mut chunk = [0u8; 16];
        chunk.copy_from_slice(&out[from..from + 16]);
        out[to..to + 16].copy_from_slice(&chunk);
    } else {
        out.copy_within(from..from + len, to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gif crate's decode of the same frame, the reference.
    fn reference(data: &[u8]) -> Option<Vec<u8>> {
        let mut opts = gif::DecodeOptions::new();
        opts.set_color_output(gif::ColorOutput::Indexed);
        let mut decoder = opts.read_info(std::io::Cursor::new(data)).ok()?;
        let frame = decoder.read_next_frame().ok()??;
        Some(frame.buffer.to_vec())
    }

    /// Ours, on the same frame's data where it is in the file (not deinterlaced).
    fn ours(data: &[u8]) -> Option<(Result<Vec<u8>, Error>, bool)> {
        let image = first_image(data)?;
        let mut out = vec![0u8; image.width as usize * image.height as usize];
        let result = decode(data[image.at], &data[image.at + 1..], &mut out);
        Some((result.map(|()| out), image.interlaced))
    }

    fn files() -> Vec<Vec<u8>> {
        let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus");
        let mut paths = vec![format!("{shared}/photos/coffee-2mp.gif")];
        for dir in ["formats/gif/simple", "formats/gif/anim"] {
            for entry in std::fs::read_dir(format!("{shared}/{dir}")).unwrap() {
                paths.push(entry.unwrap().path().display().to_string());
            }
        }
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    #[test]
    fn frames_match_the_gif_crate() {
        let mut compared = 0;
        for data in files() {
            let (Some(want), Some((got, false))) = (reference(&data), ours(&data)) else {
                continue;
            };
            assert_eq!(got.unwrap(), want);
            compared += 1;
        }
        assert!(compared >= 5, "only {compared} frames compared");
    }

    #[test]
    fn damaged_streams_are_errors_or_decode_without_panicking() {
        for data in files() {
            let Some((Ok(_), _)) = ours(&data) else { continue };
            let image = first_image(&data).unwrap();
            let (width, height) = (image.width as usize, image.height as usize);
            let (min, lzw) = (data[image.at], &data[image.at + 1..]);
            let mut out = vec![0u8; width * height];
            // Cut short: an error, never a panic.
            let mut blocks_end = 0;
            while lzw.get(blocks_end).is_some_and(|&n| n > 0) {
                blocks_end += 1 + lzw[blocks_end] as usize;
            }
            if blocks_end > 4 {
                assert!(decode(min, &lzw[..blocks_end / 2], &mut out).is_err());
            }
            // Flipped bits: anything but a panic, and the output stays its size.
            let mut seed = 0x9e37_79b9_u32;
            for _ in 0..50 {
                let mut bad = lzw.to_vec();
                for _ in 0..4 {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let i = seed as usize % bad.len().max(1);
                    if let Some(b) = bad.get_mut(i) {
                        *b ^= 1 << (seed >> 29);
                    }
                }
                let _ = decode(min, &bad, &mut out);
                assert_eq!(out.len(), width * height);
            }
        }
    }

    #[test]
    fn first_code_after_clear_must_be_a_literal() {
        // min code size 2: clear 4, end 5; codes are 3 bits. Clear, then 6 (not yet made).
        let data = [2, 0b0011_0100u8, 0, 0];
        let mut out = [0u8; 4];
        assert!(decode(2, &data, &mut out).is_err());
        assert!(decode(0, &data, &mut out).is_err());
        assert!(decode(9, &data, &mut out).is_err());
    }

    #[test]
    fn kwkwk_codes_repeat_the_previous_string() {
        // Codes (3 bits, LSB first): clear 4, literal 1, code 6 (= "1" + "1"), end 5.
        // Bits: 100 001 110 101 -> bytes 0b10_001_100 = 0x8C, 0b0_101_11 ... packed below.
        let codes = [4u32, 1, 6, 5];
        let mut bits = 0u32;
        for (i, c) in codes.iter().enumerate() {
            bits |= c << (3 * i);
        }
        let [a, b, ..] = bits.to_le_bytes();
        let data = [2, a, b, 0];
        let mut out = [9u8; 3];
        decode(2, &data, &mut out).unwrap();
        assert_eq!(out, [1, 1, 1]);
    }
}
