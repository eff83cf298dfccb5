//! `paxid-learner`: see the library for what it does.

use clap::Parser;
use paxid_learner::{Args, Config};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _telemetry = telemetry::init(paxid_learner::SERVICE_NAME, args.common.log_format);
    service::log_panics();
    let config = Config::from(args);
    let result = paxid_learner::run(config, service::shutdown_signal()).await;
    service::exit_code(paxid_learner::SERVICE_NAME, result)
}
