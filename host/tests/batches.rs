//! `/v1/batches` end to end: a form with several files and a JSON list of URLs, progress
//! until every job is done, the zip of the thumbnails, the limits, and ownership by API key.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::origin::Origin;
use common::server::*;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 40]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .unwrap();
    out
}

fn form(files: &[(&str, Vec<u8>)]) -> Form {
    files.iter().fold(
        Form::new().text("width", "50").text("height", "50"),
        |f, (name, data)| f.part("file", Part::bytes(data.clone()).file_name(name.to_string())),
    )
}

/// Polls a batch until `finished`, with a deadline.
async fn wait_batch(c: &reqwest::Client, url: &str, key: Option<&str>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut req = c.get(url);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let batch: Value = req.send().await.unwrap().json().await.unwrap();
        if batch["finished"] == true {
            return batch;
        }
        assert!(Instant::now() < deadline, "batch not finished: {batch}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_batch_reports_progress_and_zips_its_thumbnails() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--workers", "2"]).await;
    let c = client();
    let files = [
        ("wide.png", png(200, 100)),
        ("broken.jpg", common::truncated_jpeg()),
        ("notes.txt", b"not an image".to_vec()),
        ("../tall.png", png(60, 120)),
    ];
    let resp = c
        .post(s.at("/v1/batches"))
        .multipart(form(&files))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let batch: Value = resp.json().await.unwrap();
    assert_eq!(location, format!("/v1/batches/{}", batch["id"].as_str().unwrap()));
    assert_eq!(batch["total"], 4, "{batch}");
    let names: Vec<&str> = batch["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["wide.png", "broken.jpg", "notes.txt", "../tall.png"]);

    let done = wait_batch(&c, &s.at(&location), None).await;
    assert_eq!(
        (
            done["done"].as_u64(),
            done["succeeded"].as_u64(),
            done["failed"].as_u64()
        ),
        (Some(4), Some(2), Some(2)),
        "{done}"
    );
    assert_eq!(
        done["jobs"][1]["job"]["error"]["code"], "malformed_image",
        "{done}"
    );
    assert_eq!(
        done["jobs"][2]["job"]["error"]["code"], "unsupported_format",
        "{done}"
    );
    assert_eq!(done["jobs"][0]["job"]["result"]["width"], 50, "{done}");

    let resp = c.get(s.at(&format!("{location}/archive"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let zip_bytes = resp.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.to_vec())).unwrap();
    let mut entries: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    entries.sort();
    // The default format, auto, is JPEG for these opaque images in a batch.
    assert_eq!(entries, ["001-wide.jpeg", "004-tall.jpeg", "batch.json"]);
    for (entry, size) in [("001-wide.jpeg", (50, 25)), ("004-tall.jpeg", (25, 50))] {
        let mut data = Vec::new();
        zip.by_name(entry).unwrap().read_to_end(&mut data).unwrap();
        let img = image::load_from_memory(&data).unwrap();
        assert_eq!((img.width(), img.height()), size, "{entry}");
    }
    let mut manifest = String::new();
    zip.by_name("batch.json")
        .unwrap()
        .read_to_string(&mut manifest)
        .unwrap();
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["failed"], 2, "{manifest}");
    s.stop().await;
}

async fn batches_obey_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        dir.path(),
        &[
            "--workers",
            "0",
            "--max-batch-items",
            "2",
            "--max-body-bytes",
            "20000",
        ],
    )
    .await;
    let c = client();
    let post = |f: Form| c.post(s.at("/v1/batches")).multipart(f).send();
    let three = [
        ("a.png", png(10, 10)),
        ("b.png", png(11, 10)),
        ("c.png", png(12, 10)),
    ];
    let p = expect_problem(post(form(&three)).await.unwrap(), 422, "invalid_options").await;
    assert!(p["detail"].as_str().unwrap().contains("at most 2"), "{p}");
    let big = [("big.png", vec![0x89u8; 30_000])];
    expect_problem(post(form(&big)).await.unwrap(), 413, "payload_too_large").await;
    expect_problem(post(form(&[])).await.unwrap(), 400, "bad_request").await;
    let bad = Form::new()
        .text("width", "0")
        .part("file", Part::bytes(png(10, 10)).file_name("a.png"));
    expect_problem(post(bad).await.unwrap(), 422, "invalid_options").await;
    // Nothing was queued by the refused batches.
    let jobs = get_json(&c, s.at("/v1/jobs")).await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "{jobs}");
    let resp = c
        .post(s.at("/v1/batches"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    expect_problem(resp, 415, "unsupported_format").await;
    let resp = c
        .get(s.at("/v1/batches/6a1f0e8e-0d1c-4a53-9a55-1b2b3c4d5e6f"))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 404, "batch_not_found").await;
    s.stop().await;
}

async fn a_batch_of_urls_belongs_to_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(png(80, 40)).await;
    let s = TestServer::start(
        dir.path(),
        &[
            "--api-key",
            "key-one",
            "--api-key",
            "key-two",
            "--fetch-allow",
            "127.0.0.1",
        ],
    )
    .await;
    let c = client();
    let body =
        json!({ "urls": [origin.url("/img.jpg"), origin.url("/text")], "width": 40, "format": "jpeg" });
    let resp = c.post(s.at("/v1/batches")).json(&body).send().await.unwrap();
    expect_problem(resp, 401, "unauthorized").await;
    let resp = c
        .post(s.at("/v1/batches"))
        .bearer_auth("key-one")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let batch: Value = resp.json().await.unwrap();
    let url = s.at(batch["links"]["self"].as_str().unwrap());
    assert_eq!(batch["jobs"][0]["name"], "img.jpg");
    let done = wait_batch(&c, &url, Some("key-one")).await;
    assert_eq!(
        (done["succeeded"].as_u64(), done["failed"].as_u64()),
        (Some(1), Some(1)),
        "{done}"
    );
    assert_eq!(done["jobs"][0]["job"]["result"]["format"], "jpeg");
    // Another key sees neither the batch nor its archive.
    let resp = c.get(&url).bearer_auth("key-two").send().await.unwrap();
    expect_problem(resp, 404, "batch_not_found").await;
    let resp = c
        .get(format!("{url}/archive"))
        .bearer_auth("key-two")
        .send()
        .await
        .unwrap();
    expect_problem(resp, 404, "batch_not_found").await;
    s.stop().await;
}

both_backends!(
    a_batch_reports_progress_and_zips_its_thumbnails,
    batches_obey_the_limits,
    a_batch_of_urls_belongs_to_its_key,
);
