//! Gravity end to end (issue 16): every value places the `cover` crop where it says, `smart`
//! finds an off-centre subject, and a WIT 1.0 component (no `thumbnails` interface) still runs,
//! with its crops centred.

mod common;

use common::server::*;
use common::*;
use edgethumb::sandbox::{BUILTIN_COMPONENT, Sandbox, validate};
use resizer_core::{Fit, Gravity, Options};

/// A `w` x `h` PNG whose red rises left to right and green top to bottom, so the mean
/// colour of a crop says where it was taken.
fn ramps(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / (w - 1)) as u8, (y * 255 / (h - 1)) as u8, 60])
    });
    encode_png(image::DynamicImage::ImageRgb8(img))
}

fn encode_png(img: image::DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .unwrap();
    out
}

/// Mean of each channel.
fn means(png: &[u8]) -> [f64; 3] {
    let img = image::load_from_memory(png).unwrap().into_rgb8();
    let n = (img.width() * img.height()) as f64;
    let mut sum = [0f64; 3];
    for p in img.pixels() {
        for c in 0..3 {
            sum[c] += p[c] as f64;
        }
    }
    sum.map(|s| s / n)
}

#[tokio::test]
async fn every_gravity_places_the_crop_where_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    // A 400x200 source cropped square keeps 200 of its 400 columns; a 200x400 one, 200 rows.
    let (wide, tall) = (ramps(400, 200), ramps(200, 400));
    let start = |focus: f64| (focus * 400.0 - 100.0).clamp(0.0, 200.0);
    // The mean of a ramp over columns start..start+200, in levels.
    let level = |start: f64| (start + 100.0) / 400.0 * 255.0;
    for (gravity, (fx, fy)) in [
        ("center", (0.5, 0.5)),
        ("north", (0.5, 0.0)),
        ("north-east", (1.0, 0.0)),
        ("east", (1.0, 0.5)),
        ("south-east", (1.0, 1.0)),
        ("south", (0.5, 1.0)),
        ("south-west", (0.0, 1.0)),
        ("west", (0.0, 0.5)),
        ("north-west", (0.0, 0.0)),
        ("focus:0.3,0.8", (0.3, 0.8)),
        ("focus:0.9,0.05", (0.9, 0.05)),
    ] {
        let query = format!("width=100&height=100&fit=cover&gravity={gravity}");
        let (png, job) = post_thumbnail(&c, &s, &query, wide.clone()).await;
        let red = means(&png)[0];
        assert!(
            (red - level(start(fx))).abs() < 4.0,
            "{gravity}: red {red}, want {}",
            level(start(fx))
        );
        assert_eq!(job["options"]["gravity"], gravity, "{job}");
        let (png, _) = post_thumbnail(&c, &s, &query, tall.clone()).await;
        let green = means(&png)[1];
        assert!(
            (green - level(start(fy))).abs() < 4.0,
            "{gravity}: green {green}, want {}",
            level(start(fy))
        );
    }
    // Where it has no effect, the job JSON leaves it out.
    let (_, job) = post_thumbnail(&c, &s, "width=100&height=100&gravity=east", wide.clone()).await;
    assert!(job["options"].get("gravity").is_none(), "{job}");
    for bad in ["up", "focus:1.5,0", "focus:0.5"] {
        let resp = c
            .post(s.at(&format!("/v1/thumbnail?fit=cover&gravity={bad}")))
            .header("content-type", "image/png")
            .body(wide.clone())
            .send()
            .await
            .unwrap();
        let problem = expect_problem(resp, 422, "invalid_options").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("gravity"),
            "{problem}"
        );
    }
    s.stop().await;
}

/// 600x400: a sky-like gradient with a little noise, and a red disc with stripes (radius 50)
/// centred at 85% of the width, so a centre crop keeps less than half of it.
fn off_centre_subject() -> Vec<u8> {
    let mut seed = 1u32;
    let img = image::RgbImage::from_fn(600, 400, |x, y| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let n = ((seed >> 16) % 9) as f32 - 4.0;
        let (dx, dy) = (x as f32 - 510.0, y as f32 - 200.0);
        if dx.hypot(dy) <= 50.0 {
            let v = if (x / 5) % 2 == 0 { 230 } else { 170 };
            image::Rgb([v, 25, 30])
        } else {
            let t = y as f32 / 400.0;
            image::Rgb([
                (90.0 + 80.0 * t + n) as u8,
                (140.0 + 60.0 * t + n) as u8,
                (220.0 + n) as u8,
            ])
        }
    });
    encode_png(image::DynamicImage::ImageRgb8(img))
}

fn red_pixels(png: &[u8]) -> usize {
    let img = image::load_from_memory(png).unwrap().into_rgb8();
    img.pixels()
        .filter(|p| p[0] > 140 && p[1] < 80 && p[2] < 90)
        .count()
}

#[tokio::test]
async fn smart_crops_keep_an_off_centre_subject() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), &[]).await;
    let c = client();
    let image = off_centre_subject();
    let (centre, _) = post_thumbnail(&c, &s, "width=100&height=100&fit=cover", image.clone()).await;
    let (smart, job) = post_thumbnail(&c, &s, "width=100&height=100&fit=cover&gravity=smart", image).await;
    assert_eq!(job["options"]["gravity"], "smart", "{job}");
    // The whole disc in a 400x400 crop shrunk to 100x100 is about pi * 12.5^2 = 490 pixels.
    let (centre, smart) = (red_pixels(&centre), red_pixels(&smart));
    assert!(smart > 400, "smart crop keeps {smart} red pixels");
    assert!(smart > 2 * centre, "smart {smart} vs centre {centre}");
    s.stop().await;
}

#[test]
fn a_wit_1_0_component_still_runs_and_centres_its_crops() {
    let sandbox = Sandbox::new(common::config()).unwrap();
    let old = as_wit_1_0(BUILTIN_COMPONENT);
    let (old, report) = validate::validate(&sandbox, &old).expect("a 1.0 component validates");
    assert_eq!(old.wit_version(), "1.0.0");
    assert!(!old.has_v11());
    assert!(report.images >= 6, "{report:?}");
    let new = sandbox.load_builtin().unwrap();
    assert_eq!(new.wit_version(), "1.1.0");
    assert!(new.has_v11());

    let image = ramps(400, 200);
    let at = |g: Gravity| Options {
        width: 100,
        height: 100,
        fit: Fit::Cover,
        gravity: g,
        ..Options::default()
    };
    let red = |r: &edgethumb::sandbox::Resizer, g| means(&r.thumbnail(&image, &at(g)).unwrap().0.data)[0];
    let centre = red(&new, Gravity::Center);
    assert!((red(&old, Gravity::East) - centre).abs() < 0.5, "1.0 centres");
    assert!((red(&old, Gravity::Center) - centre).abs() < 0.5);
    assert!(
        red(&new, Gravity::East) > centre + 50.0,
        "1.1 follows the gravity"
    );
}
