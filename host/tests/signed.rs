//! Signed `<img src>` URLs and cache headers (issue 16): a link signed with the server's key
//! works with API keys on and is cacheable by anyone; a wrong or altered one is a 403; keyed
//! answers stay private to the key.

mod common;

use std::process::Command;

use common::origin::Origin;
use common::server::*;
use common::*;
use reqwest::StatusCode;

const SIGNING_KEY: &str = "a-test-signing-key-of-32-bytes!!";

/// `edgethumb sign` itself, as a user would run it.
fn sign_with_cli(server: &str, image_url: &str, options: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_edgethumb"))
        .args(["sign", image_url, "--server", server])
        .args(options)
        .env("EDGETHUMB_URL_SIGNING_KEY", SIGNING_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn signed_urls_work_without_a_key_and_nothing_else_does() {
    let origin = Origin::start(photo("coffee-12mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--fetch-allow",
        "127.0.0.1",
        "--api-key",
        "k1",
        "--url-signing-key",
        SIGNING_KEY,
        "--cache-max-age",
        "2h",
    ];
    let s = TestServer::start(dir.path(), &args).await;
    let c = client();
    let image_url = origin.url("/img.jpg");
    let signed = sign_with_cli(&s.url, &image_url, &["--width", "120", "--format", "webp"]);
    assert!(
        signed.starts_with(&format!("{}/v1/thumbnail?url=", s.url)),
        "{signed}"
    );

    // The signed link, with no key: the thumbnail, cacheable by anyone for --cache-max-age.
    let resp = c.get(&signed).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/webp");
    assert_eq!(resp.headers()["cache-control"], "public, max-age=7200");
    let img = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (120, 80));

    // Without a signature and without a key: 401, as before.
    let unsigned = format!("{}/v1/thumbnail?url={image_url}&width=120&format=webp", s.url);
    expect_problem(c.get(&unsigned).send().await.unwrap(), 401, "unauthorized").await;
    // A changed option, an added one, or a made-up signature: 403, and the origin is not asked.
    let hits = origin.hits();
    let sig = signed.rsplit_once("sig=").unwrap().1.to_string();
    for tampered in [
        signed.replace("width=120", "width=1200"),
        signed.replace("format=webp", "format=png"),
        format!("{signed}&height=50"),
        format!("{unsigned}&sig=AAAA{sig}"),
        format!("{unsigned}&sig=not-base64!"),
    ] {
        let p = expect_problem(c.get(&tampered).send().await.unwrap(), 403, "invalid_signature").await;
        assert!(
            p["detail"].as_str().unwrap().contains("edgethumb sign"),
            "{tampered}: {p}"
        );
    }
    assert_eq!(origin.hits(), hits, "a refused link must not fetch");

    // With a key instead: private to that key.
    let resp = c.get(&unsigned).bearer_auth("k1").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["cache-control"],
        "private, max-age=86400, immutable"
    );
    assert_eq!(resp.headers()["vary"], "Authorization");
    // Jobs made through signed links belong to no key.
    let list = c.get(s.at("/v1/jobs")).bearer_auth("k1").send().await.unwrap();
    let list: serde_json::Value = list.json().await.unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1, "{list}");
    s.stop().await;
}

async fn open_mode_answers_are_public_and_unsigned_servers_refuse_signatures() {
    let origin = Origin::start(photo("coffee-12mp.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &["--fetch-allow", "127.0.0.1"]).await;
    let c = client();
    // A job's own thumbnail never changes: public and immutable when no key is in use.
    let id = post_image(&c, &s.at("/v1/jobs"), "image/png", small_png()).await;
    wait_done(&c, &s.url, &id, None).await;
    let resp = c
        .get(s.at(&format!("/v1/jobs/{id}/thumbnail")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=86400, immutable"
    );
    assert!(resp.headers().get("vary").is_none());
    // A URL's may change with its origin: public, not immutable.
    let url = format!("{}/v1/thumbnail?url={}&width=50", s.url, origin.url("/img.jpg"));
    let resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=86400");
    // A signature for a server that has no signing key is refused, not ignored.
    let p = expect_problem(
        c.get(format!("{url}&sig=abc")).send().await.unwrap(),
        403,
        "invalid_signature",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("--url-signing-key"), "{p}");
    s.stop().await;
}

both_backends!(
    signed_urls_work_without_a_key_and_nothing_else_does,
    open_mode_answers_are_public_and_unsigned_servers_refuse_signatures
);
