//! The fidelity benchmark (`scripts/fidelity.py`) on one photo per source format: the
//! sandboxed thumbnail must be at least as close to the ideal one (a full decode, then one
//! Lanczos3 resize) as the sharper of libvips and Pillow, less 1 dB.
//!
//! Needs Python 3 with the packages of `scripts/requirements.txt` (`.ci/run` installs them).

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn thumbnails_are_as_close_to_the_ideal_as_the_sharpest_peer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let photos = common::corpus_dir().join("photos");
    let files = [
        "camera-like-12mp.jpg",
        "camera-like-12mp-progressive.jpg",
        "astronaut-1mp.jpg",
        "astronaut-2mp.png",
        "coffee-2mp.webp",
        "coffee-2mp.gif",
    ];
    let out = Command::new("python3")
        .arg(root.join("scripts/fidelity.py"))
        .arg("--json")
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_edgethumb"))
        .args(files.iter().map(|f| photos.join(f)))
        .env("EDGETHUMB_CACHE_DIR", common::cache_dir())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "scripts/fidelity.py failed (pip install -r scripts/requirements.txt?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), files.len());
    for row in rows {
        let psnr = |who: &str| row[who]["rgb"].as_f64().unwrap();
        let best_peer = psnr("libvips").max(psnr("pillow"));
        assert!(
            psnr("edgethumb") >= best_peer - 1.0,
            "{}: edgethumb {:.2} dB, sharper peer {best_peer:.2} dB",
            row["file"],
            psnr("edgethumb")
        );
    }
}
