//! Fallback TIFF decoding for YCbCr images (PhotometricInterpretation 6), which the `image`
//! crate refuses ("does not support the color type Unknown(24)") although scanners, cameras
//! and libtiff-based tools write them and Pillow shows them.
//!
//! Scope: classic TIFF in either byte order, first IFD only, 8-bit chunky YCbCr in strips or
//! tiles, stored uncompressed or with LZW, Deflate, PackBits or JPEG (with the shared
//! JPEGTables). Everything else (other photometrics and bit depths, planar YCbCr, old-style
//! JPEG, fax, BigTIFF) is refused with [`Error::UnsupportedFormat`] so the caller reports the
//! `image` crate's verdict rather than a wrong picture.
//!
//! Colour: uncompressed and losslessly compressed data is converted the way libtiff's RGBA
//! interface does, honouring YCbCrCoefficients and ReferenceBlackWhite. JPEG data is
//! converted by the JPEG decoder with the fixed JFIF formulas, as libtiff does in
//! `JPEGCOLORMODE_RGB` (what Pillow uses): the tags describe the pixels before JPEG coding,
//! and every writer in practice codes them as plain JFIF YCbCr.
//!
//! Damage is tolerated the way viewers tolerate it: a strip or tile that is missing,
//! truncated or fails to decompress leaves its pixels black and the rest of the image is still
//! returned; only an image of which nothing decodes is an error. Colour tags with impossible
//! values (zero denominators, NaN) fall back to their defaults instead of refusing the image.
//!
//! The Orientation tag is not applied: [`Header`] has no field for it, and the caller shows
//! fallback-decoded images as stored.

use image::{DynamicImage, RgbImage};

use super::{Header, check_pixels};
use crate::Error;

const TAG_IMAGE_WIDTH: u16 = 256;
const TAG_IMAGE_LENGTH: u16 = 257;
const TAG_BITS_PER_SAMPLE: u16 = 258;
const TAG_COMPRESSION: u16 = 259;
const TAG_PHOTOMETRIC: u16 = 262;
const TAG_FILL_ORDER: u16 = 266;
const TAG_STRIP_OFFSETS: u16 = 273;
const TAG_SAMPLES_PER_PIXEL: u16 = 277;
const TAG_ROWS_PER_STRIP: u16 = 278;
const TAG_STRIP_BYTE_COUNTS: u16 = 279;
const TAG_PLANAR_CONFIGURATION: u16 = 284;
const TAG_PREDICTOR: u16 = 317;
const TAG_TILE_WIDTH: u16 = 322;
const TAG_TILE_LENGTH: u16 = 323;
const TAG_TILE_OFFSETS: u16 = 324;
const TAG_TILE_BYTE_COUNTS: u16 = 325;
const TAG_SAMPLE_FORMAT: u16 = 339;
const TAG_JPEG_TABLES: u16 = 347;
const TAG_YCBCR_COEFFICIENTS: u16 = 529;
const TAG_YCBCR_SUBSAMPLING: u16 = 530;
const TAG_REFERENCE_BLACK_WHITE: u16 = 532;

const PHOTOMETRIC_YCBCR: u64 = 6;

/// ITU-R BT.601 luma weights, the TIFF default for YCbCrCoefficients.
const BT601: [f64; 3] = [0.299, 0.587, 0.114];
/// Full-range coding, libtiff's default ReferenceBlackWhite for YCbCr.
const FULL_RANGE: [f64; 6] = [0.0, 255.0, 128.0, 255.0, 128.0, 255.0];

/// Tiles up to this many pixels are accepted whatever the image size: writers use 256x256
/// tiles for small images too, and the buffer for one is small.
const SMALL_TILE_PIXELS: u64 = 1 << 16;
/// Compressed bytes handed to decompressors may exceed the file size by this much. Chunks may
/// legitimately share bytes (identical blank strips), but a file whose every chunk points at
/// the same long run of no-output data would otherwise cost chunks x file size.
const INPUT_SLACK_BYTES: usize = 1 << 20;

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::MalformedImage(format!("tiff image: {what}"))
}

fn unsupported(what: impl std::fmt::Display) -> Error {
    Error::UnsupportedFormat(format!("tiff image: {what}"))
}

/// Reads size and alpha from the header alone. Kinds of file the decoder refuses are refused
/// here too, so a probe does not promise what a thumbnail cannot deliver.
pub fn dimensions(data: &[u8]) -> Result<Header, Error> {
    let layout = Layout::parse(data)?;
    Ok(Header {
        width: layout.width,
        height: layout.height,
        has_alpha: false,
    })
}

/// Decodes the image, refusing it before allocation if it has more than `max_pixels`.
pub fn decode(data: &[u8], max_pixels: u64) -> Result<DynamicImage, Error> {
    let layout = Layout::parse(data)?;
    check_pixels(layout.width, layout.height, max_pixels)?;
    let mut canvas = Canvas::new(layout.width, layout.height)?;
    let lut = ColourLut::new(layout.coefficients, layout.reference_black_white);
    let mut scratch = Vec::new();
    let mut input_budget = data.len().saturating_mul(2).saturating_add(INPUT_SLACK_BYTES);
    let mut decoded_any = false;

    for (index, &offset) in layout.offsets.iter().enumerate() {
        let Some(rect) = layout.chunk_rect(index) else {
            break;
        };
        let raw = layout.chunk_bytes(data, index, offset);
        if raw.is_empty() {
            continue;
        }
        let Some(rest) = input_budget.checked_sub(raw.len()) else {
            break;
        };
        input_budget = rest;
        decoded_any |= match layout.compression {
            Compression::Jpeg => decode_jpeg_chunk(&layout, raw, rect, &mut canvas),
            _ => decode_plain_chunk(&layout, raw, rect, &lut, &mut scratch, &mut canvas),
        };
    }
    if !decoded_any {
        return Err(malformed("no strip or tile could be decoded"));
    }
    canvas.into_image()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Lzw,
    Deflate,
    PackBits,
    Jpeg,
}

/// Where one strip or tile goes: its top-left pixel, its coded width (a tile keeps its full
/// width past the image edge) and the rows of it inside the image.
#[derive(Debug, Clone, Copy)]
struct Rect {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

/// Everything `decode` needs from the first IFD, validated.
struct Layout<'a> {
    width: u32,
    height: u32,
    compression: Compression,
    /// Luma samples per chroma sample, horizontally and vertically.
    subsampling: (u32, u32),
    horizontal_predictor: bool,
    coefficients: [f64; 3],
    reference_black_white: [f64; 6],
    /// Coded size of a full chunk (tile, or strip of RowsPerStrip rows).
    chunk_width: u32,
    chunk_height: u32,
    chunks_across: u32,
    offsets: Vec<u64>,
    byte_counts: Vec<u64>,
    /// The offsets in ascending order, kept only when some byte count is missing: such a
    /// chunk is taken to end where the next one starts.
    sorted_offsets: Vec<u64>,
    jpeg_tables: Option<&'a [u8]>,
}

impl<'a> Layout<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, Error> {
        let ifd = Ifd::first(data)?;
        let width = dimension(ifd.uint(TAG_IMAGE_WIDTH)?, "width")?;
        let height = dimension(ifd.uint(TAG_IMAGE_LENGTH)?, "height")?;

        let photometric = ifd
            .uint(TAG_PHOTOMETRIC)?
            .ok_or_else(|| malformed("no PhotometricInterpretation"))?;
        if photometric != PHOTOMETRIC_YCBCR {
            return Err(unsupported(format!(
                "photometric interpretation {photometric} is not handled by the fallback decoder"
            )));
        }
        let samples = ifd.uint(TAG_SAMPLES_PER_PIXEL)?.unwrap_or(1);
        if samples != 3 {
            return Err(unsupported(format!("YCbCr with {samples} samples per pixel")));
        }
        let bits = ifd.uints(TAG_BITS_PER_SAMPLE, 3)?.unwrap_or_else(|| vec![1]);
        if bits.is_empty() || bits.iter().any(|&b| b != 8) {
            return Err(unsupported(format!("YCbCr with {bits:?} bits per sample")));
        }
        if let Some(formats) = ifd.uints(TAG_SAMPLE_FORMAT, 3)?
            && formats.iter().any(|&f| f != 1)
        {
            return Err(unsupported(format!("YCbCr with sample format {formats:?}")));
        }
        match ifd.uint(TAG_PLANAR_CONFIGURATION)?.unwrap_or(1) {
            1 => {}
            2 => return Err(unsupported("planar (separate-plane) YCbCr")),
            other => return Err(malformed(format!("planar configuration {other}"))),
        }
        if ifd.uint(TAG_FILL_ORDER)?.unwrap_or(1) == 2 {
            return Err(unsupported("reversed bit fill order"));
        }
        let compression = match ifd.uint(TAG_COMPRESSION)?.unwrap_or(1) {
            1 => Compression::None,
            5 => Compression::Lzw,
            8 | 32946 => Compression::Deflate,
            32773 => Compression::PackBits,
            7 => Compression::Jpeg,
            6 => return Err(unsupported("old-style JPEG compression")),
            other => return Err(unsupported(format!("compression {other} with YCbCr"))),
        };

        // JPEG data carries its own sampling factors; the tag only matters for the raw layout.
        let subsampling = match ifd.uints(TAG_YCBCR_SUBSAMPLING, 2)?.as_deref() {
            None => (2, 2),
            Some(&[h, v]) if [1, 2, 4].contains(&h) && [1, 2, 4].contains(&v) => (h as u32, v as u32),
            Some(other) if compression != Compression::Jpeg => {
                return Err(malformed(format!("YCbCr subsampling {other:?}")));
            }
            Some(_) => (2, 2),
        };
        let horizontal_predictor = match ifd.uint(TAG_PREDICTOR)?.unwrap_or(1) {
            _ if compression == Compression::Jpeg => false,
            1 => false,
            // Differencing over subsampled data units has no agreed meaning.
            2 if subsampling == (1, 1) => true,
            2 => return Err(unsupported("horizontal predictor with subsampled YCbCr")),
            other => return Err(unsupported(format!("predictor {other}"))),
        };

        let tiled = ifd.find(TAG_TILE_WIDTH).is_some();
        let (chunk_width, chunk_height, offset_tag, count_tag) = if tiled {
            let tile_width = ifd.uint(TAG_TILE_WIDTH)?.unwrap_or(0);
            let tile_height = ifd.uint(TAG_TILE_LENGTH)?.unwrap_or(0);
            let (Ok(tw @ 1..), Ok(th @ 1..)) = (u32::try_from(tile_width), u32::try_from(tile_height)) else {
                return Err(malformed(format!("tile size {tile_width}x{tile_height}")));
            };
            // One tile is decoded at a time into a buffer of its size: keep that buffer within
            // what the image itself is allowed to cost.
            if tw as u64 * th as u64 > (width as u64 * height as u64).max(SMALL_TILE_PIXELS) {
                return Err(malformed(format!(
                    "tiles of {tw}x{th} for a {width}x{height} image"
                )));
            }
            (tw, th, TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS)
        } else {
            // Absent means "one strip"; 0 is invalid but means the same to libtiff.
            let rows = ifd.uint(TAG_ROWS_PER_STRIP)?.unwrap_or(u64::MAX);
            let rows = if rows == 0 {
                height
            } else {
                u32::try_from(rows).unwrap_or(height).min(height)
            };
            (width, rows, TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS)
        };
        let chunks_across = width.div_ceil(chunk_width);
        let chunks = chunks_across as u64 * height.div_ceil(chunk_height) as u64;
        let chunks = usize::try_from(chunks).unwrap_or(usize::MAX);
        let offsets = ifd
            .uints(offset_tag, chunks)?
            .filter(|o| !o.is_empty())
            .ok_or_else(|| malformed("no strip or tile offsets"))?;
        // Missing or unreadable byte counts are survivable: such a chunk runs up to the next
        // chunk (or the end of the file) and its decompressor stops where the data does.
        let byte_counts = ifd.uints(count_tag, chunks).ok().flatten().unwrap_or_default();
        let sorted_offsets = if byte_counts.len() < offsets.len() || byte_counts.contains(&0) {
            let mut sorted = offsets.clone();
            sorted.sort_unstable();
            sorted
        } else {
            Vec::new()
        };
        let jpeg_tables = match compression {
            Compression::Jpeg => ifd
                .find(TAG_JPEG_TABLES)
                .and_then(|e| ifd.value_bytes(e))
                .map(|(b, _)| b),
            _ => None,
        };

        Ok(Layout {
            width,
            height,
            compression,
            subsampling,
            horizontal_predictor,
            coefficients: luma_coefficients(ifd.reals(TAG_YCBCR_COEFFICIENTS)),
            reference_black_white: reference_black_white(ifd.reals(TAG_REFERENCE_BLACK_WHITE)),
            chunk_width,
            chunk_height,
            chunks_across,
            offsets,
            byte_counts,
            sorted_offsets,
            jpeg_tables,
        })
    }

    /// Position and coded size of chunk `index`, or `None` past the last one.
    fn chunk_rect(&self, index: usize) -> Option<Rect> {
        let index = u32::try_from(index).ok()?;
        let x = (index % self.chunks_across).checked_mul(self.chunk_width)?;
        let y = (index / self.chunks_across).checked_mul(self.chunk_height)?;
        if y >= self.height {
            return None;
        }
        // Rows past the image bottom are never shown, and dropping them leaves the layout of
        // the rows above unchanged, so a bottom tile is treated like a short last strip.
        Some(Rect {
            x,
            y,
            width: self.chunk_width,
            height: self.chunk_height.min(self.height - y),
        })
    }

    /// The stored bytes of chunk `index`, cut to what the file holds.
    fn chunk_bytes<'d>(&self, data: &'d [u8], index: usize, offset: u64) -> &'d [u8] {
        let Some(start) = usize::try_from(offset).ok().filter(|&s| s < data.len()) else {
            return &[];
        };
        let end = match self.byte_counts.get(index).and_then(|&c| usize::try_from(c).ok()) {
            Some(count @ 1..) => start.saturating_add(count),
            _ => {
                let next = self.sorted_offsets.partition_point(|&o| o <= offset);
                self.sorted_offsets
                    .get(next)
                    .and_then(|&o| usize::try_from(o).ok())
                    .unwrap_or(data.len())
            }
        };
        data.get(start..end.min(data.len())).unwrap_or(&[])
    }
}

fn dimension(value: Option<u64>, what: &str) -> Result<u32, Error> {
    match value.map(u32::try_from) {
        Some(Ok(n @ 1..)) => Ok(n),
        Some(_) => Err(malformed(format!("image {what} {}", value.unwrap_or(0)))),
        None => Err(malformed(format!("no image {what}"))),
    }
}

/// YCbCrCoefficients if they describe a plausible set of luma weights, else BT.601.
fn luma_coefficients(values: Option<Vec<f64>>) -> [f64; 3] {
    match values.as_deref() {
        Some(&[r, g, b])
            if [r, g, b].iter().all(|c| c.is_finite() && *c > 0.0 && *c < 1.0)
                && (r + g + b - 1.0).abs() < 0.05 =>
        {
            [r, g, b]
        }
        _ => BT601,
    }
}

/// ReferenceBlackWhite if every white lies above its black, else full range.
fn reference_black_white(values: Option<Vec<f64>>) -> [f64; 6] {
    let Some(v) = values.and_then(|v| <[f64; 6]>::try_from(v).ok()) else {
        return FULL_RANGE;
    };
    let sane = v.iter().all(|x| x.is_finite()) && v.chunks_exact(2).all(|p| p[1] - p[0] >= 1.0);
    if sane { v } else { FULL_RANGE }
}

/// The image being assembled, RGB, black where nothing decodes.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Result<Self, Error> {
        let (width, height) = (width as usize, height as usize);
        let len = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(3))
            .ok_or_else(|| Error::Internal("tiff image: pixel buffer size overflows".into()))?;
        Ok(Canvas {
            width,
            height,
            pixels: vec![0; len],
        })
    }

    fn put(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        if x >= self.width || y >= self.height {
            return;
        }
        let at = (y * self.width + x) * 3;
        if let Some(px) = self.pixels.get_mut(at..at + 3) {
            px.copy_from_slice(&rgb);
        }
    }

    /// The part of row `y` from column `x`, at most `len` pixels long.
    fn row_mut(&mut self, x: usize, y: usize, len: usize) -> Option<&mut [u8]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let start = (y * self.width + x) * 3;
        let len = len.min(self.width - x) * 3;
        self.pixels.get_mut(start..start + len)
    }

    fn into_image(self) -> Result<DynamicImage, Error> {
        let (w, h) = (self.width as u32, self.height as u32);
        RgbImage::from_raw(w, h, self.pixels)
            .map(DynamicImage::ImageRgb8)
            .ok_or_else(|| Error::Internal("tiff image: pixel buffer has the wrong size".into()))
    }
}

/// YCbCr to RGB per libtiff's `TIFFYCbCrToRGBInit`/`TIFFYCbCrtoRGB`: codes are first scaled
/// by ReferenceBlackWhite (luma to 0..255, chroma to -127..127), then weighted by the luma
/// coefficients. Tabulated because every pixel needs it.
struct ColourLut {
    y: [f32; 256],
    cr_r: [f32; 256],
    cr_g: [f32; 256],
    cb_g: [f32; 256],
    cb_b: [f32; 256],
}

impl ColourLut {
    fn new([lr, lg, lb]: [f64; 3], rbw: [f64; 6]) -> Self {
        let (kr, kb) = (2.0 - 2.0 * lr, 2.0 - 2.0 * lb);
        let mut lut = ColourLut {
            y: [0.0; 256],
            cr_r: [0.0; 256],
            cr_g: [0.0; 256],
            cb_g: [0.0; 256],
            cb_b: [0.0; 256],
        };
        for code in 0..256 {
            let c = code as f64;
            let y = (c - rbw[0]) * 255.0 / (rbw[1] - rbw[0]);
            let cb = (c - rbw[2]) * 127.0 / (rbw[3] - rbw[2]);
            let cr = (c - rbw[4]) * 127.0 / (rbw[5] - rbw[4]);
            lut.y[code] = y as f32;
            lut.cr_r[code] = (kr * cr) as f32;
            lut.cr_g[code] = (lr * kr / lg * cr) as f32;
            lut.cb_g[code] = (lb * kb / lg * cb) as f32;
            lut.cb_b[code] = (kb * cb) as f32;
        }
        lut
    }

    fn rgb(&self, y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let (y, cb, cr) = (self.y[y as usize], cb as usize, cr as usize);
        [
            to_u8(y + self.cr_r[cr]),
            to_u8(y - self.cb_g[cb] - self.cr_g[cr]),
            to_u8(y + self.cb_b[cb]),
        ]
    }
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Decodes an uncompressed, LZW, Deflate or PackBits chunk. The TIFF layout is a run of data
/// units, each `h*v` luma samples (row by row) followed by one Cb and one Cr; units cover the
/// chunk left to right, top to bottom, padded out to whole units at the right and bottom.
/// Returns whether any pixel was decoded.
fn decode_plain_chunk(
    layout: &Layout,
    raw: &[u8],
    rect: Rect,
    lut: &ColourLut,
    scratch: &mut Vec<u8>,
    canvas: &mut Canvas,
) -> bool {
    let (h, v) = (layout.subsampling.0 as usize, layout.subsampling.1 as usize);
    let units_across = rect.width.div_ceil(h as u32) as usize;
    let units_down = rect.height.div_ceil(v as u32) as usize;
    let unit_len = h * v + 2;
    // Bounded by the chunk size, itself bounded by the image (tiles) or the pixel limit.
    let Some(expected) = units_across
        .checked_mul(units_down)
        .and_then(|n| n.checked_mul(unit_len))
    else {
        return false;
    };
    scratch.clear();
    scratch.resize(expected, 0);
    let produced = match layout.compression {
        Compression::None => copy_prefix(raw, scratch),
        Compression::Lzw => inflate_lzw(raw, scratch),
        Compression::Deflate => inflate_deflate(raw, scratch),
        Compression::PackBits => unpack_bits(raw, scratch),
        Compression::Jpeg => 0,
    };
    let data = scratch.get_mut(..produced).unwrap_or_default();
    if layout.horizontal_predictor {
        // Only allowed without subsampling, so a row is `width` pixels of Y, Cb, Cr.
        for row in data.chunks_mut((rect.width as usize).saturating_mul(3)) {
            let mut previous = [0u8; 3];
            for pixel in row.chunks_exact_mut(3) {
                for (sample, prev) in pixel.iter_mut().zip(previous.iter_mut()) {
                    *sample = sample.wrapping_add(*prev);
                    *prev = *sample;
                }
            }
        }
    }

    let (x0, y0) = (rect.x as usize, rect.y as usize);
    // A tile's padding past the image edge is dropped by `Canvas::put`; a strip's width is the
    // image width.
    let (x_end, y_end) = (
        x0.saturating_add(rect.width as usize),
        y0.saturating_add(rect.height as usize),
    );
    let mut decoded = false;
    for (index, unit) in data
        .chunks_exact(unit_len)
        .take(units_across * units_down)
        .enumerate()
    {
        let (luma, chroma) = unit.split_at(h * v);
        let [cb, cr] = [chroma.first(), chroma.get(1)].map(|c| c.copied().unwrap_or(128));
        let ux = x0.saturating_add((index % units_across) * h);
        let uy = y0.saturating_add((index / units_across) * v);
        for (i, &y) in luma.iter().enumerate() {
            let (x, y_pos) = (ux.saturating_add(i % h), uy.saturating_add(i / h));
            if x < x_end && y_pos < y_end {
                canvas.put(x, y_pos, lut.rgb(y, cb, cr));
            }
        }
        decoded = true;
    }
    decoded
}

fn copy_prefix(raw: &[u8], out: &mut [u8]) -> usize {
    let n = raw.len().min(out.len());
    if let (Some(dst), Some(src)) = (out.get_mut(..n), raw.get(..n)) {
        dst.copy_from_slice(src);
    }
    n
}

/// LZW as TIFF writes it (MSB-first, code width switching one code early), or the "old-style"
/// LSB-first variant of pre-1992 libtiff, recognised the way libtiff does. Stops at the end
/// code, at bad data, or when `out` is full; returns the bytes written.
fn inflate_lzw(raw: &[u8], out: &mut [u8]) -> usize {
    use weezl::{BitOrder, LzwStatus, decode::Decoder};
    let old_style = matches!(raw, [0, second, ..] if second & 1 == 1);
    let mut decoder = if old_style {
        Decoder::new(BitOrder::Lsb, 8)
    } else {
        Decoder::with_tiff_size_switch(BitOrder::Msb, 8)
    };
    let (mut input, mut written) = (raw, 0);
    // Each round consumes input or produces output, both finite.
    while let Some(dst) = out.get_mut(written..).filter(|d| !d.is_empty()) {
        let result = decoder.decode_bytes(input, dst);
        written += result.consumed_out;
        input = input.get(result.consumed_in..).unwrap_or_default();
        let progressed = result.consumed_in > 0 || result.consumed_out > 0;
        if !matches!(result.status, Ok(LzwStatus::Ok)) || !progressed {
            break;
        }
    }
    written
}

/// zlib-wrapped Deflate into `out`; returns the bytes written, also when the stream is
/// truncated or corrupt part-way.
fn inflate_deflate(raw: &[u8], out: &mut [u8]) -> usize {
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};
    let mut state = Box::<DecompressorOxide>::default();
    let flags =
        inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    // All input is at hand and `out` is the whole chunk, so one call runs to the end, to an
    // error, or until `out` is full.
    let (_status, _consumed, written) = decompress(&mut state, raw, out, 0, flags);
    written.min(out.len())
}

/// PackBits (Apple RLE) into `out`; returns the bytes written.
fn unpack_bits(raw: &[u8], out: &mut [u8]) -> usize {
    let (mut read, mut written) = (0, 0);
    // Each round consumes at least one input byte.
    while written < out.len() {
        let Some(&header) = raw.get(read) else { break };
        read += 1;
        let room = out.len() - written;
        match header as i8 {
            n @ 0.. => {
                let len = (n as usize + 1).min(room);
                let Some(src) = raw.get(read..read + len).or_else(|| raw.get(read..)) else {
                    break;
                };
                let len = src.len();
                if let Some(dst) = out.get_mut(written..written + len) {
                    dst.copy_from_slice(src);
                }
                read += len;
                written += len;
                if len == 0 {
                    break;
                }
            }
            -128 => {}
            n => {
                let Some(&byte) = raw.get(read) else { break };
                read += 1;
                let len = (1 - n as isize).unsigned_abs().min(room);
                if let Some(dst) = out.get_mut(written..written + len) {
                    dst.fill(byte);
                }
                written += len;
            }
        }
    }
    written
}

/// Decodes one JPEG-compressed chunk: an abbreviated JPEG stream whose tables, when the file
/// shares them, live in JPEGTables. Returns whether it decoded.
fn decode_jpeg_chunk(layout: &Layout, raw: &[u8], rect: Rect, canvas: &mut Canvas) -> bool {
    use zune_jpeg::JpegDecoder;
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    const SOI: [u8; 2] = [0xFF, 0xD8];
    const EOI: [u8; 2] = [0xFF, 0xD9];
    let stream: std::borrow::Cow<[u8]> = match layout.jpeg_tables {
        // Splice the tables in right after the chunk's SOI: SOI, tables, rest of the chunk.
        Some(tables) => {
            let tables = tables.strip_prefix(&SOI).unwrap_or(tables);
            let tables = tables.strip_suffix(&EOI).unwrap_or(tables);
            let body = raw.strip_prefix(&SOI).unwrap_or(raw);
            [&SOI[..], tables, body].concat().into()
        }
        None => raw.into(),
    };
    // The JPEG frame must fit the chunk; this also bounds what the decoder allocates.
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(layout.chunk_width as usize)
        .set_max_height(layout.chunk_height as usize)
        .set_strict_mode(false);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(&stream[..]), options);
    let Ok(mut pixels) = decoder.decode() else {
        return false;
    };
    let (Some((width, height)), Some(input)) = (decoder.dimensions(), decoder.input_colorspace()) else {
        return false;
    };
    if input == ColorSpace::RGB {
        // The stream's markers (Adobe transform 0, or component ids 'R','G','B') told the
        // decoder not to convert, but the TIFF says the samples are YCbCr; libtiff forces the
        // conversion in this case, so do it here.
        let jfif = ColourLut::new(BT601, FULL_RANGE);
        for px in pixels.chunks_exact_mut(3) {
            if let [y, cb, cr] = *px {
                px.copy_from_slice(&jfif.rgb(y, cb, cr));
            }
        }
    }

    let Some(stride) = width.checked_mul(3).filter(|&s| s > 0) else {
        return false;
    };
    let cols = width.min(rect.width as usize);
    let rows = height.min(rect.height as usize);
    let mut decoded = false;
    for (row, src) in pixels.chunks_exact(stride).take(rows).enumerate() {
        let Some(dst) = canvas.row_mut(rect.x as usize, (rect.y as usize).saturating_add(row), cols) else {
            break;
        };
        if let Some(src) = src.get(..dst.len()) {
            dst.copy_from_slice(src);
            decoded = true;
        }
    }
    decoded
}

/// One IFD entry, its value still in the file.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    /// Offset of the 12-byte entry in the file.
    pos: usize,
}

/// The first IFD of a classic TIFF, read lazily tag by tag.
struct Ifd<'a> {
    data: &'a [u8],
    big_endian: bool,
    entries: Vec<Entry>,
}

impl<'a> Ifd<'a> {
    fn first(data: &'a [u8]) -> Result<Self, Error> {
        let big_endian = match data.get(..4) {
            Some([b'I', b'I', 42, 0]) => false,
            Some([b'M', b'M', 0, 42]) => true,
            Some([b'I', b'I', 43, 0] | [b'M', b'M', 0, 43]) => return Err(unsupported("BigTIFF")),
            _ => return Err(malformed("no TIFF header")),
        };
        let mut ifd = Ifd {
            data,
            big_endian,
            entries: Vec::new(),
        };
        let start = ifd.u32_at(4).ok_or_else(|| malformed("truncated header"))? as usize;
        let count = ifd
            .u16_at(start)
            .ok_or_else(|| malformed("the first IFD lies past the end of the file"))?;
        // A cut-off IFD keeps the entries that are there; the tags that matter are checked
        // one by one afterwards.
        for i in 0..count as usize {
            let Some(pos) = start.checked_add(2 + 12 * i) else {
                break;
            };
            let (Some(tag), Some(kind), Some(count)) =
                (ifd.u16_at(pos), ifd.u16_at(pos + 2), ifd.u32_at(pos + 4))
            else {
                break;
            };
            if ifd.u32_at(pos + 8).is_none() {
                break;
            }
            ifd.entries.push(Entry {
                tag,
                kind,
                count,
                pos,
            });
        }
        if ifd.entries.is_empty() {
            return Err(malformed("the first IFD is empty"));
        }
        Ok(ifd)
    }

    fn u16_at(&self, pos: usize) -> Option<u16> {
        let bytes: [u8; 2] = self.data.get(pos..pos.checked_add(2)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        })
    }

    fn u32_at(&self, pos: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.data.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }

    /// The first entry with `tag` (a duplicate later in the IFD is ignored, as libtiff does).
    fn find(&self, tag: u16) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    /// The value bytes of `entry` and the size of one element, if they lie inside the file.
    fn value_bytes(&self, entry: &Entry) -> Option<(&'a [u8], usize)> {
        let size: usize = match entry.kind {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 | 13 => 4,
            5 | 10 | 12 => 8,
            _ => return None,
        };
        let len = size.checked_mul(entry.count as usize)?;
        let start = if len <= 4 {
            entry.pos + 8
        } else {
            self.u32_at(entry.pos + 8)? as usize
        };
        Some((self.data.get(start..start.checked_add(len)?)?, size))
    }

    /// Up to `max` unsigned integers of `tag`; `None` if the tag is absent. Reading at most
    /// `max` keeps the allocation to what the image needs, whatever the count claims.
    fn uints(&self, tag: u16, max: usize) -> Result<Option<Vec<u64>>, Error> {
        let Some(entry) = self.find(tag) else {
            return Ok(None);
        };
        let bad = || malformed(format!("tag {tag} has an unreadable value"));
        if !matches!(entry.kind, 1 | 3 | 4 | 13) {
            return Err(bad());
        }
        let (bytes, size) = self.value_bytes(entry).ok_or_else(bad)?;
        let values = bytes
            .chunks_exact(size)
            .take(max)
            .map(|b| match *b {
                [a] => a as u64,
                [a, b] if self.big_endian => u16::from_be_bytes([a, b]) as u64,
                [a, b] => u16::from_le_bytes([a, b]) as u64,
                [a, b, c, d] if self.big_endian => u32::from_be_bytes([a, b, c, d]) as u64,
                [a, b, c, d] => u32::from_le_bytes([a, b, c, d]) as u64,
                _ => 0,
            })
            .collect();
        Ok(Some(values))
    }

    fn uint(&self, tag: u16) -> Result<Option<u64>, Error> {
        Ok(self.uints(tag, 1)?.and_then(|v| v.first().copied()))
    }

    /// Up to 8 real values of `tag` (rationals, floats or integers); `None` if absent or
    /// unreadable, since only colour tags are read this way and they have defaults.
    fn reals(&self, tag: u16) -> Option<Vec<f64>> {
        let entry = self.find(tag)?;
        let (bytes, size) = self.value_bytes(entry)?;
        let u32_of = |b: &[u8]| -> Option<u32> {
            let b: [u8; 4] = b.try_into().ok()?;
            Some(if self.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            })
        };
        let u64_of = |b: &[u8]| -> Option<u64> {
            let b: [u8; 8] = b.try_into().ok()?;
            Some(if self.big_endian {
                u64::from_be_bytes(b)
            } else {
                u64::from_le_bytes(b)
            })
        };
        bytes
            .chunks_exact(size)
            .take(8)
            .map(|b| {
                Some(match entry.kind {
                    3 => {
                        let b: [u8; 2] = b.try_into().ok()?;
                        (if self.big_endian {
                            u16::from_be_bytes(b)
                        } else {
                            u16::from_le_bytes(b)
                        }) as f64
                    }
                    4 => u32_of(b)? as f64,
                    5 => u32_of(b.get(..4)?)? as f64 / u32_of(b.get(4..)?)? as f64,
                    10 => u32_of(b.get(..4)?)? as i32 as f64 / u32_of(b.get(4..)?)? as i32 as f64,
                    11 => f32::from_bits(u32_of(b)?) as f64,
                    12 => f64::from_bits(u64_of(b)?),
                    _ => return None,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/formats/tiff/testsuite/"
    );

    fn corpus(name: &str) -> Vec<u8> {
        std::fs::read(format!("{CORPUS}{name}")).unwrap()
    }

    fn decode_rgb(data: &[u8]) -> RgbImage {
        match decode(data, crate::DEFAULT_MAX_PIXELS).unwrap() {
            DynamicImage::ImageRgb8(img) => img,
            other => panic!("expected RGB8, got {:?}", other.color()),
        }
    }

    fn mean(img: &RgbImage, rows: std::ops::Range<u32>) -> [f64; 3] {
        let mut sum = [0f64; 3];
        let mut n = 0f64;
        for y in rows {
            for x in 0..img.width() {
                for (s, &c) in sum.iter_mut().zip(img.get_pixel(x, y).0.iter()) {
                    *s += c as f64;
                }
                n += 1.0;
            }
        }
        sum.map(|s| s / n)
    }

    fn assert_near(actual: [f64; 3], expected: [f64; 3], tolerance: f64, what: &str) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() <= tolerance, "{what}: {actual:?} vs {expected:?}");
        }
    }

    fn assert_pixel(img: &RgbImage, (x, y): (u32, u32), expected: [u8; 3], tolerance: u8) {
        let actual = img.get_pixel(x, y).0;
        for (a, e) in actual.iter().zip(expected) {
            assert!(
                a.abs_diff(e) <= tolerance,
                "pixel ({x},{y}): {actual:?} vs {expected:?}"
            );
        }
    }

    // Reference figures below come from Pillow 11+ (13.0, libtiff 4.7.2):
    // `np.asarray(Image.open(f).convert("RGB"))`.

    #[test]
    fn jpeg_compressed_ycbcr_matches_pillow() {
        let data = corpus("ycbcr_jpeg_8bit.tif");
        let header = dimensions(&data).unwrap();
        assert_eq!((header.width, header.height, header.has_alpha), (512, 384, false));
        let img = decode_rgb(&data);
        assert_eq!(img.dimensions(), (512, 384));
        assert_near(mean(&img, 0..384), [27.22, 37.54, 44.63], 1.0, "whole image");
        // One band per 64 rows (four 16-row strips each): every strip lands in its place.
        let bands = [
            [10.8, 9.3, 19.8],
            [66.8, 45.3, 53.4],
            [39.3, 32.9, 41.9],
            [42.3, 27.9, 41.4],
            [2.8, 77.9, 88.4],
            [1.3, 32.0, 22.8],
        ];
        for (i, band) in bands.into_iter().enumerate() {
            let top = i as u32 * 64;
            assert_near(mean(&img, top..top + 64), band, 1.5, &format!("rows {top}.."));
        }
        assert_pixel(&img, (0, 0), [0, 0, 0], 2);
        assert_pixel(&img, (60, 100), [177, 202, 75], 6);
        assert_pixel(&img, (110, 300), [1, 193, 180], 6);
    }

    #[test]
    fn invalid_coefficients_fall_back_to_bt601() {
        // YCbCrCoefficients is 1/0, 1/0, 1/0 here; libtiff refuses the file, Pillow's own
        // reader ignores the tag and converts with BT.601, as we do.
        let data = corpus("ycbcr_lzw_broken.tif");
        let img = decode_rgb(&data);
        assert_eq!(img.dimensions(), (601, 81));
        assert_near(mean(&img, 0..81), [121.50, 119.03, 126.49], 0.5, "whole image");
        assert_pixel(&img, (0, 0), [255, 255, 253], 1);
        assert_pixel(&img, (160, 42), [253, 0, 253], 1);
    }

    #[test]
    fn bt709_coefficients_are_honoured() {
        // Pillow's own reader ignores YCbCrCoefficients (it gives the BT.601 figures of the
        // test above); these come from Pillow with `TiffImagePlugin.READ_LIBTIFF = True`, i.e.
        // libtiff's RGBA interface, which applies them. Magenta shows the difference best.
        let img = decode_rgb(&corpus("ycbcr_lzw_bt709.tif"));
        assert_eq!(img.dimensions(), (601, 81));
        assert_near(mean(&img, 0..81), [121.53, 119.80, 126.53], 0.5, "whole image");
        assert_pixel(&img, (160, 42), [255, 40, 255], 1);
        assert_pixel(&img, (600, 80), [214, 214, 212], 1);
    }

    #[test]
    fn truncated_files_never_panic_and_keep_what_is_there() {
        for name in [
            "ycbcr_jpeg_8bit.tif",
            "ycbcr_lzw_broken.tif",
            "ycbcr_lzw_bt709.tif",
        ] {
            let data = corpus(name);
            for len in (0..data.len()).step_by(data.len() / 97 + 1) {
                let _ = dimensions(&data[..len]);
                let _ = decode(&data[..len], crate::DEFAULT_MAX_PIXELS);
            }
        }
        // The IFD of this one precedes its single strip: half the file is the top half.
        let data = corpus("ycbcr_lzw_bt709.tif");
        let full = decode_rgb(&data);
        let half = decode_rgb(&data[..data.len() / 2]);
        assert_eq!(half.dimensions(), (601, 81));
        assert_eq!(half.get_pixel(300, 10), full.get_pixel(300, 10));
        assert_eq!(half.get_pixel(300, 80).0, [0, 0, 0]);
    }

    #[test]
    fn garbage_is_an_error() {
        for data in [
            &b""[..],
            b"II*\0",
            b"MM\0*\0\0\0\x08",
            b"II*\0\xff\xff\xff\x7f",
            &[0x42; 64],
        ] {
            assert!(
                matches!(decode(data, 1 << 20), Err(Error::MalformedImage(_))),
                "{data:?}"
            );
            assert!(dimensions(data).is_err());
        }
        // An IFD whose offsets claim 2^32-1 entries far outside the file.
        let mut data = minimal(8, 8);
        let pos = entry_pos(&data, TAG_STRIP_OFFSETS);
        data[pos + 4..pos + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&data, 1 << 20), Err(Error::MalformedImage(_))));
    }

    #[test]
    fn mutated_files_never_panic() {
        // A cheap in-tree fuzz: flip bytes in the IFDs and around the data of the corpus files.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for name in ["ycbcr_jpeg_8bit.tif", "ycbcr_lzw_bt709.tif"] {
            let original = corpus(name);
            let ifd = u32::from_le_bytes(original[4..8].try_into().unwrap()) as usize;
            for _ in 0..150 {
                let mut data = original.clone();
                for _ in 0..1 + next() % 4 {
                    let at = match next() % 3 {
                        0 => ifd + (next() % 300) as usize,
                        1 => (next() % 400) as usize,
                        _ => (next() % original.len() as u64) as usize,
                    };
                    if let Some(b) = data.get_mut(at) {
                        *b = next() as u8;
                    }
                }
                let _ = dimensions(&data);
                let _ = decode(&data, 1 << 22);
            }
        }
    }

    #[test]
    fn oversized_header_is_refused_before_allocation() {
        // No pixel data at all: an allocation of 10^12 pixels would abort the test.
        let data = minimal(1_000_000, 1_000_000);
        assert_eq!(
            dimensions(&data).unwrap(),
            Header {
                width: 1_000_000,
                height: 1_000_000,
                has_alpha: false
            }
        );
        assert_eq!(
            decode(&data, crate::DEFAULT_MAX_PIXELS),
            Err(Error::TooLarge {
                width: 1_000_000,
                height: 1_000_000,
                max_pixels: crate::DEFAULT_MAX_PIXELS
            })
        );
        assert!(matches!(
            decode(&minimal(0, 5), 100),
            Err(Error::MalformedImage(_))
        ));
        // A tile far larger than the image it tiles.
        let tiny = TestTiff::new(4, 4).tiles(60_000, 60_000).header_only().build();
        assert!(matches!(decode(&tiny, 100), Err(Error::MalformedImage(_))));
    }

    #[test]
    fn unsupported_variants_are_refused() {
        let cases: [(u16, &[u16]); 6] = [
            (TAG_PHOTOMETRIC, &[2]),
            (TAG_BITS_PER_SAMPLE, &[16, 16, 16]),
            (TAG_COMPRESSION, &[6]),
            (TAG_COMPRESSION, &[3]),
            (TAG_PLANAR_CONFIGURATION, &[2]),
            (TAG_SAMPLES_PER_PIXEL, &[4]),
        ];
        for (tag, value) in cases {
            let data = TestTiff::new(4, 4).tag(tag, value).build();
            assert!(
                matches!(decode(&data, 100), Err(Error::UnsupportedFormat(_))),
                "{tag}={value:?}"
            );
            assert!(
                matches!(dimensions(&data), Err(Error::UnsupportedFormat(_))),
                "{tag}={value:?}"
            );
        }
        let bigtiff = b"II+\0\x08\0\0\0\x10\0\0\0\0\0\0\0";
        assert!(matches!(decode(bigtiff, 100), Err(Error::UnsupportedFormat(_))));
    }

    #[test]
    fn layouts_and_compressions_place_every_pixel() {
        // Neutral chroma makes R = G = B = Y exactly, so any misplaced sample shows.
        let cases = [
            TestTiff::new(13, 9).rows_per_strip(4),
            TestTiff::new(13, 9)
                .big_endian()
                .subsampling(2, 2)
                .rows_per_strip(4)
                .compression(5),
            TestTiff::new(13, 9)
                .subsampling(4, 2)
                .rows_per_strip(3)
                .compression(8),
            TestTiff::new(13, 9).subsampling(2, 1).compression(32946),
            TestTiff::new(37, 21)
                .subsampling(2, 1)
                .tiles(16, 16)
                .compression(32773),
            TestTiff::new(37, 21)
                .big_endian()
                .subsampling(4, 4)
                .tiles(16, 32)
                .compression(OLD_LZW),
            TestTiff::new(13, 9).rows_per_strip(2).compression(5).predictor(),
            TestTiff::new(5, 3)
                .subsampling(1, 1)
                .big_endian()
                .tiles(16, 16)
                .predictor()
                .compression(8),
            TestTiff::new(13, 9)
                .subsampling(2, 2)
                .rows_per_strip(2)
                .compression(5)
                .without_byte_counts(),
            TestTiff::new(37, 21).tiles(16, 16).without_byte_counts(),
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let (w, h) = (case.width, case.height);
            let img = decode_rgb(&case.build());
            assert_eq!(img.dimensions(), (w, h), "case {i}");
            for (x, y, px) in img.enumerate_pixels() {
                let l = luma(x, y);
                assert_eq!(px.0, [l, l, l], "case {i} at ({x},{y})");
            }
        }
    }

    #[test]
    fn reference_black_white_rescales() {
        // Studio range: luma 16..235 maps to 0..255.
        let data = TestTiff::new(13, 9)
            .rational(TAG_REFERENCE_BLACK_WHITE, &[16, 235, 128, 240, 128, 240])
            .build();
        let img = decode_rgb(&data);
        for (x, y, px) in img.enumerate_pixels() {
            let l = ((luma(x, y) as f64 - 16.0) * 255.0 / 219.0)
                .round()
                .clamp(0.0, 255.0) as u8;
            assert!(
                px.0.iter().all(|c| c.abs_diff(l) <= 1),
                "({x},{y}): {px:?} vs {l}"
            );
        }
    }

    #[test]
    fn jpeg_strips_without_shared_tables() {
        let case = TestTiff::new(40, 24).rows_per_strip(16).compression(7);
        let img = decode_rgb(&case.build());
        for (x, y, px) in img.enumerate_pixels() {
            let l = luma(x, y);
            assert!(
                px.0.iter().all(|c| c.abs_diff(l) <= 12),
                "({x},{y}): {px:?} vs {l}"
            );
        }
    }

    #[test]
    fn missing_strips_are_black_and_only_total_loss_is_an_error() {
        let mut data = TestTiff::new(13, 9).rows_per_strip(4).build();
        let pos = entry_pos(&data, TAG_STRIP_OFFSETS);
        let offsets = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
        // Second of three strips points past the end of the file.
        data[offsets + 4..offsets + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let img = decode_rgb(&data);
        assert_eq!(img.get_pixel(3, 2).0, [luma(3, 2); 3]);
        assert_eq!(img.get_pixel(3, 5).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(3, 8).0, [luma(3, 8); 3]);
        for i in [0, 2] {
            data[offsets + 4 * i..offsets + 4 * i + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        assert!(matches!(decode(&data, 1000), Err(Error::MalformedImage(_))));
    }

    #[test]
    fn packbits_follows_the_spec_example() {
        // The example from the TIFF 6.0 specification, section 9.
        let packed = [
            0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7, 0xAA,
        ];
        let unpacked = [
            0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22, 0xAA, 0xAA,
            0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA,
        ];
        let mut out = [0u8; 24];
        assert_eq!(unpack_bits(&packed, &mut out), 24);
        assert_eq!(out, unpacked);
        // Truncated input and a short output both stop cleanly.
        for len in 0..packed.len() {
            let mut out = [0u8; 24];
            let n = unpack_bits(&packed[..len], &mut out);
            assert_eq!(out[..n], unpacked[..n]);
        }
        let mut short = [0u8; 5];
        assert_eq!(unpack_bits(&packed, &mut short), 5);
        assert_eq!(short, unpacked[..5]);
    }

    // --- A small TIFF writer for the tests above. ---

    /// Compression code the writer turns into pre-1992 LSB-first LZW (stored as 5).
    const OLD_LZW: u16 = 0xFFFF;

    fn luma(x: u32, y: u32) -> u8 {
        ((x * 7 + y * 13) % 251) as u8
    }

    #[derive(Clone)]
    struct TestTiff {
        width: u32,
        height: u32,
        big_endian: bool,
        subsampling: (u32, u32),
        compression: u16,
        tile: Option<(u32, u32)>,
        rows_per_strip: u32,
        predictor: bool,
        /// One dummy chunk instead of encoded pixels, for header tests.
        header_only: bool,
        without_byte_counts: bool,
        extra: Vec<(u16, u16, Vec<u8>)>,
    }

    impl TestTiff {
        fn new(width: u32, height: u32) -> Self {
            TestTiff {
                width,
                height,
                big_endian: false,
                subsampling: (1, 1),
                compression: 1,
                tile: None,
                rows_per_strip: height,
                predictor: false,
                header_only: false,
                without_byte_counts: false,
                extra: Vec::new(),
            }
        }
        fn big_endian(mut self) -> Self {
            self.big_endian = true;
            self
        }
        fn subsampling(mut self, h: u32, v: u32) -> Self {
            self.subsampling = (h, v);
            self
        }
        fn compression(mut self, c: u16) -> Self {
            self.compression = c;
            self
        }
        fn tiles(mut self, w: u32, h: u32) -> Self {
            self.tile = Some((w, h));
            self
        }
        fn rows_per_strip(mut self, rows: u32) -> Self {
            self.rows_per_strip = rows;
            self
        }
        fn predictor(mut self) -> Self {
            self.predictor = true;
            self
        }
        fn header_only(mut self) -> Self {
            self.header_only = true;
            self
        }
        fn without_byte_counts(mut self) -> Self {
            self.without_byte_counts = true;
            self
        }
        /// Overrides (or adds) a SHORT tag.
        fn tag(mut self, tag: u16, values: &[u16]) -> Self {
            let bytes = values.iter().flat_map(|v| self.u16(*v)).collect();
            self.extra.push((tag, 3, bytes));
            self
        }
        fn rational(mut self, tag: u16, numerators: &[u32]) -> Self {
            let bytes = numerators
                .iter()
                .flat_map(|&n| [self.u32(n), self.u32(1)])
                .flatten()
                .collect();
            self.extra.push((tag, 5, bytes));
            self
        }
        fn u16(&self, v: u16) -> [u8; 2] {
            if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u32(&self, v: u32) -> [u8; 4] {
            if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }

        /// Data units of one chunk: h*v luma samples then Cb, Cr (neutral).
        fn units(&self, x0: u32, y0: u32, w: u32, rows: u32) -> Vec<u8> {
            let (h, v) = self.subsampling;
            let mut out = Vec::new();
            for uy in (0..rows).step_by(v as usize) {
                for ux in (0..w).step_by(h as usize) {
                    for dy in 0..v {
                        for dx in 0..h {
                            out.push(luma(x0 + ux + dx, y0 + uy + dy));
                        }
                    }
                    out.extend([128, 128]);
                }
            }
            if self.predictor {
                for row in out.chunks_mut(w as usize * 3) {
                    for i in (3..row.len()).rev() {
                        row[i] = row[i].wrapping_sub(row[i - 3]);
                    }
                }
            }
            out
        }

        fn jpeg(&self, x0: u32, y0: u32, w: u32, rows: u32) -> Vec<u8> {
            let img = RgbImage::from_fn(w, rows, |x, y| {
                let l = luma(x0 + x, y0 + y);
                image::Rgb([l, l, l])
            });
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 100)
                .encode_image(&img)
                .unwrap();
            out
        }

        fn chunk(&self, x0: u32, y0: u32, w: u32, rows: u32) -> Vec<u8> {
            use weezl::{BitOrder, encode::Encoder};
            let raw = || self.units(x0, y0, w, rows);
            match self.compression {
                1 => raw(),
                5 => Encoder::with_tiff_size_switch(BitOrder::Msb, 8)
                    .encode(&raw())
                    .unwrap(),
                OLD_LZW => Encoder::new(BitOrder::Lsb, 8).encode(&raw()).unwrap(),
                8 | 32946 => miniz_oxide::deflate::compress_to_vec_zlib(&raw(), 6),
                // Literal runs only; the decoder's run handling has its own test.
                32773 => raw()
                    .chunks(128)
                    .flat_map(|c| [&[c.len() as u8 - 1][..], c].concat())
                    .collect(),
                7 => self.jpeg(x0, y0, w, rows),
                other => panic!("no test encoder for {other}"),
            }
        }

        fn build(&self) -> Vec<u8> {
            let mut chunks = Vec::new();
            if self.header_only {
                chunks.push(vec![0; 16]);
            } else if let Some((tw, th)) = self.tile {
                for ty in (0..self.height).step_by(th as usize) {
                    for tx in (0..self.width).step_by(tw as usize) {
                        chunks.push(self.chunk(tx, ty, tw, th));
                    }
                }
            } else {
                for y in (0..self.height).step_by(self.rows_per_strip as usize) {
                    chunks.push(self.chunk(0, y, self.width, self.rows_per_strip.min(self.height - y)));
                }
            }
            let mut file = if self.big_endian {
                b"MM\0*".to_vec()
            } else {
                b"II*\0".to_vec()
            };
            file.extend([0; 4]);
            let mut offsets = Vec::new();
            for c in &chunks {
                offsets.push(file.len() as u32);
                file.extend(c);
            }
            let longs = |v: &[u32]| v.iter().flat_map(|&x| self.u32(x)).collect::<Vec<u8>>();
            let shorts = |v: &[u16]| v.iter().flat_map(|&x| self.u16(x)).collect::<Vec<u8>>();
            let counts: Vec<u32> = chunks.iter().map(|c| c.len() as u32).collect();
            let compression = if self.compression == OLD_LZW {
                5
            } else {
                self.compression
            };
            let mut tags: Vec<(u16, u16, Vec<u8>)> = vec![
                (TAG_IMAGE_WIDTH, 4, longs(&[self.width])),
                (TAG_IMAGE_LENGTH, 4, longs(&[self.height])),
                (TAG_BITS_PER_SAMPLE, 3, shorts(&[8, 8, 8])),
                (TAG_COMPRESSION, 3, shorts(&[compression])),
                (TAG_PHOTOMETRIC, 3, shorts(&[6])),
                (TAG_SAMPLES_PER_PIXEL, 3, shorts(&[3])),
                (
                    TAG_YCBCR_SUBSAMPLING,
                    3,
                    shorts(&[self.subsampling.0 as u16, self.subsampling.1 as u16]),
                ),
            ];
            if let Some((tw, th)) = self.tile {
                tags.push((TAG_TILE_WIDTH, 4, longs(&[tw])));
                tags.push((TAG_TILE_LENGTH, 4, longs(&[th])));
                tags.push((TAG_TILE_OFFSETS, 4, longs(&offsets)));
                tags.push((TAG_TILE_BYTE_COUNTS, 4, longs(&counts)));
            } else {
                tags.push((TAG_ROWS_PER_STRIP, 4, longs(&[self.rows_per_strip])));
                tags.push((TAG_STRIP_OFFSETS, 4, longs(&offsets)));
                tags.push((TAG_STRIP_BYTE_COUNTS, 4, longs(&counts)));
            }
            if self.predictor {
                tags.push((TAG_PREDICTOR, 3, shorts(&[2])));
            }
            if self.without_byte_counts {
                tags.retain(|t| t.0 != TAG_STRIP_BYTE_COUNTS && t.0 != TAG_TILE_BYTE_COUNTS);
            }
            for (tag, kind, bytes) in &self.extra {
                tags.retain(|t| t.0 != *tag);
                tags.push((*tag, *kind, bytes.clone()));
            }
            tags.sort_by_key(|t| t.0);

            let ifd = file.len() as u32;
            file[4..8].copy_from_slice(&self.u32(ifd));
            let mut values: Vec<u8> = Vec::new();
            let values_at = ifd + 2 + 12 * tags.len() as u32 + 4;
            file.extend(self.u16(tags.len() as u16));
            for (tag, kind, bytes) in &tags {
                let size = if *kind == 3 {
                    2
                } else if *kind == 5 {
                    8
                } else {
                    4
                };
                file.extend(self.u16(*tag));
                file.extend(self.u16(*kind));
                file.extend(self.u32((bytes.len() / size) as u32));
                if bytes.len() <= 4 {
                    let mut inline = bytes.clone();
                    inline.resize(4, 0);
                    file.extend(inline);
                } else {
                    file.extend(self.u32(values_at + values.len() as u32));
                    values.extend(bytes);
                }
            }
            file.extend([0; 4]);
            file.extend(values);
            file
        }
    }

    /// A little-endian file with a valid header and 16 zero bytes of pixel data.
    fn minimal(width: u32, height: u32) -> Vec<u8> {
        TestTiff::new(width, height).header_only().build()
    }

    /// Position of the IFD entry for `tag` in a little-endian file.
    fn entry_pos(data: &[u8], tag: u16) -> usize {
        let ifd = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
        let count = u16::from_le_bytes(data[ifd..ifd + 2].try_into().unwrap()) as usize;
        (0..count)
            .map(|i| ifd + 2 + 12 * i)
            .find(|&p| u16::from_le_bytes(data[p..p + 2].try_into().unwrap()) == tag)
            .expect("tag present")
    }
}
