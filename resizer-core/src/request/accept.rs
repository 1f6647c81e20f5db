//! What the client reads, from its `Accept` header: all that `format=auto` needs to know.

/// The image formats beyond JPEG and PNG a client says it reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Accepts {
    #[cfg_attr(
        feature = "serde",
        serde(rename = "accepts_webp", default, skip_serializing_if = "std::ops::Not::not")
    )]
    pub webp: bool,
    #[cfg_attr(
        feature = "serde",
        serde(rename = "accepts_avif", default, skip_serializing_if = "std::ops::Not::not")
    )]
    pub avif: bool,
}

impl Accepts {
    /// From an `Accept` header; no header (the CLI, a plain `curl`) accepts neither.
    pub fn from_header(accept: Option<&str>) -> Accepts {
        let names = |mime| accept.is_some_and(|a| names(a, mime));
        Accepts {
            webp: names("image/webp"),
            avif: names("image/avif"),
        }
    }

    /// What matters for `format`: only `auto` follows `Accept`, so for any other format the
    /// header must not split equal work (dedup keys) or caches (`Vary`).
    pub fn for_format(self, format: super::Format) -> Accepts {
        if format == super::Format::Auto {
            self
        } else {
            Accepts::default()
        }
    }
}

/// Whether an `Accept` header names `mime` (exactly, not through a wildcard, as imgproxy
/// and browsers' image requests go) with a non-zero quality.
pub fn names(accept: &str, mime: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        parts.next().is_some_and(|m| m.eq_ignore_ascii_case(mime))
            && parts.all(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_none_or(|q| q > 0.0)
            })
    })
}
