//! The edge component (built by host/build.rs) served on a loopback port by two wasi:http
//! runtimes: `wasmtime serve` (the wasmtime CLI of the host's version, which
//! scripts/wasmtime-cli.sh installs into a cache outside the clone when it is missing) and
//! `jco serve` on Node (jco from scripts/jco's lockfile). Neither test skips for a missing tool.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::node::{ensure_npm_packages, repo_root};

/// A running wasi:http server, killed when dropped.
pub struct Serve {
    child: Child,
    pub url: String,
    /// Spawn to listening.
    pub started_in: Duration,
    pub runtime: &'static str,
}

impl Drop for Serve {
    /// Kills the runtime's whole process group: `jco serve` runs its server in a child Node
    /// process, which killing `jco` alone would leave running.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wasmtime() -> PathBuf {
    let script = repo_root().join("scripts/wasmtime-cli.sh");
    let out = Command::new("bash")
        .arg(script)
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/wasmtime-cli.sh");
    assert!(out.status.success(), "scripts/wasmtime-cli.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Spawns `cmd` and waits (at most two minutes) for the line on its stderr that `listening`
/// turns into the base URL.
fn spawn(mut cmd: Command, runtime: &'static str, listening: fn(&str) -> Option<String>) -> Serve {
    let started = Instant::now();
    let mut child = cmd
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {runtime}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            match listening(&line) {
                Some(url) => {
                    let _ = tx.send(url);
                }
                None => eprintln!("[{runtime}] {line}"),
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{runtime} never said where it listens"));
    Serve {
        child,
        url,
        started_in: started.elapsed(),
        runtime,
    }
}

/// `wasmtime serve -S cli` (Rust std's wasi:cli imports) with the edge component, allowed to
/// fetch from 127.0.0.1 only.
pub fn wasmtime_serve() -> Serve {
    let mut cmd = Command::new(wasmtime());
    cmd.args(["serve", "-S", "cli", "--addr", "127.0.0.1:0"])
        .args(["--env", "EDGETHUMB_FETCH_ALLOW=127.0.0.1"])
        .arg(env!("EDGETHUMB_EDGE_WASM"));
    spawn(cmd, "wasmtime serve", |line| {
        line.strip_prefix("Serving HTTP on ")
            .map(|url| url.trim_end_matches('/').to_string())
    })
}

/// `jco serve` (jco 1.35 on Node: transpiled to JS, preview2-shim's wasi:http) with the edge
/// component, on a free loopback port.
pub fn jco_serve() -> Serve {
    ensure_npm_packages(
        "jco",
        &["@bytecodealliance/jco", "@bytecodealliance/preview2-shim"],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let jco = repo_root().join("scripts/jco/node_modules/.bin/jco");
    let mut cmd = Command::new(jco);
    cmd.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg(env!("EDGETHUMB_EDGE_WASM"))
        .env("EDGETHUMB_FETCH_ALLOW", "127.0.0.1");
    spawn(cmd, "jco serve", |line| {
        let rest = line.strip_prefix("Server listening @ ")?;
        Some(format!("http://{}", rest.trim_end_matches('.')))
    })
}
