//! Starting the real server on port 0 for integration tests, in-process or as a child
//! process, and talking HTTP to it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use edgethumb::app::{App, AppState};
use edgethumb::cli::{Cli, Command};
use edgethumb::config::ServeConfig;
use tokio::sync::oneshot;

/// A running in-process server.
pub struct TestServer {
    pub url: String,
    pub state: AppState,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Which job database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    /// The PostgreSQL database of the running test, if it runs on PostgreSQL.
    static DATABASE: Option<String>;
}

/// The server that PostgreSQL tests use: `$EDGETHUMB_TEST_POSTGRES`, or this machine's.
pub fn postgres_server() -> String {
    std::env::var("EDGETHUMB_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh database for one test, dropped afterwards.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        use sqlx::Connection;
        let server = postgres_server();
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} (set EDGETHUMB_TEST_POSTGRES): {e}"));
        let name = format!("edgethumb_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        TestDb {
            url: format!("{server}/{name}"),
            name,
        }
    }

    pub async fn drop_now(self) {
        use sqlx::Connection;
        let server = postgres_server();
        if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{server}/postgres")).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(&mut admin)
                .await;
        }
    }
}

/// Runs a test body against `backend` (a fresh PostgreSQL database for it, or SQLite in its
/// data dir).
pub async fn with_backend<F: Future<Output = ()>>(backend: Backend, test: F) {
    match backend {
        Backend::Sqlite => DATABASE.scope(None, test).await,
        Backend::Postgres => {
            let db = TestDb::create().await;
            DATABASE.scope(Some(db.url.clone()), test).await;
            db.drop_now().await;
        }
    }
}

/// `--database URL` for the running test's backend (nothing for SQLite).
pub fn database_args() -> Vec<String> {
    match DATABASE.try_with(|d| d.clone()).ok().flatten() {
        Some(url) => vec!["--database".into(), url],
        None => vec![],
    }
}

/// Server config from the real flag parser (so defaults are the real ones) plus `extra` flags.
pub fn config(data_dir: &Path, extra: &[&str]) -> ServeConfig {
    let mut args = vec!["edgethumb", "serve", "--bind", "127.0.0.1:0"];
    let dir = data_dir.to_str().unwrap().to_string();
    let cache = super::cache_dir().to_str().unwrap().to_string();
    args.extend(["--data-dir", &dir, "--cache-dir", &cache]);
    let db = database_args();
    args.extend(db.iter().map(String::as_str));
    args.extend(extra);
    match Cli::try_parse_from(args).unwrap().command {
        Command::Serve(a) => (*a).into_config().unwrap(),
        _ => unreachable!(),
    }
}

impl TestServer {
    pub async fn start(data_dir: &Path, extra: &[&str]) -> TestServer {
        let app = App::build(config(data_dir, extra)).await.expect("server builds");
        let url = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestServer {
            url,
            state,
            data_dir: data_dir.to_path_buf(),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Graceful stop, as on SIGTERM; waits until the server has returned.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// GETs a URL and parses the body as JSON, whatever the status.
pub async fn get_json(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> serde_json::Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// GETs a URL and returns the body bytes, whatever the status.
pub async fn get_bytes(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> axum::body::Bytes {
    c.get(url).send().await.unwrap().bytes().await.unwrap()
}

/// Submits an image body as a job (expecting 202) and returns the job id.
pub async fn post_image(c: &reqwest::Client, url: &str, content_type: &str, body: Vec<u8>) -> String {
    let resp = c
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let job: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_string()
}

/// `POST /v1/thumbnail?{query}` with a PNG body (expecting 200): the thumbnail's bytes and
/// the job it came from.
pub async fn post_thumbnail(
    c: &reqwest::Client,
    s: &TestServer,
    query: &str,
    png: Vec<u8>,
) -> (Vec<u8>, serde_json::Value) {
    let resp = c
        .post(s.at(&format!("/v1/thumbnail?{query}")))
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{query}");
    let job_url = resp.headers()["content-location"].to_str().unwrap().to_string();
    let bytes = resp.bytes().await.unwrap().to_vec();
    (bytes, get_json(c, s.at(&job_url)).await)
}

/// Polls a job until it is finished, with a deadline.
pub async fn wait_done(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    key: Option<&str>,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut req = client.get(format!("{base}/v1/jobs/{id}?wait=10"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let job: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
        let status = job["status"].as_str().unwrap_or_default().to_string();
        if status == "succeeded" || status == "failed" || status == "cancelled" {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} still {status} after 90 s: {job}"
        );
    }
}

/// Asserts a response is problem+json with this status and code; returns the body.
pub async fn expect_problem(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    let got = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    assert_eq!(got, status, "expected {status} {code}, got {got}: {body}");
    assert_eq!(ctype, "application/problem+json", "body: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], status, "{v}");
    assert!(v["type"].as_str().unwrap().ends_with(code), "{v}");
    assert!(
        v["detail"].as_str().is_some_and(|d| d.len() > 10),
        "detail should help: {v}"
    );
    v
}

/// `edgethumb serve` as a child process; returns it and its base URL, read from the log.
/// A host process; killed when dropped, so a failing test leaves none behind.
pub struct Host(pub std::process::Child);

impl Host {
    /// `kill -9`, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn spawn_host(data_dir: &std::path::Path, extra: &[&str]) -> (Host, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgethumb"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--cache-dir")
        .arg(super::cache_dir())
        .args(extra)
        .args(database_args())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if !sent && line.contains("listening") {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
                tx.send(addr).unwrap();
                sent = true;
            }
        }
    });
    let host = Host(child);
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the host logs its address");
    (host, format!("http://{addr}"))
}

/// Waits (polling, with a deadline) until the host at `url` answers `/readyz` with 200.
pub async fn wait_ready(c: &reqwest::Client, url: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(resp) = c.get(format!("{url}/readyz")).send().await
            && resp.status() == 200
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
