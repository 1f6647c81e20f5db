//! Still WebP through libwebp's own decoder (libwebp-sys, which builds libwebp's vendored C;
//! the component gets it from clang for wasm32). image-webp, the `image` crate's decoder, took
//! 3x libwebp's time on lossy photos with no single hotspot to fix (its loop filter, arithmetic
//! decoding, IDCT and upsampling each cost 7–35%), so we use the reference decoder itself.
//!
//! libwebp can also rescale as it decodes (an exact area average, row by row), which is the
//! shrink-on-load for WebP: the full-size picture is never made. Animations are left to the
//! `image` crate, which picks their first frame; libwebp's simple API refuses them.

use crate::Error;
use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};
use libwebp_sys as sys;

/// What libwebp reads from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    pub animated: bool,
    /// VP8 (lossy) data, which libwebp can hand over as Y, U and V planes.
    pub lossy: bool,
}

/// The bitstream's features, or `None` when libwebp cannot parse even the header.
pub fn features(data: &[u8]) -> Option<Features> {
    let mut f = std::mem::MaybeUninit::<sys::WebPBitstreamFeatures>::zeroed();
    // SAFETY: libwebp reads at most `data.len()` bytes and fills `f` on success.
    let status = unsafe { sys::WebPGetFeatures(data.as_ptr(), data.len(), f.as_mut_ptr()) };
    if status != sys::VP8StatusCode::VP8_STATUS_OK {
        return None;
    }
    // SAFETY: zero-initialised plain data, filled in by a successful call.
    let f = unsafe { f.assume_init() };
    Some(Features {
        width: u32::try_from(f.width).ok()?,
        height: u32::try_from(f.height).ok()?,
        has_alpha: f.has_alpha != 0,
        animated: f.has_animation != 0,
        lossy: f.format == 1,
    })
}

/// Decodes a still WebP, rescaled to `size` when given (an area average, as the resize's
/// own block average is). The output buffer is ours and sized from the header, which the
/// caller has checked against the pixel limit; libwebp's own scratch is a few rows.
pub fn decode(data: &[u8], f: Features, size: Option<(u32, u32)>) -> Result<DynamicImage, Error> {
    let (w, h) = size.unwrap_or((f.width, f.height));
    let channels: usize = if f.has_alpha { 4 } else { 3 };
    let stride = w as usize * channels;
    let mut pixels = vec![0u8; stride * h as usize];
    let mut config = new_config()?;
    if let Some((sw, sh)) = size {
        config.options.use_scaling = 1;
        config.options.scaled_width = sw as i32;
        config.options.scaled_height = sh as i32;
    }
    config.output.colorspace = if f.has_alpha {
        sys::WEBP_CSP_MODE::MODE_RGBA
    } else {
        sys::WEBP_CSP_MODE::MODE_RGB
    };
    config.output.is_external_memory = 1;
    config.output.u.RGBA = sys::WebPRGBABuffer {
        rgba: pixels.as_mut_ptr(),
        stride: stride as i32,
        size: pixels.len(),
    };
    // SAFETY: the output buffer is `pixels`, which outlives the call, with the stride and size
    // libwebp checks against the output's dimensions.
    unsafe { run_decode(data, &mut config) }?;
    let image = if f.has_alpha {
        RgbaImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    };
    image.ok_or_else(|| Error::Internal("libwebp output does not match its size".into()))
}

/// A lossy opaque picture averaged over `kx` x `ky` blocks (partial ones at the right and
/// bottom edges), as [`crate::resize`]'s pre-shrink would: `None` for other pictures.
///
/// libwebp hands over its Y, U and V planes, and the blocks are averaged there before the
/// few output pixels are converted to RGB. That skips libwebp's rescaler (16% of a 2 MP
/// thumbnail, scalar C) and the full-size colour conversion; the 16-bit column sums
/// vectorise.
pub fn decode_reduced(data: &[u8], f: Features, kx: u32, ky: u32) -> Result<Option<DynamicImage>, Error> {
    // A column sum of `ky` rows must fit 16 bits (the resize's blocks are at most 64).
    if !f.lossy || f.has_alpha || f.animated || kx == 0 || ky == 0 || ky > 257 {
        return Ok(None);
    }
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut planes = [vec![0u8; w * h], vec![0u8; cw * ch], vec![0u8; cw * ch]];
    let mut config = new_config()?;
    config.output.colorspace = sys::WEBP_CSP_MODE::MODE_YUV;
    // libwebp's own rule when it rescales (WebPIoInitFromOptions): below 3/4 of the size on
    // both axes, the in-loop deblocking filter is skipped, since averaging the blocks hides
    // what it would smooth. It is a third of the decode.
    config.options.bypass_filtering = i32::from(kx >= 2 && ky >= 2);
    config.output.is_external_memory = 1;
    let [y, u, v] = &mut planes;
    config.output.u.YUVA = sys::WebPYUVABuffer {
        y: y.as_mut_ptr(),
        u: u.as_mut_ptr(),
        v: v.as_mut_ptr(),
        a: std::ptr::null_mut(),
        y_stride: w as i32,
        u_stride: cw as i32,
        v_stride: cw as i32,
        a_stride: 0,
        y_size: y.len(),
        u_size: u.len(),
        v_size: v.len(),
        a_size: 0,
    };
    // SAFETY: the planes outlive the call and match the strides and sizes given, which
    // libwebp checks against the picture's size.
    unsafe { run_decode(data, &mut config) }?;
    let (kx, ky) = (kx as usize, ky as usize);
    let (ow, oh) = (w.div_ceil(kx), h.div_ceil(ky));
    let mut out = Vec::with_capacity(ow * oh * 3);
    let (mut ys, mut us, mut vs) = (vec![0u16; w], vec![0u16; cw], vec![0u16; cw]);
    for y0 in (0..h).step_by(ky) {
        let rows = ky.min(h - y0);
        ys.fill(0);
        us.fill(0);
        vs.fill(0);
        for row in y0..y0 + rows {
            super::add_row(&mut ys, &planes[0][row * w..][..w]);
            // Each chroma row covers two luma rows; adding it once per luma row weighs it
            // by how many of the band's rows it covers.
            super::add_row(&mut us, &planes[1][row / 2 * cw..][..cw]);
            super::add_row(&mut vs, &planes[2][row / 2 * cw..][..cw]);
        }
        for x0 in (0..w).step_by(kx) {
            let cols = x0..(x0 + kx).min(w);
            let n = (cols.len() * rows) as u32;
            let avg = |sum: u32| ((sum + n / 2) / n) as i32;
            let luma = sum(&ys[cols.clone()]);
            let (cu, cv) = (chroma_sum(&us, cols.clone()), chroma_sum(&vs, cols));
            out.extend(yuv_to_rgb(avg(luma), avg(cu), avg(cv)));
        }
    }
    Ok(RgbImage::from_raw(ow as u32, oh as u32, out).map(DynamicImage::ImageRgb8))
}

fn sum(sums: &[u16]) -> u32 {
    sums.iter().map(|&s| u32::from(s)).sum()
}

/// The sum over luma columns `cols` of the chroma sample each column takes (column `x` has
/// sample `x / 2`): whole pairs count twice, a half pair at either end once.
fn chroma_sum(sums: &[u16], cols: std::ops::Range<usize>) -> u32 {
    let (first, end) = (cols.start.div_ceil(2), cols.end / 2);
    let mut total = 2 * sum(&sums[first..end.max(first)]);
    if cols.start % 2 == 1 {
        total += u32::from(sums[cols.start / 2]);
    }
    if cols.end % 2 == 1 {
        total += u32::from(sums[cols.end / 2]);
    }
    total
}

/// libwebp's own YUV to RGB conversion (dsp/yuv.h: BT.601, 14-bit fixed point), so the
/// averaged pixels get the colours libwebp would give them.
fn yuv_to_rgb(y: i32, u: i32, v: i32) -> [u8; 3] {
    let mult_hi = |v: i32, coeff: i32| (v * coeff) >> 8;
    let clip = |v: i32| (v >> 6).clamp(0, 255) as u8;
    let luma = mult_hi(y, 19077);
    [
        clip(luma + mult_hi(v, 26149) - 14234),
        clip(luma - mult_hi(u, 6419) - mult_hi(v, 13320) + 8708),
        clip(luma + mult_hi(u, 33050) - 17685),
    ]
}

/// Lossy WebP at `quality` (1–100, libwebp's scale, as `cwebp -q`), with alpha when the
/// image has it. libwebp's simple API writes a bare file: no EXIF, XMP or ICC chunk.
pub fn encode_lossy(img: DynamicImage, quality: u8) -> Result<Vec<u8>, Error> {
    let (w, h) = (img.width(), img.height());
    // libwebp takes 8-bit RGB(A) only; grey goes up to RGB.
    let alpha = img.color().has_alpha();
    let (pixels, channels) = if alpha {
        (img.into_rgba8().into_raw(), 4)
    } else {
        (img.into_rgb8().into_raw(), 3)
    };
    let (Ok(wi), Ok(hi), Ok(stride)) = (
        i32::try_from(w),
        i32::try_from(h),
        i32::try_from(w as usize * channels),
    ) else {
        return Err(Error::Internal(format!(
            "{w}x{h} is too large for the WebP encoder"
        )));
    };
    let mut output: *mut u8 = std::ptr::null_mut();
    let q = f32::from(quality);
    // SAFETY: `pixels` holds `h` rows of `stride` bytes; libwebp allocates `output` and
    // returns its length (0 on failure).
    let len = unsafe {
        if alpha {
            sys::WebPEncodeRGBA(pixels.as_ptr(), wi, hi, stride, q, &mut output)
        } else {
            sys::WebPEncodeRGB(pixels.as_ptr(), wi, hi, stride, q, &mut output)
        }
    };
    if len == 0 || output.is_null() {
        return Err(Error::Internal(format!(
            "libwebp could not encode a {w}x{h} WebP"
        )));
    }
    // SAFETY: libwebp wrote `len` bytes at `output`, which we copy and then free with its own
    // deallocator.
    let encoded = unsafe { std::slice::from_raw_parts(output, len) }.to_vec();
    unsafe { sys::WebPFree(output.cast()) };
    Ok(encoded)
}

/// Runs libwebp's decode into the external buffer `config` describes, then releases what
/// libwebp holds (nothing, with external memory).
///
/// # Safety
/// `config.output` must point at buffers that outlive the call, with the strides and sizes
/// given. libwebp reads at most `data.len()` bytes.
unsafe fn run_decode(data: &[u8], config: &mut sys::WebPDecoderConfig) -> Result<(), Error> {
    // SAFETY: as the caller promises.
    let status = unsafe { sys::WebPDecode(data.as_ptr(), data.len(), config) };
    // SAFETY: frees only what libwebp allocated itself.
    unsafe { sys::WebPFreeDecBuffer(&mut config.output) };
    status_to_result(status)
}

fn new_config() -> Result<sys::WebPDecoderConfig, Error> {
    sys::WebPDecoderConfig::new()
        .map_err(|()| Error::Internal("libwebp's decoder ABI does not match its headers".into()))
}

fn status_to_result(status: sys::VP8StatusCode) -> Result<(), Error> {
    use sys::VP8StatusCode as S;
    let detail = match status {
        S::VP8_STATUS_OK => return Ok(()),
        S::VP8_STATUS_NOT_ENOUGH_DATA => "the WebP data ends early: the file is truncated",
        S::VP8_STATUS_BITSTREAM_ERROR => "the WebP bitstream is corrupt",
        S::VP8_STATUS_UNSUPPORTED_FEATURE => "the WebP file uses a feature the decoder does not support",
        S::VP8_STATUS_INVALID_PARAM => "the WebP header gives an invalid size",
        S::VP8_STATUS_OUT_OF_MEMORY => {
            return Err(Error::Internal("libwebp ran out of memory".into()));
        }
        S::VP8_STATUS_SUSPENDED | S::VP8_STATUS_USER_ABORT => "the WebP decode stopped early",
    };
    Err(Error::MalformedImage(detail.into()))
}

/// The EXIF orientation, from the `EXIF` chunk of an extended (VP8X) file; `None` without one.
pub fn orientation(data: &[u8]) -> Option<Orientation> {
    let body = chunk(data, b"EXIF")?;
    // Some writers keep JPEG's "Exif\0\0" prefix in front of the TIFF header.
    Orientation::from_exif_chunk(body.strip_prefix(b"Exif\0\0").unwrap_or(body))
}

/// The body of the RIFF container's first `fourcc` chunk (`EXIF`, `ICCP`, ...).
pub fn chunk<'a>(data: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    let mut at = 12usize;
    // The chunk walk is bounded by the input: each step moves forward by at least 8 bytes.
    while let Some(header) = data.get(at..at + 8) {
        let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
        let body = data.get(at + 8..at.checked_add(8 + len)?)?;
        if &header[..4] == fourcc {
            return Some(body);
        }
        at = at.checked_add(8 + len + (len & 1))?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn corpus() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
    }

    fn webp_files() -> Vec<PathBuf> {
        let mut files = vec![corpus().join("photos/coffee-2mp.webp")];
        for dir in ["lossy_images", "lossless_images", "extended_images"] {
            let dir = corpus().join("formats/webp").join(dir);
            for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
                if entry.path().extension().is_some_and(|e| e == "webp") {
                    files.push(entry.path());
                }
            }
        }
        files.sort();
        files
    }

    fn max_and_mean_diff(a: &[u8], b: &[u8]) -> (u8, f64) {
        let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
        let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
        (max, sum as f64 / a.len().max(1) as f64)
    }

    /// libwebp against the `image` crate's decoder (image-webp, an independent implementation
    /// of the same specification), pixel for pixel, lossy and lossless.
    #[test]
    fn still_files_decode_to_the_reference_pixels() {
        let mut compared = 0;
        for path in webp_files() {
            let data = std::fs::read(&path).unwrap();
            let f = features(&data).unwrap_or_else(|| panic!("{}: no features", path.display()));
            if f.animated {
                continue;
            }
            let ours = decode(&data, f, None).unwrap();
            let reference = image::load_from_memory(&data).unwrap();
            assert_eq!(
                (ours.width(), ours.height()),
                (reference.width(), reference.height())
            );
            let (ours, reference) = if f.has_alpha {
                (ours.to_rgba8().into_raw(), reference.to_rgba8().into_raw())
            } else {
                (ours.to_rgb8().into_raw(), reference.to_rgb8().into_raw())
            };
            let (max, mean) = max_and_mean_diff(&ours, &reference);
            assert_eq!(
                max,
                0,
                "{}: differs by up to {max}, {mean} on average",
                path.display()
            );
            compared += 1;
        }
        assert!(compared >= 8, "only {compared} still files compared");
    }

    /// A rescaled decode is the block average of the full one, up to the rounding of
    /// averaging before (libwebp, in YUV) rather than after colour conversion.
    #[test]
    fn a_rescaled_decode_is_the_block_average() {
        let data = std::fs::read(corpus().join("photos/coffee-2mp.webp")).unwrap();
        let f = features(&data).unwrap();
        let k = 4;
        let (w, h) = (f.width / k, f.height / k);
        let small = decode(&data, f, Some((w, h))).unwrap().to_rgb8();
        assert_eq!(small.dimensions(), (w, h));
        let full = decode(&data, f, None).unwrap().to_rgb8();
        let mut averaged = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let mut sum = 0u32;
                    for dy in 0..k {
                        for dx in 0..k {
                            sum += full.get_pixel(x * k + dx, y * k + dy)[c] as u32;
                        }
                    }
                    averaged.push(((sum + k * k / 2) / (k * k)) as u8);
                }
            }
        }
        let (max, mean) = max_and_mean_diff(small.as_raw(), &averaged);
        assert!(max <= 16 && mean < 1.0, "max {max}, mean {mean}");
    }

    /// `k` x `k` block averages of `img` (partial blocks at the edges average what they hold).
    fn block_average(img: &RgbImage, k: u32) -> Vec<u8> {
        let (w, h) = img.dimensions();
        let mut out = Vec::new();
        for by in (0..h).step_by(k as usize) {
            for bx in (0..w).step_by(k as usize) {
                let (xs, ys) = (bx..(bx + k).min(w), by..(by + k).min(h));
                let n = xs.len() as u32 * ys.len() as u32;
                for c in 0..3 {
                    let sum: u32 = ys
                        .clone()
                        .flat_map(|y| xs.clone().map(move |x| (x, y)))
                        .map(|(x, y)| img.get_pixel(x, y)[c] as u32)
                        .sum();
                    out.push(((sum + n / 2) / n) as u8);
                }
            }
        }
        out
    }

    /// The planes' block average is the full decode's, up to averaging in YUV (with each
    /// chroma sample standing for its 2x2 luma pixels) rather than in RGB after libwebp's
    /// smoothing chroma upsampler, and without the deblocking filter. 7 leaves partial blocks at both edges of the 1800x1200
    /// photo.
    #[test]
    fn a_reduced_decode_averages_blocks_of_the_planes() {
        let data = std::fs::read(corpus().join("photos/coffee-2mp.webp")).unwrap();
        let f = features(&data).unwrap();
        let full = decode(&data, f, None).unwrap().to_rgb8();
        for k in [2, 7] {
            let small = decode_reduced(&data, f, k, k).unwrap().unwrap().to_rgb8();
            assert_eq!(small.dimensions(), (f.width.div_ceil(k), f.height.div_ceil(k)));
            let (max, mean) = max_and_mean_diff(small.as_raw(), &block_average(&full, k));
            assert!(max <= 20 && mean < 1.0, "k {k}: max {max}, mean {mean}");
        }
        // Only lossy opaque pictures have planes to average.
        let lossless = std::fs::read(corpus().join("formats/webp/lossless_images/simple.webp")).unwrap();
        let g = features(&lossless).unwrap();
        assert!(decode_reduced(&lossless, g, 2, 2).unwrap().is_none());
    }

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let mse = a
            .iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
    }

    /// Lossy output follows `quality`: smaller at 50 than at 90, both close to the lossless
    /// thumbnail, and with alpha kept where the source has it.
    #[test]
    fn lossy_output_follows_quality() {
        let data = std::fs::read(corpus().join("photos/coffee-2mp.webp")).unwrap();
        let opts = |format, quality| crate::Options {
            width: 400,
            height: 400,
            format,
            quality,
            ..crate::Options::default()
        };
        let exact = crate::thumbnail(&data, &opts(crate::OutputFormat::Png, 80)).unwrap();
        let exact = image::load_from_memory(&exact.data).unwrap().to_rgb8();
        let mut sizes = Vec::new();
        for (quality, min_psnr) in [(50, 29.0), (90, 34.0)] {
            let thumb = crate::thumbnail(&data, &opts(crate::OutputFormat::Webp, quality)).unwrap();
            assert_eq!(&thumb.data[8..15], b"WEBPVP8", "q{quality}: not a WebP file");
            assert!(!thumb.data.windows(4).any(|c| c == b"EXIF" || c == b"XMP "));
            let decoded = image::load_from_memory(&thumb.data).unwrap().to_rgb8();
            assert_eq!(decoded.dimensions(), exact.dimensions());
            let db = psnr(decoded.as_raw(), exact.as_raw());
            assert!(db >= min_psnr, "q{quality}: {db:.1} dB");
            sizes.push(thumb.data.len());
        }
        assert!(
            sizes[0] < sizes[1],
            "q50 {} bytes, q90 {} bytes",
            sizes[0],
            sizes[1]
        );
        let alpha = std::fs::read(corpus().join("formats/webp/extended_images/lossy_alpha.webp")).unwrap();
        let thumb = crate::thumbnail(&alpha, &opts(crate::OutputFormat::Webp, 80)).unwrap();
        assert!(image::load_from_memory(&thumb.data).unwrap().color().has_alpha());
    }

    /// Cut-short and bit-flipped files give an image or an error: no panic, no hang.
    #[test]
    fn damaged_files_are_errors_not_crashes() {
        for path in webp_files() {
            let data = std::fs::read(&path).unwrap();
            let Some(f) = features(&data).filter(|f| !f.animated) else {
                continue;
            };
            for cut in [data.len() / 3, data.len() / 2, data.len() - 1] {
                let cut = &data[..cut];
                if let Some(f) = features(cut) {
                    assert!(
                        decode(cut, f, None).is_err(),
                        "{}: cut at {}",
                        path.display(),
                        cut.len()
                    );
                }
            }
            let mut flipped = data.clone();
            for i in (40..flipped.len()).step_by(97) {
                flipped[i] ^= 0x5a;
            }
            if let Some(g) = features(&flipped).filter(|g| g.width == f.width && g.height == f.height) {
                let _ = decode(&flipped, g, None);
                let _ = decode(&flipped, g, Some((g.width.div_ceil(3), g.height.div_ceil(3))));
                let _ = decode_reduced(&flipped, g, 3, 3);
            }
        }
    }

    /// The 1800x1200 photo (a simple lossy file) rewrapped as an extended file with an EXIF chunk saying
    /// orientation `exif_value`.
    fn with_orientation(exif_value: u8) -> Vec<u8> {
        let plain = std::fs::read(corpus().join("photos/coffee-2mp.webp")).unwrap();
        let f = features(&plain).unwrap();
        let image_chunk = &plain[12..];
        let mut exif = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0".to_vec();
        exif.extend([exif_value, 0, 0, 0, 0, 0, 0]);
        let mut body = b"WEBPVP8X".to_vec();
        body.extend(10u32.to_le_bytes());
        body.extend([0x08, 0, 0, 0]);
        body.extend(&(f.width - 1).to_le_bytes()[..3]);
        body.extend(&(f.height - 1).to_le_bytes()[..3]);
        body.extend(image_chunk);
        body.extend(b"EXIF");
        body.extend((exif.len() as u32).to_le_bytes());
        body.extend(&exif);
        let mut file = b"RIFF".to_vec();
        file.extend((body.len() as u32).to_le_bytes());
        file.extend(body);
        file
    }

    #[test]
    fn exif_orientation_is_read_and_applied() {
        let data = with_orientation(6);
        assert_eq!(orientation(&data), Some(Orientation::Rotate90));
        assert_eq!(orientation(&data[..data.len() - 4]), None);
        let f = features(&data).unwrap();
        let opts = crate::Options {
            width: 100,
            height: 100,
            ..crate::Options::default()
        };
        let thumb = crate::thumbnail(&data, &opts).unwrap();
        // The photo is wider than tall; turned a quarter, the thumbnail is taller than wide.
        assert!(f.width > f.height);
        assert!(thumb.height > thumb.width, "{}x{}", thumb.width, thumb.height);
        assert_eq!(thumb.source.orientation, 6);
    }
}
