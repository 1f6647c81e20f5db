//! Prometheus metrics: every name, its labels and its description in one place, and the one
//! process-wide recorder (`metrics-exporter-prometheus`) that `GET /metrics` renders.
//!
//! Counters and histograms are recorded where things happen (the API's middleware, the
//! workers, the sandbox, webhooks); gauges that describe state (queue depth, the oldest
//! queued job, busy workers, the memory budget, the active component) are set when scraped,
//! so they are never stale and cost nothing between scrapes.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter; labels `method`, `route` (the matched route template, or `unmatched`), `status`.
pub const HTTP_REQUESTS: &str = "edgethumb_http_requests_total";
/// Histogram, seconds; labels `method`, `route`.
pub const HTTP_DURATION: &str = "edgethumb_http_request_duration_seconds";
/// Counter: jobs accepted (deduplicated ones included).
pub const JOBS_SUBMITTED: &str = "edgethumb_jobs_submitted_total";
/// Counter; labels `status` (`succeeded`, `failed`), `code` (the error code, or `none`).
pub const JOBS_FINISHED: &str = "edgethumb_jobs_finished_total";
/// Counter; label `code`: attempts put back in the queue for a retry.
pub const JOBS_RETRIED: &str = "edgethumb_jobs_retried_total";
/// Counter: submissions answered from an equal finished job (dedup).
pub const DEDUP_HITS: &str = "edgethumb_dedup_hits_total";
pub const URL_CACHE: &str = "edgethumb_url_cache_total";
/// Gauge: jobs waiting in the queue (all hosts).
pub const QUEUE_DEPTH: &str = "edgethumb_queue_depth";
/// Gauge, seconds: how long the oldest queued job has waited (0 when none).
pub const QUEUE_OLDEST_AGE: &str = "edgethumb_queue_oldest_age_seconds";
/// Histogram, seconds; label `stage`: `queue_wait`, `fetch`, `sandbox`, `store`, `total`.
pub const STAGE_DURATION: &str = "edgethumb_job_stage_duration_seconds";
/// Counter; label `kind`: `trap`, `deadline`, `memory`.
pub const SANDBOX_KILLS: &str = "edgethumb_sandbox_kills_total";
/// Counter; label `outcome`: `delivered`, `retry`, `gave_up`.
pub const WEBHOOK_DELIVERIES: &str = "edgethumb_webhook_deliveries_total";
/// Gauge: workers on this host, and those running a job.
pub const WORKERS: &str = "edgethumb_workers";
pub const WORKERS_BUSY: &str = "edgethumb_workers_busy";
/// Gauge, always 1; labels `digest`, `wit_version`: the active resizer component.
pub const COMPONENT_INFO: &str = "edgethumb_component_info";
/// Gauges, bytes: the sandbox's memory budget, and how much of it running calls reserve.
pub const MEMORY_BUDGET: &str = "edgethumb_sandbox_memory_budget_bytes";
pub const MEMORY_IN_USE: &str = "edgethumb_sandbox_memory_in_use_bytes";

/// Every metric with its description: what the exporter's `# HELP` lines say, and what
/// README.md lists (a test checks the README against this).
pub const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        HTTP_REQUESTS,
        "HTTP requests by method, matched route and status.",
    ),
    (
        HTTP_DURATION,
        "HTTP request latency by method and matched route, in seconds.",
    ),
    (JOBS_SUBMITTED, "Jobs accepted, deduplicated ones included."),
    (JOBS_FINISHED, "Jobs finished, by status and error code."),
    (
        JOBS_RETRIED,
        "Job attempts put back in the queue for a retry, by error code.",
    ),
    (DEDUP_HITS, "Submissions answered from an equal finished job."),
    (
        URL_CACHE,
        "URL submissions answered from a stored result: `fresh` (within `--url-cache-ttl`), `revalidated` (the origin said 304), `changed` (the origin served a new version, fetched once).",
    ),
    (QUEUE_DEPTH, "Jobs waiting in the queue."),
    (
        QUEUE_OLDEST_AGE,
        "Seconds the oldest queued job has waited (0 when none).",
    ),
    (
        STAGE_DURATION,
        "Job stage durations in seconds: queue_wait, fetch, sandbox, store, total.",
    ),
    (
        SANDBOX_KILLS,
        "Sandboxed calls killed, by kind: trap, deadline, memory.",
    ),
    (
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts by outcome: delivered, retry, gave_up.",
    ),
    (WORKERS, "Workers on this host."),
    (WORKERS_BUSY, "Workers on this host running a job."),
    (COMPONENT_INFO, "The active resizer component (value 1)."),
    (MEMORY_BUDGET, "The sandbox's memory budget in bytes."),
    (
        MEMORY_IN_USE,
        "Bytes of the memory budget reserved by running sandboxed calls.",
    ),
];

/// Latency buckets from 1 ms to 2 min: thumbnails take milliseconds, fetches and queue waits
/// can take minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. Metrics are process-wide (that is what a
/// scrape describes), so several servers in one process (tests) share the counters.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (an embedding program's); ours still
        // renders what is recorded through it, which is then nothing.
        if metrics::set_global_recorder(recorder).is_ok() {
            for (name, help) in DESCRIPTIONS {
                metrics::describe_counter!(*name, *help);
                metrics::describe_gauge!(*name, *help);
                metrics::describe_histogram!(*name, *help);
            }
        }
        handle
    })
}

/// Drains histogram samples into their buckets now and then, so memory stays flat between
/// scrapes (the exporter otherwise keeps every sample until the next render).
pub async fn upkeep(shutdown: tokio_util::sync::CancellationToken) {
    let handle = handle();
    while !shutdown.is_cancelled() {
        handle.run_upkeep();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Records one stage's duration.
pub fn stage(stage: &'static str, took: Duration) {
    metrics::histogram!(STAGE_DURATION, "stage" => stage).record(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::DESCRIPTIONS;

    /// README.md's metrics table lists exactly these metrics, with these descriptions.
    #[test]
    fn readme_lists_every_metric() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("<!-- metrics -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- /metrics -->").next())
            .expect("README.md has a <!-- metrics --> table");
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(rows.len(), DESCRIPTIONS.len(), "one row per metric");
        for (name, help) in DESCRIPTIONS {
            let row = rows
                .iter()
                .find(|r| r.starts_with(&format!("| `{name}` |")))
                .unwrap_or_else(|| panic!("README.md does not list {name}"));
            assert!(
                row.contains(help),
                "README.md describes {name} differently: {row}"
            );
        }
    }
}
