//! Batches: an owner's ordered list of jobs, each with a name (the uploaded file's, or the
//! URL's last segment). Jobs are submitted one by one through the one submission path; the
//! batch is recorded once they all are, in one transaction.

use std::time::Duration;

use sqlx::Row;
use uuid::Uuid;

use super::jobs::{job_from_row, owner_key};
use super::{Job, Store, StoreError, ms, now_ms};

/// A batch as stored, with the members whose jobs still exist, in order.
#[derive(Debug, Clone)]
pub struct Batch {
    pub id: Uuid,
    pub created_at: i64,
    /// Members when the batch was made (some may have been deleted or expired since).
    pub total: u64,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub position: u64,
    pub name: String,
    pub job: Job,
}

impl Store {
    /// Records a batch of already submitted jobs (`(job id, name)` in order).
    pub async fn insert_batch(
        &self,
        id: Uuid,
        owner: Option<&str>,
        members: &[(Uuid, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO batches (id, owner, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(owner_key(owner))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        for (position, (job, name)) in members.iter().enumerate() {
            sqlx::query("INSERT INTO batch_jobs (batch_id, position, job_id, name) VALUES ($1, $2, $3, $4)")
                .bind(id.to_string())
                .bind(position as i64)
                .bind(job.to_string())
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A batch, if `owner` may see it.
    pub async fn batch(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Batch>, StoreError> {
        let head = sqlx::query(
            "SELECT created_at, (SELECT COUNT(*) FROM batch_jobs WHERE batch_id = $1) AS total
             FROM batches WHERE id = $1 AND owner = $2",
        )
        .bind(id.to_string())
        .bind(owner_key(owner))
        .fetch_optional(&self.pool)
        .await?;
        let Some(head) = head else { return Ok(None) };
        let rows = sqlx::query(concat!(
            "SELECT b.position AS position, b.name AS name, ",
            job_columns!(),
            " FROM batch_jobs b JOIN jobs j ON j.id = b.job_id WHERE b.batch_id = $1 ORDER BY b.position"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut members = Vec::with_capacity(rows.len());
        for row in rows {
            members.push(Member {
                position: row.try_get::<i64, _>("position")? as u64,
                name: row.try_get("name")?,
                job: job_from_row(&row)?,
            });
        }
        Ok(Some(Batch {
            id,
            created_at: head.try_get("created_at")?,
            total: head.try_get::<i64, _>("total")? as u64,
            members,
        }))
    }

    /// Forgets members whose jobs are gone, and batches older than `ttl` with none left.
    pub(super) async fn sweep_batches(&self, ttl: Duration) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM batches WHERE created_at < $1 AND NOT EXISTS
                       (SELECT 1 FROM batch_jobs b JOIN jobs j ON j.id = b.job_id WHERE b.batch_id = batches.id)")
            .bind(now_ms() - ms(ttl))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM batch_jobs WHERE NOT EXISTS (SELECT 1 FROM batches WHERE batches.id = batch_jobs.batch_id)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
