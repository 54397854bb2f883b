//! The `sluice` binary: parse flags, call the library, map the result to an exit code.

use std::process::ExitCode;

/// Every request allocates a little (headers, response buffers, CSV rows) on several threads;
/// glibc's malloc was ~11% of the senders' samples at max rate, mimalloc is faster at exactly this.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use sluice::cli::{Cli, Command};
use sluice::exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => sluice::cli::parse::run(&args),
        Command::Replay(args) => sluice::cli::replay::run(&args),
        Command::Report(args) => sluice::cli::report::run(&args),
        Command::Merge(args) => sluice::cli::merge::run(&args),
        Command::Mock(args) => run_mock(args),
        Command::Daemon(args) => sluice::daemon::run(&args),
        Command::Runs(args) => sluice::cli::runs::run(&args),
        Command::Import(args) => sluice::cli::import::run(&args),
        Command::K8s(args) => sluice::cli::k8s::run(&args),
    };
    let exit = result.unwrap_or_else(|e| {
        let exit = Exit::of_error(&e);
        if exit != Exit::Ok {
            eprintln!("sluice: error: {e:#}");
        }
        exit
    });
    ExitCode::from(exit.code())
}

fn run_mock(args: sluice_mock::MockArgs) -> anyhow::Result<Exit> {
    args.validate().map_err(|e| sluice::exit::UsageError(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(sluice_mock::run_cli(args, "sluice mock"))?;
    Ok(Exit::Ok)
}
