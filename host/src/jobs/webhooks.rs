//! Webhooks: when a job with a `callback_url` finishes, the job JSON is POSTed there, signed
//! the Standard Webhooks way — `webhook-id`, `webhook-timestamp` and `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the `whsec_` secret.
//!
//! Deliveries live in the database (queued in the same transaction that finishes the job), so
//! a restart loses none. Up to 16 are in flight at once, at most 2 to any one receiver, so a
//! slow or dead receiver delays only its own deliveries. Failures are retried with exponential backoff and jitter until
//! `--webhook-retry-for` has passed since the job finished. The URL goes through the same SSRF
//! guard as image URLs. The `webhook-id` is the same on every attempt, so a receiver can
//! deduplicate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Jobs;
use super::view::JobView;
use crate::backoff::backoff;
use crate::codes::Code;
use crate::outbound::signing::sign;
use crate::store::{Delivery, DeliveryOutcome, now_ms};

/// How long one delivery attempt holds its claim.
const DELIVERY_LEASE: Duration = Duration::from_secs(120);
/// How often an idle deliverer looks for due deliveries.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Deliveries in flight at once, across all receivers.
const CONCURRENT_DELIVERIES: usize = 16;
/// Deliveries in flight at once to one receiver (scheme, host and port): a slow or dead
/// receiver holds at most this many of the slots above, and delays no one else's.
const PER_RECEIVER: usize = 2;
/// Receivers remembered with their in-flight counts before idle ones are forgotten.
const RECEIVERS_KEPT: usize = 1024;

/// Delivers due webhooks until shutdown, several at a time. On shutdown, attempts in flight
/// are abandoned; their claims expire and they are tried again.
pub async fn deliver(jobs: Arc<Jobs>) {
    if jobs.config.webhook_key.is_none() {
        tracing::info!("no --webhook-secret: webhooks are sent unsigned");
    }
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    let mut receivers: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut running = JoinSet::new();
    while !jobs.shutdown.is_cancelled() {
        while running.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = jobs.shutdown.cancelled() => break,
        };
        match jobs.store.claim_delivery(DELIVERY_LEASE).await {
            Ok(Some(delivery)) => {
                let receiver = receiver_limit(&mut receivers, &delivery.url);
                let jobs = jobs.clone();
                let span =
                    tracing::info_span!("webhook", job_id = %delivery.job_id, webhook_id = %delivery.id);
                running.spawn(tracing::Instrument::instrument(
                    async move {
                        let _slot = slot;
                        let _turn = receiver.acquire_owned().await;
                        let outcome = attempt(&jobs, &delivery).await;
                        let name = match &outcome {
                            DeliveryOutcome::Delivered => "delivered",
                            DeliveryOutcome::RetryAt { .. } => "retry",
                            DeliveryOutcome::GaveUp { .. } => "gave_up",
                        };
                        metrics::counter!(crate::telemetry::WEBHOOK_DELIVERIES, "outcome" => name)
                            .increment(1);
                        if let Err(e) = jobs.store.finish_delivery(&delivery.id, &outcome).await {
                            tracing::warn!(error = %e, "recording a webhook delivery failed");
                        }
                    },
                    span,
                ));
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "claiming a webhook delivery failed"),
        }
        drop(slot);
        tokio::select! {
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = jobs.shutdown.cancelled() => {}
        }
    }
}

/// The in-flight limit of the receiver `url` points at, forgetting idle receivers once many
/// are known (callback URLs come from clients, so their hosts are not bounded).
fn receiver_limit(receivers: &mut HashMap<String, Arc<Semaphore>>, url: &str) -> Arc<Semaphore> {
    if receivers.len() >= RECEIVERS_KEPT {
        receivers.retain(|_, limit| Arc::strong_count(limit) > 1);
    }
    let key = url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    receivers
        .entry(key)
        .or_insert_with(|| Arc::new(Semaphore::new(PER_RECEIVER)))
        .clone()
}

/// One delivery attempt and what to do next.
async fn attempt(jobs: &Jobs, delivery: &Delivery) -> DeliveryOutcome {
    let job = match jobs.store.get_any(delivery.job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            return DeliveryOutcome::GaveUp {
                error: "the job no longer exists".into(),
            };
        }
        Err(e) => return retry_or_give_up(jobs, delivery, format!("reading the job failed: {e}")),
    };
    let body = serde_json::to_vec(&JobView::from(job)).expect("job JSON serializes");
    let timestamp = now_ms() / 1000;
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("webhook-id", delivery.id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    if let Some(key) = &jobs.config.webhook_key {
        headers.push(("webhook-signature", sign(key, &delivery.id, timestamp, &body)));
    }
    let timeout = jobs.config.webhook_timeout;
    match jobs
        .config
        .fetch
        .post(&delivery.url, &body, &headers, timeout)
        .await
    {
        Ok(status) if (200..300).contains(&status) => {
            tracing::info!(status, attempt = delivery.attempts + 1, "webhook delivered");
            DeliveryOutcome::Delivered
        }
        Ok(status) => retry_or_give_up(jobs, delivery, format!("the receiver answered HTTP {status}")),
        Err(e) if e.code() == Code::SourceRefused => {
            tracing::warn!(error = %e, "webhook URL refused");
            DeliveryOutcome::GaveUp { error: e.to_string() }
        }
        Err(e) => retry_or_give_up(jobs, delivery, e.to_string()),
    }
}

fn retry_or_give_up(jobs: &Jobs, delivery: &Delivery, error: String) -> DeliveryOutcome {
    let wait = backoff(jobs.config.retry_backoff, delivery.attempts + 1);
    let at = now_ms() + wait.as_millis() as i64;
    if at - delivery.created_at > jobs.config.webhook_retry_for.as_millis() as i64 {
        tracing::warn!(%error, attempts = delivery.attempts + 1, "webhook given up");
        DeliveryOutcome::GaveUp { error }
    } else {
        tracing::info!(%error, ?wait, "webhook failed; retrying");
        DeliveryOutcome::RetryAt { at, error }
    }
}
