//! The logs of a real `edgethumb serve` process: one JSON access line per request (with the
//! matched route and the key's id, never the key), and no wasm-compiler chatter when the
//! user asks for `RUST_LOG=debug`.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{Host, client, wait_ready};
use serde_json::Value;

const KEY: &str = "sk_logtest_0123456789abcdef";

/// Starts the host with JSON logs; its stderr lines are collected as they come.
fn spawn_json_host(data_dir: &std::path::Path) -> (Host, String, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgethumb"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .arg("--cache-dir")
        .arg(common::cache_dir())
        .args(["--api-key", KEY])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let host = Host(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let found = lines.lock().unwrap().iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["fields"]["message"] == "listening")
                .then(|| v["fields"]["addr"].as_str().map(str::to_string))?
        });
        if let Some(addr) = found {
            break addr;
        }
        assert!(
            Instant::now() < deadline,
            "no JSON 'listening' line: {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (host, format!("http://{addr}"), lines)
}

fn access_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "edgethumb::access")
        .collect()
}

#[tokio::test]
async fn every_request_leaves_one_json_access_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, url, lines) = spawn_json_host(dir.path());
    let c = client();
    wait_ready(&c, &url).await;
    let job = c
        .post(format!("{url}/v1/jobs"))
        .bearer_auth(KEY)
        .header("content-type", "image/png")
        .header("x-request-id", "req-logged-1")
        .body(common::small_png())
        .send()
        .await
        .unwrap();
    assert_eq!(job.status(), 202);
    let id = job.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = c
        .get(format!("{url}/v1/jobs/{id}"))
        .bearer_auth("sk_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let missing = c.get(format!("{url}/no/such/page")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // The line is written once the response is made; poll for all three.
    let deadline = Instant::now() + Duration::from_secs(10);
    let access = loop {
        let access = access_lines(&lines.lock().unwrap());
        let ours = |route: &str, status: u64| {
            access
                .iter()
                .any(|v| v["fields"]["route"] == route && v["fields"]["status"] == status)
        };
        if ours("/v1/jobs", 202) && ours("/v1/jobs/{id}", 401) && ours("unmatched", 404) {
            break access;
        }
        assert!(Instant::now() < deadline, "access lines missing: {access:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let submitted = access
        .iter()
        .find(|v| v["fields"]["route"] == "/v1/jobs" && v["fields"]["status"] == 202)
        .unwrap();
    let f = &submitted["fields"];
    assert_eq!(submitted["level"], "INFO", "{submitted}");
    assert_eq!(f["method"], "POST", "{submitted}");
    assert_eq!(f["request_id"], "req-logged-1", "{submitted}");
    assert!(
        f["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{submitted}"
    );
    assert!(f["bytes"].as_u64().is_some_and(|b| b > 100), "{submitted}");
    let key_id = f["key_id"].as_str().unwrap();
    assert_eq!(key_id, edgethumb::api::key_fingerprint(KEY), "{submitted}");
    // The route, not the path: the job id is not in the route label.
    assert!(
        access
            .iter()
            .all(|v| !v["fields"]["route"].as_str().unwrap().contains(&id))
    );

    host.kill();
    let all = lines.lock().unwrap().clone();
    assert!(all.iter().all(|l| !l.contains(KEY)), "a key was logged");
    // Under RUST_LOG=debug, the compiler's and the runtime's internals still say nothing below
    // WARN (the component was compiled or loaded from the cache while this ran).
    let parsed: Vec<Value> = all.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(parsed.len(), all.len(), "every line is JSON: {all:?}");
    assert!(
        parsed
            .iter()
            .any(|v| v["fields"]["message"] == "component loaded"),
        "{all:?}"
    );
    let noisy: Vec<&Value> = parsed
        .iter()
        .filter(|v| {
            let target = v["target"].as_str().unwrap();
            ["cranelift", "wasmtime", "regalloc2", "sqlx", "hyper"]
                .iter()
                .any(|t| target.starts_with(t))
                && matches!(v["level"].as_str(), Some("DEBUG" | "TRACE" | "INFO"))
        })
        .collect();
    assert!(noisy.is_empty(), "internals logged below WARN: {noisy:?}");
}
