use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let config = paxid_sequencer::Config::parse();
    let _telemetry = telemetry::init("paxid-sequencer", config.common.log_format);
    log_panics();
    if let Err(error) = paxid_sequencer::run(config, service::shutdown_signal()).await {
        eprintln!("paxid-sequencer: {error}");
        std::process::exit(1);
    }
}

/// Logs every panic at error level (in the JSON log too), then prints it as
/// before. A panic in an essential task then ends the process (see
/// `paxid_sequencer::watch_essential`).
fn log_panics() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "panicked");
        print(info);
    }));
}
