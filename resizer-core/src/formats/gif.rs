//! GIF, first frame only, decoded with the `gif` crate directly rather than through `image`.
//!
//! `image` clips the first frame to the logical screen; Pillow and browsers grow the canvas
//! when the first frame reaches past it (a common encoder bug), so we do too: the canvas is
//! the union of the logical screen and the first frame's rectangle. Later frames are never
//! decoded or composited: a thumbnail shows the first.

use std::io::Cursor;

use image::{DynamicImage, RgbImage, RgbaImage};

use super::{Header, check_pixels, lzw};
use crate::Error;

fn malformed(e: gif::DecodingError) -> Error {
    match e {
        gif::DecodingError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::MalformedImage("gif image is truncated".into())
        }
        other => Error::MalformedImage(format!("gif image: {other}")),
    }
}

/// Geometry of the first frame: canvas size, frame rectangle, and whether it is transparent.
struct FirstFrame {
    canvas: (u32, u32),
    rect: (u32, u32, u32, u32),
    transparent: bool,
}

type Decoder<'a> = gif::Decoder<Cursor<&'a [u8]>>;

fn open(
    data: &[u8],
    memory_limit: u64,
    output: gif::ColorOutput,
) -> Result<(Decoder<'_>, FirstFrame), Error> {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(output);
    opts.set_memory_limit(match std::num::NonZeroU64::new(memory_limit) {
        Some(n) => gif::MemoryLimit::Bytes(n),
        None => gif::MemoryLimit::Unlimited,
    });
    let mut decoder = opts.read_info(Cursor::new(data)).map_err(malformed)?;
    let (sw, sh) = (decoder.width() as u32, decoder.height() as u32);
    let frame = decoder
        .next_frame_info()
        .map_err(malformed)?
        .ok_or_else(|| Error::MalformedImage("gif image has no frames".into()))?;
    let rect = (
        frame.left as u32,
        frame.top as u32,
        frame.width as u32,
        frame.height as u32,
    );
    let transparent = frame.transparent.is_some();
    let canvas = (sw.max(rect.0 + rect.2), sh.max(rect.1 + rect.3));
    Ok((
        decoder,
        FirstFrame {
            canvas,
            rect,
            transparent,
        },
    ))
}

/// Reads size and alpha from the header and the first frame's descriptor.
pub fn dimensions(data: &[u8]) -> Result<Header, Error> {
    let (_, first) = open(data, 0, gif::ColorOutput::Indexed)?;
    Ok(Header {
        width: first.canvas.0,
        height: first.canvas.1,
        // A frame that leaves part of the canvas uncovered shows transparency there.
        has_alpha: first.transparent || first.canvas != (first.rect.2, first.rect.3),
    })
}

/// Decodes the first frame onto its canvas, refusing canvases over `max_pixels` first.
pub fn decode(data: &[u8], max_pixels: u64) -> Result<DynamicImage, Error> {
    let (_, first) = open(data, 0, gif::ColorOutput::Indexed)?;
    check_pixels(first.canvas.0, first.canvas.1, max_pixels)?;
    let (_, _, fw, fh) = first.rect;
    if fw == 0 || fh == 0 {
        return Ok(DynamicImage::ImageRgba8(RgbaImage::new(
            first.canvas.0,
            first.canvas.1,
        )));
    }
    if first.canvas == (fw, fh) && !first.transparent {
        return decode_opaque(data, fw, fh);
    }
    // Reopen with the frame's own size as the decoder's memory limit, now it is known to fit.
    let limit = fw as u64 * fh as u64 * 4 + (1 << 20);
    let (mut decoder, first) = open(data, limit, gif::ColorOutput::RGBA)?;
    let mut frame = vec![0u8; fw as usize * fh as usize * 4];
    decoder.read_into_buffer(&mut frame).map_err(malformed)?;
    let frame =
        RgbaImage::from_raw(fw, fh, frame).ok_or_else(|| Error::Internal("gif frame buffer size".into()))?;
    if first.canvas == (fw, fh) {
        return Ok(DynamicImage::ImageRgba8(frame));
    }
    let mut canvas = RgbaImage::new(first.canvas.0, first.canvas.1);
    image::imageops::replace(&mut canvas, &frame, first.rect.0 as i64, first.rect.1 as i64);
    Ok(DynamicImage::ImageRgba8(canvas))
}

/// An opaque first frame that fills the canvas (most GIF photos): our own LZW decoder
/// ([`lzw`]), reading the data sub-blocks where they are in the file, into palette indices,
/// expanded through a table into RGB. Three channels instead of four make the resize cheaper
/// (and it skips the alpha premultiply), and the peak is 4 bytes a pixel instead of RGBA's 5.
fn decode_opaque(data: &[u8], fw: u32, fh: u32) -> Result<DynamicImage, Error> {
    let image = match lzw::first_image(data) {
        // The same image the gif crate found, with a code size ours takes.
        Some(image)
            if (image.left, image.top, image.width as u32, image.height as u32) == (0, 0, fw, fh)
                && data.get(image.at).is_some_and(|m| (1..=8).contains(m)) =>
        {
            image
        }
        _ => return decode_opaque_with_gif_crate(data, fw, fh),
    };
    let mut indices = vec![0u8; fw as usize * fh as usize];
    lzw::decode(data[image.at], &data[image.at + 1..], &mut indices)?;
    Ok(expand(&indices, image.palette, fw, fh, image.interlaced))
}

/// The same through the gif crate's decoder, for LZW code sizes ours does not take.
fn decode_opaque_with_gif_crate(data: &[u8], fw: u32, fh: u32) -> Result<DynamicImage, Error> {
    let limit = fw as u64 * fh as u64 + (1 << 20);
    let (mut decoder, _) = open(data, limit, gif::ColorOutput::Indexed)?;
    let mut indices = vec![0u8; fw as usize * fh as usize];
    decoder.read_into_buffer(&mut indices).map_err(malformed)?;
    let palette = decoder.palette().map_err(malformed)?.to_vec();
    Ok(expand(&indices, &palette, fw, fh, false))
}

/// Palette indices to RGB, rows put in display order when the frame is `interlaced` (stored
/// as every 8th row from 0, every 8th from 4, every 4th from 2, then every 2nd from 1).
fn expand(indices: &[u8], palette: &[u8], fw: u32, fh: u32, interlaced: bool) -> DynamicImage {
    // Indices past the palette's end are black, as Pillow shows them.
    let mut table = [0u64; 256];
    for (entry, rgb) in table.iter_mut().zip(palette.chunks_exact(3)) {
        *entry = u64::from(rgb[0]) | u64::from(rgb[1]) << 8 | u64::from(rgb[2]) << 16;
    }
    let (w, h) = (fw as usize, fh as usize);
    let mut rgb = vec![0u8; w * h * 3];
    let rows: Vec<usize> = match interlaced {
        true => [(0, 8), (4, 8), (2, 4), (1, 2)]
            .into_iter()
            .flat_map(|(first, step)| (first..h).step_by(step))
            .collect(),
        false => (0..h).collect(),
    };
    for (src, y) in indices.chunks_exact(w).zip(rows) {
        let dst = &mut rgb[y * w * 3..][..w * 3];
        // Four pixels are twelve bytes, packed into one 8-byte and one 4-byte store (three
        // byte copies a pixel were a sixth of a GIF thumbnail's time).
        let mut quads = dst.chunks_exact_mut(12);
        for (out, four) in (&mut quads).zip(src.chunks_exact(4)) {
            let [a, b, c, d] = [0, 1, 2, 3].map(|k| table[four[k] as usize]);
            let low = a | b << 24 | c << 48;
            let high = (c >> 16 | d << 8) as u32;
            out[..8].copy_from_slice(&low.to_le_bytes());
            out[8..].copy_from_slice(&high.to_le_bytes());
        }
        let rest = quads.into_remainder();
        for (px, &i) in rest.chunks_exact_mut(3).zip(&src[w - w % 4..]) {
            px.copy_from_slice(&table[i as usize].to_le_bytes()[..3]);
        }
    }
    DynamicImage::ImageRgb8(RgbImage::from_raw(fw, fh, rgb).expect("the buffer is w * h * 3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../shared/corpus/formats/gif/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_first_frame_past_the_logical_screen_grows_the_canvas() {
        // Sizes as Pillow reports them.
        let h = dimensions(&corpus("simple/issue_1455_oversized.gif")).unwrap();
        assert_eq!((h.width, h.height), (16, 16));
        let img = decode(&corpus("simple/issue_1455_oversized.gif"), 1 << 20).unwrap();
        assert_eq!((img.width(), img.height()), (16, 16));
        let h = dimensions(&corpus("anim/oob.gif")).unwrap();
        assert_eq!((h.width, h.height), (40, 40));
    }

    #[test]
    fn canvas_over_the_limit_is_refused_before_decoding() {
        let data = corpus("anim/large-gif-anim-combine.gif");
        assert!(matches!(
            decode(&data, 999 * 1000),
            Err(Error::TooLarge {
                width: 1000,
                height: 1000,
                ..
            })
        ));
    }

    fn gif_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                gif_files(&path, out);
            } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif")) {
                out.push(path);
            }
        }
    }

    /// The opaque path's RGB is the `image` crate's RGBA decode, pixel for pixel, with every
    /// alpha 255.
    #[test]
    fn opaque_frames_decode_to_the_reference_pixels() {
        let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        let mut files = vec![shared.join("photos/coffee-2mp.gif")];
        gif_files(&shared.join("formats/gif"), &mut files);
        let mut compared = 0;
        for path in files {
            let data = std::fs::read(&path).unwrap();
            let Ok(DynamicImage::ImageRgb8(ours)) = decode(&data, 1 << 26) else {
                continue;
            };
            let Ok(reference) = image::load_from_memory(&data) else {
                continue;
            };
            let reference = reference.to_rgba8();
            assert_eq!(ours.dimensions(), reference.dimensions(), "{}", path.display());
            for (a, b) in ours.pixels().zip(reference.pixels()) {
                assert_eq!([a[0], a[1], a[2], 255], b.0, "{}", path.display());
            }
            compared += 1;
        }
        assert!(compared >= 3, "only {compared} opaque GIFs compared");
    }

    #[test]
    fn expansion_maps_every_index_and_puts_interlaced_rows_in_place() {
        let palette: Vec<u8> = (0..250u32).map(|i| (i * 7 % 256) as u8).collect(); // 83 colours
        for (w, h) in [(7u32, 11u32), (8, 9), (1, 1), (5, 3)] {
            let indices: Vec<u8> = (0..w * h).map(|i| (i * 31 % 256) as u8).collect();
            let colour = |i: u8| {
                let at = i as usize * 3;
                palette.get(at..at + 3).map_or([0, 0, 0], |c| [c[0], c[1], c[2]])
            };
            let flat = expand(&indices, &palette, w, h, false).into_rgb8();
            for (x, y, px) in flat.enumerate_pixels() {
                assert_eq!(px.0, colour(indices[(y * w + x) as usize]), "{w}x{h} at {x},{y}");
            }
            // Stored rows 0, 8, ... then 4, 12, ... then 2, 6, ... then the odd ones.
            let order: Vec<u32> = [(0, 8), (4, 8), (2, 4), (1, 2)]
                .into_iter()
                .flat_map(|(first, step)| (first..h).step_by(step))
                .collect();
            let laced = expand(&indices, &palette, w, h, true).into_rgb8();
            for (stored, &y) in order.iter().enumerate() {
                for x in 0..w {
                    let want = colour(indices[stored * w as usize + x as usize]);
                    assert_eq!(laced.get_pixel(x, y).0, want, "{w}x{h} interlaced at {x},{y}");
                }
            }
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let data = corpus("simple/alpha_gif_a.gif");
        for cut in [0, 6, 13, 20, data.len() / 2] {
            assert!(decode(&data[..cut], u64::MAX).is_err(), "cut at {cut}");
        }
    }
}
