//! Workers: claim a job, run it through the sandbox off the async threads, record the outcome.
//!
//! [`step`] is one claim-run-complete cycle and is public so tests can drain the queue
//! deterministically; [`run`] loops it until shutdown, sleeping on a wake-up signal (new
//! submissions) with a poll interval as the fallback (expired leases, other hosts).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::Instrument;
use uuid::Uuid;

use crate::app::AppState;
use crate::queue::{Claimed, Job, JobStatus, Outcome, QueueError};
use crate::sandbox::{Resizer, SandboxError};

/// How often an idle worker looks for work it was not woken for.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// What one [`step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do.
    Idle,
    /// Ran a job to this status (`Queued` when it was put back for a retry).
    Ran(Uuid, JobStatus),
}

/// Claims and runs at most one job.
pub async fn step(state: &AppState) -> Result<Step, QueueError> {
    let Some(claimed) = state.store.claim(state.config.lease).await? else {
        return Ok(Step::Idle);
    };
    let id = claimed.job.id;
    let span = tracing::info_span!("job", job_id = %id, attempt = claimed.job.attempts);
    let status = run_claimed(state, claimed).instrument(span).await?;
    let _ = state.finished.send(id);
    Ok(Step::Ran(id, status))
}

async fn run_claimed(state: &AppState, claimed: Claimed) -> Result<JobStatus, QueueError> {
    let Claimed {
        job,
        source,
        token,
        active_component,
    } = claimed;
    let max_attempts = state.config.max_attempts;
    let outcome = if job.attempts > max_attempts {
        // Each earlier attempt ended without an outcome: the worker or the host died.
        Outcome::Failed {
            code: "too_many_attempts".into(),
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
        match obtain_source(state, &job, source, token).await {
            Ok(source) => run_on_component(state, &job, source, token, active_component).await,
            Err(outcome) => outcome,
        }
    };
    let status = match &outcome {
        Outcome::Succeeded { .. } => JobStatus::Succeeded,
        Outcome::Failed { .. } => JobStatus::Failed,
        Outcome::Retry { .. } => JobStatus::Queued,
    };
    if !state.store.complete(job.id, token, outcome).await? {
        tracing::warn!("lost the claim before finishing (lease expired); another worker owns the job");
    }
    if status == JobStatus::Queued {
        state.wake.notify_one();
    }
    Ok(status)
}

/// The job's source: as uploaded, or fetched from its URL (and stored, so a retry or a replay
/// does not fetch again). A failed fetch is the job's outcome: retried later with backoff when
/// that can help, failed otherwise.
async fn obtain_source(
    state: &AppState,
    job: &Job,
    source: Vec<u8>,
    token: Uuid,
) -> Result<Vec<u8>, Outcome> {
    let Some(url) = job.source_url.as_deref().filter(|_| source.is_empty()) else {
        return Ok(source);
    };
    match state.fetch.fetch_image(url).await {
        Ok(bytes) => {
            tracing::info!(bytes = bytes.len(), "source fetched");
            match state.store.set_source(job.id, token, &bytes).await {
                Ok(_) => Ok(bytes),
                Err(e) => {
                    tracing::warn!(error = %e, "storing the fetched source failed");
                    Ok(bytes)
                }
            }
        }
        Err(e) if e.is_retryable() && job.attempts < state.config.max_attempts => {
            let wait = backoff(state.config.retry_backoff, job.attempts);
            tracing::info!(error = %e, ?wait, "fetch failed; retrying later");
            Err(Outcome::Retry {
                code: e.code().into(),
                message: e.to_string(),
                not_before: Some(crate::queue::now_ms() + wait.as_millis() as i64),
            })
        }
        Err(e) => {
            tracing::info!(code = e.code(), error = %e, "fetch failed");
            Err(Outcome::Failed {
                code: e.code().into(),
                message: format!("{url}: {e}"),
                component_digest: None,
            })
        }
    }
}

/// Exponential backoff with ±25% jitter, so retries from many jobs do not arrive together.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(3600));
    exp.mul_f64(rand::random_range(0.75..1.25))
}

/// Picks the job's component (the one it asked for, or the one active when it was claimed)
/// and runs it.
async fn run_on_component(
    state: &AppState,
    job: &Job,
    source: Vec<u8>,
    token: Uuid,
    active_at_claim: Option<String>,
) -> Outcome {
    let local = state.components.active();
    let resizer = match (&job.requested_component, active_at_claim) {
        (Some(digest), _) => state.components.get(digest).await,
        (None, Some(digest)) if digest != local.digest() => {
            // Activated on another host and not adopted here yet: run on it anyway, and let
            // the registry catch up now rather than at its next poll.
            state.components_changed.notify_one();
            match state.components.get(&digest).await {
                Ok(resizer) => Ok(resizer),
                Err(e) => {
                    // Better this host's version than a failed job; the registry logs the
                    // same error when it tries to adopt it.
                    tracing::warn!(error = %e, "the newly active component cannot run here; using {}", local.digest());
                    Ok(local)
                }
            }
        }
        (None, _) => Ok(local),
    };
    match resizer {
        Ok(resizer) => run_in_sandbox(state, job, source, token, resizer).await,
        Err(e) => Outcome::Failed {
            code: "component_unavailable".into(),
            message: e.to_string(),
            component_digest: job.requested_component.clone(),
        },
    }
}

/// Runs a claimed job on `resizer`, keeping its lease alive meanwhile. The job keeps this
/// component to the end even if another is activated while it runs.
async fn run_in_sandbox(
    state: &AppState,
    job: &Job,
    source: Vec<u8>,
    token: Uuid,
    resizer: Resizer,
) -> Outcome {
    let max_attempts = state.config.max_attempts;
    let heartbeat = tokio::spawn(heartbeat(state.clone(), job.id, token));
    let digest = resizer.digest().to_string();
    let options = job.options.to_core();
    let run = tokio::task::spawn_blocking(move || resizer.thumbnail(&source, &options)).await;
    heartbeat.abort();
    match run {
        Ok(Ok((thumb, stats))) => {
            tracing::info!(
                ms = stats.total.as_millis() as u64,
                bytes = thumb.data.len(),
                "thumbnail made"
            );
            Outcome::Succeeded {
                width: thumb.width,
                height: thumb.height,
                source_format: thumb.source.format.name().to_string(),
                source_width: thumb.source.width,
                source_height: thumb.source.height,
                component_digest: digest,
                result: thumb.data,
            }
        }
        Ok(Err(e)) if e.is_sandbox_failure() && job.attempts < max_attempts => {
            tracing::warn!(error = %e, "sandbox failure; the job goes back to the queue");
            Outcome::Retry {
                code: e.code().into(),
                message: e.to_string(),
                not_before: None,
            }
        }
        Ok(Err(e)) => {
            tracing::info!(code = e.code(), error = %e, "job failed");
            Outcome::Failed {
                code: e.code().into(),
                message: failure_message(&e),
                component_digest: Some(digest),
            }
        }
        Err(join) => {
            tracing::error!(error = %join, "sandbox task panicked");
            Outcome::Failed {
                code: "internal_error".into(),
                message: "the worker failed unexpectedly; see the server log".into(),
                component_digest: Some(digest),
            }
        }
    }
}

fn failure_message(e: &SandboxError) -> String {
    match e {
        SandboxError::Image(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// Keeps a claim alive while the sandbox works.
async fn heartbeat(state: AppState, id: Uuid, token: Uuid) {
    let every = state.config.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match state.store.heartbeat(id, token, state.config.lease).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// A worker's loop, until shutdown.
pub async fn run(state: AppState, n: usize) {
    state.workers_alive.fetch_add(1, Ordering::SeqCst);
    let _alive = AliveGuard(state.clone());
    let span = tracing::info_span!("worker", n);
    async {
        while !state.shutdown.is_cancelled() {
            match step(&state).await {
                Ok(Step::Ran(..)) => continue,
                Ok(Step::Idle) => {}
                Err(e) => tracing::warn!(error = %e, "claiming a job failed"),
            }
            tokio::select! {
                _ = state.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = state.shutdown.cancelled() => {}
            }
        }
    }
    .instrument(span)
    .await
}

struct AliveGuard(AppState);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.workers_alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Deletes expired jobs every minute until shutdown.
pub async fn sweeper(state: AppState) {
    let every = Duration::from_secs(60).min(state.config.job_ttl.max(Duration::from_secs(1)));
    while !state.shutdown.is_cancelled() {
        match state.store.sweep(state.config.job_ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired jobs deleted"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired jobs failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = state.shutdown.cancelled() => {}
        }
    }
}
