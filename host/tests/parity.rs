//! One request, the same bytes everywhere: each option set goes through the HTTP API
//! (`POST /v1/thumbnail`; for some, a job, `GET /v1/thumbnail?url=`, a batch and `edgethumb
//! batch --server`), the CLI (`edgethumb thumb`, which has no `Accept`), and the edge component
//! under `wasmtime serve` and under `jco serve` on Node, and every answer must be
//! byte-identical. Bad requests get the same status and code at the edge
//! as on the host, with codes from the one list.

mod common;

use std::process::Command;

use common::edge::{Serve, jco_serve, wasmtime_serve};
use common::origin::Origin;
use common::server::*;
use common::*;
use serde_json::Value;

/// An option set: the query, the `Accept` header (none: the CLI takes part too), the image.
struct Case {
    query: &'static str,
    accept: Option<&'static str>,
    image: &'static str,
    /// The format the answer must be in.
    made: &'static str,
}

const fn case(
    query: &'static str,
    accept: Option<&'static str>,
    image: &'static str,
    made: &'static str,
) -> Case {
    Case {
        query,
        accept,
        image,
        made,
    }
}

const PHOTO: &str = "photo";
const ALPHA: &str = "alpha";
const SMALL: &str = "small";
const ANIM: &str = "anim";
const WEBP_AVIF: Option<&str> = Some("image/avif,image/webp,image/apng,image/*,*/*;q=0.8");
const AVIF_ONLY: Option<&str> = Some("image/avif,image/*;q=0.8");

const CASES: &[Case] = &[
    // Defaults: auto (JPEG for an opaque image without Accept), 100x100 contain.
    case("", None, PHOTO, "image/jpeg"),
    // Automatic sides, dpr, and the enlarge rule both ways.
    case("width=400", None, PHOTO, "image/jpeg"),
    case("height=80&dpr=1.5", None, PHOTO, "image/jpeg"),
    case("width=64&height=64", None, SMALL, "image/jpeg"),
    case(
        "width=64&height=64&enlarge=true&format=png",
        None,
        SMALL,
        "image/png",
    ),
    // Each fit, and the gravities of a cover crop.
    case(
        "width=120&height=90&fit=fill&format=png",
        None,
        PHOTO,
        "image/png",
    ),
    case(
        "width=90&height=120&fit=cover&gravity=smart",
        None,
        PHOTO,
        "image/jpeg",
    ),
    case(
        "width=90&height=120&fit=cover&gravity=north-east&format=webp",
        None,
        PHOTO,
        "image/webp",
    ),
    case(
        "width=120&height=60&fit=cover&gravity=focus:0.2,0.8&format=png",
        None,
        ALPHA,
        "image/png",
    ),
    // Every output format, and quality.
    case("format=jpeg&quality=35", None, PHOTO, "image/jpeg"),
    case("format=webp&quality=50&width=150", None, ALPHA, "image/webp"),
    case("format=avif&width=64", None, PHOTO, "image/avif"),
    case("format=gif&width=64", None, PHOTO, "image/gif"),
    // auto by Accept: WebP first, AVIF for a client that reads only AVIF, PNG for alpha.
    case("width=200", WEBP_AVIF, PHOTO, "image/webp"),
    case("width=64", AVIF_ONLY, PHOTO, "image/avif"),
    case("width=150", None, ALPHA, "image/png"),
    // Animations, kept as the format asked or chosen.
    case("animated=true&width=60", None, ANIM, "image/gif"),
    case("animated=true&width=60&format=webp", None, ANIM, "image/webp"),
    case("animated=true&width=60", WEBP_AVIF, ANIM, "image/webp"),
];

fn image(name: &str) -> Vec<u8> {
    match name {
        PHOTO => photo("astronaut-1mp.jpg"),
        ALPHA => photo("astronaut-2mp-rgba.png"),
        SMALL => small_png(),
        ANIM => std::fs::read(corpus_dir().join("formats/gif/anim/border_touching_layers.gif")).unwrap(),
        other => panic!("no image {other}"),
    }
}

async fn post(c: &reqwest::Client, url: &str, accept: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let mut req = c
        .post(url)
        .header("content-type", "application/octet-stream")
        .body(body);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    req.send().await.unwrap()
}

/// The answer's bytes, after checking it is a 200 in the expected format.
async fn image_answer(resp: reqwest::Response, what: &str, made: &str) -> Vec<u8> {
    let status = resp.status();
    let content_type = resp.headers().get("content-type").cloned();
    let body = resp.bytes().await.unwrap().to_vec();
    assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&body));
    assert_eq!(content_type.unwrap(), made, "{what}");
    body
}

/// The query's options as CLI flags.
fn flags(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| format!("--{pair}"))
        .collect()
}

/// `edgethumb batch --server` of one image: the one thumbnail it writes.
fn cli_batch(server: &str, query: &str, image: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.img"), image).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgethumb"))
        .current_dir(dir.path())
        .args(["batch", "--server", server, "input.img"])
        .args(flags(query))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "edgethumb batch {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Vec<_> = std::fs::read_dir(dir.path().join("thumbs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "edgethumb batch {query} wrote {written:?}");
    std::fs::read(&written[0]).unwrap()
}

/// The CLI's thumbnail on stdout, with the query's options as flags.
fn cli(query: &str, image: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::write(&input, image).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgethumb"));
    cmd.current_dir(dir.path())
        .arg("thumb")
        .arg(&input)
        .args(["-o", "-"]);
    cmd.args(["--cache-dir", cache_dir().to_str().unwrap()]);
    cmd.args(flags(query));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "edgethumb thumb {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_end_makes_the_same_bytes() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path(), &["--fetch-allow", "127.0.0.1"]).await;
    let wasmtime = tokio::task::spawn_blocking(wasmtime_serve).await.unwrap();
    let jco = tokio::task::spawn_blocking(jco_serve).await.unwrap();
    let c = client();
    let mut origins = std::collections::HashMap::new();
    for name in [PHOTO, ALPHA, SMALL, ANIM] {
        origins.insert(name, Origin::start(image(name)).await);
    }
    for (i, case) in CASES.iter().enumerate() {
        let what = format!(
            "case {i} ({}, Accept {:?}, {})",
            case.query, case.accept, case.image
        );
        let body = image(case.image);
        let api = image_answer(
            post(
                &c,
                &s.at(&format!("/v1/thumbnail?{}", case.query)),
                case.accept,
                body.clone(),
            )
            .await,
            &format!("{what} via POST /v1/thumbnail"),
            case.made,
        )
        .await;
        for edge in [&wasmtime, &jco] {
            let url = format!("{}/thumbnail?{}", edge.url, case.query);
            let got = image_answer(
                post(&c, &url, case.accept, body.clone()).await,
                &format!("{what} via {}", edge.runtime),
                case.made,
            )
            .await;
            assert!(
                got == api,
                "{what}: {} differs from the API ({} vs {} bytes)",
                edge.runtime,
                got.len(),
                api.len()
            );
        }
        if case.accept.is_none() {
            let query = case.query.to_string();
            let got = tokio::task::spawn_blocking(move || cli(&query, &body))
                .await
                .unwrap();
            assert!(
                got == api,
                "{what}: the CLI differs from the API ({} vs {} bytes)",
                got.len(),
                api.len()
            );
        }
        // For every third case without Accept: the image by URL, a batch, and the CLI's batch.
        if case.accept.is_none() && i % 3 == 0 {
            let url = origins[case.image].url("/img.jpg");
            let sep = if case.query.is_empty() { "" } else { "&" };
            let resp = c
                .get(s.at(&format!("/v1/thumbnail?{}{sep}url={url}", case.query)))
                .send()
                .await
                .unwrap();
            let got = image_answer(resp, &format!("{what} via GET ?url="), case.made).await;
            assert!(got == api, "{what}: GET /v1/thumbnail?url= differs from the API");
            let batch = c
                .post(s.at(&format!("/v1/batches?{}", case.query)))
                .json(&serde_json::json!({ "urls": [url] }))
                .send()
                .await
                .unwrap();
            let batch: Value = batch.json().await.unwrap();
            let id = batch["jobs"][0]["job"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: {batch}"))
                .to_string();
            wait_done(&c, &s.url, &id, None).await;
            let got = get_bytes(&c, s.at(&format!("/v1/jobs/{id}/thumbnail"))).await;
            assert!(
                got[..] == api[..],
                "{what}: the batch's thumbnail differs from the API's"
            );
            let (server, query, body) = (s.url.clone(), case.query.to_string(), image(case.image));
            let got = tokio::task::spawn_blocking(move || cli_batch(&server, &query, &body))
                .await
                .unwrap();
            assert!(
                got == api,
                "{what}: edgethumb batch --server differs from the API"
            );
        }
        // A job, for every fourth case: the queue's worker makes the same bytes.
        if i % 4 == 0 {
            let job = post(
                &c,
                &s.at(&format!("/v1/jobs?{}", case.query)),
                case.accept,
                image(case.image),
            )
            .await;
            let job: Value = job.json().await.unwrap();
            let id = job["id"].as_str().unwrap().to_string();
            wait_done(&c, &s.url, &id, None).await;
            let got = get_bytes(&c, s.at(&format!("/v1/jobs/{id}/thumbnail"))).await;
            assert!(
                got[..] == api[..],
                "{what}: the job's thumbnail differs from the API's"
            );
        }
    }
    println!(
        "{} option sets byte-identical; edge cold start: wasmtime serve {:?}, jco serve {:?}",
        CASES.len(),
        wasmtime.started_in,
        jco.started_in
    );
}

/// Bad requests, at the edge and on the host: the same status and code, from the one list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_refuses_as_the_host_does() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path(), &[]).await;
    let edges: Vec<Serve> = vec![
        tokio::task::spawn_blocking(wasmtime_serve).await.unwrap(),
        tokio::task::spawn_blocking(jco_serve).await.unwrap(),
    ];
    let c = client();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("width=5000", small_png(), 422, "invalid_options"),
        ("width=0&height=0", small_png(), 422, "invalid_options"),
        ("dpr=9", small_png(), 422, "invalid_options"),
        ("format=tiff", small_png(), 422, "invalid_options"),
        ("gravity=up", small_png(), 422, "invalid_options"),
        ("widht=300", small_png(), 400, "bad_request"),
        ("", b"not an image at all".to_vec(), 415, "unsupported_format"),
        ("", truncated_jpeg(), 422, "malformed_image"),
        ("", png_bomb(), 422, "image_too_large"),
        ("format=png&animated=maybe", small_png(), 422, "invalid_options"),
        (
            "width=2000&height=2000&enlarge=true&format=avif",
            small_png(),
            422,
            "invalid_options",
        ),
    ];
    for (query, body, status, code) in cases {
        let host = post(&c, &s.at(&format!("/v1/thumbnail?{query}")), None, body.clone()).await;
        let host_problem = expect_problem(host, status, code).await;
        for edge in &edges {
            let resp = post(&c, &format!("{}/thumbnail?{query}", edge.url), None, body.clone()).await;
            let what = format!("{query:?} at {}", edge.runtime);
            assert_eq!(resp.status().as_u16(), status, "{what}");
            assert_eq!(
                resp.headers()["content-type"],
                "application/problem+json",
                "{what}"
            );
            let p: Value = resp.json().await.unwrap();
            assert_eq!(p["code"], code, "{what}: {p} (host: {host_problem})");
            assert_eq!(p["status"], status, "{what}: {p}");
            assert_eq!(p["type"], host_problem["type"], "{what}");
            let code = edgethumb::codes::Code::parse(p["code"].as_str().unwrap());
            assert!(code.is_some_and(|c| c.status() == status), "{what}: {p}");
        }
    }
}

/// Every code the edge component's source answers with is a `Code` variant: it names codes
/// only as `Code::...`, never as text.
#[test]
fn the_edge_names_codes_only_as_variants() {
    let dir = common::node::repo_root().join("edge-component/src");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for code in edgethumb::codes::Code::ALL {
            assert!(
                !text.contains(&format!("\"{}\"", code.as_str())),
                "{} names the code {code} as a string; use Code::{code:?}",
                path.display()
            );
        }
        for (i, _) in text.match_indices("Reply::problem(") {
            let arg = text[i + "Reply::problem(".len()..].trim_start();
            assert!(
                arg.starts_with("Code::") || arg.starts_with("e.code()") || arg.starts_with("code"),
                "{}: Reply::problem takes a Code: {}",
                path.display(),
                &arg[..arg.len().min(40)]
            );
        }
    }
}

/// `auto` never fails where another format would do, and an explicit format is never swapped:
/// an animation asked as WebP is an animated WebP with the source's frames and timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_and_explicit_formats_are_kept() {
    use image::AnimationDecoder;
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path(), &[]).await;
    let c = client();
    // A client that reads AVIF (and not WebP), with a box over AVIF's 2 megapixels: JPEG, or
    // PNG for alpha, where format=avif is refused with the reason.
    let big = "width=2000&height=1500&fit=fill&enlarge=true";
    for (name, made) in [(SMALL, "image/jpeg"), (ALPHA, "image/png")] {
        let url = s.at(&format!("/v1/thumbnail?{big}"));
        let resp = post(&c, &url, AVIF_ONLY, image(name)).await;
        let body = image_answer(resp, &format!("{name} auto over 2 MP"), made).await;
        let decoded = image::load_from_memory(&body).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (2000, 1500));
    }
    let resp = post(
        &c,
        &s.at(&format!("/v1/thumbnail?{big}&format=avif")),
        AVIF_ONLY,
        image(SMALL),
    )
    .await;
    let p = expect_problem(resp, 422, "invalid_options").await;
    assert!(p["detail"].as_str().unwrap().contains("2"), "{p}");
    // animated=true&format=webp: an animated WebP, frames and delays as the GIF's.
    let gif = image(ANIM);
    let source: Vec<_> = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&gif))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    let resp = post(
        &c,
        &s.at("/v1/thumbnail?animated=true&format=webp&width=60"),
        None,
        gif.clone(),
    )
    .await;
    let webp = image_answer(resp, "animated WebP", "image/webp").await;
    let frames: Vec<_> = image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(&webp))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), source.len(), "frames kept");
    for (a, b) in frames.iter().zip(&source) {
        assert_eq!(
            a.delay().numer_denom_ms(),
            b.delay().numer_denom_ms(),
            "delays kept"
        );
    }
    // PNG holds one frame: refused with what to ask instead, never swapped for a GIF.
    let resp = post(
        &c,
        &s.at("/v1/thumbnail?animated=true&format=png&width=60"),
        None,
        gif,
    )
    .await;
    let p = expect_problem(resp, 422, "invalid_options").await;
    assert!(p["detail"].as_str().unwrap().contains("webp"), "{p}");
}
