//! The `sluice` binary: parse flags, call the library, map the result to an exit code.

use std::process::ExitCode;

/// Every request allocates a little (headers, response buffers, CSV rows) on several threads;
/// glibc's malloc was ~11% of the senders' samples at max rate, mimalloc is faster at exactly this.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use sluice::Outcome;
use sluice::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => sluice::cli::parse::run(&args),
        Command::Replay(args) => sluice::cli::replay::run(&args),
        Command::Report(args) => sluice::cli::report::run(&args),
        Command::Mock(args) => run_mock(args),
        Command::Daemon(args) => sluice::daemon::run(&args),
        Command::Runs(args) => sluice::cli::runs::run(&args),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        // `sluice parse … | head`: the reader went away, which is not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: error: {e:#}");
            // Bad flags, files and formats are the user's to fix (2). Anything else is also 2
            // rather than 1, which is reserved for failed assertions.
            ExitCode::from(Outcome::BadInput.exit_code())
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn run_mock(args: sluice_mock::MockArgs) -> anyhow::Result<Outcome> {
    args.validate().map_err(|e| sluice::UsageError(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(sluice_mock::run_cli(args, "sluice mock"))?;
    Ok(Outcome::Ok)
}
