//! Lenient BMP decoding, and the header-less DIB decoding that ICO entries need.
//!
//! `image` refuses bitmaps that Pillow and browsers show: a planes field other than 1, RLE
//! data that runs past a row or ends early, RLE stored top-down, colour counts larger than the
//! bit depth allows, unusual bit-field masks, OS/2 2.x headers. This decoder reads the
//! BITMAPINFOHEADER family (40, 52, 56, 108 and 124 byte headers), OS/2 1.x (12 bytes) and
//! OS/2 2.x (16 to 64 bytes) headers; 1, 2, 4 and 8 bit palettes; RLE4, RLE8 and OS/2 RLE24;
//! 16 and 32 bit pixels with BI_RGB, BI_BITFIELDS or BI_ALPHABITFIELDS; 24 bit pixels. It
//! refuses JPEG/PNG/CMYK/Huffman compression and other bit depths.
//!
//! Leniency, where files disagree with the header:
//! - the planes field is ignored;
//! - a colour count above 2^bpp, or a palette cut short by the pixel data offset, reads the
//!   entries that are there; indices past them are black;
//! - RLE runs and deltas past the edge are clipped, decoding stops at the end of the data, and
//!   pixels the RLE data never reaches stay transparent (as browsers show them; Pillow paints
//!   them with palette entry 0), so RLE images decode to RGBA;
//! - uncompressed pixel data that ends early leaves the missing rows zero (black, or
//!   transparent where the output has alpha);
//! - an alpha channel that is zero everywhere is taken as opaque, as browsers do, because
//!   writers that do not know about alpha leave it zero.

use image::{DynamicImage, RgbImage, RgbaImage};

use super::{Header, check_pixels};
use crate::Error;

const FILE_HEADER_LEN: usize = 14;

/// Reads size and alpha from the header alone.
pub fn dimensions(data: &[u8]) -> Result<Header, Error> {
    let dib = strip_file_header(data)?;
    Ok(Info::parse(dib, false)?.header())
}

/// Decodes the image, refusing it before allocation if it has more than `max_pixels`.
pub fn decode(data: &[u8], max_pixels: u64) -> Result<DynamicImage, Error> {
    let dib = strip_file_header(data)?;
    let info = Info::parse(dib, false)?;
    check_pixels(info.width, info.height, max_pixels)?;
    decode_info(&info, dib, file_pixels_start(data, dib, &info), max_pixels)
}

/// The file header's pixel offset, from the DIB's start. It is the only way to find pixels
/// behind a palette or ICC data of unexpected size; when it points into the headers or past
/// the end, `None`: the pixels are then taken to start right after the palette.
fn file_pixels_start(data: &[u8], dib: &[u8], info: &Info) -> Option<usize> {
    u32_at(data, 10)
        .and_then(|off| usize::try_from(off).ok())
        .and_then(|off| off.checked_sub(FILE_HEADER_LEN))
        .filter(|&off| off >= info.palette_start && off < dib.len())
}

/// Shrink-on-load for the common case, an uncompressed 24-bit bitmap with every row present:
/// averages `kx` x `ky` blocks straight from the file's rows (BGR, bottom-up or top-down) into
/// an RGB image of `ceil(w / kx)` x `ceil(h / ky)`, whose last column and row average the
/// partial blocks they hold, as [`crate::resize`]'s pre-shrink does. The full-size image is
/// never made: one pass over the file, and the peak is the small result. `None` for anything
/// else, which the full decoders then take.
pub fn decode_reduced(data: &[u8], max_pixels: u64, kx: u32, ky: u32) -> Option<DynamicImage> {
    let dib = strip_file_header(data).ok()?;
    let info = Info::parse(dib, false).ok()?;
    // A column sum of `ky` rows must fit 16 bits (the resize's blocks are at most 64).
    if info.encoding != Encoding::Rgb || info.bpp != 24 || kx == 0 || ky == 0 || ky > 257 {
        return None;
    }
    check_pixels(info.width, info.height, max_pixels).ok()?;
    let start = file_pixels_start(data, dib, &info).unwrap_or_else(|| info.default_pixels_start());
    let stride = info.stride()?;
    let (w, h) = (info.width as usize, info.height as usize);
    let row_len = w * 3;
    let pixels = dib.get(start..)?;
    if pixels.len() < stride.checked_mul(h - 1)?.checked_add(row_len)? {
        return None;
    }
    let (kx, ky) = (kx as usize, ky as usize);
    let (ow, oh) = (w.div_ceil(kx), h.div_ceil(ky));
    let mut out = vec![0u8; ow * oh * 3];
    // Column sums of one band of `ky` rows, then block sums. 16-bit sums let the compiler
    // add 8 of them per SIMD instruction, where 32-bit ones take 4.
    let mut columns = vec![0u16; row_len];
    for (oy, dst) in out.chunks_exact_mut(ow * 3).enumerate() {
        let y0 = oy * ky;
        let rows = ky.min(h - y0);
        columns.fill(0);
        for y in y0..y0 + rows {
            let file_row = if info.top_down { y } else { h - 1 - y };
            let src = &pixels[file_row * stride..][..row_len];
            super::add_row(&mut columns, src);
        }
        for (ox, px) in dst.chunks_exact_mut(3).enumerate() {
            let x0 = ox * kx;
            let cols = kx.min(w - x0);
            let mut bgr = [0u32; 3];
            for c in columns[x0 * 3..(x0 + cols) * 3].chunks_exact(3) {
                bgr[0] += u32::from(c[0]);
                bgr[1] += u32::from(c[1]);
                bgr[2] += u32::from(c[2]);
            }
            let n = (cols * rows) as u32;
            let avg = |sum: u32| ((sum + n / 2) / n) as u8;
            px.copy_from_slice(&[avg(bgr[2]), avg(bgr[1]), avg(bgr[0])]);
        }
    }
    RgbImage::from_raw(ow as u32, oh as u32, out).map(DynamicImage::ImageRgb8)
}

/// What [`dib_header`] reads from a DIB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DibHeader {
    pub header: Header,
    pub bits_per_pixel: u16,
}

/// Reads a DIB (a bitmap without the 14-byte file header) header. With `ico`, the header's
/// height counts the AND mask too, so the image is half as high, and it has alpha.
pub(crate) fn dib_header(dib: &[u8], ico: bool) -> Result<DibHeader, Error> {
    let info = Info::parse(dib, ico)?;
    Ok(DibHeader {
        header: info.header(),
        bits_per_pixel: info.bpp,
    })
}

/// Decodes a DIB (a bitmap without the 14-byte file header); pixels follow the palette.
///
/// With `ico` it is an ICO entry: the header's height counts the 1-bpp AND mask that follows
/// the pixels. Entries of 32 bpp take their alpha channel, unless it is zero everywhere, when
/// the mask applies as for other depths. Missing mask rows are opaque.
pub(crate) fn decode_dib(dib: &[u8], max_pixels: u64, ico: bool) -> Result<DynamicImage, Error> {
    let info = Info::parse(dib, ico)?;
    check_pixels(info.width, info.height, max_pixels)?;
    decode_info(&info, dib, None, max_pixels)
}

fn strip_file_header(data: &[u8]) -> Result<&[u8], Error> {
    if data.get(..2) != Some(b"BM".as_slice()) {
        return Err(Error::MalformedImage("not a bmp file (no BM signature)".into()));
    }
    data.get(FILE_HEADER_LEN..)
        .filter(|dib| !dib.is_empty())
        .ok_or_else(|| Error::MalformedImage("bmp file header is truncated".into()))
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

pub(crate) fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn truncated() -> Error {
    Error::MalformedImage("bmp header is truncated".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Rgb,
    Bitfields,
    Rle8,
    Rle4,
    Rle24,
}

/// Everything the pixel decoding needs from the headers.
#[derive(Debug)]
struct Info {
    width: u32,
    /// Rows of the image (for ICO entries, without the AND mask).
    height: u32,
    top_down: bool,
    bpp: u16,
    encoding: Encoding,
    /// Red, green, blue and alpha masks of 16 and 32 bpp pixels; alpha 0 means opaque.
    masks: [u32; 4],
    /// Offset of the palette (right after the headers and masks) from the DIB's start.
    palette_start: usize,
    /// 3 for OS/2 1.x palettes, 4 otherwise.
    palette_entry_len: usize,
    /// Entries the header declares, at most 2^bpp; 0 without a palette.
    palette_len: usize,
    /// Offset of an embedded or linked ICC profile (V5 headers) from the DIB's start.
    profile_start: Option<usize>,
    ico: bool,
}

impl Info {
    fn parse(dib: &[u8], ico: bool) -> Result<Info, Error> {
        let header_len = u32_at(dib, 0).ok_or_else(truncated)?;
        let header_size = usize::try_from(header_len).map_err(|_| truncated())?;
        let (width, height, bpp, compression, colors_used, windows) = match header_len {
            12 => {
                let w = u16_at(dib, 4).ok_or_else(truncated)?;
                let h = u16_at(dib, 6).ok_or_else(truncated)?;
                let bpp = u16_at(dib, 10).ok_or_else(truncated)?;
                (i64::from(w), i64::from(h), bpp, 0, 0, false)
            }
            16..=64 | 108 | 124 => {
                let w = u32_at(dib, 4).ok_or_else(truncated)? as i32;
                let h = u32_at(dib, 8).ok_or_else(truncated)? as i32;
                let bpp = u16_at(dib, 14).ok_or_else(truncated)?;
                // OS/2 2.x headers may stop after any field; the absent ones are zero.
                let compression = if header_size >= 20 {
                    u32_at(dib, 16).ok_or_else(truncated)?
                } else {
                    0
                };
                let colors_used = if header_size >= 36 {
                    u32_at(dib, 32).ok_or_else(truncated)?
                } else {
                    0
                };
                let windows = matches!(header_len, 40 | 52 | 56 | 108 | 124);
                (i64::from(w), i64::from(h), bpp, compression, colors_used, windows)
            }
            _ => {
                return Err(Error::UnsupportedFormat(format!(
                    "bmp header of {header_len} bytes"
                )));
            }
        };
        if dib.len() < header_size {
            return Err(truncated());
        }
        if width <= 0 {
            return Err(Error::MalformedImage(format!("bmp width of {width}")));
        }
        let top_down = height < 0;
        let mut height = height.unsigned_abs();
        if ico {
            height /= 2;
        }
        let width = u32::try_from(width).map_err(|_| truncated())?;
        let height =
            u32::try_from(height).map_err(|_| Error::MalformedImage("bmp height is out of range".into()))?;
        if height == 0 {
            return Err(Error::MalformedImage("bmp height of 0".into()));
        }

        let encoding = match (windows, compression, bpp) {
            (_, 0, 1 | 2 | 4 | 8 | 16 | 24 | 32) => Encoding::Rgb,
            (_, 1, 8) => Encoding::Rle8,
            (_, 2, 4) => Encoding::Rle4,
            (true, 3 | 6, 16 | 32) => Encoding::Bitfields,
            (false, 4, 24) => Encoding::Rle24,
            (true, 4, _) => return Err(Error::UnsupportedFormat("JPEG-compressed bmp".into())),
            (true, 5, _) => return Err(Error::UnsupportedFormat("PNG-compressed bmp".into())),
            (true, 11..=13, _) => return Err(Error::UnsupportedFormat("CMYK bmp".into())),
            (false, 3, _) => return Err(Error::UnsupportedFormat("Huffman-compressed OS/2 bmp".into())),
            (_, 0..=3, _) | (true, 6, _) | (false, 4, _) => {
                return Err(Error::MalformedImage(format!(
                    "bmp compression {compression} with {bpp} bits per pixel"
                )));
            }
            _ => return Err(Error::UnsupportedFormat(format!("bmp compression {compression}"))),
        };

        let mut palette_start = header_size;
        let masks = match (encoding, bpp) {
            (Encoding::Bitfields, _) => {
                let mut masks = [0; 4];
                if header_len == 40 {
                    // A plain BITMAPINFOHEADER is followed by the masks: three, or four for
                    // BI_ALPHABITFIELDS.
                    let count = if compression == 6 { 4 } else { 3 };
                    for (i, mask) in masks.iter_mut().enumerate().take(count) {
                        *mask = u32_at(dib, 40 + 4 * i).ok_or_else(truncated)?;
                    }
                    palette_start = 40 + 4 * count;
                } else {
                    let count = if header_len >= 56 { 4 } else { 3 };
                    for (i, mask) in masks.iter_mut().enumerate().take(count) {
                        *mask = u32_at(dib, 40 + 4 * i).ok_or_else(truncated)?;
                    }
                }
                if masks[..3] == [0, 0, 0] {
                    // No colour at all cannot be meant; browsers use the BI_RGB layout.
                    let defaults = default_masks(bpp, ico);
                    masks[..3].copy_from_slice(&defaults[..3]);
                }
                masks
            }
            (_, 16 | 32) => default_masks(bpp, ico),
            _ => [0; 4],
        };

        let (palette_entry_len, palette_len) = if bpp <= 8 {
            let max = 1usize << bpp;
            let declared = usize::try_from(colors_used).unwrap_or(usize::MAX);
            let len = if declared == 0 || declared > max {
                max
            } else {
                declared
            };
            (if header_len == 12 { 3 } else { 4 }, len)
        } else {
            (4, 0)
        };

        const PROFILE_EMBEDDED: u32 = u32::from_be_bytes(*b"MBED");
        const PROFILE_LINKED: u32 = u32::from_be_bytes(*b"LINK");
        let profile_start = match (header_len, u32_at(dib, 56)) {
            (124, Some(PROFILE_EMBEDDED | PROFILE_LINKED)) => {
                u32_at(dib, 112).and_then(|off| usize::try_from(off).ok())
            }
            _ => None,
        };

        Ok(Info {
            width,
            height,
            top_down,
            bpp,
            encoding,
            masks,
            palette_start,
            palette_entry_len,
            palette_len,
            profile_start,
            ico,
        })
    }

    fn is_rle(&self) -> bool {
        matches!(self.encoding, Encoding::Rle4 | Encoding::Rle8 | Encoding::Rle24)
    }

    fn has_alpha(&self) -> bool {
        self.ico || self.is_rle() || self.masks[3] != 0
    }

    fn header(&self) -> Header {
        Header {
            width: self.width,
            height: self.height,
            has_alpha: self.has_alpha(),
        }
    }

    /// Where the pixels start if nothing else says: right after the palette.
    fn default_pixels_start(&self) -> usize {
        self.palette_len
            .checked_mul(self.palette_entry_len)
            .and_then(|len| len.checked_add(self.palette_start))
            .unwrap_or(usize::MAX)
    }

    /// Bytes per stored row, padded to 32 bits.
    fn stride(&self) -> Option<usize> {
        let bits = u64::from(self.width).checked_mul(u64::from(self.bpp))?;
        usize::try_from(bits.checked_add(31)? / 32 * 4).ok()
    }
}

fn default_masks(bpp: u16, ico: bool) -> [u32; 4] {
    match bpp {
        16 => [0x7c00, 0x03e0, 0x001f, 0],
        // Only ICO entries use the fourth byte of BI_RGB pixels as alpha; in a .bmp it is
        // padding (Pillow and `image` ignore it too).
        _ => [
            0x00ff_0000,
            0x0000_ff00,
            0x0000_00ff,
            if ico { 0xff00_0000 } else { 0 },
        ],
    }
}

/// The output buffer, addressed in the file's row order.
struct Canvas {
    width: usize,
    height: usize,
    channels: usize,
    top_down: bool,
    buf: Vec<u8>,
}

impl Canvas {
    fn new(info: &Info, channels: usize, max_pixels: u64) -> Result<Canvas, Error> {
        let too_large = || Error::TooLarge {
            width: info.width,
            height: info.height,
            max_pixels,
        };
        let width = usize::try_from(info.width).map_err(|_| too_large())?;
        let height = usize::try_from(info.height).map_err(|_| too_large())?;
        let len = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(channels))
            .ok_or_else(too_large)?;
        let mut buf = Vec::new();
        // Fail instead of aborting when the pixel limit allows more than memory does.
        buf.try_reserve_exact(len).map_err(|_| too_large())?;
        buf.resize(len, 0);
        Ok(Canvas {
            width,
            height,
            channels,
            top_down: info.top_down,
            buf,
        })
    }

    /// Row `file_row` in storage order (bottom-up unless the height was negative).
    fn row_mut(&mut self, file_row: usize) -> Option<&mut [u8]> {
        if file_row >= self.height {
            return None;
        }
        let row = if self.top_down {
            file_row
        } else {
            self.height - 1 - file_row
        };
        let stride = self.width * self.channels;
        let start = row.checked_mul(stride)?;
        self.buf.get_mut(start..start.checked_add(stride)?)
    }

    /// Sets one pixel; positions outside the image are ignored, which clips corrupt RLE data.
    fn put(&mut self, x: usize, file_row: usize, rgba: [u8; 4]) {
        if x >= self.width {
            return;
        }
        let channels = self.channels;
        if let Some(px) = self
            .row_mut(file_row)
            .and_then(|row| row.get_mut(x * channels..(x + 1) * channels))
        {
            px.copy_from_slice(&rgba[..channels]);
        }
    }

    fn into_image(self) -> Result<DynamicImage, Error> {
        let (w, h) = (self.width as u32, self.height as u32);
        let image = if self.channels == 4 {
            RgbaImage::from_raw(w, h, self.buf).map(DynamicImage::ImageRgba8)
        } else {
            RgbImage::from_raw(w, h, self.buf).map(DynamicImage::ImageRgb8)
        };
        image.ok_or_else(|| Error::Internal("bmp buffer does not match its size".into()))
    }
}

fn decode_info(
    info: &Info,
    dib: &[u8],
    pixels_start: Option<usize>,
    max_pixels: u64,
) -> Result<DynamicImage, Error> {
    let pixels_start = pixels_start.unwrap_or_else(|| info.default_pixels_start());
    let palette = read_palette(info, dib, pixels_start);
    let pixels = dib
        .get(pixels_start..)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::MalformedImage("bmp has no pixel data".into()))?;

    let channels = if info.has_alpha() { 4 } else { 3 };
    let mut canvas = Canvas::new(info, channels, max_pixels)?;
    if info.is_rle() {
        decode_rle(info, pixels, &palette, &mut canvas);
        return canvas.into_image();
    }

    let stride = info
        .stride()
        .ok_or_else(|| Error::MalformedImage("bmp row size overflows".into()))?;
    let rows = decode_rows(info, pixels, stride, &palette, &mut canvas);
    if channels == 4 {
        let alpha_from_pixels = info.masks[3] != 0;
        let all_transparent = canvas.buf.chunks_exact(4).all(|px| px[3] == 0);
        if !alpha_from_pixels || all_transparent {
            canvas.buf.chunks_exact_mut(4).for_each(|px| px[3] = 0xff);
            if info.ico {
                // Only whole pixel rows are followed by a mask. An ICC profile where the mask
                // should be means whoever made the icon copied a .bmp's DIB and added no mask.
                let mask_start = stride.checked_mul(rows).and_then(|n| n.checked_add(pixels_start));
                if rows == canvas.height
                    && let Some(start) = mask_start
                {
                    let end = info.profile_start.filter(|&p| p > start).unwrap_or(dib.len());
                    let mask = dib.get(start..end.min(dib.len())).unwrap_or(&[]);
                    apply_and_mask(mask, &mut canvas);
                }
            }
        }
    }
    canvas.into_image()
}

/// Reads the palette up to `end` (where the pixels start), at most `info.palette_len` entries.
fn read_palette(info: &Info, dib: &[u8], end: usize) -> Vec<[u8; 4]> {
    let available = dib.get(info.palette_start..end.min(dib.len())).unwrap_or(&[]);
    available
        .chunks_exact(info.palette_entry_len)
        .take(info.palette_len)
        .map(|bgr| [bgr[2], bgr[1], bgr[0], 0xff])
        .collect()
}

fn palette_colour(palette: &[[u8; 4]], index: u8) -> [u8; 4] {
    palette
        .get(usize::from(index))
        .copied()
        .unwrap_or([0, 0, 0, 0xff])
}

/// One colour channel of a bit-field pixel, scaled to 8 bits.
#[derive(Clone, Copy)]
struct Field {
    mask: u32,
    shift: u32,
    max: u64,
}

impl Field {
    fn new(mask: u32) -> Field {
        let shift = if mask == 0 { 0 } else { mask.trailing_zeros() };
        Field {
            mask,
            shift,
            max: u64::from(mask >> shift),
        }
    }

    fn read(self, pixel: u32) -> u8 {
        if self.max == 0 {
            return 0;
        }
        let value = u64::from((pixel & self.mask) >> self.shift);
        // value <= max, so this is at most 255.
        ((value * 255 + self.max / 2) / self.max) as u8
    }
}

/// Decodes uncompressed rows; returns how many whole rows the data held.
fn decode_rows(info: &Info, pixels: &[u8], stride: usize, palette: &[[u8; 4]], canvas: &mut Canvas) -> usize {
    let fields = info.masks.map(Field::new);
    let alpha = info.masks[3] != 0;
    let bitfield_pixel = |pixel: u32| {
        let [r, g, b, a] = fields.map(|f| f.read(pixel));
        [r, g, b, if alpha { a } else { 0xff }]
    };
    let (width, channels) = (canvas.width, canvas.channels);
    let mut whole_rows = 0;
    for (file_row, src) in pixels.chunks(stride.max(1)).enumerate() {
        let Some(dst) = canvas.row_mut(file_row) else {
            break;
        };
        let mut out = dst.chunks_exact_mut(channels);
        let mut put = |rgba: [u8; 4]| {
            if let Some(px) = out.next() {
                px.copy_from_slice(&rgba[..channels]);
            }
        };
        match info.bpp {
            1 | 2 | 4 | 8 => {
                let bpp = usize::from(info.bpp);
                let per_byte = 8 / bpp;
                let mask = ((1u16 << bpp) - 1) as u8;
                let indices = src
                    .iter()
                    .flat_map(|&byte| (0..per_byte).map(move |i| (byte >> (8 - bpp * (i + 1))) & mask));
                for index in indices.take(width) {
                    put(palette_colour(palette, index));
                }
            }
            16 => {
                for p in src.chunks_exact(2).take(width) {
                    put(bitfield_pixel(u32::from(u16::from_le_bytes([p[0], p[1]]))));
                }
            }
            24 => {
                for p in src.chunks_exact(3).take(width) {
                    put([p[2], p[1], p[0], 0xff]);
                }
            }
            _ => {
                for p in src.chunks_exact(4).take(width) {
                    put(bitfield_pixel(u32::from_le_bytes([p[0], p[1], p[2], p[3]])));
                }
            }
        }
        if src.len() == stride {
            whole_rows += 1;
        }
    }
    whole_rows
}

/// Applies an ICO AND mask (1 bpp, rows padded to 32 bits, same row order as the pixels):
/// set bits are transparent.
fn apply_and_mask(mask: &[u8], canvas: &mut Canvas) {
    let mask_stride = canvas.width.div_ceil(32) * 4;
    for (file_row, bits) in mask.chunks(mask_stride).enumerate() {
        let Some(row) = canvas.row_mut(file_row) else {
            break;
        };
        for (x, px) in row.chunks_exact_mut(4).enumerate() {
            let Some(byte) = bits.get(x / 8) else {
                break;
            };
            if byte & (0x80 >> (x % 8)) != 0 {
                px[3] = 0;
            }
        }
    }
}

/// Decodes RLE4, RLE8 or RLE24 data. Never fails: anything outside the image is clipped,
/// decoding stops where the data does, and pixels never reached stay transparent.
fn decode_rle(info: &Info, data: &[u8], palette: &[[u8; 4]], canvas: &mut Canvas) {
    let (mut x, mut y, mut pos) = (0usize, 0usize, 0usize);
    // Every pass consumes at least two bytes or stops, so this ends.
    while y < canvas.height {
        let (Some(&count), Some(&value)) = (data.get(pos), data.get(pos + 1)) else {
            break;
        };
        pos += 2;
        if count > 0 {
            let count = usize::from(count);
            let run = count.min(canvas.width.saturating_sub(x));
            match info.encoding {
                Encoding::Rle8 => {
                    let colour = palette_colour(palette, value);
                    (x..x + run).for_each(|x| canvas.put(x, y, colour));
                }
                Encoding::Rle4 => {
                    let pair = [value >> 4, value & 0x0f].map(|i| palette_colour(palette, i));
                    (0..run).for_each(|i| canvas.put(x + i, y, pair[i % 2]));
                }
                _ => {
                    let Some(gr) = data.get(pos..pos + 2) else {
                        break;
                    };
                    pos += 2;
                    let colour = [gr[1], gr[0], value, 0xff];
                    (x..x + run).for_each(|x| canvas.put(x, y, colour));
                }
            }
            x = x.saturating_add(count);
            continue;
        }
        match value {
            0 => {
                x = 0;
                y += 1;
            }
            1 => break,
            2 => {
                let (Some(&dx), Some(&dy)) = (data.get(pos), data.get(pos + 1)) else {
                    break;
                };
                pos += 2;
                x = x.saturating_add(usize::from(dx));
                y = y.saturating_add(usize::from(dy));
            }
            count => {
                let count = usize::from(count);
                let len = match info.encoding {
                    Encoding::Rle8 => count,
                    Encoding::Rle4 => count.div_ceil(2),
                    _ => count * 3,
                };
                let rest = data.get(pos..).unwrap_or(&[]);
                let bytes = rest.get(..len).unwrap_or(rest);
                for i in 0..count.min(canvas.width.saturating_sub(x)) {
                    let colour = match info.encoding {
                        Encoding::Rle8 => bytes.get(i).map(|&v| palette_colour(palette, v)),
                        Encoding::Rle4 => bytes
                            .get(i / 2)
                            .map(|&v| palette_colour(palette, if i % 2 == 0 { v >> 4 } else { v & 0x0f })),
                        _ => bytes.get(i * 3..i * 3 + 3).map(|p| [p[2], p[1], p[0], 0xff]),
                    };
                    let Some(colour) = colour else {
                        break;
                    };
                    canvas.put(x + i, y, colour);
                }
                if bytes.len() < len {
                    break;
                }
                x = x.saturating_add(count);
                // Absolute runs are padded to 16 bits.
                pos += len + (len & 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/formats/bmp/images/"
    );

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{CORPUS}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn decode_rgba(name: &str) -> RgbaImage {
        decode(&read(name), crate::DEFAULT_MAX_PIXELS)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_rgba8()
    }

    fn px(img: &RgbaImage, x: u32, y: u32) -> [u8; 4] {
        img.get_pixel(x, y).0
    }

    /// A BITMAPINFOHEADER file with the given fields and `pixels` after a 2-entry palette.
    fn bmp_file(width: i32, height: i32, bpp: u16, compression: u32, pixels: &[u8]) -> Vec<u8> {
        let mut data = b"BM".to_vec();
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&62u32.to_le_bytes());
        data.extend_from_slice(&40u32.to_le_bytes());
        data.extend_from_slice(&width.to_le_bytes());
        data.extend_from_slice(&height.to_le_bytes());
        data.extend_from_slice(&1u16.to_le_bytes());
        data.extend_from_slice(&bpp.to_le_bytes());
        data.extend_from_slice(&compression.to_le_bytes());
        data.extend_from_slice(&[0; 20]);
        data.extend_from_slice(&[0, 0, 0xff, 0, 0xff, 0, 0, 0]);
        data.extend_from_slice(pixels);
        data
    }

    /// Block averages of the full decode, the plain way.
    fn box_average(img: &RgbImage, kx: u32, ky: u32) -> RgbImage {
        let (w, h) = img.dimensions();
        RgbImage::from_fn(w.div_ceil(kx), h.div_ceil(ky), |ox, oy| {
            let (mut sum, mut n) = ([0u32; 3], 0);
            for y in oy * ky..((oy + 1) * ky).min(h) {
                for x in ox * kx..((ox + 1) * kx).min(w) {
                    let p = img.get_pixel(x, y).0;
                    (0..3).for_each(|c| sum[c] += p[c] as u32);
                    n += 1;
                }
            }
            image::Rgb(sum.map(|s| ((s + n / 2) / n) as u8))
        })
    }

    #[test]
    fn reduced_24_bit_decodes_average_the_full_decode() {
        let photo = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpus/photos/coffee-2mp.bmp"
        ))
        .unwrap();
        // An odd width (row padding) stored top-down, and the usual bottom-up order.
        let (w, h) = (7u32, 5u32);
        let row: Vec<u8> = (0..w * 3).map(|i| (i * 37 % 251) as u8).chain([0; 3]).collect();
        let pixels: Vec<u8> = (0..h)
            .flat_map(|y| row.iter().map(move |v| v.wrapping_add(y as u8 * 50)))
            .collect();
        let cases = [
            (photo, vec![(4, 4), (7, 5), (64, 64)]),
            (
                bmp_file(w as i32, -(h as i32), 24, 0, &pixels),
                vec![(2, 2), (3, 4), (7, 5)],
            ),
            (bmp_file(w as i32, h as i32, 24, 0, &pixels), vec![(2, 3)]),
            (read("rgb24.bmp"), vec![(3, 3)]),
            (read("V5_24_Bit.bmp"), vec![(5, 2)]),
        ];
        for (data, blocks) in cases {
            let full = decode(&data, u64::MAX).unwrap().to_rgb8();
            for (kx, ky) in blocks {
                let reduced = decode_reduced(&data, u64::MAX, kx, ky)
                    .expect("a 24-bit bitmap")
                    .to_rgb8();
                assert_eq!(reduced, box_average(&full, kx, ky), "{kx}x{ky}");
            }
        }
    }

    #[test]
    fn reduced_decodes_leave_other_bitmaps_to_the_full_decoder() {
        let pixels = vec![9u8; 24 * 5];
        let whole = bmp_file(7, 5, 24, 0, &pixels);
        assert!(decode_reduced(&whole, u64::MAX, 2, 2).is_some());
        // Truncated, over the pixel limit, another depth, RLE, or garbage.
        // (The last row needs no padding; its last pixel does.)
        assert!(decode_reduced(&whole[..whole.len() - 3], u64::MAX, 2, 2).is_some());
        assert!(decode_reduced(&whole[..whole.len() - 4], u64::MAX, 2, 2).is_none());
        assert!(decode_reduced(&whole, 34, 2, 2).is_none());
        assert!(decode_reduced(&read("pal8rle.bmp"), u64::MAX, 2, 2).is_none());
        assert!(decode_reduced(&read("rgb16.bmp"), u64::MAX, 2, 2).is_none());
        for cut in [0, 2, 14, 30, 54] {
            assert!(decode_reduced(&whole[..cut], u64::MAX, 2, 2).is_none());
        }
    }

    #[test]
    fn ignores_planes() {
        // Pixel values from Pillow 13 (Image.open(f).convert("RGBA")).
        let img = decode_rgba("lenient/badplanes.bmp");
        assert_eq!(img.dimensions(), (127, 64));
        assert_eq!(px(&img, 0, 0), [255, 255, 255, 255]);
        assert_eq!(px(&img, 126, 63), [0, 0, 0, 255]);
        assert_eq!(px(&img, 30, 50), [255, 255, 255, 255]);
        let header = dimensions(&read("lenient/badplanes.bmp")).unwrap();
        assert_eq!((header.width, header.height, header.has_alpha), (127, 64, false));
    }

    #[test]
    fn decodes_corrupt_rle_as_far_as_valid() {
        let img = decode_rgba("lenient/badrle.bmp");
        assert_eq!(img.dimensions(), (127, 64));
        // From Pillow: the bottom rows come before the first run that overflows its row.
        assert_eq!(px(&img, 0, 63), [0, 0, 0, 255]);
        assert_eq!(px(&img, 10, 63), [0, 85, 51, 255]);
        assert_eq!(px(&img, 100, 63), [153, 170, 0, 255]);
        assert_eq!(px(&img, 60, 62), [255, 0, 255, 255]);
        assert_eq!(px(&img, 126, 61), [102, 85, 102, 255]);
        // Never reached by the RLE data: transparent here, palette entry 0 in Pillow.
        assert_eq!(px(&img, 50, 10), [0, 0, 0, 0]);
    }

    #[test]
    fn decodes_top_down_rle() {
        let img = decode_rgba("lenient/rletopdown.bmp");
        assert_eq!(img.dimensions(), (127, 64));
        // From Pillow.
        assert_eq!(px(&img, 0, 0), [255, 0, 0, 255]);
        assert_eq!(px(&img, 60, 32), [255, 128, 255, 255]);
        assert_eq!(px(&img, 126, 63), [102, 85, 102, 255]);
        assert_eq!(px(&img, 20, 40), [102, 170, 204, 255]);
        // The same picture as the bottom-up original.
        assert_eq!(img, decode_rgba("pal8rle.bmp"));
    }

    #[test]
    fn leaves_pixels_rle_skips_transparent() {
        let img = decode_rgba("pal4rletrns.bmp");
        assert_eq!(img.dimensions(), (127, 64));
        // Pillow paints skipped pixels with palette entry 0 (128, 0, 255); the rest agree.
        assert_eq!(px(&img, 0, 0), [255, 0, 0, 255]);
        assert_eq!(px(&img, 27, 21), [0, 0, 0, 0]);
        assert_eq!(img.pixels().filter(|p| p.0[3] == 0).count(), 416);
    }

    #[test]
    fn reads_what_image_refuses() {
        // Oversized colour counts read the palette up to the pixel data; Pillow shows the
        // same picture for pal8v4.bmp.
        let reference = decode_rgba("pal8v4.bmp");
        assert_eq!(decode_rgba("lenient/badpalettesize.bmp"), reference);
        assert_eq!(decode_rgba("lenient/pal8oversizepal.bmp"), reference);
        // BI_ALPHABITFIELDS is BI_BITFIELDS with the alpha mask after the header.
        assert_eq!(decode_rgba("rgba32abf.bmp"), decode_rgba("rgba32.bmp"));
        // From Pillow (rgba32.bmp).
        let img = decode_rgba("rgba32.bmp");
        assert_eq!(px(&img, 0, 0), [255, 0, 0, 255]);
        assert_eq!(px(&img, 64, 32), [255, 0, 0, 0]);
        for name in [
            "rgb24rle24.bmp",
            "lenient/rgb16-880.bmp",
            "pal2color.bmp",
            "pal4rlecut.bmp",
        ] {
            assert_eq!(decode_rgba(name).dimensions(), (127, 64), "{name}");
        }
        // A run past the row end and an absolute run past it: clipped, not an error.
        let img = decode_rgba("lenient/rle_overflow.bmp");
        assert_eq!(px(&img, 0, 1), [0, 0, 255, 255]);
        assert_eq!(px(&img, 0, 0), [0, 0, 0, 0]);
    }

    #[test]
    fn matches_pillow_on_ordinary_files() {
        // Spot checks; the whole corpus was compared with Pillow when this was written.
        let img = decode_rgba("pal8os2sp.bmp");
        let reference = decode_rgba("pal8v5.bmp");
        assert_eq!(img, reference);
        for name in [
            "rgb24.bmp",
            "Core_4_Bit.bmp",
            "Info_8_Bit_Top_Down.bmp",
            "V4_R5_G6_B5.bmp",
        ] {
            let data = read(name);
            let ours = decode(&data, u64::MAX).unwrap().to_rgba8();
            let theirs = image::load_from_memory(&data).unwrap().to_rgba8();
            assert_eq!(ours, theirs, "{name}");
        }
    }

    #[test]
    fn refuses_garbage() {
        for data in [
            &b""[..],
            b"BM",
            b"GIF89a",
            &[0u8; 64],
            b"BM\0\0\0\0\0\0\0\0\0\0\0\0",
        ] {
            assert!(dimensions(data).is_err());
            assert!(decode(data, u64::MAX).is_err());
        }
        // Header cut short, unknown header size, zero or negative width, bpp 3, JPEG inside.
        let good = bmp_file(2, 2, 1, 0, &[0; 8]);
        assert!(matches!(
            decode(&good[..30], u64::MAX),
            Err(Error::MalformedImage(_))
        ));
        let mut odd_header = good.clone();
        odd_header[14] = 90;
        assert!(matches!(
            decode(&odd_header, u64::MAX),
            Err(Error::UnsupportedFormat(_))
        ));
        for (w, h, bpp, compression) in [
            (0, 2, 1, 0),
            (-2, 2, 1, 0),
            (2, 0, 1, 0),
            (2, 2, 3, 0),
            (2, 2, 8, 2),
        ] {
            let data = bmp_file(w, h, bpp, compression, &[0; 8]);
            assert!(
                matches!(decode(&data, u64::MAX), Err(Error::MalformedImage(_))),
                "{w}x{h}"
            );
        }
        let jpeg = bmp_file(2, 2, 0, 4, &[0; 8]);
        assert!(matches!(
            decode(&jpeg, u64::MAX),
            Err(Error::UnsupportedFormat(_))
        ));
        // Headers but no pixels.
        assert!(matches!(
            decode(&bmp_file(2, 2, 1, 0, &[]), u64::MAX),
            Err(Error::MalformedImage(_))
        ));
        assert!(decode(&good, u64::MAX).is_ok());
    }

    #[test]
    fn refuses_huge_before_allocating() {
        for compression in [0, 1] {
            let data = bmp_file(100_000, -100_000, 8, compression, &[0; 16]);
            let header = dimensions(&data).unwrap();
            assert_eq!((header.width, header.height), (100_000, 100_000));
            let err = decode(&data, crate::DEFAULT_MAX_PIXELS).unwrap_err();
            assert_eq!(
                err,
                Error::TooLarge {
                    width: 100_000,
                    height: 100_000,
                    max_pixels: crate::DEFAULT_MAX_PIXELS
                }
            );
        }
        let data = bmp_file(i32::MAX, i32::MIN, 32, 0, &[0; 16]);
        assert!(decode(&data, u64::MAX).is_err());
    }

    #[test]
    fn truncated_pixel_data_leaves_rows_black() {
        let data = read("rgb24.bmp");
        let cut = &data[..data.len() / 2];
        let img = decode(cut, u64::MAX).unwrap().to_rgba8();
        assert_eq!(img.dimensions(), (127, 64));
        // Bottom-up: the top half is missing.
        assert_eq!(px(&img, 60, 5), [0, 0, 0, 255]);
        assert_eq!(px(&img, 60, 60), px(&decode_rgba("rgb24.bmp"), 60, 60));
    }

    #[test]
    fn never_panics_on_damaged_files() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for name in [
            "pal4rle.bmp",
            "pal8rle.bmp",
            "rgb24rle24.bmp",
            "rgba16-1924.bmp",
            "Info_1_Bit.bmp",
            "pal8os2sp.bmp",
        ] {
            let original = read(name);
            for len in 0..original.len().min(300) {
                let _ = dimensions(&original[..len]);
                let _ = decode(&original[..len], 1 << 20);
            }
            for _ in 0..300 {
                let mut data = original.clone();
                for _ in 0..1 + random() % 8 {
                    let at = (random() % 200) as usize % data.len();
                    data[at] = random() as u8;
                }
                let _ = dimensions(&data);
                let _ = decode(&data, 1 << 20);
            }
        }
    }
}
