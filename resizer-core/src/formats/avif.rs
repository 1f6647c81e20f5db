//! AVIF output through ravif (rav1e, pure Rust), built without threads or assembly so the same
//! code runs in the component. The output carries no Exif; ravif tags it as sRGB (BT.709
//! primaries, sRGB transfer) in the container.

use image::DynamicImage;
use ravif::{Encoder, Img, RGB8, RGBA8};

use crate::Error;

/// rav1e's speed, 1 (slowest, smallest) to 10. Measured on the six corpus photos at 100x100
/// and q80 (sandboxed): see the README's format table.
pub const SPEED: u8 = 8;

/// Encodes at `quality` (1–100, as ravif's and libavif's scale). Alpha is kept, with its own
/// quality equal to the colour's.
pub fn encode(img: DynamicImage, quality: u8) -> Result<Vec<u8>, Error> {
    let encoder = Encoder::new()
        .with_quality(quality as f32)
        .with_alpha_quality(quality as f32)
        .with_speed(SPEED)
        .with_num_threads(Some(1));
    let (w, h) = (img.width() as usize, img.height() as usize);
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
