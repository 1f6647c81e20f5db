//! GIF, first frame only, decoded with the `gif` crate directly rather than through `image`.
//!
//! `image` clips the first frame to the logical screen; Pillow and browsers grow the canvas
//! when the first frame reaches past it (a common encoder bug), so we do too: the canvas is
//! the union of the logical screen and the first frame's rectangle. Later frames are never
//! decoded or composited: a thumbnail shows the first.

use std::io::Cursor;

use image::{DynamicImage, RgbaImage};

use super::{Header, check_pixels};
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

fn open(data: &[u8], memory_limit: u64) -> Result<(Decoder<'_>, FirstFrame), Error> {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
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
    let (_, first) = open(data, 0)?;
    Ok(Header {
        width: first.canvas.0,
        height: first.canvas.1,
        // A frame that leaves part of the canvas uncovered shows transparency there.
        has_alpha: first.transparent || first.canvas != (first.rect.2, first.rect.3),
    })
}

/// Decodes the first frame onto its canvas, refusing canvases over `max_pixels` first.
pub fn decode(data: &[u8], max_pixels: u64) -> Result<DynamicImage, Error> {
    let (_, first) = open(data, 0)?;
    check_pixels(first.canvas.0, first.canvas.1, max_pixels)?;
    let (_, _, fw, fh) = first.rect;
    if fw == 0 || fh == 0 {
        return Ok(DynamicImage::ImageRgba8(RgbaImage::new(
            first.canvas.0,
            first.canvas.1,
        )));
    }
    // Reopen with the frame's own size as the decoder's memory limit, now it is known to fit.
    let (mut decoder, first) = open(data, fw as u64 * fh as u64 * 4 + (1 << 20))?;
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

    #[test]
    fn garbage_and_truncation_are_errors() {
        let data = corpus("simple/alpha_gif_a.gif");
        for cut in [0, 6, 13, 20, data.len() / 2] {
            assert!(decode(&data[..cut], u64::MAX).is_err(), "cut at {cut}");
        }
    }
}
