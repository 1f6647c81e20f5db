//! The OpenAPI document against the running server: every route the server answers is in
//! `/openapi.json`, every documented operation is routed, and the document declares what
//! clients need (request bodies, ranges, the bearer schemes).

mod common;

use std::collections::BTreeSet;

use common::server::*;
use serde_json::Value;

/// Every route of the API, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("get", "/v1/jobs/{id}/thumbnail"),
    ("post", "/v1/jobs/{id}/replay"),
    ("post", "/v1/thumbnail"),
    ("get", "/v1/thumbnail"),
    ("post", "/v1/admin/components"),
    ("get", "/v1/admin/components"),
    ("post", "/v1/admin/components/rollback"),
    ("get", "/v1/admin/components/{digest}"),
    ("delete", "/v1/admin/components/{digest}"),
    ("get", "/v1/admin/components/{digest}/wasm"),
    ("post", "/v1/admin/components/{digest}/activate"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/stats"),
    ("post", "/v1/batches"),
    ("get", "/v1/batches/{id}"),
    ("get", "/v1/batches/{id}/archive"),
];

fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                ops.insert((method.clone(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        dir.path(),
        &["--workers", "0", "--admin-token", "secret-admin-token"],
    )
    .await;
    let c = client();
    let spec: Value = get_json(&c, s.at("/openapi.json")).await;
    let documented = operations(&spec);
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    let unknown: Vec<_> = documented.difference(&expected).collect();
    assert!(
        unknown.is_empty(),
        "documented but not in this test's list: {unknown:?}"
    );

    // Each documented operation reaches a handler: never the no-route 404 or a 405.
    for (method, path) in &documented {
        let url = s.at(&path
            .replace("{id}", "00000000-0000-4000-8000-000000000000")
            .replace("{digest}", &"0".repeat(64)));
        let request = match method.as_str() {
            "get" => c.get(&url),
            "post" => c.post(&url),
            "delete" => c.delete(&url),
            other => panic!("unexpected method {other}"),
        };
        let resp = request.bearer_auth("secret-admin-token").send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !(status == 404 && body.contains("\"code\":\"not_found\"")),
            "{method} {path} is documented but not routed: {body}"
        );
    }

    // What clients need from it.
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["admin_token"]["scheme"], "bearer", "{schemes}");
    let submit = &spec["paths"]["/v1/jobs"]["post"];
    for content_type in ["multipart/form-data", "image/*", "application/json"] {
        assert!(
            submit["requestBody"]["content"][content_type].is_object(),
            "POST /v1/jobs does not declare {content_type}: {}",
            submit["requestBody"]
        );
    }
    let width = submit["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "width")
        .expect("a width parameter");
    assert_eq!(width["schema"]["maximum"], 4096, "{width}");
    // 0: automatic, from the aspect ratio.
    assert_eq!(width["schema"]["minimum"], 0, "{width}");
    let names: Vec<&str> = submit["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"enlarge") && names.contains(&"dpr"), "{names:?}");
    assert!(
        spec["components"]["schemas"]["Problem"].is_object(),
        "the problem schema is documented"
    );
    s.stop().await;
}
