//! The job as clients see it: the JSON of the API's answers and of webhook bodies, so both
//! say the same thing.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use uuid::Uuid;

use crate::codes::Code;
use resizer_core::{Fit, Gravity, OutputFormat};

use crate::store::{FormatChoice, Job, JobOptions, JobStatus};

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
    pub options: OptionsView,
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

/// The options as asked, less those that had no effect: `fit` when a side is automatic (the
/// aspect ratio decides), `quality` for PNG, `dpr` at 1, `accepts_webp` unless `auto`,
/// `gravity` unless the fit is `cover`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OptionsView {
    /// Box width; 0: automatic, from the aspect ratio.
    pub width: u32,
    /// Box height; 0: automatic.
    pub height: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "contain")]
    pub fit: Option<Fit>,
    #[schema(value_type = String, example = "png")]
    pub format: FormatChoice,
    /// With `auto`: whether the request's `Accept` allowed WebP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepts_webp: Option<bool>,
    /// With `auto`: whether the request's `Accept` allowed AVIF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepts_avif: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    pub enlarge: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpr: Option<f32>,
    /// With `cover`: where the crop was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "smart")]
    pub gravity: Option<Gravity>,
    /// Set when an animation was kept (the result is an animated GIF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub animated: Option<bool>,
}

impl OptionsView {
    fn new(o: &JobOptions, made: OutputFormat) -> Self {
        let fit = (o.width != 0 && o.height != 0).then_some(o.fit);
        OptionsView {
            width: o.width,
            height: o.height,
            fit,
            format: o.format,
            accepts_webp: (o.format == FormatChoice::Auto).then_some(o.accepts_webp),
            accepts_avif: (o.format == FormatChoice::Auto).then_some(o.accepts_avif),
            quality: (made != OutputFormat::Png).then_some(o.quality),
            enlarge: o.enlarge,
            dpr: (o.dpr != 1.0).then_some(o.dpr),
            gravity: (fit == Some(Fit::Cover)).then_some(o.gravity),
            animated: (o.animated && made == OutputFormat::Gif).then_some(true),
        }
    }
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
    #[schema(value_type = String, example = "malformed_image")]
    pub code: Code,
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

pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        let options = OptionsView::new(&j.options, j.output_format());
        let result = match (j.status, j.result_bytes, j.result_width, j.result_height) {
            (JobStatus::Succeeded, Some(bytes), Some(width), Some(height)) => Some(ResultView {
                format: j.output_format().name().into(),
                content_type: j.output_format().mime_type().into(),
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
            options,
            source: SourceView {
                bytes: j.source_bytes,
                sha256: j.source_hash.unwrap_or_default(),
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

/// One page of a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    pub next_cursor: Option<String>,
}
