//! The sequencer's peers: the acceptors of its configuration and the
//! learners, called through the one internal client
//! ([`paxid_client::internal`]).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use api::internal::{
    AcceptResponse, AcceptorStatus, ChosenPush, CommitRequest, CommitResponse, InstallRequest, JoinRequest,
    JoinResponse, PrepareRequest, PrepareResponse, TransitionRequest,
};
use paxid_client::internal::{InternalClient, Options};
use paxos_core::AcceptorId;
use reqwest::Url;

/// Why a call to a peer gave no answer. The protocol treats every one of
/// them as a lost message: timers resend, nothing is assumed.
pub use paxid_client::internal::CallError as PeerError;

/// The acceptors of the configuration this sequencer works in:
/// `AcceptorId(i)` is `urls[i]`. Epoch 0 is the `--acceptors` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptorTable {
    pub epoch: u64,
    pub urls: Vec<String>,
    /// Who sits where; None in epoch 0, which no configuration records.
    pub configuration: Option<paxos_core::Configuration>,
}

impl AcceptorTable {
    pub fn of(configuration: &paxos_core::Configuration) -> AcceptorTable {
        AcceptorTable {
            epoch: configuration.epoch,
            urls: configuration.seats.iter().map(|s| s.address.clone()).collect(),
            configuration: Some(configuration.clone()),
        }
    }
}

/// The internal client and whom to call with it.
#[derive(Debug)]
pub struct Peers {
    client: InternalClient,
    /// Replaced when the cluster moves to a new configuration.
    acceptors: RwLock<Arc<AcceptorTable>>,
    learners: Vec<String>,
}

impl Peers {
    /// Every call names `cluster_id` (an acceptor of another cluster
    /// refuses it, so it is never counted) and carries the trace context.
    pub fn new(
        acceptors: &[Url],
        learners: &[Url],
        token: service::Tokens,
        cluster_id: &str,
        timeout: Duration,
    ) -> Peers {
        let options = Options {
            cluster_id: Some(cluster_id.to_owned()),
            timeout: Some(timeout),
            connect_timeout: timeout.min(Duration::from_millis(500)),
            pool_idle_per_host: 64,
            http1_only: false,
            per_call_headers: Some(telemetry::trace_headers),
        };
        let client = InternalClient::new(options, Arc::new(token))
            .expect("a parsed cluster id is a valid header value, and a client with no TLS always builds");
        let base = |url: &Url| url.as_str().trim_end_matches('/').to_owned();
        let table = AcceptorTable {
            epoch: 0,
            urls: acceptors.iter().map(base).collect(),
            configuration: None,
        };
        Peers {
            client,
            acceptors: RwLock::new(Arc::new(table)),
            learners: learners.iter().map(base).collect(),
        }
    }

    /// The current configuration's acceptors.
    pub fn acceptors(&self) -> Arc<AcceptorTable> {
        self.acceptors
            .read()
            .expect("never poisoned: no panics under it")
            .clone()
    }

    /// Moves to the acceptors of a later configuration.
    pub fn set_acceptors(&self, table: AcceptorTable) {
        let mut current = self
            .acceptors
            .write()
            .expect("never poisoned: no panics under it");
        if table.epoch > current.epoch {
            *current = Arc::new(table);
        }
    }

    pub fn acceptor_count(&self) -> usize {
        self.acceptors().urls.len()
    }

    /// The URL behind `to` in the current table (empty if out of range:
    /// the call then fails like a lost message).
    fn url(&self, to: AcceptorId) -> String {
        self.acceptors().urls.get(to.0).cloned().unwrap_or_default()
    }

    pub fn learner_count(&self) -> usize {
        self.learners.len()
    }

    /// The internal client (with the cluster token and id).
    pub fn internal(&self) -> &InternalClient {
        &self.client
    }

    /// The connection pool, for `POST /next-id` forwarded to the leader.
    pub fn client(&self) -> &reqwest::Client {
        self.client.http()
    }

    pub async fn prepare(&self, to: AcceptorId, body: &PrepareRequest) -> Result<PrepareResponse, PeerError> {
        self.client.prepare(&self.url(to), body).await
    }

    /// `body` is an [`api::internal::AcceptRequest`] already serialized: a
    /// broadcast is encoded once for every acceptor (see `Driver::execute`).
    pub async fn accept(&self, to: AcceptorId, body: axum::body::Bytes) -> Result<AcceptResponse, PeerError> {
        self.client.accept(&self.url(to), body).await
    }

    pub async fn commit(&self, to: AcceptorId, body: &CommitRequest) -> Result<CommitResponse, PeerError> {
        self.client.commit(&self.url(to), body).await
    }

    pub async fn join(&self, to: AcceptorId, body: &JoinRequest) -> Result<JoinResponse, PeerError> {
        self.client.join(&self.url(to), body).await
    }

    pub async fn install(&self, to: AcceptorId, body: &InstallRequest) -> Result<JoinResponse, PeerError> {
        self.client.install(&self.url(to), body).await
    }

    pub async fn status(&self, to: AcceptorId, timeout: Duration) -> Result<AcceptorStatus, PeerError> {
        self.status_at(&self.url(to), timeout).await
    }

    /// The status of the acceptor at `base`, in the table or not.
    pub async fn status_at(&self, base: &str, timeout: Duration) -> Result<AcceptorStatus, PeerError> {
        self.client.acceptor_status(base, timeout).await
    }

    /// The snapshot the log of acceptor `to` is compacted to.
    pub async fn snapshot(&self, to: AcceptorId) -> Result<api::internal::Snapshot, PeerError> {
        self.client.snapshot(&self.url(to)).await
    }

    /// At most `limit` log entries of acceptor `to` from slot `from` on.
    pub async fn log(
        &self,
        to: AcceptorId,
        from: u64,
        limit: usize,
    ) -> Result<api::internal::LogResponse, PeerError> {
        self.client.log(&self.url(to), from, limit as u64).await
    }

    /// Moves the acceptor at `base` into a configuration.
    pub async fn transition(&self, base: &str, body: &TransitionRequest) -> Result<JoinResponse, PeerError> {
        self.client.transition(base, body).await
    }

    /// What moves another acceptor to where the one at `base` is.
    pub async fn transition_from(&self, base: &str) -> Result<TransitionRequest, PeerError> {
        self.client.transition_from(base).await
    }

    pub async fn learner_status(&self, learner: usize) -> Result<api::learner::LearnerStatus, PeerError> {
        self.client.learner_status(&self.learners[learner]).await
    }

    pub async fn push_chosen(&self, learner: usize, body: &ChosenPush) -> Result<(), PeerError> {
        self.client.push_chosen(&self.learners[learner], body).await
    }
}
