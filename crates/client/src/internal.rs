//! The one client of paxid's internal `/v1` API, shared by the sequencer
//! (calls to acceptors and learners, the handover poll), the learner
//! (reading acceptors' logs, reporting its progress), the `paxid` CLI and
//! the end-to-end tests.
//!
//! It owns what every caller must get right the same way: the route paths
//! (from [`api::routes`]), the cluster id header, the current cluster token
//! (re-read on every call, so a rotated token file takes effect), the JSON
//! bodies and how an answer becomes a result. It does not retry: each
//! caller keeps its own policy (the protocol treats a failed call as a lost
//! message and its timers resend; the learner polls again; the CLI fails
//! over to the next endpoint).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use api::internal::{
    AcceptResponse, AcceptorStatus, ChosenPush, CommitRequest, CommitResponse, InstallRequest, JoinRequest,
    JoinResponse, LearnerProgress, LogResponse, PrepareRequest, PrepareResponse, Snapshot, TransitionRequest,
};
use api::routes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where the bearer token of a call comes from: a fixed token, none, or a
/// rotating set (the services' `Tokens`, whose file may change while they
/// run).
pub trait Credential: Send + Sync + fmt::Debug {
    /// The token to present now, if the scope has one.
    fn current(&self) -> Option<String>;
}

impl Credential for Option<String> {
    fn current(&self) -> Option<String> {
        self.clone()
    }
}

/// Why a call gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer: refused, reset, timed out, or a body that did not decode.
    #[error("{url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    /// An answer with an error status; `body` is its text (a problem+json
    /// document from paxid).
    #[error("{url}: answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
        /// The server's `Retry-After`, in whole seconds.
        retry_after: Option<Duration>,
    },
}

impl CallError {
    /// The status of an error answer (None when there was no answer).
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            CallError::Transport { .. } => None,
        }
    }
}

/// How the underlying connections behave.
#[derive(Clone, Debug)]
pub struct Options {
    /// Sent as [`api::CLUSTER_ID_HEADER`] on every call: an acceptor of
    /// another cluster refuses the call, so it is never counted.
    pub cluster_id: Option<String>,
    /// Whole-call timeout (None: none; set one per call instead).
    pub timeout: Option<Duration>,
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per host.
    pub pool_idle_per_host: usize,
    /// HTTP/1.1 only (the CLI's benchmark wants one connection per client).
    pub http1_only: bool,
    /// Headers added to every call at the moment it is sent, for example
    /// the W3C trace context of the current span.
    pub per_call_headers: Option<fn() -> HeaderMap>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cluster_id: None,
            timeout: None,
            connect_timeout: Duration::from_millis(500),
            pool_idle_per_host: 64,
            http1_only: false,
            per_call_headers: None,
        }
    }
}

/// A keep-alive connection pool plus the cluster's credential; cheap to
/// clone (every clone shares the pool).
#[derive(Clone, Debug)]
pub struct InternalClient {
    http: reqwest::Client,
    token: Arc<dyn Credential>,
    per_call_headers: Option<fn() -> HeaderMap>,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the cluster id {0:?} is not a valid header value")]
    ClusterId(String),
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl InternalClient {
    pub fn new(options: Options, token: Arc<dyn Credential>) -> Result<InternalClient, BuildError> {
        crate::install_tls_provider();
        let mut headers = HeaderMap::new();
        if let Some(cluster_id) = &options.cluster_id {
            let value =
                HeaderValue::from_str(cluster_id).map_err(|_| BuildError::ClusterId(cluster_id.clone()))?;
            headers.insert(api::CLUSTER_ID_HEADER, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            // A paxid cluster is addressed directly; an HTTP_PROXY meant for
            // the internet must not sit between its members.
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(options.connect_timeout)
            .pool_max_idle_per_host(options.pool_idle_per_host);
        if let Some(timeout) = options.timeout {
            builder = builder.timeout(timeout);
        }
        if options.http1_only {
            builder = builder.http1_only();
        }
        Ok(InternalClient {
            http: builder.build()?,
            token,
            per_call_headers: options.per_call_headers,
        })
    }

    /// The connection pool, for calls outside the internal API that should
    /// share it (`POST /next-id` forwarded to the leader).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A call to `path` (a route of [`api::routes`], with its query) at
    /// `base` with the cluster token and the per-call headers.
    pub fn request(&self, method: Method, base: &str, path: &str) -> RequestBuilder {
        self.request_as(method, base, path, self.token.current().as_deref())
    }

    /// Like [`InternalClient::request`] but with another scope's token (the
    /// learner's subscription API, `POST /next-id`), or none.
    pub fn request_as(&self, method: Method, base: &str, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut request = self.http.request(method, join(base, path));
        if let Some(headers) = self.per_call_headers {
            request = request.headers(headers());
        }
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get_json<R: DeserializeOwned>(&self, base: &str, path: &str) -> Result<R, CallError> {
        decode(self.request(Method::GET, base, path)).await
    }

    pub async fn post_json<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &B,
    ) -> Result<R, CallError> {
        decode(self.request(Method::POST, base, path).json(body)).await
    }

    // ---- acceptor ----------------------------------------------------------

    pub async fn prepare(&self, base: &str, body: &PrepareRequest) -> Result<PrepareResponse, CallError> {
        self.post_json(base, routes::PREPARE, body).await
    }

    /// `body` is an `AcceptRequest` already serialized: a broadcast is
    /// encoded once and the same bytes go to every acceptor.
    pub async fn accept(
        &self,
        base: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<AcceptResponse, CallError> {
        let request = self
            .request(Method::POST, base, routes::ACCEPT)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        decode(request).await
    }

    pub async fn commit(&self, base: &str, body: &CommitRequest) -> Result<CommitResponse, CallError> {
        self.post_json(base, routes::COMMIT, body).await
    }

    pub async fn join(&self, base: &str, body: &JoinRequest) -> Result<JoinResponse, CallError> {
        self.post_json(base, routes::JOIN, body).await
    }

    pub async fn install(&self, base: &str, body: &InstallRequest) -> Result<JoinResponse, CallError> {
        self.post_json(base, routes::INSTALL, body).await
    }

    /// An acceptor's `GET /v1/status` (a caller that needs only some fields
    /// may use [`InternalClient::get_json`] with its own type).
    pub async fn acceptor_status(&self, base: &str, timeout: Duration) -> Result<AcceptorStatus, CallError> {
        decode(self.request(Method::GET, base, routes::STATUS).timeout(timeout)).await
    }

    /// The snapshot the acceptor's log is compacted to.
    pub async fn snapshot(&self, base: &str) -> Result<Snapshot, CallError> {
        self.get_json(base, routes::SNAPSHOT).await
    }

    /// At most `limit` log entries from slot `from` on.
    pub async fn log(&self, base: &str, from: u64, limit: u64) -> Result<LogResponse, CallError> {
        self.get_json(base, &routes::log_page(from, limit)).await
    }

    /// Moves the acceptor at `base` into a configuration.
    pub async fn transition(&self, base: &str, body: &TransitionRequest) -> Result<JoinResponse, CallError> {
        self.post_json(base, routes::TRANSITION, body).await
    }

    /// What moves another acceptor to where the one at `base` is.
    pub async fn transition_from(&self, base: &str) -> Result<TransitionRequest, CallError> {
        self.get_json(base, routes::TRANSITION).await
    }

    /// A learner reports that it has everything below `learned_below`.
    pub async fn learner_progress(
        &self,
        base: &str,
        learner_id: &str,
        learned_below: u64,
    ) -> Result<(), CallError> {
        let body = LearnerProgress { learned_below };
        succeeded(
            self.request(Method::POST, base, &routes::learner_progress(learner_id))
                .json(&body),
        )
        .await
    }

    // ---- learner -----------------------------------------------------------

    pub async fn learner_status(&self, base: &str) -> Result<api::learner::LearnerStatus, CallError> {
        self.get_json(base, routes::STATUS).await
    }

    /// The leader's hint that slots were chosen (the answer has no body).
    pub async fn push_chosen(&self, base: &str, body: &ChosenPush) -> Result<(), CallError> {
        succeeded(self.request(Method::POST, base, routes::CHOSEN).json(body)).await
    }

    // ---- sequencer ---------------------------------------------------------

    pub async fn sequencer_status(&self, base: &str) -> Result<api::client::SequencerStatus, CallError> {
        self.get_json(base, routes::STATUS).await
    }

    /// The follower's long poll of a stopping leader: `Ok(true)` when the
    /// leader named this follower its successor (200), `Ok(false)` when
    /// the poll ended without a handover.
    pub async fn handover_poll(&self, leader: &str, wait: Duration) -> Result<bool, CallError> {
        let url = join(leader, routes::HANDOVER);
        let response = self
            .request(Method::GET, leader, routes::HANDOVER)
            .timeout(wait)
            .send()
            .await
            .map_err(|source| CallError::Transport {
                url: url.clone(),
                source,
            })?;
        match response.status() {
            StatusCode::OK => Ok(true),
            status if status.is_success() => Ok(false),
            _ => Err(status_error(url, response).await),
        }
    }
}

/// `base` (with or without a trailing `/`) followed by `path`.
pub fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// Sends `request` and decodes a 2xx JSON answer.
pub async fn decode<R: DeserializeOwned>(request: RequestBuilder) -> Result<R, CallError> {
    let response = send(request).await?;
    let url = response.url().to_string();
    response
        .json()
        .await
        .map_err(|source| CallError::Transport { url, source })
}

/// Sends `request` and accepts any 2xx answer, whatever its body.
async fn succeeded(request: RequestBuilder) -> Result<(), CallError> {
    send(request).await.map(|_| ())
}

/// Sends `request`; an error status becomes [`CallError::Status`].
pub async fn send(request: RequestBuilder) -> Result<Response, CallError> {
    let (client, request) = request.build_split();
    let request = request.map_err(|source| CallError::Transport {
        url: String::new(),
        source,
    })?;
    let url = request.url().to_string();
    let response = client
        .execute(request)
        .await
        .map_err(|source| CallError::Transport {
            url: url.clone(),
            source,
        })?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(status_error(url, response).await)
    }
}

async fn status_error(url: String, response: Response) -> CallError {
    let status = response.status().as_u16();
    let retry_after = crate::retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    CallError::Status {
        url,
        status,
        body,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_bases_with_or_without_a_slash() {
        assert_eq!(join("http://h:1/", routes::NEXT_ID), "http://h:1/next-id");
        assert_eq!(join("http://h:1", routes::STATUS), "http://h:1/v1/status");
    }

    #[test]
    fn a_bad_cluster_id_is_an_error_not_a_panic() {
        let options = Options {
            cluster_id: Some("bad\nid".into()),
            ..Options::default()
        };
        assert!(matches!(
            InternalClient::new(options, Arc::new(None)),
            Err(BuildError::ClusterId(_))
        ));
    }
}
