//! `/v1/batches`: many images in one request (a form with several files, or JSON with a list
//! of URLs), their progress, and a zip of their thumbnails. Each image becomes an ordinary job
//! through the one submission path, so batches obey the same limits and ownership as jobs.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::input::{ApiQuery, CallbackParams};
use super::options::{self, OptionParams};
use super::{AppState, Owner};
use crate::jobs::Submission;
use crate::jobs::batch::BatchItem;
use crate::jobs::view::JobView;
use crate::jobs::{Batch, JobStatus, Member};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema};

mod archive;
mod form;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(progress))
        .routes(routes!(archive::archive))
}

/// A batch of URLs as JSON: `urls`, `callback_url`, and the options as fields, which apply
/// to every image.
pub struct JsonBatch;

impl utoipa::PartialSchema for JsonBatch {
    fn schema() -> RefOr<Schema> {
        let url = || options::url_property("An http(s) URL.", false);
        let fields = ObjectBuilder::new()
            .property(
                "urls",
                ArrayBuilder::new()
                    .items(url())
                    .min_items(Some(1))
                    .max_items(Some(100))
                    .description(Some("The images' http(s) URLs.")),
            )
            .required("urls")
            .property("callback_url", url());
        options::body_schema("A list of image URLs and the options for all of them.", fields)
    }
}

impl utoipa::ToSchema for JsonBatch {}

/// A batch upload (`multipart/form-data`): any number of `file` parts and the options as
/// fields, which apply to every image.
pub struct BatchForm;

impl utoipa::PartialSchema for BatchForm {
    fn schema() -> RefOr<Schema> {
        let fields = ObjectBuilder::new()
            .property(
                "file",
                ArrayBuilder::new()
                    .items(options::binary("An image."))
                    .min_items(Some(1))
                    .max_items(Some(100))
                    .description(Some("The images (each part with a file name is one image).")),
            )
            .required("file")
            .property(
                "callback_url",
                options::url_property("An http(s) URL the finished jobs are POSTed to.", true),
            );
        options::body_schema("The images and the options for all of them.", fields)
    }
}

impl utoipa::ToSchema for BatchForm {}

/// A batch's progress and its jobs, in the order they were sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchView {
    pub id: Uuid,
    pub created_at: String,
    /// Images in the batch.
    pub total: u64,
    /// Jobs finished: succeeded, failed or cancelled.
    pub done: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub queued: u64,
    pub running: u64,
    /// Jobs deleted or expired since.
    pub gone: u64,
    /// Nothing is left to run.
    pub finished: bool,
    pub jobs: Vec<BatchJob>,
    pub links: BatchLinks,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchJob {
    /// The uploaded file's name, or the URL's last path segment.
    pub name: String,
    pub job: JobView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchLinks {
    #[serde(rename = "self")]
    pub this: String,
    /// A zip of the finished thumbnails.
    pub archive: String,
}

impl From<Batch> for BatchView {
    fn from(b: Batch) -> Self {
        let count = |s: JobStatus| b.members.iter().filter(|m| m.job.status == s).count() as u64;
        let (succeeded, failed, cancelled) = (
            count(JobStatus::Succeeded),
            count(JobStatus::Failed),
            count(JobStatus::Cancelled),
        );
        let (queued, running) = (count(JobStatus::Queued), count(JobStatus::Running));
        BatchView {
            created_at: crate::jobs::view::rfc3339(b.created_at),
            total: b.total,
            done: succeeded + failed + cancelled,
            succeeded,
            failed,
            cancelled,
            queued,
            running,
            gone: b.total - b.members.len() as u64,
            finished: queued + running == 0,
            jobs: b
                .members
                .into_iter()
                .map(|m: Member| BatchJob {
                    name: m.name,
                    job: JobView::from(m.job),
                })
                .collect(),
            links: BatchLinks {
                this: format!("/v1/batches/{}", b.id),
                archive: format!("/v1/batches/{}/archive", b.id),
            },
            id: b.id,
        }
    }
}

/// Submit many images at once; 202 with the batch and its `Location`.
#[utoipa::path(post, path = "/v1/batches", tag = "batches", params(OptionParams, CallbackParams),
    request_body(description = "Several images as a form upload, or JSON with a list of URLs",
        content((BatchForm = "multipart/form-data"), (JsonBatch = "application/json"))),
    responses(
        (status = 202, description = "Queued", body = BatchView,
            links(
                ("progress" = (operation_id = "progress", parameters(("id" = "$response.body#/id")))),
                ("archive" = (operation_id = "archive", parameters(("id" = "$response.body#/id")))))),
        (status = 400, description = "Malformed request"), (status = 413, description = "Body too large"),
        (status = 415, description = "A part is not an image we decode"),
        (status = 422, description = "Invalid options, or too many images"),
        (status = 429, description = "Queue full"), (status = 503, description = "Shutting down")))]
async fn create(
    State(state): State<AppState>,
    owner: Owner,
    query: OptionParams,
    ApiQuery(callback): ApiQuery<CallbackParams>,
    req: Request,
) -> Result<Response, ApiError> {
    let config = state.jobs.config.clone();
    let read = form::read(req, query, callback.callback_url, &config);
    let items = state.in_upload_turn(read).await??;
    let items = items
        .into_iter()
        .map(|(name, source, options, callback_url)| BatchItem {
            name,
            submission: Submission {
                owner: owner.0.clone(),
                source,
                options,
                callback_url,
                component: None,
                wait: false,
            },
        })
        .collect();
    let (id, _) = state.jobs.submit_batch(owner.0.clone(), items).await?;
    let batch = owned_batch(&state, id, &owner).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/batches/{id}"))],
        Json(BatchView::from(batch)),
    )
        .into_response())
}

/// The batch `id` if `owner` may see it; `batch_not_found` otherwise, as for an unknown id.
pub(super) async fn owned_batch(state: &AppState, id: Uuid, owner: &Owner) -> Result<Batch, ApiError> {
    state
        .jobs
        .batch(id, owner.0.as_deref())
        .await?
        .ok_or_else(|| ApiError::BatchNotFound(id.to_string()))
}

pub(super) fn parse_batch_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::BatchNotFound(id.to_string()))
}

/// A batch's progress (total, done, failed) and each of its jobs.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "batches", params(("id" = Uuid, Path)),
    responses((status = 200, body = BatchView), (status = 404, description = "Unknown batch")))]
async fn progress(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, ApiError> {
    let id = parse_batch_id(&id)?;
    let batch = owned_batch(&state, id, &owner).await?;
    Ok(Json(BatchView::from(batch)))
}

/// A body for a response that is streamed.
pub(super) fn stream_body(rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Body {
    Body::from_stream(tokio_stream_from(rx))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
