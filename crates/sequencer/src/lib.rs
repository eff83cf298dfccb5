//! `paxid-sequencer`: a Multi-Paxos proposer that hands out transaction IDs.
//!
//! `driver` owns the `paxos_core::Proposer` and talks to acceptors over
//! HTTP (`peers`); `poller` watches acceptor status for elections and
//! leader discovery; `http` serves `POST /next-id`, forwarding to the leader
//! from followers; `members` founds the cluster and keeps its acceptors
//! voting, `reconfigure` plans membership changes.

pub mod config;
pub mod driver;
pub mod forward;
pub mod handover;
pub mod http;
pub mod keys;
pub mod members;
pub mod peers;
pub mod poller;
pub mod reconfigure;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
pub use http::{app, AppState};
use service::{Context, RunError};

/// The binary's name, as its log, its stderr lines and its exit say it.
pub const SERVICE_NAME: &str = "paxid-sequencer";

/// How often membership (first start, lost disks) is looked at.
const MEMBERSHIP_INTERVAL: Duration = Duration::from_millis(500);

/// Client requests queued for the driver, at most; more get 503.
const REQUEST_QUEUE_MAX: usize = 65_536;

/// Binds, starts the driver and the poller, and serves until `shutdown`;
/// a leader then hands over before the server stops (see `handover`).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    // Before anything records a metric (the driver's first gauges).
    service::install_metrics();
    let proposer_config = config.proposer_config().context("invalid configuration")?;
    let listener = service::listen(&config.common.listen).await?;
    // Tests and scripts started with port 0 read the port from this line.
    service::announce_listener(&listener)?;
    let timeout = Duration::from_millis(config.peer_timeout_ms);
    let peers = Arc::new(peers::Peers::new(
        &config.acceptors,
        &config.learners,
        config.common.cluster_tokens(),
        &config.common.cluster_id,
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
    // Founds the cluster on first start, rebuilds lost members (see `members`).
    let _members = members::spawn(
        peers.clone(),
        paxos_core::NodeId(config.node_id),
        MEMBERSHIP_INTERVAL,
        config.found_floor.iter().cloned().collect(),
        driver.clone(),
    );
    // The driver owns the request channel's receiver and the poller the
    // cluster view's sender: either closes when its task ends.
    let requests = driver.requests.clone();
    let mut cluster_view = cluster.clone();
    // Ends the process when either is gone: the replica would otherwise
    // stay ready and answer 503 forever. It holds no durable state, so a
    // restart (by the supervisor) loses nothing.
    let watcher = watch_essential(
        vec![
            Essential::new("driver", async move { requests.closed().await }),
            Essential::new(
                "poller",
                async move { while cluster_view.changed().await.is_ok() {} },
            ),
        ],
        |message| service::fatal(SERVICE_NAME, &message),
    );
    tracing::info!(node_id = config.node_id, %advertise_url, acceptors = config.acceptors.len(), "sequencer started");
    let successors = Arc::new(handover::Successors::default());
    handover::spawn_watcher(
        peers.clone(),
        cluster.clone(),
        driver.clone(),
        advertise_url.clone(),
    );
    let handover_driver = driver.clone();
    let handover_successors = successors.clone();
    let shutdown = async move {
        shutdown.await;
        handover::hand_over(&handover_driver, &handover_successors).await;
    };
    let state = AppState {
        driver,
        cluster,
        peers,
        node_id: config.node_id,
        advertise_url,
        count_max: config.count_max,
        sequences_allowed: config.sequences.iter().cloned().collect(),
        cluster_token: config.common.cluster_tokens(),
        client_token: service::Tokens::new(&config.client_token, config.client_token_file.clone()),
        leader_silence_max_ms: config.election_timeout_min_ms,
        forward_timeout: Duration::from_millis(config.id_timeout_ms + config.peer_timeout_ms),
        forwarder: Default::default(),
    };
    let router = app(state).merge(handover::routes(
        successors.clone(),
        config.common.cluster_tokens(),
    ));
    let router = service::with_standard_layers(router, &config.common.limits());
    let router = handover::close_connections_when_stopping(router, successors);
    let served = service::serve(listener, router, shutdown)
        .await
        .context("serving failed");
    // Shutting down: the tasks may now end with the runtime.
    watcher.abort();
    served
}

/// A background task the sequencer cannot work without: `ended` resolves
/// when it stops, by a panic or by a return only a bug can cause.
pub struct Essential {
    name: &'static str,
    ended: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Essential {
    pub fn new(name: &'static str, ended: impl Future<Output = ()> + Send + 'static) -> Essential {
        Essential {
            name,
            ended: Box::pin(ended),
        }
    }
}

/// Calls `fatal` once, with a message naming the task, when the first of
/// `tasks` ends. With no tasks it never does.
pub fn watch_essential(
    tasks: Vec<Essential>,
    fatal: impl FnOnce(String) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tasks.is_empty() {
            return;
        }
        let ended = tasks.into_iter().map(|task| {
            Box::pin(async move {
                task.ended.await;
                task.name
            })
        });
        let (name, _, _) = futures::future::select_all(ended).await;
        fatal(format!(
            "the {name} task ended (a panic is logged above); this replica cannot serve without it"
        ));
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::{mpsc, oneshot, watch};

    use super::*;

    /// Waits for the fatal path, or `None` after `within`.
    async fn fatal_message(called: oneshot::Receiver<String>, within: Duration) -> Option<String> {
        tokio::time::timeout(within, called)
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Issue 12: a panic in the driver task left a zombie replica. A task
    /// holding the receiving end of the request channel, as the driver
    /// does, panics: the watcher must take the fatal path, naming it.
    #[tokio::test]
    async fn a_panicking_driver_task_takes_the_fatal_path() {
        let (requests, requests_rx) = mpsc::channel::<()>(1);
        let driver = tokio::spawn(async move {
            let _requests = requests_rx;
            tokio::time::sleep(Duration::from_millis(20)).await;
            panic!("a bug in the driver");
        });
        let (called, called_rx) = oneshot::channel();
        let _watcher = watch_essential(
            vec![
                Essential::new("driver", async move { requests.closed().await }),
                Essential::new("poller", std::future::pending()),
            ],
            move |message| {
                let _ = called.send(message);
            },
        );
        let message = fatal_message(called_rx, Duration::from_secs(5)).await;
        assert!(
            message.as_deref().is_some_and(|m| m.contains("driver")),
            "the fatal path was not taken: {message:?}"
        );
        assert!(driver.await.is_err_and(|e| e.is_panic()));
    }

    /// The poller publishes on a watch channel; its end is seen as the
    /// sender's drop.
    #[tokio::test]
    async fn a_panicking_poller_task_takes_the_fatal_path() {
        let (view_tx, mut view) = watch::channel(0u64);
        let poller = tokio::spawn(async move {
            for round in 1..3 {
                let _ = view_tx.send(round);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("a bug in the poller");
        });
        let (called, called_rx) = oneshot::channel();
        let _watcher = watch_essential(
            vec![Essential::new("poller", async move {
                while view.changed().await.is_ok() {}
            })],
            move |message| {
                let _ = called.send(message);
            },
        );
        let message = fatal_message(called_rx, Duration::from_secs(5)).await;
        assert!(
            message.as_deref().is_some_and(|m| m.contains("poller")),
            "the fatal path was not taken: {message:?}"
        );
        assert!(poller.await.is_err_and(|e| e.is_panic()));
    }

    #[tokio::test]
    async fn running_tasks_do_not_take_the_fatal_path() {
        let (requests, _requests_rx) = mpsc::channel::<()>(1);
        let (called, called_rx) = oneshot::channel();
        let _watcher = watch_essential(
            vec![Essential::new("driver", async move { requests.closed().await })],
            move |message| {
                let _ = called.send(message);
            },
        );
        let message = fatal_message(called_rx, Duration::from_millis(200)).await;
        assert_eq!(message, None);
    }
}
