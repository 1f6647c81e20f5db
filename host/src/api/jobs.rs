//! `/v1/jobs` and `/v1/thumbnail`: submit, poll (and long-poll), list, download, delete, and
//! the synchronous convenience that waits for its job and returns the image.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Owner;
use super::error::ApiError;
use super::input::{OptionParams, Source, Submission, check_url_field, read_submission};
use crate::app::AppState;
use crate::queue::{Deleted, Job, JobOptions, JobStatus, NewJob, decode_cursor};

/// Longest `?wait=` a poll may ask for.
const MAX_WAIT_SECONDS: u64 = 60;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(status).delete(delete))
        .route("/v1/jobs/{id}/thumbnail", get(thumbnail))
        .route("/v1/jobs/{id}/replay", post(replay))
        .route("/v1/thumbnail", post(submit_and_wait).get(thumbnail_from_url))
}

/// A job as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub status: JobStatus,
    /// RFC 3339 times.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub attempts: u32,
    pub options: JobOptions,
    pub source: SourceView,
    pub result: Option<ResultView>,
    /// sha256 of the resizer component that made (or failed) it.
    pub component_digest: Option<String>,
    /// The component it was asked to run on (a replay); `null` means the active one.
    pub requested_component: Option<String>,
    pub error: Option<ErrorView>,
    /// The callback URL and the state of its delivery.
    pub webhook: Option<WebhookView>,
    /// Set when the result was reused from an earlier job with the same source and options.
    pub deduplicated_from: Option<Uuid>,
    pub links: Links,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    pub bytes: u64,
    pub sha256: String,
    /// For URL jobs: where the source is fetched from.
    pub url: Option<String>,
    /// Known once the worker has read it.
    pub format: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultView {
    pub format: String,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorView {
    /// Stable machine-readable code, e.g. `unsupported_format`, `malformed_image`,
    /// `image_too_large`, `deadline_exceeded`, `too_many_attempts`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub url: String,
    /// `waiting` (job not finished), `pending`, `delivered` or `failed` (gave up).
    pub status: String,
    /// The `webhook-id` of the delivery.
    pub id: Option<String>,
    pub attempts: u32,
    pub delivered_at: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Links {
    #[serde(rename = "self")]
    pub this: String,
    pub thumbnail: String,
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        let result = match (j.status, j.result_bytes, j.result_width, j.result_height) {
            (JobStatus::Succeeded, Some(bytes), Some(width), Some(height)) => Some(ResultView {
                format: j.options.format.name().into(),
                content_type: j.options.format.mime_type().into(),
                width,
                height,
                bytes,
            }),
            _ => None,
        };
        // A retry keeps the last failure for the record, but it is only the job's error once
        // the job has failed.
        let error = match (j.status, j.error_code, j.error_message) {
            (JobStatus::Failed, Some(code), Some(message)) => Some(ErrorView { code, message }),
            _ => None,
        };
        JobView {
            links: Links {
                this: format!("/v1/jobs/{}", j.id),
                thumbnail: format!("/v1/jobs/{}/thumbnail", j.id),
            },
            id: j.id,
            status: j.status,
            created_at: rfc3339(j.created_at),
            started_at: j.started_at.map(rfc3339),
            finished_at: j.finished_at.map(rfc3339),
            attempts: j.attempts,
            options: j.options,
            source: SourceView {
                bytes: j.source_bytes,
                sha256: j.source_hash,
                url: j.source_url,
                format: j.source_format,
                width: j.source_width,
                height: j.source_height,
            },
            result,
            component_digest: j.component_digest,
            requested_component: j.requested_component,
            webhook: j.callback_url.map(|url| match j.delivery {
                Some(d) => WebhookView {
                    url,
                    status: d.status,
                    id: Some(d.id),
                    attempts: d.attempts,
                    delivered_at: d.delivered_at_ms.map(rfc3339),
                    last_error: d.last_error,
                },
                None => WebhookView {
                    url,
                    status: "waiting".into(),
                    id: None,
                    attempts: 0,
                    delivered_at: None,
                    last_error: None,
                },
            }),
            error,
            deduplicated_from: j.deduplicated_from,
        }
    }
}

/// Queues a submission (or reuses an equal finished job) and returns the job.
async fn enqueue(state: &AppState, owner: &Owner, sub: Submission) -> Result<Job, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let (source_key, source, source_url) = match sub.source {
        Source::Bytes(image) => (crate::sandbox::sha256_hex(&image), image, None),
        Source::Url(url) => (format!("url:{url}"), Vec::new(), Some(url)),
    };
    let cache_key = crate::sandbox::sha256_hex(
        format!(
            "{source_key}|{}|{}",
            serde_json::to_string(&sub.options).expect("options serialize"),
            state.components.active().digest()
        )
        .as_bytes(),
    );
    let new = NewJob {
        owner: owner.0.clone(),
        options: sub.options,
        cache_key,
        source,
        requested_component: None,
        // What a URL serves can change, so URL jobs are always fetched, never deduplicated.
        source_url,
        callback_url: sub.callback_url,
    };
    if new.source_url.is_none()
        && let Some(job) = state.store.insert_cached(&new).await?
    {
        tracing::info!(job_id = %job.id, from = ?job.deduplicated_from, "answered from the dedup cache");
        let _ = state.finished.send(job.id);
        return Ok(job);
    }
    let queued = state.store.count_queued().await?;
    if queued >= state.config.max_queue {
        return Err(ApiError::QueueFull(queued));
    }
    let job = state.store.insert(new).await?;
    tracing::info!(job_id = %job.id, bytes = job.source_bytes, "job queued");
    state.wake.notify_one();
    Ok(job)
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
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", params(OptionParams),
    request_body(content = JsonSubmission, description = "multipart/form-data (field `file`), an image/* body, or this JSON"),
    responses(
        (status = 202, description = "Queued (or already done, from the dedup cache)", body = JobView),
        (status = 400, description = "Malformed request"), (status = 413, description = "Body too large"),
        (status = 415, description = "Not an image we decode"), (status = 422, description = "Invalid options"),
        (status = 429, description = "Queue full"), (status = 503, description = "Shutting down")))]
async fn submit(
    State(state): State<AppState>,
    owner: Owner,
    Query(query): Query<OptionParams>,
    req: Request,
) -> Result<Response, ApiError> {
    let sub = read_submission(req, query, state.config.max_body_bytes).await?;
    let job = enqueue(&state, &owner, sub).await?;
    Ok(accepted(job))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// Seconds to wait for the job to finish before answering (long poll), at most 60.
    pub wait: Option<f64>,
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::JobNotFound(id.to_string()))
}

/// Reads a job; with `wait`, until it finishes or the wait runs out.
async fn wait_for(state: &AppState, owner: &Owner, id: Uuid, wait: Duration) -> Result<Job, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut finished = state.finished.subscribe();
    loop {
        let job = state
            .store
            .get(id, owner.0.as_deref())
            .await?
            .ok_or_else(|| ApiError::JobNotFound(id.to_string()))?;
        let now = tokio::time::Instant::now();
        if job.status.is_finished() || now >= deadline {
            return Ok(job);
        }
        // Another host may finish it without telling us: re-read at least every second.
        let until = deadline.min(now + Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = finished.recv() => match msg {
                    Ok(done) if done != id => continue,
                    _ => break,
                },
                _ = tokio::time::sleep_until(until) => break,
                _ = state.shutdown.cancelled() => return Ok(job),
            }
        }
    }
}

/// Job status; `?wait=SECONDS` long-polls.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path), WaitParams),
    responses((status = 200, body = JobView), (status = 404, description = "Unknown job")))]
async fn status(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    Query(params): Query<WaitParams>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&id)?;
    let wait = match params.wait {
        None => Duration::ZERO,
        Some(w) if w.is_finite() && w >= 0.0 => Duration::from_secs_f64(w.min(MAX_WAIT_SECONDS as f64)),
        Some(w) => {
            return Err(ApiError::BadRequest(format!(
                "wait must be a number of seconds from 0 to 60, got {w}"
            )));
        }
    };
    Ok(Json(wait_for(&state, &owner, id, wait).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs in this status.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    pub next_cursor: Option<String>,
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, body = JobList), (status = 400, description = "Bad status, limit or cursor")))]
async fn list(
    State(state): State<AppState>,
    owner: Owner,
    Query(params): Query<ListParams>,
) -> Result<Json<JobList>, ApiError> {
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status must be queued, running, succeeded or failed, got {s:?}"
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
        .store
        .list(owner.0.as_deref(), status, limit, params.cursor.as_deref())
        .await?;
    Ok(Json(JobList {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Cancels a queued job or deletes a finished one with its data.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown job"),
        (status = 409, description = "Running")))]
async fn delete(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    match state.store.delete(id, owner.0.as_deref()).await? {
        Deleted::Cancelled | Deleted::Removed => Ok(StatusCode::NO_CONTENT),
        Deleted::Running => Err(ApiError::Running(id.to_string())),
        Deleted::NotFound => Err(ApiError::JobNotFound(id.to_string())),
    }
}

/// A succeeded job's thumbnail with its type and caching headers (304 for a matching
/// `If-None-Match`).
async fn image_response(
    state: &AppState,
    owner: &Owner,
    job: &Job,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    // The job may have been deleted or expired since it was read.
    let data = state
        .store
        .result(job.id, owner.0.as_deref())
        .await?
        .ok_or_else(|| ApiError::JobNotFound(job.id.to_string()))?;
    let etag = format!("\"{}\"", job.result_etag.as_deref().unwrap_or_default());
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        data.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(job.options.format.mime_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // A job's thumbnail never changes; it only disappears when the job expires or is deleted.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    Ok(response)
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
        .store
        .get(id, owner.0.as_deref())
        .await?
        .ok_or_else(|| ApiError::JobNotFound(id.to_string()))?;
    match job.status {
        JobStatus::Succeeded => image_response(&state, &owner, &job, &headers).await,
        JobStatus::Failed => Err(ApiError::NotReady {
            detail: format!(
                "job {id} failed ({}): {}; it has no thumbnail",
                job.error_code.as_deref().unwrap_or("error"),
                job.error_message.as_deref().unwrap_or("")
            ),
            retry_after: None,
        }),
        JobStatus::Queued | JobStatus::Running => Err(ApiError::NotReady {
            detail: format!("job {id} is {}; poll /v1/jobs/{id}?wait=30", job.status.as_str()),
            retry_after: Some(1),
        }),
    }
}

/// Submit and wait: returns the thumbnail itself (or the job's error).
#[utoipa::path(post, path = "/v1/thumbnail", tag = "jobs", params(OptionParams),
    request_body(content = JsonSubmission, description = "As for POST /v1/jobs"),
    responses((status = 200, description = "The image", content_type = "image/*"),
        (status = 415, description = "Not an image we decode"), (status = 422, description = "Invalid options or an image that failed"),
        (status = 504, description = "Not done in time; the job goes on (see detail)")))]
async fn submit_and_wait(
    State(state): State<AppState>,
    owner: Owner,
    Query(query): Query<OptionParams>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    let sub = read_submission(req, query, state.config.max_body_bytes).await?;
    run_and_wait(&state, &owner, sub, &headers).await
}

/// The one-line form for `<img src>` and curl: `GET /v1/thumbnail?url=...&width=&height=`.
#[utoipa::path(get, path = "/v1/thumbnail", tag = "jobs", params(OptionParams),
    responses((status = 200, description = "The image (or, with on_error=placeholder, a neutral one)", content_type = "image/*"),
        (status = 422, description = "Refused, unreachable or failed source; invalid options"),
        (status = 504, description = "Not done in time")))]
async fn thumbnail_from_url(
    State(state): State<AppState>,
    owner: Owner,
    Query(query): Query<OptionParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let placeholder = match query.on_error.as_deref() {
        None | Some("error") => false,
        Some("placeholder") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "on_error must be error or placeholder, got {other:?}"
            )));
        }
    };
    let url = query
        .url
        .clone()
        .ok_or_else(|| ApiError::BadRequest("the url query parameter is required".into()))?;
    let options = query.resolve()?;
    let result = async {
        let sub = Submission {
            source: Source::Url(check_url_field("url", &url)?),
            options: options.clone(),
            callback_url: query
                .callback_url
                .as_deref()
                .map(|u| check_url_field("callback_url", u))
                .transpose()?,
        };
        run_and_wait(&state, &owner, sub, &headers).await
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
            Ok(placeholder_response(&options, e.code()))
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
) -> Result<Response, ApiError> {
    let job = enqueue(state, owner, sub).await?;
    let job = wait_for(state, owner, job.id, state.config.sync_timeout).await?;
    match job.status {
        JobStatus::Succeeded => {
            let mut response = image_response(state, owner, &job, headers).await?;
            if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
                response.headers_mut().insert(header::CONTENT_LOCATION, v);
            }
            Ok(response)
        }
        JobStatus::Failed => Err(ApiError::JobFailed {
            code: job.error_code.unwrap_or_else(|| "failed".into()),
            message: job.error_message.unwrap_or_default(),
        }),
        JobStatus::Queued | JobStatus::Running => Err(ApiError::Timeout {
            seconds: state.config.sync_timeout.as_secs(),
            location: format!("/v1/jobs/{}", job.id),
        }),
    }
}

/// A flat light-grey image of the requested box, in the requested format; the error code is
/// in `X-Edgethumb-Error` and the response is not cached long.
fn placeholder_response(options: &JobOptions, code: &str) -> Response {
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        options.width,
        options.height,
        image::Rgb([0xd9, 0xd9, 0xd9]),
    ));
    let format = match options.format {
        resizer_core::OutputFormat::Png => image::ImageFormat::Png,
        resizer_core::OutputFormat::Jpeg => image::ImageFormat::Jpeg,
        resizer_core::OutputFormat::Webp => image::ImageFormat::WebP,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    if let Err(e) = img.write_to(&mut out, format) {
        tracing::error!(error = %e, "encoding a placeholder failed");
        return ApiError::JobFailed {
            code: code.to_string(),
            message: "the source failed".into(),
        }
        .into_response();
    }
    let mut response = out.into_inner().into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(options.format.mime_type()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert("x-edgethumb-error", v);
    }
    response
}

pub use super::input::JsonSubmission;

/// Body of a replay request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Digest of the component to run on; omitted, the active one.
    pub component: Option<String>,
}

/// Re-run a job's source and options as a new job, on a chosen component version, to compare
/// outputs before or after an activation.
#[utoipa::path(post, path = "/v1/jobs/{id}/replay", tag = "jobs", params(("id" = Uuid, Path)),
    request_body(content = ReplayRequest, description = "Optional"),
    responses((status = 202, description = "The new job", body = JobView),
        (status = 404, description = "Unknown job or component")))]
async fn replay(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let request: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("the JSON body is malformed: {e}")))?
    };
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let original = state
        .store
        .get(id, owner.0.as_deref())
        .await?
        .ok_or_else(|| ApiError::JobNotFound(id.to_string()))?;
    if let Some(digest) = &request.component {
        state.components.record(digest).await?;
    }
    let source = state
        .store
        .source(id, owner.0.as_deref())
        .await?
        .ok_or_else(|| ApiError::JobNotFound(id.to_string()))?;
    let digest = request
        .component
        .clone()
        .unwrap_or_else(|| state.components.active().digest().to_string());
    let cache_key = crate::sandbox::sha256_hex(
        format!(
            "{}|{}|{digest}",
            original.source_hash,
            serde_json::to_string(&original.options).expect("options serialize")
        )
        .as_bytes(),
    );
    let job = state
        .store
        .insert(NewJob {
            owner: owner.0.clone(),
            options: original.options,
            cache_key,
            source,
            requested_component: request.component,
            source_url: None,
            callback_url: original.callback_url,
        })
        .await?;
    tracing::info!(job_id = %job.id, replay_of = %id, "replay queued");
    state.wake.notify_one();
    Ok(accepted(job))
}
