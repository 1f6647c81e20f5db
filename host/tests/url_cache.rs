//! The URL result cache (issue 16) on both backends: within the TTL a second hit is answered
//! from the stored result without contacting the origin; after it the origin is asked with
//! its ETag, a 304 renews the stored result, and a new version is fetched once and used.

mod common;

use common::origin::Origin;
use common::server::*;
use common::*;
use serde_json::Value;

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET /v1/thumbnail?url=...&width=80`: the image's size and the job JSON.
async fn hit(c: &reqwest::Client, s: &TestServer, origin: &Origin) -> ((u32, u32), Value) {
    let resp = c
        .get(s.at(&format!(
            "/v1/thumbnail?url={}&width=80",
            urlencode(&origin.url("/versioned.jpg"))
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let job_url = resp.headers()["content-location"].to_str().unwrap().to_string();
    let img = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    ((img.width(), img.height()), get_json(c, s.at(&job_url)).await)
}

async fn a_second_hit_within_the_ttl_does_not_contact_the_origin() {
    let origin = Origin::start(photo("astronaut-1mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--fetch-allow", "127.0.0.1"]).await;
    let c = client();
    let (size, first) = hit(&c, &s, &origin).await;
    assert_eq!(origin.hits(), 1);
    for _ in 0..3 {
        let (again, job) = hit(&c, &s, &origin).await;
        assert_eq!(again, size);
        assert_eq!(job["deduplicated_from"], first["id"], "{job}");
        assert_eq!(job["result"]["bytes"], first["result"]["bytes"], "{job}");
    }
    assert_eq!(origin.hits(), 1, "the origin was contacted again");
    // Other options are other work: fetched anew.
    let resp = c
        .get(s.at(&format!(
            "/v1/thumbnail?url={}&width=81",
            urlencode(&origin.url("/versioned.jpg"))
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(origin.hits(), 2);
    s.stop().await;
}

async fn after_the_ttl_the_origin_is_revalidated() {
    let origin = Origin::start(photo("astronaut-1mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--fetch-allow", "127.0.0.1", "--url-cache-ttl", "1ms"];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    let (size, first) = hit(&c, &s, &origin).await;
    // Stale: asked with the ETag, answered 304, served from the stored result.
    let (again, renewed) = hit(&c, &s, &origin).await;
    assert_eq!((origin.hits(), origin.not_modified()), (2, 1));
    assert_eq!(again, size);
    assert_eq!(renewed["deduplicated_from"], first["id"], "{renewed}");
    // A new version: fetched once (by the revalidation), thumbnailed anew.
    origin.bump_version();
    let (changed, new) = hit(&c, &s, &origin).await;
    assert_eq!((origin.hits(), origin.not_modified()), (3, 1));
    assert_ne!(changed, size, "the new version is half as wide");
    assert!(new["deduplicated_from"].is_null(), "{new}");
    // And the new version is what is stored now.
    let (latest, job) = hit(&c, &s, &origin).await;
    assert_eq!((origin.hits(), origin.not_modified()), (4, 2));
    assert_eq!(latest, changed);
    assert_eq!(job["deduplicated_from"], new["id"], "{job}");
    s.stop().await;
}

both_backends!(
    a_second_hit_within_the_ttl_does_not_contact_the_origin,
    after_the_ttl_the_origin_is_revalidated
);
