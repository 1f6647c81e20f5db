//! `/v1/admin/components`: the component lifecycle — upload (validated, not yet active), list,
//! inspect, download, activate, roll back, delete. Guarded by the admin token; with none
//! configured the whole admin API answers 403.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::input::{drain, multipart_error, read_body};
use crate::jobs::ComponentRecord;
use crate::sandbox::validate::CanaryReport;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload, list))
        .routes(routes!(rollback))
        .routes(routes!(details, delete))
        .routes(routes!(wasm))
        .routes(routes!(activate))
}

/// Proof that the request carries the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = &state.jobs.config.admin_token else {
            return Err(ApiError::AdminDisabled);
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::AdminUnauthorized)?;
        // Compare digests, so timing says nothing about the token.
        if crate::digest::sha256_hex(presented.as_bytes()) == crate::digest::sha256_hex(token.as_bytes()) {
            Ok(Admin)
        } else {
            Err(ApiError::AdminUnauthorized)
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ComponentView {
    #[serde(flatten)]
    pub record: ComponentRecord,
    pub active: bool,
    /// Present on upload: what the canary run measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub canary: Option<CanaryReport>,
}

fn view(state: &AppState, record: ComponentRecord, canary: Option<CanaryReport>) -> ComponentView {
    let active = state.jobs.components.active().digest() == record.digest;
    ComponentView {
        record,
        active,
        canary,
    }
}

/// A component's bytes as the request body.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the body; `upload` reads it
struct WasmBody(Vec<u8>);

/// A component upload as a form.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; `upload` reads it
struct ComponentForm {
    /// The component (or a field named `component`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload a component (raw body, or multipart field `file`); it is validated and stored, not
/// activated. 201 when new, 200 when the digest was already known.
#[utoipa::path(post, path = "/v1/admin/components", tag = "admin", security(("admin_token" = [])),
    request_body(description = "The component's bytes, or a form with a `file` field",
        content((WasmBody = "application/wasm"), (WasmBody = "application/octet-stream"),
            (ComponentForm = "multipart/form-data"))),
    responses((status = 201, body = ComponentView), (status = 200, body = ComponentView),
        (status = 422, description = "Refused; `step` says at which validation step"),
        (status = 401, description = "Bad admin token"), (status = 403, description = "Admin API disabled")))]
async fn upload(
    State(state): State<AppState>,
    admin: Result<Admin, ApiError>,
    req: Request,
) -> Result<Response, ApiError> {
    let limit = state.jobs.config.max_body_bytes;
    if let Err(refused) = admin {
        // A component is megabytes still in flight: read it away so the client gets the
        // 401/403 instead of a reset connection.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(limit as u64);
        drain(req.into_body(), declared).await;
        return Err(refused);
    }
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let wasm = if multipart {
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?;
        let mut wasm = None;
        while let Some(field) = form.next_field().await.map_err(|e| multipart_error(e, limit))? {
            if matches!(field.name(), Some("file" | "component")) {
                wasm = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| multipart_error(e, limit))?
                        .to_vec(),
                );
            }
        }
        wasm.ok_or_else(|| ApiError::BadRequest("the form needs a `file` field with the component".into()))?
    } else {
        read_body(req.into_body(), limit).await?.to_vec()
    };
    let (record, report, new) = state.jobs.components.upload(wasm, "upload").await?;
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    let location = format!("/v1/admin/components/{}", record.digest);
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(view(&state, record, Some(report))),
    )
        .into_response())
}

/// Every known component, newest first, with the active one marked.
#[utoipa::path(get, path = "/v1/admin/components", tag = "admin", security(("admin_token" = [])), responses((status = 200, body = [ComponentView])))]
async fn list(State(state): State<AppState>, _: Admin) -> Result<Json<Vec<ComponentView>>, ApiError> {
    let records = state.jobs.components.list().await?;
    Ok(Json(records.into_iter().map(|r| view(&state, r, None)).collect()))
}

#[utoipa::path(get, path = "/v1/admin/components/{digest}", tag = "admin", security(("admin_token" = [])), params(("digest" = String, Path)),
    responses((status = 200, body = ComponentView), (status = 404, description = "Unknown digest")))]
async fn details(
    State(state): State<AppState>,
    _: Admin,
    Path(digest): Path<String>,
) -> Result<Json<ComponentView>, ApiError> {
    Ok(Json(view(
        &state,
        state.jobs.components.record(&digest).await?,
        None,
    )))
}

/// The component itself, so operators and hosts can copy a fleet's components.
#[utoipa::path(get, path = "/v1/admin/components/{digest}/wasm", tag = "admin", security(("admin_token" = [])), params(("digest" = String, Path)),
    responses((status = 200, description = "application/wasm"), (status = 404, description = "Unknown digest")))]
async fn wasm(
    State(state): State<AppState>,
    _: Admin,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let bytes = state.jobs.components.wasm(&digest).await?;
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/wasm"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

/// Make a stored component the active one (atomic; running jobs finish on their component).
#[utoipa::path(post, path = "/v1/admin/components/{digest}/activate", tag = "admin", security(("admin_token" = [])), params(("digest" = String, Path)),
    responses((status = 200, body = ComponentView), (status = 404, description = "Unknown digest")))]
async fn activate(
    State(state): State<AppState>,
    _: Admin,
    Path(digest): Path<String>,
) -> Result<Json<ComponentView>, ApiError> {
    let record = state.jobs.components.activate(&digest).await?;
    Ok(Json(view(&state, record, None)))
}

/// Go back to the previously active component.
#[utoipa::path(post, path = "/v1/admin/components/rollback", tag = "admin", security(("admin_token" = [])),
    responses((status = 200, body = ComponentView), (status = 409, description = "Nothing to roll back to")))]
async fn rollback(State(state): State<AppState>, _: Admin) -> Result<Json<ComponentView>, ApiError> {
    let record = state.jobs.components.rollback().await?;
    Ok(Json(view(&state, record, None)))
}

/// Delete a component that is not active.
#[utoipa::path(delete, path = "/v1/admin/components/{digest}", tag = "admin", security(("admin_token" = [])), params(("digest" = String, Path)),
    responses((status = 204), (status = 404, description = "Unknown digest"), (status = 409, description = "Active")))]
async fn delete(
    State(state): State<AppState>,
    _: Admin,
    Path(digest): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.jobs.components.delete(&digest).await?;
    Ok(StatusCode::NO_CONTENT)
}
