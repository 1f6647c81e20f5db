//! Reading a batch request: a form with several image parts, or JSON with a list of URLs.
//! Options (from fields, JSON or the query string) apply to every image. The whole request is
//! read and checked before any job is submitted, so a malformed request, bad options or too
//! many images refuse the batch, not half of it; the body is bounded by `--max-batch-bytes`,
//! each image by `--max-body-bytes`. A part that is not an image fails as its own job.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header;
use futures::TryStreamExt;

use super::super::error::{ApiError, UrlField};
use resizer_core::request::{Accepts, Negotiated, Raw};

use super::super::input::{check_query, check_url_field, json_options, json_text, read_body};
use super::super::options::OptionParams;
use crate::config::ServeConfig;
use crate::jobs::Source;

/// One image of a batch as read: its name, source, options and callback.
pub type Item = (String, Source, Negotiated, Option<String>);

/// The query's options and callback, which the body's fields override, and the `Accept`
/// that `format=auto` follows, as for any submission.
pub struct Query {
    pub options: OptionParams,
    pub callback: Option<String>,
    pub accepts: Accepts,
}

/// Reads a batch request into its items.
pub async fn read(
    req: Request,
    query: OptionParams,
    callback: Option<String>,
    config: &ServeConfig,
) -> Result<Vec<Item>, ApiError> {
    let accepts = Accepts::from_header(req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    check_query(&query, callback.as_deref())?;
    let query = Query {
        options: query,
        callback,
        accepts,
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "multipart/form-data" {
        read_form(req, &content_type, query, config).await
    } else if mime == "application/json" || mime.ends_with("+json") {
        let body = read_body(req.into_body(), config.max_body_bytes).await?;
        json_items(&body, query, config.max_batch_items)
    } else {
        Err(ApiError::Unsupported(format!(
            "content type {mime:?} is not accepted; send multipart/form-data with several `file` parts, or application/json with `urls`"
        )))
    }
}

/// Refuses an empty batch or one over `--max-batch-items`.
pub fn check_count(n: usize, max: usize) -> Result<(), ApiError> {
    match n {
        0 => Err(ApiError::BadRequest("the batch has no images".into())),
        n if n > max => Err(ApiError::InvalidOptions(format!(
            "a batch takes at most {max} images (--max-batch-items); this one has {n}"
        ))),
        _ => Ok(()),
    }
}

async fn read_form(
    req: Request,
    content_type: &str,
    query: Query,
    config: &ServeConfig,
) -> Result<Vec<Item>, ApiError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::BadRequest(format!("malformed multipart content type: {e}")))?;
    let limits = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(config.max_batch_bytes as u64)
            .per_field(config.max_body_bytes as u64),
    );
    let stream = req.into_body().into_data_stream().map_err(std::io::Error::other);
    let mut form = multer::Multipart::with_constraints(stream, boundary, limits);
    let mut images: Vec<(String, Bytes)> = Vec::new();
    let mut params = Raw::default();
    let mut callback = query.callback.clone();
    while let Some(field) = form.next_field().await.map_err(|e| form_error(e, config))? {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        if name == "file" || name == "files" || name == "image" || file_name.is_some() {
            // A part sent as text, with no file name, is a form field, not a file: the batch
            // goes on past images that fail, but not past a request that is malformed.
            let text = field.content_type().is_none_or(|m| m.type_().as_str() == "text");
            if file_name.is_none() && text {
                return Err(ApiError::BadRequest(format!(
                    "the form field {name:?} is text; send each image as a file part (with a file name)"
                )));
            }
            // Refused before reading more than one image past the limit.
            check_count(images.len() + 1, config.max_batch_items)?;
            let bytes = field.bytes().await.map_err(|e| form_error(e, config))?;
            let label = file_name.unwrap_or_else(|| format!("image-{}", images.len() + 1));
            // Not sniffed here: a part that is not an image becomes a job that fails with
            // `unsupported_format`, like a damaged one, and the rest of the batch goes on.
            images.push((label, bytes));
        } else {
            let text = field.text().await.map_err(|e| form_error(e, config))?;
            // An empty URL field is one not filled in; an empty option is refused.
            if text.trim().is_empty() && name == "callback_url" {
                continue;
            }
            if name == "callback_url" {
                callback = Some(text);
            } else if !params.set(&name, text) {
                return Err(ApiError::BadRequest(format!("unknown form field {name:?}")));
            }
        }
    }
    check_count(images.len(), config.max_batch_items)?;
    let options = Negotiated::new(params.over(query.options.0).parse()?, query.accepts);
    let callback = callback
        .map(|u| check_url_field(UrlField::Callback, &u))
        .transpose()?;
    Ok(images
        .into_iter()
        .map(|(name, bytes)| (name, Source::Upload(bytes), options, callback.clone()))
        .collect())
}

fn form_error(e: multer::Error, config: &ServeConfig) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { .. } => ApiError::TooLarge(config.max_body_bytes),
        multer::Error::StreamSizeExceeded { .. } => ApiError::TooLarge(config.max_batch_bytes),
        e => ApiError::BadRequest(format!("malformed multipart body: {e}")),
    }
}

/// The JSON form: URLs, each checked like a job's `url`.
fn json_items(body: &Bytes, query: Query, max_items: usize) -> Result<Vec<Item>, ApiError> {
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the JSON body is malformed: {e}")))?;
    let raw = json_options(&json, &["urls", "callback_url"])?;
    let urls: Vec<String> = match json.get("urls") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|u| u.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::BadRequest("the JSON body's urls must all be strings".into()))?,
        _ => return Err(ApiError::BadRequest("the JSON body needs a urls list".into())),
    };
    check_count(urls.len(), max_items)?;
    let callback = json_text(&json, "callback_url")?.or(query.callback);
    let options = Negotiated::new(raw.over(query.options.0).parse()?, query.accepts);
    let callback = callback
        .map(|u| check_url_field(UrlField::Callback, &u))
        .transpose()?;
    urls.iter()
        .map(|url| {
            let url = check_url_field(UrlField::Source, url)?;
            Ok((url_name(&url), Source::Url(url), options, callback.clone()))
        })
        .collect()
}

/// The URL's last path segment, or its host.
fn url_name(url: &str) -> String {
    let parsed = url::Url::parse(url).ok();
    parsed
        .as_ref()
        .and_then(|u| u.path_segments()?.rfind(|s| !s.is_empty()).map(str::to_string))
        .or_else(|| parsed.as_ref().and_then(|u| u.host_str().map(str::to_string)))
        .unwrap_or_else(|| "image".into())
}
