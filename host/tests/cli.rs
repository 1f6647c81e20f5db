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
        "--overwrite",
        "./thumbs/",
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
    assert_eq!(size_of(&out.path().join("coffee.jpg")), (80, 53));
    // Without --enlarge a source smaller than the box keeps its size.
    assert_eq!(size_of(&out.path().join("small.jpg")), (64, 48));
    assert!(
        !out.path().join("sub").exists(),
        "not recursive without --recursive"
    );
    // Recursively, the subdirectory's image lands in the same subdirectory (--overwrite: the
    // first run's thumbnails are there).
    let o = edgethumb()
        .arg("thumb")
        .arg("--recursive")
        .arg("--overwrite")
        .arg(input.path())
        .arg("-o")
        .arg(out.path())
        .args(["--width", "50", "--height", "50"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("3 of 4 thumbnails written"), "{err}");
    assert_eq!(size_of(&out.path().join("coffee.jpg")), (50, 33));
    assert_eq!(size_of(&out.path().join("sub/deep.jpg")), (50, 38));
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
    assert_eq!(size_of(&out.path().join("coffee.jpg")), (64, 43));
    assert_eq!(size_of(&out.path().join("sub/deep.jpg")), (64, 48));
    runtime.block_on(server.stop());
}

/// The four small corpus images the output-safety tests run on, by the name they are copied
/// under: an opaque JPEG, a PNG, a still GIF and an animated GIF.
const SMALL: [(&str, &str); 4] = [
    ("cat.jpg", "formats/jpg/progressive/cat.jpg"),
    ("iptc.png", "formats/png/iptc.png"),
    ("still.gif", "formats/gif/simple/alpha_gif_a.gif"),
    ("anim.gif", "formats/gif/anim/any-disposal.gif"),
];

/// A folder holding writable copies of [`SMALL`] (the corpus files are read-only, which would
/// hide a write over an input).
fn small_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, path) in SMALL {
        let bytes = std::fs::read(common::corpus_dir().join(path)).unwrap();
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn sha256(path: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Every file in `dir` (not below it) with its sha256.
fn hashes(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), sha256(&p)))
        .collect()
}

/// The extension a thumbnail's bytes call for.
fn extension_of(bytes: &[u8]) -> &'static str {
    match image::guess_format(bytes).unwrap() {
        image::ImageFormat::Png => "png",
        image::ImageFormat::Jpeg => "jpg",
        image::ImageFormat::WebP => "webp",
        image::ImageFormat::Avif => "avif",
        image::ImageFormat::Gif => "gif",
        other => panic!("not an output format: {other:?}"),
    }
}

/// `dir` holds exactly one thumbnail per stem, each under the extension its bytes call for.
fn assert_thumbnails(dir: &std::path::Path, stems: &[&str]) {
    let mut found: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let ext = path.extension().unwrap().to_string_lossy();
        assert_eq!(ext, extension_of(&bytes), "{}", path.display());
        found.push(path.file_stem().unwrap().to_string_lossy().into_owned());
    }
    found.sort();
    let mut stems = stems.to_vec();
    stems.sort();
    assert_eq!(found, stems, "in {}", dir.display());
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn thumb_of_a_folder_writes_into_thumbs_and_never_over_the_photos() {
    let dir = small_folder();
    let before = hashes(dir.path());
    let o = edgethumb()
        .current_dir(dir.path())
        .args(["thumb", "."])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("4 of 4 thumbnails written"), "{}", stderr(&o));
    assert_eq!(
        hashes(dir.path()),
        before,
        "an input changed, or a file was added beside them"
    );
    assert_thumbnails(&dir.path().join("thumbs"), &["anim", "cat", "iptc", "still"]);

    // Named files, `./` and all, go to ./thumbs as well.
    let dir = small_folder();
    let o = edgethumb()
        .current_dir(dir.path())
        .args(["thumb", "cat.jpg", "./iptc.png"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(hashes(dir.path()), before);
    assert_thumbnails(&dir.path().join("thumbs"), &["cat", "iptc"]);

    // One file with no -o: ./thumbs/NAME.EXT too.
    let dir = small_folder();
    let o = edgethumb()
        .current_dir(dir.path())
        .args(["thumb", "cat.jpg"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(hashes(dir.path()), before);
    assert_thumbnails(&dir.path().join("thumbs"), &["cat"]);

    // A second --recursive run does not make thumbnails of ./thumbs.
    let o = edgethumb()
        .current_dir(dir.path())
        .args(["thumb", "--recursive", "."])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("3 of 4 thumbnails written"), "{}", stderr(&o));
    assert!(!dir.path().join("thumbs/thumbs").exists());
}

#[test]
fn existing_outputs_are_kept_unless_overwrite_and_inputs_always() {
    let dir = small_folder();
    let inputs = hashes(dir.path());
    let thumb = |args: &[&str]| thumb_in(dir.path(), args);
    // -o FILE that exists: a usage error before any work, the file as it was.
    std::fs::write(dir.path().join("precious.png"), b"precious").unwrap();
    let o = thumb(&["iptc.png", "-o", "precious.png"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already exists") && stderr(&o).contains("--overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(dir.path().join("precious.png")).unwrap(),
        b"precious"
    );
    let o = thumb(&["iptc.png", "-o", "precious.png", "--overwrite"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = std::fs::read(dir.path().join("precious.png")).unwrap();
    assert_eq!(image::guess_format(&bytes).unwrap(), image::ImageFormat::Png);
    std::fs::remove_file(dir.path().join("precious.png")).unwrap();

    // An input as the output, however it is spelled, even with --overwrite.
    #[cfg(unix)]
    std::os::unix::fs::symlink("iptc.png", dir.path().join("link.png")).unwrap();
    for (input, output) in [
        ("iptc.png", "iptc.png"),
        ("iptc.png", "./iptc.png"),
        ("./iptc.png", "iptc.png"),
        ("iptc.png", "link.png"),
    ] {
        let o = thumb(&[input, "-o", output, "--overwrite"]);
        assert_eq!(o.status.code(), Some(2), "{input} -o {output}: {}", stderr(&o));
        assert!(stderr(&o).contains("is an input"), "{}", stderr(&o));
    }
    // A directory holding the inputs as the output directory.
    let o = thumb(&[".", "-o", ".", "--overwrite"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("which is an input"), "{}", stderr(&o));
    #[cfg(unix)]
    std::fs::remove_file(dir.path().join("link.png")).unwrap();
    assert_eq!(hashes(dir.path()), inputs);
    assert!(
        !dir.path().join("thumbs").exists(),
        "nothing is written on a usage error"
    );

    // In ./thumbs, an existing thumbnail fails its input (exit 1) and the others are written.
    std::fs::create_dir(dir.path().join("thumbs")).unwrap();
    std::fs::write(dir.path().join("thumbs/iptc.png"), b"old").unwrap();
    let o = thumb(&["cat.jpg", "iptc.png", "--format", "png"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("1 of 2 thumbnails written"), "{err}");
    assert!(
        err.contains("iptc.png") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.path().join("thumbs/iptc.png")).unwrap(), b"old");
    assert!(dir.path().join("thumbs/cat.png").exists());
    let o = thumb(&["cat.jpg", "iptc.png", "--format", "png", "--overwrite"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_thumbnails(&dir.path().join("thumbs"), &["cat", "iptc"]);
    assert_eq!(hashes(dir.path()), inputs);
}

/// `edgethumb thumb ARGS` run in `dir`.
fn thumb_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    edgethumb()
        .current_dir(dir)
        .arg("thumb")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn extensions_are_the_format_made() {
    let dir = small_folder();
    let thumb = |args: &[&str]| thumb_in(dir.path(), args);
    // An animation kept is a GIF (auto, without an Accept to say WebP).
    let o = thumb(&["anim.gif", "--animated"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let gif = std::fs::read(dir.path().join("thumbs/anim.gif")).unwrap();
    assert!(gif.starts_with(b"GIF8"));
    assert_thumbnails(&dir.path().join("thumbs"), &["anim"]);
    // ...so -o NAME.png (a PNG asked for) does not get one.
    let o = thumb(&["anim.gif", "--animated", "-o", "anim-thumb.png"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!dir.path().join("anim-thumb.png").exists());
    let o = thumb(&[
        "anim.gif",
        "--animated",
        "--format",
        "webp",
        "-o",
        "anim-thumb.gif",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("name it anim-thumb.webp"), "{}", stderr(&o));
    assert!(!dir.path().join("anim-thumb.gif").exists());
    // JPEG is .jpg; -o x.png with --format jpeg is refused rather than mislabelled.
    let o = thumb(&["iptc.png", "--format", "jpeg"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.path().join("thumbs/iptc.jpg").exists());
    let o = thumb(&["iptc.png", "--format", "jpeg", "-o", "x.png"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("x.jpg"), "{}", stderr(&o));
    assert!(!dir.path().join("x.png").exists());
    // An extension that names no output format is a usage error before any work.
    for name in ["x.tiff", "x.txt", "x"] {
        let o = thumb(&["cat.jpg", "-o", name]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(&format!("-o {name}:")), "{}", stderr(&o));
        assert!(!dir.path().join(name).exists());
    }
    assert!(stderr(&thumb(&["cat.jpg", "-o", "x.tiff"])).contains(".tiff is not an output format"));
    // The name's own format is what is made.
    let o = thumb(&["cat.jpg", "-o", "x.webp"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        extension_of(&std::fs::read(dir.path().join("x.webp")).unwrap()),
        "webp"
    );
}

#[test]
fn exit_codes_say_done_partly_done_or_misused() {
    let dir = small_folder();
    let run = |args: &[&str]| thumb_in(dir.path(), args);
    assert_eq!(run(&["cat.jpg", "iptc.png"]).status.code(), Some(0));
    // One corrupt file: the others are written, the summary names it, exit 1.
    std::fs::write(dir.path().join("corrupt.png"), b"\x89PNG\r\n\x1a\n not a png").unwrap();
    let o = run(&[".", "-o", "out"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("4 of 5 thumbnails written") && err.contains("1 failed"),
        "{err}"
    );
    assert!(err.contains("corrupt.png"), "{err}");
    assert_thumbnails(&dir.path().join("out"), &["anim", "cat", "iptc", "still"]);
    // Usage errors: 2, with nothing written.
    for args in [
        &["missing.jpg", "cat.jpg", "-o", "u"][..],
        &["cat.jpg", "--no-such-flag"],
        &["cat.jpg", "iptc.png", "-o", "-"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!dir.path().join("u").exists());
    }
    assert!(stderr(&run(&["missing.jpg"])).contains("missing.jpg does not exist"));
}

#[test]
fn batch_of_a_folder_writes_into_thumbs_and_never_over_the_photos() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = runtime.block_on(common::server::TestServer::start(data.path(), &[]));
    let dir = small_folder();
    let before = hashes(dir.path());
    let batch = |args: &[&str]| {
        edgethumb()
            .current_dir(dir.path())
            .args(["batch", "--server", &server.url])
            .args(args)
            .output()
            .unwrap()
    };
    let o = batch(&["."]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(hashes(dir.path()), before);
    // The server's auto: JPEG for the opaque photo; each named as the server said.
    assert_thumbnails(&dir.path().join("thumbs"), &["anim", "cat", "iptc", "still"]);
    assert!(dir.path().join("thumbs/cat.jpg").exists());
    // Again: every thumbnail exists, so each input fails and none is touched.
    let thumbs = hashes(&dir.path().join("thumbs"));
    let o = batch(&["."]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("0 of 4 thumbnails written"), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(hashes(&dir.path().join("thumbs")), thumbs);
    // The folder itself as the output: refused before anything is sent.
    let o = batch(&[".", "-o", ".", "--overwrite"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(hashes(dir.path()), before);
    // An animation kept comes back a GIF, and is named so.
    let o = batch(&["anim.gif", "--animated", "--overwrite"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        std::fs::read(dir.path().join("thumbs/anim.gif"))
            .unwrap()
            .starts_with(b"GIF8")
    );
    assert_eq!(hashes(dir.path()), before);
    runtime.block_on(server.stop());
}
