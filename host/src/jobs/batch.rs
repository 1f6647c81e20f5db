//! Batches: many submissions at once, each through the one submission path, recorded
//! together so their progress can be read (and their thumbnails zipped) as one.

use uuid::Uuid;

use super::{Jobs, JobsError, Submission};
use crate::store::{Deleted, Job};

/// One image of a batch: its name (for the archive) and its submission.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub name: String,
    pub submission: Submission,
}

impl Jobs {
    /// Submits every item, or none: when one is refused (the queue filled up meanwhile, the
    /// store failed), the jobs already queued are cancelled and the error is returned.
    pub async fn submit_batch(
        &self,
        owner: Option<String>,
        items: Vec<BatchItem>,
    ) -> Result<(Uuid, Vec<Job>), JobsError> {
        // Refuse up front what cannot fit, rather than half a batch.
        let queued = self.store.count_queued().await?;
        if queued + items.len() as u64 > self.config.max_queue {
            return Err(JobsError::QueueFull(queued));
        }
        let mut jobs = Vec::with_capacity(items.len());
        let mut members = Vec::with_capacity(items.len());
        for item in items {
            match self.submit(item.submission).await {
                Ok(submitted) => {
                    members.push((submitted.job.id, item.name));
                    jobs.push(submitted.job);
                }
                Err(e) => {
                    self.cancel_all(&jobs, owner.as_deref()).await;
                    return Err(e);
                }
            }
        }
        let id = Uuid::new_v4();
        if let Err(e) = self.store.insert_batch(id, owner.as_deref(), &members).await {
            self.cancel_all(&jobs, owner.as_deref()).await;
            return Err(e.into());
        }
        tracing::info!(batch_id = %id, jobs = jobs.len(), "batch queued");
        Ok((id, jobs))
    }

    /// Best effort: a job may already be running (it then finishes, outside any batch).
    async fn cancel_all(&self, jobs: &[Job], owner: Option<&str>) {
        for job in jobs {
            match self.delete(job.id, owner).await {
                Ok(Deleted::Cancelled | Deleted::Removed | Deleted::NotFound) => {}
                Ok(Deleted::Running) => {
                    tracing::info!(job_id = %job.id, "an abandoned batch's job is running")
                }
                Err(e) => {
                    tracing::warn!(job_id = %job.id, error = %e, "cancelling an abandoned batch's job failed")
                }
            }
        }
    }
}
