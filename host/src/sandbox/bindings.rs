//! Host-side bindings of the `edgethumb:resizer` world and conversions to the
//! [`resizer_core`] types the rest of the host speaks.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "current-thumbnailer",
});

pub(crate) use exports::edgethumb::resizer::resizer as wit;
pub(crate) use exports::edgethumb::resizer::thumbnails as v11;
use resizer_core as core;

/// 1.0's options; `None` for what 1.0 cannot say (AVIF).
pub(crate) fn options_to_wit(o: &core::Options) -> Option<wit::Options> {
    Some(wit::Options {
        width: o.width,
        height: o.height,
        fit: fit_to_wit(o.fit),
        format: match o.format {
            core::OutputFormat::Png => wit::OutputFormat::Png,
            core::OutputFormat::Jpeg => wit::OutputFormat::Jpeg,
            core::OutputFormat::Webp => wit::OutputFormat::Webp,
            core::OutputFormat::Avif | core::OutputFormat::Gif => return None,
        },
        quality: o.quality,
        max_pixels: o.max_pixels,
    })
}

pub(crate) fn request_to_wit(o: &core::Options) -> v11::Request {
    v11::Request {
        width: o.width,
        height: o.height,
        fit: fit_to_wit(o.fit),
        format: match o.format {
            core::OutputFormat::Png => v11::OutputFormat::Png,
            core::OutputFormat::Jpeg => v11::OutputFormat::Jpeg,
            core::OutputFormat::Webp => v11::OutputFormat::Webp,
            core::OutputFormat::Avif => v11::OutputFormat::Avif,
            core::OutputFormat::Gif => v11::OutputFormat::Gif,
        },
        quality: o.quality,
        max_pixels: o.max_pixels,
        gravity: gravity_to_wit(o.gravity),
        animated: o.animated,
    }
}

fn fit_to_wit(f: core::Fit) -> wit::Fit {
    match f {
        core::Fit::Contain => wit::Fit::Contain,
        core::Fit::Cover => wit::Fit::Cover,
        core::Fit::Fill => wit::Fit::Fill,
    }
}

fn gravity_to_wit(g: core::Gravity) -> v11::Gravity {
    use v11::Gravity as G;
    match g {
        core::Gravity::Center => G::Center,
        core::Gravity::North => G::North,
        core::Gravity::NorthEast => G::NorthEast,
        core::Gravity::East => G::East,
        core::Gravity::SouthEast => G::SouthEast,
        core::Gravity::South => G::South,
        core::Gravity::SouthWest => G::SouthWest,
        core::Gravity::West => G::West,
        core::Gravity::NorthWest => G::NorthWest,
        core::Gravity::Focus { x, y } => G::Focus(v11::Point { x, y }),
        core::Gravity::Smart => G::Smart,
    }
}

pub(crate) fn info_from_wit(i: wit::ImageInfo) -> core::ImageInfo {
    core::ImageInfo {
        format: match i.format {
            wit::ImageFormat::Jpeg => core::ImageFormat::Jpeg,
            wit::ImageFormat::Png => core::ImageFormat::Png,
            wit::ImageFormat::Gif => core::ImageFormat::Gif,
            wit::ImageFormat::Bmp => core::ImageFormat::Bmp,
            wit::ImageFormat::Webp => core::ImageFormat::Webp,
            wit::ImageFormat::Tiff => core::ImageFormat::Tiff,
            wit::ImageFormat::Ico => core::ImageFormat::Ico,
        },
        width: i.width,
        height: i.height,
        has_alpha: i.has_alpha,
        frame_count: i.frame_count,
        orientation: i.orientation,
    }
}

pub(crate) fn thumbnail_from_wit(t: wit::EncodedThumbnail) -> core::Thumbnail {
    core::Thumbnail {
        data: t.data,
        width: t.width,
        height: t.height,
        format: match t.format {
            wit::OutputFormat::Png => core::OutputFormat::Png,
            wit::OutputFormat::Jpeg => core::OutputFormat::Jpeg,
            wit::OutputFormat::Webp => core::OutputFormat::Webp,
        },
        source: info_from_wit(t.source),
    }
}

pub(crate) fn thumbnail_from_v11(t: v11::Thumbnail) -> core::Thumbnail {
    core::Thumbnail {
        data: t.data,
        width: t.width,
        height: t.height,
        format: match t.format {
            v11::OutputFormat::Png => core::OutputFormat::Png,
            v11::OutputFormat::Jpeg => core::OutputFormat::Jpeg,
            v11::OutputFormat::Webp => core::OutputFormat::Webp,
            v11::OutputFormat::Avif => core::OutputFormat::Avif,
            v11::OutputFormat::Gif => core::OutputFormat::Gif,
        },
        source: info_from_wit(t.source),
    }
}

pub(crate) fn error_from_wit(e: wit::Error) -> core::Error {
    match e {
        wit::Error::UnsupportedFormat(m) => core::Error::UnsupportedFormat(m),
        wit::Error::MalformedImage(m) => core::Error::MalformedImage(m),
        wit::Error::TooLarge(s) => core::Error::TooLarge {
            width: s.width,
            height: s.height,
            max_pixels: s.max_pixels,
        },
        wit::Error::InvalidOptions(m) => core::Error::InvalidOptions(m),
        wit::Error::Internal(m) => core::Error::Internal(m),
    }
}
