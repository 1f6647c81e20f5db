//! Logging setup: the filter (`RUST_LOG`, with the runtime's internals kept quiet) and the
//! format (`--log-format pretty|json`).

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Crates whose debug output is about compiling and running wasm, not about thumbnails:
/// Cranelift alone writes tens of thousands of lines while compiling the component. They stay
/// at WARN unless `RUST_LOG` names them.
const QUIET: &[&str] = &[
    "cranelift_codegen",
    "cranelift_frontend",
    "cranelift_entity",
    "regalloc2",
    "wasmtime",
    "wasmtime_cranelift",
    "wasmtime_environ",
    "wasmtime_internal_cranelift",
    "wasmtime_internal_environ",
    "wasmtime_wasi",
    "wasmparser",
    "sqlx",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

/// The filter: `RUST_LOG` if set, else `default`; plus WARN for [`QUIET`] crates it does not
/// name.
pub fn filter(rust_log: Option<&str>, default: &str) -> EnvFilter {
    let spec = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or(default);
    let mut filter = EnvFilter::try_new(spec).unwrap_or_else(|e| {
        eprintln!("warning: RUST_LOG={spec:?} is not a valid filter ({e}); using {default:?}");
        EnvFilter::new(default)
    });
    for name in QUIET {
        if !spec.contains(name) {
            let directive = format!("{name}=warn").parse().expect("a valid directive");
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber, writing to stderr.
pub fn init(format: LogFormat, default: &str) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref(), default);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_keeps_the_runtime_quiet_unless_named() {
        let f = filter(Some("debug"), "info").to_string();
        assert!(f.contains("cranelift_codegen=warn"), "{f}");
        assert!(f.contains("wasmtime=warn"), "{f}");
        let f = filter(Some("debug,cranelift_codegen=trace"), "info").to_string();
        assert!(f.contains("cranelift_codegen=trace"), "{f}");
        assert!(!f.contains("cranelift_codegen=warn"), "{f}");
        assert!(f.contains("regalloc2=warn"), "{f}");
    }

    #[test]
    fn no_rust_log_uses_the_default() {
        let f = filter(None, "info").to_string();
        assert!(f.contains("info"), "{f}");
        assert!(f.contains("sqlx=warn"), "{f}");
    }
}
