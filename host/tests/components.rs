//! The component lifecycle over HTTP: upload and validation (each refusal at its step), swap
//! while jobs run, rollback, replay on a chosen version, the directory watcher, several hosts
//! following one database, and the admin token.

mod common;

use std::time::{Duration, Instant};

use common::server::*;
use common::*;
use edgethumb::sandbox::BUILTIN_COMPONENT;
use serde_json::{Value, json};

const TOKEN: &str = "admin-secret";

/// The built-in component with a custom section appended: the same code, another digest.
fn variant(tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let name = b"edgethumb-test";
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend(name);
    body.extend(tag.as_bytes());
    let mut wasm = BUILTIN_COMPONENT.to_vec();
    wasm.push(0);
    leb(body.len(), &mut wasm);
    wasm.extend(body);
    wasm
}

async fn upload(c: &reqwest::Client, s: &TestServer, wasm: Vec<u8>) -> reqwest::Response {
    c.post(s.at("/v1/admin/components"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .unwrap()
}

async fn active_digest(c: &reqwest::Client, s: &TestServer) -> String {
    let list: Value = c
        .get(s.at("/v1/admin/components"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let active: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["active"] == true)
        .collect();
    assert_eq!(active.len(), 1, "{list}");
    active[0]["digest"].as_str().unwrap().to_string()
}

async fn submit(c: &reqwest::Client, s: &TestServer, width: u32, bytes: Vec<u8>) -> String {
    post_image(
        c,
        &s.at(&format!("/v1/jobs?width={width}")),
        "application/octet-stream",
        bytes,
    )
    .await
}

async fn the_admin_api_needs_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let s = TestServer::start(dir.path(), &[]).await;
    let p = expect_problem(
        c.get(s.at("/v1/admin/components")).send().await.unwrap(),
        403,
        "admin_disabled",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("--admin-token"));
    expect_problem(
        c.post(s.at("/v1/admin/components"))
            .bearer_auth("anything")
            .body(variant("x"))
            .send()
            .await
            .unwrap(),
        403,
        "admin_disabled",
    )
    .await;
    s.stop().await;
    let s = TestServer::start(dir.path(), &["--admin-token", TOKEN]).await;
    expect_problem(
        c.get(s.at("/v1/admin/components")).send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_problem(
        c.get(s.at("/v1/admin/components"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(
        c.get(s.at("/v1/admin/components"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.stop().await;
}

async fn bad_components_are_refused_at_their_step_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let s = TestServer::start(dir.path(), &["--admin-token", TOKEN, "--deadline", "1s"]).await;
    let before = active_digest(&c, &s).await;
    assert_eq!(before, edgethumb::sandbox::sha256_hex(BUILTIN_COMPONENT));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"this is not wasm at all".to_vec(), "component"),
        (
            "core module",
            wat::parse_str("(module (func (export \"thumbnail\")))").unwrap(),
            "component",
        ),
        (
            "another world",
            wat::parse_str("(component (core module $m) (core instance (instantiate $m)))").unwrap(),
            "world",
        ),
        ("traps on every call", hostile_component(TRAP), "canary"),
        ("hangs", hostile_component(LOOP_FOREVER), "canary"),
    ];
    for (name, wasm, step) in cases {
        let started = Instant::now();
        let p = expect_problem(upload(&c, &s, wasm).await, 422, "component_invalid").await;
        assert_eq!(p["step"], step, "{name}: {p}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} took {:?}",
            started.elapsed()
        );
        assert_eq!(
            active_digest(&c, &s).await,
            before,
            "{name} changed the active component"
        );
    }
    let list: Value = c
        .get(s.at("/v1/admin/components"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "refused components are not stored: {list}"
    );
    // And the service still works.
    let id = submit(&c, &s, 50, small_png()).await;
    assert_eq!(wait_done(&c, &s.url, &id, None).await["status"], "succeeded");
    s.stop().await;
}

async fn activate_while_running_then_rollback_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let s = TestServer::start(dir.path(), &["--admin-token", TOKEN, "--workers", "1"]).await;
    let old = active_digest(&c, &s).await;
    let wasm = variant("v2");
    let resp = upload(&c, &s, wasm.clone()).await;
    assert_eq!(resp.status(), 201);
    let uploaded: Value = resp.json().await.unwrap();
    let new = uploaded["digest"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(uploaded["active"], false, "upload does not activate");
    assert_eq!(uploaded["wit_version"], "1.1.0");
    assert_eq!(uploaded["canary"]["images"], 6);
    assert_eq!(active_digest(&c, &s).await, old);
    // The same bytes again: known, 200.
    assert_eq!(upload(&c, &s, wasm.clone()).await.status(), 200);
    let copy = c
        .get(s.at(&format!("/v1/admin/components/{new}/wasm")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(copy.headers()["content-type"], "application/wasm");
    assert_eq!(copy.bytes().await.unwrap().to_vec(), wasm);

    // A queue of slow jobs on one worker; activate while one of them runs.
    let mut before = Vec::new();
    for w in 0..6 {
        before.push(submit(&c, &s, 40 + w, photo("coffee-12mp-progressive.jpg")).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = 'found: loop {
        for id in &before {
            let j: Value = get_json(&c, s.at(&format!("/v1/jobs/{id}"))).await;
            if j["status"] == "running" {
                break 'found id.clone();
            }
        }
        assert!(Instant::now() < deadline, "no job was ever seen running");
    };
    let activated_at = Instant::now();
    let resp = c
        .post(s.at(&format!("/v1/admin/components/{new}/activate")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["active"], true);
    let after = submit(&c, &s, 90, small_png()).await;
    let first_new = wait_done(&c, &s.url, &after, None).await;
    eprintln!(
        "activation request to the first new job done: {:?}",
        activated_at.elapsed()
    );
    assert_eq!(
        first_new["component_digest"],
        new.as_str(),
        "jobs submitted after activation use it"
    );
    let ran_through = wait_done(&c, &s.url, &running, None).await;
    assert_eq!(ran_through["status"], "succeeded");
    assert_eq!(
        ran_through["component_digest"],
        old.as_str(),
        "a running job finishes on its component"
    );
    for id in &before {
        let j = wait_done(&c, &s.url, id, None).await;
        assert_eq!(j["status"], "succeeded", "{j}");
        let d = j["component_digest"].as_str().unwrap();
        assert!(d == old || d == new, "{j}");
    }
    expect_problem(
        c.delete(s.at(&format!("/v1/admin/components/{new}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
        409,
        "component_conflict",
    )
    .await;

    // Rollback restores the old one.
    let resp = c
        .post(s.at("/v1/admin/components/rollback"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["digest"], old.as_str());
    assert_eq!(active_digest(&c, &s).await, old);
    let back = submit(&c, &s, 91, small_png()).await;
    assert_eq!(
        wait_done(&c, &s.url, &back, None).await["component_digest"],
        old.as_str()
    );
    expect_problem(
        c.post(s.at("/v1/admin/components/rollback"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
        409,
        "component_conflict",
    )
    .await;

    // Replay the old job on the new (inactive) version: a new job, pinned, same output.
    let resp = c
        .post(s.at(&format!("/v1/jobs/{back}/replay")))
        .json(&json!({ "component": new }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let replay: Value = resp.json().await.unwrap();
    assert_ne!(replay["id"].as_str().unwrap(), back);
    assert_eq!(replay["requested_component"], new.as_str());
    let replayed = wait_done(&c, &s.url, replay["id"].as_str().unwrap(), None).await;
    assert_eq!(replayed["status"], "succeeded");
    assert_eq!(replayed["component_digest"], new.as_str());
    let a = get_bytes(&c, s.at(&format!("/v1/jobs/{back}/thumbnail"))).await;
    let b = c
        .get(s.at(&format!(
            "/v1/jobs/{}/thumbnail",
            replayed["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(a, b, "the same code makes the same thumbnail");
    // Replay without a digest runs on the active one; an unknown digest is a 404.
    let resp = c
        .post(s.at(&format!("/v1/jobs/{back}/replay")))
        .send()
        .await
        .unwrap();
    let plain = wait_done(
        &c,
        &s.url,
        resp.json::<Value>().await.unwrap()["id"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(plain["component_digest"], old.as_str());
    expect_problem(
        c.post(s.at(&format!("/v1/jobs/{back}/replay")))
            .json(&json!({ "component": "ab".repeat(32) }))
            .send()
            .await
            .unwrap(),
        404,
        "component_not_found",
    )
    .await;

    // The inactive one can be deleted now.
    let resp = c
        .delete(s.at(&format!("/v1/admin/components/{new}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    expect_problem(
        c.get(s.at(&format!("/v1/admin/components/{new}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
        404,
        "component_not_found",
    )
    .await;
    s.stop().await;
}

async fn hosts_sharing_a_database_follow_an_activation() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let a = TestServer::start(dir.path(), &["--admin-token", TOKEN, "--component-sync", "200ms"]).await;
    let b = TestServer::start(dir.path(), &["--admin-token", TOKEN, "--component-sync", "200ms"]).await;
    let resp = upload(&c, &a, variant("fleet")).await;
    let new = resp.json::<Value>().await.unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let resp = c
        .post(a.at(&format!("/v1/admin/components/{new}/activate")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let activation = started.elapsed();
    // With idle workers, the next job runs on the new version at once.
    let id = submit(&c, &a, 64, small_png()).await;
    let job = wait_done(&c, &a.url, &id, None).await;
    assert_eq!(job["component_digest"], new.as_str());
    eprintln!(
        "activation answered in {activation:?}; first job on the new version done {:?} after the request",
        started.elapsed()
    );
    loop {
        let ready: Value = get_json(&c, b.at("/readyz")).await;
        if ready["component"] == new.as_str() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "host B never switched: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("second host switched after {:?}", started.elapsed());
    a.stop().await;
    b.stop().await;
}

/// Waits (20 s at most) until `digest` is the active component of `s`.
async fn wait_active(s: &TestServer, digest: &str) {
    let started = Instant::now();
    while s.state.jobs.components.active().digest() != digest {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{digest} was not activated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_component_dropped_in_the_watched_directory_is_activated_if_valid() {
    let dir = tempfile::tempdir().unwrap();
    let drop_dir = dir.path().join("components");
    std::fs::create_dir(&drop_dir).unwrap();
    let c = client();
    let s = TestServer::start(dir.path(), &["--component-dir", drop_dir.to_str().unwrap()]).await;
    let builtin = edgethumb::sandbox::sha256_hex(BUILTIN_COMPONENT);
    // A broken file first, then a good one: by the time the good one is active, the watcher
    // has looked at the broken one too (it scans the whole directory), and refused it.
    std::fs::write(drop_dir.join("broken.wasm"), hostile_component(TRAP)).unwrap();
    assert_eq!(s.state.jobs.components.active().digest(), builtin);
    let good = variant("edge");
    let digest = edgethumb::sandbox::sha256_hex(&good);
    std::fs::write(drop_dir.join("good.wasm.tmp"), &good).unwrap();
    std::fs::rename(drop_dir.join("good.wasm.tmp"), drop_dir.join("good.wasm")).unwrap();
    wait_active(&s, &digest).await;
    let mut known: Vec<String> = s
        .state
        .jobs
        .components
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.digest)
        .collect();
    known.sort();
    let mut expected = vec![builtin, digest.clone()];
    expected.sort();
    assert_eq!(
        known, expected,
        "the invalid file must never be stored or activated"
    );
    let id = submit(&c, &s, 33, small_png()).await;
    assert_eq!(
        wait_done(&c, &s.url, &id, None).await["component_digest"],
        digest.as_str()
    );
    s.stop().await;
}

#[test]
fn the_cli_validates_offline() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.wasm");
    std::fs::write(&good, variant("cli")).unwrap();
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, hostile_component(TRAP)).unwrap();
    let run = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_edgethumb"))
            .args(["component", "validate"])
            .arg(path)
            .env("EDGETHUMB_CACHE_DIR", cache_dir())
            .output()
            .unwrap()
    };
    let o = run(&good);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["wit_version"], "1.1.0");
    let o = run(&bad);
    assert!(!o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["valid"].as_bool(), v["step"].as_str()),
        (Some(false), Some("canary"))
    );
}

/// An operator's rollback and delete of a component adopted from the watched directory stand
/// across a restart, though its file is still there (issue 12, finding 7: a restart activated
/// it again, across the fleet on PostgreSQL).
async fn a_rolled_back_directory_component_stays_rolled_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let drop_dir = dir.path().join("components");
    std::fs::create_dir(&drop_dir).unwrap();
    let args = [
        "--component-dir",
        drop_dir.to_str().unwrap(),
        "--admin-token",
        TOKEN,
    ];
    let c = client();
    let first = variant("first");
    let first_digest = edgethumb::sandbox::sha256_hex(&first);
    std::fs::write(drop_dir.join("first.wasm"), &first).unwrap();
    let s = TestServer::start(dir.path(), &args).await;
    wait_active(&s, &first_digest).await;
    let resp = c
        .post(s.at("/v1/admin/components/rollback"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c
        .delete(s.at(&format!("/v1/admin/components/{first_digest}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    s.stop().await;

    // Restarted with the file still there. The watcher adopts files oldest first, so once a
    // newer file is active, it has been past the first one.
    let s = TestServer::start(dir.path(), &args).await;
    let second = variant("second");
    let second_digest = edgethumb::sandbox::sha256_hex(&second);
    std::fs::write(drop_dir.join("second.wasm"), &second).unwrap();
    wait_active(&s, &second_digest).await;
    let known: Vec<String> = s
        .state
        .jobs
        .components
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.digest)
        .collect();
    assert!(
        !known.contains(&first_digest),
        "the deleted component was stored (and activated) again: {known:?}"
    );
    s.stop().await;
}

both_backends!(
    a_rolled_back_directory_component_stays_rolled_back_after_a_restart,
    the_admin_api_needs_its_token,
    bad_components_are_refused_at_their_step_and_nothing_changes,
    activate_while_running_then_rollback_and_replay,
    hosts_sharing_a_database_follow_an_activation,
    a_component_dropped_in_the_watched_directory_is_activated_if_valid,
);
