//! The job layer, between the HTTP API and the store, sandbox and outbound HTTP:
//! - [`submit`]: the only place a job is built (uploads, URLs, the synchronous endpoint,
//!   replays), with the queue limit, dedup and ownership;
//! - [`worker`]: claim, fetch if needed, run in the sandbox, complete, hand the result to a
//!   waiting caller; and the sweeper;
//! - [`webhooks`]: signed, retried deliveries of finished jobs;
//! - [`batch`]: many submissions recorded as one batch;
//! - [`view`]: the job as clients see it (the API's answers and the webhooks' bodies);
//! - `read`: what the API reads (jobs, thumbnails, batches, figures), so it never needs the store.
//!
//! A job's bytes go in once: the submission hashes them once, the store keeps them once under
//! that hash, and this host's worker takes them from memory ([`handoff`]) rather than reading
//! them back; the synchronous caller gets the thumbnail the same way.

pub mod batch;
mod handoff;
mod read;
pub mod submit;
pub mod view;
pub mod webhooks;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::ServeConfig;
use crate::sandbox::registry::{Registry, RegistryError};
use crate::store::{Store, Wakers};

pub use crate::store::{
    Batch, ComponentRecord, Deleted, Job, JobStatus, Member, Page, QueueStats, StoreError, decode_cursor,
    now_ms,
};
pub use handoff::Finished;
pub use submit::{Source, Submission, Submitted};

/// Why the job layer refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("no job with id {0}")]
    NotFound(Uuid),
    #[error("the queue is full ({0} jobs waiting); retry later")]
    QueueFull(u64),
    #[error("{0} webhooks of yours are waiting to be delivered; retry when some have gone out")]
    TooManyWebhooks(u64),
    #[error("the server is shutting down; retry on another instance or shortly")]
    ShuttingDown,
    #[error(transparent)]
    Component(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything the job layer shares between submissions, workers and background tasks.
pub struct Jobs {
    pub store: Arc<Store>,
    /// The components; `components.active()` runs new jobs.
    pub components: Arc<Registry>,
    pub config: Arc<ServeConfig>,
    /// Wakes an idle worker when a job is queued.
    pub wake: Arc<Notify>,
    /// Announces finished jobs to long-polls.
    pub finished: broadcast::Sender<Uuid>,
    /// Signalled when another host changed the active component.
    pub components_changed: Arc<Notify>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Worker loops currently running, for readiness.
    pub workers_alive: AtomicUsize,
    /// Workers running a job now, for the metrics and the dashboard.
    pub workers_busy: AtomicUsize,
    /// Sources on their way to this host's workers, and callers waiting for results.
    handoff: handoff::Handoff,
}

impl Jobs {
    pub fn new(
        store: Arc<Store>,
        components: Arc<Registry>,
        config: Arc<ServeConfig>,
        shutdown: CancellationToken,
    ) -> Arc<Jobs> {
        let (finished, _) = broadcast::channel(1024);
        Arc::new(Jobs {
            store,
            components,
            config,
            wake: Arc::new(Notify::new()),
            finished,
            components_changed: Arc::new(Notify::new()),
            shutdown,
            workers_alive: AtomicUsize::new(0),
            workers_busy: AtomicUsize::new(0),
            handoff: handoff::Handoff::default(),
        })
    }

    /// Where the store sends other hosts' notifications.
    pub fn wakers(&self) -> Wakers {
        Wakers {
            jobs: self.wake.clone(),
            finished: self.finished.clone(),
            components: self.components_changed.clone(),
        }
    }
}

/// sha256 of a source, on a blocking thread: a photo's worth takes milliseconds.
async fn hash(bytes: &Bytes) -> String {
    let bytes = bytes.clone();
    tokio::task::spawn_blocking(move || crate::digest::sha256_hex(&bytes))
        .await
        .expect("hashing does not panic")
}

impl Jobs {
    /// Reads a job; with `wait`, until it finishes or the wait runs out (long poll).
    pub async fn poll(&self, id: Uuid, owner: Option<&str>, wait: Duration) -> Result<Job, JobsError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut finished = self.finished.subscribe();
        loop {
            let job = self.store.get(id, owner).await?.ok_or(JobsError::NotFound(id))?;
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
                    _ = self.shutdown.cancelled() => return Ok(job),
                }
            }
        }
    }

    /// Cancels a queued job or deletes a finished one with its data.
    pub async fn delete(&self, id: Uuid, owner: Option<&str>) -> Result<Deleted, JobsError> {
        let deleted = self.store.delete(id, owner).await?;
        if deleted == Deleted::Cancelled {
            self.handoff.take_source(id);
            // Long-polls on this host see the cancellation now (the store tells other hosts).
            let _ = self.finished.send(id);
        }
        Ok(deleted)
    }
}
