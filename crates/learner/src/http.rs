//! HTTP handlers: the leader's push, the subscription API and status.
//!
//! Every route here is under `/v1/` and requires the cluster token when one
//! is set: pushes come from the leader, and subscriptions are an operator
//! API (their secrets and URLs are not for every caller).

use api::internal::ChosenPush;
use api::learner::{
    CreateSubscription, LearnerStatus, PingResult, ReplaySubscription, SubscriptionCreated, SubscriptionList,
    SubscriptionView,
};
use api::problem::Problem;
use api::routes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use service::{ApiError, JsonBody};

use crate::AppState;

// The OpenAPI document of the subscription API. Declared here rather than
// in lib.rs so that it sees the handlers' `#[utoipa::path]`s; the file is
// src/openapi.rs.
#[path = "openapi.rs"]
pub mod openapi;

/// Most recent gaps listed by `GET /v1/status`.
pub const STATUS_GAPS_MAX: usize = 16;

/// The `/v1` routes of the learner: the internal ones behind the cluster
/// token, the subscription API behind the subscription token (so that a
/// consuming team never needs the cluster's credential).
pub fn routes(state: AppState) -> Router {
    let internal = Router::new()
        .route(routes::CHOSEN, post(chosen))
        .route(routes::STATUS, get(status))
        .route_layer(service::require_bearer(state.config().cluster_token.clone()));
    let subscriptions = Router::new()
        .route(routes::SUBSCRIPTIONS, post(create).get(list))
        .route(routes::SUBSCRIPTION, get(show).delete(remove))
        .route(routes::SUBSCRIPTION_ENABLE, post(enable))
        .route(routes::SUBSCRIPTION_REPLAY, post(replay))
        .route(routes::SUBSCRIPTION_PING, post(ping))
        .route_layer(service::require_bearer(state.config().subscription_token.clone()));
    internal.merge(subscriptions).with_state(state)
}

/// The leader's push of chosen slots: checked like any input, then taken
/// as a hint to read the acceptors now (never as the values to deliver:
/// see `learn`). 204 whatever the acceptors say.
async fn chosen(
    State(state): State<AppState>,
    JsonBody(push): JsonBody<ChosenPush>,
) -> Result<StatusCode, ApiError> {
    for proposal in &push.slots {
        proposal
            .to_core()
            .map_err(|e| ApiError::unprocessable(format!("slot {}: {e}", proposal.slot)))?;
    }
    if let Some(highest) = push.slots.iter().map(|p| p.slot).max() {
        state.learning().hint(paxos_core::Slot(highest));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn status(State(state): State<AppState>) -> Result<Json<LearnerStatus>, ApiError> {
    let counters = state.counters().map_err(|e| ApiError::internal(e.to_string()))?;
    let gaps = state.gaps().map_err(|e| ApiError::internal(e.to_string()))?;
    let acceptors = state.learning().acceptor_set();
    Ok(Json(LearnerStatus {
        learned_below: state.learning().learned_below(),
        counters: counters
            .iter()
            .map(|(name, next)| (name.as_str().to_owned(), next))
            .collect(),
        subscriptions: state.subscriptions().list(),
        skipped_slots: gaps.iter().map(|gap| gap.below_slot - gap.from_slot).sum(),
        gaps: gaps[gaps.len().saturating_sub(STATUS_GAPS_MAX)..].to_vec(),
        epoch: acceptors.epoch,
        acceptors: acceptors.urls.to_vec(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    operation_id = "createSubscription",
    tag = "subscriptions",
    summary = "Subscribe a webhook URL to the allocations.",
    description = "Each webhook is a POST to `url` signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the secret returned here.",
    request_body(content = CreateSubscription, content_type = "application/json"),
    security(("bearer" = []), ()),
    responses(
        (status = 201, description = "Created; the secret is shown only here.", body = SubscriptionCreated),
        (status = 400, description = "The body is not JSON.",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token of this scope is required.",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` (RFC 6750)."))),
        (status = 409, description = "Conflicts with the state.",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the limit.",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or values.",
            body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The learner could not read its learned log; nothing was changed.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateSubscription>,
) -> Result<(StatusCode, Json<SubscriptionCreated>), ApiError> {
    let created = state.subscriptions().create(request)?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    operation_id = "listSubscriptions",
    tag = "subscriptions",
    summary = "Every subscription.",
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The subscriptions.", body = SubscriptionList),
        (status = 401, description = "A token of this scope is required.",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` (RFC 6750)."))),
    )
)]
async fn list(State(state): State<AppState>) -> Json<SubscriptionList> {
    Json(SubscriptionList {
        subscriptions: state.subscriptions().list(),
    })
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}",
    operation_id = "getSubscription",
    tag = "subscriptions",
    summary = "One subscription and its delivery state.",
    params(("id" = String, Path, description = "The subscription's `id`, as `POST /v1/subscriptions` returned it.")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The subscription.", body = SubscriptionView),
        (status = 401, description = "A token of this scope is required.",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` (RFC 6750)."))),
        (status = 404, description = "No such resource.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    state.subscriptions().get(&id).map(Json)
}

#[utoipa::path(
    delete,
    path = "/v1/subscriptions/{id}",
    operation_id = "deleteSubscription",
    tag = "subscriptions",
    summary = "Remove a subscription; nothing more is delivered to it.",
    params(("id" = String, Path, description = "The subscription's `id`, as `POST /v1/subscriptions` returned it.")),
    security(("bearer" = []), ()),
    responses(
        (status = 204, description = "Removed."),
        (status = 401, description = "A token of this scope is required.",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` (RFC 6750)."))),
        (status = 404, description = "No such resource.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.subscriptions().delete(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/enable",
    operation_id = "enableSubscription",
    tag = "subscriptions",
    summary = "Enable a disabled subscription again; delivery resumes at its cursor.",
    params(("id" = String, Path, description = "The subscription's `id`, as `POST /v1/subscriptions` returned it.")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The subscription.", body = SubscriptionView),
        (status = 401, description = "A token of this scope is required.",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` (RFC 6750)."))),
        (status = 404, description = "No such resource.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflicts with the state.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn enable(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    state.subscriptions().enable(&id).map(Json)
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/replay",
    operation_id = "replaySubscription",
    tag = "subscriptions",
    summary = "Deliver again from `from_slot` on.",
    params(("id" = String, Path, description = "The subscription's `id`, as `POST /v1/subscriptions` returned it.")),
    request_body(content = ReplaySubscription, content_type = "application/json"),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The subscription.", body = SubscriptionView),
        (status = 400, description = "The body is not JSON.",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token of this scope is required.",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` (RFC 6750)."))),
        (status = 404, description = "No such resource.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflicts with the state.",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the limit.",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or values.",
            body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The learner could not read its learned log; nothing was changed.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ReplaySubscription>,
) -> Result<Json<SubscriptionView>, ApiError> {
    state.subscriptions().replay(&id, request.from_slot).map(Json)
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/ping",
    operation_id = "pingSubscription",
    tag = "subscriptions",
    summary = "Send one signed `ping` webhook now and report what became of it.",
    description = "The `ping` event (`{\"type\":\"ping\",\"timestamp\":...,\"data\":{\"subscription\":ID}}`) \
        is signed like every webhook, under a `webhook-id` of its own (`ping_...`). It is sent once, \
        never retried, and changes nothing: the cursor, the pending message and the state stay as \
        they are (a disabled subscription can be pinged before it is enabled). 200 whether or not \
        the receiver took it: see `delivered`.",
    params(("id" = String, Path, description = "The subscription's `id`, as `POST /v1/subscriptions` returned it.")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "What the receiver answered.", body = PingResult),
        (status = 401, description = "A token of this scope is required.",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` (RFC 6750)."))),
        (status = 404, description = "No such resource.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ping(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<PingResult>, ApiError> {
    state.subscriptions().ping(&id).await.map(Json)
}
