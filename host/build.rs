//! Builds the resizer component for wasm32-wasip2 so the binary can embed it, and the edge
//! component beside it. Their paths are `EDGETHUMB_RESIZER_WASM` and `EDGETHUMB_EDGE_WASM`
//! at compile time, for the tests that run them on other runtimes.
//!
//! The component is built by a nested cargo with its own target directory (target/component),
//! so it never contends for the outer build's lock. Set `EDGETHUMB_COMPONENT_WASM` to a
//! prebuilt .wasm to skip the nested build (e.g. in a Docker stage that built it already).

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let out = out_dir.join("resizer.wasm");
    let edge_out = out_dir.join("edge.wasm");
    println!("cargo:rustc-env=EDGETHUMB_EDGE_WASM={}", edge_out.display());
    println!("cargo:rustc-env=EDGETHUMB_RESIZER_WASM={}", out.display());

    println!("cargo:rerun-if-env-changed=EDGETHUMB_COMPONENT_WASM");
    if let Ok(prebuilt) = std::env::var("EDGETHUMB_COMPONENT_WASM") {
        println!("cargo:rerun-if-changed={prebuilt}");
        std::fs::copy(&prebuilt, &out).unwrap_or_else(|e| panic!("copying {prebuilt}: {e}"));
        return;
    }
    for p in [
        "wit",
        "resizer-core",
        "resizer-component",
        "edge-component",
        "Cargo.lock",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ensure_target(&root);
    let target_dir = root.join("target").join("component");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--locked",
            "-p",
            "resizer-component",
            "-p",
            "edge-component",
            "--target",
            TARGET,
            "--profile",
            "component",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags (coverage instrumentation, host-only codegen options) must not
    // leak into the wasm build; .cargo/config.toml gives the component its own.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo for the resizer component");
    assert!(
        status.success(),
        "building the resizer component for {TARGET} failed"
    );
    let wasm = target_dir
        .join(TARGET)
        .join("component")
        .join("resizer_component.wasm");
    std::fs::copy(&wasm, &out).unwrap_or_else(|e| panic!("copying {}: {e}", wasm.display()));
    let edge = wasm.with_file_name("edge_component.wasm");
    std::fs::copy(&edge, &edge_out).unwrap_or_else(|e| panic!("copying {}: {e}", edge.display()));
}

/// rustup 1.29 does not install the targets rust-toolchain.toml lists on a plain cargo call,
/// so a fresh clone would fail with "can't find crate for core"; add the target if missing.
fn ensure_target(root: &Path) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(sysroot) = sysroot
        && Path::new(&sysroot).join("lib/rustlib").join(TARGET).exists()
    {
        return;
    }
    let status = Command::new("rustup")
        .current_dir(root)
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(s) if s.success() => {}
        _ => panic!("the {TARGET} target is missing and `rustup target add {TARGET}` failed; run it by hand"),
    }
}
