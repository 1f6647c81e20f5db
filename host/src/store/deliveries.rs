//! Webhook deliveries: one per finished job with a callback, queued in the transaction that
//! finishes the job, claimed under a lease and retried until delivered or given up.

use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Delivery, DeliveryOutcome, Store, StoreError, ms, now_ms};

/// The columns of `deliveries` every statement returns, as [`delivery_from_row`] reads them.
macro_rules! delivery_columns {
    () => {
        "id, job_id, url, status, attempts, created_at, next_attempt_at, delivered_at, last_error"
    };
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    let job_id: String = row.try_get("job_id")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        job_id: Uuid::parse_str(&job_id).map_err(|_| StoreError::Corrupt("delivery job id".into()))?,
        url: row.try_get("url")?,
        status: row.try_get("status")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        created_at: row.try_get("created_at")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        delivered_at_ms: row.try_get("delivered_at")?,
        last_error: row.try_get("last_error")?,
    })
}

impl Store {
    /// Queues the delivery of a finished job inside the transaction that finishes it.
    pub(super) async fn insert_delivery(
        &self,
        tx: &mut sqlx::AnyConnection,
        job_id: Uuid,
        url: &str,
    ) -> Result<Delivery, StoreError> {
        let now = now_ms();
        let row = sqlx::query(concat!(
            "INSERT INTO deliveries (id, job_id, url, status, attempts, created_at, next_attempt_at)
             VALUES ($1, $2, $3, 'pending', 0, $4, $4) RETURNING ",
            delivery_columns!()
        ))
        .bind(format!("msg_{}", Uuid::new_v4().simple()))
        .bind(job_id.to_string())
        .bind(url)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        delivery_from_row(&row)
    }

    /// The delivery of a job, if it has finished and has a callback.
    pub(super) async fn delivery_of(&self, job_id: Uuid) -> Result<Option<Delivery>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE job_id = $1"
        ))
        .bind(job_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// Takes a due delivery, leasing it for `lease`.
    /// Webhooks an owner has waiting: deliveries not yet made, and jobs with a callback that
    /// have not finished (their delivery is queued when they do).
    pub async fn pending_webhooks(&self, owner: Option<&str>) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM deliveries d JOIN jobs j ON j.id = d.job_id
                     WHERE j.owner = $1 AND d.status = 'pending')
                  + (SELECT COUNT(*) FROM jobs
                     WHERE owner = $1 AND callback_url IS NOT NULL AND status IN ('queued', 'running'))",
        )
        .bind(owner.unwrap_or(""))
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    pub async fn claim_delivery(&self, lease: Duration) -> Result<Option<Delivery>, StoreError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        // Two steps instead of UPDATE ... WHERE id = (SELECT ...), so the one PostgreSQL-only
        // clause stays in one short statement.
        let due: Option<String> = sqlx::query_scalar(match self.kind {
            super::Kind::Sqlite => {
                "SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1
                   AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_attempt_at LIMIT 1"
            }
            super::Kind::Postgres => {
                "SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1
                   AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_attempt_at LIMIT 1
                 FOR UPDATE SKIP LOCKED"
            }
        })
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = due else { return Ok(None) };
        let row = sqlx::query(concat!(
            "UPDATE deliveries SET lease_until = $1 WHERE id = $2 RETURNING ",
            delivery_columns!()
        ))
        .bind(now + ms(lease))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        delivery_from_row(&row).map(Some)
    }

    /// Records how a delivery attempt ended.
    pub async fn finish_delivery(&self, id: &str, outcome: &DeliveryOutcome) -> Result<(), StoreError> {
        let query = match outcome {
            DeliveryOutcome::Delivered => sqlx::query(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = $1,
                    lease_until = NULL, last_error = NULL WHERE id = $2",
            )
            .bind(now_ms()),
            DeliveryOutcome::RetryAt { at, error } => sqlx::query(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, lease_until = NULL,
                    last_error = $2 WHERE id = $3",
            )
            .bind(*at)
            .bind(error.as_str()),
            DeliveryOutcome::GaveUp { error } => sqlx::query(
                "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, lease_until = NULL,
                    last_error = $1 WHERE id = $2",
            )
            .bind(error.as_str()),
        };
        query.bind(id).execute(&self.writer).await?;
        Ok(())
    }
}
