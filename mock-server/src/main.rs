//! `sluice-mock`: the mock server as a process. Everything is in the library; this only parses
//! flags, builds the runtime and maps errors to exit codes (2 usage, 1 anything else).

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use sluice_mock::cli::{MockArgs, run_cli};

#[derive(Parser)]
#[command(
    name = "sluice-mock",
    version,
    about = "A loopback HTTP test target with seeded random statuses and latencies that records what it received"
)]
struct Cli {
    #[command(flatten)]
    mock: MockArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.mock.validate() {
        Cli::command().error(clap::error::ErrorKind::ArgumentConflict, e).exit();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sluice-mock: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_cli(cli.mock, "sluice-mock")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-mock: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
