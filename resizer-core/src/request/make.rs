//! A request made into a thumbnail, the same way wherever it runs (the host's sandbox, the
//! CLI, the edge component), so the same request gives the same bytes everywhere.
//!
//! A resizer call takes a concrete box and format, so the choices that depend on the source
//! are settled against it here: `enlarge=false` (the source's size), and `format=auto` (its
//! alpha, whether it is an animation, and the output's size for AVIF). They come from `probe`
//! first when a wrong guess would cost more than the extra call (a large box, an animation,
//! AVIF's size limit); otherwise from the first result's source, redone only when the guess
//! was wrong.

use crate::formats::avif;
use crate::pipeline::target_size;
use crate::{Fit, ImageFormat, ImageInfo, Options, OutputFormat, Thumbnail};

use super::{Accepts, Format, Request};

/// What runs the image code: the sandboxed component, or resizer-core in the same process.
pub trait Backend {
    type Error;
    /// What a call reports besides its result (time, memory); `()` where nothing is measured.
    type Stats;
    fn probe(&self, image: &[u8]) -> Result<ImageInfo, Self::Error>;
    fn thumbnail(&self, image: &[u8], options: &Options) -> Result<(Thumbnail, Self::Stats), Self::Error>;
}

/// Boxes with a side above this are settled against `probe` before the thumbnail call.
const PROBE_FIRST_SIDE: u32 = 256;

/// A box, its fit and the output format: what one resizer call is asked for.
type Choice = ((u32, u32, Fit), OutputFormat);

/// Makes the thumbnail `request` asks for, for a client that reads `accepts`.
pub fn make<B: Backend>(
    backend: &B,
    image: &[u8],
    request: &Request,
    accepts: Accepts,
    max_pixels: u64,
) -> Result<(Thumbnail, B::Stats), B::Error> {
    let sizing = request.sizing();
    let accepts = accepts.for_format(request.format);
    let call = |((width, height, fit), format): Choice| {
        let options = Options {
            width,
            height,
            fit,
            format,
            quality: request.quality,
            max_pixels,
            gravity: request.gravity,
            animated: request.animated,
        };
        backend.thumbnail(image, &options)
    };
    let settle = |source: &ImageInfo| -> Choice {
        let sized = sizing
            .settle(source.width, source.height)
            .unwrap_or(sizing.initial_box());
        let (w, h, fit) = sized;
        let out = target_size(source.width, source.height, w, h, fit);
        (sized, choose_format(request, accepts, Some(source), Some(out)))
    };
    let needs_probe = (!request.enlarge && sizing.longest_given_side() > PROBE_FIRST_SIDE)
        || (request.format == Format::Auto && (request.animated || (accepts.avif && !accepts.webp)));
    let chosen = if needs_probe {
        settle(&backend.probe(image)?)
    } else {
        (sizing.initial_box(), choose_format(request, accepts, None, None))
    };
    let made = call(chosen)?;
    match settle(&made.0.source) {
        settled if settled != chosen => call(settled),
        _ => Ok(made),
    }
}

/// The format to make. An explicit one is always what is made (or refused with a reason by
/// the resizer). `auto` takes WebP where the client reads it (as small as AVIF at thumbnail
/// sizes and ~15x cheaper to encode, see the README), and never fails where another format
/// would do: AVIF only within its size limit, then GIF for an animation, PNG for alpha, JPEG.
/// Without the `source` yet, it guesses an opaque still image.
pub fn choose_format(
    request: &Request,
    accepts: Accepts,
    source: Option<&ImageInfo>,
    out: Option<(u32, u32)>,
) -> OutputFormat {
    if let Some(fixed) = request.format.fixed() {
        return fixed;
    }
    let animation = request.animated
        && source
            .is_some_and(|s| s.frame_count > 1 && matches!(s.format, ImageFormat::Gif | ImageFormat::Webp));
    let fits_avif = out.is_some_and(|(w, h)| w as u64 * h as u64 <= avif::MAX_PIXELS);
    if accepts.webp {
        OutputFormat::Webp
    } else if animation {
        OutputFormat::Gif
    } else if accepts.avif && fits_avif {
        OutputFormat::Avif
    } else if source.is_some_and(|s| s.has_alpha) {
        OutputFormat::Png
    } else {
        OutputFormat::Jpeg
    }
}
