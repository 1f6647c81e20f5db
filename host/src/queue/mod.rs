//! The durable job queue: a small storage trait ([`JobStore`]) and its backends.
//!
//! A job is claimed with a **lease**: a worker that dies leaves a lease that runs out, and the
//! job is claimed again (attempts are counted, so a job that kills its worker every time ends
//! as failed instead of looping). Completion is guarded by the claim's token, so a worker whose
//! lease ran out cannot overwrite the result of the worker that took over.

pub mod postgres;
mod sql;
pub mod sqlite;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use resizer_core::{Fit, OutputFormat};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(JobStatus::Queued),
            "running" => Some(JobStatus::Running),
            "succeeded" => Some(JobStatus::Succeeded),
            "failed" => Some(JobStatus::Failed),
            _ => None,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// What the client asked the thumbnail to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobOptions {
    pub width: u32,
    pub height: u32,
    #[schema(value_type = String, example = "contain")]
    pub fit: Fit,
    #[schema(value_type = String, example = "png")]
    pub format: OutputFormat,
    pub quality: u8,
}

impl Default for JobOptions {
    fn default() -> Self {
        let d = resizer_core::Options::default();
        JobOptions {
            width: d.width,
            height: d.height,
            fit: d.fit,
            format: d.format,
            quality: d.quality,
        }
    }
}

impl JobOptions {
    pub fn to_core(&self) -> resizer_core::Options {
        resizer_core::Options {
            width: self.width,
            height: self.height,
            fit: self.fit,
            format: self.format,
            quality: self.quality,
            ..resizer_core::Options::default()
        }
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
    pub options: JobOptions,
    pub source_hash: String,
    pub source_bytes: u64,
    pub source_format: Option<String>,
    pub source_width: Option<u32>,
    pub source_height: Option<u32>,
    pub result_bytes: Option<u64>,
    pub result_width: Option<u32>,
    pub result_height: Option<u32>,
    pub result_etag: Option<String>,
    pub component_digest: Option<String>,
    pub error_code: Option<String>,
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

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub owner: Option<String>,
    pub options: JobOptions,
    /// Identifies equal work: source hash, options and component digest.
    pub cache_key: String,
    pub source: Vec<u8>,
    /// Run on this component instead of the active one.
    pub requested_component: Option<String>,
    /// Fetch the source from here (then `source` is empty).
    pub source_url: Option<String>,
    pub callback_url: Option<String>,
}

/// A claimed job: the job, its source, and the token that proves the claim.
#[derive(Debug)]
pub struct Claimed {
    pub job: Job,
    pub source: Vec<u8>,
    pub token: Uuid,
    /// The deployment's active component when the job was claimed, read in the claim's
    /// transaction: a job claimed after an activation committed runs on the new version on
    /// every host, even one whose registry has not caught up yet.
    pub active_component: Option<String>,
}

/// How a claimed job ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded {
        result: Vec<u8>,
        width: u32,
        height: u32,
        source_format: String,
        source_width: u32,
        source_height: u32,
        component_digest: String,
    },
    Failed {
        code: String,
        message: String,
        component_digest: Option<String>,
    },
    /// Put back in the queue (a retryable failure), not to run before `not_before` (ms).
    Retry {
        code: String,
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
    /// A queued job was cancelled and removed.
    Cancelled,
    /// A finished job and its data were removed.
    Removed,
    /// It is running; it cannot be deleted until it ends.
    Running,
    NotFound,
}

/// Storage failures. Callers log them and answer 503: they are never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The storage every backend implements. `owner` filters are exact: `None` means "no key in
/// use" and sees only jobs submitted without a key.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    async fn insert(&self, job: NewJob) -> Result<Job, QueueError>;
    /// Inserts an already-succeeded copy of a finished job with the same cache key and owner, if
    /// any. Dedup never crosses owners: a job id or its timing must not tell one API key what
    /// another submitted.
    async fn insert_cached(&self, job: &NewJob) -> Result<Option<Job>, QueueError>;
    async fn get(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Job>, QueueError>;
    /// A job whatever its owner, for the host's own use (webhook payloads).
    async fn get_any(&self, id: Uuid) -> Result<Option<Job>, QueueError>;
    async fn list(
        &self,
        owner: Option<&str>,
        status: Option<JobStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, QueueError>;
    async fn result(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Vec<u8>>, QueueError>;
    async fn source(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Vec<u8>>, QueueError>;
    async fn delete(&self, id: Uuid, owner: Option<&str>) -> Result<Deleted, QueueError>;
    async fn count_queued(&self) -> Result<u64, QueueError>;
    /// Takes the oldest runnable job (queued, or running with an expired lease).
    async fn claim(&self, lease: Duration) -> Result<Option<Claimed>, QueueError>;
    /// Stores the source of a URL job once fetched; false if the claim was lost.
    async fn set_source(&self, id: Uuid, token: Uuid, source: &[u8]) -> Result<bool, QueueError>;
    /// Takes a due webhook delivery, leasing it for `lease`.
    async fn claim_delivery(&self, lease: Duration) -> Result<Option<Delivery>, QueueError>;
    async fn finish_delivery(&self, id: &str, outcome: DeliveryOutcome) -> Result<(), QueueError>;
    /// Extends a claim's lease; false if the claim was lost.
    async fn heartbeat(&self, id: Uuid, token: Uuid, lease: Duration) -> Result<bool, QueueError>;
    /// Records how a claim ended; false if the claim was lost meanwhile.
    async fn complete(&self, id: Uuid, token: Uuid, outcome: Outcome) -> Result<bool, QueueError>;
    /// Deletes finished jobs older than `ttl`; returns how many.
    async fn sweep(&self, ttl: Duration) -> Result<u64, QueueError>;
    async fn ping(&self) -> Result<(), QueueError>;
    /// Delivers other hosts' notifications to `wakers` until `shutdown`; backends that only
    /// one process uses have none, and return at once.
    async fn watch(&self, _wakers: Wakers, _shutdown: tokio_util::sync::CancellationToken) {}
}

/// Notification channels: a job is runnable, a job finished (payload: its id), the active
/// component changed. Backends shared by several hosts deliver them to every host; see
/// [`JobStore::watch`].
pub const CHANNEL_JOBS: &str = "edgethumb_jobs";
pub const CHANNEL_FINISHED: &str = "edgethumb_finished";
pub const CHANNEL_COMPONENTS: &str = "edgethumb_components";

/// Where a backend's notifications from other hosts go.
#[derive(Clone)]
pub struct Wakers {
    /// Wakes an idle worker.
    pub jobs: std::sync::Arc<tokio::sync::Notify>,
    /// Wakes long-polls waiting for this job.
    pub finished: tokio::sync::broadcast::Sender<Uuid>,
    /// Makes the component registry re-read the active component.
    pub components: std::sync::Arc<tokio::sync::Notify>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Opaque listing cursor: the position of the last job of a page.
pub(crate) fn encode_cursor(created_at: i64, id: Uuid) -> String {
    format!("{created_at}_{id}")
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let (t, id) = cursor.split_once('_')?;
    Some((t.parse().ok()?, Uuid::parse_str(id).ok()?.to_string()))
}

/// A component as the registry stores it, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ComponentRecord {
    /// sha256 of the component, lower-case hex.
    pub digest: String,
    /// Version of the `edgethumb:resizer` package it exports.
    pub wit_version: String,
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub uploaded_at: i64,
    /// `builtin`, `upload`, `file` (--component) or `directory` (--component-dir).
    pub origin: String,
}

/// The component registry's storage, in the same database as the jobs so that every host
/// sharing it sees the same components and the same active one.
#[async_trait]
pub trait ComponentStore: Send + Sync + 'static {
    /// Stores a component unless its digest is already there; true if it was new.
    async fn put_component(&self, record: &ComponentRecord, wasm: &[u8]) -> Result<bool, QueueError>;
    async fn component(&self, digest: &str) -> Result<Option<ComponentRecord>, QueueError>;
    async fn component_wasm(&self, digest: &str) -> Result<Option<Vec<u8>>, QueueError>;
    async fn components(&self) -> Result<Vec<ComponentRecord>, QueueError>;
    /// Makes `digest` the active component (appends to the activation history).
    async fn activate(&self, digest: &str) -> Result<(), QueueError>;
    /// The active component's digest, if any was ever activated.
    async fn active_component(&self) -> Result<Option<String>, QueueError>;
    /// Re-activates the component that was active before the current one; its digest, or
    /// `None` when there is nothing to go back to.
    async fn rollback(&self) -> Result<Option<String>, QueueError>;
    /// Deletes a component that is not active; false if it is active or unknown.
    async fn delete_component(&self, digest: &str) -> Result<bool, QueueError>;
}
