//! `gravity=smart`: the crop window that holds the most of what people look at.
//!
//! The design follows smartcrop.js and libvips' `attention` crop: score every pixel of a small
//! copy of the picture for detail (the luma gradient), colour (how far it is from the
//! picture's mean colour, as in Achanta's frequency-tuned saliency) and skin tone, then
//! slide the crop window over the scores and keep the window with the largest sum (an
//! integral image makes each position O(1)). Ties go to the window nearest the centre, so a
//! flat picture crops like `center`. Transparent pixels score nothing.
//!
//! The weights were picked with `tests/smartcrop.rs`, which measures how much of a made,
//! off-centre subject each variant keeps; see the table in its module docs.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbaImage};

/// The long side of the copy that is scored: subjects a tenth of the picture across are still
/// 25 pixels wide, and scoring costs well under a millisecond.
const WORK_SIDE: f64 = 256.0;

/// How much each feature counts. Detail is the luma gradient (Sobel, 0 to about 255), colour
/// the distance from the picture's mean colour (RGB, 0 to 441), skin 0 to 255.
#[derive(Debug, Clone, Copy)]
pub struct Weights {
    pub detail: f32,
    pub colour: f32,
    pub skin: f32,
}

/// The weights `gravity=smart` uses.
pub const WEIGHTS: Weights = Weights {
    detail: 1.0,
    colour: 0.5,
    skin: 0.5,
};

/// The start (x, y) of the best `crop` window over the part `extent` of `image`, in the
/// image's pixels; `None` when the image cannot be scored (the caller then centres).
pub fn best_crop(
    image: &DynamicImage,
    extent: (f64, f64),
    crop: (f64, f64),
    weights: Weights,
) -> Option<(f64, f64)> {
    let scale = (WORK_SIDE / extent.0.max(extent.1)).min(1.0);
    let (ww, wh) = (
        ((extent.0 * scale).round() as u32).max(1),
        ((extent.1 * scale).round() as u32).max(1),
    );
    let work = shrink(image, extent, (ww, wh))?;
    let scores = score(&work, weights);
    // The window in work pixels, and the scale back to the image's.
    let (sx, sy) = (extent.0 / ww as f64, extent.1 / wh as f64);
    let win = (
        ((crop.0 / sx).round() as u32).clamp(1, ww),
        ((crop.1 / sy).round() as u32).clamp(1, wh),
    );
    let (x, y) = best_window(&scores, (ww, wh), win);
    // Map the window's centre back, so rounding of the window size does not shift it.
    let centre = |start: u32, len: u32, s: f64| (start as f64 + len as f64 / 2.0) * s;
    Some((
        crate::gravity::place(extent.0, crop.0, centre(x, win.0, sx) / extent.0),
        crate::gravity::place(extent.1, crop.1, centre(y, win.1, sy) / extent.1),
    ))
}

/// The picture's extent of `image`, averaged down to `size`, as 8-bit RGBA.
fn shrink(image: &DynamicImage, extent: (f64, f64), size: (u32, u32)) -> Option<RgbaImage> {
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Box))
        .crop(0.0, 0.0, extent.0, extent.1);
    let mut small = DynamicImage::new(size.0, size.1, image.color());
    Resizer::new().resize(image, &mut small, &options).ok()?;
    Some(small.into_rgba8())
}

/// Per-pixel scores, row by row: each feature counts by how far it stands above its own mean
/// over the picture, so what the whole picture has (a blue sky's colour, a lawn's grain, a
/// beige wall that passes for skin) does not pull the window, and what stands out does.
pub fn score(work: &RgbaImage, weights: Weights) -> Vec<f32> {
    let (w, h) = work.dimensions();
    let n = (w * h) as f32;
    let luma: Vec<f32> = work
        .pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    let at = |x: i64, y: i64| luma[(y.clamp(0, h as i64 - 1) * w as i64 + x.clamp(0, w as i64 - 1)) as usize];
    let detail: Vec<f32> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x - 1, y)
                - at(x - 1, y + 1);
            let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x, y - 1)
                - at(x + 1, y - 1);
            (gx.abs() + gy.abs()) / 8.0
        })
        .collect();
    let mut mean_colour = [0f32; 3];
    for p in work.pixels() {
        for c in 0..3 {
            mean_colour[c] += p[c] as f32 / n;
        }
    }
    let colour: Vec<f32> = work
        .pixels()
        .map(|p| {
            let d: f32 = (0..3).map(|c| (p[c] as f32 - mean_colour[c]).powi(2)).sum();
            d.sqrt()
        })
        .collect();
    let skin: Vec<f32> = work
        .pixels()
        .map(|p| skin(p[0] as f32, p[1] as f32, p[2] as f32))
        .collect();
    let above_mean = |f: &[f32]| {
        let mean = f.iter().sum::<f32>() / n;
        f.iter().map(|v| (v - mean).max(0.0)).collect::<Vec<f32>>()
    };
    let (detail, colour, skin) = (above_mean(&detail), above_mean(&colour), above_mean(&skin));
    work.pixels()
        .enumerate()
        .map(|(i, p)| {
            let value = weights.detail * detail[i] + weights.colour * colour[i] + weights.skin * skin[i];
            value * p[3] as f32 / 255.0
        })
        .collect()
}

/// How close a colour is to the skin tones smartcrop.js uses, 0 to 255: its direction in RGB
/// near (0.78, 0.57, 0.44), at a brightness where skin shows.
fn skin(r: f32, g: f32, b: f32) -> f32 {
    let len = (r * r + g * g + b * b).sqrt();
    if len < 1.0 {
        return 0.0;
    }
    let (dr, dg, db) = (r / len - 0.78, g / len - 0.57, b / len - 0.44);
    let closeness = 1.0 - (dr * dr + dg * dg + db * db).sqrt();
    let luma = 0.299 * r + 0.587 * g + 0.114 * b;
    // smartcrop.js: a closeness over 0.8 and a luma between 20% and 100%.
    if closeness > 0.8 && luma > 51.0 {
        (closeness - 0.8) / 0.2 * 255.0
    } else {
        0.0
    }
}

/// The start of the `win` window with the largest sum of `scores`; the nearest to the centre
/// among equals.
fn best_window(scores: &[f32], (w, h): (u32, u32), (ww, wh): (u32, u32)) -> (u32, u32) {
    let stride = w as usize + 1;
    let mut sums = vec![0f64; stride * (h as usize + 1)];
    for y in 0..h as usize {
        let mut row = 0f64;
        for x in 0..w as usize {
            row += scores[y * w as usize + x] as f64;
            sums[(y + 1) * stride + x + 1] = sums[y * stride + x + 1] + row;
        }
    }
    let sum = |x: usize, y: usize| {
        let (x1, y1) = (x + ww as usize, y + wh as usize);
        sums[y1 * stride + x1] - sums[y * stride + x1] - sums[y1 * stride + x] + sums[y * stride + x]
    };
    let (mid_x, mid_y) = ((w - ww) as f64 / 2.0, (h - wh) as f64 / 2.0);
    let mut best = (f64::MIN, f64::MAX, (0, 0));
    for y in 0..=(h - wh) {
        for x in 0..=(w - ww) {
            let s = sum(x as usize, y as usize);
            let d = (x as f64 - mid_x).hypot(y as f64 - mid_y);
            // Sums differing by rounding alone count as equal.
            let tolerance = 1e-9 * best.0.abs().max(1.0);
            if s > best.0 + tolerance || ((s - best.0).abs() <= tolerance && d < best.1) {
                best = (s, d, (x, y));
            }
        }
    }
    best.2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_picture_crops_the_centre() {
        let flat = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(300, 100, image::Rgb([90, 90, 90])));
        let (x, y) = best_crop(&flat, (300.0, 100.0), (100.0, 100.0), WEIGHTS).unwrap();
        assert!((x - 100.0).abs() < 1.5 && y == 0.0, "{x},{y}");
    }

    #[test]
    fn the_window_goes_to_the_detail() {
        // Grey, with a checkerboard in the right quarter.
        let img = image::RgbImage::from_fn(400, 100, |x, y| {
            let v = if x >= 300 && (x / 4 + y / 4) % 2 == 0 {
                250
            } else {
                90
            };
            image::Rgb([v, v, v])
        });
        let (x, _) = best_crop(
            &DynamicImage::ImageRgb8(img),
            (400.0, 100.0),
            (100.0, 100.0),
            WEIGHTS,
        )
        .unwrap();
        assert!((x - 300.0).abs() <= 2.0, "{x}");
    }

    #[test]
    fn transparent_pixels_score_nothing() {
        // Detail everywhere, but only the left quarter is opaque.
        let img = image::RgbaImage::from_fn(400, 100, |x, y| {
            let v = if (x / 4 + y / 4) % 2 == 0 { 250 } else { 10 };
            image::Rgba([v, v, v, if x < 100 { 255 } else { 0 }])
        });
        let (x, _) = best_crop(
            &DynamicImage::ImageRgba8(img),
            (400.0, 100.0),
            (100.0, 100.0),
            WEIGHTS,
        )
        .unwrap();
        assert!(x <= 2.0, "{x}");
    }
}
