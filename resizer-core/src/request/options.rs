//! Every option a thumbnail request takes: its name, kind, range, default and help text, how
//! it is read from text and written back. The HTTP API's parameters and bodies, its OpenAPI
//! document, the CLI's flags, the dashboard's form and the edge component are all made from
//! this table, so adding an option is one entry here plus its implementation.

use crate::sizing::MAX_DPR;
use crate::{Fit, Gravity, MAX_OUTPUT_SIDE};

use super::{Format, OptionError, Request};

/// What kind of value an option takes, for documents, forms and flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A whole number in a range.
    Integer { min: u32, max: u32 },
    /// A decimal number in a range.
    Number { min: f32, max: f32 },
    /// `true` or `false`.
    Bool,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Text in the shape of this regular expression (anchored, lowercase forms).
    Text { pattern: &'static str },
}

/// One option.
pub struct OptionDef {
    pub name: &'static str,
    pub kind: Kind,
    /// The default, as text (for help and documents); `None` where it depends on others.
    pub default: Option<&'static str>,
    /// A valid value, for documents and forms to start from.
    pub example: &'static str,
    /// One or two sentences for `--help`, the API document and the dashboard.
    pub help: &'static str,
    /// What a valid value is, for errors: "must be {expected}".
    pub expected: &'static str,
    /// Reads the value into the request; `None` if it is not valid.
    pub apply: fn(&mut Request, &str) -> Option<()>,
    /// The request's value as text that `apply` reads back.
    pub show: fn(&Request) -> String,
}

impl OptionDef {
    pub fn error(&self, got: &str) -> OptionError {
        OptionError {
            name: self.name,
            got: got.to_string(),
            expected: self.expected.to_string(),
        }
    }
}

impl std::fmt::Debug for OptionDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptionDef")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The option named `name`.
pub fn find(name: &str) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|d| d.name == name)
}

const FORMATS: &[&str] = &["auto", "png", "jpeg", "webp", "avif", "gif"];
const FITS: &[&str] = &["contain", "cover", "fill"];

/// Every option, in the order documents list them.
pub const OPTIONS: &[OptionDef] = &[
    OptionDef {
        name: "width",
        example: "100",
        kind: Kind::Integer {
            min: 0,
            max: MAX_OUTPUT_SIDE,
        },
        default: None,
        help: "Box width in pixels, 0 to 4096. 0 or missing: from the source's aspect ratio \
               (neither width nor height: the 100x100 default box).",
        expected: "a whole number from 0 (automatic) to 4096",
        apply: |r, v| {
            r.width = side(v)?;
            Some(())
        },
        show: |r| r.width.to_string(),
    },
    OptionDef {
        name: "height",
        example: "100",
        kind: Kind::Integer {
            min: 0,
            max: MAX_OUTPUT_SIDE,
        },
        default: None,
        help: "Box height in pixels, 0 to 4096. 0 or missing: from the source's aspect ratio.",
        expected: "a whole number from 0 (automatic) to 4096",
        apply: |r, v| {
            r.height = side(v)?;
            Some(())
        },
        show: |r| r.height.to_string(),
    },
    OptionDef {
        name: "fit",
        example: "contain",
        kind: Kind::Choice(FITS),
        default: Some("contain"),
        help: "contain: inside the box, keeping the aspect ratio; cover: fill the box and crop \
               what falls outside (see gravity); fill: stretch to the box.",
        expected: "contain, cover or fill",
        apply: |r, v| {
            r.fit = Fit::parse(v.trim())?;
            Some(())
        },
        show: |r| r.fit.name().into(),
    },
    OptionDef {
        name: "format",
        example: "auto",
        kind: Kind::Choice(FORMATS),
        default: Some("auto"),
        help: "auto: WebP where the request's Accept names it, else AVIF where Accept names it \
               (outputs up to 2 megapixels), else JPEG, or PNG for images with alpha; \
               animations (animated=true) become WebP or GIF. Or one of png, jpeg, webp, avif \
               (up to 2 megapixels), gif.",
        expected: "auto, png, jpeg, webp, avif or gif",
        apply: |r, v| {
            r.format = Format::parse(v)?;
            Some(())
        },
        show: |r| r.format.name().into(),
    },
    OptionDef {
        name: "quality",
        example: "80",
        kind: Kind::Integer { min: 1, max: 100 },
        default: Some("80"),
        help: "Quality of the lossy formats (jpeg, webp, avif), 1 to 100.",
        expected: "a whole number from 1 to 100",
        apply: |r, v| {
            r.quality = v.trim().parse().ok().filter(|q| (1..=100).contains(q))?;
            Some(())
        },
        show: |r| r.quality.to_string(),
    },
    OptionDef {
        name: "enlarge",
        example: "false",
        kind: Kind::Bool,
        default: Some("false"),
        help: "Scale a source smaller than the box up to it (otherwise it keeps its size).",
        expected: "true or false",
        apply: |r, v| {
            r.enlarge = flag(v)?;
            Some(())
        },
        show: |r| r.enlarge.to_string(),
    },
    OptionDef {
        name: "dpr",
        example: "1",
        kind: Kind::Number {
            min: 1.0,
            max: MAX_DPR,
        },
        default: Some("1"),
        help: "Device pixel ratio, 1 to 4 (decimals allowed): multiplies the box, which must stay \
               within 4096 pixels.",
        expected: "a number from 1 to 4",
        apply: |r, v| {
            r.dpr = v.trim().parse().ok().filter(|x| (1.0..=MAX_DPR).contains(x))?;
            Some(())
        },
        show: |r| r.dpr.to_string(),
    },
    OptionDef {
        name: "gravity",
        example: "smart",
        kind: Kind::Text {
            pattern: "^(center|centre|c|north|n|north-east|northeast|ne|east|e|south-east|southeast|se\
                      |south|s|south-west|southwest|sw|west|w|north-west|northwest|nw|smart\
                      |focus:(0(\\.[0-9]{1,6})?|1(\\.0{1,6})?),(0(\\.[0-9]{1,6})?|1(\\.0{1,6})?))$",
        },
        default: Some("center"),
        help: "Where a cover crop is taken: center, a compass point (north, north-east, ... \
               north-west, or n, ne, ...), smart (detail, distinct colour and skin tone), or \
               focus:x,y (fractions of the width and height).",
        expected: "center, a compass point (north, north-east, ... north-west), smart, or \
                   focus:x,y with x and y from 0 to 1",
        apply: |r, v| {
            r.gravity = Gravity::parse(v)?;
            Some(())
        },
        show: |r| r.gravity.name(),
    },
    OptionDef {
        name: "animated",
        example: "false",
        kind: Kind::Bool,
        default: Some("false"),
        help: "Keep GIF and WebP animations, as animated WebP or GIF (frames x pixels must stay \
               under the pixel limit); otherwise the first frame is thumbnailed.",
        expected: "true or false",
        apply: |r, v| {
            r.animated = flag(v)?;
            Some(())
        },
        show: |r| r.animated.to_string(),
    },
];

fn side(v: &str) -> Option<u32> {
    v.trim().parse().ok().filter(|n| *n <= MAX_OUTPUT_SIDE)
}

fn flag(v: &str) -> Option<bool> {
    match v.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Percent-encodes a query value (the option values are short ASCII words and numbers, but
/// `focus:x,y` has reserved characters).
pub(crate) fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}
