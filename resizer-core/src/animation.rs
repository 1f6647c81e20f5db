//! `animated=true`: a GIF or WebP animation becomes an animated thumbnail with the same
//! frames and timing, instead of a still of its first frame. Two outputs can hold one: an
//! animated GIF, which every client plays, with its palette chosen per frame (NeuQuant); and
//! an animated WebP (libwebp's animation encoder, lossy at the asked quality, alpha kept),
//! which every current browser plays and which stores only the part of each frame that
//! changed, in full colour. The WebP is usually the smaller by far; flat pixel art in a few
//! pure colours is the exception, which GIF keeps exact and smaller. PNG, JPEG and AVIF
//! thumbnails are single frames here, so an animation asked in one of those is refused with
//! what to ask instead.
//!
//! Every frame is composited onto the full canvas as a browser shows it (GIFs by the `image`
//! crate's decoder, WebPs by libwebp's: see [`AnimDecoder`] for why), resized at once, and
//! dropped: only one full-size frame is alive at a time besides the decoder's own canvas,
//! plus the small ones (both encoders take a frame as it comes; the WebP one keeps the
//! previous small canvas to find what changed). The work grows with frames × pixels, so that
//! product must stay under the pixel limit, as one still image's pixels must.

use std::io::Cursor;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::{AnimationDecoder, Delay, DynamicImage, Frame, ImageDecoder, Limits, RgbaImage};

use crate::formats::webp::{AnimDecoder, AnimEncoder};
use crate::resize::{Anchor, Source, resize};
use crate::{Error, Fit, ImageFormat, ImageInfo, OutputFormat};

/// Quantisation speed for each frame's palette, 1 (best) to 30; 10 is the `gif` crate's
/// balance of quality and time.
const PALETTE_SPEED: i32 = 10;

/// Refuses an output format that cannot hold the animation in `info`, before anything is
/// decoded.
pub fn check_format(info: &ImageInfo, format: OutputFormat) -> Result<(), Error> {
    match format {
        OutputFormat::Gif | OutputFormat::Webp => Ok(()),
        OutputFormat::Png | OutputFormat::Jpeg | OutputFormat::Avif => Err(Error::InvalidOptions(format!(
            "animated=true: the {} is an animation of {} frames, and {} thumbnails hold one frame; \
             ask format=gif or format=webp to keep the animation, or animated=false for a still \
             of its first frame",
            info.format.name(),
            info.frame_count,
            format.name()
        ))),
    }
}

/// Checks that `frames` frames of the picture in `info` stay under `max_pixels` in all.
pub fn check_limit(info: &ImageInfo, max_pixels: u64) -> Result<(), Error> {
    let total = (info.width as u64 * info.height as u64).saturating_mul(info.frame_count as u64);
    if total > max_pixels {
        return Err(Error::InvalidOptions(format!(
            "animated=true: {} frames of {}x{} are {total} pixels in all, more than the limit of \
             {max_pixels}; without animated=true the first frame is thumbnailed",
            info.frame_count, info.width, info.height
        )));
    }
    Ok(())
}

/// Decodes every frame of a GIF or WebP animation, resizes each to `w` x `h` with `fit`
/// and `anchor`, and encodes them as an animation that loops forever: an animated GIF, or
/// for `format` WebP, a lossy animated WebP at `quality`. Other formats are refused by
/// [`check_format`].
pub fn thumbnail(
    data: &[u8],
    info: &ImageInfo,
    (w, h): (u32, u32),
    fit: Fit,
    anchor: Anchor,
    format: OutputFormat,
    quality: u8,
) -> Result<Vec<u8>, Error> {
    check_format(info, format)?;
    let malformed =
        |e: image::ImageError| Error::MalformedImage(format!("{} animation: {e}", info.format.name()));
    // Each frame as shown, full size, with its delay in ms.
    let frames: Box<dyn Iterator<Item = Result<(RgbaImage, u32), Error>> + '_> = match info.format {
        ImageFormat::Gif => {
            let mut limits = Limits::default();
            // One composited canvas and the decoder's own frame at a time.
            let frame_bytes = info.width as u64 * info.height as u64 * 4;
            limits.max_alloc = Some(frame_bytes.saturating_mul(4).saturating_add(64 << 20));
            let mut d = GifDecoder::new(Cursor::new(data)).map_err(malformed)?;
            d.set_limits(limits).map_err(malformed)?;
            Box::new(d.into_frames().map(move |frame| {
                let frame = frame.map_err(malformed)?;
                let delay = delay_ms(frame.delay());
                Ok((frame.into_buffer(), delay))
            }))
        }
        ImageFormat::Webp => {
            let d = AnimDecoder::new(data)?;
            // The pixel limit was checked on the header the `image` crate read.
            let (cw, ch) = d.size();
            if cw as u64 * ch as u64 > info.width as u64 * info.height as u64 {
                return Err(Error::MalformedImage(format!(
                    "the WebP animation's canvas is {cw}x{ch}, larger than its header's {}x{}",
                    info.width, info.height
                )));
            }
            Box::new(d)
        }
        other => {
            return Err(Error::Internal(format!(
                "{} has no animation decoder",
                other.name()
            )));
        }
    };
    // Each frame is resized as it is decoded and handed to the encoder, so the full-size
    // canvas it came from is dropped before the next is made.
    let small_frames = frames.map(|frame| {
        let (canvas, delay) = frame?;
        let small = resize(Source::whole(DynamicImage::ImageRgba8(canvas)), w, h, fit, anchor)?.into_rgba8();
        Ok::<_, Error>((small, delay))
    });
    if format == OutputFormat::Webp {
        let mut encoder = AnimEncoder::new(w, h, quality)?;
        for frame in small_frames {
            let (small, delay) = frame?;
            encoder.add(&small, delay)?;
        }
        return encoder.finish();
    }
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, PALETTE_SPEED);
        encoder
            .set_repeat(Repeat::Infinite)
            .map_err(|e| Error::Internal(format!("gif: {e}")))?;
        for frame in small_frames {
            let (small, delay) = frame?;
            encoder
                .encode_frame(Frame::from_parts(
                    small,
                    0,
                    0,
                    Delay::from_numer_denom_ms(delay, 1),
                ))
                .map_err(|e| Error::Internal(format!("encoding a gif frame failed: {e}")))?;
        }
    }
    Ok(out)
}

/// A GIF frame's delay in whole milliseconds, as WebP durations and [`AnimDecoder`] count
/// them (GIF's 10 ms units are whole already).
fn delay_ms(delay: Delay) -> u32 {
    let (numer, denom) = delay.numer_denom_ms();
    if denom == 0 {
        return 0;
    }
    ((numer as u64 + denom as u64 / 2) / denom as u64) as u32
}
