//! The job as clients see it: the JSON of the API's answers and of webhook bodies, so both
//! say the same thing.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use uuid::Uuid;

use crate::codes::Code;
use resizer_core::request::{Format, Kind, Negotiated, OPTIONS, OptionDef};
use resizer_core::{Fit, OutputFormat};

use crate::store::{Job, JobStatus};

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
/// aspect ratio decides), `quality` for PNG and GIF, `dpr` at 1, `gravity` unless the fit is
/// `cover`, `animated` unless an animation format was made, the `Accept` facts unless `auto`.
/// Each option as in [`resizer_core::request::OPTIONS`], typed by its kind.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(value_type = Object, example = json!({"width": 400, "height": 0, "format": "auto", "accepts_webp": true, "enlarge": false}))]
pub struct OptionsView(serde_json::Map<String, serde_json::Value>);

impl OptionsView {
    fn new(o: &Negotiated, made: OutputFormat) -> Self {
        let r = &o.request;
        let both_sides = r.width != 0 && r.height != 0;
        let shown = |name: &str| match name {
            "fit" => both_sides,
            "quality" => !matches!(made, OutputFormat::Png | OutputFormat::Gif),
            "dpr" => r.dpr != 1.0,
            "gravity" => both_sides && r.fit == Fit::Cover,
            "animated" => r.animated && matches!(made, OutputFormat::Gif | OutputFormat::Webp),
            _ => true,
        };
        let mut map: serde_json::Map<String, serde_json::Value> = OPTIONS
            .iter()
            .filter(|def| shown(def.name))
            .map(|def| (def.name.to_string(), option_json(def, &(def.show)(r))))
            .collect();
        if r.format == Format::Auto {
            map.insert("accepts_webp".into(), o.accepts.webp.into());
            map.insert("accepts_avif".into(), o.accepts.avif.into());
        }
        OptionsView(map)
    }
}

/// An option's text as the JSON value of its kind (numbers and booleans unquoted).
pub fn option_json(def: &OptionDef, text: &str) -> serde_json::Value {
    match def.kind {
        Kind::Integer { .. } | Kind::Number { .. } => text
            .parse::<f64>()
            .ok()
            .and_then(|n| {
                if n.fract() == 0.0 {
                    Some(serde_json::Value::from(n as i64))
                } else {
                    serde_json::Number::from_f64(n).map(serde_json::Value::Number)
                }
            })
            .unwrap_or_else(|| text.into()),
        Kind::Bool => serde_json::Value::Bool(text == "true"),
        Kind::Choice(_) | Kind::Text { .. } => text.into(),
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
