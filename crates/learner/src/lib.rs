//! `paxid-learner`: learns chosen slots and delivers every allocation to
//! webhook subscribers, signed, in slot order, across restarts.
//!
//! - [`learn`]: a pull loop polls every acceptor's log; the leader's push
//!   (`POST /v1/chosen`) only makes it poll at once (a hint: pushed values
//!   are never taken, so a forged push delivers nothing). A
//!   [`paxos_core::Learner`] decides what is chosen; released slots go to
//!   the RocksDB [`store`] (synced) before anything else sees them. The
//!   acceptors read are those of the configuration followed: `--acceptors`
//!   in epoch 0, then those each chosen stop sign names (stored).
//! - [`subscriptions`]: the operator API and one [`delivery`] task per
//!   subscription, each with a durable cursor.
//! - [`signing`] (Standard Webhooks v1) and the [`ssrf`] guard.
//!
//! Every `service::fatal` here ends the process after an operating error
//! that leaves memory and disk possibly out of step (a failed write or
//! fsync, a failed read of what was written), or when the learning actor is
//! gone (only a bug ends it): the learner restarts from disk, where every
//! released slot and every cursor is durable.

pub mod config;
pub mod delivery;
pub mod http;
pub mod learn;
pub mod signing;
pub mod ssrf;
pub mod store;
pub mod subscriptions;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use rand::RngCore;
use service::{fatal, Context, RunError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{Args, Config};

use crate::delivery::{DeliveryContext, DeliveryLimits};
use crate::learn::Learning;
use crate::store::Store;
use crate::subscriptions::Subscriptions;
use paxid_client::internal::InternalClient;

/// Metric names; each is documented where it is described.
pub mod metric {
    pub const LEARNED_BELOW: &str = "paxid_learner_learned_below";
    pub const COVERAGE_LOST: &str = "paxid_learner_coverage_lost";
    pub const DELIVERY_LAG_SLOTS: &str = "paxid_learner_delivery_lag_slots";
    pub const DELIVERY_ATTEMPTS_TOTAL: &str = "paxid_learner_delivery_attempts_total";
    pub const WEBHOOK_DURATION_SECONDS: &str = "paxid_learner_webhook_duration_seconds";
    /// `ping` webhooks sent (`POST /v1/subscriptions/{id}/ping`), by result.
    pub const PINGS_TOTAL: &str = "paxid_learner_pings_total";
    pub const LOG_START: &str = "paxid_learner_log_start";
    /// Counter, by `source` (always `pull`): reports refused because they
    /// contradict a value the learner already holds (two values chosen for
    /// one slot, or two values voted under one ballot).
    pub const CONFLICTS_TOTAL: &str = "paxid_learner_conflicts_total";
    /// Counter: slots skipped because every acceptor had compacted them
    /// away (the learner started again from a snapshot); restored from the
    /// store's gaps at start.
    pub const SKIPPED_SLOTS_TOTAL: &str = "paxid_learner_skipped_slots_total";
    /// Gauge: the epoch of the configuration whose acceptors the learner
    /// reads (0: the `--acceptors` list; later ones from a stop sign).
    pub const EPOCH: &str = "paxid_learner_epoch";
}

/// The binary's name, as its log, its stderr lines and its exit say it.
pub const SERVICE_NAME: &str = "paxid-learner";

/// Everything the handlers and background tasks share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    learner_id: String,
    learning: Learning,
    subscriptions: Subscriptions,
    actor: Mutex<Option<JoinHandle<()>>>,
    actor_abort: tokio::task::AbortHandle,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// How often the per-subscription lag gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

impl AppState {
    /// Opens the store and starts learning, progress reports and every
    /// subscription's delivery. Must be called inside a Tokio runtime.
    pub fn start(config: Config) -> Result<AppState, RunError> {
        paxid_client::install_tls_provider();
        let store = Store::open(&config.data_dir).context("cannot open the data dir")?;
        let learner_id = store
            .learner_id(new_learner_id)
            .context("cannot read the learner id")?;
        let (learning, actor) = Learning::start(store.clone(), config.acceptors.clone())
            .context("cannot load the learned log")?;
        let options = paxid_client::internal::Options {
            cluster_id: Some(config.cluster_id.clone()),
            timeout: Some(learn::ACCEPTOR_TIMEOUT),
            connect_timeout: learn::ACCEPTOR_TIMEOUT,
            ..Default::default()
        };
        let acceptors = InternalClient::new(options, Arc::new(config.cluster_token.clone()))
            .context("cannot build the client of the acceptors")?;
        let client = delivery::webhook_client(
            config.webhook_timeout,
            config.webhook_connect_timeout,
            config.allow_private_webhooks,
        )
        .context("cannot build the webhook client")?;
        let context = Arc::new(DeliveryContext {
            store: store.clone(),
            learning: learning.clone(),
            client,
            allow_private: config.allow_private_webhooks,
            limits: DeliveryLimits {
                message_slots_max: config.message_slots_max,
                message_bytes_max: config.message_bytes_max,
                retry_initial: config.retry_initial,
                retry_max: config.retry_max,
                disable_after_failing: config.disable_after_failing,
            },
        });
        let subscriptions = Subscriptions::start(context, config.subscriptions_max)
            .context("cannot load the subscriptions")?;
        let tasks = vec![
            tokio::spawn(learning.clone().pull_loop(
                acceptors.clone(),
                config.pull_interval,
                config.acceptors_silent_max,
            )),
            tokio::spawn(learning.clone().progress_loop(
                acceptors.clone(),
                learner_id.clone(),
                config.progress_interval,
            )),
            // Identities change rarely; a look every few progress rounds.
            tokio::spawn(
                learning
                    .clone()
                    .identity_loop(acceptors, config.progress_interval * 4),
            ),
        ];
        tracing::info!(
            %learner_id,
            learned_below = learning.learned_below(),
            epoch = learning.acceptor_set().epoch,
            "learner started"
        );
        let actor = tokio::spawn(actor);
        let state = AppState {
            inner: Arc::new(Inner {
                config,
                store,
                learner_id,
                learning,
                subscriptions,
                actor_abort: actor.abort_handle(),
                actor: Mutex::new(Some(actor)),
                tasks: Mutex::new(tasks),
            }),
        };
        let gauges = state.clone();
        let gauge_task = tokio::spawn(async move {
            loop {
                gauges.subscriptions().update_gauges();
                tokio::time::sleep(GAUGE_INTERVAL).await;
            }
        });
        let pruner = state.clone();
        let prune_task = tokio::spawn(async move {
            let (retain, interval) = (pruner.config().retain_slots, pruner.config().prune_interval);
            loop {
                tokio::time::sleep(interval).await;
                match pruner.subscriptions().prune_log(retain) {
                    Ok(start) => metrics::gauge!(metric::LOG_START).set(start as f64),
                    Err(error) => fatal(SERVICE_NAME, &format!("pruning the learned log failed: {error}")),
                }
            }
        });
        state
            .inner
            .tasks
            .lock()
            .expect("tasks lock poisoned")
            .extend([gauge_task, prune_task]);
        Ok(state)
    }

    pub fn learning(&self) -> &Learning {
        &self.inner.learning
    }

    pub fn subscriptions(&self) -> &Subscriptions {
        &self.inner.subscriptions
    }

    /// The counters after every learned slot, as stored.
    pub fn counters(&self) -> Result<paxos_core::Counters, store::StoreError> {
        self.inner.store.counters()
    }

    /// The learner's store, for the service tests in `tests/` (which read
    /// the learned log and the recorded configuration back).
    #[doc(hidden)]
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Every slot range skipped by starting again from a snapshot.
    pub fn gaps(&self) -> Result<Vec<api::learner::LearnerGap>, store::StoreError> {
        self.inner.store.gaps()
    }

    /// This learner's stable id, as reported to the acceptors.
    pub fn learner_id(&self) -> &str {
        &self.inner.learner_id
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Ready when the store answers, learning is not stalled by compaction
    /// and some acceptor of the followed configuration answered within
    /// `acceptors_silent_max`.
    pub fn ready(&self) -> Result<(), String> {
        self.inner
            .store
            .check()
            .map_err(|error| format!("the store does not answer: {error}"))?;
        let coverage = self.inner.learning.coverage();
        if let Some(reason) = coverage.lost() {
            return Err(reason);
        }
        match coverage.silent(self.inner.config.acceptors_silent_max) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Stops every background task; the store closes when the last handle goes.
    pub fn shutdown(&self) {
        self.inner.subscriptions.stop();
        for task in self.inner.tasks.lock().expect("tasks lock poisoned").drain(..) {
            task.abort();
        }
        self.inner.actor_abort.abort();
    }

    /// Resolves if the learning actor ends, which only a bug can cause.
    async fn learning_stopped(&self) -> String {
        let actor = self.inner.actor.lock().expect("actor lock poisoned").take();
        let Some(actor) = actor else {
            return std::future::pending().await;
        };
        match actor.await {
            Ok(()) => "the learning task returned".to_owned(),
            Err(error) => error.to_string(),
        }
    }
}

/// The learner's router: `/v1` API, probes and metrics, standard layers.
pub fn app(state: AppState) -> Router {
    let ready_state = state.clone();
    let ready = move || {
        let state = ready_state.clone();
        async move { state.ready() }
    };
    let limits = state.config().limits;
    let routes = http::routes(state.clone());
    let router = Router::new()
        .merge(routes)
        .merge(service::health_routes(ready))
        .merge(service::openapi_route(api::openapi::LEARNER));
    service::with_standard_layers(router, &limits)
}

/// Runs the learner until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    // Before anything records a metric (the store's restored counters).
    service::install_metrics();
    let listener = service::listen(&config.listen).await?;
    serve_on(listener, config, shutdown).await
}

/// Like [`run`], on a listener the caller bound (tests bind port 0).
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let state = AppState::start(config)?;
    let result: Result<(), RunError> = async {
        // Tests and scripts started with port 0 read the port from this line.
        service::announce_listener(&listener)?;
        let server = service::serve(listener, app(state.clone()), shutdown);
        tokio::select! {
            served = server => served.context("serving failed"),
            reason = state.learning_stopped() => Err(RunError::new("the learning task stopped", reason)),
        }
    }
    .await;
    state.shutdown();
    result
}

fn new_learner_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("lrn_{hex}")
}
