//! The resize: an integer box pre-shrink where the reduction is large, then one Lanczos3 pass.
//!
//! A single Lanczos3 pass over a large reduction weighs 6 source pixels per unit of scale on
//! each axis (about 100 taps per output pixel and axis for a 2 MP photo into 100 px), so a
//! large reduction first averages whole `k` x `k` blocks (each source pixel read once), as
//! Pillow's `reduce` and libvips' shrink do, and leaves at least [`REDUCING_GAP`] times the
//! output for the Lanczos3 pass that follows.
//!
//! The pre-shrink is integer-factor on purpose. fast_image_resize's box filter weighs a pixel
//! by whether its centre falls in the window, so at a non-integer factor the output pixels
//! average 2 or 3 source pixels in turn and their centres wander by up to a quarter of a
//! pixel. That jitter was the 10 dB of detail the old two-step resize (a box to exactly twice
//! the output, then Lanczos3) lost against a full Lanczos3 resize. Blocks at the right and
//! bottom edges may be partial and average what they hold; the Lanczos3 pass is then told the
//! reduced image's true extent (`w / k`, not `ceil(w / k)`), so the geometry stays exact.
//!
//! Resizing runs at the source's own bit depth on its stored (gamma-encoded) values, with
//! alpha weighting colour in both steps, so transparent pixels never bleed their (often black)
//! colour into the edges.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageBuffer, Pixel};

use crate::gravity::place;
use crate::{Error, Fit, smartcrop};

/// The Lanczos3 pass always has at least this many times the output to work from.
pub const REDUCING_GAP: f64 = 3.0;

/// Larger block sizes gain nothing (Lanczos3 finishes the job) and would let the block sums
/// outgrow their accumulators.
const MAX_BLOCK: u32 = 64;

/// A decoded image and the part of it the picture covers, in its own pixels. A JPEG decoded at
/// 1/8 scale has `ceil(w / 8)` columns, but the picture ends at `w / 8`, inside the last one;
/// resizing the whole last column would stretch the picture by up to a pixel of the decode.
pub struct Source {
    pub image: DynamicImage,
    pub extent: (f64, f64),
}

impl Source {
    /// An image the picture fills.
    pub fn whole(image: DynamicImage) -> Self {
        let extent = (image.width() as f64, image.height() as f64);
        Source { image, extent }
    }
}

/// Where a `cover` crop is placed, in the stored (not yet turned) picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Anchor {
    /// Centred on this point, in fractions of the picture, as far as the picture allows.
    Focus(f64, f64),
    /// Where [`crate::smartcrop`] finds the most to look at.
    Smart,
}

impl Anchor {
    pub const CENTER: Anchor = Anchor::Focus(0.5, 0.5);
}

/// Resizes to `w` x `h`; `Cover` crops what falls outside the box around `anchor`.
pub fn resize(source: Source, w: u32, h: u32, fit: Fit, anchor: Anchor) -> Result<DynamicImage, Error> {
    let Source {
        image: source,
        extent: (sw, sh),
    } = source;
    let (crop_w, crop_h) = crop_size((sw, sh), w, h, fit);
    let (kx, ky) = blocks((sw, sh), w, h, fit);
    let (reduced, (kx, ky)) = match (kx, ky) {
        (1, 1) => (source, (1, 1)),
        _ => match reduce(&source, kx, ky) {
            Some(reduced) => (reduced, (kx, ky)),
            None => (source, (1, 1)),
        },
    };
    // The picture's extent in reduced pixels; the last row and column may be partial blocks.
    let (fx, fy) = (sw / kx as f64, sh / ky as f64);
    let (cw, ch) = (crop_w / kx as f64, crop_h / ky as f64);
    let centred = |(x, y)| (place(fx, cw, x), place(fy, ch, y));
    let (left, top) = match anchor {
        Anchor::Focus(x, y) => centred((x, y)),
        _ if (cw, ch) == (fx, fy) => (0.0, 0.0),
        Anchor::Smart => smartcrop::best_crop(&reduced, (fx, fy), (cw, ch), smartcrop::WEIGHTS)
            .unwrap_or_else(|| centred((0.5, 0.5))),
    };
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(left, top, cw, ch);
    let mut small = DynamicImage::new(w, h, reduced.color());
    Resizer::new()
        .resize(&reduced, &mut small, &options)
        .map_err(|e| Error::Internal(format!("resize failed: {e}")))?;
    Ok(small)
}

/// The part of a source of `extent` that becomes the `w` x `h` output, in source pixels.
fn crop_size((sw, sh): (f64, f64), w: u32, h: u32, fit: Fit) -> (f64, f64) {
    match fit {
        Fit::Cover => {
            let scale = (w as f64 / sw).max(h as f64 / sh);
            ((w as f64 / scale).min(sw), (h as f64 / scale).min(sh))
        }
        Fit::Contain | Fit::Fill => (sw, sh),
    }
}

/// The pre-shrink's block size on each axis for a source of `extent` into `w` x `h`; (1, 1)
/// when there is none. A decoder that can average blocks as it reads (see
/// [`crate::formats::bmp::decode_reduced`]) asks this, so its result needs no second one.
pub fn blocks(extent: (f64, f64), w: u32, h: u32, fit: Fit) -> (u32, u32) {
    let (crop_w, crop_h) = crop_size(extent, w, h, fit);
    let block = |crop: f64, out: u32| ((crop / out as f64 / REDUCING_GAP).floor() as u32).clamp(1, MAX_BLOCK);
    (block(crop_w, w), block(crop_h, h))
}

/// Averages `kx` x `ky` blocks, or `None` for pixel types it does not handle (floating point:
/// the Lanczos3 pass alone then does the whole reduction).
fn reduce(img: &DynamicImage, kx: u32, ky: u32) -> Option<DynamicImage> {
    use DynamicImage as D;
    Some(match img {
        D::ImageLuma8(_) | D::ImageRgb8(_) => return reduce_opaque(img, kx, ky),
        D::ImageLumaA8(i) => D::ImageLumaA8(reduce_buffer(i, kx, ky)),
        D::ImageRgba8(i) => D::ImageRgba8(reduce_buffer(i, kx, ky)),
        D::ImageLuma16(i) => D::ImageLuma16(reduce_buffer(i, kx, ky)),
        D::ImageLumaA16(i) => D::ImageLumaA16(reduce_buffer(i, kx, ky)),
        D::ImageRgb16(i) => D::ImageRgb16(reduce_buffer(i, kx, ky)),
        D::ImageRgba16(i) => D::ImageRgba16(reduce_buffer(i, kx, ky)),
        _ => return None,
    })
}

/// [`reduce`] for an 8-bit image without alpha, through fast_image_resize's SIMD box filter,
/// which averages exactly `k` pixels at an integer factor: the whole blocks in one call, the
/// partial ones along the right and bottom edges in calls over their own strips, joined row
/// by row. (With alpha, its box filter would first premultiply a copy of the whole source;
/// [`reduce_buffer`] weighs by alpha as it sums instead.)
fn reduce_opaque(img: &DynamicImage, kx: u32, ky: u32) -> Option<DynamicImage> {
    let (w, h) = (img.width(), img.height());
    let (full_w, full_h) = (w / kx, h / ky);
    let mut resizer = Resizer::new();
    let mut part = |x: u32, y: u32, width: u32, height: u32, out: (u32, u32)| -> Option<DynamicImage> {
        if width == 0 || height == 0 || out.0 == 0 || out.1 == 0 {
            return None;
        }
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Box))
            .crop(x as f64, y as f64, width as f64, height as f64);
        let mut part = DynamicImage::new(out.0, out.1, img.color());
        resizer.resize(img, &mut part, &options).ok()?;
        Some(part)
    };
    let (rest_w, rest_h) = (w % kx, h % ky);
    let whole = part(0, 0, full_w * kx, full_h * ky, (full_w, full_h));
    if rest_w == 0 && rest_h == 0 {
        return whole;
    }
    let right = part(full_w * kx, 0, rest_w, full_h * ky, (1, full_h));
    let bottom = part(0, full_h * ky, full_w * kx, rest_h, (full_w, 1));
    let corner = part(full_w * kx, full_h * ky, rest_w, rest_h, (1, 1));
    let channels = img.color().channel_count() as usize;
    let (out_w, out_h) = (w.div_ceil(kx), h.div_ceil(ky));
    let mut bytes = Vec::with_capacity(out_w as usize * out_h as usize * channels);
    let mut push_row = |part: &Option<DynamicImage>, y: u32| {
        if let Some(part) = part {
            let len = part.width() as usize * channels;
            bytes.extend_from_slice(&part.as_bytes()[y as usize * len..][..len]);
        }
    };
    for y in 0..full_h {
        push_row(&whole, y);
        push_row(&right, y);
    }
    if rest_h > 0 {
        push_row(&bottom, 0);
        push_row(&corner, 0);
    }
    match img {
        DynamicImage::ImageLuma8(_) => {
            image::GrayImage::from_raw(out_w, out_h, bytes).map(DynamicImage::ImageLuma8)
        }
        _ => image::RgbImage::from_raw(out_w, out_h, bytes).map(DynamicImage::ImageRgb8),
    }
}

/// Integer samples the block average works on.
trait Sample: image::Primitive {
    /// Wide enough for a block's sum of `sample * alpha` over [`MAX_BLOCK`]² pixels, and no
    /// wider: u32 sums of bytes vectorise four to a wasm SIMD register.
    type Acc: Copy + Default + std::ops::AddAssign + std::ops::Mul<Output = Self::Acc> + Into<u64>;
    fn acc(self) -> Self::Acc;
    fn narrow(v: u64) -> Self;
}

impl Sample for u8 {
    type Acc = u32;
    fn acc(self) -> u32 {
        self as u32
    }
    fn narrow(v: u64) -> Self {
        v.min(u8::MAX as u64) as u8
    }
}

impl Sample for u16 {
    type Acc = u64;
    fn acc(self) -> u64 {
        self as u64
    }
    fn narrow(v: u64) -> Self {
        v.min(u16::MAX as u64) as u16
    }
}

fn reduce_buffer<P>(
    img: &ImageBuffer<P, Vec<P::Subpixel>>,
    kx: u32,
    ky: u32,
) -> ImageBuffer<P, Vec<P::Subpixel>>
where
    P: Pixel,
    P::Subpixel: Sample,
{
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (kx, ky) = (kx as usize, ky as usize);
    let (ow, oh) = (w.div_ceil(kx), h.div_ceil(ky));
    let channels = P::CHANNEL_COUNT as usize;
    let alpha = P::HAS_ALPHA.then_some(channels - 1);
    let src: &[P::Subpixel] = img.as_raw();
    let mut out = Vec::with_capacity(ow * oh * channels);
    // Column sums of one band of `ky` rows, then block sums along the band.
    let mut columns = vec![<P::Subpixel as Sample>::Acc::default(); w * channels];
    for band in 0..oh {
        columns.fill(Default::default());
        let rows = band * ky..((band + 1) * ky).min(h);
        let n_rows = rows.len() as u64;
        for y in rows {
            let row = &src[y * w * channels..(y + 1) * w * channels];
            match alpha {
                None => add_row(&mut columns, row),
                Some(a) => add_row_weighted(&mut columns, row, channels, a),
            }
        }
        match channels {
            1 => average_blocks::<_, 1>(&columns, kx, n_rows, alpha, &mut out),
            2 => average_blocks::<_, 2>(&columns, kx, n_rows, alpha, &mut out),
            3 => average_blocks::<_, 3>(&columns, kx, n_rows, alpha, &mut out),
            _ => average_blocks::<_, 4>(&columns, kx, n_rows, alpha, &mut out),
        }
    }
    ImageBuffer::from_raw(ow as u32, oh as u32, out).expect("the buffer holds ow x oh pixels")
}

/// Sums `kx` pixels of `N` channels at a time along a band's column sums and appends their
/// averages (`n_rows` rows deep) to `out`.
fn average_blocks<S: Sample, const N: usize>(
    columns: &[S::Acc],
    kx: usize,
    n_rows: u64,
    alpha: Option<usize>,
    out: &mut Vec<S>,
) {
    // Reciprocals instead of a division per sample: all blocks but the last of a band have
    // the same size.
    let full = 1.0 / (kx as u64 * n_rows) as f64;
    for block in columns.chunks(kx * N) {
        let inv_n = match block.len() / N {
            len if len == kx => full,
            len => 1.0 / (len as u64 * n_rows) as f64,
        };
        let mut sums = [S::Acc::default(); N];
        for px in block.chunks_exact(N) {
            for (s, &v) in sums.iter_mut().zip(px) {
                *s += v;
            }
        }
        push_average(out, &sums.map(Into::into), inv_n, alpha);
    }
}

fn add_row<S: Sample>(columns: &mut [S::Acc], row: &[S]) {
    for (c, v) in columns.iter_mut().zip(row) {
        *c += v.acc();
    }
}

/// Adds colour weighted by alpha (and alpha itself), so the block's colour is that of the
/// pixels that cover it.
fn add_row_weighted<S: Sample>(columns: &mut [S::Acc], row: &[S], channels: usize, alpha: usize) {
    for (c, px) in columns.chunks_exact_mut(channels).zip(row.chunks_exact(channels)) {
        let a = px[alpha].acc();
        for i in 0..channels {
            c[i] += if i == alpha { a } else { px[i].acc() * a };
        }
    }
}

fn push_average<S: Sample>(out: &mut Vec<S>, sums: &[u64], inv_n: f64, alpha: Option<usize>) {
    // Colour is weighted by alpha, so it averages over the block's coverage.
    let inv_weight = match alpha {
        Some(a) if sums[a] > 0 => 1.0 / sums[a] as f64,
        Some(_) => 0.0,
        None => inv_n,
    };
    for (i, &s) in sums.iter().enumerate() {
        let inv = if alpha == Some(i) { inv_n } else { inv_weight };
        out.push(S::narrow((s as f64 * inv + 0.5) as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_average_and_edge_blocks_are_partial() {
        // 5x3 grey, blocks of 2x2: the last column and row hold 1 pixel across / down.
        let src = image::GrayImage::from_raw(5, 3, (0..15).map(|v| v * 10).collect()).unwrap();
        let out = reduce_buffer(&src, 2, 2);
        assert_eq!((out.width(), out.height()), (3, 2));
        // (0+10+50+60)/4 = 30, (20+30+70+80)/4 = 50, (40+90)/2 = 65; bottom row: (100+110)/2...
        assert_eq!(out.as_raw(), &vec![30, 50, 65, 105, 125, 140]);
    }

    #[test]
    fn transparent_pixels_do_not_colour_their_block() {
        let src = image::RgbaImage::from_raw(2, 1, vec![0, 0, 0, 0, 200, 100, 50, 255]).unwrap();
        let out = reduce_buffer(&src, 2, 1);
        assert_eq!(out.as_raw(), &vec![200, 100, 50, 128]);
    }

    #[test]
    fn the_pre_shrink_keeps_what_one_lanczos3_pass_keeps() {
        // Detail the output can hold (a period of 5 output pixels) through a 16x reduction,
        // with a width that leaves a partial block: the two-step resize must match one
        // Lanczos3 pass over the whole source, in level and in phase.
        let wave = |x: u32| (128.0 + 100.0 * (x as f64 * std::f64::consts::TAU / 80.0).sin()) as u8;
        let src = image::GrayImage::from_fn(1605, 48, |x, _| image::Luma([wave(x)]));
        let out = resize(
            Source::whole(DynamicImage::ImageLuma8(src.clone())),
            100,
            3,
            Fit::Fill,
            Anchor::CENTER,
        )
        .unwrap();
        let mut ideal = DynamicImage::new(100, 3, image::ColorType::L8);
        let lanczos = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        Resizer::new()
            .resize(&DynamicImage::ImageLuma8(src), &mut ideal, &lanczos)
            .unwrap();
        // The box costs 1.6% of the wave's amplitude (at most 2 levels here); the edge pixel,
        // where Lanczos3 sees the partial block and the border, a little more.
        let (out, ideal) = (out.to_luma8(), ideal.to_luma8());
        for ((x, _, a), b) in out.enumerate_pixels().zip(ideal.pixels()) {
            let tolerance = if x == 0 || x == 99 { 6 } else { 2 };
            assert!(
                (a[0] as i32 - b[0] as i32).abs() <= tolerance,
                "x {x}: {a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn cover_crops_the_centre() {
        // Black at the sides, white over the centre crop (300..600) and the Lanczos3 support
        // around it (30 source pixels at this scale).
        let src = image::GrayImage::from_fn(900, 300, |x, _| {
            image::Luma([if (250..650).contains(&x) { 255 } else { 0 }])
        });
        let out = resize(
            Source::whole(DynamicImage::ImageLuma8(src)),
            30,
            30,
            Fit::Cover,
            Anchor::CENTER,
        )
        .unwrap();
        assert!(out.to_luma8().pixels().all(|p| p[0] > 250));
    }
}
