//! AVIF output (issue 16) through the server and the sandboxed component: Pillow reads it at
//! the right size and close to the lossless thumbnail, quality trades bytes for fidelity,
//! and `format=auto` gives AVIF where `Accept` names it.

mod common;

use std::process::Command;

use common::server::*;
use common::*;

/// What Pillow makes of `avif` against the lossless `png` of the same thumbnail: its format,
/// size and the PSNR between the two, in dB.
fn pillow_reads(avif: &[u8], png: &[u8]) -> (String, (u32, u32), f64) {
    let dir = tempfile::tempdir().unwrap();
    let (a, p) = (dir.path().join("t.avif"), dir.path().join("t.png"));
    std::fs::write(&a, avif).unwrap();
    std::fs::write(&p, png).unwrap();
    let script = r#"
import sys, numpy
from PIL import Image
a = Image.open(sys.argv[1]); a.load()
p = Image.open(sys.argv[2]).convert("RGB")
x = numpy.asarray(a.convert("RGB"), dtype=numpy.float64)
y = numpy.asarray(p, dtype=numpy.float64)
mse = ((x - y) ** 2).mean()
print(a.format, a.size[0], a.size[1], 10 * numpy.log10(255 ** 2 / max(mse, 1e-9)))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&a)
        .arg(&p)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let f: Vec<&str> = text.split_whitespace().collect();
    (
        f[0].to_string(),
        (f[1].parse().unwrap(), f[2].parse().unwrap()),
        f[3].parse().unwrap(),
    )
}

async fn make(c: &reqwest::Client, s: &TestServer, query: &str, accept: &str) -> (String, Vec<u8>) {
    let resp = c
        .post(s.at(&format!("/v1/thumbnail?{query}")))
        .header("content-type", "image/jpeg")
        .header("accept", accept)
        .body(photo("astronaut-1mp.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{query}");
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    (ctype, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn avif_thumbnails_read_back_at_their_size_and_quality() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let (_, png) = make(&c, &s, "width=160&format=png", "*/*").await;
    let (ctype, q50) = make(&c, &s, "width=160&format=avif&quality=50", "*/*").await;
    assert_eq!(ctype, "image/avif");
    let (_, q90) = make(&c, &s, "width=160&format=avif&quality=90", "*/*").await;
    let (format, size, psnr50) = pillow_reads(&q50, &png);
    let png_size = image::load_from_memory(&png).unwrap();
    assert_eq!(format, "AVIF");
    assert_eq!(size, (png_size.width(), png_size.height()));
    let (_, _, psnr90) = pillow_reads(&q90, &png);
    assert!(
        q50.len() < q90.len(),
        "q50 {} bytes, q90 {}",
        q50.len(),
        q90.len()
    );
    assert!(
        psnr50 > 27.0 && psnr90 > psnr50,
        "PSNR q50 {psnr50:.1} dB, q90 {psnr90:.1} dB"
    );
    // Nothing of the source's metadata: no Exif box.
    assert!(!q90.windows(4).any(|w| w == b"Exif"));

    // auto: WebP first (as small at this size, far cheaper), then AVIF, then JPEG.
    for (accept, want) in [
        ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "image/webp"),
        ("image/avif,*/*", "image/avif"),
        ("image/avif,image/webp;q=0", "image/avif"),
        ("*/*", "image/jpeg"),
    ] {
        let (ctype, _) = make(&c, &s, "width=100&format=auto", accept).await;
        assert_eq!(ctype, want, "{accept}");
    }
    // Large AVIF boxes are refused with the reason, before any work.
    let resp = c
        .post(s.at("/v1/thumbnail?width=2000&height=2000&format=avif&enlarge=true"))
        .header("content-type", "image/jpeg")
        .body(photo("astronaut-1mp.jpg"))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(resp, 422, "invalid_options").await;
    assert!(problem["detail"].as_str().unwrap().contains("avif"), "{problem}");
    s.stop().await;
}
