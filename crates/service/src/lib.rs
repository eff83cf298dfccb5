//! HTTP plumbing shared by every paxid service (acceptor, sequencer,
//! learner), so that each service is only `app(state) -> Router` plus
//! `run(config, shutdown)`.
//!
//! What every service gets from here, and should not re-implement:
//!
//! - one error type, [`ApiError`], that becomes an RFC 9457
//!   `application/problem+json` response ([`api::problem`] holds the wire
//!   struct and the stable `type` URIs);
//! - JSON extractors ([`JsonBody`], [`OptionalJsonBody`]) whose every
//!   rejection is a problem: 415, 400, 422 or 413;
//! - [`with_standard_layers`]: 404/405 fallbacks, body-size limit (the
//!   body is read before the handler, and an oversized one is drained so
//!   that its 413 reaches the client), request timeout, HTTP metrics,
//!   request spans, and a net that turns any bare error response from a
//!   lower layer into a problem;
//! - [`health_routes`]: `/livez`, `/healthz`, `/readyz`, `/metrics`;
//! - [`require_bearer`]: the cluster-token check on internal `/v1/` routes;
//! - [`CommonArgs`], [`serve`] and [`shutdown_signal`] for `main`;
//! - one error shape for every service's `run`, [`RunError`] (with the
//!   [`Context`] extension for one-line call sites), [`listen`] and
//!   [`announce_listener`] (the `listening on http://ADDR` line tests and
//!   scripts read), [`fatal`] for an error a process cannot go on from,
//!   and [`exit_code`] and [`log_panics`] for `main`.
//!
//! A service assembles them like this:
//!
//! ```ignore
//! let internal = Router::new()
//!     .route("/v1/accept", post(accept))
//!     .route_layer(service::require_bearer(args.cluster_token.clone()));
//! let app = Router::new()
//!     .merge(internal)
//!     .with_state(state)
//!     .merge(service::health_routes(move || ready(store.clone())));
//! let app = service::with_standard_layers(app, &args.limits());
//! service::serve(listener, app, service::shutdown_signal()).await.context("serving failed")?;
//! ```

mod args;
mod auth;
mod drain;
mod error;
mod extract;
mod health;
mod layers;
pub mod planted;
mod process_metrics;
mod run;
mod server;
mod tokens;

pub use args::CommonArgs;
pub use auth::{require_bearer, RequireBearer, RequireBearerService};
pub use drain::{DRAIN_BYTES_MIN, DRAIN_TIME_MAX};
pub use error::ApiError;
pub use extract::{JsonBody, OptionalJsonBody};
pub use health::{health_routes, install_metrics, openapi_route, track_metrics, READY_CHECK_TIMEOUT_MS};
pub use layers::{
    method_not_allowed, not_found, with_limits, with_standard_layers, HttpLimits,
    REQUEST_TIMEOUT_RETRY_AFTER_S,
};
pub use run::{announce_listener, exit_code, fatal, listen, log_panics, BoxError, Context, RunError};
pub use server::{serve, shutdown_signal};
pub use tokens::Tokens;

#[cfg(test)]
mod tests;
