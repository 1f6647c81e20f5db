//! The `edgethumb` binary: parse the command line, set up logging, run.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = edgethumb::cli::Cli::parse();
    // The service logs its work; one-shot commands only warnings, so their output stays clean.
    let default_filter = match cli.command {
        edgethumb::cli::Command::Serve(_) => "info",
        _ => "warn",
    };
    edgethumb::logging::init(cli.log_format, default_filter);
    match edgethumb::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
