//! Node.js from the tests: npm packages pinned by a lockfile under `scripts/`, installed with
//! `npm ci` when missing (so a test never skips), and child processes run with a time bound.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NPM_TIMEOUT: Duration = Duration::from_secs(600);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `cmd` to completion, killing it after `timeout`; panics with `what` on any failure.
/// Returns its stdout (stderr goes to the test's).
pub fn run_bounded(cmd: &mut Command, timeout: Duration, what: &str) -> String {
    let out_file = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdout(out_file.try_clone().unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: could not start it ({e}); is Node.js 20+ with npm installed?"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {timeout:?}, killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut f = out_file;
    std::io::Seek::rewind(&mut f).unwrap();
    std::io::Read::read_to_string(&mut f, &mut out).unwrap();
    assert!(status.success(), "{what} failed ({status}); its output:\n{out}");
    out
}

/// The version a package.json pins (`key`: a dependency) or holds (`None`: its own).
fn package_version(path: &Path, key: Option<&str>) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let v = match key {
        Some(k) => &json["dependencies"][k],
        None => &json["version"],
    };
    v.as_str().map(str::to_string)
}

/// `npm ci --prefix scripts/NAME` unless its node_modules already holds the pinned `packages`.
/// Tests of one binary that need the same packages take turns, so one `npm ci` runs.
pub fn ensure_npm_packages(name: &str, packages: &[&str]) {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = repo_root().join("scripts").join(name);
    let installed = packages.iter().all(|package| {
        let pinned = package_version(&dir.join("package.json"), Some(package));
        let have = package_version(&dir.join("node_modules").join(package).join("package.json"), None);
        pinned.is_some() && pinned == have
    });
    if !installed {
        eprintln!("installing scripts/{name}'s npm packages (npm ci)");
        run_bounded(
            Command::new("npm")
                .args(["ci", "--prefer-offline", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .current_dir(repo_root()),
            NPM_TIMEOUT,
            &format!("npm ci --prefix scripts/{name}"),
        );
    }
}
