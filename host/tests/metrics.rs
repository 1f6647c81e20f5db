//! `/metrics` after real jobs: scraped, parsed, and the right series moved. One test in its
//! own binary, because the metrics are process-wide and other tests' jobs would move them.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::origin::Origin;
use common::server::*;
use common::*;
use edgethumb::jobs::worker::Step;
use serde_json::json;

/// One sample of the text exposition format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the exposition format (comments skipped; label values unescaped).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").unwrap();
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next().unwrap() {
                            (_, '\\') => value.push(chars.next().unwrap().1),
                            (i, '"') => break i,
                            (_, c) => value.push(c),
                        }
                    };
                    labels.insert(key.to_string(), value);
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name.to_string(), labels)
            }
        };
        samples.push(Sample { name, labels, value });
    }
    samples
}

struct Scrape(Vec<Sample>, String);

impl Scrape {
    async fn of(c: &reqwest::Client, s: &TestServer) -> Scrape {
        let resp = c.get(s.at("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
        let text = resp.text().await.unwrap();
        Scrape(parse(&text), text)
    }

    /// The sum of the samples of `name` that carry all of `labels` (0 when none do).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

async fn step(s: &TestServer) {
    assert!(matches!(s.state.jobs.step().await.unwrap(), Step::Ran(..)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_real_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(small_png()).await;
    let s = TestServer::start(dir.path(), &["--workers", "0", "--fetch-allow", "127.0.0.1"]).await;
    let c = client();
    let before = Scrape::of(&c, &s).await;
    for (name, help) in edgethumb::telemetry::DESCRIPTIONS {
        assert!(before.1.contains(&format!("# HELP {name} {help}")) || before.get(name, &[]) == 0.0);
    }

    let good = post_image(&c, &s.at("/v1/jobs"), "image/png", small_png()).await;
    let hook =
        json!({ "image_base64": base64_of(&common::truncated_jpeg()), "callback_url": origin.url("/hook") });
    let resp = c.post(s.at("/v1/jobs")).json(&hook).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let queued = Scrape::of(&c, &s).await;
    assert_eq!(queued.get("edgethumb_queue_depth", &[]), 2.0);
    assert!(queued.get("edgethumb_queue_oldest_age_seconds", &[]) >= 0.0);
    assert_eq!(queued.get("edgethumb_workers", &[]), 0.0);

    step(&s).await;
    step(&s).await;
    assert_eq!(wait_done(&c, &s.url, &good, None).await["status"], "succeeded");
    // The same image and options again: answered from the dedup cache.
    let copy = post_image(&c, &s.at("/v1/jobs"), "image/png", small_png()).await;
    assert_eq!(wait_done(&c, &s.url, &copy, None).await["status"], "succeeded");
    c.get(s.at("/no/such/route")).send().await.unwrap();
    // The failed job's webhook (the delivery task runs even with no workers).
    let deadline = Instant::now() + Duration::from_secs(20);
    while origin.state.deliveries.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no webhook delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A job killed at its deadline, on a host with a 1 ms one.
    let dir2 = tempfile::tempdir().unwrap();
    let slow = TestServer::start(dir2.path(), &["--workers", "0", "--deadline", "1ms"]).await;
    let photo = photo("coffee-12mp.jpg");
    post_image(&c, &slow.at("/v1/jobs"), "image/jpeg", photo).await;
    step(&slow).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = Scrape::of(&c, &s).await;
        let delivered = after.get("edgethumb_webhook_deliveries_total", &[("outcome", "delivered")]);
        if delivered >= 1.0 || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let moved = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let posted = [("method", "POST"), ("route", "/v1/jobs"), ("status", "202")];
    assert_eq!(moved("edgethumb_http_requests_total", &posted), 4.0);
    assert_eq!(
        moved(
            "edgethumb_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    let latency = [("method", "POST"), ("route", "/v1/jobs")];
    assert_eq!(
        moved("edgethumb_http_request_duration_seconds_count", &latency),
        4.0
    );
    assert!(moved("edgethumb_http_request_duration_seconds_sum", &latency) > 0.0);
    assert_eq!(moved("edgethumb_jobs_submitted_total", &[]), 4.0);
    assert_eq!(moved("edgethumb_dedup_hits_total", &[]), 1.0);
    assert_eq!(
        moved("edgethumb_jobs_finished_total", &[("status", "succeeded")]),
        1.0
    );
    let malformed = [("status", "failed"), ("code", "malformed_image")];
    assert_eq!(moved("edgethumb_jobs_finished_total", &malformed), 1.0);
    let late = [("status", "failed"), ("code", "deadline_exceeded")];
    assert_eq!(moved("edgethumb_jobs_finished_total", &late), 1.0);
    assert_eq!(
        moved("edgethumb_sandbox_kills_total", &[("kind", "deadline")]),
        1.0
    );
    for stage in ["queue_wait", "store", "total"] {
        let count = moved("edgethumb_job_stage_duration_seconds_count", &[("stage", stage)]);
        assert_eq!(count, 3.0, "{stage}");
    }
    assert_eq!(
        moved(
            "edgethumb_job_stage_duration_seconds_count",
            &[("stage", "sandbox")]
        ),
        3.0
    );
    assert_eq!(
        moved("edgethumb_webhook_deliveries_total", &[("outcome", "delivered")]),
        1.0
    );
    assert_eq!(after.get("edgethumb_queue_depth", &[]), 0.0);
    let digest = s.state.jobs.components.active().digest().to_string();
    assert_eq!(after.get("edgethumb_component_info", &[("digest", &digest)]), 1.0);
    assert!(after.get("edgethumb_sandbox_memory_budget_bytes", &[]) > 0.0);
    // A histogram's buckets are cumulative and end with +Inf = count.
    let inf = after.get(
        "edgethumb_job_stage_duration_seconds_bucket",
        &[("stage", "total"), ("le", "+Inf")],
    );
    assert_eq!(
        inf,
        after.get(
            "edgethumb_job_stage_duration_seconds_count",
            &[("stage", "total")]
        )
    );
    slow.stop().await;
    s.stop().await;
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
