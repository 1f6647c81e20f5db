//! Several host processes on one PostgreSQL database: shared work done exactly once, a killed
//! host's jobs finished by the other, jobs visible across hosts, concurrent first starts.

mod common;

use std::time::{Duration, Instant};

use common::server::*;
use serde_json::Value;

fn png_of_width(w: u32) -> Vec<u8> {
    // Distinct sources, so the dedup cache answers none of them.
    let img = image::RgbImage::from_fn(w, 20, |x, y| image::Rgb([x as u8, y as u8 * 3, 77]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .unwrap();
    out
}

async fn submit(c: &reqwest::Client, base: &str, body: Vec<u8>) -> String {
    post_image(c, &format!("{base}/v1/jobs"), "image/png", body).await
}

async fn count_done(c: &reqwest::Client, base: &str) -> usize {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/jobs?status=succeeded&limit=100");
        if let Some(cur) = &cursor {
            url.push_str(&format!("&cursor={cur}"));
        }
        let page: Value = get_json(c, url).await;
        n += page["jobs"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return n,
        }
    }
}

async fn two_hosts_share_300_jobs_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let args = ["--workers", "1", "--lease", "2s"];
    let (mut a, url_a) = spawn_host(&dir.path().join("a"), &args);
    let (mut b, url_b) = spawn_host(&dir.path().join("b"), &args);
    let photo = common::photo("coffee-2mp.webp");
    let mut ids = Vec::new();
    for n in 0..300u32 {
        // One photo, 300 different sizes: 300 different jobs for the dedup cache.
        let base = if n % 2 == 0 { &url_a } else { &url_b };
        let resp = c
            .post(format!("{base}/v1/jobs?width={}&height={}", 20 + n, 20 + n))
            .header("content-type", "image/jpeg")
            .body(photo.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        ids.push((
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
            20 + n,
        ));
    }
    // Kill -9 host A part-way through.
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_done(&c, &url_b).await < 60 {
        assert!(Instant::now() < deadline, "the hosts made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done_at_kill = count_done(&c, &url_b).await;
    a.kill();
    eprintln!("host A killed with {done_at_kill} of 300 jobs done");
    assert!(done_at_kill < 300, "the kill should land mid-run");
    let mut retried = 0;
    for (id, w) in &ids {
        let job = wait_done(&c, &url_b, id, None).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["result"]["width"], *w, "{job}");
        let attempts = job["attempts"].as_u64().unwrap();
        assert!((1..=2).contains(&attempts), "{job}");
        if attempts == 2 {
            retried += 1;
        }
        let bytes = get_bytes(&c, format!("{url_b}/v1/jobs/{id}/thumbnail")).await;
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!(img.width(), *w);
    }
    // Only what host A was running when it died ran twice (its one worker: at most one job,
    // plus one it may have claimed just before).
    assert!(retried <= 2, "{retried} jobs ran twice");
    assert_eq!(
        count_done(&c, &url_b).await,
        300,
        "every job once, none lost or duplicated"
    );
    b.kill();
}

async fn a_job_submitted_on_one_host_is_polled_and_downloaded_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    // A takes requests only; B does the work.
    let (mut a, url_a) = spawn_host(&dir.path().join("a"), &["--workers", "0"]);
    let (mut b, url_b) = spawn_host(&dir.path().join("b"), &["--workers", "1"]);
    for url in [&url_a, &url_b] {
        wait_ready(&c, url).await;
    }
    let mut latencies = Vec::new();
    for w in 0..10 {
        let id = submit(&c, &url_a, png_of_width(30 + w)).await;
        // Long-poll on A: B's completion reaches A through the database's notifications.
        let started = Instant::now();
        let job: Value = get_json(&c, format!("{url_a}/v1/jobs/{id}?wait=30")).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let created = humantime::parse_rfc3339(job["created_at"].as_str().unwrap()).unwrap();
        let began = humantime::parse_rfc3339(job["started_at"].as_str().unwrap()).unwrap();
        latencies.push(began.duration_since(created).unwrap_or_default());
        let from_a = get_bytes(&c, format!("{url_a}/v1/jobs/{id}/thumbnail")).await;
        let from_b = get_bytes(&c, format!("{url_b}/v1/jobs/{id}/thumbnail")).await;
        assert_eq!(from_a, from_b);
        assert!(image::load_from_memory(&from_b).is_ok());
    }
    latencies.sort();
    eprintln!(
        "submit-to-running across hosts: median {:?}, max {:?}",
        latencies[5], latencies[9]
    );
    a.kill();
    b.kill();
}

async fn two_hosts_starting_together_on_an_empty_database_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let (mut a, url_a) = spawn_host(&dir.path().join("a"), &[]);
    let (mut b, url_b) = spawn_host(&dir.path().join("b"), &[]);
    for url in [&url_a, &url_b] {
        wait_ready(&c, url).await;
    }
    let db = database_args().pop().expect("a PostgreSQL test");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied as usize, files, "each migration applied once");
    let builtin: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM components")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(builtin, 1, "the built-in component is registered once");
    // And they work together.
    let id = submit(&c, &url_a, png_of_width(64)).await;
    assert_eq!(wait_done(&c, &url_b, &id, None).await["status"], "succeeded");
    a.kill();
    b.kill();
}

on_backend!(
    postgres,
    Postgres,
    two_hosts_share_300_jobs_and_survive_a_kill,
    a_job_submitted_on_one_host_is_polled_and_downloaded_on_another,
    two_hosts_starting_together_on_an_empty_database_migrate_once,
);
