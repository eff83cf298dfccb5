//! The middleware stack every paxid router gets, and its limits.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, StatusCode};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::{drain, health, ApiError};

/// `Retry-After` of a request that hit the server-side timeout: a timeout
/// usually means an election or a slow quorum, which settles in about this
/// long.
pub const REQUEST_TIMEOUT_RETRY_AFTER_S: u64 = 1;

/// Per-request limits of an HTTP service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body accepted; larger ones get 413.
    pub body_bytes_max: usize,
    /// Longest a request may take on the server; slower ones get 503.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            body_bytes_max: 64 * 1024,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Applies the body-size limit and the request timeout to every route of
/// `router` registered so far.
///
/// A timed-out request is answered `503` (problem type `timeout`) with
/// `Retry-After`, not `408`: 408 says the *client* was too slow to send,
/// whereas here the server (usually its quorum) was too slow to answer, and
/// the client should retry. Its IDs may have been consumed (a gap), never
/// handed out twice.
///
/// The body is read whole before the rest of the stack runs (within the
/// limit and the request timeout; the handler then gets the request
/// timeout of its own). A body over the limit, declared by
/// `Content-Length` or found while reading, is answered 413 only after
/// the rest of it has been read and discarded (at most
/// [`crate::DRAIN_BYTES_MIN`] or 4× the limit, for at most
/// [`crate::DRAIN_TIME_MAX`]; beyond that the 413 carries
/// `Connection: close`). Closing with request bytes unread would make the
/// kernel reset the connection, and a client still sending would see a
/// broken pipe instead of the 413 (nginx's lingering close is the same
/// idea).
///
/// The bare responses of the inner layers become problems only under
/// [`with_standard_layers`]; the timeout's 503 is recognized there.
pub fn with_limits<S>(router: Router<S>, limits: &HttpLimits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        // axum's extractors have their own 2 MiB default; make them agree.
        .layer(DefaultBodyLimit::max(limits.body_bytes_max))
        .layer(RequestBodyLimitLayer::new(limits.body_bytes_max))
        .layer(TimeoutLayer::with_status_code(
            TIMEOUT_STATUS,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            *limits,
            drain::read_body_first,
        ))
}

/// The whole standard stack, outermost first: request span (with the
/// caller's trace as parent), HTTP metrics, the problem net, reading (or
/// draining) the body, the request timeout, the body limit; plus the 404
/// and 405 fallbacks.
///
/// Call it last, on the fully merged router: fallbacks and layers apply
/// only to the routes that exist when it runs.
pub fn with_standard_layers<S>(router: Router<S>, limits: &HttpLimits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    with_limits(router, limits)
        .layer(axum::middleware::map_response(problem_net))
        .layer(axum::middleware::from_fn(health::track_metrics))
        .layer(axum::middleware::from_fn(telemetry::trace_http))
}

/// Fallback handler for unknown routes: 404 problem+json.
pub async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// Fallback handler for a known route and a wrong method: 405
/// problem+json. axum still adds the `Allow` header.
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// The status `TimeoutLayer` answers with. No handler of ours returns a
/// bare 503 (they return [`ApiError::unavailable`]), so the problem net can
/// tell the two apart.
const TIMEOUT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// Turns an error response that is not already a problem (from tower-http's
/// limit and timeout layers, or a handler returning a bare status) into
/// one, so every error a client sees is problem+json.
async fn problem_net(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) {
        return response;
    }
    let error = match status {
        TIMEOUT_STATUS => ApiError::timeout(REQUEST_TIMEOUT_RETRY_AFTER_S),
        status => ApiError::for_status(status),
    };
    let (mut parts, _) = response.into_parts();
    let (problem_parts, body) = error.into_response().into_parts();
    // Keep headers the lower layer set on purpose (such as `Allow`) and let
    // the problem's own headers win.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

fn is_problem(response: &Response) -> bool {
    response.headers().get(header::CONTENT_TYPE).is_some_and(|value| {
        value
            .as_bytes()
            .starts_with(api::problem::CONTENT_TYPE.as_bytes())
    })
}
