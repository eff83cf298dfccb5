//! The cluster-token check on internal (`/v1/...`) endpoints.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::{header, Request};
use tower::{Layer, Service};

use crate::ApiError;

/// A layer that answers 401 problem+json to requests without
/// `Authorization: Bearer <token>`; with `None`, every request passes.
///
/// Apply it with `Router::route_layer`, so unknown routes still get 404
/// rather than 401.
pub fn require_bearer(token: Option<String>) -> RequireBearer {
    RequireBearer {
        token: token.map(|token| Arc::from(token.into_bytes())),
    }
}

/// The layer built by [`require_bearer`].
#[derive(Debug, Clone)]
pub struct RequireBearer {
    token: Option<Arc<[u8]>>,
}

/// The service [`RequireBearer`] wraps around each route.
#[derive(Debug, Clone)]
pub struct RequireBearerService<S> {
    inner: S,
    token: Option<Arc<[u8]>>,
}

impl<S> Layer<S> for RequireBearer {
    type Service = RequireBearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearerService {
            inner,
            token: self.token.clone(),
        }
    }
}

impl<S, B> Service<Request<B>> for RequireBearerService<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self
            .token
            .as_deref()
            .is_some_and(|token| !is_authorized(&request, token))
        {
            let response = ApiError::unauthorized().into_response();
            return Box::pin(std::future::ready(Ok(response)));
        }
        Box::pin(self.inner.call(request))
    }
}

fn is_authorized<B>(request: &Request<B>, token: &[u8]) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    // RFC 7235: the scheme name is case-insensitive.
    let scheme_len = "Bearer ".len();
    if value.len() < scheme_len || !value[..scheme_len].eq_ignore_ascii_case(b"Bearer ") {
        return false;
    }
    constant_time_eq(&value[scheme_len..], token)
}

/// Compares without an early exit, so the time taken does not reveal how
/// many leading bytes of a guess were right. The length is not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
