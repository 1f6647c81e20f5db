//! The REST service end to end: the real server on port 0, a temporary data dir, real HTTP.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::server::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("the thumbnail decodes")
}

async fn submit_raw(c: &reqwest::Client, s: &TestServer, path: &str, bytes: Vec<u8>) -> reqwest::Response {
    c.post(s.at(path))
        .header("content-type", "image/jpeg")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn accepted(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let job: Value = resp.json().await.unwrap();
    assert_eq!(location, format!("/v1/jobs/{}", job["id"].as_str().unwrap()));
    job
}

async fn every_input_mode_gives_a_downloadable_thumbnail() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let photo_bytes = photo("coffee-12mp.jpg");

    // Raw body, options in the query.
    let raw = accepted(
        submit_raw(
            &c,
            &s,
            "/v1/jobs?width=80&height=80&format=jpeg&quality=70",
            photo_bytes.clone(),
        )
        .await,
    )
    .await;
    assert!(
        uuid::Uuid::parse_str(raw["id"].as_str().unwrap())
            .unwrap()
            .get_version_num()
            == 4
    );
    // Multipart, options as form fields.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(photo("astronaut-1mp.jpg")).file_name("a.jpg"),
        )
        .text("width", "50")
        .text("fit", "cover");
    let multipart = accepted(c.post(s.at("/v1/jobs")).multipart(form).send().await.unwrap()).await;
    // A file part under another name is taken too.
    let other_name = reqwest::multipart::Form::new().part(
        "upload",
        reqwest::multipart::Part::bytes(small_png()).file_name("x.png"),
    );
    let renamed = accepted(
        c.post(s.at("/v1/jobs"))
            .multipart(other_name)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        wait_done(&c, &s.url, renamed["id"].as_str().unwrap(), None).await["status"],
        "succeeded"
    );
    // JSON with base64, as a data URL, options as JSON fields.
    let b64 = base64::engine::general_purpose::STANDARD.encode(photo("coffee-2mp.webp"));
    let body =
        json!({"image_base64": format!("data:image/webp;base64,{b64}"), "width": 120, "format": "webp"});
    let json_job = accepted(c.post(s.at("/v1/jobs")).json(&body).send().await.unwrap()).await;

    for (job, fmt, ctype, size) in [
        (&raw, image::ImageFormat::Jpeg, "image/jpeg", (80, 53)),
        // Width alone: the (square) photo's height follows, whatever the fit; the default
        // format (auto) is JPEG for an opaque image and a client that names no other.
        (&multipart, image::ImageFormat::Jpeg, "image/jpeg", (50, 50)),
        (&json_job, image::ImageFormat::WebP, "image/webp", (120, 80)),
    ] {
        let id = job["id"].as_str().unwrap();
        let done = wait_done(&c, &s.url, id, None).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["attempts"], 1);
        assert_eq!(
            done["component_digest"],
            s.state.jobs.components.active().digest()
        );
        assert_eq!(
            (
                done["result"]["width"].as_u64(),
                done["result"]["height"].as_u64()
            ),
            (Some(size.0), Some(size.1))
        );
        assert!(done["finished_at"].as_str().is_some() && done["started_at"].as_str().is_some());
        let resp = c
            .get(s.at(&format!("/v1/jobs/{id}/thumbnail")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], ctype);
        assert!(
            resp.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        let etag = resp.headers()["etag"].to_str().unwrap().to_string();
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(done["result"]["bytes"].as_u64(), Some(bytes.len() as u64));
        assert_eq!(image::guess_format(&bytes).unwrap(), fmt);
        let img = decode(&bytes);
        assert_eq!((img.width() as u64, img.height() as u64), size);
        let again = c
            .get(s.at(&format!("/v1/jobs/{id}/thumbnail")))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
    assert_eq!(raw_source(&c, &s, &raw).await, ("jpeg".into(), 4000, 2667));
    s.stop().await;
}

async fn raw_source(c: &reqwest::Client, s: &TestServer, job: &Value) -> (String, u64, u64) {
    let j: Value = c
        .get(s.at(&format!("/v1/jobs/{}", job["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        j["source"]["format"].as_str().unwrap().to_string(),
        j["source"]["width"].as_u64().unwrap(),
        j["source"]["height"].as_u64().unwrap(),
    )
}

async fn long_poll_returns_when_the_job_finishes() {
    let dir = tempfile::tempdir().unwrap();
    // No workers yet: the job must stay queued while we poll.
    let api_only = TestServer::start(dir.path(), &["--workers", "0"]).await;
    let c = client();
    let job = accepted(submit_raw(&c, &api_only, "/v1/jobs", photo("astronaut-1mp.jpg")).await).await;
    let id = job["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    let polled: Value = get_json(&c, api_only.at(&format!("/v1/jobs/{id}?wait=1"))).await;
    assert_eq!(polled["status"], "queued");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "a 1 s wait answered after {:?}",
        started.elapsed()
    );
    let resp = c
        .get(api_only.at(&format!("/v1/jobs/{id}/thumbnail")))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    expect_problem(resp, 409, "not_ready").await;
    api_only.stop().await;

    // A host with workers on the same data dir picks it up; a long poll sees it finish.
    let s = TestServer::start(dir.path(), &[]).await;
    let started = Instant::now();
    let polled: Value = get_json(&c, s.at(&format!("/v1/jobs/{id}?wait=30"))).await;
    assert_eq!(polled["status"], "succeeded", "{polled}");
    assert!(started.elapsed() < Duration::from_secs(20));
    expect_problem(
        c.get(s.at(&format!("/v1/jobs/{id}?wait=-1")))
            .send()
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    s.stop().await;
}

async fn list_paginates_newest_first_and_delete_removes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let mut ids = Vec::new();
    for w in 10..15 {
        let job = accepted(submit_raw(&c, &s, &format!("/v1/jobs?width={w}"), small_png()).await).await;
        ids.push(job["id"].as_str().unwrap().to_string());
        // The next job gets a later creation time (milliseconds): wait for the clock to tick.
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };
        let created = now();
        while now() == created {
            tokio::task::yield_now().await;
        }
    }
    for id in &ids {
        wait_done(&c, &s.url, id, None).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut url = s.at("/v1/jobs?limit=2&status=succeeded");
        if let Some(cur) = &cursor {
            url.push_str(&format!("&cursor={cur}"));
        }
        let page: Value = get_json(&c, url).await;
        let jobs = page["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        seen.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let queued: Value = get_json(&c, s.at("/v1/jobs?status=queued")).await;
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 0);
    expect_problem(
        c.get(s.at("/v1/jobs?status=weird")).send().await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    expect_problem(
        c.get(s.at("/v1/jobs?cursor=garbage")).send().await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    expect_problem(
        c.get(s.at("/v1/jobs?limit=0")).send().await.unwrap(),
        400,
        "bad_request",
    )
    .await;

    let gone = &ids[0];
    let resp = c.delete(s.at(&format!("/v1/jobs/{gone}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    expect_problem(
        c.get(s.at(&format!("/v1/jobs/{gone}"))).send().await.unwrap(),
        404,
        "job_not_found",
    )
    .await;
    expect_problem(
        c.get(s.at(&format!("/v1/jobs/{gone}/thumbnail")))
            .send()
            .await
            .unwrap(),
        404,
        "job_not_found",
    )
    .await;
    expect_problem(
        c.delete(s.at(&format!("/v1/jobs/{gone}"))).send().await.unwrap(),
        404,
        "job_not_found",
    )
    .await;
    let all: Value = get_json(&c, s.at("/v1/jobs?limit=100")).await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 4);
    s.stop().await;
}

async fn a_queued_job_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--workers", "0"]).await;
    let c = client();
    let job = accepted(submit_raw(&c, &s, "/v1/jobs", small_png()).await).await;
    let id = job["id"].as_str().unwrap();
    let delete = || c.delete(s.at(&format!("/v1/jobs/{id}"))).send();
    assert_eq!(delete().await.unwrap().status(), StatusCode::NO_CONTENT);
    // Cancelled, not erased: status, listing and a long-poll all say so.
    let job = get_json(&c, s.at(&format!("/v1/jobs/{id}?wait=5"))).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(job["finished_at"].is_string(), "{job}");
    assert!(job["result"].is_null() && job["error"].is_null(), "{job}");
    let listed = get_json(&c, s.at("/v1/jobs?status=cancelled")).await;
    assert_eq!(listed["jobs"][0]["id"], id, "{listed}");
    let p = expect_problem(
        c.get(s.at(&format!("/v1/jobs/{id}/thumbnail")))
            .send()
            .await
            .unwrap(),
        409,
        "not_ready",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("cancelled"), "{p}");
    // The worker that starts later never runs it.
    assert_eq!(
        s.state.jobs.step().await.unwrap(),
        edgethumb::jobs::worker::Step::Idle
    );
    // Deleting it now removes it.
    assert_eq!(delete().await.unwrap().status(), StatusCode::NO_CONTENT);
    expect_problem(
        c.get(s.at(&format!("/v1/jobs/{id}"))).send().await.unwrap(),
        404,
        "job_not_found",
    )
    .await;
    s.stop().await;
}

async fn every_error_status_has_a_problem_body() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        dir.path(),
        &[
            "--max-body-bytes",
            "200000",
            "--workers",
            "0",
            "--max-queue",
            "2",
            "--sync-timeout",
            "1s",
        ],
    )
    .await;
    let c = client();
    let png = small_png();
    // 400: malformed JSON, bad base64, no image, unknown JSON field, no file field.
    for body in [
        r#"{"image_base64": "#,
        r#"{"image_base64": "!!!not base64!!!"}"#,
        r#"{"width": 10}"#,
        r#"{"image": "x"}"#,
    ] {
        let resp = c
            .post(s.at("/v1/jobs"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_problem(resp, 400, "bad_request").await;
    }
    let form = reqwest::multipart::Form::new().text("width", "10");
    expect_problem(
        c.post(s.at("/v1/jobs")).multipart(form).send().await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    // An empty body is well-formed, just not an image.
    let p = expect_problem(
        submit_raw(&c, &s, "/v1/jobs", vec![]).await,
        415,
        "unsupported_format",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("no image data"), "{p}");
    // Two sources at once: readable, but contradictory.
    let both = r#"{"image_base64": "AAAA", "url": "http://127.0.0.1:9/x.png"}"#;
    let resp = c
        .post(s.at("/v1/jobs"))
        .header("content-type", "application/json")
        .body(both)
        .send()
        .await
        .unwrap();
    expect_problem(resp, 422, "invalid_options").await;
    // 413: over the limit, as a raw body, as multipart and as JSON.
    let big = vec![0x89u8; 300_000];
    expect_problem(
        submit_raw(&c, &s, "/v1/jobs", big.clone()).await,
        413,
        "payload_too_large",
    )
    .await;
    let mut form =
        b"--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n".to_vec();
    form.extend(&big);
    form.extend(b"\r\n--XyZ--\r\n");
    let resp = c
        .post(s.at("/v1/jobs"))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(form)
        .send()
        .await
        .unwrap();
    expect_problem(resp, 413, "payload_too_large").await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&big);
    let resp = c
        .post(s.at("/v1/jobs"))
        .json(&json!({ "image_base64": b64 }))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 413, "payload_too_large").await;
    // 415: not an image despite the header; a format we do not decode; a content type we do not take.
    let p = expect_problem(
        c.post(s.at("/v1/jobs"))
            .header("content-type", "image/png")
            .body("hello, I am text")
            .send()
            .await
            .unwrap(),
        415,
        "unsupported_format",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("not an image"), "{p}");
    let qoi = b"qoif\x00\x00\x00\x10\x00\x00\x00\x10\x04\x00".to_vec();
    let p = expect_problem(
        submit_raw(&c, &s, "/v1/jobs", qoi).await,
        415,
        "unsupported_format",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("QOI"), "{p}");
    expect_problem(
        c.post(s.at("/v1/jobs"))
            .header("content-type", "text/plain")
            .body(png.clone())
            .send()
            .await
            .unwrap(),
        415,
        "unsupported_format",
    )
    .await;
    // 422: options out of range.
    for q in [
        "width=0",
        "width=5000",
        "height=abc",
        "fit=squash",
        "format=tiff",
        "quality=0",
    ] {
        let p = expect_problem(
            submit_raw(&c, &s, &format!("/v1/jobs?{q}"), png.clone()).await,
            422,
            "invalid_options",
        )
        .await;
        let field = q.split('=').next().unwrap();
        assert!(p["detail"].as_str().unwrap().contains(field), "{q}: {p}");
    }
    let resp = c
        .post(s.at("/v1/jobs"))
        .json(&json!({"image_base64": "aGVsbG8=", "width": 0}))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 422, "invalid_options").await;
    // 404: unknown job, a non-uuid id, an unknown route.
    let unknown = uuid::Uuid::new_v4();
    expect_problem(
        c.get(s.at(&format!("/v1/jobs/{unknown}"))).send().await.unwrap(),
        404,
        "job_not_found",
    )
    .await;
    expect_problem(
        c.get(s.at("/v1/jobs/not-a-uuid")).send().await.unwrap(),
        404,
        "job_not_found",
    )
    .await;
    expect_problem(c.get(s.at("/v2/nothing")).send().await.unwrap(), 404, "not_found").await;
    // 504: the synchronous endpoint with no worker to do it.
    let p = expect_problem(
        submit_raw(&c, &s, "/v1/thumbnail", png.clone()).await,
        504,
        "timeout",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("/v1/jobs/"), "{p}");
    // 429: the queue (bound 2) is full now.
    accepted(submit_raw(&c, &s, "/v1/jobs?width=7", png.clone()).await).await;
    let resp = submit_raw(&c, &s, "/v1/jobs?width=8", png.clone()).await;
    assert!(resp.headers().contains_key("retry-after"));
    expect_problem(resp, 429, "queue_full").await;
    // 503 while shutting down. The listener closes at once, so this goes to the router
    // directly, as a request already on an open connection would.
    s.state.jobs.shutdown.cancel();
    let router = edgethumb::api::router(s.state.clone());
    let req = axum::http::Request::post("/v1/jobs")
        .header("content-type", "image/png")
        .body(axum::body::Body::from(png.clone()))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "shutting_down");
    s.stop().await;
}

async fn failed_jobs_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let photo_bytes = photo("coffee-12mp.jpg");
    // A PNG signature and a header with bit depth 0: it gets past the sniffing at submission
    // and fails in the decoder.
    let corrupt = std::fs::read(corpus_dir().join("pngsuite/xd0n2c08.png")).unwrap();
    let job = accepted(submit_raw(&c, &s, "/v1/jobs", corrupt.clone()).await).await;
    let done = wait_done(&c, &s.url, job["id"].as_str().unwrap(), None).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "malformed_image", "{done}");
    assert!(
        done["error"]["message"].as_str().unwrap().contains("png"),
        "{done}"
    );
    assert_eq!(done["attempts"], 1, "an image error is not retried");
    assert!(done["result"].is_null());
    let resp = c
        .get(s.at(&format!("/v1/jobs/{}/thumbnail", done["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 409, "not_ready").await;
    // The synchronous form answers with the job's own error.
    expect_problem(
        submit_raw(&c, &s, "/v1/thumbnail", corrupt).await,
        422,
        "malformed_image",
    )
    .await;
    // And with the image when it works.
    let resp = submit_raw(&c, &s, "/v1/thumbnail?width=40", photo_bytes).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert!(
        resp.headers()["content-location"]
            .to_str()
            .unwrap()
            .starts_with("/v1/jobs/")
    );
    let img = decode(&resp.bytes().await.unwrap());
    assert_eq!((img.width(), img.height()), (40, 27));
    // The first 60 KB of a 12 MP JPEG: refused, not a mostly grey thumbnail (issue 12,
    // finding 9). The detail is one clean sentence.
    let truncated = photo("coffee-12mp.jpg")[..60_000].to_vec();
    let p = expect_problem(
        submit_raw(&c, &s, "/v1/thumbnail", truncated).await,
        422,
        "malformed_image",
    )
    .await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("truncated") && !detail.ends_with('\n'), "{p}");
    s.stop().await;
}

async fn the_same_image_and_options_are_answered_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let bytes = photo("coffee-2mp.webp");
    let first = accepted(submit_raw(&c, &s, "/v1/jobs?width=90", bytes.clone()).await).await;
    let first_id = first["id"].as_str().unwrap();
    let first_done = wait_done(&c, &s.url, first_id, None).await;
    let second = accepted(submit_raw(&c, &s, "/v1/jobs?width=90", bytes.clone()).await).await;
    assert_eq!(
        second["status"], "succeeded",
        "a repeat should be done at once: {second}"
    );
    assert_eq!(second["deduplicated_from"], first_id);
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["attempts"], 0, "nothing was recomputed");
    assert_eq!(second["result"], first_done["result"]);
    let a = get_bytes(&c, s.at(&format!("/v1/jobs/{first_id}/thumbnail"))).await;
    let b = c
        .get(s.at(&format!("/v1/jobs/{}/thumbnail", second["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(a, b);
    // Other options are other work.
    let third = accepted(submit_raw(&c, &s, "/v1/jobs?width=91", bytes).await).await;
    assert_eq!(third["status"], "queued");
    assert!(third["deduplicated_from"].is_null());
    s.stop().await;
}

async fn api_keys_separate_clients() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--api-key", "alpha-key", "--api-key", "beta-key"]).await;
    let c = client();
    let resp = submit_raw(&c, &s, "/v1/jobs", small_png()).await;
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    expect_problem(resp, 401, "unauthorized").await;
    let resp = c.get(s.at("/v1/jobs")).bearer_auth("wrong").send().await.unwrap();
    expect_problem(resp, 401, "unauthorized").await;
    let resp = c
        .post(s.at("/v1/jobs"))
        .bearer_auth("alpha-key")
        .header("content-type", "image/png")
        .body(small_png())
        .send()
        .await
        .unwrap();
    let job = accepted(resp).await;
    let id = job["id"].as_str().unwrap();
    let done = wait_done(&c, &s.url, id, Some("alpha-key")).await;
    assert_eq!(done["status"], "succeeded");
    for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}/thumbnail")] {
        expect_problem(
            c.get(s.at(&path)).bearer_auth("beta-key").send().await.unwrap(),
            404,
            "job_not_found",
        )
        .await;
    }
    expect_problem(
        c.delete(s.at(&format!("/v1/jobs/{id}")))
            .bearer_auth("beta-key")
            .send()
            .await
            .unwrap(),
        404,
        "job_not_found",
    )
    .await;
    let beta: Value = c
        .get(s.at("/v1/jobs"))
        .bearer_auth("beta-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(beta["jobs"].as_array().unwrap().len(), 0);
    let alpha: Value = c
        .get(s.at("/v1/jobs"))
        .bearer_auth("alpha-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alpha["jobs"][0]["id"], id);
    // The same image from another key is not served from alpha's job either.
    let resp = c
        .post(s.at("/v1/jobs"))
        .bearer_auth("beta-key")
        .header("content-type", "image/png")
        .body(small_png())
        .send()
        .await
        .unwrap();
    let beta_job = accepted(resp).await;
    assert_ne!(beta_job["deduplicated_from"], id);
    assert_eq!(
        c.get(s.at(&format!("/v1/jobs/{id}/thumbnail")))
            .bearer_auth("alpha-key")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        c.get(s.at("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    s.stop().await;
}

async fn health_readiness_and_docs() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        dir.path(),
        &[
            "--workers",
            "2",
            "--max-memory",
            "67108864",
            "--memory-budget",
            "201326592",
        ],
    )
    .await;
    let c = client();
    let health: Value = get_json(&c, s.at("/healthz")).await;
    assert_eq!(health["status"], "ok");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = c.get(s.at("/readyz")).send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        if status == StatusCode::OK {
            assert_eq!(body["workers"], 2);
            assert_eq!(body["database"], "ok");
            assert_eq!(body["memory_budget_bytes"], 201326592);
            assert_eq!(body["memory_in_use_bytes"], 0);
            assert_eq!(body["component"], s.state.jobs.components.active().digest());
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spec: Value = get_json(&c, s.at("/openapi.json")).await;
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/thumbnail",
        "/v1/thumbnail",
        "/readyz",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let docs = c.get(s.at("/docs")).send().await.unwrap();
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // Swagger UI, from the binary: its page, its script, and its pointer to the document.
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
    let init = c.get(s.at("/docs/swagger-initializer.js")).send().await.unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    assert!(init.text().await.unwrap().contains("/openapi.json"));
    let bundle = c.get(s.at("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    s.state.jobs.shutdown.cancel();
    let resp = c.get(s.at("/readyz")).send().await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    s.stop().await;
}

/// A replay is a submission like any other: it goes through the queue limit.
async fn replay_answers_429_when_the_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--workers", "0", "--max-queue", "2"]).await;
    let c = client();
    let first = post_image(&c, &s.at("/v1/jobs"), "image/png", small_png()).await;
    let second = post_image(&c, &s.at("/v1/jobs"), "image/jpeg", photo("astronaut-1mp.jpg")).await;
    let resp = c
        .post(s.at(&format!("/v1/jobs/{first}/replay")))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(resp, 429, "queue_full").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("2 jobs waiting"),
        "{problem}"
    );
    // With room in the queue, the same replay is accepted.
    let resp = c
        .delete(s.at(&format!("/v1/jobs/{second}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = c
        .post(s.at(&format!("/v1/jobs/{first}/replay")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let replay: Value = resp.json().await.unwrap();
    assert_eq!(replay["status"], "queued", "{replay}");
    assert_eq!(
        replay["source"]["sha256"],
        get_json(&c, s.at(&format!("/v1/jobs/{first}"))).await["source"]["sha256"]
    );
    s.stop().await;
}

/// Concurrent submissions cannot overshoot the queue limit: the count and the insert are one
/// transaction (issue 12, finding 8: they were two, so a burst got past `--max-queue`).
async fn a_burst_of_submissions_never_overshoots_the_queue_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--workers", "0", "--max-queue", "5"]).await;
    let c = client();
    // Distinct images, so none is answered from the dedup cache.
    let bodies: Vec<Vec<u8>> = (0..24u8)
        .map(|n| {
            let img = image::RgbImage::from_pixel(8, 8, image::Rgb([n, 255 - n, 7]));
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            png
        })
        .collect();
    let sends = bodies.into_iter().map(|body| {
        c.post(s.at("/v1/jobs"))
            .header("content-type", "image/png")
            .body(body)
            .send()
    });
    let mut statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort();
    let accepted = statuses.iter().filter(|&&st| st == 202).count();
    assert_eq!(accepted, 5, "{statuses:?}");
    assert!(statuses[5..].iter().all(|&st| st == 429), "{statuses:?}");
    let list = get_json(&c, s.at("/v1/jobs?status=queued&limit=100")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 5, "{list}");
    s.stop().await;
}

/// At most `--max-uploads` bodies are read at once, and each must arrive within
/// `--body-timeout`: a client that announces a body and trickles it loses its turn with a 408
/// instead of holding it (and its memory) forever (issue 12, finding 8).
async fn a_trickled_body_loses_its_turn() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let args = ["--workers", "0", "--max-uploads", "1", "--body-timeout", "1s"];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    let mut slow = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://"))
        .await
        .unwrap();
    slow.write_all(
        b"POST /v1/jobs HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n\x89PNG",
    )
    .await
    .unwrap();
    // A normal upload still goes through (after the slow one's turn, if it came first).
    let resp = submit_raw(&c, &s, "/v1/jobs", small_png()).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mut answer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("body_timeout") {
            let n = slow.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed without an answer: {}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the trickling client got no answer");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    s.stop().await;
}

/// A background task that dies (here one that panics, under the same supervisor as the
/// workers, sweeper and webhooks) is logged and makes the host not ready.
async fn a_background_task_that_dies_makes_the_host_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let ready = |body: &Value| body["status"] == "ready";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body: Value = c.get(s.at("/readyz")).send().await.unwrap().json().await.unwrap();
        if ready(&body) {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.state.tasks.spawn("doomed", async { panic!("boom") });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = c.get(s.at("/readyz")).send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["status"], "not_ready");
            assert_eq!(
                body["failed_tasks"],
                serde_json::json!(["doomed: panicked: boom"]),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "a dead task went unnoticed: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}

async fn the_corpus_over_http_never_gives_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let manifest = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).unwrap();
    let mut failures = Vec::new();
    for line in manifest.lines().skip(1).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (path, expected) = (f[0], f[5]);
        let bytes = std::fs::read(corpus_dir().join(path)).unwrap();
        let resp = c
            .post(s.at("/v1/thumbnail"))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let ok = match (expected, status) {
            // auto: JPEG, or PNG for images with alpha.
            ("thumbnail" | "either", 200) => ctype == "image/jpeg" || ctype == "image/png",
            ("reject" | "either", 415 | 422) => ctype == "application/problem+json",
            _ => false,
        };
        if !ok {
            failures.push(format!("{path} ({expected}): {status} {ctype}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    s.stop().await;
}

async fn a_graceful_restart_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let s = TestServer::start(dir.path(), &["--workers", "1"]).await;
    let mut ids = Vec::new();
    for w in 0..12 {
        let job = accepted(
            submit_raw(
                &c,
                &s,
                &format!("/v1/jobs?width={}", 20 + w),
                photo("coffee-12mp.jpg"),
            )
            .await,
        )
        .await;
        ids.push(job["id"].as_str().unwrap().to_string());
    }
    // Stop with jobs running and queued: once the worker has started one (polled).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running: Value = get_json(&c, s.at("/v1/jobs?status=running")).await;
        if !running["jobs"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no job ever ran");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.stop().await;
    let s = TestServer::start(dir.path(), &["--workers", "2"]).await;
    for (w, id) in ids.iter().enumerate() {
        let done = wait_done(&c, &s.url, id, None).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(
            done["attempts"], 1,
            "a graceful stop lets running jobs finish: {done}"
        );
        let img = decode(&get_bytes(&c, s.at(&format!("/v1/jobs/{id}/thumbnail"))).await);
        assert_eq!(img.width(), 20 + w as u32);
    }
    let all: Value = get_json(&c, s.at("/v1/jobs?limit=100")).await;
    assert_eq!(
        all["jobs"].as_array().unwrap().len(),
        ids.len(),
        "no job lost or duplicated"
    );
    s.stop().await;
}

async fn concurrent_submissions_never_find_the_database_locked() {
    // Many clients at once on the dedup path (which reads, then writes) while workers complete
    // other jobs: every submission must be accepted, none answered "database is locked".
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--workers", "2"]).await;
    let c = client();
    let png = small_png();
    let submit_all = |widths: Vec<u32>| {
        let submissions = widths.into_iter().map(|w| {
            let c = c.clone();
            let url = s.at(&format!("/v1/jobs?width={w}"));
            let body = png.clone();
            async move {
                let resp = c
                    .post(url)
                    .header("content-type", "image/png")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                let body: Value = resp.json().await.unwrap();
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                body["id"].as_str().unwrap().to_string()
            }
        });
        futures::future::join_all(submissions)
    };
    for id in submit_all((20..36).collect()).await {
        wait_done(&c, &s.url, &id, None).await;
    }
    // Repeats of those (dedup) mixed with new work, all at once.
    let ids = submit_all((0..128).map(|n| 20 + n % 40).collect()).await;
    for id in &ids {
        assert_eq!(wait_done(&c, &s.url, id, None).await["status"], "succeeded");
    }
    s.stop().await;
}

/// Axum's own rejections are problem+json too, and a misspelt query parameter is refused by
/// name instead of being ignored (issue 12, finding 9).
async fn bad_queries_and_methods_get_problems_not_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--workers", "0"]).await;
    let c = client();
    let id = accepted(submit_raw(&c, &s, "/v1/jobs", small_png()).await).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (path, says) in [
        (format!("/v1/jobs/{id}?wait=abc"), "wait"),
        ("/v1/jobs?limit=abc".to_string(), "limit"),
        ("/v1/jobs?limit=-3".to_string(), "limit"),
        // What the document says is out of range is refused, not clamped or ignored.
        (format!("/v1/jobs/{id}?wait=61"), "wait"),
        ("/v1/jobs?status=".to_string(), "status"),
        (
            "/v1/jobs?cursor=1_00000000000000000000000000000000".to_string(),
            "cursor",
        ),
        (
            "/v1/thumbnail?url=http://127.0.0.1:9/x.png&on_error=maybe".to_string(),
            "on_error",
        ),
        ("/v1/thumbnail?width=10".to_string(), "url"),
    ] {
        let p = expect_problem(c.get(s.at(&path)).send().await.unwrap(), 400, "bad_request").await;
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(says) && !detail.ends_with('\n'), "{path}: {p}");
    }
    // A misspelt option: named, with the ones allowed.
    let resp = submit_raw(&c, &s, "/v1/jobs?widht=300", small_png()).await;
    let p = expect_problem(resp, 400, "bad_request").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("widht") && detail.contains("width"), "{p}");
    let resp = c.get(s.at("/v1/jobs?stauts=queued")).send().await.unwrap();
    expect_problem(resp, 400, "bad_request").await;
    // Parameters of the GET form only are not taken by the POST routes.
    let resp = submit_raw(&c, &s, "/v1/jobs?on_error=placeholder", small_png()).await;
    let p = expect_problem(resp, 400, "bad_request").await;
    assert!(p["detail"].as_str().unwrap().contains("on_error"), "{p}");
    // Routes that take no query parameters refuse them too, by name.
    let resp = c
        .get(s.at(&format!("/v1/jobs/{id}/thumbnail?size=2")))
        .send()
        .await
        .unwrap();
    let p = expect_problem(resp, 400, "bad_request").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("size") && detail.contains("takes none"), "{p}");
    let resp = c.get(s.at("/readyz?verbose=1")).send().await.unwrap();
    expect_problem(resp, 400, "bad_request").await;
    // Documented parameters still work.
    let resp = c
        .get(s.at("/v1/jobs?limit=1&status=queued"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // A route that exists, with a method it does not take.
    let resp = c.put(s.at("/v1/jobs")).send().await.unwrap();
    let p = expect_problem(resp, 405, "method_not_allowed").await;
    assert!(p["detail"].as_str().unwrap().contains("PUT"), "{p}");
    s.stop().await;
}

both_backends!(
    bad_queries_and_methods_get_problems_not_plain_text,
    every_input_mode_gives_a_downloadable_thumbnail,
    long_poll_returns_when_the_job_finishes,
    list_paginates_newest_first_and_delete_removes,
    a_queued_job_can_be_cancelled,
    every_error_status_has_a_problem_body,
    failed_jobs_say_why,
    the_same_image_and_options_are_answered_from_the_cache,
    api_keys_separate_clients,
    health_readiness_and_docs,
    a_background_task_that_dies_makes_the_host_not_ready,
    replay_answers_429_when_the_queue_is_full,
    a_burst_of_submissions_never_overshoots_the_queue_limit,
    a_trickled_body_loses_its_turn,
    the_corpus_over_http_never_gives_a_5xx,
    a_graceful_restart_loses_and_repeats_nothing,
    concurrent_submissions_never_find_the_database_locked,
);
