//! The pages in a real browser: headless Chromium (Debian's `/usr/bin/chromium`, or
//! `$CHROMIUM`) driven by Playwright (`playwright-core`, pinned in scripts/browser). Only
//! loopback pages load: the scripts abort and report any other request.
//!
//! - `/`: an image is uploaded through the page, its thumbnail appears at the right size, and
//!   its JSON opens; the screenshot is kept in `target/browser/dashboard.png`.
//! - `/docs`: Swagger UI renders its operations with every request on loopback.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::node::{ensure_npm_packages, repo_root, run_bounded};
use common::server::*;
use serde_json::Value;

const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);

fn artefacts() -> PathBuf {
    let dir = repo_root().join("target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "Chromium not found at {path}: install Debian's chromium (.ci/run does) or set CHROMIUM"
    );
    path
}

/// Runs a script of scripts/browser; its one-line JSON summary.
async fn run_script(script: &str, args: Vec<String>) -> Value {
    let chromium = chromium();
    let script = repo_root().join("scripts/browser").join(script);
    let out = tokio::task::spawn_blocking(move || {
        run_bounded(
            Command::new("node")
                .arg(&script)
                .args(&args)
                .env("CHROMIUM", chromium),
            BROWSER_TIMEOUT,
            &script.display().to_string(),
        )
    })
    .await
    .unwrap();
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no summary in {out}"));
    serde_json::from_str(line).unwrap()
}

fn assert_loopback_only(summary: &Value) {
    assert_eq!(summary["non_loopback"], serde_json::json!([]), "{summary}");
    let requests = summary["requests"].as_array().expect("the requests are recorded");
    assert!(!requests.is_empty(), "{summary}");
    for url in requests {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:")
                || url.starts_with("blob:http://127.0.0.1:")
                || url.starts_with("data:"),
            "a request left loopback: {url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_uploads_an_image_and_shows_its_thumbnail() {
    ensure_npm_packages("browser", &["playwright-core"]);
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path(), &[]).await;
    let image = common::corpus_dir().join("photos/coffee-12mp.jpg");
    let shot = artefacts().join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let args = [
        "--base",
        &s.url,
        "--image",
        image.to_str().unwrap(),
        "--width",
        "64",
        "--height",
        "64",
        "--expect-width",
        "64",
        "--expect-height",
        "43",
        "--screenshot",
        shot.to_str().unwrap(),
    ];
    let summary = run_script("dashboard.mjs", args.iter().map(|a| a.to_string()).collect()).await;
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(
        (summary["width"].as_u64(), summary["height"].as_u64()),
        (Some(64), Some(43))
    );
    assert_loopback_only(&summary);
    // The job the page made is a real one, made by the server.
    let id = summary["job"].as_str().unwrap();
    let job = get_json(&client(), s.at(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["width"], 64, "{job}");
    let png = std::fs::read(&shot).expect("the screenshot is kept");
    assert!(image::load_from_memory(&png).unwrap().width() >= 800);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_render_offline() {
    ensure_npm_packages("browser", &["playwright-core"]);
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path(), &["--workers", "0"]).await;
    let shot = artefacts().join("docs.png");
    let args = ["--base", &s.url, "--screenshot", shot.to_str().unwrap()];
    let summary = run_script("docs.mjs", args.iter().map(|a| a.to_string()).collect()).await;
    assert_eq!(summary["ok"], true, "{summary}");
    assert_loopback_only(&summary);
    s.stop().await;
}
