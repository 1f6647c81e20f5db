//! Probe and thumbnail: decode with the pixel limit checked against the header first, resize
//! at the source's own pixel depth, orient the small result, encode.
//!
//! The resize itself is in [`crate::resize`]. It works on the stored sRGB values, as browsers
//! and most thumbnailers do: that keeps downscales of fine bright-on-dark detail a little
//! darker than a linear-light resize would, and costs nothing extra.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};

use crate::formats::{self, jpeg_scaled};
use crate::gravity;
use crate::header::{frame_count, jpeg_truncated, sniff};
use crate::resize::{Anchor, Source, resize};
use crate::{Error, Fit, ImageFormat, ImageInfo, Options, OutputFormat, Thumbnail};

/// Bytes of decoder bookkeeping allowed above the pixel buffer itself.
const DECODER_SLACK_BYTES: u64 = 64 << 20;

/// Reads format, displayed size, alpha, frame count and orientation without decoding pixels.
pub fn probe(data: &[u8]) -> Result<ImageInfo, Error> {
    let format = sniff(data)?;
    if own_decoder_only(format) {
        return own_header(data, format);
    }
    match open(data, format) {
        Ok((_, info)) => Ok(info),
        Err(e) => own_header(data, format).map_err(|_| e),
    }
}

/// Decodes `data`, fits it into the box of `opts` and encodes the result.
pub fn thumbnail(data: &[u8], opts: &Options) -> Result<Thumbnail, Error> {
    opts.validate()?;
    let format = sniff(data)?;
    // The decoders would fill a truncated JPEG's missing blocks with grey and call it done.
    if format == ImageFormat::Jpeg && jpeg_truncated(data) {
        return Err(Error::MalformedImage(
            "the JPEG data ends inside its last scan: the file is truncated".into(),
        ));
    }
    if opts.animated
        && matches!(format, ImageFormat::Gif | ImageFormat::Webp)
        && let Some(animated) = animated_thumbnail(data, opts)?
    {
        return Ok(animated);
    }
    let (source, info) = match shrink_on_load(data, format, opts)? {
        Some(loaded) => loaded,
        None => {
            let (image, info) = decode(data, format, opts.max_pixels)?;
            (Source::whole(image), info)
        }
    };
    let orientation = Orientation::from_exif(info.orientation).unwrap_or(Orientation::NoTransforms);

    // Work out the box in displayed orientation, then resize in stored orientation and turn
    // only the small result.
    let (out_w, out_h) = target_size(info.width, info.height, opts.width, opts.height, opts.fit);
    let (resize_w, resize_h) = if swaps_axes(orientation) {
        (out_h, out_w)
    } else {
        (out_w, out_h)
    };
    let anchor = opts.gravity.focus().map_or(Anchor::Smart, |point| {
        let (x, y) = gravity::to_stored(orientation, point);
        Anchor::Focus(x, y)
    });
    let mut small = resize(source, resize_w, resize_h, opts.fit, anchor)?;
    small.apply_orientation(orientation);
    if let Some(icc) = crate::colour::embedded_profile(data, format) {
        small = crate::colour::to_srgb(small, &icc);
    }

    let data = encode(small, opts)?;
    Ok(Thumbnail {
        data,
        width: out_w,
        height: out_h,
        format: opts.format,
        source: info,
    })
}

/// An animation's thumbnail in the asked format, GIF or WebP (see [`crate::animation`]);
/// `None` for a still image, which is thumbnailed as usual whatever the format. Smart crops
/// are centred here: a crop chosen per frame would jump about.
fn animated_thumbnail(data: &[u8], opts: &Options) -> Result<Option<Thumbnail>, Error> {
    let info = probe(data)?;
    if info.frame_count < 2 {
        return Ok(None);
    }
    // A format that holds one frame is wrong whatever the size, so it is reported first.
    crate::animation::check_format(&info, opts.format)?;
    crate::animation::check_limit(&info, opts.max_pixels)?;
    let (w, h) = target_size(info.width, info.height, opts.width, opts.height, opts.fit);
    let anchor = opts
        .gravity
        .focus()
        .map_or(Anchor::CENTER, |(x, y)| Anchor::Focus(x, y));
    let data = crate::animation::thumbnail(data, &info, (w, h), opts.fit, anchor, opts.format, opts.quality)?;
    Ok(Some(Thumbnail {
        data,
        width: w,
        height: h,
        format: opts.format,
        source: info,
    }))
}

/// A shrink-on-load decode keeps at least this many times the output, as Pillow's `draft`
/// under its reducing gap does, so the resize has real detail to work with.
const SHRINK_ON_LOAD_GAP: u32 = 2;

/// Shrink-on-load: decode no more than the box needs. For JPEG, when the box is much smaller
/// than the photo, decode at 1/2, 1/4 or 1/8 scale in the DCT domain (as libjpeg's scaled IDCT
/// does) instead of decoding every pixel and throwing most away; for ICO, decode the smallest
/// entry that covers the box. `None` when it does not apply (another format, no worthwhile
/// scale, CMYK, or a stream this decoder refuses: the full decoder then decides).
fn shrink_on_load(
    data: &[u8],
    format: ImageFormat,
    opts: &Options,
) -> Result<Option<(Source, ImageInfo)>, Error> {
    match format {
        ImageFormat::Jpeg => jpeg_shrink_on_load(data, opts),
        ImageFormat::Ico => {
            // The icon's info stays that of its largest entry, the one `probe` reports; the
            // entry decoded is the smallest that covers the box.
            let Ok(info) = own_header(data, format) else {
                return Ok(None);
            };
            let need = needed_size(info.width, info.height, &info, opts);
            let entry = formats::ico::decode_for(data, opts.max_pixels, need)?;
            Ok(Some((Source::whole(entry), info)))
        }
        ImageFormat::Bmp => Ok(bmp_shrink_on_load(data, opts)),
        ImageFormat::Webp => webp_load(data, opts),
        _ => Ok(None),
    }
}

/// A bitmap reduced by the resize's own block average as its rows are read: the same result
/// as decoding it whole and pre-shrinking, without the full-size image.
fn bmp_shrink_on_load(data: &[u8], opts: &Options) -> Option<(Source, ImageInfo)> {
    let info = own_header(data, ImageFormat::Bmp).ok()?;
    let (w, h) = (info.width, info.height);
    let (out_w, out_h) = target_size(w, h, opts.width, opts.height, opts.fit);
    let extent = (w as f64, h as f64);
    let (kx, ky) = crate::resize::blocks(extent, out_w, out_h, opts.fit);
    if (kx, ky) == (1, 1) {
        return None;
    }
    let image = formats::bmp::decode_reduced(data, opts.max_pixels, kx, ky)?;
    let extent = (extent.0 / kx as f64, extent.1 / ky as f64);
    Some((Source { image, extent }, info))
}

/// A still WebP through libwebp, which averages the resize's blocks as it decodes when the
/// box is much smaller. `None` for animations and for files libwebp refuses: the `image`
/// crate then takes the first frame, or gives its own account of what is wrong.
fn webp_load(data: &[u8], opts: &Options) -> Result<Option<(Source, ImageInfo)>, Error> {
    let Some(features) = formats::webp::features(data).filter(|f| !f.animated) else {
        return Ok(None);
    };
    let (w, h) = (features.width, features.height);
    let orientation = formats::webp::orientation(data).unwrap_or(Orientation::NoTransforms);
    let swap = swaps_axes(orientation);
    let info = ImageInfo {
        format: ImageFormat::Webp,
        width: if swap { h } else { w },
        height: if swap { w } else { h },
        has_alpha: features.has_alpha,
        frame_count: frame_count(ImageFormat::Webp, data),
        orientation: orientation.to_exif(),
    };
    check_pixel_limit(w, h, &info, opts.max_pixels)?;
    let (out_w, out_h) = target_size(info.width, info.height, opts.width, opts.height, opts.fit);
    let (rw, rh) = if swap { (out_h, out_w) } else { (out_w, out_h) };
    let (kx, ky) = crate::resize::blocks((w as f64, h as f64), rw, rh, opts.fit);
    if (kx, ky) == (1, 1) {
        return Ok(formats::webp::decode(data, features, None)
            .ok()
            .map(|image| (Source::whole(image), info)));
    }
    match formats::webp::decode_reduced(data, features, kx, ky) {
        Ok(Some(image)) => {
            let extent = (w as f64 / kx as f64, h as f64 / ky as f64);
            return Ok(Some((Source { image, extent }, info)));
        }
        Ok(None) => {}
        Err(_) => return Ok(None),
    }
    let size = Some(((w / kx).max(1), (h / ky).max(1)));
    Ok(formats::webp::decode(data, features, size)
        .ok()
        .map(|image| (Source::whole(image), info)))
}

/// Refuses a `w` x `h` decode over the limit, reporting the image's own (displayed) size.
fn check_pixel_limit(w: u32, h: u32, info: &ImageInfo, max_pixels: u64) -> Result<(), Error> {
    formats::check_pixels(w, h, max_pixels).map_err(|e| match e {
        Error::TooLarge { max_pixels, .. } => Error::TooLarge {
            width: info.width,
            height: info.height,
            max_pixels,
        },
        other => other,
    })
}

/// The size, in stored orientation, that a decode of a `w` x `h` image must at least have
/// for the resize to the box of `opts`.
fn needed_size(w: u32, h: u32, info: &ImageInfo, opts: &Options) -> (u32, u32) {
    let orientation = Orientation::from_exif(info.orientation).unwrap_or(Orientation::NoTransforms);
    let (out_w, out_h) = target_size(info.width, info.height, opts.width, opts.height, opts.fit);
    let (rw, rh) = if swaps_axes(orientation) {
        (out_h, out_w)
    } else {
        (out_w, out_h)
    };
    match opts.fit {
        // Cover keeps a centre crop: the scale is set by the side that is cropped least.
        Fit::Cover => {
            let s = (rw as f64 / w as f64).max(rh as f64 / h as f64);
            ((w as f64 * s).ceil() as u32, (h as f64 * s).ceil() as u32)
        }
        Fit::Contain | Fit::Fill => (rw, rh),
    }
}

fn jpeg_shrink_on_load(data: &[u8], opts: &Options) -> Result<Option<(Source, ImageInfo)>, Error> {
    let Ok((decoder, info)) = open(data, ImageFormat::Jpeg) else {
        return Ok(None);
    };
    let (w, h) = decoder.dimensions();
    drop(decoder);
    check_pixel_limit(w, h, &info, opts.max_pixels)?;
    let (need_w, need_h) = needed_size(w, h, &info, opts);
    let scaled = |len: u32, k: u32| (len * k).div_ceil(8);
    let Some(k) = [1u32, 2, 4].into_iter().find(|&k| {
        scaled(w, k) >= SHRINK_ON_LOAD_GAP * need_w && scaled(h, k) >= SHRINK_ON_LOAD_GAP * need_h
    }) else {
        return Ok(None);
    };
    // A scaled decode has ceil(w * k / 8) columns, but the picture ends at w * k / 8.
    let extent = (w as f64 * k as f64 / 8.0, h as f64 * k as f64 / 8.0);
    // Our own scaled decoder first: it is libjpeg's arithmetic, skips what the scale does not
    // need, and gives subsampled chroma its own larger IDCT where jpeg-decoder upsamples it.
    let scale = match k {
        1 => Some(jpeg_scaled::Scale::Eighth),
        2 => Some(jpeg_scaled::Scale::Quarter),
        _ => None,
    };
    if let Some(img) = scale.and_then(|scale| jpeg_scaled::decode(data, scale)) {
        let image = match img.channels {
            1 => image::GrayImage::from_raw(img.width, img.height, img.pixels).map(DynamicImage::ImageLuma8),
            _ => image::RgbImage::from_raw(img.width, img.height, img.pixels).map(DynamicImage::ImageRgb8),
        };
        if let Some(image) = image {
            return Ok(Some((Source { image, extent }, info)));
        }
    }
    let (Ok(sw), Ok(sh)) = (u16::try_from(scaled(w, k)), u16::try_from(scaled(h, k))) else {
        return Ok(None);
    };
    let mut jpeg = jpeg_decoder::Decoder::new(data);
    if jpeg.scale(sw, sh).is_err() {
        return Ok(None);
    }
    let Ok(pixels) = jpeg.decode() else {
        return Ok(None);
    };
    let Some(meta) = jpeg.info() else { return Ok(None) };
    let (dw, dh) = (meta.width as u32, meta.height as u32);
    let image = match meta.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(dw, dh, pixels).map(DynamicImage::ImageLuma8)
        }
        jpeg_decoder::PixelFormat::RGB24 => {
            image::RgbImage::from_raw(dw, dh, pixels).map(DynamicImage::ImageRgb8)
        }
        jpeg_decoder::PixelFormat::L16 | jpeg_decoder::PixelFormat::CMYK32 => None,
    };
    Ok(image.map(|image| (Source { image, extent }, info)))
}

/// Decodes the whole (first) image, checking the pixel limit against the header first. The
/// `image` crate goes first; our own decoders in [`formats`] take what it refuses.
fn decode(data: &[u8], format: ImageFormat, max_pixels: u64) -> Result<(DynamicImage, ImageInfo), Error> {
    if own_decoder_only(format) {
        let info = own_header(data, format)?;
        return Ok((fallback_decode(data, format, max_pixels)?, info));
    }
    let (mut decoder, info) = match open(data, format) {
        Ok(opened) => opened,
        Err(e) => {
            let info = own_header(data, format).map_err(|_| e)?;
            return Ok((fallback_decode(data, format, max_pixels)?, info));
        }
    };
    let (w, h) = decoder.dimensions();
    check_pixel_limit(w, h, &info, max_pixels)?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(
        (w as u64 * h as u64)
            .saturating_mul(crate::BYTES_PER_PIXEL_BUDGET)
            .saturating_add(DECODER_SLACK_BYTES),
    );
    decoder
        .set_limits(limits)
        .map_err(|e| map_decode_error(e, &info, max_pixels))?;
    match DynamicImage::from_decoder(decoder) {
        Ok(img) => Ok((img, info)),
        Err(e @ ImageError::Limits(_)) => Err(map_decode_error(e, &info, max_pixels)),
        Err(e) => match fallback_decode(data, format, max_pixels) {
            Ok(img) if (img.width(), img.height()) == (w, h) => Ok((img, info)),
            _ => Err(map_decode_error(e, &info, max_pixels)),
        },
    }
}

/// GIF and ICO always go through our own decoders: they choose the canvas (GIF) and the
/// entry (ICO) as Pillow and browsers do, where the `image` crate would pick another size.
fn own_decoder_only(format: ImageFormat) -> bool {
    matches!(format, ImageFormat::Gif | ImageFormat::Ico)
}

/// Header facts from our own decoders, for the formats that have one.
fn own_header(data: &[u8], format: ImageFormat) -> Result<ImageInfo, Error> {
    let header = match format {
        ImageFormat::Bmp => formats::bmp::dimensions(data)?,
        ImageFormat::Ico => formats::ico::dimensions(data)?,
        ImageFormat::Tiff => formats::tiff::dimensions(data)?,
        ImageFormat::Gif => formats::gif::dimensions(data)?,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Webp => {
            return Err(Error::Internal(format!("no own decoder for {}", format.name())));
        }
    };
    Ok(ImageInfo {
        format,
        width: header.width,
        height: header.height,
        has_alpha: header.has_alpha,
        frame_count: frame_count(format, data),
        orientation: 1,
    })
}

fn fallback_decode(data: &[u8], format: ImageFormat, max_pixels: u64) -> Result<DynamicImage, Error> {
    match format {
        ImageFormat::Bmp => formats::bmp::decode(data, max_pixels),
        ImageFormat::Ico => formats::ico::decode(data, max_pixels),
        ImageFormat::Tiff => formats::tiff::decode(data, max_pixels),
        ImageFormat::Gif => formats::gif::decode(data, max_pixels),
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Webp => {
            Err(Error::Internal("no fallback decoder".into()))
        }
    }
}

/// Size of the output image for a source of `w`x`h` (displayed) and a box of `bw`x`bh`.
pub fn target_size(w: u32, h: u32, bw: u32, bh: u32, fit: Fit) -> (u32, u32) {
    match fit {
        Fit::Cover | Fit::Fill => (bw, bh),
        Fit::Contain if w == 0 || h == 0 => (bw, bh),
        Fit::Contain => {
            let (w, h, bw, bh) = (w as u64, h as u64, bw as u64, bh as u64);
            // Compare aspect ratios exactly; scale the other side with rounding to nearest.
            if w * bh >= h * bw {
                (bw as u32, rounded_div(h * bw, w).clamp(1, bh) as u32)
            } else {
                (rounded_div(w * bh, h).clamp(1, bw) as u32, bh as u32)
            }
        }
    }
}

fn rounded_div(a: u64, b: u64) -> u64 {
    (2 * a + b) / (2 * b)
}

fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Opens an `image` decoder on the header and gathers [`ImageInfo`]; nothing large is
/// allocated yet.
fn open(data: &[u8], format: ImageFormat) -> Result<(impl ImageDecoder + '_, ImageInfo), Error> {
    let image_format = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Bmp => image::ImageFormat::Bmp,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::Ico => image::ImageFormat::Ico,
    };
    let mut reader = ImageReader::with_format(Cursor::new(data), image_format);
    // Header parsing alone must stay small whatever the header claims.
    let mut header_limits = Limits::default();
    header_limits.max_alloc = Some(DECODER_SLACK_BYTES);
    reader.limits(header_limits);
    let unknown = ImageInfo {
        format,
        width: 0,
        height: 0,
        has_alpha: false,
        frame_count: 1,
        orientation: 1,
    };
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        ImageError::Limits(_) => Error::MalformedImage(format!(
            "{} image: the header's metadata needs more memory than a header may",
            format.name()
        )),
        other => map_decode_error(other, &unknown, 0),
    })?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::MalformedImage(format!(
            "the header gives a size of {w}x{h}"
        )));
    }
    // A broken EXIF block is not worth refusing the image for: show it as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (width, height) = if swaps_axes(orientation) { (h, w) } else { (w, h) };
    let info = ImageInfo {
        format,
        width,
        height,
        has_alpha: decoder.color_type().has_alpha(),
        frame_count: frame_count(format, data),
        orientation: orientation.to_exif(),
    };
    Ok((decoder, info))
}

fn map_decode_error(e: ImageError, info: &ImageInfo, max_pixels: u64) -> Error {
    match e {
        ImageError::Unsupported(u) => Error::UnsupportedFormat(format!("{} image: {u}", info.format.name())),
        ImageError::Limits(_) => Error::TooLarge {
            width: info.width,
            height: info.height,
            max_pixels,
        },
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::MalformedImage(format!("{} image is truncated", info.format.name()))
        }
        other => Error::MalformedImage(format!(
            "{} image: {}",
            info.format.name(),
            other.to_string().trim_end()
        )),
    }
}

/// Encodes the resized image; JPEG has no alpha, so transparent pixels are laid on white.
fn encode(img: DynamicImage, opts: &Options) -> Result<Vec<u8>, Error> {
    let has_alpha = img.color().has_alpha();
    let grey = !img.color().has_color();
    let img = match (opts.format, has_alpha, grey) {
        (OutputFormat::Jpeg, true, _) => flatten_on_white(img.into_rgba8()),
        (OutputFormat::Jpeg, false, true) => DynamicImage::ImageLuma8(img.into_luma8()),
        (_, true, true) => DynamicImage::ImageLumaA8(img.into_luma_alpha8()),
        (_, true, false) => DynamicImage::ImageRgba8(img.into_rgba8()),
        (_, false, true) => DynamicImage::ImageLuma8(img.into_luma8()),
        (_, false, false) => DynamicImage::ImageRgb8(img.into_rgb8()),
    };
    let mut out = Vec::new();
    let result = match opts.format {
        OutputFormat::Png => img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out)),
        OutputFormat::Jpeg => img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out,
            opts.quality,
        )),
        OutputFormat::Webp => return formats::webp::encode_lossy(img, opts.quality),
        OutputFormat::Avif => return formats::avif::encode(img, opts.quality),
        OutputFormat::Gif => img.write_with_encoder(image::codecs::gif::GifEncoder::new(&mut out)),
    };
    result.map_err(|e| Error::Internal(format!("encoding {} failed: {e}", opts.format.name())))?;
    if opts.format == OutputFormat::Png {
        out = crate::colour::tag_png_srgb(out);
    }
    Ok(out)
}

fn flatten_on_white(rgba: image::RgbaImage) -> DynamicImage {
    let (w, h) = rgba.dimensions();
    let mut rgb = image::RgbImage::new(w, h);
    for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = src[3] as u32;
        for c in 0..3 {
            dst[c] = ((src[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    DynamicImage::ImageRgb8(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(img: DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
            .unwrap();
        out
    }

    #[test]
    fn contain_keeps_aspect_and_long_side() {
        assert_eq!(target_size(4000, 2667, 100, 100, Fit::Contain), (100, 67));
        assert_eq!(target_size(800, 1200, 100, 100, Fit::Contain), (67, 100));
        assert_eq!(target_size(32, 32, 100, 100, Fit::Contain), (100, 100));
        assert_eq!(target_size(10_000, 1, 100, 100, Fit::Contain), (100, 1));
        assert_eq!(target_size(3, 1, 100, 50, Fit::Contain), (100, 33));
        assert_eq!(target_size(4000, 2667, 100, 50, Fit::Cover), (100, 50));
        assert_eq!(target_size(4000, 2667, 30, 50, Fit::Fill), (30, 50));
    }

    #[test]
    fn thumbnails_in_every_output_format() {
        let src = png_bytes(DynamicImage::ImageRgb8(image::RgbImage::from_fn(
            300,
            200,
            |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]),
        )));
        for format in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
            let t = thumbnail(
                &src,
                &Options {
                    format,
                    ..Options::default()
                },
            )
            .unwrap();
            assert_eq!((t.width, t.height), (100, 67));
            let back = image::load_from_memory(&t.data).unwrap();
            assert_eq!((back.width(), back.height()), (100, 67), "{format:?}");
            assert_eq!(
                image::guess_format(&t.data).unwrap().to_mime_type(),
                format.mime_type()
            );
        }
    }

    #[test]
    fn cover_fills_the_box() {
        let src = png_bytes(DynamicImage::ImageRgb8(image::RgbImage::new(400, 100)));
        let t = thumbnail(
            &src,
            &Options {
                fit: Fit::Cover,
                width: 50,
                height: 50,
                ..Options::default()
            },
        )
        .unwrap();
        let back = image::load_from_memory(&t.data).unwrap();
        assert_eq!((back.width(), back.height()), (50, 50));
    }

    #[test]
    fn transparent_edges_have_no_dark_fringe() {
        // An opaque white disc on fully transparent *black*: a resize that ignores alpha drags
        // the black into the disc's edge.
        let src = image::RgbaImage::from_fn(400, 400, |x, y| {
            let (dx, dy) = (x as i32 - 200, y as i32 - 200);
            if dx * dx + dy * dy < 150 * 150 {
                image::Rgba([255, 255, 255, 255])
            } else {
                image::Rgba([0, 0, 0, 0])
            }
        });
        let t = thumbnail(&png_bytes(DynamicImage::ImageRgba8(src)), &Options::default()).unwrap();
        let out = image::load_from_memory(&t.data).unwrap().into_rgba8();
        for p in out.pixels().filter(|p| p[3] > 16) {
            assert!(p[0] > 240, "dark fringe pixel {p:?}");
        }
        // JPEG output flattens onto white, so the transparent corners come out white.
        let t = thumbnail(
            &png_bytes(DynamicImage::ImageRgba8(image::RgbaImage::new(50, 50))),
            &Options {
                format: OutputFormat::Jpeg,
                ..Options::default()
            },
        )
        .unwrap();
        let out = image::load_from_memory(&t.data).unwrap().into_rgb8();
        assert!(out.get_pixel(0, 0)[0] > 245);
    }

    #[test]
    fn pixel_limit_is_checked_from_the_header() {
        let src = png_bytes(DynamicImage::ImageLuma8(image::GrayImage::new(300, 300)));
        let err = thumbnail(
            &src,
            &Options {
                max_pixels: 300 * 299,
                ..Options::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::TooLarge {
                width: 300,
                height: 300,
                max_pixels: 300 * 299
            }
        );
    }

    #[test]
    fn a_truncated_jpeg_is_malformed_not_grey() {
        // Sequential and progressive files cut inside their scans; the whole files decode.
        for name in ["restart.jpg", "progressive-restart.jpg", "gray.jpg"] {
            let data =
                std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            assert!(thumbnail(&data, &Options::default()).is_ok(), "{name}");
            for keep in [data.len() / 3, data.len() * 2 / 3, data.len() - 2] {
                let err = thumbnail(&data[..keep], &Options::default()).unwrap_err();
                assert!(
                    matches!(&err, Error::MalformedImage(m) if m.contains("truncated")),
                    "{name} cut to {keep} bytes: {err:?}"
                );
            }
            // Bytes after the end of the image are tolerated, as browsers do.
            let mut trailing = data.clone();
            trailing.extend_from_slice(b"trailing bytes");
            assert!(thumbnail(&trailing, &Options::default()).is_ok(), "{name}");
        }
    }

    #[test]
    fn bad_options_and_bad_bytes_are_typed_errors() {
        let src = png_bytes(DynamicImage::ImageLuma8(image::GrayImage::new(10, 10)));
        for bad in [
            Options {
                width: 0,
                ..Options::default()
            },
            Options {
                height: 5000,
                ..Options::default()
            },
            Options {
                quality: 0,
                ..Options::default()
            },
        ] {
            assert!(
                matches!(thumbnail(&src, &bad), Err(Error::InvalidOptions(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            thumbnail(&src[..src.len() / 2], &Options::default()),
            Err(Error::MalformedImage(_))
        ));
        assert!(matches!(
            thumbnail(b"", &Options::default()),
            Err(Error::UnsupportedFormat(_))
        ));
        assert!(matches!(probe(&[0x42; 64]), Err(Error::UnsupportedFormat(_))));
    }
}
