//! The `edgethumb` binary as a user runs it.

mod common;

use std::process::Command;

fn edgethumb() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgethumb"));
    cmd.env("EDGETHUMB_CACHE_DIR", common::cache_dir());
    cmd
}

#[test]
fn thumb_writes_a_png_of_the_expected_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("coffee.png");
    let input = common::corpus_dir().join("photos/coffee-12mp.jpg");
    let o = edgethumb()
        .arg("thumb")
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(image::guess_format(&bytes).unwrap(), image::ImageFormat::Png);
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (100, 67));

    let out = dir.path().join("cover.jpg");
    let o = edgethumb()
        .arg("thumb")
        .arg(&input)
        .args([
            "--width",
            "64",
            "--height",
            "64",
            "--fit",
            "cover",
            "--format",
            "jpeg",
            "--quality",
            "60",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let img = image::load_from_memory(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
}

#[test]
fn probe_prints_the_header_as_json() {
    let input = common::corpus_dir().join("photos/coffee-exif-orientation-6.jpg");
    let o = edgethumb().arg("probe").arg(&input).output().unwrap();
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "jpeg");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(800), Some(1200))
    );
    assert_eq!(v["orientation"], 6);
}

#[test]
fn bad_input_fails_with_a_message_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"this is not a png").unwrap();
    let o = edgethumb()
        .arg("thumb")
        .arg(&junk)
        .arg("-o")
        .arg(dir.path().join("x.png"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unsupported format"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let o = edgethumb()
        .args(["thumb", "--fit", "squash"])
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("contain, cover or fill"));
}

#[test]
fn help_documents_the_commands_and_flags() {
    let o = edgethumb().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for word in ["thumb", "probe"] {
        assert!(help.contains(word), "{help}");
    }
    let o = edgethumb().args(["thumb", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--width",
        "--height",
        "--fit",
        "--format",
        "--quality",
        "--component",
        "--deadline",
        "--max-memory",
    ] {
        assert!(help.contains(flag), "missing {flag} in:\n{help}");
    }
}

#[test]
fn bench_reports_sandboxed_and_native_timings_as_json() {
    let input = common::corpus_dir().join("photos/astronaut-1mp.jpg");
    for mode in ["sandbox", "native"] {
        let mut cmd = edgethumb();
        cmd.args(["bench", "--iterations", "3", "--json"]).arg(&input);
        if mode == "native" {
            cmd.arg("--native");
        }
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["mode"], mode);
        assert_eq!(v["iterations"], 3);
        assert!(v["file"].as_str().unwrap().ends_with("astronaut-1mp.jpg"));
        let (median, p95) = (v["median_ms"].as_f64().unwrap(), v["p95_ms"].as_f64().unwrap());
        assert!(median > 0.0 && p95 >= median, "{v}");
        assert_eq!(
            (v["output_width"].as_u64(), v["output_height"].as_u64()),
            (Some(100), Some(100))
        );
        if mode == "sandbox" {
            assert!(v["peak_memory_bytes"].as_u64().unwrap() > 0, "{v}");
        }
    }
}
