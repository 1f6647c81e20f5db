//! Liveness and readiness for load balancers and orchestrators.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, description = "Alive")))]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready for traffic: the database answers, a component is loaded (it is before the server
/// listens), every configured worker is running, no background task has died, and the server
/// is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, description = "Ready"), (status = 503, description = "Not ready, with the failing check")))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database_ok = match state.jobs.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            false
        }
    };
    let workers = state.jobs.workers_alive.load(Ordering::SeqCst);
    let failed_tasks = state.tasks.failures();
    let ready = database_ok
        && workers == state.jobs.config.workers
        && failed_tasks.is_empty()
        && !state.jobs.shutdown.is_cancelled();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "database": if database_ok { "ok" } else { "unreachable" },
            "component": state.jobs.components.active().digest(),
            "workers": workers,
            "memory_budget_bytes": state.jobs.components.sandbox().memory_budget(),
            "memory_in_use_bytes": state.jobs.components.sandbox().memory_in_use(),
            "failed_tasks": failed_tasks,
            "shutting_down": state.jobs.shutdown.is_cancelled(),
        })),
    )
}
