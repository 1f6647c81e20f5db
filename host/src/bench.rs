//! `edgethumb bench`: how fast the sandboxed resizer turns files into thumbnails, and (with
//! `--native`) the same image code without the sandbox, so the sandbox's cost is a ratio
//! measured in one run on one machine.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use resizer_core::Options;
use serde::Serialize;

use crate::sandbox::Resizer;

/// What one file measured.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub file: String,
    /// `sandbox` or `native`.
    pub mode: &'static str,
    pub iterations: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
    /// Largest guest linear memory (sandbox); 0 natively, where it is not isolated.
    pub peak_memory_bytes: u64,
    pub thumbnails_per_second: f64,
    pub output_width: u32,
    pub output_height: u32,
}

/// Runs `file` through `resizer` (or natively) `iterations` times, after one warm-up.
pub fn run_file(
    resizer: Option<&Resizer>,
    file: &Path,
    options: &Options,
    iterations: usize,
) -> anyhow::Result<BenchResult> {
    let iterations = iterations.max(1);
    let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut times = Vec::with_capacity(iterations);
    let mut peak = 0;
    let mut size = (0, 0);
    for i in 0..=iterations {
        let started = Instant::now();
        let (w, h, p) = match resizer {
            Some(r) => {
                let (t, stats) = r.thumbnail(&data, options)?;
                (t.width, t.height, stats.peak_memory_bytes)
            }
            None => {
                let t = resizer_core::thumbnail(&data, options)?;
                (t.width, t.height, 0)
            }
        };
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        // The first run warms caches (and, in the sandbox, the instance pool).
        if i > 0 {
            times.push(elapsed);
        }
        peak = peak.max(p);
        size = (w, h);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let p95 = times[((times.len() as f64 * 0.95).ceil() as usize).clamp(1, times.len()) - 1];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    Ok(BenchResult {
        file: file.display().to_string(),
        mode: if resizer.is_some() { "sandbox" } else { "native" },
        iterations,
        median_ms: round(median),
        p95_ms: round(p95),
        peak_memory_bytes: peak,
        thumbnails_per_second: round(1e3 / mean),
        output_width: size.0,
        output_height: size.1,
    })
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
