//! Still WebP through libwebp's own decoder (libwebp-sys, which builds libwebp's vendored C;
//! the component gets it from clang for wasm32). image-webp, the `image` crate's decoder, took
//! 3x libwebp's time on lossy photos with no single hotspot to fix (its loop filter, arithmetic
//! decoding, IDCT and upsampling each cost 7–35%), so we use the reference decoder itself.
//!
//! libwebp can also rescale as it decodes (an exact area average, row by row), which is the
//! shrink-on-load for WebP: the full-size picture is never made. Animations, which the simple API
//! refuses, go through libwebp's animation decoder and encoder ([`AnimDecoder`],
//! [`AnimEncoder`]) for `animated=true`; otherwise the `image` crate takes their first frame.

use crate::Error;
use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};
use libwebp_sys as sys;

/// What libwebp reads from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    pub animated: bool,
    /// VP8 (lossy) data, which libwebp can hand over as Y, U and V planes.
    pub lossy: bool,
}

/// The bitstream's features, or `None` when libwebp cannot parse even the header.
pub fn features(data: &[u8]) -> Option<Features> {
    let mut f = std::mem::MaybeUninit::<sys::WebPBitstreamFeatures>::zeroed();
    // SAFETY: libwebp reads at most `data.len()` bytes and fills `f` on success.
    let status = unsafe { sys::WebPGetFeatures(data.as_ptr(), data.len(), f.as_mut_ptr()) };
    if status != sys::VP8StatusCode::VP8_STATUS_OK {
        return None;
    }
    // SAFETY: zero-initialised plain data, filled in by a successful call.
    let f = unsafe { f.assume_init() };
    Some(Features {
        width: u32::try_from(f.width).ok()?,
        height: u32::try_from(f.height).ok()?,
        has_alpha: f.has_alpha != 0,
        animated: f.has_animation != 0,
        lossy: f.format == 1,
    })
}

/// Decodes a still WebP, rescaled to `size` when given (an area average, as the resize's
/// own block average is). The output buffer is ours and sized from the header, which the
/// caller has checked against the pixel limit; libwebp's own scratch is a few rows.
pub fn decode(data: &[u8], f: Features, size: Option<(u32, u32)>) -> Result<DynamicImage, Error> {
    let (w, h) = size.unwrap_or((f.width, f.height));
    let channels: usize = if f.has_alpha { 4 } else { 3 };
    let stride = w as usize * channels;
    let mut pixels = vec![0u8; stride * h as usize];
    let mut config = new_config()?;
    if let Some((sw, sh)) = size {
        config.options.use_scaling = 1;
        config.options.scaled_width = sw as i32;
        config.options.scaled_height = sh as i32;
    }
    config.output.colorspace = if f.has_alpha {
        sys::WEBP_CSP_MODE::MODE_RGBA
    } else {
        sys::WEBP_CSP_MODE::MODE_RGB
    };
    config.output.is_external_memory = 1;
    config.output.u.RGBA = sys::WebPRGBABuffer {
        rgba: pixels.as_mut_ptr(),
        stride: stride as i32,
        size: pixels.len(),
    };
    // SAFETY: the output buffer is `pixels`, which outlives the call, with the stride and size
    // libwebp checks against the output's dimensions.
    unsafe { run_decode(data, &mut config) }?;
    let image = if f.has_alpha {
        RgbaImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    };
    image.ok_or_else(|| Error::Internal("libwebp output does not match its size".into()))
}

/// A lossy opaque picture averaged over `kx` x `ky` blocks (partial ones at the right and
/// bottom edges), as [`crate::resize`]'s pre-shrink would: `None` for other pictures.
///
/// libwebp hands over its Y, U and V planes, and the blocks are averaged there before the
/// few output pixels are converted to RGB. That skips libwebp's rescaler (16% of a 2 MP
/// thumbnail, scalar C) and the full-size colour conversion; the 16-bit column sums
/// vectorise.
pub fn decode_reduced(data: &[u8], f: Features, kx: u32, ky: u32) -> Result<Option<DynamicImage>, Error> {
    // A column sum of `ky` rows must fit 16 bits (the resize's blocks are at most 64).
    if !f.lossy || f.has_alpha || f.animated || kx == 0 || ky == 0 || ky > 257 {
        return Ok(None);
    }
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut planes = [vec![0u8; w * h], vec![0u8; cw * ch], vec![0u8; cw * ch]];
    let mut config = new_config()?;
    config.output.colorspace = sys::WEBP_CSP_MODE::MODE_YUV;
    // libwebp's own rule when it rescales (WebPIoInitFromOptions): below 3/4 of the size on
    // both axes, the in-loop deblocking filter is skipped, since averaging the blocks hides
    // what it would smooth. It is a third of the decode.
    config.options.bypass_filtering = i32::from(kx >= 2 && ky >= 2);
    config.output.is_external_memory = 1;
    let [y, u, v] = &mut planes;
    config.output.u.YUVA = sys::WebPYUVABuffer {
        y: y.as_mut_ptr(),
        u: u.as_mut_ptr(),
        v: v.as_mut_ptr(),
        a: std::ptr::null_mut(),
        y_stride: w as i32,
        u_stride: cw as i32,
        v_stride: cw as i32,
        a_stride: 0,
        y_size: y.len(),
        u_size: u.len(),
        v_size: v.len(),
        a_size: 0,
    };
    // SAFETY: the planes outlive the call and match the strides and sizes given, which
    // libwebp checks against the picture's size.
    unsafe { run_decode(data, &mut config) }?;
    let (kx, ky) = (kx as usize, ky as usize);
    let (ow, oh) = (w.div_ceil(kx), h.div_ceil(ky));
    let mut out = Vec::with_capacity(ow * oh * 3);
    let (mut ys, mut us, mut vs) = (vec![0u16; w], vec![0u16; cw], vec![0u16; cw]);
    for y0 in (0..h).step_by(ky) {
        let rows = ky.min(h - y0);
        ys.fill(0);
        us.fill(0);
        vs.fill(0);
        for row in y0..y0 + rows {
            super::add_row(&mut ys, &planes[0][row * w..][..w]);
            // Each chroma row covers two luma rows; adding it once per luma row weighs it
            // by how many of the band's rows it covers.
            super::add_row(&mut us, &planes[1][row / 2 * cw..][..cw]);
            super::add_row(&mut vs, &planes[2][row / 2 * cw..][..cw]);
        }
        for x0 in (0..w).step_by(kx) {
            let cols = x0..(x0 + kx).min(w);
            let n = (cols.len() * rows) as u32;
            let avg = |sum: u32| ((sum + n / 2) / n) as i32;
            let luma = sum(&ys[cols.clone()]);
            let (cu, cv) = (chroma_sum(&us, cols.clone()), chroma_sum(&vs, cols));
            out.extend(yuv_to_rgb(avg(luma), avg(cu), avg(cv)));
        }
    }
    Ok(RgbImage::from_raw(ow as u32, oh as u32, out).map(DynamicImage::ImageRgb8))
}

fn sum(sums: &[u16]) -> u32 {
    sums.iter().map(|&s| u32::from(s)).sum()
}

/// The sum over luma columns `cols` of the chroma sample each column takes (column `x` has
/// sample `x / 2`): whole pairs count twice, a half pair at either end once.
fn chroma_sum(sums: &[u16], cols: std::ops::Range<usize>) -> u32 {
    let (first, end) = (cols.start.div_ceil(2), cols.end / 2);
    let mut total = 2 * sum(&sums[first..end.max(first)]);
    if cols.start % 2 == 1 {
        total += u32::from(sums[cols.start / 2]);
    }
    if cols.end % 2 == 1 {
        total += u32::from(sums[cols.end / 2]);
    }
    total
}

/// libwebp's own YUV to RGB conversion (dsp/yuv.h: BT.601, 14-bit fixed point), so the
/// averaged pixels get the colours libwebp would give them.
fn yuv_to_rgb(y: i32, u: i32, v: i32) -> [u8; 3] {
    let mult_hi = |v: i32, coeff: i32| (v * coeff) >> 8;
    let clip = |v: i32| (v >> 6).clamp(0, 255) as u8;
    let luma = mult_hi(y, 19077);
    [
        clip(luma + mult_hi(v, 26149) - 14234),
        clip(luma - mult_hi(u, 6419) - mult_hi(v, 13320) + 8708),
        clip(luma + mult_hi(u, 33050) - 17685),
    ]
}

/// Lossy WebP at `quality` (1–100, libwebp's scale, as `cwebp -q`), with alpha when the
/// image has it. libwebp's simple API writes a bare file: no EXIF, XMP or ICC chunk.
pub fn encode_lossy(img: DynamicImage, quality: u8) -> Result<Vec<u8>, Error> {
    let (w, h) = (img.width(), img.height());
    // libwebp takes 8-bit RGB(A) only; grey goes up to RGB.
    let alpha = img.color().has_alpha();
    let (pixels, channels) = if alpha {
        (img.into_rgba8().into_raw(), 4)
    } else {
        (img.into_rgb8().into_raw(), 3)
    };
    let (Ok(wi), Ok(hi), Ok(stride)) = (
        i32::try_from(w),
        i32::try_from(h),
        i32::try_from(w as usize * channels),
    ) else {
        return Err(Error::Internal(format!(
            "{w}x{h} is too large for the WebP encoder"
        )));
    };
    let mut output: *mut u8 = std::ptr::null_mut();
    let q = f32::from(quality);
    // SAFETY: `pixels` holds `h` rows of `stride` bytes; libwebp allocates `output` and
    // returns its length (0 on failure).
    let len = unsafe {
        if alpha {
            sys::WebPEncodeRGBA(pixels.as_ptr(), wi, hi, stride, q, &mut output)
        } else {
            sys::WebPEncodeRGB(pixels.as_ptr(), wi, hi, stride, q, &mut output)
        }
    };
    if len == 0 || output.is_null() {
        return Err(Error::Internal(format!(
            "libwebp could not encode a {w}x{h} WebP"
        )));
    }
    // SAFETY: libwebp wrote `len` bytes at `output`, which we copy and then free with its own
    // deallocator.
    let encoded = unsafe { std::slice::from_raw_parts(output, len) }.to_vec();
    unsafe { sys::WebPFree(output.cast()) };
    Ok(encoded)
}

/// An animated WebP's frames composited by libwebp's own animation decoder, as browsers show
/// them, each with how long it is shown in ms. image-webp 0.2, the `image` crate's decoder,
/// gets disposal wrong: without a background colour it leaves a frame disposed to the
/// background on the canvas, and with one it clears an opaque frame's predecessor with the
/// wrong pixel stride.
///
/// libwebp keeps two canvases (the frame shown and the one it is built on); each frame is
/// handed out as a copy of the first, so three are alive at a time.
pub struct AnimDecoder<'a> {
    raw: std::ptr::NonNull<sys::WebPAnimDecoder>,
    width: u32,
    height: u32,
    /// When the previous frame ended, in ms from the start: libwebp gives end times.
    previous_end_ms: i32,
    decoded: u32,
    failed: bool,
    /// libwebp reads the file in place for as long as the decoder lives.
    _data: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> AnimDecoder<'a> {
    pub fn new(data: &'a [u8]) -> Result<Self, Error> {
        let mut options = std::mem::MaybeUninit::<sys::WebPAnimDecoderOptions>::zeroed();
        // SAFETY: libwebp fills the options with its defaults when it returns non-zero.
        let ok = unsafe {
            sys::WebPAnimDecoderOptionsInitInternal(options.as_mut_ptr(), sys::WEBP_DEMUX_ABI_VERSION as i32)
        };
        if ok == 0 {
            return Err(Error::Internal(
                "libwebp's demux ABI does not match its headers".into(),
            ));
        }
        // SAFETY: initialised by the successful call above.
        let mut options = unsafe { options.assume_init() };
        // Unpremultiplied, as the resize and both encoders take it.
        options.color_mode = sys::WEBP_CSP_MODE::MODE_RGBA;
        options.use_threads = 0;
        let webp = sys::WebPData {
            bytes: data.as_ptr(),
            size: data.len(),
        };
        // SAFETY: libwebp reads at most `data.len()` bytes of `data`, which the lifetime keeps
        // alive as long as the decoder; it copies `webp` and `options`. NULL on failure.
        let raw =
            unsafe { sys::WebPAnimDecoderNewInternal(&webp, &options, sys::WEBP_DEMUX_ABI_VERSION as i32) };
        let raw = std::ptr::NonNull::new(raw).ok_or_else(|| {
            Error::MalformedImage(
                "the WebP animation's chunks are inconsistent or cut short (or too large to decode)".into(),
            )
        })?;
        let mut decoder = AnimDecoder {
            raw,
            width: 0,
            height: 0,
            previous_end_ms: 0,
            decoded: 0,
            failed: false,
            _data: std::marker::PhantomData,
        };
        let mut info = sys::WebPAnimInfo::default();
        // SAFETY: the decoder is live; libwebp fills `info`.
        if unsafe { sys::WebPAnimDecoderGetInfo(decoder.raw.as_ptr(), &mut info) } == 0 {
            return Err(Error::Internal(
                "libwebp gave no facts about a WebP animation it opened".into(),
            ));
        }
        (decoder.width, decoder.height) = (info.canvas_width, info.canvas_height);
        Ok(decoder)
    }

    /// The canvas's width and height, as stored (before any EXIF orientation).
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

impl Iterator for AnimDecoder<'_> {
    type Item = Result<(RgbaImage, u32), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: the decoder is live.
        if self.failed || unsafe { sys::WebPAnimDecoderHasMoreFrames(self.raw.as_ptr()) } == 0 {
            return None;
        }
        self.decoded += 1;
        let (mut buffer, mut end_ms) = (std::ptr::null_mut(), 0);
        // SAFETY: the decoder is live; on success `buffer` points at its current canvas.
        let ok = unsafe { sys::WebPAnimDecoderGetNext(self.raw.as_ptr(), &mut buffer, &mut end_ms) };
        if ok == 0 || buffer.is_null() {
            self.failed = true;
            return Some(Err(Error::MalformedImage(format!(
                "frame {} of the WebP animation is corrupt or cut short",
                self.decoded
            ))));
        }
        let len = self.width as usize * self.height as usize * 4;
        // SAFETY: libwebp's canvas is `width * height` RGBA pixels, valid until the next call,
        // and copied at once.
        let pixels = unsafe { std::slice::from_raw_parts(buffer, len) }.to_vec();
        // A file whose durations add up past i32 makes libwebp's sum wrap; the difference of
        // wrapped sums is still each frame's own duration.
        let delay_ms = end_ms.wrapping_sub(self.previous_end_ms) as u32;
        self.previous_end_ms = end_ms;
        let frame = RgbaImage::from_raw(self.width, self.height, pixels)
            .ok_or_else(|| Error::Internal("libwebp's canvas does not match its size".into()));
        Some(frame.map(|frame| (frame, delay_ms)))
    }
}

impl Drop for AnimDecoder<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from WebPAnimDecoderNew and is deleted only here.
        unsafe { sys::WebPAnimDecoderDelete(self.raw.as_ptr()) };
    }
}

/// The settings of [`encode_lossy`]: libwebp's simple API sets up its encoder with the default
/// preset at `quality` and nothing else, so the animation encoder starts from the same place
/// and a frame of an animated thumbnail looks like a still one.
fn lossy_config(quality: u8) -> Result<sys::WebPConfig, Error> {
    let mut config = std::mem::MaybeUninit::<sys::WebPConfig>::zeroed();
    // SAFETY: libwebp fills every field of `config` when it returns non-zero.
    let ok = unsafe {
        sys::WebPConfigInitInternal(
            config.as_mut_ptr(),
            sys::WebPPreset::WEBP_PRESET_DEFAULT,
            f32::from(quality),
            sys::WEBP_ENCODER_ABI_VERSION as i32,
        )
    };
    if ok == 0 {
        return Err(Error::Internal(
            "libwebp's encoder ABI does not match its headers".into(),
        ));
    }
    // SAFETY: initialised by the successful call above.
    let mut config = unsafe { config.assume_init() };
    config.lossless = 0;
    // SAFETY: `config` is a complete, initialised struct.
    if unsafe { sys::WebPValidateConfig(&config) } == 0 {
        return Err(Error::Internal(format!(
            "libwebp refuses its own settings for quality {quality}"
        )));
    }
    Ok(config)
}

/// An animated WebP being made by libwebp's animation encoder (`WebPAnimEncoder`), one frame
/// at a time: each frame is encoded when it is added, as the part that changed from the
/// previous one, so only the small frames' canvases are kept, never the source's.
///
/// A frame that looks the same as the one before (within what `quality` lets lossy coding
/// ignore) is not stored again: the previous frame is shown for longer instead, so the
/// timing is kept but the file may have fewer frames than were added.
pub struct AnimEncoder {
    raw: std::ptr::NonNull<sys::WebPAnimEncoder>,
    config: sys::WebPConfig,
    width: u32,
    height: u32,
    /// When the next frame starts, in ms from the first: libwebp takes start times, not
    /// durations, and a frame lasts until the next one's start.
    next_start_ms: i32,
    frames: u32,
    /// Whether any frame has a pixel that is not opaque.
    transparent: bool,
}

/// The VP8X header's flag for a picture with transparency (RFC 9649, 2.7).
const VP8X_ALPHA_FLAG: u8 = 0x10;

impl AnimEncoder {
    /// An encoder for a `width` x `height` animation that loops forever, lossy at `quality`.
    pub fn new(width: u32, height: u32, quality: u8) -> Result<Self, Error> {
        let (Ok(w), Ok(h)) = (i32::try_from(width), i32::try_from(height)) else {
            return Err(Error::Internal(format!(
                "{width}x{height} is too large for the WebP animation encoder"
            )));
        };
        let config = lossy_config(quality)?;
        let mut options = std::mem::MaybeUninit::<sys::WebPAnimEncoderOptions>::zeroed();
        // SAFETY: libwebp fills the options with its defaults when it returns non-zero.
        let ok = unsafe {
            sys::WebPAnimEncoderOptionsInitInternal(options.as_mut_ptr(), sys::WEBP_MUX_ABI_VERSION as i32)
        };
        if ok == 0 {
            return Err(Error::Internal(
                "libwebp's mux ABI does not match its headers".into(),
            ));
        }
        // SAFETY: initialised by the successful call above.
        let mut options = unsafe { options.assume_init() };
        options.anim_params.loop_count = 0;
        // libwebp's default background is opaque white. It is only a hint, which browsers
        // ignore, but decoders that honour it would lay transparent thumbnails on white.
        options.anim_params.bgcolor = 0;
        // One lossy frame kind throughout, as asked; mixing in lossless frames is a
        // second encode of each.
        options.allow_mixed = 0;
        // SAFETY: `options` is initialised; libwebp copies it and returns NULL on failure.
        let raw =
            unsafe { sys::WebPAnimEncoderNewInternal(w, h, &options, sys::WEBP_MUX_ABI_VERSION as i32) };
        let raw = std::ptr::NonNull::new(raw).ok_or_else(|| {
            Error::Internal(format!(
                "libwebp could not start a {width}x{height} animation (out of memory?)"
            ))
        })?;
        Ok(AnimEncoder {
            raw,
            config,
            width,
            height,
            next_start_ms: 0,
            frames: 0,
            transparent: false,
        })
    }

    /// Adds `frame` (the animation's size, RGBA) to be shown for `delay_ms`.
    pub fn add(&mut self, frame: &RgbaImage, delay_ms: u32) -> Result<(), Error> {
        if frame.dimensions() != (self.width, self.height) {
            return Err(Error::Internal(format!(
                "a {}x{} frame for a {}x{} animation",
                frame.width(),
                frame.height(),
                self.width,
                self.height
            )));
        }
        let start = self.next_start_ms;
        let end = i32::try_from(delay_ms)
            .ok()
            .and_then(|d| start.checked_add(d))
            .ok_or_else(|| {
                Error::InvalidOptions(format!(
                    "animated=true: the animation lasts more than {} ms, longer than a WebP \
                     animation can; ask format=gif to keep it",
                    i32::MAX
                ))
            })?;
        let mut picture = Picture::new()?;
        picture.0.use_argb = 1;
        picture.0.width = self.width as i32;
        picture.0.height = self.height as i32;
        // SAFETY: `frame` holds `height` rows of `width * 4` bytes (its size is checked
        // above and the width fits an i32); libwebp copies them into memory it owns in
        // `picture`, which the guard frees.
        let imported = unsafe {
            sys::WebPPictureImportRGBA(&mut picture.0, frame.as_raw().as_ptr(), self.width as i32 * 4)
        };
        if imported == 0 {
            return Err(Error::Internal(format!(
                "libwebp could not take a {}x{} frame (out of memory?)",
                self.width, self.height
            )));
        }
        // SAFETY: the encoder and picture are live; libwebp copies the picture's pixels
        // before returning and keeps no pointer to it or to `config`.
        let ok = unsafe { sys::WebPAnimEncoderAdd(self.raw.as_ptr(), &mut picture.0, start, &self.config) };
        if ok == 0 {
            return Err(self.error(&format!("on frame {}", self.frames + 1)));
        }
        self.next_start_ms = end;
        self.frames += 1;
        self.transparent |= frame.pixels().any(|p| p[3] < 255);
        Ok(())
    }

    /// Ends the last frame after its delay and assembles the file.
    pub fn finish(self) -> Result<Vec<u8>, Error> {
        if self.frames == 0 {
            return Err(Error::MalformedImage("the animation has no frames".into()));
        }
        // Without this end mark libwebp would give the last frame the average duration of
        // the others rather than its own.
        // SAFETY: a NULL frame is libwebp's documented end mark.
        let ok = unsafe {
            sys::WebPAnimEncoderAdd(
                self.raw.as_ptr(),
                std::ptr::null_mut(),
                self.next_start_ms,
                std::ptr::null(),
            )
        };
        if ok == 0 {
            return Err(self.error("at the end of the last frame"));
        }
        let mut out = Data(sys::WebPData::default());
        // SAFETY: `out.0` is empty; on success libwebp points it at memory it allocated,
        // which the guard frees with libwebp's own deallocator.
        let ok = unsafe { sys::WebPAnimEncoderAssemble(self.raw.as_ptr(), &mut out.0) };
        if ok == 0 || out.0.bytes.is_null() || out.0.size == 0 {
            return Err(self.error("assembling the file"));
        }
        // SAFETY: libwebp wrote `size` bytes at `bytes`.
        let mut file = unsafe { std::slice::from_raw_parts(out.0.bytes, out.0.size) }.to_vec();
        // libwebp flags alpha only when some frame carries alpha data, but a frame that leaves
        // part of the canvas uncovered shows it transparent as well. Decoders that go by the
        // flag (image-webp) would show those parts black; libwebp itself ignores it.
        if self.transparent
            && file.get(12..16) == Some(b"VP8X".as_slice())
            && let Some(flags) = file.get_mut(20)
        {
            *flags |= VP8X_ALPHA_FLAG;
        }
        Ok(file)
    }

    /// libwebp's account of its last failure, as an internal error: the frames are ours
    /// and well formed by then, so a failure is memory or a bug.
    fn error(&self, doing: &str) -> Error {
        // SAFETY: the encoder is live; libwebp returns NULL or a NUL-terminated string
        // inside the encoder, which is copied out at once.
        let detail = unsafe {
            let text = sys::WebPAnimEncoderGetError(self.raw.as_ptr());
            if text.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        };
        let detail = if detail.is_empty() {
            "no reason given"
        } else {
            detail.trim_end_matches('.')
        };
        Error::Internal(format!(
            "libwebp's {}x{} animation encoder failed {doing}: {detail}",
            self.width, self.height
        ))
    }
}

impl Drop for AnimEncoder {
    fn drop(&mut self) {
        // SAFETY: `raw` came from WebPAnimEncoderNew and is deleted only here.
        unsafe { sys::WebPAnimEncoderDelete(self.raw.as_ptr()) };
    }
}

/// A `WebPPicture` whose pixel memory, once libwebp has allocated it, is freed on drop.
struct Picture(sys::WebPPicture);

impl Picture {
    fn new() -> Result<Self, Error> {
        let mut picture = std::mem::MaybeUninit::<sys::WebPPicture>::zeroed();
        // SAFETY: libwebp initialises every field (with no memory yet) when it returns non-zero.
        let ok = unsafe {
            sys::WebPPictureInitInternal(picture.as_mut_ptr(), sys::WEBP_ENCODER_ABI_VERSION as i32)
        };
        if ok == 0 {
            return Err(Error::Internal(
                "libwebp's encoder ABI does not match its headers".into(),
            ));
        }
        // SAFETY: initialised by the successful call above.
        Ok(Picture(unsafe { picture.assume_init() }))
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: frees only what libwebp allocated for this picture (nothing, before an
        // import), and leaves it empty.
        unsafe { sys::WebPPictureFree(&mut self.0) };
    }
}

/// Bytes libwebp allocated and handed over in a `WebPData`, freed on drop.
struct Data(sys::WebPData);

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: `bytes` is NULL or was allocated by libwebp, whose own free releases it.
        unsafe { sys::WebPDataClear(&mut self.0) };
    }
}

/// Runs libwebp's decode into the external buffer `config` describes, then releases what
/// libwebp holds (nothing, with external memory).
///
/// # Safety
/// `config.output` must point at buffers that outlive the call, with the strides and sizes
/// given. libwebp reads at most `data.len()` bytes.
unsafe fn run_decode(data: &[u8], config: &mut sys::WebPDecoderConfig) -> Result<(), Error> {
    // SAFETY: as the caller promises.
    let status = unsafe { sys::WebPDecode(data.as_ptr(), data.len(), config) };
    // SAFETY: frees only what libwebp allocated itself.
    unsafe { sys::WebPFreeDecBuffer(&mut config.output) };
    status_to_result(status)
}

fn new_config() -> Result<sys::WebPDecoderConfig, Error> {
    sys::WebPDecoderConfig::new()
        .map_err(|()| Error::Internal("libwebp's decoder ABI does not match its headers".into()))
}

fn status_to_result(status: sys::VP8StatusCode) -> Result<(), Error> {
    use sys::VP8StatusCode as S;
    let detail = match status {
        S::VP8_STATUS_OK => return Ok(()),
        S::VP8_STATUS_NOT_ENOUGH_DATA => "the WebP data ends early: the file is truncated",
        S::VP8_STATUS_BITSTREAM_ERROR => "the WebP bitstream is corrupt",
        S::VP8_STATUS_UNSUPPORTED_FEATURE => "the WebP file uses a feature the decoder does not support",
        S::VP8_STATUS_INVALID_PARAM => "the WebP header gives an invalid size",
        S::VP8_STATUS_OUT_OF_MEMORY => {
            return Err(Error::Internal("libwebp ran out of memory".into()));
        }
        S::VP8_STATUS_SUSPENDED | S::VP8_STATUS_USER_ABORT => "the WebP decode stopped early",
    };
    Err(Error::MalformedImage(detail.into()))
}

/// The EXIF orientation, from the `EXIF` chunk of an extended (VP8X) file; `None` without one.
pub fn orientation(data: &[u8]) -> Option<Orientation> {
    let body = chunk(data, b"EXIF")?;
    // Some writers keep JPEG's "Exif\0\0" prefix in front of the TIFF header.
    Orientation::from_exif_chunk(body.strip_prefix(b"Exif\0\0").unwrap_or(body))
}

/// The body of the RIFF container's first `fourcc` chunk (`EXIF`, `ICCP`, ...).
pub fn chunk<'a>(data: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    let mut at = 12usize;
    // The chunk walk is bounded by the input: each step moves forward by at least 8 bytes.
    while let Some(header) = data.get(at..at + 8) {
        let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
        let body = data.get(at + 8..at.checked_add(8 + len)?)?;
        if &header[..4] == fourcc {
            return Some(body);
        }
        at = at.checked_add(8 + len + (len & 1))?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn corpus() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
    }

    fn webp_files() -> Vec<PathBuf> {
        let mut files = vec![corpus().join("photos/coffee-2mp.webp")];
        for dir in ["lossy_images", "lossless_images", "extended_images"] {
            let dir = corpus().join("formats/webp").join(dir);
            for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
                if entry.path().extension().is_some_and(|e| e == "webp") {
                    files.push(entry.path());
                }
            }
        }
        files.sort();
        files
    }

    fn max_and_mean_diff(a: &[u8], b: &[u8]) -> (u8, f64) {
        let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
        let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
        (max, sum as f64 / a.len().max(1) as f64)
    }

    /// libwebp against the `image` crate's decoder (image-webp, an independent implementation
    /// of the same specification), pixel for pixel, lossy and lossless.
    #[test]
    fn still_files_decode_to_the_reference_pixels() {
        let mut compared = 0;
        for path in webp_files() {
            let data = std::fs::read(&path).unwrap();
            let f = features(&data).unwrap_or_else(|| panic!("{}: no features", path.display()));
            if f.animated {
                continue;
            }
            let ours = decode(&data, f, None).unwrap();
            let reference = image::load_from_memory(&data).unwrap();
            assert_eq!(
                (ours.width(), ours.height()),
                (reference.width(), reference.height())
            );
            let (ours, reference) = if f.has_alpha {
                (ours.to_rgba8().into_raw(), reference.to_rgba8().into_raw())
            } else {
                (ours.to_rgb8().into_raw(), reference.to_rgb8().into_raw())
            };
            let (max, mean) = max_and_mean_diff(&ours, &reference);
            assert_eq!(
                max,
                0,
                "{}: differs by up to {max}, {mean} on average",
                path.display()
            );
            compared += 1;
        }
        assert!(compared >= 8, "only {compared} still files compared");
    }

    /// A rescaled decode is the block average of the full one, up to the rounding of
    /// averaging before (libwebp, in YUV) rather than after colour conversion.
    #[test]
    fn a_rescaled_decode_is_the_block_average() {
        let data = std::fs::read(corpus().join("photos/coffee-2mp.webp")).unwrap();
        let f = features(&data).unwrap();
        let k = 4;
        let (w, h) = (f.width / k, f.height / k);
        let small = decode(&data, f, Some((w, h))).unwrap().to_rgb8();
        assert_eq!(small.dimensions(), (w, h));
        let full = decode(&data, f, None).unwrap().to_rgb8();
        let mut averaged = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let mut sum = 0u32;
                    for dy in 0..k {
                        for dx in 0..k {
                            sum += full.get_pixel(x * k + dx, y * k + dy)[c] as u32;
                        }
                    }
                    averaged.push(((sum + k * k / 2) / (k * k)) as u8);
                }
            }
        }
        let (max, mean) = max_and_mean_diff(small.as_raw(), &averaged);
        assert!(max <= 16 && mean < 1.0, "max {max}, mean {mean}");
    }

    /// `k` x `k` block averages of `img` (partial blocks at the edges average what they hold).
    fn block_average(img: &RgbImage, k: u32) -> Vec<u8> {
        let (w, h) = img.dimensions();
        let mut out = Vec::new();
        for by in (0..h).step_by(k as usize) {
            for bx in (0..w).step_by(k as usize) {
                let (xs, ys) = (bx..(bx + k).min(w), by..(by + k).min(h));
                let n = xs.len() as u32 * ys.len() as u32;
                for c in 0..3 {
                    let sum: u32 = ys
                        .clone()
                        .flat_map(|y| xs.clone().map(move |x| (x, y)))
                        .map(|(x, y)| img.get_pixel(x, y)[c] as u32)
                        .sum();
                    out.push(((sum + n / 2) / n) as u8);
                }
            }
        }
        out
    }

    /// The planes' block average is the full decode's, up to averaging in YUV (with each
    /// chroma sample standing for its 2x2 luma pixels) rather than in RGB after libwebp's
    /// smoothing chroma upsampler, and without the deblocking filter. 7 leaves partial blocks at both edges of the 1800x1200
    /// photo.
    #[test]
    fn a_reduced_decode_averages_blocks_of_the_planes() {
        let data = std::fs::read(corpus().join("photos/coffee-2mp.webp")).unwrap();
        let f = features(&data).unwrap();
        let full = decode(&data, f, None).unwrap().to_rgb8();
        for k in [2, 7] {
            let small = decode_reduced(&data, f, k, k).unwrap().unwrap().to_rgb8();
            assert_eq!(small.dimensions(), (f.width.div_ceil(k), f.height.div_ceil(k)));
            let (max, mean) = max_and_mean_diff(small.as_raw(), &block_average(&full, k));
            assert!(max <= 20 && mean < 1.0, "k {k}: max {max}, mean {mean}");
        }
        // Only lossy opaque pictures have planes to average.
        let lossless = std::fs::read(corpus().join("formats/webp/lossless_images/simple.webp")).unwrap();
        let g = features(&lossless).unwrap();
        assert!(decode_reduced(&lossless, g, 2, 2).unwrap().is_none());
    }

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let mse = a
            .iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
    }

    /// Lossy output follows `quality`: smaller at 50 than at 90, both close to the lossless
    /// thumbnail, and with alpha kept where the source has it.
    #[test]
    fn lossy_output_follows_quality() {
        let data = std::fs::read(corpus().join("photos/coffee-2mp.webp")).unwrap();
        let opts = |format, quality| crate::Options {
            width: 400,
            height: 400,
            format,
            quality,
            ..crate::Options::default()
        };
        let exact = crate::thumbnail(&data, &opts(crate::OutputFormat::Png, 80)).unwrap();
        let exact = image::load_from_memory(&exact.data).unwrap().to_rgb8();
        let mut sizes = Vec::new();
        for (quality, min_psnr) in [(50, 29.0), (90, 34.0)] {
            let thumb = crate::thumbnail(&data, &opts(crate::OutputFormat::Webp, quality)).unwrap();
            assert_eq!(&thumb.data[8..15], b"WEBPVP8", "q{quality}: not a WebP file");
            assert!(!thumb.data.windows(4).any(|c| c == b"EXIF" || c == b"XMP "));
            let decoded = image::load_from_memory(&thumb.data).unwrap().to_rgb8();
            assert_eq!(decoded.dimensions(), exact.dimensions());
            let db = psnr(decoded.as_raw(), exact.as_raw());
            assert!(db >= min_psnr, "q{quality}: {db:.1} dB");
            sizes.push(thumb.data.len());
        }
        assert!(
            sizes[0] < sizes[1],
            "q50 {} bytes, q90 {} bytes",
            sizes[0],
            sizes[1]
        );
        let alpha = std::fs::read(corpus().join("formats/webp/extended_images/lossy_alpha.webp")).unwrap();
        let thumb = crate::thumbnail(&alpha, &opts(crate::OutputFormat::Webp, 80)).unwrap();
        assert!(image::load_from_memory(&thumb.data).unwrap().color().has_alpha());
    }

    /// Cut-short and bit-flipped files give an image or an error: no panic, no hang.
    #[test]
    fn damaged_files_are_errors_not_crashes() {
        for path in webp_files() {
            let data = std::fs::read(&path).unwrap();
            let Some(f) = features(&data).filter(|f| !f.animated) else {
                continue;
            };
            for cut in [data.len() / 3, data.len() / 2, data.len() - 1] {
                let cut = &data[..cut];
                if let Some(f) = features(cut) {
                    assert!(
                        decode(cut, f, None).is_err(),
                        "{}: cut at {}",
                        path.display(),
                        cut.len()
                    );
                }
            }
            let mut flipped = data.clone();
            for i in (40..flipped.len()).step_by(97) {
                flipped[i] ^= 0x5a;
            }
            if let Some(g) = features(&flipped).filter(|g| g.width == f.width && g.height == f.height) {
                let _ = decode(&flipped, g, None);
                let _ = decode(&flipped, g, Some((g.width.div_ceil(3), g.height.div_ceil(3))));
                let _ = decode_reduced(&flipped, g, 3, 3);
            }
        }
    }

    /// The 1800x1200 photo (a simple lossy file) rewrapped as an extended file with an EXIF chunk saying
    /// orientation `exif_value`.
    fn with_orientation(exif_value: u8) -> Vec<u8> {
        let plain = std::fs::read(corpus().join("photos/coffee-2mp.webp")).unwrap();
        let f = features(&plain).unwrap();
        let image_chunk = &plain[12..];
        let mut exif = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0".to_vec();
        exif.extend([exif_value, 0, 0, 0, 0, 0, 0]);
        let mut body = b"WEBPVP8X".to_vec();
        body.extend(10u32.to_le_bytes());
        body.extend([0x08, 0, 0, 0]);
        body.extend(&(f.width - 1).to_le_bytes()[..3]);
        body.extend(&(f.height - 1).to_le_bytes()[..3]);
        body.extend(image_chunk);
        body.extend(b"EXIF");
        body.extend((exif.len() as u32).to_le_bytes());
        body.extend(&exif);
        let mut file = b"RIFF".to_vec();
        file.extend((body.len() as u32).to_le_bytes());
        file.extend(body);
        file
    }

    #[test]
    fn exif_orientation_is_read_and_applied() {
        let data = with_orientation(6);
        assert_eq!(orientation(&data), Some(Orientation::Rotate90));
        assert_eq!(orientation(&data[..data.len() - 4]), None);
        let f = features(&data).unwrap();
        let opts = crate::Options {
            width: 100,
            height: 100,
            ..crate::Options::default()
        };
        let thumb = crate::thumbnail(&data, &opts).unwrap();
        // The photo is wider than tall; turned a quarter, the thumbnail is taller than wide.
        assert!(f.width > f.height);
        assert!(thumb.height > thumb.width, "{}x{}", thumb.width, thumb.height);
        assert_eq!(thumb.source.orientation, 6);
    }
}
