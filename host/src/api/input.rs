//! Reading a submission in any of the forms clients send: `multipart/form-data` (field
//! `file`, options as further fields), a raw `image/*` (or octet-stream) body, or JSON with
//! `image_base64`. Options come from JSON fields, form fields or the query string. The image
//! type is sniffed from the bytes; the declared content type is never trusted for it.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Multipart, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use resizer_core::request::{Accepts, Negotiated, Raw};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use super::Owner;
use super::error::{ApiError, UrlField};
use super::options::{self, OptionParams};

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

/// The query parameter of the submitting routes beside the options.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// An http(s) URL the finished job is POSTed to (signed, Standard Webhooks).
    #[param(
        max_length = 4096,
        pattern = "^https?://[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[1-9][0-9]{0,3})?(/[^\\s]*)?$"
    )]
    pub callback_url: Option<String>,
}

/// The source of `GET /v1/thumbnail`, beside its [`OptionParams`].
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UrlSource {
    /// The image's http(s) URL.
    #[param(
        max_length = 4096,
        pattern = "^https?://[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[1-9][0-9]{0,3})?(/[^\\s]*)?$"
    )]
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

/// JSON submission body: `image_base64` or `url`, `callback_url`, and the options as fields
/// (numbers and booleans as JSON values or as text).
pub struct JsonSubmission;

impl utoipa::PartialSchema for JsonSubmission {
    fn schema() -> RefOr<Schema> {
        let base64 = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(4))
            .pattern(Some(
                "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
            ))
            .description(Some(
                "The image, base64 (standard or URL-safe alphabet; a `data:` URL prefix is accepted).",
            ));
        let fields = ObjectBuilder::new()
            .property("image_base64", base64)
            .property(
                "url",
                options::url_property("Or: an http(s) URL the worker fetches the image from.", false),
            )
            .property(
                "callback_url",
                options::url_property(
                    "An http(s) URL the finished job is POSTed to (signed, Standard Webhooks).",
                    false,
                ),
            );
        // A whole request that works as it is, for "Try it out": an 8x8 PNG.
        let fields = fields.examples([serde_json::json!({
            "image_base64": EXAMPLE_PNG_BASE64,
            "width": 100,
            "format": "auto",
        })]);
        options::body_schema(
            "The image (base64) or its URL, and the options as fields.",
            fields,
        )
    }
}

/// An 8x8 orange PNG: the JSON body's example image.
const EXAMPLE_PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mM4UaGBFTEMLQkAUtVaASL5fhoAAAAASUVORK5CYII=";

impl utoipa::ToSchema for JsonSubmission {}

/// A form upload (`multipart/form-data`): the image and the options as fields.
pub struct FormSubmission;

impl utoipa::PartialSchema for FormSubmission {
    fn schema() -> RefOr<Schema> {
        let fields = ObjectBuilder::new()
            .property(
                "file",
                options::binary(
                    "The image (or a field `image`, or any part with a file name). Required, \
                     unless a `url` is given instead.",
                ),
            )
            .required("file")
            .property(
                "url",
                options::url_property("Or: an http(s) URL the worker fetches the image from.", true),
            )
            .property(
                "callback_url",
                options::url_property("An http(s) URL the finished job is POSTed to.", true),
            );
        // Empty fields are not values (see `read_multipart`), so a form filled in from these
        // examples, with a file chosen, is a whole request.
        options::body_schema("The image file (or its URL) and the options as fields.", fields)
    }
}

impl utoipa::ToSchema for FormSubmission {}

/// A raw image body (`image/*` or `application/octet-stream`); its format is sniffed.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the body; `read_body` reads it
pub struct ImageBody(Vec<u8>);

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
    pub options: Negotiated,
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

/// Checks the query's option values and callback URL on their own: a body's field may replace
/// them, but a query the document refuses is refused all the same.
pub(crate) fn check_query(options: &OptionParams, callback: Option<&str>) -> Result<(), ApiError> {
    options.0.check_values()?;
    if let Some(url) = callback {
        check_url_field(UrlField::Callback, url)?;
    }
    Ok(())
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

/// A JSON body's option fields into `raw`, as text (`400` and `"400"` alike); any field that
/// is neither an option nor one of `route_fields` is refused, as a misspelt name would
/// otherwise be ignored.
pub(crate) fn json_options(
    fields: &serde_json::Map<String, serde_json::Value>,
    route_fields: &[&str],
) -> Result<Raw, ApiError> {
    let mut raw = Raw::default();
    for (name, value) in fields {
        if route_fields.contains(&name.as_str()) {
            continue;
        }
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            // 23.0 is the whole number 23, as JSON Schema's `integer` counts it.
            serde_json::Value::Number(n)
                if n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) =>
            {
                format!("{}", n.as_f64().unwrap_or_default() as i64)
            }
            other => other.to_string(),
        };
        if !raw.set(name, text) {
            return Err(ApiError::BadRequest(format!(
                "the JSON body has an unknown field {name:?}; it takes {}, {}",
                route_fields.join(", "),
                resizer_core::request::OPTIONS
                    .iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(raw)
}

/// A JSON body's text field.
pub(crate) fn json_text(
    fields: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match fields.get(name) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "the JSON body's {name} must be a string, got {other}"
        ))),
    }
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

/// Parses a submission request; `query` holds the options and `callback` the callback URL
/// from the query string, which the body's fields override.
pub async fn read_submission(
    req: Request,
    query: OptionParams,
    callback: Option<String>,
    limit: usize,
) -> Result<Submission, ApiError> {
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
    let query_callback = callback.clone();
    let mut callback = callback;
    let (source, raw) = if mime == "multipart/form-data" {
        let (source, raw, form_callback) = read_multipart(req, limit).await?;
        callback = form_callback.or(callback);
        (source, raw)
    } else if mime == "application/json" || mime.ends_with("+json") {
        let body = read_body(req.into_body(), limit).await?;
        let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("the JSON body is malformed: {e}")))?;
        let raw = json_options(&json, &["image_base64", "url", "callback_url"])?;
        let source = match (json_text(&json, "image_base64")?, json_text(&json, "url")?) {
            (Some(b64), None) => Source::Upload(Bytes::from(decode_base64(&b64)?)),
            (None, Some(url)) => Source::Url(url),
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
        callback = json_text(&json, "callback_url")?.or(callback);
        (source, raw)
    } else if mime.starts_with("image/") || mime == "application/octet-stream" || mime.is_empty() {
        (
            Source::Upload(read_body(req.into_body(), limit).await?),
            Raw::default(),
        )
    } else {
        return Err(ApiError::Unsupported(format!(
            "content type {mime:?} is not accepted; send multipart/form-data, image/*, or application/json"
        )));
    };
    check_query(&query, query_callback.as_deref())?;
    let request = raw.over(query.0).parse()?;
    let options = Negotiated::new(request, Accepts::from_header(accept.as_deref()));
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

async fn read_multipart(req: Request, limit: usize) -> Result<(Source, Raw, Option<String>), ApiError> {
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?;
    let mut image = None;
    let mut url = None;
    let mut callback = None;
    let mut params = Raw::default();
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
            // An empty URL field is one not filled in (HTML forms and Swagger's send every
            // field); an empty option is refused, as its document says.
            if text.trim().is_empty() && (name == "url" || name == "callback_url") {
                continue;
            }
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
