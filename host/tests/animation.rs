//! Animations (issue 16): with `animated=true` a GIF keeps its frames and timing as an
//! animated GIF thumbnail; without it, a still of the first frame; frames x pixels over the
//! pixel limit is refused with the reason.

mod common;

use std::io::Cursor;
use std::time::Duration;

use common::server::*;
use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::{AnimationDecoder, Delay, Frame, Rgba, RgbaImage};

const COLOURS: [[u8; 4]; 3] = [[220, 30, 30, 255], [30, 200, 40, 255], [40, 60, 230, 255]];
const DELAYS_MS: [u32; 3] = [100, 250, 400];

/// A 120x80 animated GIF: three flat frames (red, green, blue) shown 100, 250 and 400 ms.
fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder.set_repeat(Repeat::Infinite).unwrap();
        for (colour, ms) in COLOURS.iter().zip(DELAYS_MS) {
            let frame = RgbaImage::from_pixel(120, 80, Rgba(*colour));
            let delay = Delay::from_saturating_duration(Duration::from_millis(ms as u64));
            encoder
                .encode_frame(Frame::from_parts(frame, 0, 0, delay))
                .unwrap();
        }
    }
    out
}

async fn post(c: &reqwest::Client, s: &TestServer, query: &str) -> reqwest::Response {
    c.post(s.at(&format!("/v1/thumbnail?{query}")))
        .header("content-type", "image/gif")
        .body(animated_gif())
        .send()
        .await
        .unwrap()
}

async fn animations_keep_their_frames_and_timing_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let resp = post(&c, &s, "width=60&animated=true").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/gif");
    let job_url = resp.headers()["content-location"].to_str().unwrap().to_string();
    let gif = resp.bytes().await.unwrap();
    let frames = GifDecoder::new(Cursor::new(&gif[..]))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 3);
    for ((frame, colour), ms) in frames.iter().zip(COLOURS).zip(DELAYS_MS) {
        let (num, den) = frame.delay().numer_denom_ms();
        assert_eq!(num / den, ms);
        let buf = frame.buffer();
        assert_eq!(buf.dimensions(), (60, 40));
        let p = buf.get_pixel(30, 20);
        for ch in 0..3 {
            assert!(
                (p[ch] as i32 - colour[ch] as i32).abs() <= 8,
                "{p:?} vs {colour:?}"
            );
        }
    }
    let job = get_json(&c, s.at(&job_url)).await;
    assert_eq!(job["options"]["animated"], true, "{job}");
    assert_eq!(job["result"]["format"], "gif", "{job}");
    assert_eq!(job["source"]["format"], "gif", "{job}");

    // The default: a still of the first frame, in the default format.
    let resp = post(&c, &s, "width=60").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let still = image::load_from_memory(&resp.bytes().await.unwrap())
        .unwrap()
        .into_rgb8();
    assert!(still.get_pixel(30, 20)[0] > 180, "the first frame is red");
    s.stop().await;
}

async fn frames_times_pixels_over_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // One 120x80 frame (9,600 pixels) fits; three (28,800) do not.
    let s = TestServer::start(dir.path(), &["--max-pixels", "20000"]).await;
    let c = client();
    let problem = expect_problem(
        post(&c, &s, "width=60&animated=true").await,
        422,
        "invalid_options",
    )
    .await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("3 frames") && detail.contains("28800"),
        "{problem}"
    );
    assert_eq!(
        post(&c, &s, "width=60").await.status(),
        200,
        "the still still works"
    );
    s.stop().await;
}

both_backends!(
    animations_keep_their_frames_and_timing_when_asked,
    frames_times_pixels_over_the_limit_are_refused
);
