//! What a job asks for, made with as few resizer calls as possible. The component contract
//! (WIT 1.0) takes a concrete box and format, so the two choices that depend on the source
//! are settled against it here: `enlarge=false` (the source's size) and `format=auto` (its
//! alpha). Either comes from `probe` first when the box is large, since a wrong guess would
//! then cost more than the extra call; otherwise from the first result's source, redone only
//! when the guess was wrong (a source smaller than the box, or alpha where JPEG was guessed).

use resizer_core::{Fit, ImageInfo, Options, OutputFormat, Thumbnail};

use crate::sandbox::{CallStats, Resizer, SandboxError};
use crate::store::JobOptions;

/// Boxes with a side above this are settled against `probe` before the thumbnail call.
const PROBE_FIRST_SIDE: u32 = 256;

/// A box, its fit and the output format: what one resizer call is asked for.
type Choice = ((u32, u32, Fit), OutputFormat);

/// Makes the thumbnail `options` ask for.
pub fn make(
    resizer: &Resizer,
    image: &[u8],
    options: &JobOptions,
) -> Result<(Thumbnail, CallStats), SandboxError> {
    let request = options.sizing();
    let call = |((width, height, fit), format): Choice| {
        let asked = Options {
            width,
            height,
            fit,
            format,
            quality: options.quality,
            gravity: options.gravity,
            animated: options.animated,
            ..Options::default()
        };
        resizer.thumbnail(image, &asked)
    };
    let settle = |chosen: Choice, source: &ImageInfo| -> Choice {
        let sized = request.settle(source.width, source.height).unwrap_or(chosen.0);
        (sized, options.format_for(source.has_alpha))
    };
    let mut chosen = (request.initial_box(), options.first_format());
    if !request.enlarge && request.longest_given_side() > PROBE_FIRST_SIDE {
        let (info, _) = resizer.probe(image)?;
        chosen = settle(chosen, &info);
    }
    let made = call(chosen)?;
    match settle(chosen, &made.0.source) {
        settled if settled != chosen => call(settled),
        _ => Ok(made),
    }
}
