//! edgethumb's image logic: read a header ([`probe`]), and turn an image into a thumbnail
//! ([`thumbnail`]).
//!
//! This crate is plain Rust so it can be unit-tested, benchmarked and fuzzed natively; the
//! resizer component is a thin wit-bindgen wrapper around it, and the host uses the same types.
//!
//! Layout:
//! - [`header`]: format sniffing and header-only facts (frame counts) without decoding pixels.
//! - [`pipeline`]: decode with a pixel limit checked first, orient, resize, encode.
//! - [`request`]: the thumbnail request every front end takes: options, parsing, `Accept`,
//!   and making it against a source.
//! - [`resize`]: an integer box pre-shrink where the reduction is large, then Lanczos3.
//!
//! Hostile input is the normal case here: every function returns [`Error`] instead of
//! panicking, and the pixel limit is checked against the header before a pixel buffer exists.

pub mod animation;
pub mod codes;
pub mod colour;
pub mod formats;
pub mod gravity;
pub mod header;
pub mod pipeline;
pub mod request;
pub mod resize;
pub mod sizing;
pub mod smartcrop;

pub use gravity::Gravity;
pub use pipeline::{probe, thumbnail};

/// Largest width or height a thumbnail may have.
pub const MAX_OUTPUT_SIDE: u32 = 4096;
/// Default pixel limit: phone photos are 12–50 MP, so 50 MP and a little margin.
pub const DEFAULT_MAX_PIXELS: u64 = 52_000_000;
/// Default JPEG and WebP quality.
pub const DEFAULT_QUALITY: u8 = 80;
/// Worst-case bytes of guest memory per source pixel: a 16-bit RGBA decode (8 bytes) plus
/// the decoder's working copy of the same size (TIFF strips, interlaced PNG passes).
pub const BYTES_PER_PIXEL_BUDGET: u64 = 16;

/// Source formats this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    Bmp,
    Webp,
    Tiff,
    Ico,
}

impl ImageFormat {
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::Gif => "gif",
            ImageFormat::Bmp => "bmp",
            ImageFormat::Webp => "webp",
            ImageFormat::Tiff => "tiff",
            ImageFormat::Ico => "ico",
        }
    }
}

/// Formats a thumbnail can be encoded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum OutputFormat {
    #[default]
    Png,
    Jpeg,
    Webp,
    /// WIT 1.1 (`thumbnails`); a 1.0 component cannot make it.
    Avif,
    /// WIT 1.1: a still GIF, or an animation kept by `animated`.
    Gif,
}

impl OutputFormat {
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
            OutputFormat::Gif => "gif",
        }
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            OutputFormat::Png => "image/png",
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Avif => "image/avif",
            OutputFormat::Gif => "image/gif",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Some(OutputFormat::Png),
            "jpeg" | "jpg" => Some(OutputFormat::Jpeg),
            "webp" => Some(OutputFormat::Webp),
            "avif" => Some(OutputFormat::Avif),
            "gif" => Some(OutputFormat::Gif),
            _ => None,
        }
    }
}

/// How the source is fitted into the requested box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Fit {
    /// Keep the aspect ratio inside the box.
    #[default]
    Contain,
    /// Keep the aspect ratio, fill the box, crop the centre.
    Cover,
    /// Stretch to the box.
    Fill,
}

impl Fit {
    pub fn name(self) -> &'static str {
        match self {
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Fill => "fill",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "contain" => Some(Fit::Contain),
            "cover" => Some(Fit::Cover),
            "fill" => Some(Fit::Fill),
            _ => None,
        }
    }
}

/// Header facts about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ImageInfo {
    pub format: ImageFormat,
    /// Displayed width (EXIF orientation applied).
    pub width: u32,
    /// Displayed height (EXIF orientation applied).
    pub height: u32,
    pub has_alpha: bool,
    /// Animation frames, TIFF pages or ICO entries; 1 for a still image.
    pub frame_count: u32,
    /// EXIF orientation 1–8; 1 means as stored.
    pub orientation: u8,
}

/// What to make of an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
    pub format: OutputFormat,
    pub quality: u8,
    pub max_pixels: u64,
    /// Where a `cover` crop is taken (WIT 1.1; a 1.0 component always centres).
    pub gravity: Gravity,
    /// GIF and WebP animations keep their frames, as animated GIF or WebP (`format`), not a
    /// still of the first frame (WIT 1.1).
    pub animated: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            width: 100,
            height: 100,
            fit: Fit::Contain,
            format: OutputFormat::Png,
            quality: DEFAULT_QUALITY,
            max_pixels: DEFAULT_MAX_PIXELS,
            gravity: Gravity::Center,
            animated: false,
        }
    }
}

impl Options {
    /// Checks every field's range, so a bad request fails before any decoding.
    pub fn validate(&self) -> Result<(), Error> {
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if v == 0 || v > MAX_OUTPUT_SIDE {
                return Err(Error::InvalidOptions(format!(
                    "{name} must be between 1 and {MAX_OUTPUT_SIDE}, got {v}"
                )));
            }
        }
        if !(1..=100).contains(&self.quality) {
            return Err(Error::InvalidOptions(format!(
                "quality must be between 1 and 100, got {}",
                self.quality
            )));
        }
        if self.max_pixels == 0 {
            return Err(Error::InvalidOptions("max_pixels must be positive".into()));
        }
        Ok(())
    }
}

/// An encoded thumbnail and what it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
    pub source: ImageInfo,
}

/// Why an image could not be probed or thumbnailed. Every expected failure has its own
/// variant, so callers can map them to responses without reading strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    #[error("malformed image: {0}")]
    MalformedImage(String),
    #[error("image is {width}x{height} pixels, more than the limit of {max_pixels}")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A bug, not a property of the input (e.g. an encoder refusing a buffer we built).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code clients see for this error, on the host and at the edge.
    pub fn code(&self) -> codes::Code {
        use codes::Code;
        match self {
            Error::UnsupportedFormat(_) => Code::UnsupportedFormat,
            Error::MalformedImage(_) => Code::MalformedImage,
            Error::TooLarge { .. } => Code::ImageTooLarge,
            Error::InvalidOptions(_) => Code::InvalidOptions,
            Error::Internal(_) => Code::ComponentInternalError,
        }
    }
}
