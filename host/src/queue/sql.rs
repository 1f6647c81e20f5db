//! The SQL both backends share. Each backend module (`sqlite`, `postgres`) invokes
//! [`sql_store!`] for its own connection types, so the statements are written once; the few
//! dialect differences are tokens in the SQL (`{IS}`, `{SKIP_LOCKED}`) and the placeholder
//! style, resolved by [`Dialect`] when a statement is first used.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Columns of `jobs` every query returns, in [`job_from_row`]'s order.
pub(crate) const COLUMNS: &str = "id, owner, status, created_at, started_at, finished_at, attempts, options, \
    source_hash, source_bytes, source_format, source_width, source_height, result_bytes, result_width, \
    result_height, result_etag, component_digest, error_code, error_message, deduplicated_from, \
    requested_component, source_url, callback_url";

pub(crate) const DELIVERY_COLUMNS: &str =
    "id, job_id, url, status, attempts, created_at, next_attempt_at, delivered_at, last_error";

/// How a backend's SQL differs from the shared text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The statement for `dialect`: tokens replaced and, for PostgreSQL, `?` placeholders
/// numbered `$1, $2, ...`. Results are kept for the life of the process (the set of
/// statements is fixed, so this is a bounded cache that hands out `&'static str`).
pub(crate) fn statement(dialect: Dialect, sql: &str) -> &'static str {
    static CACHE: OnceLock<Mutex<HashMap<(Dialect, String), &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(s) = cache.lock().unwrap().get(&(dialect, sql.to_string())) {
        return s;
    }
    let (is, skip_locked) = match dialect {
        Dialect::Sqlite => ("IS", ""),
        Dialect::Postgres => ("IS NOT DISTINCT FROM", "FOR UPDATE SKIP LOCKED"),
    };
    let text = sql.replace("{IS}", is).replace("{SKIP_LOCKED}", skip_locked);
    let text = match dialect {
        Dialect::Sqlite => text,
        Dialect::Postgres => {
            // No statement here has a '?' inside a string literal, so every one is a placeholder.
            let mut out = String::with_capacity(text.len() + 16);
            let mut n = 0;
            for c in text.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    cache.lock().unwrap().insert((dialect, sql.to_string()), leaked);
    leaked
}

/// Implements [`JobStore`](super::JobStore) and [`ComponentStore`](super::ComponentStore) for
/// `$store` (a struct with a `pool` field, a `DIALECT` constant, and `write_tx` and `notify`
/// methods) over the database `$db` whose rows are `$row`.
macro_rules! sql_store {
    ($store:ident, $db:ty, $row:ty) => {
        fn q(sql: impl AsRef<str>) -> &'static str {
            $crate::queue::sql::statement(<$store>::DIALECT, sql.as_ref())
        }

        fn job_from_row(row: &$row) -> Result<Job, QueueError> {
            let corrupt = |what: &str| QueueError::Corrupt(what.to_string());
            let id: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let options: String = row.try_get("options")?;
            let dedup: Option<String> = row.try_get("deduplicated_from")?;
            Ok(Job {
                id: Uuid::parse_str(&id).map_err(|_| corrupt("job id"))?,
                owner: row.try_get("owner")?,
                status: JobStatus::parse(&status).ok_or_else(|| corrupt("job status"))?,
                created_at: row.try_get("created_at")?,
                started_at: row.try_get("started_at")?,
                finished_at: row.try_get("finished_at")?,
                attempts: row.try_get::<i64, _>("attempts")? as u32,
                options: serde_json::from_str(&options).map_err(|_| corrupt("job options"))?,
                source_hash: row.try_get("source_hash")?,
                source_bytes: row.try_get::<i64, _>("source_bytes")? as u64,
                source_format: row.try_get("source_format")?,
                source_width: row.try_get::<Option<i64>, _>("source_width")?.map(|v| v as u32),
                source_height: row.try_get::<Option<i64>, _>("source_height")?.map(|v| v as u32),
                result_bytes: row.try_get::<Option<i64>, _>("result_bytes")?.map(|v| v as u64),
                result_width: row.try_get::<Option<i64>, _>("result_width")?.map(|v| v as u32),
                result_height: row.try_get::<Option<i64>, _>("result_height")?.map(|v| v as u32),
                result_etag: row.try_get("result_etag")?,
                component_digest: row.try_get("component_digest")?,
                error_code: row.try_get("error_code")?,
                error_message: row.try_get("error_message")?,
                deduplicated_from: dedup.as_deref().and_then(|s| Uuid::parse_str(s).ok()),
                requested_component: row.try_get("requested_component")?,
                source_url: row.try_get("source_url")?,
                callback_url: row.try_get("callback_url")?,
                delivery: None,
            })
        }

        fn delivery_from_row(row: &$row) -> Result<Delivery, QueueError> {
            let job_id: String = row.try_get("job_id")?;
            Ok(Delivery {
                id: row.try_get("id")?,
                job_id: Uuid::parse_str(&job_id).map_err(|_| QueueError::Corrupt("delivery job id".into()))?,
                url: row.try_get("url")?,
                status: row.try_get("status")?,
                attempts: row.try_get::<i64, _>("attempts")? as u32,
                created_at: row.try_get("created_at")?,
                next_attempt_at: row.try_get("next_attempt_at")?,
                delivered_at_ms: row.try_get("delivered_at")?,
                last_error: row.try_get("last_error")?,
            })
        }

        impl $store {
            async fn with_delivery(&self, job: Job) -> Result<Job, QueueError> {
                let mut jobs = [job];
                self.attach_deliveries(&mut jobs).await?;
                let [job] = jobs;
                Ok(job)
            }

            /// Fills in the webhook deliveries of `jobs` (one query for the lot).
            async fn attach_deliveries(&self, jobs: &mut [Job]) -> Result<(), QueueError> {
                let ids: Vec<String> = jobs
                    .iter()
                    .filter(|j| j.callback_url.is_some())
                    .map(|j| j.id.to_string())
                    .collect();
                if ids.is_empty() {
                    return Ok(());
                }
                let placeholders = vec!["?"; ids.len()].join(", ");
                let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE job_id IN ({placeholders})");
                let mut q = sqlx::query(q(&sql));
                for id in &ids {
                    q = q.bind(id);
                }
                for row in q.fetch_all(&self.pool).await? {
                    let d = delivery_from_row(&row)?;
                    if let Some(job) = jobs.iter_mut().find(|j| j.id == d.job_id) {
                        job.delivery = Some(d);
                    }
                }
                Ok(())
            }
        }

        fn owner_clause(owner: Option<&str>) -> &'static str {
            if owner.is_some() {
                "owner = ?"
            } else {
                "owner IS NULL"
            }
        }

        type Query<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;

        /// Binds the owner for [`owner_clause`], which has a placeholder only when there is one.
        fn bind_owner<'q>(q: Query<'q>, owner: Option<&'q str>) -> Query<'q> {
            match owner {
                Some(o) => q.bind(o),
                None => q,
            }
        }

        #[async_trait]
        impl JobStore for $store {
            async fn insert(&self, job: NewJob) -> Result<Job, QueueError> {
                let id = Uuid::new_v4().to_string();
                let mut tx = self.write_tx().await?;
                let row = sqlx::query(q(&format!(
                    "INSERT INTO jobs (id, owner, status, created_at, attempts, options, cache_key, source_hash, source_bytes,
                        requested_component, source_url, callback_url)
                     VALUES (?, ?, 'queued', ?, 0, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
                )))
                .bind(&id)
                .bind(&job.owner)
                .bind(now_ms())
                .bind(serde_json::to_string(&job.options).expect("options serialize"))
                .bind(&job.cache_key)
                .bind(if job.source_url.is_some() { String::new() } else { crate::sandbox::sha256_hex(&job.source) })
                .bind(job.source.len() as i64)
                .bind(&job.requested_component)
                .bind(&job.source_url)
                .bind(&job.callback_url)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(q("INSERT INTO job_data (job_id, source) VALUES (?, ?)"))
                    .bind(&id)
                    .bind(if job.source_url.is_some() {
                        None
                    } else {
                        Some(&job.source)
                    })
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.notify($crate::queue::CHANNEL_JOBS, "").await;
                job_from_row(&row)
            }

            async fn insert_cached(&self, job: &NewJob) -> Result<Option<Job>, QueueError> {
                let mut tx = self.write_tx().await?;
                let hit = sqlx::query(q(
                    "SELECT j.id, d.result FROM jobs j JOIN job_data d ON d.job_id = j.id
                     WHERE j.cache_key = ? AND j.owner {IS} ? AND j.status = 'succeeded' AND d.result IS NOT NULL LIMIT 1",
                ))
                .bind(&job.cache_key)
                .bind(&job.owner)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(hit) = hit else { return Ok(None) };
                let from: String = hit.try_get("id")?;
                let result: Vec<u8> = hit.try_get("result")?;
                let id = Uuid::new_v4().to_string();
                let now = now_ms();
                let row = sqlx::query(q(&format!(
                    "INSERT INTO jobs (id, owner, status, created_at, started_at, finished_at, attempts, options, cache_key,
                        source_hash, source_bytes, source_format, source_width, source_height, result_bytes, result_width,
                        result_height, result_etag, component_digest, deduplicated_from, callback_url)
                     SELECT ?, ?, 'succeeded', ?, ?, ?, 0, options, cache_key, source_hash, source_bytes, source_format,
                        source_width, source_height, result_bytes, result_width, result_height, result_etag, component_digest, id, ?
                     FROM jobs WHERE id = ? RETURNING {COLUMNS}"
                )))
                .bind(&id)
                .bind(&job.owner)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(&job.callback_url)
                .bind(&from)
                .fetch_one(&mut *tx)
                .await?;
                // The source is kept too, so a deduplicated job can be replayed like any other.
                sqlx::query(q("INSERT INTO job_data (job_id, source, result) VALUES (?, ?, ?)"))
                    .bind(&id)
                    .bind(&job.source)
                    .bind(&result)
                    .execute(&mut *tx)
                    .await?;
                let copy = job_from_row(&row)?;
                if let Some(url) = &copy.callback_url {
                    insert_delivery(&mut tx, copy.id, url).await?;
                }
                tx.commit().await?;
                Ok(Some(self.with_delivery(copy).await?))
            }

            async fn get(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Job>, QueueError> {
                let sql = format!(
                    "SELECT {COLUMNS} FROM jobs WHERE id = ? AND {}",
                    owner_clause(owner)
                );
                let row = bind_owner(sqlx::query(q(&sql)).bind(id.to_string()), owner)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(row) => Ok(Some(self.with_delivery(job_from_row(&row)?).await?)),
                    None => Ok(None),
                }
            }

            async fn get_any(&self, id: Uuid) -> Result<Option<Job>, QueueError> {
                let row = sqlx::query(q(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?")))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(row) => Ok(Some(self.with_delivery(job_from_row(&row)?).await?)),
                    None => Ok(None),
                }
            }

            async fn list(
                &self,
                owner: Option<&str>,
                status: Option<JobStatus>,
                limit: u32,
                cursor: Option<&str>,
            ) -> Result<Page, QueueError> {
                let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE {}", owner_clause(owner));
                if status.is_some() {
                    sql.push_str(" AND status = ?");
                }
                let cursor = cursor.and_then(decode_cursor);
                if cursor.is_some() {
                    sql.push_str(" AND (created_at < ? OR (created_at = ? AND id < ?))");
                }
                sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
                let mut q = bind_owner(sqlx::query(q(&sql)), owner);
                if let Some(s) = status {
                    q = q.bind(s.as_str());
                }
                if let Some((t, id)) = &cursor {
                    q = q.bind(t).bind(t).bind(id);
                }
                let rows = q.bind(limit as i64 + 1).fetch_all(&self.pool).await?;
                let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
                self.attach_deliveries(&mut jobs).await?;
                let next_cursor = if jobs.len() > limit as usize {
                    jobs.truncate(limit as usize);
                    jobs.last().map(|j| encode_cursor(j.created_at, j.id))
                } else {
                    None
                };
                Ok(Page { jobs, next_cursor })
            }

            async fn result(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Vec<u8>>, QueueError> {
                let sql = format!(
                    "SELECT d.result FROM jobs j JOIN job_data d ON d.job_id = j.id WHERE j.id = ? AND j.{}",
                    owner_clause(owner)
                );
                let row = bind_owner(sqlx::query(q(&sql)).bind(id.to_string()), owner)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.and_then(|r| r.try_get::<Option<Vec<u8>>, _>("result").ok().flatten()))
            }

            async fn source(&self, id: Uuid, owner: Option<&str>) -> Result<Option<Vec<u8>>, QueueError> {
                let sql = format!(
                    "SELECT d.source FROM jobs j JOIN job_data d ON d.job_id = j.id WHERE j.id = ? AND j.{}",
                    owner_clause(owner)
                );
                let row = bind_owner(sqlx::query(q(&sql)).bind(id.to_string()), owner)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.and_then(|r| r.try_get::<Option<Vec<u8>>, _>("source").ok().flatten()))
            }

            async fn delete(&self, id: Uuid, owner: Option<&str>) -> Result<Deleted, QueueError> {
                let Some(job) = self.get(id, owner).await? else {
                    return Ok(Deleted::NotFound);
                };
                if job.status == JobStatus::Running {
                    return Ok(Deleted::Running);
                }
                // Only delete in the state we saw, so a job claimed meanwhile is not pulled away from
                // its worker.
                let done = sqlx::query(q("DELETE FROM jobs WHERE id = ? AND status = ?"))
                    .bind(id.to_string())
                    .bind(job.status.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(match (done.rows_affected(), job.status) {
                    (0, _) => Deleted::Running,
                    (_, JobStatus::Queued) => Deleted::Cancelled,
                    _ => Deleted::Removed,
                })
            }

            async fn count_queued(&self) -> Result<u64, QueueError> {
                let n: i64 = sqlx::query_scalar(q("SELECT COUNT(*) FROM jobs WHERE status = 'queued'"))
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n as u64)
            }

            async fn claim(&self, lease: Duration) -> Result<Option<Claimed>, QueueError> {
                let now = now_ms();
                let token = Uuid::new_v4();
                let mut tx = self.write_tx().await?;
                let row = sqlx::query(q(&format!(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, lease_until = ?,
                        lease_token = ?
                     WHERE id = (SELECT id FROM jobs
                                 WHERE (status = 'queued' AND (not_before IS NULL OR not_before <= ?))
                                    OR (status = 'running' AND lease_until < ?)
                                 ORDER BY created_at, id LIMIT 1 {{SKIP_LOCKED}})
                     RETURNING {COLUMNS}"
                )))
                .bind(now)
                .bind(now + lease.as_millis() as i64)
                .bind(token.to_string())
                .bind(now)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let job = job_from_row(&row)?;
                let source: Option<Vec<u8>> = sqlx::query_scalar(q("SELECT source FROM job_data WHERE job_id = ?"))
                    .bind(job.id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?
                    .flatten();
                let active_component: Option<String> =
                    sqlx::query_scalar(q("SELECT digest FROM activations ORDER BY seq DESC LIMIT 1"))
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.commit().await?;
                let source = match (source, &job.source_url) {
                    (Some(s), _) => s,
                    // A URL job whose source has not been fetched yet.
                    (None, Some(_)) => Vec::new(),
                    (None, None) => return Err(QueueError::Corrupt(format!("job {} has no source", job.id))),
                };
                Ok(Some(Claimed {
                    job,
                    source,
                    token,
                    active_component,
                }))
            }

            async fn set_source(&self, id: Uuid, token: Uuid, source: &[u8]) -> Result<bool, QueueError> {
                let mut tx = self.write_tx().await?;
                let done = sqlx::query(q(
                    "UPDATE jobs SET source_hash = ?, source_bytes = ? WHERE id = ? AND lease_token = ? AND status = 'running'",
                ))
                .bind(crate::sandbox::sha256_hex(source))
                .bind(source.len() as i64)
                .bind(id.to_string())
                .bind(token.to_string())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(q("UPDATE job_data SET source = ? WHERE job_id = ?"))
                    .bind(source)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn claim_delivery(&self, lease: Duration) -> Result<Option<Delivery>, QueueError> {
                let now = now_ms();
                let row = sqlx::query(q(&format!(
                    "UPDATE deliveries SET lease_until = ?
                     WHERE id = (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?
                                 AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at LIMIT 1 {{SKIP_LOCKED}})
                     RETURNING {DELIVERY_COLUMNS}"
                )))
                .bind(now + lease.as_millis() as i64)
                .bind(now)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(delivery_from_row).transpose()
            }

            async fn finish_delivery(&self, id: &str, outcome: DeliveryOutcome) -> Result<(), QueueError> {
                let now = now_ms();
                let q = match &outcome {
                    DeliveryOutcome::Delivered => sqlx::query(q(
                        "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?,
                            lease_until = NULL, last_error = NULL WHERE id = ?",
                    ))
                    .bind(now),
                    DeliveryOutcome::RetryAt { at, error } => sqlx::query(q(
                        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, lease_until = NULL,
                            last_error = ? WHERE id = ?",
                    ))
                    .bind(*at)
                    .bind(error.clone()),
                    DeliveryOutcome::GaveUp { error } => sqlx::query(q(
                        "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, lease_until = NULL,
                            last_error = ? WHERE id = ?",
                    ))
                    .bind(error.clone()),
                };
                q.bind(id).execute(&self.pool).await?;
                Ok(())
            }

            async fn heartbeat(&self, id: Uuid, token: Uuid, lease: Duration) -> Result<bool, QueueError> {
                let done = sqlx::query(q(
                    "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_token = ? AND status = 'running'",
                ))
                .bind(now_ms() + lease.as_millis() as i64)
                .bind(id.to_string())
                .bind(token.to_string())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn complete(&self, id: Uuid, token: Uuid, outcome: Outcome) -> Result<bool, QueueError> {
                let mut tx = self.write_tx().await?;
                let guard = "WHERE id = ? AND lease_token = ? AND status = 'running'";
                let now = now_ms();
                let done = match &outcome {
                    Outcome::Succeeded {
                        result,
                        width,
                        height,
                        source_format,
                        source_width,
                        source_height,
                        component_digest,
                    } => {
                        sqlx::query(q(&format!(
                            "UPDATE jobs SET status = 'succeeded', finished_at = ?, lease_until = NULL, lease_token = NULL,
                                result_bytes = ?, result_width = ?, result_height = ?, result_etag = ?, source_format = ?,
                                source_width = ?, source_height = ?, component_digest = ?, error_code = NULL,
                                error_message = NULL {guard}"
                        )))
                        .bind(now)
                        .bind(result.len() as i64)
                        .bind(*width as i64)
                        .bind(*height as i64)
                        .bind(crate::sandbox::sha256_hex(result))
                        .bind(source_format)
                        .bind(*source_width as i64)
                        .bind(*source_height as i64)
                        .bind(component_digest)
                        .bind(id.to_string())
                        .bind(token.to_string())
                        .execute(&mut *tx)
                        .await?
                    }
                    Outcome::Failed {
                        code,
                        message,
                        component_digest,
                    } => {
                        sqlx::query(q(&format!(
                            "UPDATE jobs SET status = 'failed', finished_at = ?, lease_until = NULL, lease_token = NULL,
                                error_code = ?, error_message = ?, component_digest = ? {guard}"
                        )))
                        .bind(now)
                        .bind(code)
                        .bind(message)
                        .bind(component_digest)
                        .bind(id.to_string())
                        .bind(token.to_string())
                        .execute(&mut *tx)
                        .await?
                    }
                    Outcome::Retry {
                        code,
                        message,
                        not_before,
                    } => {
                        sqlx::query(q(&format!(
                            "UPDATE jobs SET status = 'queued', lease_until = NULL, lease_token = NULL, error_code = ?,
                                error_message = ?, not_before = ? {guard}"
                        )))
                        .bind(code)
                        .bind(message)
                        .bind(not_before)
                        .bind(id.to_string())
                        .bind(token.to_string())
                        .execute(&mut *tx)
                        .await?
                    }
                };
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                if let Outcome::Succeeded { result, .. } = &outcome {
                    sqlx::query(q("UPDATE job_data SET result = ? WHERE job_id = ?"))
                        .bind(result)
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                // The delivery is queued in the same transaction as the outcome: a crash cannot leave
                // a finished job whose callback is never called.
                if !matches!(outcome, Outcome::Retry { .. }) {
                    let callback: Option<String> = sqlx::query_scalar(q("SELECT callback_url FROM jobs WHERE id = ?"))
                        .bind(id.to_string())
                        .fetch_one(&mut *tx)
                        .await?;
                    if let Some(url) = callback {
                        insert_delivery(&mut tx, id, &url).await?;
                    }
                }
                tx.commit().await?;
                match outcome {
                    Outcome::Retry { .. } => self.notify($crate::queue::CHANNEL_JOBS, "").await,
                    _ => self.notify($crate::queue::CHANNEL_FINISHED, &id.to_string()).await,
                }
                Ok(true)
            }

            async fn sweep(&self, ttl: Duration) -> Result<u64, QueueError> {
                let cutoff = now_ms() - ttl.as_millis() as i64;
                let done =
                    sqlx::query(q("DELETE FROM jobs WHERE status IN ('succeeded', 'failed') AND finished_at < ?"))
                        .bind(cutoff)
                        .execute(&self.pool)
                        .await?;
                Ok(done.rows_affected())
            }

            async fn watch(&self, wakers: Wakers, shutdown: tokio_util::sync::CancellationToken) {
                self.watch_notifications(wakers, shutdown).await
            }

            async fn ping(&self) -> Result<(), QueueError> {
                sqlx::query(q("SELECT 1")).execute(&self.pool).await?;
                Ok(())
            }
        }

        fn component_from_row(row: &$row) -> Result<ComponentRecord, QueueError> {
            Ok(ComponentRecord {
                digest: row.try_get("digest")?,
                wit_version: row.try_get("wit_version")?,
                size: row.try_get::<i64, _>("size")? as u64,
                uploaded_at: row.try_get("uploaded_at")?,
                origin: row.try_get("origin")?,
            })
        }

        #[async_trait]
        impl ComponentStore for $store {
            async fn put_component(&self, r: &ComponentRecord, wasm: &[u8]) -> Result<bool, QueueError> {
                let done = sqlx::query(q(
                    "INSERT INTO components (digest, wit_version, size, uploaded_at, origin, wasm) VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (digest) DO NOTHING",
                ))
                .bind(&r.digest)
                .bind(&r.wit_version)
                .bind(r.size as i64)
                .bind(r.uploaded_at)
                .bind(&r.origin)
                .bind(wasm)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn component(&self, digest: &str) -> Result<Option<ComponentRecord>, QueueError> {
                let row = sqlx::query(q(
                    "SELECT digest, wit_version, size, uploaded_at, origin FROM components WHERE digest = ?",
                ))
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(component_from_row).transpose()
            }

            async fn component_wasm(&self, digest: &str) -> Result<Option<Vec<u8>>, QueueError> {
                Ok(sqlx::query_scalar(q("SELECT wasm FROM components WHERE digest = ?"))
                    .bind(digest)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn components(&self) -> Result<Vec<ComponentRecord>, QueueError> {
                let rows = sqlx::query(q(
                    "SELECT digest, wit_version, size, uploaded_at, origin FROM components ORDER BY uploaded_at DESC, digest",
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(component_from_row).collect()
            }

            async fn activate(&self, digest: &str) -> Result<(), QueueError> {
                sqlx::query(q("INSERT INTO activations (digest, activated_at) VALUES (?, ?)"))
                    .bind(digest)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await?;
                self.notify($crate::queue::CHANNEL_COMPONENTS, digest).await;
                Ok(())
            }

            async fn active_component(&self) -> Result<Option<String>, QueueError> {
                Ok(
                    sqlx::query_scalar(q("SELECT digest FROM activations ORDER BY seq DESC LIMIT 1"))
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn rollback(&self) -> Result<Option<String>, QueueError> {
                let mut tx = self.write_tx().await?;
                let current: Option<(i64, String)> =
                    sqlx::query_as(q("SELECT seq, digest FROM activations ORDER BY seq DESC LIMIT 1"))
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((seq, digest)) = current else {
                    return Ok(None);
                };
                let previous: Option<String> = sqlx::query_scalar(q(
                    "SELECT digest FROM activations WHERE seq < ? AND digest != ? ORDER BY seq DESC LIMIT 1",
                ))
                .bind(seq)
                .bind(&digest)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(previous) = previous else { return Ok(None) };
                // Going back forgets the rolled-back activation, so a second rollback goes further back
                // instead of toggling between two versions.
                sqlx::query(q("DELETE FROM activations WHERE seq >= (SELECT MAX(seq) FROM activations WHERE digest = ? AND seq < ?)"))
                    .bind(&previous)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(q("INSERT INTO activations (digest, activated_at) VALUES (?, ?)"))
                    .bind(&previous)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.notify($crate::queue::CHANNEL_COMPONENTS, &previous).await;
                Ok(Some(previous))
            }

            async fn delete_component(&self, digest: &str) -> Result<bool, QueueError> {
                let mut tx = self.write_tx().await?;
                let active: Option<String> =
                    sqlx::query_scalar(q("SELECT digest FROM activations ORDER BY seq DESC LIMIT 1"))
                        .fetch_optional(&mut *tx)
                        .await?;
                if active.as_deref() == Some(digest) {
                    return Ok(false);
                }
                let done = sqlx::query(q("DELETE FROM components WHERE digest = ?"))
                    .bind(digest)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }
        }

        async fn insert_delivery(tx: &mut <$db as sqlx::Database>::Connection, job_id: Uuid, url: &str) -> Result<(), QueueError> {
            let now = now_ms();
            sqlx::query(q(
                "INSERT INTO deliveries (id, job_id, url, status, attempts, created_at, next_attempt_at)
                 VALUES (?, ?, ?, 'pending', 0, ?, ?)",
            ))
            .bind(format!("msg_{}", Uuid::new_v4().simple()))
            .bind(job_id.to_string())
            .bind(url)
            .bind(now)
            .bind(now)
            .execute(tx)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use sql_store;
