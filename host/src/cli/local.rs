//! `edgethumb thumb` over many images: every core runs the sandbox (one fresh instance per
//! image, as in the service), a progress bar with rate and ETA shows on a terminal, and a
//! summary of failures ends the run. One bad file never stops the rest.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use resizer_core::request::Negotiated;

use super::files::{self, Item, Outputs};
use crate::sandbox::Resizer;

/// What a batch run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub written: usize,
    /// `(input, reason)`, in input order.
    pub failed: Vec<(String, String)>,
}

impl Summary {
    /// Prints the summary to stderr; an error when anything failed (the exit code says so).
    pub fn finish(mut self, total: usize, what: &str) -> anyhow::Result<()> {
        self.failed.sort();
        eprintln!("{} of {total} {what}", self.written);
        if self.failed.is_empty() {
            return Ok(());
        }
        eprintln!("{} failed:", self.failed.len());
        for (input, reason) in &self.failed {
            eprintln!("  {input}: {reason}");
        }
        anyhow::bail!("{} of {total} images failed", self.failed.len())
    }
}

/// A progress bar on a terminal; hidden (and free) when stderr is piped.
pub fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} ETA {eta} {msg}")
            .expect("a valid template"),
    );
    bar
}

/// Makes a thumbnail of every item into `dir`, on `threads` threads, through `outputs`.
pub fn run(
    resizer: &Resizer,
    items: &[Item],
    dir: &Path,
    options: &Negotiated,
    threads: usize,
    outputs: &Outputs,
) -> Summary {
    let bar = progress(items.len());
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let outcome = one(resizer, item, dir, options, outputs);
                    let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
                    match outcome {
                        Ok(_) => s.written += 1,
                        Err(e) => s.failed.push((item.label.clone(), format!("{e:#}"))),
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    summary.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn one(
    resizer: &Resizer,
    item: &Item,
    dir: &Path,
    options: &Negotiated,
    outputs: &Outputs,
) -> anyhow::Result<PathBuf> {
    let image = item.read()?;
    let (thumb, _) = resizer.make(&image, options)?;
    // The extension is the format made (an animation comes out a GIF), not the one asked.
    let out = item.output(dir, files::produced_format(thumb.format, &thumb.data)?);
    outputs.write(&out, &thumb.data)?;
    Ok(out)
}
