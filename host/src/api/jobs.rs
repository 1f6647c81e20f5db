//! `/v1/jobs` and `/v1/thumbnail`: submit, poll (and long-poll), list, download, delete, and
//! the synchronous convenience that waits for its job and returns the image.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::Owner;
use super::error::{ApiError, UrlField};
use super::input::{ApiQuery, CallbackParams, OnError, Source, Submission, UrlSource, check_url_field};
use super::options::OptionParams;
use crate::codes::Code;
use crate::jobs::Finished;
use crate::jobs::view::{JobList, JobView};
use crate::jobs::{Deleted, Job, JobStatus, decode_cursor};
use resizer_core::request::{Accepts, Format, Negotiated};

/// Longest `?wait=` a poll may ask for.
const MAX_WAIT_SECONDS: u64 = 60;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit, list))
        .routes(routes!(status, delete))
        .routes(routes!(thumbnail))
        .routes(routes!(replay))
        .routes(routes!(submit_and_wait, thumbnail_from_url))
}

/// 202 with the job and its `Location`.
fn accepted(job: Job) -> Response {
    let location = format!("/v1/jobs/{}", job.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(JobView::from(job)),
    )
        .into_response()
}

/// Submit an image; 202 with the job and its `Location`.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", params(OptionParams, CallbackParams),
    request_body(description = "The image: a form upload, a raw image body, or JSON (base64 or a URL)",
        content((FormSubmission = "multipart/form-data"), (ImageBody = "image/*"),
            (ImageBody = "application/octet-stream"), (JsonSubmission = "application/json"))),
    responses(
        (status = 202, description = "Queued (or already done, from the dedup cache)", body = JobView,
            links(
                ("status" = (operation_id = "status", parameters(("id" = "$response.body#/id")))),
                ("thumbnail" = (operation_id = "thumbnail", parameters(("id" = "$response.body#/id")))),
                ("replay" = (operation_id = "replay", parameters(("id" = "$response.body#/id")))),
                ("delete" = (operation_id = "delete", parameters(("id" = "$response.body#/id")))))),
        (status = 400, description = "Malformed request"), (status = 413, description = "Body too large"),
        (status = 415, description = "Not an image we decode"), (status = 422, description = "Invalid options"),
        (status = 429, description = "Queue full"), (status = 503, description = "Shutting down")))]
async fn submit(
    State(state): State<AppState>,
    owner: Owner,
    query: OptionParams,
    ApiQuery(callback): ApiQuery<CallbackParams>,
    req: Request,
) -> Result<Response, ApiError> {
    let sub = state.read_submission(req, query, callback.callback_url).await?;
    let submitted = state.jobs.submit(sub.into_job(&owner, false)).await?;
    Ok(accepted(submitted.job))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// Seconds to wait for the job to finish before answering (long poll), at most 60.
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<f64>,
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::JobNotFound(id.to_string()))
}

/// Job status; `?wait=SECONDS` long-polls.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path), WaitParams),
    responses((status = 200, body = JobView), (status = 404, description = "Unknown job")))]
async fn status(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<WaitParams>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&id)?;
    let wait = match params.wait {
        None => Duration::ZERO,
        Some(w) if (0.0..=MAX_WAIT_SECONDS as f64).contains(&w) => Duration::from_secs_f64(w),
        Some(w) => {
            return Err(ApiError::BadRequest(format!(
                "wait must be a number of seconds from 0 to 60, got {w}"
            )));
        }
    };
    Ok(Json(state.jobs.poll(id, owner.0.as_deref(), wait).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs in this status.
    #[param(value_type = Option<StatusFilter>, inline)]
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(
        pattern = "^-?[0-9]{1,18}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub cursor: Option<String>,
}

/// The statuses a listing can be filtered by (documentation only: `status` is parsed with
/// [`JobStatus::parse`], which names the choices when it refuses one).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum StatusFilter {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, body = JobList), (status = 400, description = "Bad status, limit or cursor")))]
async fn list(
    State(state): State<AppState>,
    owner: Owner,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<JobList>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status must be queued, running, succeeded, failed or cancelled, got {s:?}"
            ))
        })?),
    };
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to 100, got {limit}"
        )));
    }
    if let Some(c) = &params.cursor
        && decode_cursor(c).is_none()
    {
        return Err(ApiError::BadRequest(
            "cursor is not one this server issued".into(),
        ));
    }
    let page = state
        .jobs
        .list(owner.0.as_deref(), status, limit, params.cursor.as_deref())
        .await?;
    Ok(Json(JobList {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Cancels a queued job (it stays, as `cancelled`, until the retention sweep) or deletes a
/// finished or cancelled one with its data.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Cancelled or deleted"), (status = 404, description = "Unknown job"),
        (status = 409, description = "Running")))]
async fn delete(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    match state.jobs.delete(id, owner.0.as_deref()).await? {
        Deleted::Cancelled | Deleted::Removed => Ok(StatusCode::NO_CONTENT),
        Deleted::Running => Err(ApiError::Running(id.to_string())),
        Deleted::NotFound => Err(ApiError::JobNotFound(id.to_string())),
    }
}

/// Who may keep a copy of an answer.
#[derive(Debug, Clone, Copy)]
enum Caching {
    /// Asked for with an API key: the browser only, per key.
    Private,
    /// Asked for without a key (open mode or a signed URL): CDNs too. `immutable` for a
    /// job's own thumbnail, which never changes; not for a URL's, whose origin may change.
    Public { max_age: Duration, immutable: bool },
}

impl Caching {
    /// Private for a key's answers; public without one, and for signed URLs.
    fn for_owner(state: &AppState, owner: &Owner, immutable: bool) -> Caching {
        match owner.0.as_deref() {
            Some(key) if key != super::SIGNED_OWNER => Caching::Private,
            _ => Caching::Public {
                max_age: state.jobs.config.cache_max_age,
                immutable,
            },
        }
    }

    /// Sets `Cache-Control` and `Vary`: by `Authorization` for a key's answers, and by
    /// `Accept` too when the answer's format followed it (`format=auto`).
    fn apply(self, h: &mut HeaderMap, by_accept: bool) {
        let vary = match (self, by_accept) {
            (Caching::Private, true) => Some("Authorization, Accept"),
            (Caching::Private, false) => Some("Authorization"),
            (Caching::Public { .. }, true) => Some("Accept"),
            (Caching::Public { .. }, false) => None,
        };
        if let Some(vary) = vary {
            h.insert(header::VARY, HeaderValue::from_static(vary));
        }
        let value = match self {
            Caching::Private => "private, max-age=86400, immutable".to_string(),
            Caching::Public { max_age, immutable } => format!(
                "public, max-age={}{}",
                max_age.as_secs(),
                if immutable { ", immutable" } else { "" }
            ),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::CACHE_CONTROL, v);
        }
    }
}

/// A thumbnail with its type and caching headers (304 for a matching `If-None-Match`).
/// `answered` is true where the request made the job, so its `Accept` chose an `auto`
/// format; a job's own thumbnail is the same whatever the download's `Accept`.
fn image_response(job: &Job, data: Bytes, headers: &HeaderMap, caching: Caching, answered: bool) -> Response {
    let etag = format!("\"{}\"", job.result_hash.as_deref().unwrap_or_default());
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        // If-None-Match compares weakly (RFC 9110 13.1.2): `W/"x"` matches `"x"`, as at the edge.
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        data.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(job.output_format().mime_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    caching.apply(h, answered && job.options.request.format == Format::Auto);
    response
}

/// The thumbnail bytes; 409 while not ready.
#[utoipa::path(get, path = "/v1/jobs/{id}/thumbnail", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The image", content_type = "image/*"),
        (status = 404, description = "Unknown or deleted job"), (status = 409, description = "Not ready, or failed")))]
async fn thumbnail(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let job = state
        .jobs
        .get(id, owner.0.as_deref())
        .await?
        .ok_or_else(|| ApiError::JobNotFound(id.to_string()))?;
    match (job.status, &job.result_hash) {
        (JobStatus::Succeeded, Some(hash)) => {
            // The job may have been deleted or expired since it was read.
            let data = state
                .jobs
                .thumbnail_bytes(hash)
                .await?
                .ok_or_else(|| ApiError::JobNotFound(id.to_string()))?;
            // A job's thumbnail never changes; it only disappears when the job goes.
            let caching = Caching::for_owner(&state, &owner, true);
            Ok(image_response(&job, data, &headers, caching, false))
        }
        (JobStatus::Queued | JobStatus::Running, _) => Err(ApiError::NotReady {
            detail: format!("job {id} is {}; poll /v1/jobs/{id}?wait=30", job.status.as_str()),
            retry_after: Some(1),
        }),
        (JobStatus::Cancelled, _) => Err(ApiError::NotReady {
            detail: format!("job {id} was cancelled; it has no thumbnail"),
            retry_after: None,
        }),
        _ => Err(ApiError::NotReady {
            detail: format!(
                "job {id} failed ({}): {}; it has no thumbnail",
                job.error_code.map_or("error", Code::as_str),
                job.error_message.as_deref().unwrap_or("")
            ),
            retry_after: None,
        }),
    }
}

/// Submit and wait: returns the thumbnail itself (or the job's error).
#[utoipa::path(post, path = "/v1/thumbnail", tag = "jobs", params(OptionParams, CallbackParams),
    request_body(description = "As for POST /v1/jobs",
        content((FormSubmission = "multipart/form-data"), (ImageBody = "image/*"),
            (ImageBody = "application/octet-stream"), (JsonSubmission = "application/json"))),
    responses((status = 200, description = "The image", content_type = "image/*"),
        (status = 415, description = "Not an image we decode"), (status = 422, description = "Invalid options or an image that failed"),
        (status = 504, description = "Not done in time; the job goes on (see detail)")))]
async fn submit_and_wait(
    State(state): State<AppState>,
    owner: Owner,
    query: OptionParams,
    ApiQuery(callback): ApiQuery<CallbackParams>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    let sub = state.read_submission(req, query, callback.callback_url).await?;
    let caching = Caching::for_owner(&state, &owner, true);
    run_and_wait(&state, &owner, sub, &headers, caching).await
}

/// The one-line form for `<img src>` and curl: `GET /v1/thumbnail?url=...&width=&height=`.
#[utoipa::path(get, path = "/v1/thumbnail", tag = "jobs", params(UrlSource, OptionParams, CallbackParams),
    responses((status = 200, description = "The image (or, with on_error=placeholder, a neutral one)", content_type = "image/*"),
        (status = 403, description = "A sig that does not match the other parameters (invalid_signature)"),
        (status = 422, description = "Refused, unreachable or failed source; invalid options"),
        (status = 504, description = "Not done in time")))]
async fn thumbnail_from_url(
    State(state): State<AppState>,
    query: OptionParams,
    ApiQuery(callback): ApiQuery<CallbackParams>,
    ApiQuery(source): ApiQuery<UrlSource>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let owner = match source.sig {
        Some(_) => super::signed_owner(&state, raw.as_deref().unwrap_or(""))?,
        None => super::key_id(&headers, &state.jobs.config.api_keys).map(Owner)?,
    };
    // A URL's thumbnail may change with its origin: public answers are not immutable.
    let caching = Caching::for_owner(&state, &owner, false);
    let placeholder = source.on_error == Some(OnError::Placeholder);
    let url = source.url;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let options = Negotiated::new(query.0.parse()?, Accepts::from_header(accept));
    // What the request says, as opposed to what the image does, is never hidden behind a
    // placeholder: an overlong URL or a bad callback is the caller's to fix.
    if url.len() > crate::outbound::MAX_URL_BYTES {
        check_url_field(UrlField::Source, &url)?;
    }
    let callback_url = callback
        .callback_url
        .as_deref()
        .map(|u| check_url_field(UrlField::Callback, u))
        .transpose()?;
    let result = async {
        let sub = Submission {
            source: Source::Url(check_url_field(UrlField::Source, &url)?),
            options,
            callback_url,
        };
        run_and_wait(&state, &owner, sub, &headers, caching).await
    }
    .await;
    match result {
        Err(e)
            if placeholder
                && !matches!(
                    e,
                    ApiError::Unauthorized | ApiError::QueueFull(_) | ApiError::ShuttingDown
                ) =>
        {
            Ok(placeholder_response(options, e.code()).await)
        }
        other => other,
    }
}

/// Queues a submission and answers with its thumbnail once done, or with its error.
async fn run_and_wait(
    state: &AppState,
    owner: &Owner,
    sub: Submission,
    headers: &HeaderMap,
    caching: Caching,
) -> Result<Response, ApiError> {
    let submitted = state.jobs.submit(sub.into_job(owner, true)).await?;
    let id = submitted.job.id;
    let finished = state
        .jobs
        .wait_result(submitted, owner.0.as_deref(), state.jobs.config.sync_timeout)
        .await?;
    match finished {
        Some(Finished {
            job,
            result: Some(data),
        }) => {
            let mut response = image_response(&job, data, headers, caching, true);
            if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
                response.headers_mut().insert(header::CONTENT_LOCATION, v);
            }
            Ok(response)
        }
        Some(Finished { job, result: None }) => Err(ApiError::JobFailed {
            code: job.error_code.unwrap_or(Code::InternalError),
            message: job.error_message.unwrap_or_default(),
        }),
        None => Err(ApiError::Timeout {
            seconds: state.jobs.config.sync_timeout.as_secs(),
            location: format!("/v1/jobs/{id}"),
        }),
    }
}

/// A flat light-grey image of the requested box, in the requested format (see
/// [`super::placeholder`]); the error code is in `X-Edgethumb-Error` and the response is not
/// cached.
async fn placeholder_response(options: Negotiated, code: Code) -> Response {
    let mime = options.first_format().mime_type();
    let data = match super::placeholder::placeholder(&options).await {
        Ok(done) => done,
        Err(error) => {
            tracing::error!(%error, "encoding a placeholder failed");
            return ApiError::JobFailed {
                code,
                message: "the source failed".into(),
            }
            .into_response();
        }
    };
    let mut response = data.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-edgethumb-error", HeaderValue::from_static(code.as_str()));
    response
}

use super::input::{FormSubmission, ImageBody, JsonSubmission};

/// Body of a replay request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Digest of the component to run on; omitted, the active one.
    pub component: Option<String>,
}

/// Re-run a job's source and options as a new job, on a chosen component version, to compare
/// outputs before or after an activation. It goes through the same path and limits as any
/// submission, and shares the original's stored source.
#[utoipa::path(post, path = "/v1/jobs/{id}/replay", tag = "jobs", params(("id" = Uuid, Path)),
    request_body(content = Option<ReplayRequest>, description = "Optional"),
    responses((status = 202, description = "The new job", body = JobView),
        (status = 404, description = "Unknown job or component"), (status = 429, description = "Queue full")))]
async fn replay(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // No body, or JSON `null`, is no request: the active component.
    let request: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        serde_json::from_slice::<Option<ReplayRequest>>(&body)
            .map_err(|e| ApiError::BadRequest(format!("the JSON body is malformed: {e}")))?
            .unwrap_or_default()
    };
    let submitted = state
        .jobs
        .submit(crate::jobs::Submission {
            owner: owner.0.clone(),
            source: crate::jobs::Source::Replay(id),
            options: Negotiated::default(),
            callback_url: None,
            component: request.component,
            wait: false,
        })
        .await?;
    tracing::info!(job_id = %submitted.job.id, replay_of = %id, "replay queued");
    Ok(accepted(submitted.job))
}
