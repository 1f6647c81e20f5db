//! The command line: flags parsed by clap (with `EDGETHUMB_*` environment fallbacks) and the
//! one-shot commands that run an image through the same sandbox the service uses.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use resizer_core::{Fit, Options, OutputFormat};

use crate::config::SandboxArgs;
use crate::sandbox::Sandbox;

/// edgethumb turns images into thumbnails inside a wasmtime sandbox: each image is decoded by
/// a fresh WebAssembly instance with a memory cap, a CPU deadline and no access to files,
/// network or environment.
#[derive(Debug, Parser)]
#[command(name = "edgethumb", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the thumbnail service (HTTP API, durable queue, workers).
    Serve(Box<crate::config::ServeArgs>),
    /// Make a thumbnail of one image file.
    Thumb(ThumbArgs),
    /// Print what an image's header says (format, size, alpha, frames, orientation) as JSON.
    Probe(ProbeArgs),
    /// Measure thumbnails per second: median and p95 ms per file, peak guest memory.
    Bench(BenchArgs),
    /// Work with resizer components.
    #[command(subcommand)]
    Component(ComponentCommand),
}

#[derive(Debug, Subcommand)]
pub enum ComponentCommand {
    /// Run the validation the service runs before a component may be activated (component,
    /// compile, world, canary run), offline; prints the result as JSON.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Images to run.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Timed runs per file (after one warm-up run).
    #[arg(long, default_value_t = 20)]
    pub iterations: usize,
    /// One JSON object per file (file, mode, median_ms, p95_ms, peak_memory_bytes, ...).
    #[arg(long)]
    pub json: bool,
    /// Run the same image code natively, without the sandbox, for comparison.
    #[arg(long)]
    pub native: bool,
    #[arg(long, default_value_t = 100)]
    pub width: u32,
    #[arg(long, default_value_t = 100)]
    pub height: u32,
    #[arg(long, default_value = "contain", value_parser = parse_fit)]
    pub fit: Fit,
    #[arg(long, default_value = "png", value_parser = parse_format)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The component (.wasm) to check.
    pub file: PathBuf,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, Args)]
pub struct ThumbArgs {
    /// The image to read.
    pub input: PathBuf,
    /// Where to write the thumbnail ("-" for stdout) [default: INPUT's name + .thumb.FORMAT in
    /// the current directory].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Box width in pixels.
    #[arg(long, default_value_t = 100)]
    pub width: u32,
    /// Box height in pixels.
    #[arg(long, default_value_t = 100)]
    pub height: u32,
    /// contain: keep aspect inside the box; cover: fill the box, crop the centre; fill: stretch.
    #[arg(long, default_value = "contain", value_parser = parse_fit)]
    pub fit: Fit,
    /// Output format: png, jpeg or webp (lossless).
    #[arg(long, default_value = "png", value_parser = parse_format)]
    pub format: OutputFormat,
    /// JPEG quality, 1 to 100.
    #[arg(long, default_value_t = resizer_core::DEFAULT_QUALITY)]
    pub quality: u8,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The image to read.
    pub input: PathBuf,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

fn parse_fit(s: &str) -> Result<Fit, String> {
    Fit::parse(s).ok_or_else(|| format!("unknown fit {s:?}; use contain, cover or fill"))
}

fn parse_format(s: &str) -> Result<OutputFormat, String> {
    OutputFormat::parse(s).ok_or_else(|| format!("unknown format {s:?}; use png, jpeg or webp"))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Thumb(args) => thumb(args),
        Command::Probe(args) => probe(args),
        Command::Component(ComponentCommand::Validate(args)) => validate_component(args),
        Command::Bench(args) => bench(args),
    }
}

fn thumb(args: ThumbArgs) -> anyhow::Result<()> {
    let image = std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let resizer = args.sandbox.load()?;
    let options = Options {
        width: args.width,
        height: args.height,
        fit: args.fit,
        format: args.format,
        quality: args.quality,
        max_pixels: args.sandbox.max_pixels,
    };
    let (thumb, stats) = resizer
        .thumbnail(&image, &options)
        .with_context(|| format!("thumbnailing {}", args.input.display()))?;
    let output = args
        .output
        .unwrap_or_else(|| default_output(&args.input, args.format));
    if output == Path::new("-") {
        std::io::stdout().write_all(&thumb.data)?;
    } else {
        std::fs::write(&output, &thumb.data).with_context(|| format!("writing {}", output.display()))?;
        eprintln!(
            "{}: {}x{} {} ({} bytes) from a {}x{} {} in {:.1} ms (instantiation {} µs, peak guest memory {} MiB)",
            output.display(),
            thumb.width,
            thumb.height,
            thumb.format.name(),
            thumb.data.len(),
            thumb.source.width,
            thumb.source.height,
            thumb.source.format.name(),
            stats.total.as_secs_f64() * 1e3,
            stats.instantiate.as_micros(),
            stats.peak_memory_bytes >> 20
        );
    }
    Ok(())
}

fn default_output(input: &Path, format: OutputFormat) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    PathBuf::from(format!("{stem}.thumb.{}", format.name()))
}

fn probe(args: ProbeArgs) -> anyhow::Result<()> {
    let image = std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let resizer = args.sandbox.load()?;
    let (info, _) = resizer
        .probe(&image)
        .with_context(|| format!("probing {}", args.input.display()))?;
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}

fn serve(args: crate::config::ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let app = crate::app::App::build(config).await?;
        tracing::info!(addr = %app.local_addr(), "listening");
        app.run_until_stopped(crate::app::shutdown_signal()).await
    })
}

fn validate_component(args: ValidateArgs) -> anyhow::Result<()> {
    let wasm = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let sandbox = Sandbox::new(args.sandbox.sandbox_config())?;
    match crate::sandbox::validate::validate(&sandbox, &wasm) {
        Ok((resizer, report)) => {
            let out = serde_json::json!({
                "valid": true,
                "digest": resizer.digest(),
                "wit_version": resizer.wit_version(),
                "size": resizer.size(),
                "canary": report,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Err(e) => {
            let out = serde_json::json!({ "valid": false, "step": e.step.name(), "reason": e.reason });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Err(anyhow::anyhow!(
                "{} is not a valid resizer component: {e}",
                args.file.display()
            ))
        }
    }
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let options = Options {
        width: args.width,
        height: args.height,
        fit: args.fit,
        format: args.format,
        max_pixels: args.sandbox.max_pixels,
        ..Options::default()
    };
    let resizer = if args.native {
        None
    } else {
        Some(args.sandbox.load()?)
    };
    let results = crate::bench::run(resizer.as_ref(), &args.files, &options, args.iterations)?;
    for r in &results {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!(
                "{}  [{}]  median {:.2} ms  p95 {:.2} ms  {:.1} thumbnails/s  peak guest memory {} MiB  -> {}x{}",
                r.file,
                r.mode,
                r.median_ms,
                r.p95_ms,
                r.thumbnails_per_second,
                r.peak_memory_bytes >> 20,
                r.output_width,
                r.output_height
            );
        }
    }
    Ok(())
}
