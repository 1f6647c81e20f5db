//! Decoders of our own for files the `image` crate refuses but real software (Pillow,
//! browsers) shows: lenient BMP and ICO variants, YCbCr TIFF, GIF frames outside the logical
//! screen. The pipeline tries the `image` crate first and falls back to these.
//! [`jpeg_scaled`] is the other way round: a fast path for JPEG shrink-on-load at 1/8 scale that
//! runs first and leaves anything unusual to the full decoders.
//!
//! Each module offers `dimensions(data)` (header only) and `decode(data, max_pixels)`; both
//! treat the input as hostile: checked arithmetic, bounded loops, and the pixel limit checked
//! against the header before any pixel buffer is allocated.

pub mod avif;
pub mod bmp;
pub mod gif;
pub mod ico;
pub mod jpeg_scaled;
mod lzw;
pub mod tiff;
pub mod webp;

/// What a fallback decoder reads from a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
}

/// Adds a row of samples to 16-bit column sums (the block averages of `bmp` and `webp`): 8
/// lanes per SIMD add, where 32-bit sums take 4. The caller keeps a band to at most 257 rows.
pub(crate) fn add_row(sums: &mut [u16], row: &[u8]) {
    for (sum, &v) in sums.iter_mut().zip(row) {
        *sum += u16::from(v);
    }
}

/// Refuses `width` x `height` over `max_pixels`.
pub(crate) fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), crate::Error> {
    if width == 0 || height == 0 {
        return Err(crate::Error::MalformedImage(format!(
            "the header gives a size of {width}x{height}"
        )));
    }
    if width as u64 * height as u64 > max_pixels {
        return Err(crate::Error::TooLarge {
            width,
            height,
            max_pixels,
        });
    }
    Ok(())
}
