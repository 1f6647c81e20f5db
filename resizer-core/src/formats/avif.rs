//! AVIF output through ravif (rav1e, pure Rust), built without threads or assembly so the same
//! code runs in the component. The output carries no Exif; ravif tags it as sRGB (BT.709
//! primaries, sRGB transfer) in the container.

use image::DynamicImage;
use ravif::{Encoder, Img, RGB8, RGBA8};

use crate::Error;

/// rav1e's speed, 1 (slowest, smallest) to 10, for thumbnails up to [`SMALL_PIXELS`]; larger
/// ones use 10. Measured natively on a 400x267 photo thumbnail at q80: speed 8 takes 509 ms
/// for 18.4 KB, speed 10 141 ms for 21.8 KB; at 100x67 both take 40–60 ms, a fixed cost of
/// rav1e's, for 3.3 and 4.0 KB. The sandbox adds about half again.
pub const SPEED: u8 = 8;
pub const SMALL_PIXELS: u64 = 200_000;
/// Larger AVIF outputs are refused: at about 2 µs a pixel even at speed 10 in the sandbox,
/// they would run into the deadline.
pub const MAX_PIXELS: u64 = 2_000_000;

/// Encodes at `quality` (1–100, as ravif's and libavif's scale). Alpha is kept, with its own
/// quality equal to the colour's.
pub fn encode(img: DynamicImage, quality: u8) -> Result<Vec<u8>, Error> {
    let encoder = Encoder::new()
        .with_quality(quality as f32)
        .with_alpha_quality(quality as f32)
        .with_speed(if img.width() as u64 * img.height() as u64 <= SMALL_PIXELS {
            SPEED
        } else {
            10
        })
        .with_num_threads(Some(1));
    let (w, h) = (img.width() as usize, img.height() as usize);
    if (w * h) as u64 > MAX_PIXELS {
        return Err(Error::InvalidOptions(format!(
            "avif output is limited to {MAX_PIXELS} pixels and this thumbnail is {w}x{h}: the \
             encoder is too slow for more; use webp or jpeg, or a smaller box"
        )));
    }
    let encoded = if img.color().has_alpha() {
        let rgba = img.into_rgba8();
        let pixels: Vec<RGBA8> = rgba
            .as_raw()
            .chunks_exact(4)
            .map(|p| RGBA8::new(p[0], p[1], p[2], p[3]))
            .collect();
        encoder.encode_rgba(Img::new(&pixels[..], w, h))
    } else {
        let rgb = img.into_rgb8();
        let pixels: Vec<RGB8> = rgb
            .as_raw()
            .chunks_exact(3)
            .map(|p| RGB8::new(p[0], p[1], p[2]))
            .collect();
        encoder.encode_rgb(Img::new(&pixels[..], w, h))
    };
    encoded
        .map(|e| e.avif_file)
        .map_err(|e| Error::Internal(format!("encoding avif failed: {e}")))
}
