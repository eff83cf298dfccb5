//! The HTTP client every command shares, and the one error type whose
//! `Display` is the line `paxid` prints before exiting non-zero.

use std::error::Error as _;
use std::time::Duration;

use api::problem::Problem;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response};
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
    /// A success status with a body we cannot read.
    #[error("{url}: unexpected answer: {reason}")]
    BadAnswer { url: String, reason: String },
    /// Flags that do not make sense together, or an invalid URL.
    #[error("{0}")]
    Usage(String),
}

/// One reqwest client (keep-alive pool, HTTP/1.1) plus the cluster token.
#[derive(Clone, Debug)]
pub struct Api {
    client: reqwest::Client,
    token: Option<String>,
    /// For `POST /next-id` and for the subscription API (scoped tokens).
    client_token: Option<String>,
    subscription_token: Option<String>,
}

impl Api {
    /// `pool_idle_per_host` should be at least the number of concurrent
    /// requests, so that every closed-loop client keeps its connection.
    pub fn new(timeout: Duration, token: Option<String>, pool_idle_per_host: usize) -> Result<Api, CliError> {
        // reqwest panics on building a client without a rustls provider
        // when a `--workspace` build unifies in the learner's TLS feature.
        api::install_tls_provider();
        let client = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            // A paxid cluster is addressed directly; an HTTP_PROXY meant for
            // the internet must not sit between the CLI and it.
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(pool_idle_per_host)
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build an HTTP client: {e}")))?;
        Ok(Api {
            client,
            token,
            client_token: None,
            subscription_token: None,
        })
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
        &self.client
    }

    /// The token `POST /next-id` carries, if any.
    pub fn client_token(&self) -> Option<&str> {
        self.client_token.as_deref()
    }

    /// `GET base + path`, decoded as `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, base: &str, path: &str) -> Result<T, CliError> {
        let url = join(base, path);
        let request = self.request(Method::GET, &url, path);
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
        let mut request = self.request(Method::POST, &url, path);
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| CliError::Usage(e.to_string()))?;
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        decode(&url, check(Method::POST, &url, send(&url, request).await?).await?).await
    }

    /// Each scope's token on its own routes: the subscription API, the
    /// client API, and every other internal `/v1` endpoint (the cluster's).
    fn request(&self, method: Method, url: &str, path: &str) -> RequestBuilder {
        let request = self.client.request(method, url);
        let token = if path.starts_with("/v1/subscriptions") {
            &self.subscription_token
        } else if path.starts_with("/next-id") {
            &self.client_token
        } else if path.starts_with(api::INTERNAL_PREFIX) {
            &self.token
        } else {
            &None
        };
        match token {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        }
    }
}

/// `base` without trailing slashes, then `path`.
pub fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
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
    fn join_tolerates_trailing_slashes() {
        assert_eq!(join("http://h:1/", "/next-id"), "http://h:1/next-id");
        assert_eq!(join("http://h:1", "/v1/status"), "http://h:1/v1/status");
    }
}
