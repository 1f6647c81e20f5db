//! Colour management through the sandboxed component (issue 16): Display P3 and Adobe RGB
//! JPEGs, made by LittleCMS (Pillow's ImageCms, `scripts/icc_fixtures.py`) from known sRGB
//! colours, come out as those sRGB colours within a small ΔE; read as if they were sRGB
//! (no conversion) they would not. Outputs carry no EXIF or GPS.

mod common;

use std::process::Command;

use common::builtin;
use resizer_core::{Options, OutputFormat};

const PATCHES: u32 = 10;
const PATCH: u32 = 32;
/// The thumbnail is a quarter of the fixture's size: 8-pixel patches.
const SCALE: u32 = 4;

fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/icc_fixtures.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// CIE L*a*b* (D65) of an sRGB colour.
fn lab(rgb: [u8; 3]) -> [f64; 3] {
    let lin = |c: u8| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    [116.0 * f(y) - 16.0, 500.0 * (f(x) - f(y)), 200.0 * (f(y) - f(z))]
}

fn delta_e(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (a, b) = (lab(a), lab(b));
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The colour at the centre of each patch of an image `PATCH * PATCHES / scale` wide.
fn patch_colours(img: &image::RgbImage, scale: u32) -> Vec<[u8; 3]> {
    let patch = PATCH / scale;
    (0..PATCHES)
        .map(|i| img.get_pixel(i * patch + patch / 2, patch / 2).0)
        .collect()
}

/// Mean and largest ΔE between two lists of colours.
fn compare(got: &[[u8; 3]], want: &[[u8; 3]]) -> (f64, f64) {
    let des: Vec<f64> = got.iter().zip(want).map(|(g, w)| delta_e(*g, *w)).collect();
    (
        des.iter().sum::<f64>() / des.len() as f64,
        des.iter().cloned().fold(0.0, f64::max),
    )
}

#[test]
fn wide_gamut_photos_come_out_in_srgb_without_metadata() {
    let dir = fixtures();
    let reference = image::open(dir.path().join("reference.png")).unwrap().to_rgb8();
    let want = patch_colours(&reference, 1);
    for name in ["p3.jpg", "adobe-rgb.jpg"] {
        let data = std::fs::read(dir.path().join(name)).unwrap();
        assert!(
            data.windows(4).any(|w| w == b"Exif"),
            "{name}: the fixture has EXIF"
        );
        let options = |format| Options {
            width: PATCH * PATCHES / SCALE,
            height: PATCH / SCALE,
            format,
            ..Options::default()
        };
        let (thumb, _) = builtin().thumbnail(&data, &options(OutputFormat::Png)).unwrap();
        let got = patch_colours(&image::load_from_memory(&thumb.data).unwrap().to_rgb8(), SCALE);
        let (mean, max) = compare(&got, &want);
        assert!(
            mean < 2.0 && max < 4.0,
            "{name}: ΔE mean {mean:.2}, max {max:.2}; {got:?}"
        );
        // The same pixels read as sRGB, as a converter-less service shows them.
        let naive = patch_colours(&image::load_from_memory(&data).unwrap().to_rgb8(), 1);
        let (naive_mean, _) = compare(&naive, &want);
        assert!(
            naive_mean > 2.0 * mean.max(1.0),
            "{name}: unconverted ΔE {naive_mean:.2} against {mean:.2}"
        );
        // No EXIF, GPS or profile in any output format.
        for format in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
            let (thumb, _) = builtin().thumbnail(&data, &options(format)).unwrap();
            for marker in [&b"Exif"[..], b"GPS", b"ICC_PROFILE", b"iCCP", b"ICCP", b"eXIf"] {
                assert!(
                    !thumb.data.windows(marker.len()).any(|w| w == marker),
                    "{name} as {format:?}: the output carries {:?}",
                    String::from_utf8_lossy(marker)
                );
            }
        }
    }
}
