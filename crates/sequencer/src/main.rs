use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let config = paxid_sequencer::Config::parse();
    let _telemetry = telemetry::init("paxid-sequencer", config.common.log_format);
    if let Err(error) = paxid_sequencer::run(config, service::shutdown_signal()).await {
        eprintln!("paxid-sequencer: {error}");
        std::process::exit(1);
    }
}
