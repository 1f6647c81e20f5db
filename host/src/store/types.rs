//! The records the store reads and writes.

use bytes::Bytes;
use resizer_core::OutputFormat;
use resizer_core::request::Negotiated;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codes::Code;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Cancelled while queued; kept, like a finished job, until the retention sweep.
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(JobStatus::Queued),
            "running" => Some(JobStatus::Running),
            "succeeded" => Some(JobStatus::Succeeded),
            "failed" => Some(JobStatus::Failed),
            "cancelled" => Some(JobStatus::Cancelled),
            _ => None,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl Job {
    /// The format the thumbnail was made in.
    pub fn output_format(&self) -> OutputFormat {
        self.result_format.unwrap_or_else(|| self.options.first_format())
    }
}

/// A job as stored, without its blobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    /// The API key (by its fingerprint) that submitted it, if keys are in use.
    pub owner: Option<String>,
    pub status: JobStatus,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub attempts: u32,
    pub options: Negotiated,
    /// sha256 of the source; `None` for a URL source not fetched yet.
    pub source_hash: Option<String>,
    pub source_bytes: u64,
    pub source_format: Option<String>,
    pub source_width: Option<u32>,
    pub source_height: Option<u32>,
    pub result_bytes: Option<u64>,
    pub result_width: Option<u32>,
    pub result_height: Option<u32>,
    /// sha256 of the result: its blob's key and its HTTP `ETag`.
    pub result_hash: Option<String>,
    /// The result's format (`None` for jobs finished before it was recorded: the options').
    pub result_format: Option<OutputFormat>,
    pub component_digest: Option<String>,
    pub error_code: Option<Code>,
    pub error_message: Option<String>,
    pub deduplicated_from: Option<Uuid>,
    /// The component the job must run on (a replay); `None` runs on the active one.
    pub requested_component: Option<String>,
    /// Where the worker fetches the source from (URL jobs).
    pub source_url: Option<String>,
    /// Where the finished job is POSTed.
    pub callback_url: Option<String>,
    /// The webhook delivery, once the job has finished and has a callback.
    pub delivery: Option<Delivery>,
}

/// A webhook delivery's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The `webhook-id` header: the same on every attempt, so receivers can deduplicate.
    pub id: String,
    #[serde(skip)]
    pub job_id: Uuid,
    pub url: String,
    /// `pending`, `delivered` or `failed` (gave up).
    pub status: String,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch.
    #[serde(skip)]
    pub created_at: i64,
    #[serde(skip)]
    pub next_attempt_at: i64,
    #[serde(skip)]
    pub delivered_at_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Delivered,
    RetryAt { at: i64, error: String },
    GaveUp { error: String },
}

/// Where a new job's source is.
#[derive(Debug, Clone)]
pub enum NewSource {
    /// Bytes received with the submission, stored unless a blob with this hash already is.
    Upload { hash: String, bytes: Bytes },
    /// A blob already stored (a replay); the job takes another reference to it.
    Stored { hash: String, size: u64 },
    /// A URL the worker fetches.
    Url(String),
    /// A URL already fetched (by a revalidation that found it changed), with the origin's
    /// validators for what it served.
    Fetched {
        url: String,
        hash: String,
        bytes: Bytes,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Chosen by the caller, so it can wait for the job before it exists.
    pub id: Uuid,
    pub owner: Option<String>,
    pub options: Negotiated,
    pub source: NewSource,
    /// Run on this component instead of the active one.
    pub requested_component: Option<String>,
    pub callback_url: Option<String>,
    /// For URL jobs: the key the URL result cache finds it by.
    pub url_key: Option<String>,
}

/// A stored URL result, as the URL result cache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlResult {
    pub id: Uuid,
    /// When the origin last served or confirmed the source (ms since the epoch).
    pub fetched_at: i64,
    /// The origin's validators, for revalidating after the TTL.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The queue and recent throughput, for the metrics and the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub queued: u64,
    /// `created_at` of the oldest queued job.
    pub oldest_queued_at: Option<i64>,
    /// Jobs that finished since the time asked about, by status.
    pub succeeded: u64,
    pub failed: u64,
}

/// A claimed job and the token that proves the claim.
#[derive(Debug)]
pub struct Claimed {
    pub job: Job,
    pub token: Uuid,
    /// The deployment's active component when the job was claimed, read in the claim's
    /// transaction: a job claimed after an activation committed runs on the new version on
    /// every host, even one whose registry has not caught up yet.
    pub active_component: Option<String>,
}

/// A finished thumbnail, as the worker hands it to the store.
#[derive(Debug, Clone)]
pub struct Made {
    pub result: Bytes,
    /// sha256 of `result`.
    pub result_hash: String,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
    pub source_format: String,
    pub source_width: u32,
    pub source_height: u32,
    pub component_digest: String,
    /// Identifies equal work (source, options, and the component that really ran), so a
    /// later equal submission can reuse the result.
    pub dedup_key: String,
}

/// How a claimed job ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded(Made),
    Failed {
        code: Code,
        message: String,
        component_digest: Option<String>,
    },
    /// Put back in the queue (a retryable failure), not to run before `not_before` (ms).
    Retry {
        code: Code,
        message: String,
        not_before: Option<i64>,
    },
}

/// One page of a listing, newest first.
#[derive(Debug)]
pub struct Page {
    pub jobs: Vec<Job>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// A queued job was cancelled; it stays, as `cancelled`, until the retention sweep.
    Cancelled,
    /// A finished job and its data were removed.
    Removed,
    /// It is running; it cannot be deleted until it ends.
    Running,
    NotFound,
}

/// Opaque listing cursor: the position of the last job of a page.
pub fn encode_cursor(created_at: i64, id: Uuid) -> String {
    format!("{created_at}_{id}")
}

/// Reads exactly what [`encode_cursor`] writes, nothing looser: the API document gives this
/// shape as a pattern (`api::jobs::ListParams`), and what it refuses must be refused here.
pub fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let (t, id) = cursor.split_once('_')?;
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) || id.len() != 36
    {
        return None;
    }
    Some((t.parse().ok()?, Uuid::parse_str(id).ok()?.to_string()))
}
