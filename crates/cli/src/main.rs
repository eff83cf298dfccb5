//! `paxid`: see the library's documentation.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = paxid_cli::Cli::parse();
    match paxid_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("paxid: {error}");
            ExitCode::FAILURE
        }
    }
}
