//! Every input in `tests/fuzz-regressions/` (found by the fuzz targets in `fuzz/`) through
//! every entry point the fuzzers call: each must return, `Ok` or a typed error, never panic.

use std::path::PathBuf;

use resizer_core::formats::{bmp, gif, ico, jpeg_scaled, tiff};
use resizer_core::{Options, thumbnail};

const MAX_PIXELS: u64 = 4_000_000;

fn inputs() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e != "md"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no inputs in {}", dir.display());
    found
}

#[test]
fn fuzz_findings_return_without_panicking() {
    for (name, data) in inputs() {
        let _ = resizer_core::probe(&data);
        let opts = Options {
            max_pixels: MAX_PIXELS,
            ..Options::default()
        };
        if let Ok(t) = thumbnail(&data, &opts) {
            assert!(
                t.width <= 100 && t.height <= 100,
                "{name}: {}x{}",
                t.width,
                t.height
            );
        }
        let _ = (bmp::dimensions(&data), bmp::decode(&data, MAX_PIXELS));
        let _ = (gif::dimensions(&data), gif::decode(&data, MAX_PIXELS));
        let _ = (ico::dimensions(&data), ico::decode(&data, MAX_PIXELS));
        let _ = (tiff::dimensions(&data), tiff::decode(&data, MAX_PIXELS));
        // As in the pipeline (and the fuzz target), the fast path runs only within the limit.
        let within =
            resizer_core::probe(&data).is_ok_and(|i| u64::from(i.width) * u64::from(i.height) <= MAX_PIXELS);
        for scale in [jpeg_scaled::Scale::Eighth, jpeg_scaled::Scale::Quarter]
            .into_iter()
            .filter(|_| within)
        {
            if let Some(img) = jpeg_scaled::decode(&data, scale) {
                let expected = img.width as usize * img.height as usize * usize::from(img.channels);
                assert_eq!(img.pixels.len(), expected, "{name}");
            }
        }
    }
}
