//! The cluster-token check on internal (`/v1/...`) endpoints.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::{header, Request};
use tower::{Layer, Service};

use crate::{ApiError, Tokens};

/// A layer that answers 401 problem+json to requests without
/// `Authorization: Bearer <token>` naming one of `tokens`; an open scope
/// (no token configured) lets every request pass.
///
/// Apply it with `Router::route_layer`, so unknown routes still get 404
/// rather than 401.
pub fn require_bearer(tokens: impl Into<Tokens>) -> RequireBearer {
    RequireBearer {
        tokens: tokens.into(),
    }
}

/// The layer built by [`require_bearer`].
#[derive(Debug, Clone)]
pub struct RequireBearer {
    tokens: Tokens,
}

/// The service [`RequireBearer`] wraps around each route.
#[derive(Debug, Clone)]
pub struct RequireBearerService<S> {
    inner: S,
    tokens: Tokens,
}

impl<S> Layer<S> for RequireBearer {
    type Service = RequireBearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearerService {
            inner,
            tokens: self.tokens.clone(),
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
        if !self.tokens.is_open() && !is_authorized(&request, &self.tokens) {
            let response = ApiError::unauthorized().into_response();
            return Box::pin(std::future::ready(Ok(response)));
        }
        Box::pin(self.inner.call(request))
    }
}

fn is_authorized<B>(request: &Request<B>, tokens: &Tokens) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    // RFC 7235: the scheme name is case-insensitive.
    let scheme_len = "Bearer ".len();
    if value.len() < scheme_len || !value[..scheme_len].eq_ignore_ascii_case(b"Bearer ") {
        return false;
    }
    tokens.accepts(&value[scheme_len..])
}
