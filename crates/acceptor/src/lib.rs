//! `paxid-acceptor`: the Paxos acceptor as an HTTP service.
//!
//! [`paxos_core::Acceptor`] decides; this crate persists and speaks. One
//! actor thread ([`driver`]) owns the state machine and the RocksDB
//! [`store`], and group-commits: every command waiting is applied, all
//! their changes go to disk in one synced write batch, and only then are
//! the replies released. [`http`] is the `/v1` API (see
//! docs/internal-api.md), which validates every request before the actor
//! sees it.
//!
//! At startup the binary prints one line `listening on http://ADDR` to
//! stderr, so `--listen 127.0.0.1:0` works for tests that need a free port.

pub mod codec;
pub mod config;
pub mod driver;
pub mod http;
pub mod metrics;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use service::{Context, HttpLimits, RunError};
use tokio::task::JoinHandle;

pub use config::Config;
pub use driver::DriverHandle;
pub use store::{Identity, RocksStore, StoreError};

/// What every request handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub driver: DriverHandle,
    pub identity: Arc<Identity>,
    pub cluster_token: service::Tokens,
    pub limits: HttpLimits,
}

/// The binary's name, as its log, its stderr lines and its exit say it.
pub const SERVICE_NAME: &str = "paxid-acceptor";

/// A started acceptor: its store is open and its driver and compaction run.
pub struct Started {
    pub state: AppState,
    driver: driver::DriverThread,
    compactor: JoinHandle<()>,
}

/// The whole HTTP surface: `/v1` routes, probes, `/metrics`, and the
/// standard layers (limits, timeout, metrics, spans, problem+json).
pub fn app(state: AppState) -> Router {
    let driver = state.driver.clone();
    // Ready: the store takes a synced write, and this acceptor votes.
    let ready = move || {
        let driver = driver.clone();
        async move {
            driver.probe().await.map_err(|error| error.to_string())?;
            let status = driver.status().await.map_err(|error| error.to_string())?;
            if status.voting {
                Ok(())
            } else {
                Err(http::NOT_VOTING_DETAIL.to_owned())
            }
        }
    };
    let limits = state.limits;
    let router = http::routes(state).merge(service::health_routes(ready));
    metrics::describe();
    service::with_standard_layers(router, &limits)
}

/// Opens the data dir, checks its identity, loads the state, and starts the
/// driver and the periodic compaction. Call inside a Tokio runtime.
pub fn start(config: &Config) -> Result<Started, RunError> {
    let opening = "cannot open the data dir";
    let (store, identity) =
        store::open_data_dir(&config.data_dir, &config.common.cluster_id, new_node_uuid).context(opening)?;
    let state = paxos_core::AcceptorStore::load(&store).context(opening)?;
    let learners = store.learners().context(opening)?;
    let acceptor = paxos_core::Acceptor::restore(state);
    let view = acceptor.view();
    tracing::info!(
        cluster_id = %identity.cluster_id,
        node_uuid = %identity.node_uuid,
        promised = %view.promised,
        chosen_below = %view.chosen_below,
        compacted_below = %view.compacted_below,
        log_entries = view.log_entries,
        "acceptor state loaded"
    );
    let settings = driver::DriverSettings {
        retention: driver::Retention {
            retain_slots: config.retain_slots,
            key_window_slots: config.key_window_slots,
        },
    };
    let (handle, thread) =
        driver::spawn(acceptor, store, learners, settings).context("cannot start the driver thread")?;
    let compactor = tokio::spawn(compact_periodically(handle.clone(), config.compact_interval()));
    let state = AppState {
        driver: handle,
        identity: Arc::new(identity),
        cluster_token: config.common.cluster_tokens(),
        limits: config.limits(),
    };
    Ok(Started {
        state,
        driver: thread,
        compactor,
    })
}

impl Started {
    /// Stops compaction, lets the driver persist and answer what is queued,
    /// and waits until it has closed the store.
    pub async fn stop(self) {
        self.compactor.abort();
        self.state.driver.shutdown().await;
        let driver = self.driver;
        if tokio::task::spawn_blocking(move || driver.join()).await.is_err() {
            tracing::error!("waiting for the driver thread failed");
        }
    }

    /// Stops outside an async context (a test harness's `Drop`): asks the
    /// driver to stop and waits on this thread until it has closed the
    /// store. A process that exits while the driver thread still closes
    /// RocksDB races RocksDB's static destructors ("pthread lock: Invalid
    /// argument"). The driver needs no runtime to finish, so blocking here
    /// cannot deadlock; a full queue skips the wait.
    pub fn stop_blocking(self) {
        self.compactor.abort();
        if self.state.driver.try_shutdown() {
            self.driver.join();
        }
    }
}

/// Serves until `shutdown` resolves, then stops accepting, finishes the
/// requests in flight, persists and closes the store.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    // Before anything records a metric (the loaded state's gauges).
    service::install_metrics();
    let started = start(&config)?;
    let state = started.state.clone();
    let served: Result<(), RunError> = async {
        let listener = service::listen(&config.common.listen).await?;
        // Tests and scripts started with port 0 read the port from this line.
        service::announce_listener(&listener)?;
        service::serve(listener, app(state), shutdown)
            .await
            .context("serving failed")
    }
    .await;
    // After a failed bind too: a process that exits while the driver thread
    // still closes RocksDB races RocksDB's static destructors.
    started.stop().await;
    served
}

async fn compact_periodically(driver: DriverHandle, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        if driver.request_compaction().is_err() {
            return;
        }
    }
}

/// A random (version 4) UUID naming this acceptor's data dir: its
/// identity as a member ([`paxos_core::MemberId`]).
fn new_node_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    api::internal::node_uuid(paxos_core::MemberId(u128::from_be_bytes(bytes)))
}
