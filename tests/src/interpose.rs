//! An HTTP proxy a test puts in front of one acceptor: it forwards every
//! call as it is, records what it forwarded, and can refuse one route (an
//! acceptor that never gets its install, say) while the rest goes through.
//! A fault injector on the network path, like a partition: the processes on
//! both sides are the real ones.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::cluster::free_port;

/// The proxy's shared state; cheap to clone.
#[derive(Clone, Debug)]
struct Shared {
    http: reqwest::Client,
    /// Where calls go; None until [`Interposer::forward_to`].
    target: Arc<Mutex<Option<String>>>,
    /// A route answered 503 instead of forwarded.
    refused: Arc<Mutex<Option<String>>>,
    /// `METHOD path` of every call, in arrival order, with what became of it.
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// One call through the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Refused by the proxy rather than forwarded.
    pub refused: bool,
}

/// A running proxy; it stops with the test's runtime.
#[derive(Debug)]
pub struct Interposer {
    pub url: String,
    shared: Shared,
}

impl Interposer {
    /// Listens on a free loopback port; forwards nothing until
    /// [`Interposer::forward_to`] (calls get 502 meanwhile).
    pub async fn start() -> Interposer {
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the proxy");
        paxid_client::install_tls_provider();
        let shared = Shared {
            http: reqwest::Client::builder().no_proxy().build().expect("client"),
            target: Arc::default(),
            refused: Arc::default(),
            seen: Arc::default(),
        };
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Interposer {
            url: format!("http://127.0.0.1:{port}"),
            shared,
        }
    }

    pub fn forward_to(&self, target: &str) {
        *self.shared.target.lock().expect("lock") = Some(target.trim_end_matches('/').to_owned());
    }

    /// Answers calls to `path` with 503 from now on (None: forward all).
    pub fn refuse(&self, path: Option<&str>) {
        *self.shared.refused.lock().expect("lock") = path.map(str::to_owned);
    }

    /// Every call so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("lock").clone()
    }
}

async fn forward(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let refused = shared.refused.lock().expect("lock").as_deref() == Some(path.as_str());
    shared.seen.lock().expect("lock").push(Seen {
        method: method.to_string(),
        path: path.clone(),
        refused,
    });
    if refused {
        return (StatusCode::SERVICE_UNAVAILABLE, "refused by the test's proxy").into_response();
    }
    let Some(target) = shared.target.lock().expect("lock").clone() else {
        return (StatusCode::BAD_GATEWAY, "the test's proxy has no target yet").into_response();
    };
    let path_and_query = uri.path_and_query().map_or(path.as_str(), |p| p.as_str());
    let mut request = shared
        .http
        .request(method, format!("{target}{path_and_query}"))
        .body(body);
    for (name, value) in &headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get(axum::http::header::CONTENT_TYPE).cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            if let Some(content_type) = content_type {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, content_type);
            }
            response
        }
        // The acceptor is down: the caller sees what a dead peer looks like.
        Err(_) => (
            StatusCode::BAD_GATEWAY,
            "the acceptor behind the test's proxy did not answer",
        )
            .into_response(),
    }
}
