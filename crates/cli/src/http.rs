//! The CLI's calls, and the one error type whose `Display` is the line
//! `paxid` prints before exiting non-zero.
//!
//! Requests are built by the one internal client (`paxid_client::internal`:
//! connection pool, route joining, bearer tokens); what is the CLI's own is
//! on top: which scope's token goes to which route, failing over along an
//! endpoint list, retrying 503s within `--retry-ms`, and one-line errors.

use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::problem::Problem;
use api::routes;
pub use paxid_client::internal::join;
use paxid_client::internal::{InternalClient, Options};
pub use paxid_client::retry_after;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a command failed; printed as `paxid: <this>`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No answer: refused, reset, timed out, unknown host.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// An answer with an error status; `detail` comes from its problem+json.
    #[error("{method} {url}: {status} {detail}")]
    Status {
        method: Method,
        url: String,
        status: u16,
        detail: String,
    },
    /// Every endpoint of a list refused or timed out: each one's reason.
    #[error("cannot reach any endpoint: {0}")]
    NoEndpoint(String),
    /// A success status with a body we cannot read.
    #[error("{url}: unexpected answer: {reason}")]
    BadAnswer { url: String, reason: String },
    /// Flags that do not make sense together, or an invalid URL.
    #[error("{0}")]
    Usage(String),
    /// A failure the command has already reported on stdout (`health`):
    /// exit 1 with nothing on stderr.
    #[error("")]
    Silent,
}

/// Whether a call may be sent again after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// A 503 is retried (every endpoint again, after its `Retry-After`)
    /// while the retry budget lasts: for calls that are safe to repeat.
    On503,
    /// The first answer, whatever it is, is the result: for calls that may
    /// have taken effect even when they failed (creating a subscription, a
    /// membership change).
    Never,
}

/// Wait before retrying a 503 that carries no `Retry-After`.
pub const RETRY_WAIT_DEFAULT: Duration = Duration::from_millis(500);
/// Shortest wait between two rounds of retries (a `Retry-After: 0`).
pub const RETRY_WAIT_MIN: Duration = Duration::from_millis(50);

/// The internal client (keep-alive pool, HTTP/1.1) plus each scope's token.
#[derive(Clone, Debug)]
pub struct Api {
    internal: InternalClient,
    /// The cluster token, for the internal `/v1` routes.
    token: Option<String>,
    /// For `POST /next-id` and for the subscription API (scoped tokens).
    client_token: Option<String>,
    subscription_token: Option<String>,
    /// How long [`Retry::On503`] calls keep retrying.
    retry_budget: Duration,
    /// The endpoint that answered last: a list is tried from it on.
    preferred: Arc<Mutex<Option<String>>>,
    /// `Idempotency-Key` sent with `POST /next-id` (`paxid next-id
    /// --idempotency-key`): its retries get the first call's IDs.
    idempotency_key: Option<String>,
}

impl Api {
    /// `pool_idle_per_host` should be at least the number of concurrent
    /// requests, so that every closed-loop client keeps its connection.
    pub fn new(timeout: Duration, token: Option<String>, pool_idle_per_host: usize) -> Result<Api, CliError> {
        let options = Options {
            cluster_id: None,
            timeout: Some(timeout),
            connect_timeout: timeout,
            pool_idle_per_host,
            // One connection per closed-loop `bench` client.
            http1_only: true,
            per_call_headers: None,
        };
        // The scope of each call is chosen in `request`, so the client
        // itself carries no token.
        let internal =
            InternalClient::new(options, Arc::new(None)).map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(Api {
            internal,
            token,
            client_token: None,
            subscription_token: None,
            retry_budget: Duration::ZERO,
            preferred: Arc::new(Mutex::new(None)),
            idempotency_key: None,
        })
    }

    /// How long calls that may be repeated keep retrying 503s (0: never).
    pub fn with_retry_budget(mut self, budget: Duration) -> Api {
        self.retry_budget = budget;
        self
    }

    /// Sends `Idempotency-Key: key` with `POST /next-id`.
    pub fn with_idempotency_key(mut self, key: Option<String>) -> Api {
        self.idempotency_key = key;
        self
    }

    /// The tokens of the client and subscription scopes (the first of a
    /// comma-separated list is sent).
    pub fn scoped(mut self, client_token: Option<String>, subscription_token: Option<String>) -> Api {
        let first = |t: Option<String>| t.and_then(|t| t.split(',').next().map(|f| f.trim().to_owned()));
        self.client_token = first(client_token);
        self.subscription_token = first(subscription_token);
        self
    }

    pub fn client(&self) -> &reqwest::Client {
        self.internal.http()
    }

    /// The token `POST /next-id` carries, if any.
    pub fn client_token(&self) -> Option<&str> {
        self.client_token.as_deref()
    }

    /// `GET base + path`, decoded as `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, base: &str, path: &str) -> Result<T, CliError> {
        let url = join(base, path);
        let request = self.request(Method::GET, base, path);
        decode(&url, check(Method::GET, &url, send(&url, request).await?).await?).await
    }

    /// `POST base + path` with `body` as JSON (or no body), decoded as `T`.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CliError> {
        let url = join(base, path);
        let mut request = self.request(Method::POST, base, path);
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| CliError::Usage(e.to_string()))?;
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        decode(&url, check(Method::POST, &url, send(&url, request).await?).await?).await
    }

    /// `method base + path` for the first of `endpoints` that answers: the
    /// endpoint that answered last first, then the others in order; a
    /// connection error or a timeout moves on to the next one. With
    /// [`Retry::On503`], when no endpoint answered anything but 503, every
    /// one is tried again after the shortest `Retry-After` they sent, while
    /// the retry budget lasts (a wait that would end past it is not begun).
    /// Returns the URL that answered and its success answer.
    pub async fn call(
        &self,
        method: Method,
        endpoints: &[String],
        path: &str,
        body: Option<Vec<u8>>,
        retry: Retry,
    ) -> Result<(String, Response), CliError> {
        if endpoints.is_empty() {
            return Err(CliError::Usage("no endpoint given".into()));
        }
        let deadline = Instant::now() + self.retry_budget;
        let order = self.order(endpoints);
        loop {
            let mut unreachable = Vec::new();
            let mut last_503 = None;
            let mut wait: Option<Duration> = None;
            for base in &order {
                let url = join(base, path);
                let mut request = self.request(method.clone(), base, path);
                if let Some(bytes) = &body {
                    request = request
                        .header(CONTENT_TYPE, "application/json")
                        .body(bytes.clone());
                }
                let response = match send(&url, request).await {
                    Ok(response) => response,
                    Err(error @ CliError::Unreachable { .. }) => {
                        unreachable.push(error);
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                if response.status() == StatusCode::SERVICE_UNAVAILABLE && retry == Retry::On503 {
                    let after = retry_after(response.headers()).unwrap_or(RETRY_WAIT_DEFAULT);
                    wait = Some(wait.map_or(after, |w| w.min(after)));
                    last_503 = check(method.clone(), &url, response).await.err();
                    continue;
                }
                self.remember(base);
                let response = check(method, &url, response).await?;
                return Ok((url, response));
            }
            let Some(error) = last_503 else {
                return Err(all_unreachable(unreachable));
            };
            let wait = wait.unwrap_or(RETRY_WAIT_DEFAULT).max(RETRY_WAIT_MIN);
            if Instant::now() + wait > deadline {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// [`Api::call`] with `body` as JSON, its answer decoded as `T`.
    pub async fn call_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        endpoints: &[String],
        path: &str,
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T, CliError> {
        let bytes = body
            .map(|b| serde_json::to_vec(b).map_err(|e| CliError::Usage(e.to_string())))
            .transpose()?;
        let (url, response) = self.call(method, endpoints, path, bytes, retry).await?;
        decode(&url, response).await
    }

    /// `endpoints`, the one that answered last first.
    fn order(&self, endpoints: &[String]) -> Vec<String> {
        let preferred = self.preferred.lock().map(|p| p.clone()).unwrap_or_default();
        let mut order = endpoints.to_vec();
        if let Some(at) = preferred.and_then(|p| order.iter().position(|e| *e == p)) {
            order[..=at].rotate_right(1);
        }
        order
    }

    fn remember(&self, endpoint: &str) {
        if let Ok(mut preferred) = self.preferred.lock() {
            *preferred = Some(endpoint.to_owned());
        }
    }

    /// Each scope's token on its own routes: the subscription API, the
    /// client API, and every other internal `/v1` endpoint (the cluster's).
    fn request(&self, method: Method, base: &str, path: &str) -> RequestBuilder {
        let route = path.split('?').next().unwrap_or(path);
        let token = if routes::is_subscription_api(route) {
            &self.subscription_token
        } else if route == routes::NEXT_ID {
            &self.client_token
        } else if route.starts_with(routes::V1_PREFIX) {
            &self.token
        } else {
            &None
        };
        let request = self.internal.request_as(method, base, path, token.as_deref());
        match &self.idempotency_key {
            Some(key) if route == routes::NEXT_ID => request.header("idempotency-key", key),
            _ => request,
        }
    }
}

/// One endpoint's error as it is; several as one line naming each.
fn all_unreachable(mut errors: Vec<CliError>) -> CliError {
    if errors.len() == 1 {
        return errors.remove(0);
    }
    let reasons: Vec<String> = errors
        .iter()
        .map(|e| match e {
            CliError::Unreachable { url, reason } => format!("{url}: {reason}"),
            other => other.to_string(),
        })
        .collect();
    CliError::NoEndpoint(reasons.join("; "))
}

pub async fn send(url: &str, request: RequestBuilder) -> Result<Response, CliError> {
    request.send().await.map_err(|e| transport_error(url, &e))
}

/// Passes a success through; turns an error status into [`CliError::Status`]
/// with the problem's title and detail.
pub async fn check(method: Method, url: &str, response: Response) -> Result<Response, CliError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    let detail = match serde_json::from_slice::<Problem>(&body) {
        Ok(problem) => match problem.detail {
            Some(detail) => format!("{}: {detail}", problem.title),
            None => problem.title,
        },
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_CHARS_MAX)])
            .trim()
            .to_owned(),
    };
    let detail = if detail.is_empty() {
        status.canonical_reason().unwrap_or("").to_owned()
    } else {
        detail
    };
    Err(CliError::Status {
        method,
        url: url.to_owned(),
        status: status.as_u16(),
        detail,
    })
}

async fn decode<T: DeserializeOwned>(url: &str, response: Response) -> Result<T, CliError> {
    let body = response.bytes().await.map_err(|e| transport_error(url, &e))?;
    serde_json::from_slice(&body).map_err(|e| CliError::BadAnswer {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// A one-line reason for a failed exchange: the innermost I/O error when
/// there is one ("connection refused"), not reqwest's nested chain.
pub fn transport_error(url: &str, error: &reqwest::Error) -> CliError {
    if error.is_builder() {
        return CliError::Usage(format!("invalid URL {url}: {}", innermost(error)));
    }
    let reason = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        innermost(error)
    };
    CliError::Unreachable {
        url: url.to_owned(),
        reason,
    }
}

/// Longest part of a non-problem error body quoted in an error line.
const ERROR_BODY_CHARS_MAX: usize = 200;

fn innermost(error: &reqwest::Error) -> String {
    let mut last = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        last = cause.to_string();
        source = cause.source();
    }
    last
}

fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset".to_owned(),
        ErrorKind::TimedOut => "timed out".to_owned(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_that_answered_last_is_tried_first() {
        let api = Api::new(Duration::from_secs(1), None, 1).expect("client");
        let list: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(api.order(&list), list);
        api.remember("c");
        assert_eq!(api.order(&list), ["c", "a", "b"]);
        api.remember("elsewhere");
        assert_eq!(api.order(&list), list);
    }
}
