//! The query string, read by the one request vocabulary ([`resizer_core::request`]) that the
//! host's API, its CLI and its batches use, so every option, default and error is theirs;
//! unknown names are refused by name, as the host does.

use resizer_core::codes::Code;
use resizer_core::request::{OPTIONS, Raw, Request};

use crate::reply::Reply;

/// The request plus the route's own parameters (`url`).
pub struct Parsed {
    pub request: Request,
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
    let mut raw = Raw::default();
    let mut taken = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if extras.contains(&name.as_ref()) {
            taken.push((name.into_owned(), value.into_owned()));
        } else if !raw.set(&name, value.into_owned()) {
            let allowed: Vec<&str> = OPTIONS
                .iter()
                .map(|d| d.name)
                .chain(extras.iter().copied())
                .collect();
            return Err(Reply::problem(
                Code::BadRequest,
                format!(
                    "unknown query parameter {name} for this route; it takes {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    let request = raw
        .parse()
        .map_err(|e| Reply::problem(Code::InvalidOptions, e.to_string()))?;
    Ok(Parsed {
        request,
        extras: taken,
    })
}
