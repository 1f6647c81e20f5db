//! The resizer as a WebAssembly component: converts between the WIT types of
//! `edgethumb:resizer` and [`resizer_core`], which does all the work.
//!
//! Built for `wasm32-wasip2` by `host/build.rs` and embedded in the edgethumb binary. It
//! also compiles natively (as a plain cdylib) so the workspace checks it with the rest.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "current-thumbnailer",
    });
}

use bindings::exports::edgethumb::resizer::resizer as wit;
use bindings::exports::edgethumb::resizer::thumbnails as v11;
use resizer_core as core;

struct Component;

impl wit::Guest for Component {
    fn probe(image: Vec<u8>) -> Result<wit::ImageInfo, wit::Error> {
        core::probe(&image).map(info_to_wit).map_err(error_to_wit)
    }

    fn thumbnail(image: Vec<u8>, options: wit::Options) -> Result<wit::EncodedThumbnail, wit::Error> {
        let format = match options.format {
            wit::OutputFormat::Png => core::OutputFormat::Png,
            wit::OutputFormat::Jpeg => core::OutputFormat::Jpeg,
            wit::OutputFormat::Webp => core::OutputFormat::Webp,
        };
        let options = core::Options {
            width: options.width,
            height: options.height,
            fit: fit(options.fit),
            format,
            quality: options.quality,
            max_pixels: options.max_pixels,
            gravity: core::Gravity::Center,
            animated: false,
        };
        let t = thumbnail(image, &options)?;
        Ok(wit::EncodedThumbnail {
            data: t.data,
            width: t.width,
            height: t.height,
            format: match t.format {
                core::OutputFormat::Png => wit::OutputFormat::Png,
                core::OutputFormat::Jpeg => wit::OutputFormat::Jpeg,
                core::OutputFormat::Webp => wit::OutputFormat::Webp,
                core::OutputFormat::Avif | core::OutputFormat::Gif => {
                    return Err(wit::Error::Internal("WIT 1.0 cannot carry this format".into()));
                }
            },
            source: info_to_wit(t.source),
        })
    }
}

impl v11::Guest for Component {
    fn make(image: Vec<u8>, request: v11::Request) -> Result<v11::Thumbnail, wit::Error> {
        use v11::Gravity as G;
        let gravity = match request.gravity {
            G::Center => core::Gravity::Center,
            G::North => core::Gravity::North,
            G::NorthEast => core::Gravity::NorthEast,
            G::East => core::Gravity::East,
            G::SouthEast => core::Gravity::SouthEast,
            G::South => core::Gravity::South,
            G::SouthWest => core::Gravity::SouthWest,
            G::West => core::Gravity::West,
            G::NorthWest => core::Gravity::NorthWest,
            G::Focus(p) => core::Gravity::Focus { x: p.x, y: p.y },
            G::Smart => core::Gravity::Smart,
        };
        let options = core::Options {
            width: request.width,
            height: request.height,
            fit: fit(request.fit),
            format: match request.format {
                v11::OutputFormat::Png => core::OutputFormat::Png,
                v11::OutputFormat::Jpeg => core::OutputFormat::Jpeg,
                v11::OutputFormat::Webp => core::OutputFormat::Webp,
                v11::OutputFormat::Avif => core::OutputFormat::Avif,
                v11::OutputFormat::Gif => core::OutputFormat::Gif,
            },
            quality: request.quality,
            max_pixels: request.max_pixels,
            gravity,
            animated: request.animated,
        };
        let t = thumbnail(image, &options)?;
        Ok(v11::Thumbnail {
            data: t.data,
            width: t.width,
            height: t.height,
            format: match t.format {
                core::OutputFormat::Png => v11::OutputFormat::Png,
                core::OutputFormat::Jpeg => v11::OutputFormat::Jpeg,
                core::OutputFormat::Webp => v11::OutputFormat::Webp,
                core::OutputFormat::Avif => v11::OutputFormat::Avif,
                core::OutputFormat::Gif => v11::OutputFormat::Gif,
            },
            source: info_to_wit(t.source),
        })
    }
}

fn fit(f: wit::Fit) -> core::Fit {
    match f {
        wit::Fit::Contain => core::Fit::Contain,
        wit::Fit::Cover => core::Fit::Cover,
        wit::Fit::Fill => core::Fit::Fill,
    }
}

fn thumbnail(image: Vec<u8>, options: &core::Options) -> Result<core::Thumbnail, wit::Error> {
    // The input can be tens of megabytes: free it before the result is lowered.
    let result = core::thumbnail(&image, options);
    drop(image);
    result.map_err(error_to_wit)
}

fn info_to_wit(i: core::ImageInfo) -> wit::ImageInfo {
    wit::ImageInfo {
        format: match i.format {
            core::ImageFormat::Jpeg => wit::ImageFormat::Jpeg,
            core::ImageFormat::Png => wit::ImageFormat::Png,
            core::ImageFormat::Gif => wit::ImageFormat::Gif,
            core::ImageFormat::Bmp => wit::ImageFormat::Bmp,
            core::ImageFormat::Webp => wit::ImageFormat::Webp,
            core::ImageFormat::Tiff => wit::ImageFormat::Tiff,
            core::ImageFormat::Ico => wit::ImageFormat::Ico,
        },
        width: i.width,
        height: i.height,
        has_alpha: i.has_alpha,
        frame_count: i.frame_count,
        orientation: i.orientation,
    }
}

fn error_to_wit(e: core::Error) -> wit::Error {
    match e {
        core::Error::UnsupportedFormat(m) => wit::Error::UnsupportedFormat(m),
        core::Error::MalformedImage(m) => wit::Error::MalformedImage(m),
        core::Error::TooLarge {
            width,
            height,
            max_pixels,
        } => wit::Error::TooLarge(wit::SizeLimit {
            width,
            height,
            max_pixels,
        }),
        core::Error::InvalidOptions(m) => wit::Error::InvalidOptions(m),
        core::Error::Internal(m) => wit::Error::Internal(m),
    }
}

bindings::export!(Component with_types_in bindings);
