//! The `eventsync` command line: parses the arguments, runs [`eventsync_cli::run`], and
//! prints a failure as one line `eventsync: <context>: <cause>: ...`, each cause of the chain
//! once (exit 1; usage errors exit 2).

use std::process::ExitCode;

use clap::Parser;
use eventsync_cli::{Cli, init_tracing, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A bug must still read as one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "eventsync: internal error (a bug){place}: {}",
            one_line(&message)
        );
    }));
    init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("eventsync: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("eventsync: {}", one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Joins a multi-line message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}
