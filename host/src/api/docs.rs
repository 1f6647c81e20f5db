//! The OpenAPI document and an interactive page (Swagger UI, served from the binary). The document's paths come from the same
//! `routes!` lists that build the router (utoipa-axum), so every route is in it; this module
//! adds what is common to all of them: the title, the bearer schemes, the problem schema.

use serde_json::{Value, json};
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
    // The order of this list is the order of Swagger UI's sections (and of a generated
    // client's): what most readers came for first.
    tags(
        (name = "jobs", description = "Submit an image, follow its job, download the thumbnail; or all in one request (`/v1/thumbnail`)."),
        (name = "batches", description = "Many images in one request; their thumbnails come back as a zip."),
        (name = "monitoring", description = "The numbers the dashboard shows, and Prometheus metrics."),
        (name = "health", description = "Liveness and readiness."),
        (name = "admin", description = "The resizer components: upload, activate, roll back (`--admin-token`)."),
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
    let mut doc = serde_json::to_value(&doc).expect("the OpenAPI document serialises");
    add_error_responses(&mut doc);
    // The bodies the server reads field by field and refuses unknown fields of.
    for closed in [
        "JsonSubmission",
        "FormSubmission",
        "ComponentForm",
        "ReplayRequest",
        "BatchForm",
        "JsonBatch",
    ] {
        if let Some(s) = doc["components"]["schemas"].get_mut(closed) {
            s["additionalProperties"] = json!(false);
        }
    }
    require_one_source(&mut doc, "JsonSubmission", "image_base64", true);
    require_one_source(&mut doc, "FormSubmission", "file", false);
    // Swagger UI's files are in the binary (the `vendored` feature): the page works offline.
    // Its default validator badge would send the document to validator.swagger.io.
    let config = utoipa_swagger_ui::Config::default().validator_url("none");
    axum::Router::from(
        utoipa_swagger_ui::SwaggerUi::new("/docs")
            .external_url_unchecked("/openapi.json", doc)
            .config(config),
    )
}

/// Answers every operation can give whatever its handler says: a 400 for a malformed query
/// string or body, a 401 where a bearer token is (or, with `--api-key`s, may be) required,
/// a 405 for another method on its path, and hyper's bodiless 414 for a request line over
/// 64 KiB; every other error is problem+json. Added here, in one
/// place, because they come from the extractors and middleware every route shares.
fn add_error_responses(doc: &mut Value) {
    let problem = json!({ "application/problem+json": {
        "schema": { "$ref": "#/components/schemas/Problem" } } });
    let global = doc.get("security").cloned().unwrap_or(Value::Null);
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            let secured = op
                .get("security")
                .unwrap_or(&global)
                .as_array()
                .is_some_and(|reqs| reqs.iter().any(|r| r.as_object().is_some_and(|r| !r.is_empty())));
            let admin = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|reqs| reqs.iter().any(|r| r.get("admin_token").is_some()));
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status)
                    .or_insert_with(|| json!({ "description": description }));
            };
            add(
                "400",
                "Malformed request: the query string, path or body cannot be read",
            );
            add("405", "Method not allowed on this path");
            add(
                "414",
                "Request line over 64 KiB: refused by the HTTP layer, with no body",
            );
            if secured {
                add("401", "A valid bearer token is required");
            }
            if admin {
                add(
                    "403",
                    "The admin API is disabled: the server has no --admin-token (admin_disabled)",
                );
            }
            for response in responses.values_mut() {
                rename_link_operation_ids(response);
            }
            for (status, response) in responses.iter_mut() {
                let problem_json = (status.starts_with('4') || status.starts_with('5')) && status != "414";
                if problem_json && response.get("content").is_none() {
                    response["content"] = problem.clone();
                }
            }
        }
    }
}

/// A submission body carries exactly one source, `image` or `url` (in JSON, not null), which
/// the derived schema cannot say.
fn require_one_source(doc: &mut Value, schema: &str, image: &str, json_body: bool) {
    let one = |field: &str| match json_body {
        true => json!({ "required": [field], "properties": { field: { "not": { "type": "null" } } } }),
        false => json!({ "required": [field] }),
    };
    if let Some(s) = doc["components"]["schemas"]
        .get_mut(schema)
        .and_then(Value::as_object_mut)
    {
        s.insert("oneOf".into(), json!([one(image), one("url")]));
    }
}

/// utoipa 5 writes a link's `operationId` as `operation_id`; clients that follow links
/// (schemathesis' stateful phase among them) need the OpenAPI spelling.
fn rename_link_operation_ids(response: &mut Value) {
    let Some(links) = response.get_mut("links").and_then(Value::as_object_mut) else {
        return;
    };
    for link in links.values_mut().filter_map(Value::as_object_mut) {
        if let Some(id) = link.remove("operation_id") {
            link.insert("operationId".into(), id);
        }
    }
}
