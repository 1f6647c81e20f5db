//! Answers: a thumbnail with cache headers, or an RFC 9457 problem+json.

use wasip2::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

use resizer_core::codes::Code;
use resizer_core::request::{Backend, Format, Negotiated};
use resizer_core::{DEFAULT_MAX_PIXELS, Error, ImageInfo, Options, Thumbnail};

/// A whole answer, built before anything is sent.
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// A problem document with the host's `type` URIs, codes and statuses.
    pub fn problem(code: Code, detail: impl Into<String>) -> Reply {
        let detail: String = detail.into();
        let status = code.status();
        let body = format!(
            r#"{{"type":"https://edgethumb.dev/problems/{code}","title":{title},"status":{status},"detail":{detail},"code":"{code}"}}"#,
            title = json_string(title(status)),
            detail = json_string(detail.trim_end()),
        );
        Reply {
            status,
            headers: vec![("content-type", "application/problem+json".into())],
            body: body.into_bytes(),
        }
    }

    /// Makes the thumbnail `options` ask for, as the host does (the same choices, so the same
    /// bytes); its ETag is a hash of the output, so a CDN can revalidate. An answer whose
    /// format followed `Accept` (`format=auto`) varies by it.
    pub fn thumbnail(image: &[u8], options: &Negotiated, cache_control: &str) -> Reply {
        let made = resizer_core::request::make(
            &InProcess,
            image,
            &options.request,
            options.accepts,
            DEFAULT_MAX_PIXELS,
        );
        match made {
            Ok((t, ())) => {
                let mut headers = vec![
                    ("content-type", t.format.mime_type().into()),
                    ("cache-control", cache_control.into()),
                    ("etag", format!("\"{:016x}\"", fnv1a(&t.data))),
                ];
                if options.request.format == Format::Auto {
                    headers.push(("vary", "Accept".into()));
                }
                Reply {
                    status: 200,
                    headers,
                    body: t.data,
                }
            }
            Err(e) => Reply::image_error(&e),
        }
    }

    /// A bodiless 304 with the same validators when `if_none_match` (an `If-None-Match`
    /// header) names this thumbnail's ETag or is `*`.
    pub fn not_modified_if(self, if_none_match: Option<&str>) -> Reply {
        let etag = self
            .headers
            .iter()
            .find(|(n, _)| *n == "etag")
            .map(|(_, v)| v.clone());
        let matches = match (&etag, if_none_match) {
            (Some(etag), Some(tags)) => tags
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag),
            _ => false,
        };
        if self.status != 200 || !matches {
            return self;
        }
        Reply {
            status: 304,
            headers: self
                .headers
                .into_iter()
                .filter(|(n, _)| *n != "content-type")
                .collect(),
            body: Vec::new(),
        }
    }

    pub fn image_error(e: &Error) -> Reply {
        Reply::problem(e.code(), e.to_string())
    }

    /// Sends the answer through the handler's outparam.
    pub fn send(self, out: ResponseOutparam) {
        let headers = Fields::new();
        for (name, value) in &self.headers {
            // Names and values here are ours and valid; a refusal would only drop a header.
            let _ = headers.append(name, value.as_bytes());
        }
        if self.status != 304 {
            let _ = headers.append("content-length", self.body.len().to_string().as_bytes());
        }
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(self.status);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = body.write() {
            // At most 4096 bytes per blocking write, as wasi:io/streams allows.
            for chunk in self.body.chunks(4096) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    break;
                }
            }
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

/// resizer-core in this component's own instance: the platform's limits are its sandbox.
struct InProcess;

impl Backend for InProcess {
    type Error = Error;
    type Stats = ();

    fn probe(&self, image: &[u8]) -> Result<ImageInfo, Error> {
        resizer_core::probe(image)
    }

    fn thumbnail(&self, image: &[u8], options: &Options) -> Result<(Thumbnail, ()), Error> {
        resizer_core::thumbnail(image, options).map(|t| (t, ()))
    }
}

fn title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    }
}

/// A JSON string literal (the component has no serde; the texts here are short).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// 64-bit FNV-1a: a cheap fingerprint for the ETag (not a security hash).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
