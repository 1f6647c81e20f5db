//! The OpenAPI document, generated from the handlers' annotations, and an interactive page.

use axum::Json;
use axum::response::Html;
use axum::routing::get;
use utoipa::OpenApi;

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "edgethumb",
        description = "Thumbnails made in a wasm sandbox. Errors are RFC 9457 problem+json."
    ),
    paths(
        super::jobs::submit,
        super::jobs::status,
        super::jobs::list,
        super::jobs::delete,
        super::jobs::thumbnail,
        super::jobs::submit_and_wait,
        super::health::healthz,
        super::health::readyz
    ),
    components(schemas(super::jobs::JobView, super::jobs::JobList, super::input::JsonSubmission))
)]
pub struct ApiDoc;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route(
            "/docs",
            get(|| async { Html(utoipa_scalar::Scalar::new(ApiDoc::openapi()).to_html()) }),
        )
}
