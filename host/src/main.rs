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
            // A usage error (as clap's own) is 2; work that failed is 1.
            if e.downcast_ref::<edgethumb::cli::UsageError>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
