//! The query string: the host's options and ranges (width and height 1–4096, default 100;
//! fit; format; quality 1–100), unknown names refused by name as the host does.

use resizer_core::{Fit, MAX_OUTPUT_SIDE, Options, OutputFormat};

use crate::reply::Reply;

const OPTION_NAMES: [&str; 5] = ["width", "height", "fit", "format", "quality"];

/// Options plus the route's own parameters (`url`).
pub struct Parsed {
    pub options: Options,
    extras: Vec<(String, String)>,
}

impl Parsed {
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extras
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `query`; `extras` are the other names the route takes.
pub fn parse(query: &str, extras: &[&str]) -> Result<Parsed, Reply> {
    let mut options = Options::default();
    let mut taken = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let (name, value) = (name.into_owned(), value.into_owned());
        match name.as_str() {
            "width" => options.width = side("width", &value)?,
            "height" => options.height = side("height", &value)?,
            "fit" => {
                options.fit = Fit::parse(value.trim())
                    .ok_or_else(|| invalid(format!("fit must be contain, cover or fill, got {value:?}")))?
            }
            "format" => {
                options.format = OutputFormat::parse(value.trim())
                    .ok_or_else(|| invalid(format!("format must be png, jpeg or webp, got {value:?}")))?
            }
            "quality" => {
                options.quality = value
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| invalid(format!("quality must be from 1 to 100, got {value:?}")))?
            }
            other if extras.contains(&other) => taken.push((name, value)),
            other => {
                let allowed: Vec<&str> = OPTION_NAMES.iter().chain(extras).copied().collect();
                return Err(Reply::problem(
                    400,
                    "bad_request",
                    format!(
                        "unknown query parameter {other:?}; this route takes {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(Parsed {
        options,
        extras: taken,
    })
}

fn side(name: &str, value: &str) -> Result<u32, Reply> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_OUTPUT_SIDE).contains(n))
        .ok_or_else(|| {
            invalid(format!(
                "{name} must be a whole number from 1 to {MAX_OUTPUT_SIDE}, got {value:?}"
            ))
        })
}

fn invalid(detail: String) -> Reply {
    Reply::problem(422, "invalid_options", detail)
}
