//! README.md's curl examples, run as written against a live server: every ```sh block that
//! follows a `<!-- run -->` marker runs in bash with `B` set to the server, `photo.jpg`,
//! `in.png` and `anim.gif` in the working directory, and `curl` failing on any HTTP error.

mod common;

use std::process::Command;

use common::server::*;

fn runnable_blocks(readme: &str) -> Vec<String> {
    readme
        .split("<!-- run -->")
        .skip(1)
        .map(|rest| {
            let start = rest.find("```sh\n").expect("a ```sh block follows <!-- run -->") + 6;
            let end = rest[start..].find("```").unwrap() + start;
            rest[start..end].to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_as_written() {
    let readme = include_str!("../../README.md");
    let blocks = runnable_blocks(readme);
    assert!(
        blocks.len() >= 3,
        "README.md marks its API examples with <!-- run -->"
    );
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path(), &[]).await;
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::corpus_dir().join("photos/coffee-12mp.jpg"),
        work.path().join("photo.jpg"),
    )
    .unwrap();
    std::fs::write(work.path().join("in.png"), common::small_png()).unwrap();
    std::fs::copy(
        common::corpus_dir().join("formats/gif/anim/border_touching_layers.gif"),
        work.path().join("anim.gif"),
    )
    .unwrap();
    for block in &blocks {
        let script =
            format!("set -euo pipefail\ncurl() {{ command curl --fail-with-body \"$@\"; }}\n{block}");
        let dir = work.path().to_path_buf();
        let url = s.url.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .arg("-c")
                .arg(&script)
                .current_dir(&dir)
                .env("B", url)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "this README example failed:\n{block}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // What the examples wrote is what they say they write.
    let thumb = image::open(work.path().join("thumb.jpg")).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (100, 67));
    let out = image::open(work.path().join("out.jpg")).unwrap();
    assert_eq!((out.width(), out.height()), (64, 48));
    let zip = std::fs::File::open(work.path().join("thumbs.zip")).unwrap();
    assert!(zip::ZipArchive::new(zip).unwrap().len() >= 2);
    s.stop().await;
}

/// The README's set-up and test commands are what CI runs, so a fresh machine that follows
/// the README has everything the tests need (Chromium included).
#[test]
fn ci_runs_the_readme_set_up_and_test_commands() {
    let readme = include_str!("../../README.md");
    let ci = include_str!("../../.ci/run");
    let ci_lines: Vec<&str> = ci.lines().map(str::trim).collect();
    for command in [
        "scripts/setup.sh",
        "pip install -r scripts/requirements.txt && cargo test --workspace --locked",
    ] {
        assert!(
            readme.contains(&format!("```sh\n{command}\n```")),
            "README.md gives `{command}` as a command"
        );
        assert!(
            ci_lines.contains(&command),
            ".ci/run runs `{command}` as the README gives it"
        );
    }
    let setup = include_str!("../../scripts/setup.sh");
    for needed in [
        "chromium",
        "wasi-libc",
        "clang-14",
        "npm ci --prefix scripts/jco",
        "npm ci --prefix scripts/browser",
        "scripts/wasmtime-cli.sh",
    ] {
        assert!(setup.contains(needed), "scripts/setup.sh installs {needed}");
    }
}
