//! Every image of `../shared/corpus/MANIFEST.tsv` through the sandboxed component: thumbnails
//! of the right size for `thumbnail` rows, typed errors for `reject` rows, one or the other
//! for `either` rows, and never a crash, a deadline or a memory error.

mod common;

use common::*;
use edgethumb::sandbox::SandboxError;
use resizer_core::Options;

struct Row {
    path: String,
    format: String,
    width: u32,
    height: u32,
    expected: String,
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 6, "bad manifest line {l:?}");
            Row {
                path: f[0].into(),
                format: f[1].into(),
                width: f[2].parse().unwrap_or(0),
                height: f[3].parse().unwrap_or(0),
                expected: f[5].into(),
            }
        })
        .collect()
}

/// The contain size, allowing a pixel of rounding either way. `either` rows carry no size in
/// the manifest; there the source size the component read stands in.
fn check_size(row: &Row, source: (u32, u32), w: u32, h: u32) -> Result<(), String> {
    let (sw, sh) = if row.width > 0 {
        (row.width, row.height)
    } else {
        source
    };
    let (ew, eh) = resizer_core::pipeline::target_size(sw, sh, 100, 100, resizer_core::Fit::Contain);
    if w.abs_diff(ew) <= 1 && h.abs_diff(eh) <= 1 && w.max(h) == 100 {
        Ok(())
    } else {
        Err(format!(
            "{}: got {w}x{h}, expected {ew}x{eh} from {sw}x{sh}",
            row.path
        ))
    }
}

#[test]
fn every_manifest_image_gets_the_right_outcome() {
    let rows = manifest();
    assert!(rows.len() > 200, "manifest has only {} rows", rows.len());
    let resizer = builtin();
    let mut failures = Vec::new();
    let (mut thumbs, mut refusals) = (0, 0);
    for row in &rows {
        let bytes = std::fs::read(corpus_dir().join(&row.path)).unwrap();
        let result = resizer.thumbnail(&bytes, &Options::default());
        let outcome = match (&result, row.expected.as_str()) {
            (Ok((t, _)), "thumbnail" | "either") => {
                thumbs += 1;
                match image::load_from_memory(&t.data) {
                    Ok(img) if (img.width(), img.height()) == (t.width, t.height) => {
                        check_size(row, (t.source.width, t.source.height), img.width(), img.height())
                    }
                    Ok(img) => Err(format!(
                        "{}: reported {}x{}, encoded {}x{}",
                        row.path,
                        t.width,
                        t.height,
                        img.width(),
                        img.height()
                    )),
                    Err(e) => Err(format!("{}: output does not decode: {e}", row.path)),
                }
            }
            (Err(SandboxError::Image(_)), "reject" | "either") => {
                refusals += 1;
                Ok(())
            }
            (Ok(_), "reject") => Err(format!("{}: a corrupt file was thumbnailed", row.path)),
            (Err(e), _) => Err(format!("{}: {} ({e})", row.path, e.code())),
            (_, other) => Err(format!("{}: unknown expectation {other}", row.path)),
        };
        if let Err(msg) = outcome {
            failures.push(msg);
        }
        // Where the manifest knows the image, the header-only probe must agree with it.
        if row.expected == "thumbnail" {
            match resizer.probe(&bytes) {
                Ok((info, _)) => {
                    let fmt = info.format.name().to_uppercase();
                    if (fmt.as_str(), info.width, info.height) != (row.format.as_str(), row.width, row.height)
                    {
                        failures.push(format!(
                            "{}: probe says {fmt} {}x{}, manifest {} {}x{}",
                            row.path, info.width, info.height, row.format, row.width, row.height
                        ));
                    }
                }
                Err(e) => failures.push(format!("{}: probe failed: {e}", row.path)),
            }
        }
    }
    eprintln!("{} images: {thumbs} thumbnails, {refusals} refusals", rows.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
