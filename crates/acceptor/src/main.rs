//! `paxid-acceptor`: see the library crate and `--help`.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = paxid_acceptor::Config::parse();
    let _telemetry = telemetry::init(paxid_acceptor::SERVICE_NAME, config.common.log_format);
    service::log_panics();
    let result = paxid_acceptor::run(config, service::shutdown_signal()).await;
    service::exit_code(paxid_acceptor::SERVICE_NAME, result)
}
