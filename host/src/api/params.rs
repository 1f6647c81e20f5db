//! Query parameters a route does not document are refused, for every route: the allowed names
//! come from the same OpenAPI document the routes do, so the two cannot drift apart. A
//! misspelt `?widht=300` would otherwise be ignored and the request would silently do
//! something else.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};

use super::error::ApiError;

/// Each route's documented query parameters, by method and path template.
#[derive(Default)]
pub struct QueryParams(HashMap<(Method, String), HashSet<String>>);

impl QueryParams {
    pub fn from_doc(doc: &OpenApi) -> Arc<Self> {
        let mut map = HashMap::new();
        for (path, item) in doc.paths.paths.iter() {
            let operations = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
            ];
            for (method, op) in operations {
                if let Some(op) = op {
                    map.insert((method, path.clone()), query_names(op));
                }
            }
        }
        Arc::new(QueryParams(map))
    }
}

fn query_names(op: &Operation) -> HashSet<String> {
    op.parameters
        .iter()
        .flatten()
        .filter(|p| matches!(p.parameter_in, ParameterIn::Query))
        .map(|p| p.name.clone())
        .collect()
}

/// Middleware for the documented routes: a 400 naming the unknown parameters and the allowed
/// ones. Routes the document does not describe pass unchecked.
pub async fn refuse_unknown(
    params: Arc<QueryParams>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (Some(query), Some(path)) = (req.uri().query(), req.extensions().get::<MatchedPath>()) else {
        return Ok(next.run(req).await);
    };
    let Some(allowed) = params.0.get(&(req.method().clone(), path.as_str().to_string())) else {
        return Ok(next.run(req).await);
    };
    let mut unknown: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| name.into_owned())
        .filter(|name| !allowed.contains(name))
        .collect();
    if unknown.is_empty() {
        return Ok(next.run(req).await);
    }
    unknown.dedup();
    let mut names: Vec<&str> = allowed.iter().map(String::as_str).collect();
    names.sort_unstable();
    let allowed = match names.as_slice() {
        [] => "it takes none".to_string(),
        names => format!("it takes {}", names.join(", ")),
    };
    Err(ApiError::BadRequest(format!(
        "unknown query parameter {} for {} {}; {allowed}",
        unknown.join(", "),
        req.method(),
        path.as_str()
    )))
}
