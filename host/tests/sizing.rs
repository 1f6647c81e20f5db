//! Sizing end to end (issue 16): automatic sides, `enlarge` both ways and `dpr`, through the
//! real server and the sandboxed component, with the job JSON saying what was asked.

mod common;

use common::server::*;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

/// A `w` x `h` PNG with a gradient, so a resize has something to do.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .unwrap();
    out
}

/// The synchronous thumbnail of `image` with `query`: its size, and the job it came from.
async fn size_of(c: &reqwest::Client, s: &TestServer, query: &str, image: Vec<u8>) -> ((u32, u32), Value) {
    let (bytes, job) = post_thumbnail(c, s, query, image).await;
    let img = image::load_from_memory(&bytes).unwrap();
    ((img.width(), img.height()), job)
}

async fn sizes_follow_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let large = png(1200, 800);
    let small = png(300, 200);
    for (query, image, want) in [
        // Neither side: the 100x100 box.
        ("", &large, (100, 67)),
        // One side: the other follows the aspect ratio, whatever the fit.
        ("width=400", &large, (400, 267)),
        ("height=100&fit=cover", &large, (150, 100)),
        ("width=0&height=200&fit=fill", &large, (300, 200)),
        // A small source keeps its size unless enlarging is asked for...
        ("width=2000&height=2000", &small, (300, 200)),
        ("width=2000&height=2000&enlarge=false", &small, (300, 200)),
        ("width=600&height=600&enlarge=true", &small, (600, 400)),
        ("width=600&enlarge=true", &small, (600, 400)),
        ("width=150", &small, (150, 100)),
        // ...and a cover crop keeps the box's shape at the source's resolution.
        ("width=400&height=400&fit=cover", &small, (200, 200)),
        ("width=400&height=400&fit=fill", &small, (300, 200)),
        // dpr multiplies the box.
        ("width=100&height=100&dpr=2", &large, (200, 133)),
        ("width=120&dpr=1.5", &large, (180, 120)),
        ("width=100&height=100&fit=cover&dpr=3", &large, (300, 300)),
        ("width=200&dpr=2", &small, (300, 200)),
    ] {
        let (got, job) = size_of(&c, &s, query, image.clone()).await;
        assert_eq!(got, want, "{query}");
        let result = &job["result"];
        assert_eq!(
            (result["width"].as_u64(), result["height"].as_u64()),
            (Some(want.0 as u64), Some(want.1 as u64)),
            "{query}: {job}"
        );
        let asked = &job["options"];
        assert_eq!(asked["enlarge"], query.contains("enlarge=true"), "{query}: {job}");
    }
    // The job JSON keeps what was asked: an automatic side as 0, the ratio as given.
    let (_, job) = size_of(&c, &s, "width=120&dpr=1.5", large.clone()).await;
    assert_eq!(job["options"]["width"], 120, "{job}");
    assert_eq!(job["options"]["height"], 0, "{job}");
    assert_eq!(job["options"]["dpr"], 1.5, "{job}");
    // Options that had no effect are not shown: fit with an automatic side (quality is, as
    // the default format made a JPEG).
    let options = job["options"].as_object().unwrap();
    assert!(
        !options.contains_key("fit") && options.contains_key("quality"),
        "{job}"
    );
    let (_, job) = size_of(
        &c,
        &s,
        "width=100&height=100&format=jpeg&quality=70",
        large.clone(),
    )
    .await;
    assert_eq!(
        (job["options"]["fit"].as_str(), job["options"]["quality"].as_u64()),
        (Some("contain"), Some(70)),
        "{job}"
    );
    assert!(job["options"].get("dpr").is_none(), "{job}");
    s.stop().await;
}

async fn bad_sizes_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    for (query, says) in [
        ("width=0&height=0", "both automatic"),
        ("width=100&dpr=5", "dpr"),
        ("width=100&dpr=0.5", "dpr"),
        ("width=100&dpr=two", "dpr"),
        ("width=3000&dpr=2", "within 4096"),
        ("width=100&enlarge=maybe", "enlarge"),
        ("width=-1", "width"),
    ] {
        let resp = c
            .post(s.at(&format!("/v1/jobs?{query}")))
            .header("content-type", "image/png")
            .body(small_png())
            .send()
            .await
            .unwrap();
        let p = expect_problem(resp, 422, "invalid_options").await;
        assert!(p["detail"].as_str().unwrap().contains(says), "{query}: {p}");
    }
    s.stop().await;
}

/// A `w` x `h` RGBA PNG whose left half is transparent.
fn png_with_alpha(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([200, (y % 256) as u8, 40, if x < w / 2 { 0 } else { 255 }])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .unwrap();
    out
}

async fn auto_format_follows_accept_and_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let opaque = png(1200, 800);
    let alpha = png_with_alpha(600, 400);
    for (accept, image, want) in [
        ("image/avif,image/webp,*/*", &opaque, "image/webp"),
        ("image/webp", &alpha, "image/webp"),
        ("*/*", &opaque, "image/jpeg"),
        ("image/webp;q=0, */*", &opaque, "image/jpeg"),
        ("*/*", &alpha, "image/png"),
        ("", &alpha, "image/png"),
    ] {
        let mut req = c
            .post(s.at("/v1/thumbnail?width=200&format=auto"))
            .header("content-type", "image/png");
        if !accept.is_empty() {
            req = req.header("accept", accept);
        }
        let resp = req.body(image.clone()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{accept}");
        assert_eq!(resp.headers()["content-type"], want, "{accept}");
        assert!(
            resp.headers()["vary"].to_str().unwrap().contains("Accept"),
            "{accept}"
        );
        let job_url = resp.headers()["content-location"].to_str().unwrap().to_string();
        let bytes = resp.bytes().await.unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!(img.width(), 200, "{accept}");
        // Alpha survives wherever the format keeps it.
        assert_eq!(
            img.color().has_alpha(),
            image.as_ptr() == alpha.as_ptr(),
            "{accept}"
        );
        let job = get_json(&c, s.at(&job_url)).await;
        assert_eq!(job["options"]["format"], "auto", "{job}");
        assert_eq!(job["result"]["content_type"], want, "{job}");
        // The job's own download says the same.
        let again = c.get(s.at(&format!("{job_url}/thumbnail"))).send().await.unwrap();
        assert_eq!(again.headers()["content-type"], want);
    }
    // A fixed format does not vary by Accept.
    let resp = c
        .post(s.at("/v1/thumbnail?width=50&format=png"))
        .header("content-type", "image/png")
        .header("accept", "image/webp")
        .body(opaque.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert!(resp.headers().get("vary").is_none());
    // ...and the same request with another Accept is the same work, answered from the first.
    let resp = c
        .post(s.at("/v1/thumbnail?width=50&format=png"))
        .header("content-type", "image/png")
        .header("accept", "*/*")
        .body(opaque.clone())
        .send()
        .await
        .unwrap();
    let job_url = resp.headers()["content-location"].to_str().unwrap().to_string();
    let job = get_json(&c, s.at(&job_url)).await;
    assert!(job["deduplicated_from"].is_string(), "{job}");
    s.stop().await;
}

both_backends!(
    sizes_follow_the_request,
    bad_sizes_are_refused_with_the_reason,
    auto_format_follows_accept_and_alpha
);
