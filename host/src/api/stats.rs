//! The service's figures: `GET /metrics` (Prometheus text) for scrapers and `GET /v1/stats`
//! (JSON) for the dashboard. Both are aggregates, open even when API keys are configured:
//! they name no job and no key.

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use crate::jobs::{QueueStats, now_ms};
use crate::telemetry as t;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(prometheus))
        .routes(routes!(stats))
}

/// The window `jobs_per_second` and the `*_last_minute` counts are taken over.
const WINDOW: Duration = Duration::from_secs(60);

/// The dashboard's figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Jobs waiting in the queue (all hosts).
    pub queue_depth: u64,
    /// How long the oldest queued job has waited; `null` when none is.
    pub oldest_queued_age_seconds: Option<f64>,
    /// Workers on this host, and those running a job now.
    pub workers: usize,
    pub workers_busy: usize,
    /// Jobs finished per second over the last minute (all hosts).
    pub jobs_per_second: f64,
    pub succeeded_last_minute: u64,
    pub failed_last_minute: u64,
    /// The active resizer component.
    pub component: ComponentInfo,
    /// Whether job routes need `Authorization: Bearer <key>`.
    pub api_keys_required: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ComponentInfo {
    pub digest: String,
    pub wit_version: String,
}

async fn gather(state: &AppState) -> Result<(Stats, QueueStats), ApiError> {
    let now = now_ms();
    let queue = state.jobs.stats(now - WINDOW.as_millis() as i64).await?;
    let active = state.jobs.components.active();
    let stats = Stats {
        queue_depth: queue.queued,
        oldest_queued_age_seconds: queue.oldest_queued_at.map(|at| (now - at).max(0) as f64 / 1e3),
        workers: state.jobs.workers_alive.load(Ordering::SeqCst),
        workers_busy: state.jobs.workers_busy.load(Ordering::SeqCst),
        jobs_per_second: (queue.succeeded + queue.failed) as f64 / WINDOW.as_secs_f64(),
        succeeded_last_minute: queue.succeeded,
        failed_last_minute: queue.failed,
        component: ComponentInfo {
            digest: active.digest().to_string(),
            wit_version: active.wit_version().to_string(),
        },
        api_keys_required: !state.jobs.config.api_keys.is_empty(),
    };
    Ok((stats, queue))
}

/// Queue depth, workers, throughput and the active component, for the dashboard.
#[utoipa::path(get, path = "/v1/stats", tag = "monitoring", security(()),
    responses((status = 200, description = "The figures", body = Stats)))]
async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    Ok(Json(gather(&state).await?.0))
}

/// The component whose info series is 1; the one before it is set to 0 when it changes.
static INFO_SHOWN: Mutex<Option<(String, String)>> = Mutex::new(None);

/// Prometheus metrics (text exposition format); the README lists them.
#[utoipa::path(get, path = "/metrics", tag = "monitoring", security(()),
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4")))]
async fn prometheus(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let (stats, _) = gather(&state).await?;
    metrics::gauge!(t::QUEUE_DEPTH).set(stats.queue_depth as f64);
    metrics::gauge!(t::QUEUE_OLDEST_AGE).set(stats.oldest_queued_age_seconds.unwrap_or(0.0));
    metrics::gauge!(t::WORKERS).set(stats.workers as f64);
    metrics::gauge!(t::WORKERS_BUSY).set(stats.workers_busy as f64);
    let sandbox = state.jobs.components.sandbox();
    metrics::gauge!(t::MEMORY_BUDGET).set(sandbox.memory_budget() as f64);
    metrics::gauge!(t::MEMORY_IN_USE).set(sandbox.memory_in_use() as f64);
    let info = (stats.component.digest, stats.component.wit_version);
    {
        let mut shown = INFO_SHOWN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((digest, wit)) = shown.take().filter(|old| *old != info) {
            metrics::gauge!(t::COMPONENT_INFO, "digest" => digest, "wit_version" => wit).set(0.0);
        }
        metrics::gauge!(t::COMPONENT_INFO, "digest" => info.0.clone(), "wit_version" => info.1.clone())
            .set(1.0);
        *shown = Some(info);
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        t::handle().render(),
    ))
}
