//! The thumbnail request: what a client may ask of a thumbnail, in one place, for every front
//! end (the HTTP API's query, form and JSON, batches, signed URLs, the CLI, the dashboard and
//! the edge component).
//!
//! - [`options`]: every option's name, kind, range, default and help text, and how it is read
//!   from text; the front ends derive their flags, fields and documents from [`OPTIONS`].
//! - [`Raw`] collects option text from any source (later sources win) and [`Raw::parse`] turns
//!   it into a checked [`Request`], or one typed [`OptionError`].
//! - [`Request::canonical`]: the options that differ from the defaults, as text pairs, for
//!   signatures, dedup keys and forwarding a request.
//! - [`accept`]: the `Accept` negotiation `format=auto` follows.
//! - [`make`]: the source-dependent choices (`enlarge=false`, `auto`) settled against the
//!   image, with as few resizer calls as possible, the same way on every runtime.

pub mod accept;
pub mod make;
pub mod options;

pub use accept::Accepts;
pub use make::{Backend, make};
pub use options::{Kind, OPTIONS, OptionDef};

use crate::sizing;
use crate::{DEFAULT_QUALITY, Fit, Gravity, OutputFormat};

/// What a client asked the thumbnail to be, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Request {
    /// Box width; 0 means automatic, from the aspect ratio.
    pub width: u32,
    /// Box height; 0 means automatic.
    pub height: u32,
    pub fit: Fit,
    pub format: Format,
    pub quality: u8,
    /// Whether a source smaller than the box is scaled up to it.
    #[cfg_attr(feature = "serde", serde(default = "stored_before_enlarge"))]
    pub enlarge: bool,
    /// Device pixel ratio: multiplies the box.
    #[cfg_attr(feature = "serde", serde(default = "one"))]
    pub dpr: f32,
    /// Where a `cover` crop is taken.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Gravity::is_center"))]
    pub gravity: Gravity,
    /// Keep GIF and WebP animations.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "std::ops::Not::not"))]
    pub animated: bool,
}

/// Jobs stored before `enlarge` existed were always enlarged; they keep that when retried.
#[cfg(feature = "serde")]
fn stored_before_enlarge() -> bool {
    true
}

#[cfg(feature = "serde")]
fn one() -> f32 {
    1.0
}

impl Default for Request {
    fn default() -> Self {
        Request {
            width: sizing::DEFAULT_SIDE,
            height: sizing::DEFAULT_SIDE,
            fit: Fit::Contain,
            // Small lossy files for photos, in the best format the client reads, and PNG
            // where there is alpha (the README says why).
            format: Format::Auto,
            quality: DEFAULT_QUALITY,
            enlarge: false,
            dpr: 1.0,
            gravity: Gravity::Center,
            animated: false,
        }
    }
}

/// A request and what its client reads: everything that decides the bytes made (as stored
/// with a job; the `Accept` facts only where the format is `auto`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Negotiated {
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub request: Request,
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub accepts: Accepts,
}

impl Negotiated {
    pub fn new(request: Request, accepts: Accepts) -> Negotiated {
        Negotiated {
            request,
            accepts: accepts.for_format(request.format),
        }
    }

    /// The format to make first, before the image is known: the one asked for, or `auto`'s
    /// guess for an opaque still image.
    pub fn first_format(&self) -> OutputFormat {
        make::choose_format(&self.request, self.accepts, None, None)
    }
}

/// The output format asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Format {
    /// Chosen per request and image: see [`make::choose_format`].
    Auto,
    Png,
    Jpeg,
    Webp,
    Avif,
    Gif,
}

impl Format {
    /// Every value, in the order the documents list them.
    pub const ALL: [Format; 6] = [
        Format::Auto,
        Format::Png,
        Format::Jpeg,
        Format::Webp,
        Format::Avif,
        Format::Gif,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Webp => "webp",
            Format::Avif => "avif",
            Format::Gif => "gif",
        }
    }

    pub fn parse(text: &str) -> Option<Format> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Format::Auto),
            "jpg" => Some(Format::Jpeg),
            other => Format::ALL.into_iter().find(|f| f.name() == other),
        }
    }

    /// The format itself, or `None` for `auto`.
    pub fn fixed(self) -> Option<OutputFormat> {
        match self {
            Format::Auto => None,
            Format::Png => Some(OutputFormat::Png),
            Format::Jpeg => Some(OutputFormat::Jpeg),
            Format::Webp => Some(OutputFormat::Webp),
            Format::Avif => Some(OutputFormat::Avif),
            Format::Gif => Some(OutputFormat::Gif),
        }
    }
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Png => Format::Png,
            OutputFormat::Jpeg => Format::Jpeg,
            OutputFormat::Webp => Format::Webp,
            OutputFormat::Avif => Format::Avif,
            OutputFormat::Gif => Format::Gif,
        }
    }
}

/// Why a request's options were refused: which option, what it was, what it must be. Every
/// front end shows it the same way (the HTTP API as a 422 `invalid_options`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be {expected}, got {got:?}")]
pub struct OptionError {
    pub name: &'static str,
    pub got: String,
    pub expected: String,
}

/// Option text from any number of sources (query, form fields, JSON, flags); a later value
/// of the same option replaces an earlier one, so a body's fields win over the query's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Raw(Vec<(&'static str, String)>);

impl Raw {
    /// Records `value` for the option `name`; `false` if no option has that name (the
    /// caller decides whether that is an error: a route may take other parameters).
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> bool {
        let Some(def) = options::find(name) else {
            return false;
        };
        self.0.retain(|(n, _)| *n != def.name);
        self.0.push((def.name, value.into()));
        true
    }

    /// Text pairs, unknown names left out (the caller refuses them where it must).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Raw {
        let mut raw = Raw::default();
        for (name, value) in pairs {
            raw.set(name, value);
        }
        raw
    }

    /// `self`'s values over `base`'s.
    pub fn over(self, mut base: Raw) -> Raw {
        for (name, value) in self.0 {
            base.set(name, value);
        }
        base
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(n, v)| (*n, v.as_str()))
    }

    /// Checks each value on its own (not how they go together), so a value that a later
    /// source replaces is still refused if it is not one the option takes.
    pub fn check_values(&self) -> Result<(), OptionError> {
        for (name, value) in &self.0 {
            let def = options::find(name).expect("Raw holds only options");
            (def.apply)(&mut Request::default(), value).ok_or_else(|| def.error(value))?;
        }
        Ok(())
    }

    /// Reads and checks every option.
    pub fn parse(&self) -> Result<Request, OptionError> {
        let mut request = Request::default();
        let sides_given = self.0.iter().any(|(n, _)| *n == "width" || *n == "height");
        if sides_given {
            // One side given: the other follows the aspect ratio.
            (request.width, request.height) = (0, 0);
        }
        for def in OPTIONS {
            if let Some((_, value)) = self.0.iter().find(|(n, _)| *n == def.name) {
                (def.apply)(&mut request, value).ok_or_else(|| def.error(value))?;
            }
        }
        request.check()?;
        Ok(request)
    }
}

impl Request {
    /// The checks that span options: a box, and the box times `dpr` within the limit.
    pub fn check(&self) -> Result<(), OptionError> {
        if self.width == 0 && self.height == 0 {
            return Err(OptionError {
                name: "height",
                got: "0".into(),
                expected: "a side when width is 0 too (both automatic leaves no box): give one, \
                           or neither for the default 100x100"
                    .into(),
            });
        }
        self.sizing().validate()
    }

    /// The options that differ from the defaults, as text [`Raw::parse`] reads back to an
    /// equal request, in [`OPTIONS`] order: the canonical form for signatures, dedup keys
    /// and requests forwarded to a server. Both sides come together, since one alone means
    /// the other is automatic.
    pub fn canonical(&self) -> Vec<(&'static str, String)> {
        let default = Request::default();
        OPTIONS
            .iter()
            .filter_map(|def| {
                let value = (def.show)(self);
                let differs = match def.name {
                    "width" | "height" => (self.width, self.height) != (default.width, default.height),
                    _ => value != (def.show)(&default),
                };
                differs.then_some((def.name, value))
            })
            .collect()
    }

    /// [`Request::canonical`] as a query string.
    pub fn canonical_query(&self) -> String {
        self.canonical()
            .iter()
            .map(|(n, v)| format!("{n}={}", options::query_escape(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    pub fn sizing(&self) -> sizing::Request {
        sizing::Request {
            width: self.width,
            height: self.height,
            fit: self.fit,
            enlarge: self.enlarge,
            dpr: self.dpr,
        }
    }
}

#[cfg(test)]
mod tests;
