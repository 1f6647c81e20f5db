//! The resizer component on a second runtime: `scripts/jco/thumbs.mjs` transpiles it with jco
//! and runs it on Node's V8 (preview2-shim, granted nothing), for every `thumbnail`, `reject`
//! and `either` row of `../shared/corpus/MANIFEST.tsv`, through `thumbnails.make` (WIT 1.1, with
//! gravity, AVIF and animations), the export the host calls. Its thumbnails must be byte-identical
//! to the host's sandboxed resizer's (wasmtime), and its refusals the same error kinds.
//!
//! The npm packages are pinned in scripts/jco/package-lock.json; this test installs them with
//! `npm ci` when they are missing or not the pinned versions, so it never skips.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::node::{ensure_npm_packages, repo_root, run_bounded};
use common::*;
use edgethumb::sandbox::SandboxError;
use resizer_core::{Fit, Gravity, Options, OutputFormat};

/// Node's whole run over the corpus takes well under a minute here.
const NODE_TIMEOUT: Duration = Duration::from_secs(300);

fn fit_name(fit: Fit) -> &'static str {
    match fit {
        Fit::Contain => "contain",
        Fit::Cover => "cover",
        Fit::Fill => "fill",
    }
}

/// The host's code for an error variant tag as jco reports it (`thumbs.mjs` writes `trap`
/// for a guest crash).
fn host_code_of_tag(tag: &str) -> &str {
    match tag {
        "unsupported-format" => "unsupported_format",
        "malformed-image" => "malformed_image",
        "too-large" => "image_too_large",
        "invalid-options" => "invalid_options",
        "internal" => "component_internal_error",
        "trap" => "component_crashed",
        other => other,
    }
}

/// Where two thumbnails that should be identical differ, for the failure message.
fn describe_difference(host: &[u8], node: &[u8]) -> String {
    let sizes = format!("host {} bytes, node {} bytes", host.len(), node.len());
    match (image::load_from_memory(host), image::load_from_memory(node)) {
        (Ok(a), Ok(b)) if a.width() == b.width() && a.height() == b.height() => {
            let (a, b) = (a.to_rgba8(), b.to_rgba8());
            let diffs: Vec<u8> = a
                .as_raw()
                .iter()
                .zip(b.as_raw())
                .map(|(x, y)| x.abs_diff(*y))
                .filter(|d| *d > 0)
                .collect();
            format!(
                "{sizes}; both {}x{}; {} of {} channel values differ, by at most {}",
                a.width(),
                a.height(),
                diffs.len(),
                a.as_raw().len(),
                diffs.iter().max().copied().unwrap_or(0)
            )
        }
        (Ok(a), Ok(b)) => format!(
            "{sizes}; host {}x{}, node {}x{}",
            a.width(),
            a.height(),
            b.width(),
            b.height()
        ),
        (a, b) => format!("{sizes}; decodes: host {}, node {}", a.is_ok(), b.is_ok()),
    }
}

struct Call {
    path: String,
    expected: String,
    options: Options,
    out: String,
}

#[test]
fn jco_on_node_gives_the_hosts_bytes_and_errors() {
    let started = Instant::now();
    ensure_npm_packages(
        "jco",
        &["@bytecodealliance/jco", "@bytecodealliance/preview2-shim"],
    );

    let corpus = corpus_dir().canonicalize().unwrap();
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).unwrap();
    let rows: Vec<(String, String)> = manifest
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 6, "bad manifest line {l:?}");
            (f[0].to_string(), f[5].to_string())
        })
        .collect();

    // Every row with the defaults; every thumbnail row again as a cropped JPEG; every fourth
    // one stretched into a small WebP, every fourth (another) a smart crop, every tenth a small
    // AVIF; animations kept as GIF and as WebP. All through `thumbnails.make`, the interface
    // the host uses, on both runtimes.
    let cover_jpeg = Options {
        width: 160,
        height: 90,
        fit: Fit::Cover,
        format: OutputFormat::Jpeg,
        quality: 85,
        ..Options::default()
    };
    let fill_webp = Options {
        width: 64,
        height: 48,
        fit: Fit::Fill,
        format: OutputFormat::Webp,
        ..Options::default()
    };
    let smart_png = Options {
        width: 90,
        height: 120,
        fit: Fit::Cover,
        gravity: Gravity::Smart,
        ..Options::default()
    };
    let north_east_avif = Options {
        width: 48,
        height: 48,
        fit: Fit::Cover,
        format: OutputFormat::Avif,
        gravity: Gravity::NorthEast,
        quality: 60,
        ..Options::default()
    };
    let animated = |format| Options {
        width: 48,
        height: 48,
        format,
        animated: true,
        ..Options::default()
    };
    let mut calls = Vec::new();
    for (i, (path, expected)) in rows.iter().enumerate() {
        let mut sets = vec![Options::default()];
        if expected == "thumbnail" {
            sets.push(cover_jpeg.clone());
            if i % 4 == 0 {
                sets.push(fill_webp.clone());
            }
            if i % 4 == 2 {
                sets.push(smart_png.clone());
            }
            if i % 10 == 5 {
                sets.push(north_east_avif.clone());
            }
            if path.contains("/anim/") {
                sets.push(animated(OutputFormat::Gif));
                sets.push(animated(OutputFormat::Webp));
            }
        }
        for options in sets {
            let out = format!(
                "{:04}-{}.{}",
                calls.len(),
                fit_name(options.fit),
                options.format.name()
            );
            calls.push(Call {
                path: path.clone(),
                expected: expected.clone(),
                options,
                out,
            });
        }
    }
    let thumbnail_rows = rows.iter().filter(|r| r.1 == "thumbnail").count();
    let reject_rows = rows.iter().filter(|r| r.1 == "reject").count();
    assert!(
        thumbnail_rows > 200,
        "manifest has only {thumbnail_rows} thumbnail rows"
    );
    assert!(reject_rows > 0, "manifest has no reject rows");

    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("LIST.tsv");
    let out_dir = tmp.path().join("out");
    let mut text = String::new();
    for c in &calls {
        let o = &c.options;
        text += &format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            corpus.join(&c.path).display(),
            o.width,
            o.height,
            fit_name(o.fit),
            o.format.name(),
            o.quality,
            o.gravity.name(),
            o.animated,
            c.out
        );
    }
    std::fs::write(&list, text).unwrap();

    let node_started = Instant::now();
    let summary = run_bounded(
        Command::new("node")
            .arg(repo_root().join("scripts/jco/thumbs.mjs"))
            .arg(env!("EDGETHUMB_RESIZER_WASM"))
            .arg(&list)
            .arg(&out_dir)
            .current_dir(repo_root()),
        NODE_TIMEOUT,
        "node scripts/jco/thumbs.mjs",
    );
    let node_elapsed = node_started.elapsed();

    let resizer = builtin();
    let mut failures = Vec::new();
    let mut identical: BTreeMap<String, usize> = BTreeMap::new();
    let mut same_error: BTreeMap<String, usize> = BTreeMap::new();
    let mut host_total = Duration::ZERO;
    for c in &calls {
        let bytes = std::fs::read(corpus.join(&c.path)).unwrap();
        let host = resizer.thumbnail(&bytes, &c.options);
        let node_out = out_dir.join(&c.out);
        let node_err = out_dir.join(format!("{}.err", c.out));
        let node: Result<Vec<u8>, String> =
            match (std::fs::read(&node_out), std::fs::read_to_string(&node_err)) {
                (Ok(data), Err(_)) => Ok(data),
                (Err(_), Ok(err)) => Err(err),
                (Ok(_), Ok(_)) => panic!("{}: thumbs.mjs wrote both {} and its .err", c.path, c.out),
                (Err(_), Err(_)) => panic!("{}: thumbs.mjs wrote neither {} nor its .err", c.path, c.out),
            };
        let what = format!(
            "{} ({}x{} {} {})",
            c.path,
            c.options.width,
            c.options.height,
            fit_name(c.options.fit),
            c.options.format.name()
        );
        match (&host, &node) {
            (Ok((t, stats)), Ok(data)) => {
                host_total += stats.total;
                if t.data == *data {
                    *identical.entry(c.expected.clone()).or_default() += 1;
                } else {
                    failures.push(format!(
                        "{what}: bytes differ: {}",
                        describe_difference(&t.data, data)
                    ));
                }
                if c.expected == "reject" {
                    failures.push(format!("{what}: a reject row was thumbnailed by both runtimes"));
                }
            }
            (Err(e), Err(err)) => {
                let tag = err.lines().next().unwrap_or("");
                let host_code = e.code().as_str();
                if host_code == host_code_of_tag(tag) {
                    *same_error
                        .entry(format!("{} {host_code}", c.expected))
                        .or_default() += 1;
                } else {
                    failures.push(format!(
                        "{what}: host refused with {host_code} ({e}), node with {}",
                        err.trim()
                    ));
                }
                if c.expected == "thumbnail" {
                    failures.push(format!(
                        "{what}: a thumbnail row was refused by both runtimes ({host_code})"
                    ));
                }
                if !matches!(e, SandboxError::Image(_)) {
                    failures.push(format!("{what}: the host's sandbox failed: {e}"));
                }
            }
            (Ok(_), Err(err)) => failures.push(format!(
                "{what}: host thumbnailed it, node refused: {}",
                err.trim()
            )),
            (Err(e), Ok(_)) => failures.push(format!(
                "{what}: node thumbnailed it, host refused: {} ({e})",
                e.code()
            )),
        }
    }

    let host_ok: usize = identical.values().sum();
    eprintln!("{}", summary.trim());
    eprintln!(
        "jco: {} manifest rows ({thumbnail_rows} thumbnail, {reject_rows} reject, {} either), {} calls: \
         byte-identical {identical:?}, same error {same_error:?}, {} failures; node's run {:.1} s, \
         the host's sandboxed calls (wasmtime, instantiation included) {:.1} ms a thumbnail; whole test {:.1} s",
        rows.len(),
        rows.iter().filter(|r| r.1 == "either").count(),
        calls.len(),
        failures.len(),
        node_elapsed.as_secs_f64(),
        host_total.as_secs_f64() * 1000.0 / host_ok.max(1) as f64,
        started.elapsed().as_secs_f64(),
    );
    assert!(
        failures.is_empty(),
        "{} of {} calls differ between jco on Node and the host:\n{}",
        failures.len(),
        calls.len(),
        failures.join("\n")
    );
    // Every thumbnail row with every options set it was given, and every reject row.
    assert_eq!(
        identical.get("thumbnail").copied().unwrap_or(0),
        calls.iter().filter(|c| c.expected == "thumbnail").count()
    );
    assert_eq!(
        same_error
            .iter()
            .filter(|(k, _)| k.starts_with("reject "))
            .map(|(_, v)| v)
            .sum::<usize>(),
        reject_rows
    );
}
