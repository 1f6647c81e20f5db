//! The HTTP API. Each resource module exposes a `router()`; they are merged here with the
//! cross-cutting layers: request tracing (one span per request, with an id), the body limit,
//! the shutdown gate, and problem+json for unknown routes.
//!
//! - [`jobs`]: `/v1/jobs` and `/v1/thumbnail`
//! - [`batches`]: `/v1/batches`, their progress and zip archives
//! - [`admin`]: `/v1/admin/components`, the component lifecycle
//! - [`health`]: `/healthz`, `/readyz`
//! - [`stats`]: `/metrics` (Prometheus), `/v1/stats` (the dashboard's figures)
//! - [`docs`]: `/openapi.json`, `/docs`; [`dashboard`]: `/`, the live page
//! - [`observe`]: the access log and the HTTP metrics
//! - [`input`]: reading submissions; [`error`]: errors to problem+json

pub mod admin;
pub mod batches;
mod dashboard;
pub mod docs;
pub mod error;
pub mod health;
pub mod input;
pub mod jobs;
mod observe;
pub mod options;
pub mod params;
pub mod placeholder;
pub mod stats;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use std::sync::Arc;

use crate::jobs::Jobs;
use crate::supervise::Supervisor;
use error::ApiError;

/// What handlers share. Cheap to clone. The components, the config and the shutdown signal
/// are the job layer's (`jobs.components`, `jobs.config`, `jobs.shutdown`).
#[derive(Clone)]
pub struct AppState {
    /// Submissions, reads, the queue, and what the job layer shares.
    pub jobs: Arc<Jobs>,
    /// The background tasks, for readiness.
    pub tasks: Arc<Supervisor>,
    /// Turns to read a request body (`--max-uploads`).
    pub uploads: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Reads a submission's body in its turn, within `--body-timeout`.
    pub async fn read_submission(
        &self,
        req: Request,
        query: options::OptionParams,
        callback: Option<String>,
    ) -> Result<input::Submission, ApiError> {
        let read = input::read_submission(req, query, callback, self.jobs.config.max_body_bytes);
        self.in_upload_turn(read).await?
    }

    /// Runs `read` (reading a request body) in its turn, within `--body-timeout`: however many
    /// clients send at once, at most `--max-uploads` bodies are in memory, and a client that
    /// trickles its body gives up its turn when the time is out.
    pub async fn in_upload_turn<T>(&self, read: impl Future<Output = T>) -> Result<T, ApiError> {
        let timeout = self.jobs.config.body_timeout;
        let _turn = self
            .uploads
            .acquire()
            .await
            .expect("the semaphore is never closed");
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ApiError::BodyTimeout(timeout.as_secs()))
    }
}

/// Every documented route with its OpenAPI: the one list both come from.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(jobs::router())
        .merge(admin::router())
        .merge(health::router())
        .merge(stats::router())
        .merge(batches::router())
}

/// Builds the whole router.
pub fn router(state: AppState) -> axum::Router {
    let (routes, doc) = routes().split_for_parts();
    let params = params::QueryParams::from_doc(&doc);
    let routes = routes.route_layer(axum::middleware::from_fn(move |req, next| {
        params::refuse_unknown(params.clone(), req, next)
    }));
    axum::Router::new()
        .merge(routes)
        .merge(docs::router(doc))
        .merge(dashboard::router())
        .route_layer(axum::middleware::from_fn(observe::mark_route))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_when_shutting_down,
        ))
        .fallback(|req: Request| async move { ApiError::NoRoute(req.uri().path().to_string()) })
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError::MethodNotAllowed {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
            }
        })
        // Multipart reads are bounded by this; other bodies by `input::read_body`. The +64 KiB
        // leaves room for form boundaries and fields around an image at the limit.
        .layer(DefaultBodyLimit::max(
            state.jobs.config.max_body_bytes + (64 << 10),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Refuses new work (anything but reads) once shutdown has begun.
async fn refuse_when_shutting_down(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.jobs.shutdown.is_cancelled() && req.method() != axum::http::Method::GET {
        return ApiError::ShuttingDown.into_response();
    }
    next.run(req).await
}

/// Who is asking: the fingerprint of their API key, or `None` when keys are not in use.
#[derive(Debug, Clone)]
pub struct Owner(pub Option<String>);

/// The stable, non-secret name of a key as stored with its jobs.
pub fn key_fingerprint(key: &str) -> String {
    crate::digest::sha256_hex(key.as_bytes())[..32].to_string()
}

impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        key_id(&parts.headers, &state.jobs.config.api_keys).map(Owner)
    }
}

/// The owner recorded for jobs made through signed URLs: no key's fingerprint (those are
/// hex), so no key holder sees them in their list.
pub const SIGNED_OWNER: &str = "signed-url";

/// The owner of a signed `GET /v1/thumbnail` request, whose signature stands in for an API
/// key; 403 when it does not match.
pub fn signed_owner(state: &AppState, query: &str) -> Result<Owner, ApiError> {
    let Some(key) = &state.jobs.config.url_signing_key else {
        return Err(ApiError::InvalidSignature(
            "this server does not accept signed URLs (it has no --url-signing-key)".into(),
        ));
    };
    if crate::urlsig::verify(key, crate::urlsig::PATH, query) {
        Ok(Owner(Some(SIGNED_OWNER.into())))
    } else {
        Err(ApiError::InvalidSignature(
            "the sig parameter does not match this URL's parameters: sign the exact URL with \
             `edgethumb sign` and the server's key"
                .into(),
        ))
    }
}

/// The fingerprint of the request's API key: `None` when no keys are configured, an error
/// when they are and the request has none of them.
pub fn key_id(headers: &axum::http::HeaderMap, keys: &[String]) -> Result<Option<String>, ApiError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    // Compare digests, so the comparison's timing says nothing about the keys.
    let fingerprint = key_fingerprint(presented);
    if keys.iter().any(|k| key_fingerprint(k) == fingerprint) {
        Ok(Some(fingerprint))
    } else {
        Err(ApiError::Unauthorized)
    }
}
