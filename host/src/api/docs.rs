//! The OpenAPI document and an interactive page. The document's paths come from the same
//! `routes!` lists that build the router (utoipa-axum), so every route is in it; this module
//! adds what is common to all of them: the title, the bearer schemes, the problem schema.

use std::sync::Arc;

use axum::Json;
use axum::response::Html;
use axum::routing::get;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "edgethumb",
        description = "Thumbnails made in a wasm sandbox. Errors are RFC 9457 problem+json with a stable `code`."
    ),
    components(schemas(super::error::Problem)),
    modifiers(&BearerSchemes),
    security((), ("api_key" = []))
)]
pub struct ApiDoc;

/// `api_key`: `Authorization: Bearer <key>` when the server has `--api-key`s (without them
/// the API is open); `admin_token`: the admin API's `--admin-token`.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        for name in ["api_key", "admin_token"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// `/openapi.json` and `/docs` for `doc`.
pub fn router(doc: Document) -> axum::Router<AppState> {
    let page = Arc::new(utoipa_scalar::Scalar::new(doc.clone()).to_html());
    let doc = Arc::new(doc);
    axum::Router::new()
        .route(
            "/openapi.json",
            get(move || async move { Json(doc.as_ref().clone()) }),
        )
        .route("/docs", get(move || async move { Html(page.as_ref().clone()) }))
}
