//! Workers: claim a job, get its source (from this host's memory, the store, or its URL),
//! run it through the sandbox off the async threads, record the outcome and hand it to a
//! waiting caller. The lease is renewed from the claim to the outcome, fetch included.
//!
//! [`Jobs::step`] is one claim-run-complete cycle and is public so tests can drain the queue
//! deterministically; [`run`] loops it until shutdown, sleeping on a wake-up signal (new
//! submissions) with a poll interval as the fallback (expired leases, other hosts).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::Instrument;
use uuid::Uuid;

use super::submit::dedup_key;
use super::{Finished, Jobs};
use crate::backoff::backoff;
use crate::codes::Code;
use crate::digest::sha256_hex;
use crate::sandbox::{Resizer, SandboxError};
use crate::store::{Claimed, Job, JobStatus, Made, Outcome, StoreError, now_ms};
use crate::telemetry;

/// How often an idle worker looks for work it was not woken for.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// What one [`Jobs::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do.
    Idle,
    /// Ran a job to this status (`Queued` when it was put back for a retry).
    Ran(Uuid, JobStatus),
}

impl Jobs {
    /// Claims and runs at most one job.
    pub async fn step(&self) -> Result<Step, StoreError> {
        let Some(claimed) = self.store.claim(self.config.lease).await? else {
            return Ok(Step::Idle);
        };
        let id = claimed.job.id;
        if claimed.job.attempts == 1
            && let Some(started) = claimed.job.started_at
        {
            telemetry::stage("queue_wait", ms_between(claimed.job.created_at, started));
        }
        let span = tracing::info_span!("job", job_id = %id, attempt = claimed.job.attempts);
        self.workers_busy.fetch_add(1, Ordering::SeqCst);
        let status = self.run_claimed(claimed).instrument(span).await;
        self.workers_busy.fetch_sub(1, Ordering::SeqCst);
        let status = status?;
        let _ = self.finished.send(id);
        Ok(Step::Ran(id, status))
    }

    async fn run_claimed(&self, claimed: Claimed) -> Result<JobStatus, StoreError> {
        let Claimed {
            job,
            token,
            active_component,
        } = claimed;
        let heartbeat = tokio::spawn(heartbeat(self.store.clone(), self.config.lease, job.id, token));
        let outcome = if job.attempts > self.config.max_attempts {
            // Each earlier attempt ended without an outcome: the worker or the host died.
            Outcome::Failed {
                code: Code::TooManyAttempts,
                message: format!(
                    "gave up after {} attempts; the last ended with: {}",
                    job.attempts - 1,
                    job.error_message
                        .as_deref()
                        .unwrap_or("the host stopped while running it")
                ),
                component_digest: None,
            }
        } else {
            match self.source_of(&job, token).await {
                Ok(source) => self.run_on_component(&job, source, active_component).await,
                Err(outcome) => outcome,
            }
        };
        let storing = Instant::now();
        let completed = self.store.complete(job.id, token, &outcome).await;
        telemetry::stage("store", storing.elapsed());
        heartbeat.abort();
        count_outcome(&outcome);
        let Some(done) = completed? else {
            tracing::warn!("lost the claim before finishing (lease expired); another worker owns the job");
            return Ok(match outcome {
                Outcome::Succeeded(_) => JobStatus::Succeeded,
                Outcome::Failed { .. } => JobStatus::Failed,
                Outcome::Retry { .. } => JobStatus::Queued,
            });
        };
        let status = done.status;
        if let Some(finished) = done.finished_at.filter(|_| status.is_finished()) {
            telemetry::stage("total", ms_between(done.created_at, finished));
        }
        if status == JobStatus::Queued {
            self.wake.notify_one();
        } else {
            let result = match outcome {
                Outcome::Succeeded(made) => Some(made.result),
                _ => None,
            };
            self.handoff.deliver(Finished { job: done, result });
        }
        Ok(status)
    }

    /// The job's source: handed over by this host's submission, read from the store, or
    /// fetched from its URL (and stored, so a retry or a replay does not fetch again). A
    /// failed fetch is the job's outcome: retried later with backoff when that can help.
    async fn source_of(&self, job: &Job, token: Uuid) -> Result<Bytes, Outcome> {
        if let Some(bytes) = self.handoff.take_source(job.id) {
            return Ok(bytes);
        }
        if let Some(hash) = &job.source_hash {
            return match self.store.blob(hash).await {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(Outcome::Failed {
                    code: Code::InternalError,
                    message: "the job's source is no longer stored".into(),
                    component_digest: None,
                }),
                Err(e) => Err(self.retry_later(
                    job,
                    Code::InternalError,
                    format!("reading the source failed: {e}"),
                )),
            };
        }
        let url = job.source_url.as_deref().unwrap_or_default();
        let fetching = Instant::now();
        let fetched = self.config.fetch.fetch_image(url).await;
        telemetry::stage("fetch", fetching.elapsed());
        match fetched {
            Ok(fetched) => {
                let bytes = Bytes::from(fetched.body);
                tracing::info!(bytes = bytes.len(), "source fetched");
                let hash = super::hash(&bytes).await;
                let v = &fetched.validators;
                let validators = (v.etag.as_deref(), v.last_modified.as_deref());
                if let Err(e) = self
                    .store
                    .set_source(job.id, token, &hash, &bytes, validators)
                    .await
                {
                    tracing::warn!(error = %e, "storing the fetched source failed");
                }
                Ok(bytes)
            }
            Err(e) if e.is_retryable() => Err(self.retry_later(job, e.code(), e.to_string())),
            Err(e) => {
                tracing::info!(code = %e.code(), error = %e, "fetch failed");
                Err(Outcome::Failed {
                    code: e.code(),
                    message: format!("{url}: {e}"),
                    component_digest: None,
                })
            }
        }
    }

    /// Back to the queue after a backoff while attempts remain; failed after that.
    fn retry_later(&self, job: &Job, code: Code, message: String) -> Outcome {
        if job.attempts >= self.config.max_attempts {
            tracing::info!(%code, error = %message, "failed; no attempts left");
            return Outcome::Failed {
                code,
                message,
                component_digest: None,
            };
        }
        let wait = backoff(self.config.retry_backoff, job.attempts);
        tracing::info!(%code, error = %message, ?wait, "failed; retrying later");
        Outcome::Retry {
            code,
            message,
            not_before: Some(now_ms() + wait.as_millis() as i64),
        }
    }

    /// Picks the job's component (the one it asked for, or the one active when it was
    /// claimed) and runs it.
    async fn run_on_component(&self, job: &Job, source: Bytes, active_at_claim: Option<String>) -> Outcome {
        let local = self.components.active();
        let resizer = match (&job.requested_component, active_at_claim) {
            (Some(digest), _) => self.components.get(digest).await,
            (None, Some(digest)) if digest != local.digest() => {
                // Activated on another host and not adopted here yet: run on it anyway, and
                // let the registry catch up now rather than at its next poll.
                self.components_changed.notify_one();
                match self.components.get(&digest).await {
                    Ok(resizer) => Ok(resizer),
                    Err(e) => {
                        // Better this host's version than a failed job; the registry logs
                        // the same error when it tries to adopt it.
                        tracing::warn!(error = %e, "the newly active component cannot run here; using {}", local.digest());
                        Ok(local)
                    }
                }
            }
            (None, _) => Ok(local),
        };
        match resizer {
            Ok(resizer) => self.run_in_sandbox(job, source, resizer).await,
            Err(e) => Outcome::Failed {
                code: Code::ComponentUnavailable,
                message: e.to_string(),
                component_digest: job.requested_component.clone(),
            },
        }
    }

    /// Runs a job on `resizer`. The job keeps this component to the end even if another is
    /// activated while it runs.
    async fn run_in_sandbox(&self, job: &Job, source: Bytes, resizer: Resizer) -> Outcome {
        let digest = resizer.digest().to_string();
        let options = job.options;
        let started = Instant::now();
        let run = tokio::task::spawn_blocking(move || {
            let made = resizer.make(&source, &options)?;
            // Hashed here, off the async threads, with the image work.
            let hash = sha256_hex(&made.0.data);
            Ok::<_, SandboxError>((made, hash))
        })
        .await;
        // Failures included: a call killed at its deadline took its time too.
        telemetry::stage("sandbox", started.elapsed());
        match run {
            Ok(Ok(((thumb, stats), result_hash))) => {
                tracing::info!(
                    ms = stats.total.as_millis() as u64,
                    bytes = thumb.data.len(),
                    "thumbnail made"
                );
                let source_hash = job.source_hash.clone().unwrap_or_default();
                Outcome::Succeeded(Made {
                    dedup_key: dedup_key(&source_hash, &job.options, &digest),
                    width: thumb.width,
                    height: thumb.height,
                    source_format: thumb.source.format.name().to_string(),
                    source_width: thumb.source.width,
                    source_height: thumb.source.height,
                    component_digest: digest,
                    result: Bytes::from(thumb.data),
                    result_hash,
                    format: thumb.format,
                })
            }
            Ok(Err(e)) if e.code().is_worth_retrying() && job.attempts < self.config.max_attempts => {
                tracing::warn!(error = %e, "sandbox failure; the job goes back to the queue");
                Outcome::Retry {
                    code: e.code(),
                    message: e.to_string(),
                    not_before: None,
                }
            }
            Ok(Err(e)) => {
                tracing::info!(code = %e.code(), error = %e, "job failed");
                Outcome::Failed {
                    code: e.code(),
                    message: failure_message(&e),
                    component_digest: Some(digest),
                }
            }
            Err(join) => {
                tracing::error!(error = %join, "sandbox task panicked");
                Outcome::Failed {
                    code: Code::InternalError,
                    message: "the worker failed unexpectedly; see the server log".into(),
                    component_digest: Some(digest),
                }
            }
        }
    }
}

/// Counts a claim's outcome: finished by status and code, or retried by code.
fn count_outcome(outcome: &Outcome) {
    use crate::telemetry::{JOBS_FINISHED, JOBS_RETRIED};
    match outcome {
        Outcome::Succeeded(_) => {
            metrics::counter!(JOBS_FINISHED, "status" => "succeeded", "code" => "none").increment(1)
        }
        Outcome::Failed { code, .. } => {
            metrics::counter!(JOBS_FINISHED, "status" => "failed", "code" => code.as_str()).increment(1)
        }
        Outcome::Retry { code, .. } => metrics::counter!(JOBS_RETRIED, "code" => code.as_str()).increment(1),
    }
}

/// The time between two store timestamps (milliseconds since the epoch).
fn ms_between(from: i64, to: i64) -> Duration {
    Duration::from_millis(to.saturating_sub(from).max(0) as u64)
}

fn failure_message(e: &SandboxError) -> String {
    match e {
        SandboxError::Image(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// Keeps a claim alive while the worker fetches and the sandbox works.
async fn heartbeat(store: Arc<crate::store::Store>, lease: Duration, id: Uuid, token: Uuid) {
    let every = lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match store.heartbeat(id, token, lease).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// A worker's loop, until shutdown.
pub async fn run(jobs: Arc<Jobs>, n: usize) {
    jobs.workers_alive.fetch_add(1, Ordering::SeqCst);
    let _alive = AliveGuard(jobs.clone());
    let span = tracing::info_span!("worker", n);
    async {
        while !jobs.shutdown.is_cancelled() {
            match jobs.step().await {
                Ok(Step::Ran(..)) => continue,
                Ok(Step::Idle) => {}
                Err(e) => tracing::warn!(error = %e, "claiming a job failed"),
            }
            tokio::select! {
                _ = jobs.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = jobs.shutdown.cancelled() => {}
            }
        }
    }
    .instrument(span)
    .await
}

struct AliveGuard(Arc<Jobs>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.workers_alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Deletes expired jobs (and the blobs no job uses any more) every minute until shutdown.
pub async fn sweeper(jobs: Arc<Jobs>) {
    let every = Duration::from_secs(60).min(jobs.config.job_ttl.max(Duration::from_secs(1)));
    while !jobs.shutdown.is_cancelled() {
        match jobs.store.sweep(jobs.config.job_ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired jobs deleted"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired jobs failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = jobs.shutdown.cancelled() => {}
        }
    }
}
