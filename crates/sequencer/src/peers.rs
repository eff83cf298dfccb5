//! HTTP calls to acceptors and learners over the internal `/v1` API.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use api::internal::{
    AcceptResponse, AcceptorStatus, ChosenPush, CommitRequest, CommitResponse, InstallRequest, JoinRequest,
    JoinResponse, PrepareRequest, PrepareResponse, TransitionRequest,
};
use paxos_core::AcceptorId;
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a call to a peer gave no answer. The protocol treats every one of
/// them as a lost message: timers resend, nothing is assumed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("{url}: answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
}

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

/// Keep-alive clients for every peer, with the cluster token.
#[derive(Debug)]
pub struct Peers {
    client: reqwest::Client,
    /// Replaced when the cluster moves to a new configuration.
    acceptors: RwLock<Arc<AcceptorTable>>,
    learners: Vec<String>,
    /// The cluster token sent is the scope's current one (its file may be
    /// rotated while running).
    token: service::Tokens,
}

impl Peers {
    /// Every call names `cluster_id` (an acceptor of another cluster
    /// refuses it, so it is never counted).
    pub fn new(
        acceptors: &[Url],
        learners: &[Url],
        token: service::Tokens,
        cluster_id: &str,
        timeout: Duration,
    ) -> Peers {
        api::install_tls_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        let cluster = reqwest::header::HeaderValue::from_str(cluster_id)
            .expect("a parsed cluster id is a valid header value");
        headers.insert(api::CLUSTER_ID_HEADER, cluster);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_millis(500)))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .expect("a reqwest client with no TLS always builds");
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
            token,
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

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn prepare(&self, to: AcceptorId, body: &PrepareRequest) -> Result<PrepareResponse, PeerError> {
        self.post(&self.url(to), "/v1/prepare", body).await
    }

    /// `body` is an [`AcceptRequest`] already serialized: a broadcast is
    /// encoded once for every acceptor (see `Driver::execute`).
    pub async fn accept(&self, to: AcceptorId, body: axum::body::Bytes) -> Result<AcceptResponse, PeerError> {
        let url = format!("{}/v1/accept", self.url(to));
        let request = self
            .authorized(self.client.post(&url))
            .headers(telemetry::trace_headers())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        Self::decode(url, request.send().await).await
    }

    pub async fn commit(&self, to: AcceptorId, body: &CommitRequest) -> Result<CommitResponse, PeerError> {
        self.post(&self.url(to), "/v1/commit", body).await
    }

    pub async fn join(&self, to: AcceptorId, body: &JoinRequest) -> Result<JoinResponse, PeerError> {
        self.post(&self.url(to), "/v1/join", body).await
    }

    pub async fn install(&self, to: AcceptorId, body: &InstallRequest) -> Result<JoinResponse, PeerError> {
        self.post(&self.url(to), "/v1/install", body).await
    }

    pub async fn status(&self, to: AcceptorId, timeout: Duration) -> Result<AcceptorStatus, PeerError> {
        self.status_at(&self.url(to), timeout).await
    }

    /// The status of the acceptor at `base`, in the table or not.
    pub async fn status_at(&self, base: &str, timeout: Duration) -> Result<AcceptorStatus, PeerError> {
        let url = format!("{base}/v1/status");
        let request = self.authorized(self.client.get(&url)).timeout(timeout);
        Self::decode(url, request.send().await).await
    }

    /// The snapshot the log of acceptor `to` is compacted to.
    pub async fn snapshot(&self, to: AcceptorId) -> Result<api::internal::Snapshot, PeerError> {
        let url = format!("{}/v1/snapshot", self.url(to));
        let request = self.authorized(self.client.get(&url));
        Self::decode(url, request.send().await).await
    }

    /// At most `limit` log entries of acceptor `to` from slot `from` on.
    pub async fn log(
        &self,
        to: AcceptorId,
        from: u64,
        limit: usize,
    ) -> Result<api::internal::LogResponse, PeerError> {
        let url = format!("{}/v1/log?from={from}&limit={limit}", self.url(to));
        let request = self.authorized(self.client.get(&url));
        Self::decode(url, request.send().await).await
    }

    /// Moves the acceptor at `base` into a configuration.
    pub async fn transition(&self, base: &str, body: &TransitionRequest) -> Result<JoinResponse, PeerError> {
        self.post(base, "/v1/transition", body).await
    }

    /// What moves another acceptor to where the one at `base` is.
    pub async fn transition_from(&self, base: &str) -> Result<TransitionRequest, PeerError> {
        let url = format!("{base}/v1/transition");
        let request = self.authorized(self.client.get(&url));
        Self::decode(url, request.send().await).await
    }

    pub async fn learner_status(&self, learner: usize) -> Result<api::learner::LearnerStatus, PeerError> {
        let url = format!("{}/v1/status", self.learners[learner]);
        let request = self.authorized(self.client.get(&url));
        Self::decode(url, request.send().await).await
    }

    pub async fn push_chosen(&self, learner: usize, body: &ChosenPush) -> Result<(), PeerError> {
        let url = format!("{}/v1/chosen", self.learners[learner]);
        let request = self.authorized(self.client.post(&url)).json(body);
        let response = request.send().await.map_err(|source| PeerError::Transport {
            url: url.clone(),
            source,
        })?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(PeerError::Status {
                url,
                status: status.as_u16(),
                body: String::new(),
            }),
        }
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &B,
    ) -> Result<R, PeerError> {
        let url = format!("{base}{path}");
        let request = self
            .authorized(self.client.post(&url))
            .headers(telemetry::trace_headers())
            .json(body);
        Self::decode(url, request.send().await).await
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.token.current() {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn decode<R: DeserializeOwned>(
        url: String,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<R, PeerError> {
        let response = sent.map_err(|source| PeerError::Transport {
            url: url.clone(),
            source,
        })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(PeerError::Status {
                url,
                status: status.as_u16(),
                body,
            });
        }
        response
            .json()
            .await
            .map_err(|source| PeerError::Transport { url, source })
    }
}
