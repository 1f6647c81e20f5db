//! What the API reads through the job layer: jobs, their thumbnails, batches, the queue's
//! figures and the store's health. The API calls these verbs and never the store itself, so
//! what it may see of storage is decided here.

use bytes::Bytes;
use uuid::Uuid;

use super::{Jobs, JobsError};
use crate::store::{Batch, Job, JobStatus, Page, QueueStats};

impl Jobs {
    /// `owner`'s job `id`, if it exists.
    pub async fn get(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Job>, JobsError> {
        Ok(self.store.get(id, owner).await?)
    }

    /// One page of `owner`'s jobs, newest first.
    pub async fn list(
        &self,
        owner: Option<&str>,
        status: Option<JobStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, JobsError> {
        Ok(self.store.list(owner, status, limit, cursor).await?)
    }

    /// A finished job's thumbnail bytes, by their hash; `None` once the job is gone.
    pub async fn thumbnail_bytes(&self, hash: &str) -> Result<Option<Bytes>, JobsError> {
        Ok(self.store.blob(hash).await?)
    }

    /// `owner`'s batch `id` and its members.
    pub async fn batch(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Batch>, JobsError> {
        Ok(self.store.batch(id, owner).await?)
    }

    /// The queue and the jobs finished since `since` (ms since the epoch).
    pub async fn stats(&self, since: i64) -> Result<QueueStats, JobsError> {
        Ok(self.store.stats(since).await?)
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), JobsError> {
        Ok(self.store.ping().await?)
    }
}
