//! Validation of a component before it may serve jobs: it must be a component, compile,
//! export a compatible `edgethumb:resizer` world, and pass a **canary run** — a small built-in
//! set of images that must come out at the right size and in the right format within the
//! sandbox's time and memory limits. A failure names the step and the reason.

use resizer_core::{Fit, Gravity, ImageFormat, Options, OutputFormat};
use serde::Serialize;

use super::{Resizer, Sandbox, SandboxError};

/// The validation steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The bytes are a WebAssembly component (not garbage, not a core module).
    Component,
    /// wasmtime compiles it.
    Compile,
    /// It exports `edgethumb:resizer/resizer@1.x` and needs only what the sandbox provides.
    World,
    /// It thumbnails the canary images correctly within the limits.
    Canary,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Component => "component",
            Step::Compile => "compile",
            Step::World => "world",
            Step::Canary => "canary",
        }
    }
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
#[error("validation failed at the {} step: {reason}", step.name())]
pub struct ValidationError {
    pub step: Step,
    pub reason: String,
}

/// What a canary run measured.
#[derive(Debug, Clone, Serialize)]
pub struct CanaryReport {
    pub images: usize,
    pub total_ms: f64,
    pub peak_memory_bytes: u64,
}

struct Canary {
    name: &'static str,
    image: Vec<u8>,
    options: Options,
    /// Expected output size.
    size: (u32, u32),
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("canary images encode");
    out.into_inner()
}

/// The canary set: the common formats, with alpha and without, every fit mode and every
/// output format, and a smart crop (through `thumbnails` on a WIT 1.1 component, through the
/// centred `thumbnail` on a 1.0 one), each small enough that a healthy component does them
/// all in milliseconds.
fn canaries() -> Vec<Canary> {
    let gradient = image::RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 96])
    });
    let rgba = image::RgbaImage::from_fn(120, 160, |x, y| {
        image::Rgba([200, (x * 2) as u8, (y % 256) as u8, (x + y) as u8])
    });
    let o = Options::default();
    vec![
        Canary {
            name: "png-rgb-contain",
            image: encode(gradient.clone().into(), image::ImageFormat::Png),
            options: o.clone(),
            size: (100, 67),
        },
        Canary {
            name: "jpeg-cover-to-webp",
            image: encode(gradient.clone().into(), image::ImageFormat::Jpeg),
            options: Options {
                fit: Fit::Cover,
                width: 64,
                height: 64,
                format: OutputFormat::Webp,
                ..o.clone()
            },
            size: (64, 64),
        },
        Canary {
            name: "png-cover-smart-gravity",
            image: encode(gradient.clone().into(), image::ImageFormat::Png),
            options: Options {
                fit: Fit::Cover,
                width: 40,
                height: 40,
                gravity: Gravity::Smart,
                ..o.clone()
            },
            size: (40, 40),
        },
        Canary {
            name: "png-rgba-fill-to-jpeg",
            image: encode(rgba.clone().into(), image::ImageFormat::Png),
            options: Options {
                fit: Fit::Fill,
                width: 50,
                height: 30,
                format: OutputFormat::Jpeg,
                ..o.clone()
            },
            size: (50, 30),
        },
        Canary {
            name: "gif-contain",
            image: encode(
                image::DynamicImage::from(rgba).into_rgba8().into(),
                image::ImageFormat::Gif,
            ),
            options: o.clone(),
            size: (75, 100),
        },
        Canary {
            name: "bmp-contain",
            image: encode(gradient.into(), image::ImageFormat::Bmp),
            options: Options {
                width: 30,
                height: 30,
                ..o
            },
            size: (30, 20),
        },
    ]
}

/// Runs the canary set through `resizer`. Its outputs are checked by `prober`, the built-in
/// component, in the sandbox too: the candidate is not trusted yet, so neither are the bytes it
/// makes, and no host-side decoder reads them.
pub fn canary(resizer: &Resizer, prober: &Resizer) -> Result<CanaryReport, ValidationError> {
    let fail = |reason: String| ValidationError {
        step: Step::Canary,
        reason,
    };
    let set = canaries();
    let mut report = CanaryReport {
        images: set.len(),
        total_ms: 0.0,
        peak_memory_bytes: 0,
    };
    for c in &set {
        let (thumb, stats) = resizer
            .thumbnail(&c.image, &c.options)
            .map_err(|e| fail(format!("{}: {e}", c.name)))?;
        report.total_ms += stats.total.as_secs_f64() * 1e3;
        report.peak_memory_bytes = report.peak_memory_bytes.max(stats.peak_memory_bytes);
        if (thumb.width, thumb.height) != c.size || thumb.format != c.options.format {
            return Err(fail(format!(
                "{}: expected a {}x{} {}, it reported a {}x{} {}",
                c.name,
                c.size.0,
                c.size.1,
                c.options.format.name(),
                thumb.width,
                thumb.height,
                thumb.format.name()
            )));
        }
        // Check the bytes, not only what the component says about them.
        let (info, _) = prober
            .probe(&thumb.data)
            .map_err(|e| fail(format!("{}: its output is not an image: {e}", c.name)))?;
        let want = match c.options.format {
            OutputFormat::Png => ImageFormat::Png,
            OutputFormat::Jpeg => ImageFormat::Jpeg,
            OutputFormat::Webp => ImageFormat::Webp,
            // No canary asks for it: a 1.0 component cannot make it, and the prober cannot
            // read it.
            OutputFormat::Avif | OutputFormat::Gif => continue,
        };
        if info.format != want || (info.width, info.height) != c.size {
            return Err(fail(format!(
                "{}: the output is a {}x{} {}, not a {}x{} {}",
                c.name,
                info.width,
                info.height,
                info.format.name(),
                c.size.0,
                c.size.1,
                want.name()
            )));
        }
    }
    Ok(report)
}

/// Every step: load (component, compile, world), then the canary run.
pub fn validate(sandbox: &Sandbox, wasm: &[u8]) -> Result<(Resizer, CanaryReport), ValidationError> {
    let resizer = sandbox.load(wasm).map_err(|e| ValidationError {
        step: match e {
            SandboxError::NotAComponent(_) => Step::Component,
            SandboxError::Compile(_) => Step::Compile,
            _ => Step::World,
        },
        reason: e.to_string(),
    })?;
    let prober = sandbox.load_builtin().map_err(|e| ValidationError {
        step: Step::Canary,
        reason: format!("the built-in component, which checks the outputs, failed to load: {e}"),
    })?;
    let report = canary(&resizer, &prober)?;
    Ok((resizer, report))
}
