//! The one error type of every paxid HTTP handler.

use api::problem::{self, Problem};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderValue, StatusCode};

/// An error answered as `application/problem+json` with its status code.
///
/// Handlers return `Result<_, ApiError>`; the constructors pick the stable
/// `type` URI for each class of failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    problem: Problem,
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error of any status and type; prefer the named constructors.
    pub fn new(status: StatusCode, type_: &str, title: &str) -> Self {
        let problem = Problem::new(type_, title, status.as_u16());
        Self {
            status,
            problem,
            retry_after_s: None,
        }
    }

    /// 400: the input is invalid.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            problem::INVALID_REQUEST,
            "Invalid request",
        )
        .with_detail(detail)
    }

    /// 422: the JSON is well formed but its content is invalid (wrong type,
    /// unknown field, value out of range).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem::INVALID_REQUEST,
            "Invalid request",
        )
        .with_detail(detail)
    }

    /// 400: the body is not valid JSON.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            problem::MALFORMED_JSON,
            "Malformed JSON body",
        )
        .with_detail(detail)
    }

    /// 415: a body without `Content-Type: application/json`.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        let status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        Self::new(status, problem::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type").with_detail(detail)
    }

    /// 413: the body is over the configured limit.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            problem::PAYLOAD_TOO_LARGE,
            "Payload too large",
        )
        .with_detail(detail)
    }

    /// 404: no such route or resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, problem::NOT_FOUND, "Not found").with_detail(detail)
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed() -> Self {
        let status = StatusCode::METHOD_NOT_ALLOWED;
        Self::new(status, problem::METHOD_NOT_ALLOWED, "Method not allowed")
    }

    /// 401: the token of the route's scope is missing or wrong.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, problem::UNAUTHORIZED, "Unauthorized").with_detail(
            "this endpoint requires `Authorization: Bearer <token>` with a token of its scope: \
             the client token for POST /next-id, the subscription token for /v1/subscriptions, \
             the cluster token for internal routes",
        )
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, problem::CONFLICT, "Conflict").with_detail(detail)
    }

    /// 503 with `Retry-After`: no leader or quorum is reachable right now.
    pub fn unavailable(detail: impl Into<String>, retry_after_s: u64) -> Self {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        Self::new(status, problem::UNAVAILABLE, "Service unavailable")
            .with_detail(detail)
            .with_retry_after_s(retry_after_s)
    }

    /// 503 with `Retry-After`: the request ran out of time on the server.
    pub fn timeout(retry_after_s: u64) -> Self {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        Self::new(status, problem::TIMEOUT, "Request timed out")
            .with_detail("the request did not complete within the server's time limit")
            .with_retry_after_s(retry_after_s)
    }

    /// 500: a bug or an unexpected failure.
    pub fn internal(detail: impl Into<String>) -> Self {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        Self::new(status, problem::INTERNAL, "Internal server error").with_detail(detail)
    }

    /// The problem that stands for a bare `status` (no body of ours), used to
    /// dress up responses produced by lower layers.
    pub fn for_status(status: StatusCode) -> Self {
        let detail = status.canonical_reason().unwrap_or("error").to_owned();
        match status {
            StatusCode::BAD_REQUEST => Self::bad_request(detail),
            StatusCode::UNAUTHORIZED => Self::unauthorized(),
            StatusCode::NOT_FOUND => Self::not_found(detail),
            StatusCode::METHOD_NOT_ALLOWED => Self::method_not_allowed(),
            StatusCode::CONFLICT => Self::conflict(detail),
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(detail),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::unsupported_media_type(detail),
            StatusCode::UNPROCESSABLE_ENTITY => Self::unprocessable(detail),
            StatusCode::SERVICE_UNAVAILABLE => Self::unavailable(detail, 1),
            status if status.is_server_error() => Self::internal(detail),
            status => Self::new(status, problem::ABOUT_BLANK, &detail),
        }
    }

    /// Sets the human-readable explanation of this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.problem.detail = Some(detail.into());
        self
    }

    /// Adds an RFC 9457 extension member (for example the leader's URL).
    pub fn with_extension(mut self, key: &str, value: serde_json::Value) -> Self {
        self.problem.extensions.insert(key.to_owned(), value);
        self
    }

    /// Sets the `Retry-After` header, in seconds.
    pub fn with_retry_after_s(mut self, retry_after_s: u64) -> Self {
        self.retry_after_s = Some(retry_after_s);
        self
    }

    /// The HTTP status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response body.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let detail = self.problem.detail.as_deref().unwrap_or(&self.problem.title);
        write!(f, "{}: {detail}", self.status)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = (self.status, Json(&self.problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(problem::CONTENT_TYPE),
        );
        if let Some(retry_after_s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a 401 names the scheme the client should use.
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl ApiError {
    /// Logged here, where the error becomes a response, at a level that
    /// matches who has to act: the client (debug), the cluster (warn), us
    /// (error).
    fn log(&self) {
        let type_ = self.problem.type_.as_str();
        let detail = self.problem.detail.as_deref().unwrap_or("");
        let status = self.status.as_u16();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(status, type_, detail, "request failed");
        } else if self.status.is_server_error() {
            tracing::error!(status, type_, detail, "request failed");
        } else {
            tracing::debug!(status, type_, detail, "request rejected");
        }
    }
}
