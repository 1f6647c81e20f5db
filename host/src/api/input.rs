//! Reading a submission in any of the forms clients send: `multipart/form-data` (field
//! `file`, options as further fields), a raw `image/*` (or octet-stream) body, or JSON with
//! `image_base64`. Options come from JSON fields, form fields or the query string. The image
//! type is sniffed from the bytes; the declared content type is never trusted for it.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Multipart, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use resizer_core::MAX_OUTPUT_SIDE;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::Owner;
use super::error::{ApiError, UrlField};
use crate::store::{FormatChoice, JobOptions};

/// A query string read into `T`, refused with a problem+json 400 that says what is wrong
/// (axum's own `Query` answers in plain text). Unknown parameters never get this far: the
/// `params` middleware refuses them, naming those the route's document allows, so one route
/// may read its query into several structs.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let why = text.trim_start_matches("Failed to deserialize query string: ");
                Err(ApiError::BadRequest(format!(
                    "the query string is invalid: {why}"
                )))
            }
        }
    }
}

/// Options as text, from the query string or form fields; all optional. Unknown query
/// parameters are refused by the `params` middleware, from the document, per route.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OptionParams {
    /// Box width, 1 to 4096; 0 or missing: from the aspect ratio (neither side: 100x100).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 4096)]
    pub width: Option<String>,
    /// Box height, 1 to 4096; 0 or missing: from the aspect ratio.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 4096)]
    pub height: Option<String>,
    /// contain (default), cover or fill.
    #[param(value_type = Option<Fit>)]
    pub fit: Option<String>,
    /// auto (default): WebP where `Accept` allows it (or else AVIF), else JPEG, or PNG for
    /// images with alpha; or png, jpeg, webp, avif (boxes up to 2 megapixels).
    #[param(value_type = Option<Format>)]
    pub format: Option<String>,
    /// JPEG and WebP quality, 1 to 100 (default 80).
    #[param(value_type = Option<u8>, minimum = 1, maximum = 100)]
    pub quality: Option<String>,
    /// Scale a source smaller than the box up to it (default false: it keeps its size).
    #[param(value_type = Option<bool>)]
    pub enlarge: Option<String>,
    /// Device pixel ratio, 1 to 4 (default 1): multiplies the box.
    #[param(value_type = Option<f32>, minimum = 1, maximum = 4)]
    pub dpr: Option<String>,
    /// Where a `cover` crop is taken: center (default), north, north-east, east, south-east,
    /// south, south-west, west, north-west, smart (content-aware), or focus:x,y (fractions).
    #[param(value_type = Option<String>, example = "smart")]
    pub gravity: Option<String>,
    /// Keep GIF and WebP animations: they become animated GIFs (default false: a still of
    /// the first frame). Frames x pixels must stay under the pixel limit.
    #[param(value_type = Option<bool>)]
    pub animated: Option<String>,
    /// Query only: an http(s) URL the finished job is POSTed to.
    #[param(max_length = 4096)]
    pub callback_url: Option<String>,
}

/// The source of `GET /v1/thumbnail`, beside its [`OptionParams`].
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UrlSource {
    /// The image's http(s) URL.
    #[param(max_length = 4096)]
    pub url: String,
    /// `placeholder` answers a neutral image instead of an error, so an `<img>` never breaks.
    #[param(inline)]
    pub on_error: Option<OnError>,
    /// A signature of the other parameters under the server's `--url-signing-key`
    /// (`edgethumb sign` makes one): the URL then works without an API key.
    #[param(max_length = 128)]
    pub sig: Option<String>,
}

/// What `GET /v1/thumbnail` answers when the image cannot be made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The error, as problem+json.
    #[default]
    Error,
    /// A neutral image of the requested size and format.
    Placeholder,
}

impl OptionParams {
    pub(crate) fn set(&mut self, name: &str, value: String) -> bool {
        let slot = match name {
            "width" => &mut self.width,
            "height" => &mut self.height,
            "fit" => &mut self.fit,
            "format" => &mut self.format,
            "quality" => &mut self.quality,
            "enlarge" => &mut self.enlarge,
            "dpr" => &mut self.dpr,
            "gravity" => &mut self.gravity,
            "animated" => &mut self.animated,
            _ => return false,
        };
        *slot = Some(value);
        true
    }

    /// Fields given here win over `base`.
    pub(crate) fn over(self, base: OptionParams) -> OptionParams {
        OptionParams {
            width: self.width.or(base.width),
            height: self.height.or(base.height),
            fit: self.fit.or(base.fit),
            format: self.format.or(base.format),
            quality: self.quality.or(base.quality),
            enlarge: self.enlarge.or(base.enlarge),
            dpr: self.dpr.or(base.dpr),
            gravity: self.gravity.or(base.gravity),
            animated: self.animated.or(base.animated),
            ..base
        }
    }

    /// Parses and range-checks, naming the offending field. `accept` is the request's
    /// `Accept` header, which `format=auto` follows.
    pub fn resolve(&self, accept: Option<&str>) -> Result<JobOptions, ApiError> {
        let d = JobOptions::default();
        let side = |name: &str, v: &Option<String>| -> Result<u32, ApiError> {
            let Some(v) = v else { return Ok(0) };
            match v.trim().parse::<u64>() {
                Ok(n) if n <= MAX_OUTPUT_SIDE as u64 => Ok(n as u32),
                _ => Err(ApiError::InvalidOptions(format!(
                    "{name} must be a whole number from 0 (automatic) to {MAX_OUTPUT_SIDE}, got {v:?}"
                ))),
            }
        };
        let (width, height) = match (side("width", &self.width)?, side("height", &self.height)?) {
            _ if self.width.is_none() && self.height.is_none() => (d.width, d.height),
            (0, 0) => {
                return Err(ApiError::InvalidOptions(
                    "width and height cannot both be automatic (0): give one, or neither for the \
                     default 100x100 box"
                        .into(),
                ));
            }
            sides => sides,
        };
        let enlarge = flag("enlarge", &self.enlarge, d.enlarge)?;
        let animated = flag("animated", &self.animated, d.animated)?;
        let dpr = match &self.dpr {
            None => d.dpr,
            Some(v) => match v.trim().parse::<f32>() {
                Ok(x) if (1.0..=resizer_core::sizing::MAX_DPR).contains(&x) => x,
                _ => {
                    return Err(ApiError::InvalidOptions(format!(
                        "dpr must be a number from 1 to {}, got {v:?}",
                        resizer_core::sizing::MAX_DPR
                    )));
                }
            },
        };
        let quality = match &self.quality {
            None => d.quality,
            Some(v) => match v.trim().parse::<u8>() {
                Ok(q) if (1..=100).contains(&q) => q,
                _ => {
                    return Err(ApiError::InvalidOptions(format!(
                        "quality must be from 1 to 100, got {v:?}"
                    )));
                }
            },
        };
        let format = match &self.format {
            None => d.format,
            Some(v) => FormatChoice::parse(v.trim()).ok_or_else(|| {
                ApiError::InvalidOptions(format!("format must be png, jpeg, webp, avif or auto, got {v:?}"))
            })?,
        };
        let options = JobOptions {
            width,
            height,
            fit: match &self.fit {
                None => d.fit,
                Some(v) => resizer_core::Fit::parse(v.trim()).ok_or_else(|| {
                    ApiError::InvalidOptions(format!("fit must be contain, cover or fill, got {v:?}"))
                })?,
            },
            format,
            // Only `auto` follows Accept; elsewhere it must not split equal work (dedup keys).
            accepts_webp: format == FormatChoice::Auto && accept.is_some_and(|a| accepts(a, "image/webp")),
            accepts_avif: format == FormatChoice::Auto && accept.is_some_and(|a| accepts(a, "image/avif")),
            quality,
            enlarge,
            dpr,
            animated,
            gravity: match &self.gravity {
                None => d.gravity,
                Some(v) => resizer_core::Gravity::parse(v).ok_or_else(|| {
                    ApiError::InvalidOptions(format!(
                        "gravity must be center, a compass point (north, north-east, ... north-west), \
                         smart, or focus:x,y with x and y from 0 to 1, got {v:?}"
                    ))
                })?,
            },
        };
        options
            .sizing()
            .validate()
            .map_err(|e| ApiError::InvalidOptions(core_detail(e)))?;
        Ok(options)
    }
}

/// A true/false option, `default` when not given.
fn flag(name: &str, value: &Option<String>, default: bool) -> Result<bool, ApiError> {
    match value.as_deref().map(str::trim) {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(ApiError::InvalidOptions(format!(
            "{name} must be true or false, got {v:?}"
        ))),
    }
}

/// Whether an `Accept` header names `mime` (exactly, not through a wildcard, as imgproxy
/// and browsers' image requests go) with a non-zero quality.
pub(crate) fn accepts(accept: &str, mime: &str) -> bool {
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

/// The detail of a core validation error, without its "invalid options: " prefix.
fn core_detail(e: resizer_core::Error) -> String {
    match e {
        resizer_core::Error::InvalidOptions(detail) => detail,
        other => other.to_string(),
    }
}

/// JSON submission body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSubmission {
    /// The image, base64 (standard or URL-safe alphabet; a `data:` URL prefix is accepted).
    #[schema(
        pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        min_length = 4
    )]
    pub image_base64: Option<String>,
    /// Or: an http(s) URL the worker fetches the image from.
    #[schema(max_length = 4096)]
    pub url: Option<String>,
    /// An http(s) URL the finished job is POSTed to (signed, Standard Webhooks).
    #[schema(max_length = 4096)]
    pub callback_url: Option<String>,
    /// Box width; 0 or missing: from the aspect ratio (neither side: 100x100).
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 4096)]
    pub width: Option<serde_json::Value>,
    /// Box height; 0 or missing: from the aspect ratio.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 4096)]
    pub height: Option<serde_json::Value>,
    #[schema(value_type = Option<Fit>)]
    pub fit: Option<String>,
    #[schema(value_type = Option<Format>)]
    pub format: Option<String>,
    /// JPEG and WebP quality (default 80).
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 100)]
    pub quality: Option<serde_json::Value>,
    /// Scale a source smaller than the box up to it (default false).
    #[schema(value_type = Option<bool>)]
    pub enlarge: Option<serde_json::Value>,
    /// Device pixel ratio, 1 to 4 (default 1): multiplies the box.
    #[schema(value_type = Option<f32>, minimum = 1, maximum = 4)]
    pub dpr: Option<serde_json::Value>,
    /// Where a `cover` crop is taken (default center; also smart, focus:x,y, compass points).
    #[schema(example = "smart")]
    pub gravity: Option<String>,
    /// Keep GIF and WebP animations, as animated GIFs (default false).
    #[schema(value_type = Option<bool>)]
    pub animated: Option<serde_json::Value>,
}

/// A form upload (`multipart/form-data`): the image and the options as fields.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; `read_multipart` reads it field by field
pub struct FormSubmission {
    /// The image (or a field `image`, or any part with a file name).
    #[schema(value_type = String, format = Binary, required = false)]
    file: Vec<u8>,
    /// Or: an http(s) URL the worker fetches the image from.
    #[schema(max_length = 4096)]
    url: Option<String>,
    #[schema(max_length = 4096)]
    callback_url: Option<String>,
    #[schema(minimum = 0, maximum = 4096)]
    width: Option<u32>,
    #[schema(minimum = 0, maximum = 4096)]
    height: Option<u32>,
    fit: Option<Fit>,
    format: Option<Format>,
    #[schema(minimum = 1, maximum = 100)]
    quality: Option<u8>,
    enlarge: Option<bool>,
    #[schema(minimum = 1, maximum = 4)]
    dpr: Option<f32>,
    gravity: Option<String>,
    animated: Option<bool>,
}

/// A raw image body (`image/*` or `application/octet-stream`); its format is sniffed.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the body; `read_body` reads it
pub struct ImageBody(Vec<u8>);

/// How the image fills the box.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // documents the option; `Fit::parse` reads it
pub enum Fit {
    Contain,
    Cover,
    Fill,
}

/// The thumbnail's format.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // documents the option; `FormatChoice::parse` reads it
pub enum Format {
    Png,
    Jpeg,
    Webp,
    Avif,
    Auto,
}

/// Where a request's image comes from.
#[derive(Debug)]
pub enum Source {
    /// Bytes sent with the request.
    Upload(Bytes),
    /// A URL the worker fetches.
    Url(String),
}

/// A parsed submission.
#[derive(Debug)]
pub struct Submission {
    pub source: Source,
    pub options: JobOptions,
    pub callback_url: Option<String>,
}

impl Submission {
    /// The job layer's submission for `owner`; `wait` when the caller waits for the result.
    pub fn into_job(self, owner: &Owner, wait: bool) -> crate::jobs::Submission {
        crate::jobs::Submission {
            owner: owner.0.clone(),
            source: match self.source {
                Source::Upload(bytes) => crate::jobs::Source::Upload(bytes),
                Source::Url(url) => crate::jobs::Source::Url(url),
            },
            options: self.options,
            callback_url: self.callback_url,
            component: None,
            wait,
        }
    }
}

/// Checks a URL field's syntax and scheme; addresses are checked when it is used.
pub fn check_url_field(field: UrlField, url: &str) -> Result<String, ApiError> {
    crate::outbound::check_url(url)
        .map(|u| u.to_string())
        .map_err(|e| ApiError::InvalidUrl {
            field,
            detail: e.to_string(),
        })
}

pub(crate) fn json_scalar(v: Option<serde_json::Value>) -> Option<String> {
    v.map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// Reads the body up to `limit` bytes, answering 413 beyond it.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large =
            std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::TooLarge(limit)
        } else {
            ApiError::BadRequest(format!("reading the request body failed: {e}"))
        }
    })
}

fn decode_base64(text: &str) -> Result<Vec<u8>, ApiError> {
    let text = text.trim();
    let payload = match text.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map(|(_, p)| p).unwrap_or(""),
        None => text,
    };
    let compact: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    // Either alphabet, padded or not, and stray bits in the last symbol (encoders differ).
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [base64::alphabet::STANDARD, base64::alphabet::URL_SAFE]
        .iter()
        .find_map(|a| GeneralPurpose::new(a, lenient).decode(&compact).ok())
        .ok_or_else(|| ApiError::BadRequest("image_base64 is not valid base64".into()))
}

/// Parses a submission request; `query` holds options from the URL.
pub async fn read_submission(
    req: Request,
    query: OptionParams,
    limit: usize,
) -> Result<Submission, ApiError> {
    let query_callback = query.callback_url.clone();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > limit as u64
    {
        drain(req.into_body(), len).await;
        return Err(ApiError::TooLarge(limit));
    }
    let mime = content_type.split(';').next().unwrap_or("").trim().to_string();
    let mut callback = query_callback;
    let (source, params) = if mime == "multipart/form-data" {
        let (source, params, form_callback) = read_multipart(req, limit).await?;
        callback = form_callback.or(callback);
        (source, params)
    } else if mime == "application/json" || mime.ends_with("+json") {
        let body = read_body(req.into_body(), limit).await?;
        let json: JsonSubmission = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("the JSON body is malformed: {e}")))?;
        let source = match (&json.image_base64, &json.url) {
            (Some(b64), None) => Source::Upload(Bytes::from(decode_base64(b64)?)),
            (None, Some(url)) => Source::Url(url.clone()),
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidOptions(
                    "give image_base64 or url, not both".into(),
                ));
            }
            (None, None) => {
                return Err(ApiError::BadRequest(
                    "the JSON body needs an image_base64 or a url field".into(),
                ));
            }
        };
        callback = json.callback_url.clone().or(callback);
        let params = OptionParams {
            width: json_scalar(json.width),
            height: json_scalar(json.height),
            fit: json.fit,
            format: json.format,
            quality: json_scalar(json.quality),
            enlarge: json_scalar(json.enlarge),
            dpr: json_scalar(json.dpr),
            gravity: json.gravity,
            animated: json_scalar(json.animated),
            ..OptionParams::default()
        };
        (source, params)
    } else if mime.starts_with("image/") || mime == "application/octet-stream" || mime.is_empty() {
        (
            Source::Upload(read_body(req.into_body(), limit).await?),
            OptionParams::default(),
        )
    } else {
        return Err(ApiError::Unsupported(format!(
            "content type {mime:?} is not accepted; send multipart/form-data, image/*, or application/json"
        )));
    };
    let options = params.over(query).resolve(accept.as_deref())?;
    let callback_url = callback
        .map(|u| check_url_field(UrlField::Callback, &u))
        .transpose()?;
    let source = match source {
        Source::Upload(image) => {
            if image.is_empty() {
                // Well-formed, just not an image: the same answer as any other non-image.
                return Err(ApiError::Unsupported("the request contains no image data".into()));
            }
            resizer_core::header::sniff(&image).map_err(|e| ApiError::Unsupported(e.to_string()))?;
            Source::Upload(image)
        }
        Source::Url(url) => Source::Url(check_url_field(UrlField::Source, &url)?),
    };
    Ok(Submission {
        source,
        options,
        callback_url,
    })
}

async fn read_multipart(
    req: Request,
    limit: usize,
) -> Result<(Source, OptionParams, Option<String>), ApiError> {
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?;
    let mut image = None;
    let mut url = None;
    let mut callback = None;
    let mut params = OptionParams::default();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, limit)),
        };
        let name = field.name().unwrap_or("").to_string();
        // Clients name the file field differently; a part that carries a file name is the image.
        if name == "file" || name == "image" || (image.is_none() && field.file_name().is_some()) {
            image = Some(field.bytes().await.map_err(|e| multipart_error(e, limit))?);
        } else {
            let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
            if name == "url" {
                url = Some(text);
            } else if name == "callback_url" {
                callback = Some(text);
            } else if !params.set(&name, text) {
                return Err(ApiError::BadRequest(format!("unknown form field {name:?}")));
            }
        }
    }
    let source = match (image, url) {
        (Some(bytes), None) => Source::Upload(bytes),
        (None, Some(url)) => Source::Url(url),
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidOptions(
                "give a `file` or a `url` field, not both".into(),
            ));
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "the form needs a `file` field with the image".into(),
            ));
        }
    };
    Ok((source, params, callback))
}

/// Most bodies this large are still being sent. Reading (and dropping) what is left lets the
/// client receive the 413 instead of a reset connection; beyond this much the connection is
/// simply closed.
const DRAIN_AT_MOST: u64 = 64 << 20;

pub(crate) async fn drain(body: Body, declared: u64) {
    use http_body_util::BodyExt;
    if declared > DRAIN_AT_MOST {
        return;
    }
    let mut body = body;
    let read = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read).await;
}

pub(crate) fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(limit)
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    }
}
