//! `/`: the dashboard, one HTML file (inline CSS and JS, no framework) compiled into the
//! binary. It polls `/v1/stats` and `/v1/jobs` and submits through `POST /v1/jobs`, so it
//! shows nothing the API does not; its option controls are made from `/openapi.json` when it
//! loads, so they are the server's own options, ranges and defaults. Its
//! Content-Security-Policy allows only this origin: the page cannot load anything from
//! elsewhere, even if edited to.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use super::AppState;

const PAGE: &str = include_str!("dashboard.html");

/// Same origin only; inline code and styles are the page's own; thumbnails arrive as blobs.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                      img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
                      frame-ancestors 'none'";

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/", get(page))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(PAGE),
    )
}
