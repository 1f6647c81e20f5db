//! What every request leaves behind: one access-log line at INFO (method, matched route,
//! status, latency, bytes, request id, API key id) and the HTTP metrics.
//!
//! The matched route is known only once the router has picked one, inside it, so
//! [`mark_route`] (a route layer) copies it onto the response, where [`observe`] (around the
//! whole router, so unknown routes are counted too) reads it.

use std::time::Instant;

use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::telemetry::{HTTP_DURATION, HTTP_REQUESTS};

/// The route template a response came from.
#[derive(Clone)]
struct Route(String);

/// Route layer: records the matched route on the response.
pub async fn mark_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// Logs and counts one request.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let request_id = header(req.headers(), "x-request-id").unwrap_or_default();
    let key_id = super::key_id(req.headers(), &state.jobs.config.api_keys)
        .ok()
        .flatten()
        .unwrap_or_default();
    let response = next.run(req).await;
    let took = started.elapsed();
    let route = response
        .extensions()
        .get::<Route>()
        .map_or("unmatched", |r| r.0.as_str())
        .to_string();
    let status = response.status().as_u16();
    let bytes = response.body().size_hint().exact();
    metrics::counter!(HTTP_REQUESTS, "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method.to_string(), "route" => route.clone())
        .record(took.as_secs_f64());
    tracing::info!(
        target: "edgethumb::access",
        method = %method,
        route = %route,
        status,
        latency_ms = took.as_secs_f64() * 1e3,
        bytes,
        request_id = %request_id,
        key_id = %key_id,
        "request"
    );
    response
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}
