//! The queue and the job records: insert (or copy a finished equal job), claim under a lease,
//! heartbeat, complete; reads, listings, deletes and expiry. Every statement that writes a
//! job also moves its blob references, in the same transaction.

use std::time::Duration;

use bytes::Bytes;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::notify::{CHANNEL_FINISHED, CHANNEL_JOBS};
use super::{
    Claimed, Deleted, Job, JobStatus, Kind, Made, NewJob, NewSource, Outcome, Page, QueueStats, Store,
    StoreError, UrlResult, decode_cursor, encode_cursor, ms, now_ms,
};
use crate::codes::Code;
use resizer_core::OutputFormat;

/// The PostgreSQL advisory lock that serialises job inserts under a queue limit (any constant
/// unique to this use; the value spells "queue").
const QUEUE_LOCK: i64 = 0x0071_7565_7565;

/// The columns of `jobs` every statement returns, in the order [`job_from_row`] reads them.
macro_rules! job_columns {
    () => {
        "id, owner, status, created_at, started_at, finished_at, attempts, options, source_hash, \
         source_bytes, source_format, source_width, source_height, result_bytes, result_width, \
         result_height, result_etag, component_digest, error_code, error_message, deduplicated_from, \
         requested_component, source_url, callback_url, result_format"
    };
}

/// The claim: the oldest runnable job (queued and due, or running with an expired lease).
const CLAIM_SQLITE: &str = concat!(
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = $1, lease_until = $2, lease_token = $3
     WHERE id = (SELECT id FROM jobs
                 WHERE (status = 'queued' AND (not_before IS NULL OR not_before <= $1))
                    OR (status = 'running' AND lease_until < $1)
                 ORDER BY created_at, id LIMIT 1)
     RETURNING ",
    job_columns!()
);
/// The same on PostgreSQL, where many hosts claim at once: each skips rows another is taking.
const CLAIM_POSTGRES: &str = concat!(
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = $1, lease_until = $2, lease_token = $3
     WHERE id = (SELECT id FROM jobs
                 WHERE (status = 'queued' AND (not_before IS NULL OR not_before <= $1))
                    OR (status = 'running' AND lease_until < $1)
                 ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING ",
    job_columns!()
);

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn opt_u32(row: &AnyRow, column: &str) -> Result<Option<u32>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v as u32))
}

/// Owners are stored as `''` when no API key is in use, so every owner filter is a plain,
/// indexable `owner = $N`.
pub(super) fn owner_key(owner: Option<&str>) -> &str {
    owner.unwrap_or("")
}

pub(super) fn job_from_row(row: &AnyRow) -> Result<Job, StoreError> {
    let id: String = row.try_get("id")?;
    let owner: String = row.try_get("owner")?;
    let status: String = row.try_get("status")?;
    let options: String = row.try_get("options")?;
    let source_hash: String = row.try_get("source_hash")?;
    let error_code: Option<String> = row.try_get("error_code")?;
    let dedup: Option<String> = row.try_get("deduplicated_from")?;
    Ok(Job {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("job id"))?,
        owner: Some(owner).filter(|o| !o.is_empty()),
        status: JobStatus::parse(&status).ok_or_else(|| corrupt("job status"))?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        options: serde_json::from_str(&options).map_err(|_| corrupt("job options"))?,
        source_hash: Some(source_hash).filter(|h| !h.is_empty()),
        source_bytes: row.try_get::<i64, _>("source_bytes")? as u64,
        source_format: row.try_get("source_format")?,
        source_width: opt_u32(row, "source_width")?,
        source_height: opt_u32(row, "source_height")?,
        result_bytes: row.try_get::<Option<i64>, _>("result_bytes")?.map(|v| v as u64),
        result_width: opt_u32(row, "result_width")?,
        result_height: opt_u32(row, "result_height")?,
        result_hash: row.try_get("result_etag")?,
        result_format: row
            .try_get::<Option<String>, _>("result_format")?
            .and_then(|f| OutputFormat::parse(&f)),
        component_digest: row.try_get("component_digest")?,
        // A code this version does not know came from a newer host; it is still a failure.
        error_code: error_code.map(|c| Code::parse(&c).unwrap_or(Code::InternalError)),
        error_message: row.try_get("error_message")?,
        deduplicated_from: dedup.as_deref().and_then(|s| Uuid::parse_str(s).ok()),
        requested_component: row.try_get("requested_component")?,
        source_url: row.try_get("source_url")?,
        callback_url: row.try_get("callback_url")?,
        delivery: None,
    })
}

impl Store {
    /// Inserts a queued job, storing its source unless a blob with that hash is stored already
    /// (then the job takes another reference to it).
    pub async fn insert(&self, job: NewJob) -> Result<Job, StoreError> {
        let inserted = self.insert_within(job, u64::MAX).await?;
        Ok(inserted.expect("no queue limit"))
    }

    /// [`Store::insert`], unless `max_queued` jobs are queued already: then nothing is
    /// written and the count comes back as the error. The count and the insert are one
    /// transaction, serialised with other inserts (SQLite has one writer; PostgreSQL takes a
    /// transaction-scoped advisory lock), so concurrent submissions cannot overshoot the limit.
    pub async fn insert_within(&self, job: NewJob, max_queued: u64) -> Result<Result<Job, u64>, StoreError> {
        let (hash, size, bytes, url) = match &job.source {
            NewSource::Upload { hash, bytes } => (hash.as_str(), bytes.len() as u64, Some(bytes), None),
            NewSource::Stored { hash, size } => (hash.as_str(), *size, None, None),
            NewSource::Url(url) => ("", 0, None, Some(url.as_str())),
            NewSource::Fetched { url, hash, bytes, .. } => {
                (hash.as_str(), bytes.len() as u64, Some(bytes), Some(url.as_str()))
            }
        };
        let (fetched_at, etag, last_modified) = match &job.source {
            NewSource::Fetched {
                etag, last_modified, ..
            } => (Some(now_ms()), etag.as_deref(), last_modified.as_deref()),
            _ => (None, None, None),
        };
        let mut tx = match (bytes, url) {
            (Some(bytes), _) => self.tx_with_blob(hash, bytes).await?,
            (None, Some(_)) => self.write_tx().await?,
            (None, None) => {
                let mut tx = self.write_tx().await?;
                if !self.add_ref(&mut tx, hash, None).await? {
                    return Err(StoreError::BlobMissing(hash.to_string()));
                }
                tx
            }
        };
        if max_queued < u64::MAX {
            if self.kind == Kind::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(QUEUE_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
                .fetch_one(&mut *tx)
                .await?;
            if queued as u64 >= max_queued {
                return Ok(Err(queued as u64));
            }
        }
        let row = sqlx::query(concat!(
            "INSERT INTO jobs (id, owner, status, created_at, attempts, options, source_hash, source_bytes,
                requested_component, source_url, callback_url, url_key, fetched_at, origin_etag, origin_last_modified)
             VALUES ($1, $2, 'queued', $3, 0, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ",
            job_columns!()
        ))
        .bind(job.id.to_string())
        .bind(owner_key(job.owner.as_deref()))
        .bind(now_ms())
        .bind(serde_json::to_string(&job.options).expect("options serialize"))
        .bind(hash)
        .bind(size as i64)
        .bind(&job.requested_component)
        .bind(url)
        .bind(&job.callback_url)
        .bind(&job.url_key)
        .bind(fetched_at)
        .bind(etag)
        .bind(last_modified)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.notify(CHANNEL_JOBS, "").await;
        job_from_row(&row).map(Ok)
    }

    /// Inserts an already-succeeded copy of a finished job with the same dedup key and owner,
    /// if there is one; it shares the original's source and result blobs. Dedup never crosses
    /// owners: a job id or its timing must not tell one API key what another submitted.
    pub async fn insert_copy(
        &self,
        id: Uuid,
        owner: Option<&str>,
        dedup_key: &str,
        callback_url: Option<&str>,
    ) -> Result<Option<Job>, StoreError> {
        // Most submissions miss: look without taking SQLite's write lock; `copy` looks again
        // inside its writing transaction (the original may be deleted meanwhile).
        let seen: Option<String> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE dedup_key = $1 AND owner = $2 AND status = 'succeeded' LIMIT 1",
        )
        .bind(dedup_key)
        .bind(owner_key(owner))
        .fetch_optional(&self.pool)
        .await?;
        let Some(from) = seen.and_then(|s| Uuid::parse_str(&s).ok()) else {
            return Ok(None);
        };
        self.copy(id, owner, from, callback_url, None).await
    }

    /// The newest succeeded URL job of `owner` with this url key: the URL result cache.
    pub async fn find_url_result(
        &self,
        owner: Option<&str>,
        url_key: &str,
    ) -> Result<Option<UrlResult>, StoreError> {
        let row = sqlx::query(
            "SELECT id, fetched_at, origin_etag, origin_last_modified FROM jobs
             WHERE url_key = $1 AND owner = $2 AND status = 'succeeded' AND fetched_at IS NOT NULL
             ORDER BY fetched_at DESC LIMIT 1",
        )
        .bind(url_key)
        .bind(owner_key(owner))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let Ok(id) = Uuid::parse_str(&id) else {
            return Ok(None);
        };
        Ok(Some(UrlResult {
            id,
            fetched_at: row.try_get("fetched_at")?,
            etag: row.try_get("origin_etag")?,
            last_modified: row.try_get("origin_last_modified")?,
        }))
    }

    /// Inserts an already-succeeded copy of `from` (same owner, still succeeded) for job `id`,
    /// sharing its source and result blobs; `None` if it is gone. `fetched_at`, when given,
    /// is when the origin last confirmed the source (a revalidation); otherwise the original's.
    pub async fn copy(
        &self,
        id: Uuid,
        owner: Option<&str>,
        from: Uuid,
        callback_url: Option<&str>,
        fetched_at: Option<i64>,
    ) -> Result<Option<Job>, StoreError> {
        let mut tx = self.write_tx().await?;
        let hit = sqlx::query(
            "SELECT source_hash, result_etag FROM jobs WHERE id = $1 AND owner = $2 AND status = 'succeeded'",
        )
        .bind(from.to_string())
        .bind(owner_key(owner))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(hit) = hit else { return Ok(None) };
        for column in ["source_hash", "result_etag"] {
            let hash: Option<String> = hit.try_get(column)?;
            if let Some(hash) = hash.filter(|h| !h.is_empty())
                && !self.add_ref(&mut tx, &hash, None).await?
            {
                return Ok(None);
            }
        }
        let now = now_ms();
        let row = sqlx::query(concat!(
            "INSERT INTO jobs (id, owner, status, created_at, started_at, finished_at, attempts, options, dedup_key,
                source_hash, source_bytes, source_format, source_width, source_height, result_bytes, result_width,
                result_height, result_etag, component_digest, deduplicated_from, callback_url, result_format,
                source_url, url_key, fetched_at, origin_etag, origin_last_modified)
             SELECT $1, owner, 'succeeded', $2, $2, $2, 0, options, dedup_key, source_hash, source_bytes, source_format,
                source_width, source_height, result_bytes, result_width, result_height, result_etag, component_digest,
                id, $3, result_format, source_url, url_key, COALESCE($5, fetched_at), origin_etag, origin_last_modified
             FROM jobs WHERE id = $4 RETURNING ",
            job_columns!()
        ))
        .bind(id.to_string())
        .bind(now)
        .bind(callback_url)
        .bind(from.to_string())
        .bind(fetched_at)
        .fetch_one(&mut *tx)
        .await?;
        let mut copy = job_from_row(&row)?;
        if let Some(url) = &copy.callback_url {
            copy.delivery = Some(self.insert_delivery(&mut tx, copy.id, url).await?);
        }
        tx.commit().await?;
        Ok(Some(copy))
    }

    /// A job, if `owner` may see it.
    pub async fn get(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1 AND owner = $2"
        ))
        .bind(id.to_string())
        .bind(owner_key(owner))
        .fetch_optional(&self.pool)
        .await?;
        self.with_delivery(row).await
    }

    /// A job whatever its owner, for the host's own use (webhook payloads).
    pub async fn get_any(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        self.with_delivery(row).await
    }

    async fn with_delivery(&self, row: Option<AnyRow>) -> Result<Option<Job>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        let mut job = job_from_row(&row)?;
        if job.callback_url.is_some() {
            job.delivery = self.delivery_of(job.id).await?;
        }
        Ok(Some(job))
    }

    /// One page of `owner`'s jobs, newest first.
    pub async fn list(
        &self,
        owner: Option<&str>,
        status: Option<JobStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError> {
        let (after_time, after_id) = cursor.and_then(decode_cursor).unzip();
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE owner = $1 AND ($2 IS NULL OR status = $2)
                AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4))
              ORDER BY created_at DESC, id DESC LIMIT $5"
        ))
        .bind(owner_key(owner))
        .bind(status.map(JobStatus::as_str))
        .bind(after_time)
        .bind(after_id)
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(job) = self.with_delivery(Some(row)).await? {
                jobs.push(job);
            }
        }
        let next_cursor = if jobs.len() > limit as usize {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| encode_cursor(j.created_at, j.id))
        } else {
            None
        };
        Ok(Page { jobs, next_cursor })
    }

    /// Cancels a queued job (it keeps its row, as `cancelled`, until the sweep; its webhook is
    /// queued in the same transaction), or deletes a finished or cancelled one with its blob
    /// references.
    pub async fn delete(&self, id: Uuid, owner: Option<&str>) -> Result<Deleted, StoreError> {
        let mut tx = self.write_tx().await?;
        let cancelled = sqlx::query(concat!(
            "UPDATE jobs SET status = 'cancelled', finished_at = $1, not_before = NULL
             WHERE id = $2 AND owner = $3 AND status = 'queued' RETURNING ",
            job_columns!()
        ))
        .bind(now_ms())
        .bind(id.to_string())
        .bind(owner_key(owner))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = cancelled {
            let job = job_from_row(&row)?;
            if let Some(url) = &job.callback_url {
                self.insert_delivery(&mut tx, id, url).await?;
            }
            tx.commit().await?;
            self.notify(CHANNEL_FINISHED, &id.to_string()).await;
            return Ok(Deleted::Cancelled);
        }
        let row = sqlx::query(
            "DELETE FROM jobs WHERE id = $1 AND owner = $2 AND status IN ('succeeded', 'failed', 'cancelled')
             RETURNING source_hash, result_etag",
        )
        .bind(id.to_string())
        .bind(owner_key(owner))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1 AND owner = $2")
                    .bind(id.to_string())
                    .bind(owner_key(owner))
                    .fetch_optional(&mut *tx)
                    .await?;
            return Ok(if exists.is_some() {
                Deleted::Running
            } else {
                Deleted::NotFound
            });
        };
        self.release_job_refs(&mut tx, &[row]).await?;
        tx.commit().await?;
        self.collect_garbage().await?;
        Ok(Deleted::Removed)
    }

    /// Gives back the blob references of deleted job rows (`source_hash`, `result_etag`).
    async fn release_job_refs(
        &self,
        tx: &mut sqlx::AnyConnection,
        rows: &[AnyRow],
    ) -> Result<(), StoreError> {
        let mut hashes = Vec::new();
        for row in rows {
            let source: String = row.try_get("source_hash")?;
            let result: Option<String> = row.try_get("result_etag")?;
            hashes.extend(Some(source).filter(|h| !h.is_empty()));
            hashes.extend(result);
        }
        self.release_refs(tx, hashes.iter().map(String::as_str)).await
    }

    /// Deletes finished jobs older than `ttl`, then the blobs no job uses; returns how many jobs.
    pub async fn sweep(&self, ttl: Duration) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1
             RETURNING source_hash, result_etag",
        )
        .bind(now_ms() - ms(ttl))
        .fetch_all(&mut *tx)
        .await?;
        self.release_job_refs(&mut tx, &rows).await?;
        tx.commit().await?;
        self.collect_garbage().await?;
        self.sweep_batches(ttl).await?;
        Ok(rows.len() as u64)
    }

    /// The queue now, and the jobs finished since `since` (ms since the epoch).
    pub async fn stats(&self, since: i64) -> Result<QueueStats, StoreError> {
        let queue =
            sqlx::query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM jobs WHERE status = 'queued'")
                .fetch_one(&self.pool)
                .await?;
        let done = sqlx::query(
            "SELECT COUNT(CASE WHEN status = 'succeeded' THEN 1 END) AS succeeded,
                    COUNT(CASE WHEN status = 'failed' THEN 1 END) AS failed
             FROM jobs WHERE finished_at >= $1",
        )
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStats {
            queued: queue.try_get::<i64, _>("n")? as u64,
            oldest_queued_at: queue.try_get("oldest")?,
            succeeded: done.try_get::<i64, _>("succeeded")? as u64,
            failed: done.try_get::<i64, _>("failed")? as u64,
        })
    }

    pub async fn count_queued(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// Takes the oldest runnable job under a lease of `lease`.
    pub async fn claim(&self, lease: Duration) -> Result<Option<Claimed>, StoreError> {
        let now = now_ms();
        let token = Uuid::new_v4();
        let mut tx = self.write_tx().await?;
        let claim = match self.kind {
            Kind::Sqlite => CLAIM_SQLITE,
            Kind::Postgres => CLAIM_POSTGRES,
        };
        let row = sqlx::query(claim)
            .bind(now)
            .bind(now + ms(lease))
            .bind(token.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let active_component: Option<String> = sqlx::query_scalar(super::components::ACTIVE_DIGEST)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Claimed {
            job: job_from_row(&row)?,
            token,
            active_component,
        }))
    }

    /// Records the fetched source of a URL job, with when it was fetched and the origin's
    /// validators for it (`etag`, `last_modified`); false if the claim was lost.
    pub async fn set_source(
        &self,
        id: Uuid,
        token: Uuid,
        hash: &str,
        bytes: &Bytes,
        (etag, last_modified): (Option<&str>, Option<&str>),
    ) -> Result<bool, StoreError> {
        let mut tx = self.tx_with_blob(hash, bytes).await?;
        let done = sqlx::query(
            "UPDATE jobs SET source_hash = $1, source_bytes = $2, fetched_at = $5, origin_etag = $6,
                origin_last_modified = $7
             WHERE id = $3 AND lease_token = $4 AND status = 'running' AND source_hash = ''",
        )
        .bind(hash)
        .bind(bytes.len() as i64)
        .bind(id.to_string())
        .bind(token.to_string())
        .bind(now_ms())
        .bind(etag)
        .bind(last_modified)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Rolled back with its reference: the claim was lost.
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Extends a claim's lease; false if the claim was lost.
    pub async fn heartbeat(&self, id: Uuid, token: Uuid, lease: Duration) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_token = $3 AND status = 'running'",
        )
        .bind(now_ms() + ms(lease))
        .bind(id.to_string())
        .bind(token.to_string())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how a claim ended and returns the job as it now stands; `None` if the claim
    /// was lost meanwhile. A finished job's webhook delivery is queued in the same
    /// transaction, so a crash cannot leave a finished job whose callback is never called.
    pub async fn complete(
        &self,
        id: Uuid,
        token: Uuid,
        outcome: &Outcome,
    ) -> Result<Option<Job>, StoreError> {
        let mut tx = match outcome {
            Outcome::Succeeded(made) => self.tx_with_blob(&made.result_hash, &made.result).await?,
            _ => self.write_tx().await?,
        };
        let row = complete_statement(id, token, outcome)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut job = job_from_row(&row)?;
        if job.status.is_finished()
            && let Some(url) = &job.callback_url
        {
            job.delivery = Some(self.insert_delivery(&mut tx, id, url).await?);
        }
        tx.commit().await?;
        match job.status {
            JobStatus::Queued => self.notify(CHANNEL_JOBS, "").await,
            _ => self.notify(CHANNEL_FINISHED, &id.to_string()).await,
        }
        Ok(Some(job))
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// The `UPDATE` that records `outcome`, guarded by the claim.
fn complete_statement<'q>(id: Uuid, token: Uuid, outcome: &'q Outcome) -> AnyQuery<'q> {
    let now = now_ms();
    let query = match outcome {
        Outcome::Succeeded(made) => succeeded(made, now),
        Outcome::Failed {
            code,
            message,
            component_digest,
        } => sqlx::query(concat!(
            "UPDATE jobs SET status = 'failed', finished_at = $1, lease_until = NULL, lease_token = NULL,
                error_code = $2, error_message = $3, component_digest = $4
             WHERE id = $5 AND lease_token = $6 AND status = 'running' RETURNING ",
            job_columns!()
        ))
        .bind(now)
        .bind(code.as_str())
        .bind(message.as_str())
        .bind(component_digest.as_deref()),
        Outcome::Retry {
            code,
            message,
            not_before,
        } => sqlx::query(concat!(
            "UPDATE jobs SET status = 'queued', lease_until = NULL, lease_token = NULL, error_code = $1,
                error_message = $2, not_before = $3
             WHERE id = $4 AND lease_token = $5 AND status = 'running' RETURNING ",
            job_columns!()
        ))
        .bind(code.as_str())
        .bind(message.as_str())
        .bind(*not_before),
    };
    query.bind(id.to_string()).bind(token.to_string())
}

fn succeeded(made: &Made, now: i64) -> AnyQuery<'_> {
    sqlx::query(concat!(
        "UPDATE jobs SET status = 'succeeded', finished_at = $1, lease_until = NULL, lease_token = NULL,
            result_bytes = $2, result_width = $3, result_height = $4, result_etag = $5, source_format = $6,
            source_width = $7, source_height = $8, component_digest = $9, dedup_key = $10, error_code = NULL,
            error_message = NULL, result_format = $11
         WHERE id = $12 AND lease_token = $13 AND status = 'running' RETURNING ",
        job_columns!()
    ))
    .bind(now)
    .bind(made.result.len() as i64)
    .bind(made.width as i64)
    .bind(made.height as i64)
    .bind(made.result_hash.as_str())
    .bind(made.source_format.as_str())
    .bind(made.source_width as i64)
    .bind(made.source_height as i64)
    .bind(made.component_digest.as_str())
    .bind(made.dedup_key.as_str())
    .bind(made.format.name())
}
