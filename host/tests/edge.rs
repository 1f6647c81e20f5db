//! The edge component (`edge-component/`, built by host/build.rs) under `wasmtime serve`: the
//! wasmtime CLI of the host's wasmtime version (scripts/wasmtime-cli.sh installs it into a
//! cache outside the clone when it is missing, so this test never skips), on a loopback port.
//! Its thumbnails must be byte-identical to the host's sandboxed resizer's.

mod common;

use std::time::Instant;

use common::edge::{Serve, wasmtime_serve};
use common::origin::Origin;
use common::server::get_json;
use common::*;
use resizer_core::request::{Accepts, Negotiated, Raw};
use resizer_core::{Options, OutputFormat};
use serde_json::Value;

fn host_thumbnail(image: &[u8], options: &Options) -> Vec<u8> {
    builtin().thumbnail(image, options).unwrap().0.data
}

async fn post(c: &reqwest::Client, s: &Serve, query: &str, body: Vec<u8>) -> reqwest::Response {
    c.post(format!("{}/thumbnail?{query}", s.url))
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["status"], status, "{p}");
    assert!(!p["detail"].as_str().unwrap().is_empty(), "{p}");
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_component_serves_thumbnails_under_wasmtime_serve() {
    let s = tokio::task::spawn_blocking(wasmtime_serve).await.unwrap();
    let c = reqwest::Client::new();
    let first = Instant::now();
    let health: Value = get_json(&c, format!("{}/healthz", s.url)).await;
    let cold = s.started_in + first.elapsed();
    assert_eq!(health["status"], "ok");

    // A JPEG, a PNG with alpha and a WebP: byte-identical to the host's sandboxed resizer.
    for (name, format) in [
        ("astronaut-1mp.jpg", OutputFormat::Png),
        ("astronaut-2mp-rgba.png", OutputFormat::Png),
        ("coffee-2mp.webp", OutputFormat::Jpeg),
    ] {
        let image = photo(name);
        let resp = post(
            &c,
            &s,
            &format!("width=120&height=90&format={}", format.name()),
            image.clone(),
        )
        .await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.headers()["content-type"], format.mime_type(), "{name}");
        assert!(resp.headers().contains_key("etag"), "{name}");
        let body = resp.bytes().await.unwrap();
        let options = Options {
            width: 120,
            height: 90,
            format,
            ..Options::default()
        };
        assert!(
            body[..] == host_thumbnail(&image, &options)[..],
            "{name}: differs from the host's thumbnail"
        );
    }

    // Refusals are problem+json with the host's codes.
    problem(post(&c, &s, "", png_bomb()).await, 422, "image_too_large").await;
    problem(
        post(&c, &s, "", b"not an image".to_vec()).await,
        415,
        "unsupported_format",
    )
    .await;
    problem(post(&c, &s, "width=0", small_png()).await, 422, "invalid_options").await;
    let p = problem(post(&c, &s, "widht=3", small_png()).await, 400, "bad_request").await;
    assert!(p["detail"].as_str().unwrap().contains("widht"), "{p}");
    problem(
        c.get(format!("{}/nope", s.url)).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    // GET ?url= from a loopback origin (allowed by EDGETHUMB_FETCH_ALLOW), and a loopback
    // address it does not allow, refused without a connection.
    let origin = Origin::start(photo("astronaut-1mp.jpg")).await;
    let url = origin.url("/img.jpg");
    let resp = c
        .get(format!("{}/thumbnail?url={}&width=50&height=50", s.url, url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    // The request as the host makes it: auto without Accept is a JPEG here.
    let request = Raw::from_pairs([("width", "50"), ("height", "50")])
        .parse()
        .unwrap();
    let (made, _) = builtin()
        .make(origin.image(), &Negotiated::new(request, Accepts::default()))
        .unwrap();
    assert_eq!(made.format, OutputFormat::Jpeg);
    assert!(resp.bytes().await.unwrap()[..] == made.data[..]);
    assert_eq!(origin.hits(), 1);
    // A CDN revalidating with the ETag gets a bodiless 304.
    let again = format!("{}/thumbnail?url={url}&width=50&height=50", s.url);
    let etag = c.get(&again).send().await.unwrap().headers()["etag"].clone();
    let resp = c.get(&again).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"], etag);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = c
        .get(&again)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(origin.hits(), 4);
    for refused in [
        format!("http://127.0.0.2:{}/img.jpg", origin.port()),
        format!("http://[::ffff:127.0.0.2]:{}/img.jpg", origin.port()),
        format!("http://localhost:{}/img.jpg", origin.port()),
    ] {
        let resp = c
            .get(format!("{}/thumbnail?url={refused}", s.url))
            .send()
            .await
            .unwrap();
        let p = problem(resp, 422, "source_refused").await;
        assert!(
            p["detail"].as_str().unwrap().contains("refused"),
            "{refused}: {p}"
        );
    }
    assert_eq!(origin.hits(), 4, "a refused URL reached the origin");

    // Latency of a 12 MP JPEG, warm, against the host's sandboxed call in this run.
    let photo12 = photo("camera-like-12mp.jpg");
    let mut edge = Vec::new();
    let mut host = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let resp = post(&c, &s, "", photo12.clone()).await;
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        edge.push(t.elapsed());
        let t = Instant::now();
        host_thumbnail(&photo12, &Options::default());
        host.push(t.elapsed());
    }
    edge.sort();
    host.sort();
    println!(
        "edge component under wasmtime serve: cold start (spawn to first answer) {cold:?}; \
         12 MP JPEG warm median {:?} against the host's sandboxed call {:?} ({:.2}x)",
        edge[2],
        host[2],
        edge[2].as_secs_f64() / host[2].as_secs_f64()
    );
}
