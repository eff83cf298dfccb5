use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = paxid_sequencer::Config::parse();
    let _telemetry = telemetry::init(paxid_sequencer::SERVICE_NAME, config.common.log_format);
    // A panic in an essential task then also ends the process (see
    // `paxid_sequencer::watch_essential`).
    service::log_panics();
    let result = paxid_sequencer::run(config, service::shutdown_signal()).await;
    service::exit_code(paxid_sequencer::SERVICE_NAME, result)
}
