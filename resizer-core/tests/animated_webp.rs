//! `animated=true` honours the output format: WebP gives an animated WebP (libwebp's animation
//! encoder) with the source's frames, timing and alpha, smaller than the animated GIF that
//! format GIF still gives; PNG, JPEG and AVIF, which hold one frame, are refused for an
//! animation with what to ask instead; a still source stays a still.
//!
//! The corpus files are read in place from ../shared/corpus beside the repository, or
//! `EDGETHUMB_CORPUS`.

use std::io::Cursor;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, Delay, DynamicImage, Frame, Rgba, RgbaImage};
use resizer_core::resize::{Anchor, Source, resize};
use resizer_core::{Error, Fit, Options, OutputFormat, thumbnail};

fn corpus(name: &str) -> Vec<u8> {
    let root = std::env::var("EDGETHUMB_CORPUS")
        .unwrap_or_else(|_| format!("{}/../../shared/corpus", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{root}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Delays of the synthetic animation's frames, in ms: whole 10 ms units, as GIF stores them.
const SYNTHETIC_DELAYS_MS: [u32; 3] = [30, 70, 120];

/// 12 frames of 64x48: a gradient with a square that moves across it and a transparent
/// corner, each frame shown 30, 70 or 120 ms in turn.
fn synthetic_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
        encoder.set_repeat(Repeat::Infinite).unwrap();
        for i in 0..12u32 {
            let frame = RgbaImage::from_fn(64, 48, |x, y| {
                if x < 16 && y < 12 {
                    Rgba([0, 0, 0, 0])
                } else if (4 * i..4 * i + 12).contains(&x) && (18..30).contains(&y) {
                    Rgba([250, 240, 20, 255])
                } else {
                    Rgba([(x * 4) as u8, (y * 5) as u8, (120 + 10 * i) as u8, 255])
                }
            });
            let delay = SYNTHETIC_DELAYS_MS[i as usize % 3];
            encoder
                .encode_frame(Frame::from_parts(
                    frame,
                    0,
                    0,
                    Delay::from_numer_denom_ms(delay, 1),
                ))
                .unwrap();
        }
    }
    out
}

fn delay_ms(frame: &Frame) -> u32 {
    let (numer, denom) = frame.delay().numer_denom_ms();
    (numer + denom / 2) / denom
}

/// The frames as the `image` crate's decoders composite them.
fn frames(data: &[u8]) -> Vec<Frame> {
    let frames = if data.starts_with(b"GIF") {
        GifDecoder::new(Cursor::new(data)).unwrap().into_frames()
    } else {
        let mut decoder = WebPDecoder::new(Cursor::new(data)).unwrap();
        // Without a colour, image-webp leaves frames disposed to the background on the
        // canvas; browsers and libwebp clear them to transparent. (It still gets some files
        // wrong: pixels are judged on libwebp's decode.)
        decoder.set_background_color(Rgba([0, 0, 0, 0])).unwrap();
        decoder.into_frames()
    };
    frames.collect_frames().unwrap()
}

/// The frames of an animated WebP as libwebp's own decoder (Chrome's, and the one the
/// pipeline uses for WebP sources) composites them, with their delays in ms.
fn libwebp_frames(data: &[u8]) -> Vec<(RgbaImage, u32)> {
    use libwebp_sys as sys;
    let webp = sys::WebPData {
        bytes: data.as_ptr(),
        size: data.len(),
    };
    let mut frames = Vec::new();
    // SAFETY: `data` outlives the decoder, which is deleted before returning; each frame's
    // buffer is libwebp's, `width * height * 4` bytes, valid until the next call, and copied.
    unsafe {
        let mut options = std::mem::zeroed();
        assert_ne!(sys::WebPAnimDecoderOptionsInit(&mut options), 0);
        options.color_mode = sys::WEBP_CSP_MODE::MODE_RGBA;
        let decoder = sys::WebPAnimDecoderNew(&webp, &options);
        assert!(!decoder.is_null());
        let mut info = sys::WebPAnimInfo::default();
        assert_ne!(sys::WebPAnimDecoderGetInfo(decoder, &mut info), 0);
        let len = info.canvas_width as usize * info.canvas_height as usize * 4;
        let mut previous_end = 0;
        while sys::WebPAnimDecoderHasMoreFrames(decoder) != 0 {
            let (mut buffer, mut end) = (std::ptr::null_mut(), 0);
            assert_ne!(sys::WebPAnimDecoderGetNext(decoder, &mut buffer, &mut end), 0);
            let pixels = std::slice::from_raw_parts(buffer, len).to_vec();
            let image = RgbaImage::from_raw(info.canvas_width, info.canvas_height, pixels).unwrap();
            frames.push((image, (end - previous_end) as u32));
            previous_end = end;
        }
        sys::WebPAnimDecoderDelete(decoder);
    }
    frames
}

/// The source's frames as the pipeline composites them: GIFs by the `image` crate, WebPs by
/// libwebp.
fn source_frames(data: &[u8]) -> Vec<(RgbaImage, u32)> {
    if data.starts_with(b"GIF") {
        frames(data)
            .into_iter()
            .map(|f| (f.buffer().clone(), delay_ms(&f)))
            .collect()
    } else {
        libwebp_frames(data)
    }
}

fn options(size: u32, format: OutputFormat) -> Options {
    Options {
        width: size,
        height: size,
        format,
        animated: true,
        ..Options::default()
    }
}

/// Mean difference of colour where the reference is opaque, and largest difference of alpha.
fn difference(ours: &RgbaImage, reference: &RgbaImage) -> (f64, u8) {
    let (mut sum, mut n, mut alpha) = (0u64, 0u64, 0u8);
    for (a, b) in ours.pixels().zip(reference.pixels()) {
        alpha = alpha.max(a[3].abs_diff(b[3]));
        if b[3] == 255 {
            sum += (0..3).map(|c| a[c].abs_diff(b[c]) as u64).sum::<u64>();
            n += 3;
        }
    }
    (sum as f64 / n.max(1) as f64, alpha)
}

/// Thumbnails `source` at `size` as an animated WebP and as an animated GIF, checks that the
/// WebP has the source's frames, delays and size and looks like them (its colour within
/// `max_colour` on average where opaque, when given), and returns both files' lengths.
fn check_animated_webp(name: &str, source: &[u8], size: u32, max_colour: Option<f64>) -> (usize, usize) {
    let webp = thumbnail(source, &options(size, OutputFormat::Webp)).unwrap();
    let gif = thumbnail(source, &options(size, OutputFormat::Gif)).unwrap();
    assert_eq!(webp.format, OutputFormat::Webp, "{name}");
    assert_eq!(gif.format, OutputFormat::Gif, "{name}");
    assert!(gif.data.starts_with(b"GIF89a"), "{name}: not a GIF");
    assert!(
        webp.data.starts_with(b"RIFF") && &webp.data[8..16] == b"WEBPVP8X",
        "{name}: not an extended WebP"
    );
    assert!(
        webp.data.windows(4).any(|c| c == b"ANIM"),
        "{name}: no ANIM chunk"
    );
    let (w, h) =
        resizer_core::pipeline::target_size(webp.source.width, webp.source.height, size, size, Fit::Contain);
    assert_eq!((webp.width, webp.height), (w, h), "{name}");

    // Frame count, delays and size as the `image` crate reads the file; pixels as libwebp
    // (browsers) show them, since image-webp 0.2 mis-composites some valid files (an opaque
    // frame after one disposed to the background: see formats::webp::AnimDecoder).
    let sources = source_frames(source);
    let ours = frames(&webp.data);
    assert_eq!(ours.len(), sources.len(), "{name}: frame count");
    assert_eq!(frames(&gif.data).len(), sources.len(), "{name}: GIF frame count");
    let shown = libwebp_frames(&webp.data);
    assert_eq!(shown.len(), sources.len(), "{name}: frame count in libwebp");
    for (i, ((ours, (shown, shown_ms)), (source, source_ms))) in
        ours.iter().zip(&shown).zip(&sources).enumerate()
    {
        assert_eq!(delay_ms(ours), *source_ms, "{name}: frame {i}'s delay");
        assert_eq!(*shown_ms, *source_ms, "{name}: frame {i}'s delay in libwebp");
        assert_eq!(ours.buffer().dimensions(), (w, h), "{name}: frame {i}'s size");
        let canvas = DynamicImage::ImageRgba8(source.clone());
        let reference = resize(Source::whole(canvas), w, h, Fit::Contain, Anchor::CENTER)
            .unwrap()
            .into_rgba8();
        let (colour, alpha) = difference(shown, &reference);
        assert!(
            colour < max_colour.unwrap_or(f64::INFINITY) && alpha <= 8,
            "{name}: frame {i} differs by {colour:.2} on average in colour, up to {alpha} in alpha"
        );
    }
    println!(
        "{name} at {w}x{h}, {} frames: gif {} bytes, webp {} bytes",
        sources.len(),
        gif.data.len(),
        webp.data.len()
    );
    (gif.data.len(), webp.data.len())
}

#[test]
fn a_synthetic_animation_keeps_its_frames_timing_and_alpha_and_is_smaller_than_gif() {
    let source = synthetic_gif();
    let delays: Vec<u32> = frames(&source).iter().map(delay_ms).collect();
    assert_eq!(delays.len(), 12);
    assert_eq!(&delays[..3], SYNTHETIC_DELAYS_MS, "the source GIF's own delays");

    let (gif, webp) = check_animated_webp("synthetic 64x48", &source, 48, Some(8.0));
    assert!(webp < gif, "webp {webp} bytes, gif {gif} bytes");

    // The transparent corner stays transparent and the rest opaque (48x36: the corner is
    // the top-left 12x9).
    let thumb = thumbnail(&source, &options(48, OutputFormat::Webp)).unwrap();
    for frame in frames(&thumb.data) {
        let buffer = frame.buffer();
        assert_eq!(buffer.get_pixel(4, 3)[3], 0);
        assert_eq!(buffer.get_pixel(40, 30)[3], 255);
    }
}

/// Every animation in the corpus: GIFs with each kind of disposal, with frames smaller than
/// the screen, 1000x1000 ones made of small patches, and an animated WebP. One,
/// `border_touching_layers.gif`, is pixel art of pure red, green, blue and magenta side by
/// side, which lossy WebP's half-resolution colour turns muddy (a still WebP thumbnail of it
/// does too): its colour is not compared, and its GIF is the smaller file, so its size is only
/// printed.
#[test]
fn corpus_animations_keep_their_frames_and_timing() {
    let mut smaller = 0;
    for (name, pixel_art) in [
        ("formats/gif/anim/any-disposal.gif", false),
        ("formats/gif/anim/mixed-disposal.gif", false),
        ("formats/gif/anim/large-gif-anim-combine.gif", false),
        ("formats/gif/anim/large-gif-anim-full-frame-replace.gif", false),
        ("formats/webp/extended_images/anim.webp", false),
        ("formats/gif/anim/border_touching_layers.gif", true),
        ("formats/gif/anim/issue_1455_undersized.gif", false),
    ] {
        let max_colour = (!pixel_art).then_some(8.0);
        let (gif, webp) = check_animated_webp(name, &corpus(name), 100, max_colour);
        if !pixel_art {
            assert!(webp < gif, "{name}: webp {webp} bytes, gif {gif} bytes");
            smaller += 1;
        }
    }
    assert_eq!(smaller, 6);
}

/// libwebp's encoder disposes frames to the background where that is smaller (as it does for
/// this GIF's thumbnail), which the `image` crate's WebP decoder would get wrong; such a WebP
/// as a source still gives the GIF's frames.
#[test]
fn a_webp_source_with_disposed_frames_is_composited_as_browsers_do() {
    let gif = corpus("formats/gif/anim/mixed-disposal.gif");
    let webp = thumbnail(&gif, &options(100, OutputFormat::Webp)).unwrap().data;
    let again = thumbnail(&webp, &options(100, OutputFormat::Webp)).unwrap().data;
    let shown = libwebp_frames(&again);
    let sources = source_frames(&gif);
    assert_eq!(shown.len(), sources.len());
    for (i, ((shown, _), (source, _))) in shown.iter().zip(&sources).enumerate() {
        let canvas = DynamicImage::ImageRgba8(source.clone());
        let reference = resize(Source::whole(canvas), 100, 100, Fit::Contain, Anchor::CENTER)
            .unwrap()
            .into_rgba8();
        let (colour, alpha) = difference(shown, &reference);
        assert!(
            colour < 8.0 && alpha <= 8,
            "frame {i} differs by {colour:.2} on average in colour, up to {alpha} in alpha"
        );
    }
    check_animated_webp("mixed-disposal.gif's animated WebP", &webp, 100, Some(8.0));
}

/// A WebP whose canvas is partly transparent says so in its header, though frames that leave
/// it uncovered carry no alpha data themselves: decoders that go by the header (image-webp)
/// would show those parts black.
#[test]
fn transparency_is_flagged_in_the_header() {
    let source = corpus("formats/gif/anim/issue_1455_undersized.gif");
    let webp = thumbnail(&source, &options(100, OutputFormat::Webp))
        .unwrap()
        .data;
    assert_eq!(&webp[12..16], b"VP8X");
    assert_ne!(webp[20] & 0x10, 0, "no alpha flag");
    let first = frames(&webp).swap_remove(0).into_buffer();
    let shown = &libwebp_frames(&webp)[0].0;
    assert_eq!(difference(&first, shown).1, 0);
    assert!(first.pixels().any(|p| p[3] == 0));
}

#[test]
fn quality_is_followed() {
    let source = synthetic_gif();
    let size = |quality| {
        let opts = Options {
            quality,
            ..options(48, OutputFormat::Webp)
        };
        thumbnail(&source, &opts).unwrap().data.len()
    };
    let (low, high) = (size(30), size(90));
    assert!(low < high, "q30 {low} bytes, q90 {high} bytes");
}

#[test]
fn single_frame_formats_are_refused_for_an_animation() {
    for (source, kind) in [
        (synthetic_gif(), "gif"),
        (corpus("formats/webp/extended_images/anim.webp"), "webp"),
    ] {
        for format in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Avif] {
            let name = format.name();
            match thumbnail(&source, &options(48, format)) {
                Err(Error::InvalidOptions(detail)) => {
                    assert!(detail.contains(name), "{kind} to {name}: {detail}");
                    assert!(
                        detail.contains("format=gif") && detail.contains("format=webp"),
                        "{kind} to {name}: {detail}"
                    );
                    assert!(detail.contains("animated=false"), "{kind} to {name}: {detail}");
                }
                other => panic!("{kind} to {name}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_still_source_stays_a_still_in_the_asked_format() {
    let mut png = Vec::new();
    DynamicImage::ImageRgb8(image::RgbImage::from_fn(80, 40, |x, y| {
        image::Rgb([x as u8 * 3, y as u8 * 6, 90])
    }))
    .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    let thumb = thumbnail(&png, &options(40, OutputFormat::Png)).unwrap();
    assert_eq!(thumb.format, OutputFormat::Png);
    assert_eq!((thumb.width, thumb.height), (40, 20));
    let decoded = image::load_from_memory_with_format(&thumb.data, image::ImageFormat::Png).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (40, 20));

    // A GIF of one frame is a still too, whatever animated says.
    let one_frame = corpus("formats/gif/anim/interlaced.gif");
    assert_eq!(resizer_core::probe(&one_frame).unwrap().frame_count, 1);
    let thumb = thumbnail(&one_frame, &options(40, OutputFormat::Png)).unwrap();
    assert_eq!(thumb.format, OutputFormat::Png);
    assert!(image::load_from_memory_with_format(&thumb.data, image::ImageFormat::Png).is_ok());
}

/// Cut-short and bit-flipped animations give a thumbnail or an error: no panic. (Run under
/// valgrind, these tests leave no libwebp object behind on any path.)
#[test]
fn damaged_animations_are_errors_not_crashes() {
    let synthetic = synthetic_gif();
    let ours = thumbnail(&synthetic, &options(48, OutputFormat::Webp))
        .unwrap()
        .data;
    let mut failures = 0;
    for data in [synthetic, ours, corpus("formats/webp/extended_images/anim.webp")] {
        let mut damaged = Vec::new();
        for cut in [data.len() / 3, data.len() / 2, data.len() - 1] {
            damaged.push(data[..cut].to_vec());
        }
        for step in [37, 97, 211] {
            let mut flipped = data.clone();
            for i in (40..flipped.len()).step_by(step) {
                flipped[i] ^= 0x5a;
            }
            damaged.push(flipped);
        }
        for bytes in damaged {
            for format in [OutputFormat::Webp, OutputFormat::Gif] {
                if thumbnail(&bytes, &options(48, format)).is_err() {
                    failures += 1;
                }
            }
        }
    }
    assert!(failures > 0, "no damaged file was refused");
}
