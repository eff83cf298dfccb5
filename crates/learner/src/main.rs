//! `paxid-learner`: see the library for what it does.

use clap::Parser;
use paxid_learner::{Args, Config};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _telemetry = telemetry::init("paxid-learner", args.common.log_format);
    let config = Config::from(args);
    match paxid_learner::run(config, service::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "paxid-learner stopped");
            eprintln!("paxid-learner: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
