//! Crash safety: a killed host's jobs come back after their lease, jobs that keep crashing
//! stop being retried, and finished jobs expire.

mod common;

use std::time::{Duration, Instant};

use common::server::*;
use common::*;
use serde_json::Value;

/// Submits a corpus photo as a raw body at `width`; the job's id, after a 202.
async fn submit_photo(c: &reqwest::Client, url: &str, width: u32, name: &str) -> String {
    let resp = c
        .post(format!("{url}/v1/jobs?width={width}"))
        .header("content-type", "application/octet-stream")
        .body(photo(name))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn jobs_of_a_killed_host_are_finished_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    // Queue all eight first (on a host without workers), so that the host that runs them
    // always has jobs waiting: the one it is running when it is killed is never the last.
    let (mut host, url) = spawn_host(dir.path(), &["--workers", "0"]);
    let mut ids = Vec::new();
    for w in 0..8 {
        ids.push(submit_photo(&c, &url, 30 + w, "coffee-12mp.jpg").await);
    }
    host.kill();
    let (mut host, url) = spawn_host(dir.path(), &["--workers", "1", "--lease", "2s"]);
    // Kill -9 while a job is running.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running: Value = get_json(&c, format!("{url}/v1/jobs?status=running")).await;
        if !running["jobs"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no job ever ran");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    host.kill();

    let (mut host, url) = spawn_host(dir.path(), &["--workers", "2", "--lease", "2s"]);
    let mut retried = 0;
    for (w, id) in ids.iter().enumerate() {
        let job = wait_done(&c, &url, id, None).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert!(job["attempts"].as_u64().unwrap() <= 2, "{job}");
        if job["attempts"] == 2 {
            retried += 1;
        }
        let bytes = get_bytes(&c, format!("{url}/v1/jobs/{id}/thumbnail")).await;
        assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 30 + w as u32);
    }
    assert!(
        retried >= 1,
        "the job killed mid-run should have a second attempt"
    );
    let all: Value = get_json(&c, format!("{url}/v1/jobs?limit=100")).await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), ids.len());
    // The eight jobs share one source: one stored copy (a file on SQLite), through the crash,
    // and none once they are all deleted.
    let sqlite = database_args().is_empty();
    if sqlite {
        assert_eq!(blob_files(dir.path()), 1, "the shared source is stored once");
    }
    for id in &ids {
        let resp = c.delete(format!("{url}/v1/jobs/{id}")).send().await.unwrap();
        assert_eq!(resp.status(), 204);
    }
    if sqlite {
        assert_eq!(blob_files(dir.path()), 0, "blobs go with their last job");
    }
    host.kill();
}

/// Jobs accepted with 202 survive a `kill -9` that comes right after the answer, before any
/// worker could touch them (this host has none).
async fn accepted_jobs_survive_a_kill_right_after_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let (mut host, url) = spawn_host(dir.path(), &["--workers", "0"]);
    let mut ids = Vec::new();
    for (n, name) in ["coffee-12mp.jpg", "astronaut-2mp.png", "coffee-2mp.webp"]
        .iter()
        .enumerate()
    {
        ids.push(submit_photo(&c, &url, 40 + n as u32, name).await);
    }
    host.kill();
    let (mut host, url) = spawn_host(dir.path(), &["--workers", "2"]);
    for (n, id) in ids.iter().enumerate() {
        let job = wait_done(&c, &url, id, None).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["result"]["width"], 40 + n as u64, "{job}");
    }
    host.kill();
}

async fn a_job_that_exhausts_sandbox_memory_fails_at_once() {
    // 8 MiB of guest memory cannot hold a 2 MP RGBA decode (8.4 MB of pixels alone). The
    // same bytes would exhaust it on every attempt, so the job fails at the first
    // (issue 12, finding 5: memory and deadline kills were retried, tripling their cost).
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--max-memory", "8388608", "--max-attempts", "2"]).await;
    let c = client();
    let id = post_image(
        &c,
        &s.at("/v1/jobs"),
        "image/png",
        photo("astronaut-2mp-rgba.png"),
    )
    .await;
    let job = wait_done(&c, &s.url, &id, None).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(job["error"]["code"], "memory_limit_exceeded", "{job}");
    // The host is fine: a small image still works.
    let id = post_image(&c, &s.at("/v1/jobs"), "image/png", small_png()).await;
    assert_eq!(wait_done(&c, &s.url, &id, None).await["status"], "succeeded");
    s.stop().await;
}

async fn a_job_whose_host_keeps_dying_is_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let api_only = TestServer::start(dir.path(), &["--workers", "0", "--max-attempts", "2"]).await;
    let c = client();
    let id = post_image(&c, &api_only.at("/v1/jobs"), "image/png", small_png()).await;
    // Two claims that never complete, as two hosts dying mid-job would leave them; the second
    // comes once the first one's 1 ms lease has run out (polled, with a deadline).
    for _ in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let claimed = loop {
            if let Some(claimed) = api_only
                .state
                .jobs
                .store
                .claim(Duration::from_millis(1))
                .await
                .unwrap()
            {
                break claimed;
            }
            assert!(Instant::now() < deadline, "the job was never claimable");
            tokio::task::yield_now().await;
        };
        assert_eq!(claimed.job.id.to_string(), id);
    }
    api_only.stop().await;
    let s = TestServer::start(dir.path(), &["--max-attempts", "2"]).await;
    let job = wait_done(&c, &s.url, &id, None).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "too_many_attempts", "{job}");
    assert!(
        job["error"]["message"].as_str().unwrap().contains("2 attempts"),
        "{job}"
    );
    s.stop().await;
}

async fn finished_jobs_expire_after_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--job-ttl", "1s"]).await;
    let c = client();
    let id = post_image(&c, &s.at("/v1/jobs"), "image/png", small_png()).await;
    assert_eq!(wait_done(&c, &s.url, &id, None).await["status"], "succeeded");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = c
            .get(s.at(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .unwrap()
            .status();
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "job not swept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
}

both_backends!(
    jobs_of_a_killed_host_are_finished_by_the_next_start,
    accepted_jobs_survive_a_kill_right_after_the_answer,
    a_job_that_exhausts_sandbox_memory_fails_at_once,
    a_job_whose_host_keeps_dying_is_given_up,
    finished_jobs_expire_after_the_ttl,
);
