//! Image URLs behind the SSRF guard, and signed webhooks. Every server contacted here is a
//! loopback server the test started; refusals are checked by the origin's hit counter too, so
//! a broken guard would show up as a request, never as traffic leaving the machine.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::origin::Origin;
use common::server::*;
use common::*;
use hmac::Mac;
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn submit_url(c: &reqwest::Client, s: &TestServer, body: Value) -> Value {
    let resp = c.post(s.at("/v1/jobs")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
    resp.json().await.unwrap()
}

/// Uploads a small PNG whose webhook goes to `hook`; the job as the server answered it.
async fn upload_with_callback(c: &reqwest::Client, s: &TestServer, hook: &str) -> Value {
    let resp = c
        .post(s.at(&format!("/v1/jobs?callback_url={}", urlencode(hook))))
        .header("content-type", "image/png")
        .body(small_png())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    resp.json().await.unwrap()
}

async fn url_job(c: &reqwest::Client, s: &TestServer, url: &str) -> Value {
    let job = submit_url(c, s, json!({ "url": url })).await;
    wait_done(c, &s.url, job["id"].as_str().unwrap(), None).await
}

async fn an_allowed_url_is_fetched_and_thumbnailed() {
    let origin = Origin::start(photo("coffee-12mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--fetch-allow", "127.0.0.1"]).await;
    let c = client();
    let job = url_job(&c, &s, &origin.url("/img.jpg")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["source"]["url"], origin.url("/img.jpg"));
    assert_eq!(job["source"]["format"], "jpeg");
    assert_eq!(job["source"]["bytes"], origin.image().len());
    assert_eq!(
        (job["result"]["width"].as_u64(), job["result"]["height"].as_u64()),
        (Some(100), Some(67))
    );
    // The one-line GET form.
    let resp = c
        .get(s.at(&format!(
            "/v1/thumbnail?url={}&width=50&height=50",
            urlencode(&origin.url("/img.jpg"))
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let img = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (50, 33));
    // A replay uses the stored source; the origin is not asked again.
    let hits = origin.hits();
    let resp = c
        .post(s.at(&format!("/v1/jobs/{}/replay", job["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    let replay = wait_done(
        &c,
        &s.url,
        resp.json::<Value>().await.unwrap()["id"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(replay["status"], "succeeded", "{replay}");
    assert_eq!(origin.hits(), hits);
    s.stop().await;
}

/// `--fetch-sources` contacts only the listed hosts: a name not on the list is refused without
/// a lookup or a connection, even one that would resolve to an allowed address.
async fn only_listed_sources_are_contacted() {
    let origin = Origin::start(photo("astronaut-1mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--fetch-allow", "127.0.0.1", "--fetch-sources", "127.0.0.1"];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    let by_name = origin.url("/img.jpg").replace("127.0.0.1", "localhost");
    let job = url_job(&c, &s, &by_name).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "source_refused", "{job}");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains("--fetch-sources"), "{message}");
    assert_eq!(origin.hits(), 0, "a host not among the sources was contacted");
    let job = url_job(&c, &s, &origin.url("/img.jpg")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn loopback_in_every_spelling_is_refused_without_an_allow_rule() {
    let origin = Origin::start(photo("astronaut-1mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let p = origin.port();
    for url in [
        format!("http://127.0.0.1:{p}/img.jpg"),
        format!("http://127.0.0.2:{p}/img.jpg"),
        format!("http://localhost:{p}/img.jpg"),
        format!("http://[::1]:{p}/img.jpg"),
        format!("http://[::ffff:127.0.0.1]:{p}/img.jpg"),
        format!("http://2130706433:{p}/img.jpg"),
        format!("http://0.0.0.0:{p}/img.jpg"),
        format!("http://0x7f000001:{p}/img.jpg"),
    ] {
        let job = url_job(&c, &s, &url).await;
        assert_eq!(job["status"], "failed", "{url}: {job}");
        assert_eq!(job["error"]["code"], "source_refused", "{url}: {job}");
        assert_eq!(job["attempts"], 1, "a refusal is not retried: {job}");
        let message = job["error"]["message"].as_str().unwrap();
        assert!(message.contains("--fetch-allow"), "{job}");
        if url.contains("localhost") {
            // How an internal name resolves is not the client's business (issue 12, finding 8).
            assert!(
                !message.contains("127.0.0.1") && !message.contains("::1"),
                "{job}"
            );
        }
    }
    assert_eq!(origin.hits(), 0, "a refused URL must never be contacted");
    for url in [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "ftp://127.0.0.1/x.jpg",
    ] {
        let resp = c
            .post(s.at("/v1/jobs"))
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap();
        let p = expect_problem(resp, 422, "source_refused").await;
        assert!(p["detail"].as_str().unwrap().contains("scheme"), "{p}");
    }
    let resp = c
        .get(s.at("/v1/thumbnail?url=file:///etc/passwd"))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 422, "source_refused").await;
    s.stop().await;
}

async fn a_redirect_to_a_refused_address_is_refused() {
    let origin = Origin::start(photo("astronaut-1mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--fetch-allow", "127.0.0.1/32"]).await;
    let c = client();
    let target = format!("http://127.0.0.2:{}/img.jpg", origin.port());
    let job = url_job(
        &c,
        &s,
        &origin.url(&format!("/redirect?to={}", urlencode(&target))),
    )
    .await;
    assert_eq!(job["error"]["code"], "source_refused", "{job}");
    assert_eq!(origin.hits(), 1, "only the redirect itself was fetched");
    // A redirect to an allowed address is followed.
    let job = url_job(
        &c,
        &s,
        &origin.url(&format!("/redirect?to={}", urlencode(&origin.url("/img.jpg")))),
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    s.stop().await;
}

async fn size_time_status_and_content_failures_have_their_codes() {
    let origin = Origin::start(photo("astronaut-1mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        dir.path(),
        &[
            "--fetch-allow",
            "127.0.0.1",
            "--fetch-max-bytes",
            "300000",
            "--fetch-timeout",
            "1s",
            "--retry-backoff",
            "50ms",
            "--max-attempts",
            "2",
        ],
    )
    .await;
    let c = client();
    let started = Instant::now();
    let job = url_job(&c, &s, &origin.url("/huge")).await;
    assert_eq!(job["error"]["code"], "source_too_large", "{job}");
    assert_eq!(job["attempts"], 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an endless body must be cut at the limit"
    );
    // A timeout is worth retrying: two attempts, then failed.
    let job = url_job(&c, &s, &origin.url("/slow")).await;
    assert_eq!(job["error"]["code"], "source_timeout", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    // 4xx is not.
    let job = url_job(&c, &s, &origin.url("/missing.jpg")).await;
    assert_eq!(job["error"]["code"], "source_http_status", "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("404"), "{job}");
    assert_eq!(job["attempts"], 1);
    let job = url_job(&c, &s, &origin.url("/text")).await;
    assert_eq!(job["error"]["code"], "not_an_image", "{job}");
    // The GET form: an error status by default, a placeholder on request.
    let missing = urlencode(&origin.url("/missing.jpg"));
    let resp = c
        .get(s.at(&format!("/v1/thumbnail?url={missing}")))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 422, "source_http_status").await;
    let resp = c
        .get(s.at(&format!(
            "/v1/thumbnail?url={missing}&width=80&height=60&on_error=placeholder"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-edgethumb-error"], "source_http_status");
    let img = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (80, 60));
    s.stop().await;
}

/// Checks a delivery's signature the way a receiver would, with its own HMAC.
fn verify(headers: &reqwest::header::HeaderMap, body: &[u8]) -> bool {
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

async fn wait_deliveries(origin: &Origin, n: usize, within: Duration) {
    let started = Instant::now();
    while origin.state.deliveries.lock().unwrap().len() < n {
        assert!(
            started.elapsed() < within,
            "fewer than {n} deliveries after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn each_finished_job_is_delivered_once_and_signed() {
    let origin = Origin::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        dir.path(),
        &["--fetch-allow", "127.0.0.1", "--webhook-secret", SECRET],
    )
    .await;
    let c = client();
    let hook = origin.url("/hook");
    let ok = upload_with_callback(&c, &s, &hook).await;
    let failed = submit_url(
        &c,
        &s,
        json!({ "url": origin.url("/text"), "callback_url": hook }),
    )
    .await;
    for job in [&ok, &failed] {
        wait_done(&c, &s.url, job["id"].as_str().unwrap(), None).await;
    }
    wait_deliveries(&origin, 2, Duration::from_secs(20)).await;
    // Once both jobs record their delivery as done, no further attempt can come.
    for job in [&ok, &failed] {
        let started = Instant::now();
        loop {
            let job: Value = get_json(&c, s.at(&format!("/v1/jobs/{}", job["id"].as_str().unwrap()))).await;
            if job["webhook"]["status"] == "delivered" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let deliveries = origin.state.deliveries.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 2, "exactly one delivery per job");
    let mut seen = Vec::new();
    for (headers, body) in &deliveries {
        assert!(verify(headers, body), "bad signature on {headers:?}");
        assert!(headers["webhook-id"].to_str().unwrap().starts_with("msg_"));
        let ts: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((now - ts).abs() < 60);
        let job: Value = serde_json::from_slice(body).unwrap();
        seen.push((
            job["id"].as_str().unwrap().to_string(),
            job["status"].as_str().unwrap().to_string(),
        ));
    }
    seen.sort();
    let mut want = vec![
        (ok["id"].as_str().unwrap().to_string(), "succeeded".to_string()),
        (failed["id"].as_str().unwrap().to_string(), "failed".to_string()),
    ];
    want.sort();
    assert_eq!(seen, want);
    // A tampered body does not verify.
    assert!(!verify(&deliveries[0].0, b"{}"));
    let job: Value = c
        .get(s.at(&format!("/v1/jobs/{}", ok["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["webhook"]["status"], "delivered", "{job}");
    assert_eq!(job["webhook"]["attempts"], 1);
    // Callbacks go through the guard too, and must be http(s).
    let resp = c
        .post(s.at("/v1/jobs?callback_url=file:///tmp/x"))
        .header("content-type", "image/png")
        .body(small_png())
        .send()
        .await
        .unwrap();
    expect_problem(resp, 422, "invalid_callback_url").await;
    s.stop().await;
}

async fn a_failing_receiver_gets_the_delivery_on_the_third_try() {
    let origin = Origin::start(vec![]).await;
    origin
        .state
        .fail_next
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        dir.path(),
        &[
            "--fetch-allow",
            "127.0.0.1",
            "--webhook-secret",
            SECRET,
            "--retry-backoff",
            "100ms",
        ],
    )
    .await;
    let c = client();
    let job = submit_url(
        &c,
        &s,
        json!({ "url": origin.url("/missing.jpg"), "callback_url": origin.url("/hook") }),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    wait_done(&c, &s.url, id, None).await;
    wait_deliveries(&origin, 3, Duration::from_secs(20)).await;
    let started = Instant::now();
    loop {
        let job: Value = get_json(&c, s.at(&format!("/v1/jobs/{id}"))).await;
        if job["webhook"]["status"] == "delivered" {
            assert_eq!(job["webhook"]["attempts"], 3, "{job}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deliveries = origin.state.deliveries.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 3);
    let ids: Vec<&str> = deliveries
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "retries keep the webhook-id: {ids:?}"
    );
    assert!(deliveries.iter().all(|(h, b)| verify(h, b)));
    s.stop().await;
}

async fn a_delivery_survives_a_restart_between_tries() {
    let origin = Origin::start(vec![]).await;
    origin
        .state
        .fail_next
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--fetch-allow",
        "127.0.0.1",
        "--webhook-secret",
        SECRET,
        "--retry-backoff",
        "2s",
    ];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    let job = upload_with_callback(&c, &s, &origin.url("/hook")).await;
    let id = job["id"].as_str().unwrap().to_string();
    wait_done(&c, &s.url, &id, None).await;
    wait_deliveries(&origin, 1, Duration::from_secs(20)).await;
    // The first try failed; stop before the second (due in ~2 s).
    s.stop().await;
    assert_eq!(origin.state.deliveries.lock().unwrap().len(), 1);
    let s = TestServer::start(dir.path(), &args).await;
    wait_deliveries(&origin, 2, Duration::from_secs(20)).await;
    let deliveries = origin.state.deliveries.lock().unwrap().clone();
    assert!(verify(&deliveries[1].0, &deliveries[1].1));
    assert_eq!(deliveries[0].0["webhook-id"], deliveries[1].0["webhook-id"]);
    let job: Value = serde_json::from_slice(&deliveries[1].1).unwrap();
    assert_eq!(job["id"], id.as_str());
    s.stop().await;
}

/// Jobs keep their URLs and listings return them, so a URL's length is capped at submission
/// (finding 1 of issue 12: 20 jobs with 4 MiB URLs made one listing answer 168 MB).
async fn overlong_urls_are_refused_at_submission() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    // Refused before any fetch: nothing is ever sent to this (closed) loopback port.
    let long = format!("http://127.0.0.1:9/{}.jpg", "a".repeat(5000));
    let check = |p: &Value| {
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains("4096"), "{p}");
        assert!(detail.len() < 200, "the detail must not echo the URL: {p}");
    };
    let resp = c
        .post(s.at("/v1/jobs"))
        .json(&json!({ "url": long }))
        .send()
        .await
        .unwrap();
    check(&expect_problem(resp, 422, "source_refused").await);
    let body = json!({ "url": "http://127.0.0.1:9/x.jpg", "callback_url": long });
    let resp = c.post(s.at("/v1/jobs")).json(&body).send().await.unwrap();
    check(&expect_problem(resp, 422, "invalid_callback_url").await);
    let resp = c
        .get(s.at(&format!("/v1/thumbnail?url={}", urlencode(&long))))
        .send()
        .await
        .unwrap();
    check(&expect_problem(resp, 422, "source_refused").await);
    let list: Value = c
        .get(s.at("/v1/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(0), "{list}");
    s.stop().await;
}

/// The lease is renewed while the source is fetched, so a fetch longer than the lease is not
/// taken for a dead worker (issue 12, finding 4: with a 2 s lease, an origin answering in 4 s
/// was fetched three times and the job failed `too_many_attempts`).
async fn a_fetch_longer_than_the_lease_happens_once() {
    let origin = Origin::start(photo("astronaut-1mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--fetch-allow",
        "127.0.0.1",
        "--lease",
        "2s",
        "--fetch-timeout",
        "8s",
        "--workers",
        "2",
    ];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    let url = format!("http://127.0.0.1:{}/after-4s.jpg", origin.port());
    let job = url_job(&c, &s, &url).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(origin.hits(), 1, "the source must be fetched once");
    s.stop().await;
}

/// Submits a job that fails fast (its source is a 404 on `origin`) and calls back `origin` at
/// `path`; returns its id once it has finished.
async fn failed_job_calling_back(c: &reqwest::Client, s: &TestServer, origin: &Origin, path: &str) -> String {
    let body = json!({ "url": origin.url("/missing.jpg"), "callback_url": origin.url(path) });
    let id = submit_url(c, s, body).await["id"].as_str().unwrap().to_string();
    wait_done(c, &s.url, &id, None).await;
    id
}

/// Webhooks are delivered several at a time, a few per receiver, so receivers that hang delay
/// only their own (issue 12, finding 3: one delivery loop, so four hanging callbacks held up
/// a fifth job's webhook for the length of their timeouts).
async fn a_hanging_receiver_delays_only_its_own_webhooks() {
    let hanging = Origin::start(vec![]).await;
    let good = Origin::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--fetch-allow", "127.0.0.1", "--fetch-timeout", "25s"];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    // Four calling back a receiver that never answers within the timeout.
    for _ in 0..4 {
        failed_job_calling_back(&c, &s, &hanging, "/slow").await;
    }
    failed_job_calling_back(&c, &s, &good, "/hook").await;
    wait_deliveries(&good, 1, Duration::from_secs(5)).await;
    s.stop().await;
}

/// A webhook attempt has its own, short timeout (`--webhook-timeout`, 10 s by default), not the
/// source fetch's: a receiver that does not answer is retried later like one that fails.
async fn a_webhook_attempt_times_out_on_its_own_clock() {
    let hanging = Origin::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--fetch-allow",
        "127.0.0.1",
        "--fetch-timeout",
        "25s",
        "--webhook-timeout",
        "1s",
    ];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    let id = failed_job_calling_back(&c, &s, &hanging, "/slow").await;
    let started = Instant::now();
    loop {
        let job = get_json(&c, s.at(&format!("/v1/jobs/{id}"))).await;
        if let Some(error) = job["webhook"]["last_error"].as_str() {
            assert!(error.contains("1s"), "{job}");
            assert_eq!(job["webhook"]["status"], "pending", "retried later: {job}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no attempt ended: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

/// Large placeholders are made off the async threads, two at a time, so a client asking for
/// many of them cannot stall the rest of the API (issue 12, finding 2: four clients looping on
/// 4096x4096 placeholders took `/healthz` from 2 ms to 1.2 s).
async fn large_placeholders_do_not_stall_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    // Refused at once (ftp), answered with a placeholder: three sizes, the last one twice.
    let widths = [4096u32, 4095, 4094, 4094];
    let asks = widths.iter().map(|w| {
        let url = s.at(&format!(
            "/v1/thumbnail?url=ftp://127.0.0.1/x.jpg&width={w}&height=4096&format=jpeg&on_error=placeholder"
        ));
        let c = c.clone();
        tokio::spawn(async move { c.get(url).send().await.unwrap() })
    });
    let asks: Vec<_> = asks.collect();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let resp = c.get(s.at("/healthz")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    for (ask, w) in asks.into_iter().zip(widths) {
        let resp = ask.await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-edgethumb-error"], "source_refused");
        let img = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), (w, 4096));
    }
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?}");
    s.stop().await;
}

/// One owner's waiting webhooks are capped (`--max-pending-webhooks`), so a client cannot fill
/// the delivery queue (issue 12, finding 3). Nothing here is ever fetched or called: no worker
/// runs, and the jobs stay queued.
async fn one_owner_cannot_pile_up_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--workers", "0", "--max-pending-webhooks", "2"];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    let with_callback =
        json!({ "url": "http://127.0.0.1:9/x.jpg", "callback_url": "http://127.0.0.1:9/hook" });
    for _ in 0..2 {
        submit_url(&c, &s, with_callback.clone()).await;
    }
    let resp = c
        .post(s.at("/v1/jobs"))
        .json(&with_callback)
        .send()
        .await
        .unwrap();
    let p = expect_problem(resp, 429, "too_many_webhooks").await;
    assert!(p["detail"].as_str().unwrap().contains('2'), "{p}");
    // Without a callback the same client is still served.
    submit_url(&c, &s, json!({ "url": "http://127.0.0.1:9/x.jpg" })).await;
    s.stop().await;
}

/// A queued job that is cancelled is finished for its receiver too: one signed delivery with
/// status `cancelled`.
async fn a_cancelled_job_is_delivered_as_cancelled() {
    let origin = Origin::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--workers",
        "0",
        "--fetch-allow",
        "127.0.0.1",
        "--webhook-secret",
        SECRET,
    ];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    let job = upload_with_callback(&c, &s, &origin.url("/hook")).await;
    let id = job["id"].as_str().unwrap();
    let resp = c.delete(s.at(&format!("/v1/jobs/{id}"))).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    wait_deliveries(&origin, 1, Duration::from_secs(20)).await;
    let (headers, body) = origin.state.deliveries.lock().unwrap()[0].clone();
    assert!(verify(&headers, &body));
    let delivered: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (delivered["id"].as_str(), delivered["status"].as_str()),
        (Some(id), Some("cancelled")),
        "{delivered}"
    );
    let job = get_json(&c, s.at(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    s.stop().await;
}

both_backends!(
    a_cancelled_job_is_delivered_as_cancelled,
    only_listed_sources_are_contacted,
    one_owner_cannot_pile_up_webhooks,
    large_placeholders_do_not_stall_the_api,
    a_webhook_attempt_times_out_on_its_own_clock,
    a_hanging_receiver_delays_only_its_own_webhooks,
    a_fetch_longer_than_the_lease_happens_once,
    overlong_urls_are_refused_at_submission,
    an_allowed_url_is_fetched_and_thumbnailed,
    loopback_in_every_spelling_is_refused_without_an_allow_rule,
    a_redirect_to_a_refused_address_is_refused,
    size_time_status_and_content_failures_have_their_codes,
    each_finished_job_is_delivered_once_and_signed,
    a_failing_receiver_gets_the_delivery_on_the_third_try,
    a_delivery_survives_a_restart_between_tries,
);
