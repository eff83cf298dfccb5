//! `paxid-ceiling`: bench-only, see the library's documentation. Never part
//! of a production configuration.

use std::process::ExitCode;

use clap::Parser;
use paxid_ceiling::CeilingArgs;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = CeilingArgs::parse();
    let _telemetry = telemetry::init(paxid_ceiling::SERVICE_NAME, args.common.log_format);
    service::log_panics();
    // Said on stderr whatever the log level, so nobody mistakes it for paxid.
    eprintln!(
        "paxid-ceiling: BENCH-ONLY server; IDs live in memory and restart at 1; never use it in production"
    );
    let result = paxid_ceiling::run(args, service::shutdown_signal()).await;
    service::exit_code(paxid_ceiling::SERVICE_NAME, result)
}
