//! Webhooks: when a job with a `callback_url` finishes, the job JSON is POSTed there, signed
//! the Standard Webhooks way — `webhook-id`, `webhook-timestamp` and `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the `whsec_` secret.
//!
//! Deliveries live in the database (queued in the same transaction that finishes the job), so
//! a restart loses none; failures are retried with exponential backoff and jitter until
//! `--webhook-retry-for` has passed since the job finished. The URL goes through the same SSRF
//! guard as image URLs. The `webhook-id` is the same on every attempt, so a receiver can
//! deduplicate.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::app::AppState;
use crate::queue::{Delivery, DeliveryOutcome, now_ms};

/// How long one delivery attempt holds its claim.
const DELIVERY_LEASE: Duration = Duration::from_secs(120);
/// How often an idle deliverer looks for due deliveries.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Decodes `whsec_<base64>` (the prefix is optional) into the signing key.
pub fn decode_secret(secret: &str) -> anyhow::Result<Vec<u8>> {
    let b64 = secret.trim().strip_prefix("whsec_").unwrap_or(secret.trim());
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| anyhow::anyhow!("--webhook-secret must be whsec_ followed by base64: {e}"))?;
    anyhow::ensure!(
        key.len() >= 16,
        "--webhook-secret is too short: use at least 16 random bytes"
    );
    Ok(key)
}

/// The `webhook-signature` value for a message.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Delivers due webhooks until shutdown.
pub async fn deliver(state: AppState) {
    if state.config.webhook_key.is_none() {
        tracing::info!("no --webhook-secret: webhooks are sent unsigned");
    }
    while !state.shutdown.is_cancelled() {
        match state.store.claim_delivery(DELIVERY_LEASE).await {
            Ok(Some(delivery)) => {
                let span =
                    tracing::info_span!("webhook", job_id = %delivery.job_id, webhook_id = %delivery.id);
                let outcome = tracing::Instrument::instrument(attempt(&state, &delivery), span).await;
                if let Err(e) = state.store.finish_delivery(&delivery.id, outcome).await {
                    tracing::warn!(error = %e, "recording a webhook delivery failed");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "claiming a webhook delivery failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = state.shutdown.cancelled() => {}
        }
    }
}

/// One delivery attempt and what to do next.
async fn attempt(state: &AppState, delivery: &Delivery) -> DeliveryOutcome {
    let job = match state.store.get_any(delivery.job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            return DeliveryOutcome::GaveUp {
                error: "the job no longer exists".into(),
            };
        }
        Err(e) => return retry_or_give_up(state, delivery, format!("reading the job failed: {e}")),
    };
    let body = serde_json::to_vec(&crate::api::jobs::JobView::from(job)).expect("job JSON serializes");
    let timestamp = now_ms() / 1000;
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("webhook-id", delivery.id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    if let Some(key) = &state.config.webhook_key {
        headers.push(("webhook-signature", sign(key, &delivery.id, timestamp, &body)));
    }
    match state.fetch.post(&delivery.url, &body, &headers).await {
        Ok(status) if (200..300).contains(&status) => {
            tracing::info!(status, attempt = delivery.attempts + 1, "webhook delivered");
            DeliveryOutcome::Delivered
        }
        Ok(status) => retry_or_give_up(state, delivery, format!("the receiver answered HTTP {status}")),
        Err(e) if e.code() == "source_refused" => {
            tracing::warn!(error = %e, "webhook URL refused");
            DeliveryOutcome::GaveUp { error: e.to_string() }
        }
        Err(e) => retry_or_give_up(state, delivery, e.to_string()),
    }
}

fn retry_or_give_up(state: &AppState, delivery: &Delivery, error: String) -> DeliveryOutcome {
    let wait = crate::worker::backoff(state.config.retry_backoff, delivery.attempts + 1);
    let at = now_ms() + wait.as_millis() as i64;
    if at - delivery.created_at > state.config.webhook_retry_for.as_millis() as i64 {
        tracing::warn!(%error, attempts = delivery.attempts + 1, "webhook given up");
        DeliveryOutcome::GaveUp { error }
    } else {
        tracing::info!(%error, ?wait, "webhook failed; retrying");
        DeliveryOutcome::RetryAt { at, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_reference() {
        // The example from the Standard Webhooks specification's reference libraries.
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_must_be_base64_and_long_enough() {
        assert!(decode_secret("whsec_not base64!").is_err());
        assert!(decode_secret("whsec_c2hvcnQ=").is_err());
    }
}
