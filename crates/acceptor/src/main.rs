//! `paxid-acceptor`: see the library crate and `--help`.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = paxid_acceptor::Config::parse();
    let _telemetry = telemetry::init("paxid-acceptor", config.common.log_format);
    match paxid_acceptor::run(config, service::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "paxid-acceptor stopped");
            eprintln!("paxid-acceptor: {error}");
            ExitCode::FAILURE
        }
    }
}
