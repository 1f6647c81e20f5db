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

/// A directory of images with one that is not an image, and one in a subdirectory.
fn photo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let photos = common::corpus_dir().join("photos");
    std::fs::copy(photos.join("coffee-12mp.jpg"), dir.path().join("coffee.jpg")).unwrap();
    std::fs::write(dir.path().join("small.png"), common::small_png()).unwrap();
    std::fs::write(
        dir.path().join("broken.jpg"),
        b"\xff\xd8\xff\xe0 not really a jpeg",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not picked up: not an image name").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/deep.png"), common::small_png()).unwrap();
    dir
}

fn size_of(path: &std::path::Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

#[test]
fn thumb_a_directory_keeps_going_past_a_bad_file() {
    let input = photo_dir();
    let out = tempfile::tempdir().unwrap();
    let o = edgethumb()
        .arg("thumb")
        .arg(input.path())
        .arg("-o")
        .arg(out.path())
        .args(["--format", "jpeg", "--width", "80", "--height", "80"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("2 of 3 thumbnails written"), "{err}");
    assert!(err.contains("1 failed") && err.contains("broken.jpg"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(size_of(&out.path().join("coffee.jpeg")), (80, 53));
    assert_eq!(size_of(&out.path().join("small.jpeg")), (80, 60));
    assert!(
        !out.path().join("sub").exists(),
        "not recursive without --recursive"
    );
    // Recursively, the subdirectory's image lands in the same subdirectory.
    let o = edgethumb()
        .arg("thumb")
        .arg("--recursive")
        .arg(input.path())
        .arg("-o")
        .arg(out.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("3 of 4 thumbnails written"), "{err}");
    assert_eq!(size_of(&out.path().join("sub/deep.png")), (100, 75));
    // Piped, no progress bar is drawn: stderr is the summary alone.
    assert!(!err.contains("ETA"), "{err}");
}

#[test]
fn thumb_reads_stdin_and_takes_the_format_from_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("from-stdin.jpg");
    let mut child = edgethumb()
        .args(["thumb", "-", "-o"])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &common::small_png()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(image::guess_format(&bytes).unwrap(), image::ImageFormat::Jpeg);
}

#[test]
fn bench_reports_each_file_and_keeps_going() {
    let input = photo_dir();
    let o = edgethumb()
        .args(["bench", "--iterations", "1"])
        .arg(input.path().join("small.png"))
        .arg(input.path().join("broken.jpg"))
        .arg(input.path().join("coffee.jpg"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("small.png") && out.contains("coffee.jpg"), "{out}");
    assert!(err.contains("broken.jpg"), "{err}");
}

#[test]
fn batch_against_a_running_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = runtime.block_on(common::server::TestServer::start(data.path(), &[]));
    let input = photo_dir();
    let out = tempfile::tempdir().unwrap();
    let o = edgethumb()
        .args([
            "batch",
            "--server",
            &server.url,
            "--recursive",
            "--width",
            "64",
            "--height",
            "64",
            "--chunk",
            "2",
        ])
        .arg(input.path())
        .arg("-o")
        .arg(out.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("3 of 4 thumbnails written"), "{err}");
    assert!(
        err.contains("broken.jpg") && err.contains("malformed_image"),
        "{err}"
    );
    // The server's default format, auto, makes JPEGs of these opaque images.
    assert_eq!(size_of(&out.path().join("coffee.jpeg")), (64, 43));
    assert_eq!(size_of(&out.path().join("sub/deep.jpeg")), (64, 48));
    runtime.block_on(server.stop());
}
