//! The pages in a real browser: headless Chromium (Debian's `/usr/bin/chromium`, or
//! `$CHROMIUM`) driven by Playwright (`playwright-core`, pinned in scripts/browser). Only
//! loopback pages load: the scripts abort and report any other request.
//!
//! - `/`: the option controls are the options of `/openapi.json`, each at its default; an
//!   animation is uploaded with every option set to another value, its thumbnail appears at
//!   the right size, its JSON opens, and the job carries every value; an image URL is submitted
//!   too, and the detail shows it. Screenshots in `target/browser/dashboard*.png`.
//! - `/docs`: Swagger UI renders its operations with every request on loopback, jobs first,
//!   and "Try it out" on `POST /v1/jobs` gives 202 with a file chosen and nothing else
//!   touched, and with the JSON example as it comes.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::node::{ensure_npm_packages, repo_root, run_bounded};
use common::origin::Origin;
use common::server::*;
use serde_json::{Value, json};

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

/// Fields of a submission body that are not thumbnail options.
const NOT_OPTIONS: [&str; 3] = ["file", "url", "callback_url"];

/// The thumbnail options `/openapi.json` documents for `POST /v1/jobs`, in the order of its
/// query parameters, after checking that its form body has the same ones; and the document.
async fn documented_options(s: &TestServer) -> (Vec<String>, Value) {
    let doc = get_json(&client(), s.at("/openapi.json")).await;
    let op = &doc["paths"]["/v1/jobs"]["post"];
    let params: Vec<String> = op["parameters"]
        .as_array()
        .expect("POST /v1/jobs has parameters")
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap().to_string())
        .filter(|n| !NOT_OPTIONS.contains(&n.as_str()))
        .collect();
    let mut fields: Vec<String> = form_schema(&doc)["properties"]
        .as_object()
        .expect("the form body has properties")
        .keys()
        .filter(|n| !NOT_OPTIONS.contains(&n.as_str()))
        .cloned()
        .collect();
    fields.sort();
    let mut sorted = params.clone();
    sorted.sort();
    assert_eq!(sorted, fields, "the query parameters and the form fields differ");
    assert!(params.len() >= 9, "{params:?}");
    (params, doc)
}

/// `POST /v1/jobs`'s multipart/form-data body schema, `$ref` followed.
fn form_schema(doc: &Value) -> &Value {
    let schema = &doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"];
    match schema["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{r} is not in the document")),
        None => schema,
    }
}

/// Every option at a value other than its default, chosen so that each has an effect the
/// job's JSON shows: both sides (so `fit` shows), `cover` (so `gravity` shows), a lossy format
/// (so `quality` shows), a `dpr` other than 1, and `animated` on an animation made as WebP.
/// Each as the dashboard's control takes it and as the job's JSON gives it back.
const EVERY_OPTION: [(&str, &str); 9] = [
    ("width", "120"),
    ("height", "80"),
    ("fit", "cover"),
    ("format", "webp"),
    ("quality", "55"),
    ("enlarge", "true"),
    ("dpr", "1.5"),
    ("gravity", "north-east"),
    ("animated", "true"),
];

fn expected_json(name: &str, value: &str) -> Value {
    match name {
        "width" | "height" | "quality" => json!(value.parse::<u64>().unwrap()),
        "dpr" => json!(value.parse::<f64>().unwrap()),
        "enlarge" | "animated" => json!(value == "true"),
        _ => json!(value),
    }
}

fn set_args(settings: &[(&str, &str)]) -> Vec<String> {
    settings
        .iter()
        .flat_map(|(n, v)| ["--set".to_string(), format!("{n}={v}")])
        .collect()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The form fields the page posted, as (name, value).
fn sent_fields(summary: &Value) -> Vec<(String, String)> {
    summary["sent"]
        .as_array()
        .unwrap_or_else(|| panic!("the posted form is reported: {summary}"))
        .iter()
        .map(|f| {
            (
                f[0].as_str().unwrap().to_string(),
                f[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_submits_every_option_and_shows_the_thumbnail() {
    ensure_npm_packages("browser", &["playwright-core"]);
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path(), &[]).await;
    let (options, doc) = documented_options(&s).await;
    // A 100x100 animated GIF: enlarged to cover 120x80 at dpr 1.5, 180x120.
    let image = common::corpus_dir().join("formats/gif/anim/border_touching_layers.gif");
    let shot = artefacts().join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let mut args = strings(&[
        "--base",
        &s.url,
        "--image",
        image.to_str().unwrap(),
        "--expect-width",
        "180",
        "--expect-height",
        "120",
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    args.extend(set_args(&EVERY_OPTION));
    let summary = run_script("dashboard.mjs", args).await;
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(
        (summary["width"].as_u64(), summary["height"].as_u64()),
        (Some(180), Some(120))
    );
    assert_loopback_only(&summary);

    // The controls are the document's options, in its order, named and labelled by them, each
    // starting at the form body's default (empty where there is none).
    let controls = summary["controls"].as_array().expect("the controls are reported");
    let names: Vec<&str> = controls.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, options, "{summary}");
    let form = form_schema(&doc);
    for c in controls {
        let name = c["name"].as_str().unwrap();
        assert_eq!(c["id"], name, "{c}");
        assert_eq!(c["label"], name, "{c}");
        let schema = &form["properties"][name];
        assert_eq!(c["title"], schema["description"], "{c}");
        let default = &schema["default"];
        match (c["tag"].as_str(), c["type"].as_str()) {
            (_, Some("checkbox")) => assert_eq!(c["checked"], default.as_bool().unwrap_or(false), "{c}"),
            (Some("select"), _) => {
                assert_eq!(c["choices"], schema["enum"], "{c}");
                assert_eq!(c["value"], *default, "{c}");
            }
            (_, Some("number")) => {
                let step = if schema["type"] == "integer" { "1" } else { "any" };
                assert_eq!(c["step"], step, "{c}");
                let number = |v: &Value| v.as_str().and_then(|t| t.parse::<f64>().ok());
                assert_eq!(number(&c["min"]), schema["minimum"].as_f64(), "{c}");
                assert_eq!(number(&c["max"]), schema["maximum"].as_f64(), "{c}");
                match default {
                    Value::Null => assert_eq!(
                        (&c["value"], &c["placeholder"]),
                        (&json!(""), &json!("auto")),
                        "{c}"
                    ),
                    d => assert_eq!(number(&c["value"]), d.as_f64(), "{c}"),
                }
            }
            _ => assert_eq!(c["value"], default.as_str().unwrap_or(""), "{c}"),
        }
    }
    let control = |name: &str| controls.iter().find(|c| c["name"] == name).unwrap();
    assert_eq!(control("format")["value"], "auto", "format starts at auto");
    assert_eq!(
        (&control("width")["value"], &control("height")["value"]),
        (&json!(""), &json!(""))
    );

    // Every control was set, to a value other than its first, and the page sent exactly those.
    let mut set: Vec<&str> = EVERY_OPTION.iter().map(|(n, _)| *n).collect();
    set.sort();
    let mut all = names.clone();
    all.sort();
    assert_eq!(set, all, "EVERY_OPTION must set every option the dashboard shows");
    for (name, value) in EVERY_OPTION {
        let c = control(name);
        let initial = if c["type"] == "checkbox" {
            c["checked"].to_string()
        } else {
            c["value"].as_str().unwrap().to_string()
        };
        assert_ne!(initial, value, "{name} is set to its default");
    }
    let mut expected: Vec<(String, String)> = EVERY_OPTION
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    expected.push(("file".into(), "<file border_touching_layers.gif>".into()));
    assert_eq!(sent_fields(&summary), expected, "{summary}");

    // The job the page made is a real one, made by the server with every one of those values.
    let id = summary["job"].as_str().unwrap();
    let job = get_json(&client(), s.at(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    for (name, value) in EVERY_OPTION {
        assert_eq!(
            job["options"][name],
            expected_json(name, value),
            "{name} in {job}"
        );
    }
    assert_eq!(
        (
            &job["result"]["width"],
            &job["result"]["height"],
            &job["result"]["format"]
        ),
        (&json!(180), &json!(120), &json!("webp")),
        "{job}"
    );
    let png = std::fs::read(&shot).expect("the screenshot is kept");
    assert!(image::load_from_memory(&png).unwrap().width() >= 800);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_submits_an_image_url_and_shows_it() {
    ensure_npm_packages("browser", &["playwright-core"]);
    let photo = std::fs::read(common::corpus_dir().join("photos/coffee-12mp.jpg")).unwrap();
    let origin = Origin::start(photo).await;
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path(), &["--fetch-allow", "127.0.0.1"]).await;
    let url = origin.url("/img.jpg");
    let shot = artefacts().join("dashboard-url.png");
    let mut args = strings(&[
        "--base",
        &s.url,
        "--url",
        &url,
        "--expect-width",
        "64",
        "--expect-height",
        "43",
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    args.extend(set_args(&[("width", "64"), ("height", "64"), ("format", "png")]));
    let summary = run_script("dashboard.mjs", args).await;
    assert_eq!(summary["ok"], true, "{summary}");
    assert_loopback_only(&summary);
    // The page sent the URL and no file; the options that are empty or at their default as
    // checkboxes were not sent.
    let sent = sent_fields(&summary);
    assert!(sent.contains(&("url".into(), url.clone())), "{sent:?}");
    assert!(
        !sent
            .iter()
            .any(|(n, _)| n == "file" || n == "enlarge" || n == "animated"),
        "{sent:?}"
    );
    assert!(
        summary["detail_source"].as_str().unwrap().contains(&url),
        "{summary}"
    );
    let id = summary["job"].as_str().unwrap();
    let job = get_json(&client(), s.at(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["source"]["url"], url, "{job}");
    assert_eq!(
        (
            &job["result"]["width"],
            &job["result"]["height"],
            &job["result"]["format"]
        ),
        (&json!(64), &json!(43), &json!("png")),
        "{job}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_render_offline_and_try_it_out_submits() {
    ensure_npm_packages("browser", &["playwright-core"]);
    let data = tempfile::tempdir().unwrap();
    // No workers: a submission stays queued, which is all a 202 needs.
    let s = TestServer::start(data.path(), &["--workers", "0"]).await;
    let doc = get_json(&client(), s.at("/openapi.json")).await;
    let png = data.path().join("small.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb([240, 120, 20]))
        .save(&png)
        .unwrap();
    let shot = artefacts().join("docs.png");
    let args = strings(&[
        "--base",
        &s.url,
        "--screenshot",
        shot.to_str().unwrap(),
        "--try-submit",
        png.to_str().unwrap(),
    ]);
    let summary = run_script("docs.mjs", args).await;
    assert_eq!(summary["ok"], true, "{summary}");
    assert_loopback_only(&summary);

    // Jobs first: the document's tag list decides Swagger UI's order, and every tag is in it.
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .expect("the document lists its tags")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags.first(), Some(&"jobs"), "{tags:?}");
    assert_eq!(summary["tags"], json!(tags), "{summary}");

    // "Try it out" with a form: a file chosen, nothing else touched.
    let form = &summary["try_form"];
    assert_eq!(
        (&form["status"], &form["network_status"]),
        (&json!(202), &json!(202)),
        "{form}"
    );
    let fields = form["sent_fields"].as_array().unwrap_or_else(|| panic!("{form}"));
    assert!(
        fields.contains(&json!(["file", "<file small.png>"])),
        "the file was sent: {form}"
    );
    // With the JSON example as it comes: the example is what was sent.
    let example = &doc["components"]["schemas"]["JsonSubmission"]["examples"][0];
    let sent: Value = serde_json::from_str(summary["try_json"]["sent_body"].as_str().unwrap()).unwrap();
    assert_eq!(&sent, example, "{summary}");
    assert_eq!(summary["try_json"]["status"], 202, "{summary}");
    // Both made jobs.
    for attempt in [form, &summary["try_json"]] {
        let id = attempt["job"].as_str().unwrap();
        let job = get_json(&client(), s.at(&format!("/v1/jobs/{id}"))).await;
        assert_eq!(job["id"], id, "{job}");
    }
    s.stop().await;
}
