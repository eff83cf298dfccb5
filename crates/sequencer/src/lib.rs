//! `paxid-sequencer`: a Multi-Paxos proposer that hands out transaction IDs.
//!
//! `driver` owns the `paxos_core::Proposer` and talks to acceptors over
//! HTTP (`peers`); `poller` watches acceptor status for elections and
//! leader discovery; `http` serves `POST /next-id`, forwarding to the leader
//! from followers.

pub mod config;
pub mod driver;
pub mod http;
pub mod peers;
pub mod poller;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
pub use http::{app, AppState};

/// Client requests queued for the driver, at most; more get 503.
const REQUEST_QUEUE_MAX: usize = 65_536;

/// Binds, starts the driver and the poller, and serves until `shutdown`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), String> {
    let proposer_config = config.proposer_config()?;
    let listener = tokio::net::TcpListener::bind(&config.common.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.common.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("listening on http://{address}");
    let timeout = Duration::from_millis(config.peer_timeout_ms);
    let peers = Arc::new(peers::Peers::new(
        &config.acceptors,
        &config.learners,
        config.common.cluster_token.clone(),
        timeout,
    ));
    let advertise_url = config.advertise_url.as_str().trim_end_matches('/').to_owned();
    let driver = driver::Driver::spawn(
        proposer_config,
        peers.clone(),
        advertise_url.clone(),
        REQUEST_QUEUE_MAX,
    );
    let interval = Duration::from_millis(config.status_interval_ms.max(1));
    let cluster = poller::spawn(peers.clone(), interval, driver.peer_events.clone());
    tracing::info!(node_id = config.node_id, %advertise_url, acceptors = config.acceptors.len(), "sequencer started");
    let state = AppState {
        driver,
        cluster,
        peers,
        node_id: config.node_id,
        advertise_url,
        count_max: config.count_max,
        cluster_token: config.common.cluster_token.clone(),
        leader_silence_max_ms: config.election_timeout_min_ms,
        forward_timeout: Duration::from_millis(config.id_timeout_ms + config.peer_timeout_ms),
    };
    let router = service::with_standard_layers(app(state), &config.common.limits());
    service::serve(listener, router, shutdown)
        .await
        .map_err(|e| e.to_string())
}
