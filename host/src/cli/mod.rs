//! The command line: flags parsed by clap (with `EDGETHUMB_*` environment fallbacks) and the
//! one-shot commands that run an image through the same sandbox the service uses.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use resizer_core::{Fit, Gravity, Options, OutputFormat};

use crate::config::SandboxArgs;
use crate::sandbox::Sandbox;

mod files;
mod local;
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

/// The thumbnail's box and look, shared by `thumb` and `batch`.
#[derive(Debug, Args)]
pub struct LookArgs {
    /// Box width in pixels.
    #[arg(long, default_value_t = 100)]
    pub width: u32,
    /// Box height in pixels.
    #[arg(long, default_value_t = 100)]
    pub height: u32,
    /// contain: keep aspect inside the box; cover: fill the box and crop (see --gravity); fill: stretch.
    #[arg(long, default_value = "contain", value_parser = parse_fit)]
    pub fit: Fit,
    /// Where a cover crop is taken: center, north, north-east, ... north-west, smart, or focus:X,Y.
    #[arg(long, default_value = "center", value_parser = parse_gravity)]
    pub gravity: Gravity,
    /// Keep GIF and WebP animations, as animated GIFs (otherwise the first frame).
    #[arg(long)]
    pub animated: bool,
    /// Output format: png, jpeg, webp or avif (all but png are lossy, see --quality) [default: from -o FILE's extension, else png].
    #[arg(long, value_parser = parse_format)]
    pub format: Option<OutputFormat>,
    /// JPEG and WebP quality, 1 to 100.
    #[arg(long, default_value_t = resizer_core::DEFAULT_QUALITY, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
}

#[derive(Debug, Args)]
pub struct ThumbArgs {
    /// Images to read: files, directories (their image files; all levels with --recursive),
    /// or `-` for stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// One input: the output file ("-" for stdout) [default: NAME.thumb.FORMAT here]. Several
    /// inputs or a directory: the output directory, created if needed [default: .], where each
    /// thumbnail keeps its name (and its subdirectory) with the format's extension.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
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
    /// The output directory, created if needed.
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
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

fn parse_gravity(s: &str) -> Result<Gravity, String> {
    Gravity::parse(s).ok_or_else(|| {
        format!(
            "unknown gravity {s:?}; use center, a compass point (north, north-east, ...), smart or focus:X,Y"
        )
    })
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

impl LookArgs {
    fn options(&self, format: OutputFormat, max_pixels: u64) -> Options {
        Options {
            width: self.width,
            height: self.height,
            fit: self.fit,
            format,
            quality: self.quality,
            max_pixels,
            gravity: self.gravity,
            animated: self.animated,
        }
    }
}

fn thumb(args: ThumbArgs) -> anyhow::Result<()> {
    let items = files::collect(&args.inputs, args.recursive)?;
    let single = args.inputs.len() == 1
        && !args.inputs[0].is_dir()
        && !args.output.as_deref().is_some_and(Path::is_dir);
    let resizer = args.sandbox.load()?;
    if single {
        let output = args.output.as_deref();
        let format = args
            .look
            .format
            .or_else(|| output.and_then(files::format_of))
            .unwrap_or(OutputFormat::Png);
        let options = args.look.options(format, args.sandbox.max_pixels);
        return thumb_one(&resizer, &items[0], output, &options);
    }
    let format = args.look.format.unwrap_or(OutputFormat::Png);
    let options = args.look.options(format, args.sandbox.max_pixels);
    let dir = args.output.unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    local::run(&resizer, &items, &dir, &options, threads).finish(items.len(), "thumbnails written")
}

fn thumb_one(
    resizer: &crate::sandbox::Resizer,
    item: &files::Item,
    output: Option<&Path>,
    options: &Options,
) -> anyhow::Result<()> {
    let image = item.read()?;
    let (thumb, stats) = resizer
        .thumbnail(&image, options)
        .with_context(|| format!("thumbnailing {}", item.label))?;
    let output = output.map_or_else(
        || default_output(&item.relative, options.format),
        Path::to_path_buf,
    );
    if output == Path::new("-") {
        std::io::stdout().write_all(&thumb.data)?;
        return Ok(());
    }
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
    Ok(())
}

fn default_output(stem: &Path, format: OutputFormat) -> PathBuf {
    let stem = stem
        .file_name()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from(format!("{stem}.thumb.{}", format.name()))
}

fn batch(args: BatchArgs) -> anyhow::Result<()> {
    let items = files::collect(&args.inputs, args.recursive)?;
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let look = &args.look;
    let mut fields = vec![
        ("width", look.width.to_string()),
        ("height", look.height.to_string()),
        ("fit", look.fit.name().to_string()),
        ("quality", look.quality.to_string()),
        ("gravity", look.gravity.name()),
        ("animated", look.animated.to_string()),
    ];
    if let Some(format) = look.format {
        fields.push(("format", format.name().to_string()));
    }
    let remote = remote::Remote {
        server: args.server.clone(),
        api_key: args.api_key.clone(),
        fields,
        chunk: args.chunk,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(remote.run(&items, &args.output))?;
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
