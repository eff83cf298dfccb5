//! `paxid health [URL...]`: `GET /readyz` of any paxid process (acceptor,
//! sequencer, learner), one line per URL, exit 0 only when every one
//! answered 200. Never retried: a probe reports what it sees now.

use reqwest::Method;
use serde::Serialize;

use crate::http::{check, send, Api, CliError};

/// One URL's readiness.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    pub url: String,
    pub ready: bool,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Why it is not ready: the problem's detail, or the connection error.
    pub error: Option<String>,
}

/// The URL's health; an invalid URL is an error, not "not ready".
pub async fn probe(api: &Api, base: &str) -> Result<Health, CliError> {
    let url = crate::http::join(base, api::routes::READYZ);
    let answer = match send(&url, api.client().get(&url)).await {
        Ok(response) => {
            let status = response.status().as_u16();
            check(Method::GET, &url, response)
                .await
                .map(|_| status)
                .map_err(|e| (Some(status), e))
        }
        Err(error @ CliError::Usage(_)) => return Err(error),
        Err(error) => Err((None, error)),
    };
    Ok(match answer {
        Ok(status) => Health {
            url: base.to_owned(),
            ready: true,
            status: Some(status),
            error: None,
        },
        Err((status, error)) => Health {
            url: base.to_owned(),
            ready: false,
            status,
            error: Some(reason(&error)),
        },
    })
}

/// `ready URL` or `not ready URL: reason`.
pub fn render(health: &Health) -> String {
    match &health.error {
        None => format!("ready {}", health.url),
        Some(reason) => format!("not ready {}: {reason}", health.url),
    }
}

fn reason(error: &CliError) -> String {
    match error {
        CliError::Unreachable { reason, .. } => reason.clone(),
        CliError::Status { status, detail, .. } => format!("{status} {detail}"),
        other => other.to_string(),
    }
}
