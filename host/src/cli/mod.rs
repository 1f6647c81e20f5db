//! The command line: flags parsed by clap (with `EDGETHUMB_*` environment fallbacks) and the
//! one-shot commands that run an image through the same sandbox the service uses.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use resizer_core::request::Negotiated;
use resizer_core::{Fit, Options, OutputFormat};

use crate::config::SandboxArgs;
use crate::sandbox::Sandbox;

mod files;
pub use files::UsageError;
mod local;
mod look;
pub use look::LookArgs;
mod remote;
mod sign;

/// edgethumb turns images into thumbnails inside a wasmtime sandbox: each image is decoded by
/// a fresh WebAssembly instance with a memory cap, a CPU deadline and no access to files,
/// network or environment.
#[derive(Debug, Parser)]
#[command(name = "edgethumb", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as `pretty` text or `json` (one object per line). The level comes from
    /// RUST_LOG (default info for serve, warn otherwise); wasmtime's and Cranelift's own
    /// logs stay at warn unless RUST_LOG names them.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "pretty",
        env = "EDGETHUMB_LOG_FORMAT"
    )]
    pub log_format: crate::logging::LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the thumbnail service (HTTP API, durable queue, workers).
    Serve(Box<crate::config::ServeArgs>),
    /// Make thumbnails of image files, directories (--recursive) or stdin (`-`), on every core.
    Thumb(ThumbArgs),
    /// Make thumbnails through a running service's /v1/batches, into a directory.
    Batch(BatchArgs),
    /// Print what an image's header says (format, size, alpha, frames, orientation) as JSON.
    Probe(ProbeArgs),
    /// Measure thumbnails per second: median and p95 ms per file, peak guest memory.
    Bench(BenchArgs),
    /// Print a signed `GET /v1/thumbnail` URL (for `<img src>` with API keys on).
    Sign(sign::SignArgs),
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
    /// Images to read: files, directories (their image files; all levels with --recursive),
    /// or `-` for stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where thumbnails go [default: ./thumbs/, created if needed]. In a directory (the
    /// default, an existing one, or one ending in `/`) each thumbnail keeps its input's name
    /// (and subdirectory) with the extension of the format it came out in (.png, .jpg, .webp,
    /// .avif, or .gif for an animation); a single input with no -o goes to ./thumbs/NAME.EXT
    /// too. One input: -o FILE writes exactly that file, whose extension must name a format
    /// (it picks the format unless --format is given, and must match what is made), and
    /// "-" writes stdout. Existing files are never replaced without --overwrite, and inputs
    /// never.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Replace output files that already exist (never an input of the same run).
    #[arg(long)]
    pub overwrite: bool,
    /// Descend into subdirectories.
    #[arg(short, long)]
    pub recursive: bool,
    /// Images made at once [default: the number of cores].
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub look: LookArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The service's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "EDGETHUMB_SERVER")]
    pub server: String,
    /// An API key, when the service has them.
    #[arg(long, env = "EDGETHUMB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Images to send: files, directories (--recursive), or `-` for stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The output directory, created if needed, where each thumbnail keeps its input's name
    /// (and subdirectory) with the extension of the format the server made (.png, .jpg,
    /// .webp, .avif, .gif).
    #[arg(short, long, default_value = files::DEFAULT_OUTPUT_DIR)]
    pub output: PathBuf,
    /// Replace output files that already exist (never an input of the same run).
    #[arg(long)]
    pub overwrite: bool,
    /// Descend into subdirectories.
    #[arg(short, long)]
    pub recursive: bool,
    /// Images per /v1/batches request (at most the server's --max-batch-items).
    #[arg(long, default_value_t = 100)]
    pub chunk: usize,
    #[command(flatten)]
    pub look: LookArgs,
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
    OutputFormat::parse(s).ok_or_else(|| format!("unknown format {s:?}; use png, jpeg, webp or avif"))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Thumb(args) => thumb(args),
        Command::Batch(args) => batch(args),
        Command::Probe(args) => probe(args),
        Command::Component(ComponentCommand::Validate(args)) => validate_component(args),
        Command::Bench(args) => bench(args),
        Command::Sign(args) => {
            println!("{}", sign::signed_url(&args)?);
            Ok(())
        }
    }
}

/// The request the flags make, as an API request without `Accept` (`auto`: JPEG, or PNG for
/// alpha); without --format, an `-o FILE` extension names the format. Checked before any work.
fn options(look: &LookArgs, output: Option<&Path>) -> anyhow::Result<Negotiated> {
    let mut look = look.clone();
    if let Some(format) = output.and_then(files::format_of)
        && !look.raw.pairs().any(|(name, _)| name == "format")
    {
        look.raw.set("format", format.name());
    }
    look.negotiated().map_err(|e| UsageError(e.to_string()).into())
}

fn thumb(args: ThumbArgs) -> anyhow::Result<()> {
    // Every usage error before any work: a missing input, an -o naming no format, an output
    // that would write over an input or (without --overwrite) an existing file.
    files::check_inputs(&args.inputs)?;
    let single = args.inputs.len() == 1 && !args.inputs[0].is_dir();
    let target = match args.output.as_deref() {
        None => files::Target::Dir(default_output()),
        Some(output) => files::Target::new(output, single)?,
    };
    let items = files::collect(&args.inputs, args.recursive, target.dir())?;
    let outputs = files::Outputs::new(&items, args.overwrite);
    target.check(&outputs, &items)?;
    let resizer = args.sandbox.load()?;
    if single {
        let output = match &target {
            files::Target::File(path) => Some(path.as_path()),
            _ => None,
        };
        let options = options(&args.look, output)?;
        return thumb_one(&resizer, &items[0], &target, &options, &outputs);
    }
    let options = options(&args.look, None)?;
    let dir = target.dir().context("several inputs go into a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    local::run(&resizer, &items, dir, &options, threads, &outputs).finish(items.len(), "thumbnails written")
}

fn thumb_one(
    resizer: &crate::sandbox::Resizer,
    item: &files::Item,
    target: &files::Target,
    options: &Negotiated,
    outputs: &files::Outputs,
) -> anyhow::Result<()> {
    let image = item.read()?;
    let (thumb, stats) = resizer
        .make(&image, options)
        .with_context(|| format!("thumbnailing {}", item.label))?;
    // The extension follows what was made, not what was asked (an animation is a GIF).
    let format = files::produced_format(thumb.format, &thumb.data)
        .with_context(|| format!("thumbnailing {}", item.label))?;
    let Some(output) = target.path(item, format)? else {
        std::io::stdout().write_all(&thumb.data)?;
        return Ok(());
    };
    outputs.write(&output, &thumb.data)?;
    eprintln!(
        "{}: {}x{} {} ({} bytes) from a {}x{} {} in {:.1} ms (instantiation {} µs, peak guest memory {} MiB)",
        output.display(),
        thumb.width,
        thumb.height,
        format.name(),
        thumb.data.len(),
        thumb.source.width,
        thumb.source.height,
        thumb.source.format.name(),
        stats.total.as_secs_f64() * 1e3,
        stats.instantiate.as_micros(),
        stats.peak_memory_bytes >> 20
    );
    Ok(())
}

/// Where thumbnails go without `-o`: `./thumbs`, never beside the inputs.
fn default_output() -> PathBuf {
    PathBuf::from(files::DEFAULT_OUTPUT_DIR)
}

fn batch(args: BatchArgs) -> anyhow::Result<()> {
    files::check_inputs(&args.inputs)?;
    if args.output.as_os_str() == "-" {
        files::usage!("batch writes into a directory; -o - (stdout) is for thumb with one input");
    }
    let items = files::collect(&args.inputs, args.recursive, Some(&args.output))?;
    let outputs = files::Outputs::new(&items, args.overwrite);
    outputs.check_dir(&items, &args.output)?;
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    // The request in its canonical form: checked here as the server will check it, and sent
    // as the same names and values.
    let request = args.look.request().map_err(|e| UsageError(e.to_string()))?;
    let fields = request.canonical();
    let remote = remote::Remote {
        server: args.server.clone(),
        api_key: args.api_key.clone(),
        fields,
        chunk: args.chunk,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(remote.run(&items, &args.output, &outputs))?;
    summary.finish(items.len(), "thumbnails written")
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
    // Each file is printed as it finishes; a bad one is reported and the rest still run.
    let mut summary = local::Summary::default();
    for file in &args.files {
        let r = match crate::bench::run_file(resizer.as_ref(), file, &options, args.iterations) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e:#}", file.display());
                summary
                    .failed
                    .push((file.display().to_string(), format!("{e:#}")));
                continue;
            }
        };
        summary.written += 1;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
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
    if summary.failed.is_empty() {
        return Ok(());
    }
    summary.finish(args.files.len(), "files measured")
}
