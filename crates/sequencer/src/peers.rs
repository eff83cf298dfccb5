//! HTTP calls to acceptors and learners over the internal `/v1` API.

use std::time::Duration;

use api::internal::{
    AcceptRequest, AcceptResponse, AcceptorStatus, ChosenPush, CommitRequest, CommitResponse, InstallRequest,
    JoinRequest, JoinResponse, PrepareRequest, PrepareResponse,
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

/// Keep-alive clients for every peer, with the cluster token.
#[derive(Debug)]
pub struct Peers {
    client: reqwest::Client,
    acceptors: Vec<String>,
    learners: Vec<String>,
    token: Option<String>,
}

impl Peers {
    pub fn new(acceptors: &[Url], learners: &[Url], token: Option<String>, timeout: Duration) -> Peers {
        api::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_millis(500)))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .expect("a reqwest client with no TLS always builds");
        let base = |url: &Url| url.as_str().trim_end_matches('/').to_owned();
        Peers {
            client,
            acceptors: acceptors.iter().map(base).collect(),
            learners: learners.iter().map(base).collect(),
            token,
        }
    }

    pub fn acceptor_count(&self) -> usize {
        self.acceptors.len()
    }

    pub fn learner_count(&self) -> usize {
        self.learners.len()
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn prepare(&self, to: AcceptorId, body: &PrepareRequest) -> Result<PrepareResponse, PeerError> {
        self.post(&self.acceptors[to.0], "/v1/prepare", body).await
    }

    pub async fn accept(&self, to: AcceptorId, body: &AcceptRequest) -> Result<AcceptResponse, PeerError> {
        self.post(&self.acceptors[to.0], "/v1/accept", body).await
    }

    pub async fn commit(&self, to: AcceptorId, body: &CommitRequest) -> Result<CommitResponse, PeerError> {
        self.post(&self.acceptors[to.0], "/v1/commit", body).await
    }

    pub async fn join(&self, to: AcceptorId, body: &JoinRequest) -> Result<JoinResponse, PeerError> {
        self.post(&self.acceptors[to.0], "/v1/join", body).await
    }

    pub async fn install(&self, to: AcceptorId, body: &InstallRequest) -> Result<JoinResponse, PeerError> {
        self.post(&self.acceptors[to.0], "/v1/install", body).await
    }

    pub async fn status(&self, to: AcceptorId, timeout: Duration) -> Result<AcceptorStatus, PeerError> {
        let url = format!("{}/v1/status", self.acceptors[to.0]);
        let request = self.authorized(self.client.get(&url)).timeout(timeout);
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
        match &self.token {
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
