//! Retry timing, shared by job retries and webhook deliveries.

use std::time::Duration;

/// Exponential backoff from `base` for the given attempt (1 = first retry), capped at an hour,
/// with ±25% jitter so retries from many jobs do not arrive together.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(3600));
    exp.mul_f64(rand::random_range(0.75..1.25))
}
