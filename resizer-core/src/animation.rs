//! `animated=true`: a GIF or WebP animation becomes an animated GIF thumbnail with the same
//! frames and timing, instead of a still of its first frame.
//!
//! Every frame is composited onto the full canvas by the `image` crate's decoders (as a
//! browser shows it), resized at once, and dropped: only one full-size frame is alive at a
//! time, plus the small ones. The work grows with frames × pixels, so that product must stay
//! under the pixel limit, as one still image's pixels must. GIF is the output because it is
//! what every client plays; its palette is chosen per frame (NeuQuant).

use std::io::Cursor;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, DynamicImage, Frame, Frames, ImageDecoder, Limits};

use crate::resize::{Anchor, Source, resize};
use crate::{Error, Fit, ImageFormat, ImageInfo};

/// Quantisation speed for each frame's palette, 1 (best) to 30; 10 is the `gif` crate's
/// balance of quality and time.
const PALETTE_SPEED: i32 = 10;

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
/// and `anchor`, and encodes them as an animated GIF that loops forever.
pub fn thumbnail(
    data: &[u8],
    info: &ImageInfo,
    (w, h): (u32, u32),
    fit: Fit,
    anchor: Anchor,
) -> Result<Vec<u8>, Error> {
    let frame_bytes = info.width as u64 * info.height as u64 * 4;
    let mut limits = Limits::default();
    // One composited canvas and the decoder's own frame at a time.
    limits.max_alloc = Some(frame_bytes.saturating_mul(4).saturating_add(64 << 20));
    let malformed =
        |e: image::ImageError| Error::MalformedImage(format!("{} animation: {e}", info.format.name()));
    let frames: Frames<'_> = match info.format {
        ImageFormat::Gif => {
            let mut d = GifDecoder::new(Cursor::new(data)).map_err(malformed)?;
            d.set_limits(limits).map_err(malformed)?;
            d.into_frames()
        }
        ImageFormat::Webp => {
            let mut d = WebPDecoder::new(Cursor::new(data)).map_err(malformed)?;
            d.set_limits(limits).map_err(malformed)?;
            d.into_frames()
        }
        other => {
            return Err(Error::Internal(format!(
                "{} has no animation decoder",
                other.name()
            )));
        }
    };
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, PALETTE_SPEED);
        encoder
            .set_repeat(Repeat::Infinite)
            .map_err(|e| Error::Internal(format!("gif: {e}")))?;
        for frame in frames {
            let frame = frame.map_err(malformed)?;
            let delay = frame.delay();
            let canvas = DynamicImage::ImageRgba8(frame.into_buffer());
            let small = resize(Source::whole(canvas), w, h, fit, anchor)?.into_rgba8();
            encoder
                .encode_frame(Frame::from_parts(small, 0, 0, delay))
                .map_err(|e| Error::Internal(format!("encoding a gif frame failed: {e}")))?;
        }
    }
    Ok(out)
}
