//! Colour management. A picture with an embedded ICC profile other than sRGB (Display P3 from
//! phones, Adobe RGB from cameras) is converted to sRGB, which is what browsers assume of an
//! untagged image, so its thumbnail keeps its colours instead of looking washed out. moxcms
//! (pure Rust, already the `image` crate's colour engine) does the conversion.
//!
//! The conversion runs on the thumbnail, after the resize: thousands of pixels instead of
//! millions. Outputs carry no profile, so they are read as the sRGB they now are.

use image::DynamicImage;
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

use crate::ImageFormat;
use crate::formats::webp;

/// Profiles larger than this are ignored (real ones are a few KB; LUT profiles up to ~1 MB).
const MAX_PROFILE_BYTES: usize = 4 << 20;

/// The ICC profile embedded in `data`, for the formats that carry one (JPEG APP2, PNG iCCP,
/// WebP ICCP); `None` when there is none or it is damaged.
pub fn embedded_profile(data: &[u8], format: ImageFormat) -> Option<Vec<u8>> {
    let icc = match format {
        ImageFormat::Jpeg => jpeg_profile(data),
        ImageFormat::Png => png_profile(data),
        ImageFormat::Webp => webp::chunk(data, b"ICCP").map(<[u8]>::to_vec),
        _ => None,
    }?;
    (!icc.is_empty() && icc.len() <= MAX_PROFILE_BYTES).then_some(icc)
}

/// `img` converted from the colour space `icc` describes to sRGB. Unchanged when the profile
/// is sRGB already, not an RGB profile, or one moxcms cannot read: a thumbnail in the source's
/// own colours is better than none.
pub fn to_srgb(img: DynamicImage, icc: &[u8]) -> DynamicImage {
    let Ok(source) = ColorProfile::new_from_slice(icc) else {
        return img;
    };
    let srgb = ColorProfile::new_srgb();
    if source.color_space != DataColorSpace::Rgb || same_primaries(&source, &srgb) {
        return img;
    }
    let alpha = img.color().has_alpha();
    let layout = if alpha { Layout::Rgba } else { Layout::Rgb };
    let Ok(transform) = source.create_transform_8bit(layout, &srgb, layout, TransformOptions::default())
    else {
        return img;
    };
    let (w, h) = (img.width(), img.height());
    let pixels = if alpha {
        img.to_rgba8().into_raw()
    } else {
        img.to_rgb8().into_raw()
    };
    let mut out = vec![0u8; pixels.len()];
    if transform.transform(&pixels, &mut out).is_err() {
        return img;
    }
    let converted = if alpha {
        image::RgbaImage::from_raw(w, h, out).map(DynamicImage::ImageRgba8)
    } else {
        image::RgbImage::from_raw(w, h, out).map(DynamicImage::ImageRgb8)
    };
    converted.unwrap_or(img)
}

/// `png` with an `sRGB` chunk (rendering intent: perceptual) after its header, so viewers that
/// manage colour take it as the sRGB it is: 13 bytes, where an embedded profile would be
/// hundreds. JPEG and WebP have no such mark; untagged, they are read as sRGB.
pub fn tag_png_srgb(png: Vec<u8>) -> Vec<u8> {
    // Signature (8) and IHDR (4 + 4 + 13 + 4): the chunk goes right after.
    const AFTER_IHDR: usize = 33;
    if png.get(12..16) != Some(b"IHDR") || png.len() < AFTER_IHDR {
        return png;
    }
    let mut chunk = Vec::with_capacity(13);
    chunk.extend(1u32.to_be_bytes());
    chunk.extend(b"sRGB\0");
    chunk.extend(crc32fast::hash(&chunk[4..]).to_be_bytes());
    let mut out = Vec::with_capacity(png.len() + chunk.len());
    out.extend(&png[..AFTER_IHDR]);
    out.extend(chunk);
    out.extend(&png[AFTER_IHDR..]);
    out
}

/// sRGB profiles come in many versions (v2, v4, "black scaled"); their primaries are what
/// they share. Converting between them would only add rounding.
fn same_primaries(a: &ColorProfile, b: &ColorProfile) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() < 2e-3;
    [
        (a.red_colorant, b.red_colorant),
        (a.green_colorant, b.green_colorant),
        (a.blue_colorant, b.blue_colorant),
    ]
    .iter()
    .all(|(p, q)| close(p.x, q.x) && close(p.y, q.y) && close(p.z, q.z))
}

/// The APP2 `ICC_PROFILE` segments before the first scan, joined in sequence order.
fn jpeg_profile(data: &[u8]) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut at = 2usize;
    // Bounded by the input: every step moves past a segment of at least 2 bytes.
    while let Some(&[0xFF, marker, hi, lo]) = data.get(at..at + 4) {
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let body = data.get(at + 4..(at + 2 + len).max(at + 4))?;
        if marker == 0xE2 && body.len() > TAG.len() + 2 && body.starts_with(TAG) {
            chunks.push((body[TAG.len()], &body[TAG.len() + 2..]));
        }
        at += 2 + len.max(2);
    }
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|(seq, _)| *seq);
    Some(chunks.into_iter().flat_map(|(_, c)| c.iter().copied()).collect())
}

/// The `iCCP` chunk's profile, inflated (at most [`MAX_PROFILE_BYTES`]).
fn png_profile(data: &[u8]) -> Option<Vec<u8>> {
    let mut at = 8usize;
    while let Some(header) = data.get(at..at + 8) {
        let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
        let body = data.get(at + 8..at.checked_add(8 + len)?)?;
        match &header[4..8] {
            b"iCCP" => {
                // Name (1–79 bytes), NUL, compression method 0, then zlib data.
                let name_end = body.iter().position(|&b| b == 0)?;
                let compressed = body.get(name_end + 2..)?;
                return miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(
                    compressed,
                    MAX_PROFILE_BYTES,
                )
                .ok();
            }
            b"IDAT" | b"IEND" => return None,
            _ => {}
        }
        at = at.checked_add(12 + len)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG carrying `icc` in two APP2 segments, given in reverse order.
    fn jpeg_with_profile(icc: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 30, 40]));
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut plain), image::ImageFormat::Jpeg)
            .unwrap();
        let (first, second) = icc.split_at(icc.len() / 2);
        let mut out = plain[..2].to_vec();
        for (seq, part) in [(2u8, second), (1u8, first)] {
            let len = (2 + 12 + 2 + part.len()) as u16;
            out.extend([0xFF, 0xE2]);
            out.extend(len.to_be_bytes());
            out.extend(b"ICC_PROFILE\0");
            out.extend([seq, 2]);
            out.extend(part);
        }
        out.extend(&plain[2..]);
        out
    }

    #[test]
    fn png_outputs_say_srgb() {
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(image::RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3])))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let tagged = tag_png_srgb(png.clone());
        assert_eq!(&tagged[37..41], b"sRGB");
        assert_eq!(tagged.len(), png.len() + 13);
        // The png crate checks every chunk's CRC: the file still decodes, to the same pixels.
        let decoder = image::codecs::png::PngDecoder::new(std::io::Cursor::new(&tagged)).unwrap();
        assert_eq!(
            DynamicImage::from_decoder(decoder)
                .unwrap()
                .to_rgb8()
                .get_pixel(2, 1)
                .0,
            [1, 2, 3]
        );
        assert_eq!(tag_png_srgb(b"not a png".to_vec()), b"not a png");
    }

    #[test]
    fn a_split_jpeg_profile_is_joined_in_order() {
        let icc = ColorProfile::new_display_p3().encode().unwrap();
        let jpeg = jpeg_with_profile(&icc);
        assert_eq!(embedded_profile(&jpeg, ImageFormat::Jpeg), Some(icc));
        // Cut inside the segments: no profile, no panic.
        for cut in [3, 10, 40, 200] {
            let _ = embedded_profile(&jpeg[..cut.min(jpeg.len())], ImageFormat::Jpeg);
        }
    }

    #[test]
    fn p3_pixels_become_the_srgb_they_show_and_srgb_is_left_alone() {
        let p3 = ColorProfile::new_display_p3().encode().unwrap();
        // Pure P3 red lies outside sRGB; a mid P3 red is inside and must come out more saturated.
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(2, 2, image::Rgb([180, 60, 60])));
        let out = to_srgb(img.clone(), &p3).to_rgb8();
        let px = out.get_pixel(0, 0);
        assert!(px[0] > 185 && px[1] < 60, "{px:?}");
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        assert_eq!(to_srgb(img.clone(), &srgb), img);
        assert_eq!(to_srgb(img.clone(), b"not a profile"), img);
    }
}
