//! Neutral images for `on_error=placeholder`, so an `<img>` never breaks. Making one is real
//! work (a 4096x4096 box is 50 MB of pixels and a third of a second to encode) that a client
//! can ask for without creating a job, so it never runs on the async threads: it is encoded on
//! the blocking pool, at most two at a time, and the last few are kept, since pages ask for the
//! same boxes again and again.

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};

use axum::body::Bytes;
use resizer_core::OutputFormat;
use tokio::sync::Semaphore;

use resizer_core::request::Negotiated;

/// Placeholders encoded at once.
static ENCODING: Semaphore = Semaphore::const_new(2);
/// Placeholders kept, newest last.
const KEPT: usize = 16;
static RECENT: LazyLock<Mutex<VecDeque<(Key, Bytes)>>> = LazyLock::new(Mutex::default);

type Key = (u32, u32, OutputFormat);

/// A flat light-grey image of the options' box (square when a side is automatic), in their
/// format.
pub async fn placeholder(options: &Negotiated) -> Result<Bytes, String> {
    let (width, height) = options.request.sizing().shapeless_box();
    let key = (width, height, options.first_format());
    if let Some(found) = recent(&key) {
        return Ok(found);
    }
    let _turn = ENCODING.acquire().await.map_err(|e| e.to_string())?;
    // Another request may have made it while this one waited.
    if let Some(found) = recent(&key) {
        return Ok(found);
    }
    let (width, height, format) = key;
    let encoded = tokio::task::spawn_blocking(move || encode(width, height, format))
        .await
        .map_err(|e| e.to_string())??;
    let mut kept = RECENT.lock().unwrap();
    if kept.len() >= KEPT {
        kept.pop_front();
    }
    kept.push_back((key, encoded.clone()));
    Ok(encoded)
}

fn recent(key: &Key) -> Option<Bytes> {
    let kept = RECENT.lock().unwrap();
    kept.iter().find(|(k, _)| k == key).map(|(_, b)| b.clone())
}

fn encode(width: u32, height: u32, format: OutputFormat) -> Result<Bytes, String> {
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        width,
        height,
        image::Rgb([0xd9, 0xd9, 0xd9]),
    ));
    let format = match format {
        OutputFormat::Png => image::ImageFormat::Png,
        OutputFormat::Jpeg => image::ImageFormat::Jpeg,
        OutputFormat::Webp => image::ImageFormat::WebP,
        OutputFormat::Gif => image::ImageFormat::Gif,
        OutputFormat::Avif => {
            return resizer_core::formats::avif::encode(img, resizer_core::DEFAULT_QUALITY)
                .map(Bytes::from)
                .map_err(|e| e.to_string());
        }
    };
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).map_err(|e| e.to_string())?;
    Ok(Bytes::from(out.into_inner()))
}
