//! The sequencer's HTTP surface: `POST /next-id`, `GET /v1/status`, probes.

// `ApiError` is the one error type every handler returns; it is large (a
// problem document) but built only on the error path.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use api::client::{NextIdRequest, NextIdResponse, ReconfigureRequest, SequencerStatus};
use api::problem;
use api::problem::Problem;
use api::routes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paxos_core::{quorum, IdempotencyKey, IdempotencyKeyError, Refusal, SequenceName};
use service::{ApiError, JsonBody, OptionalJsonBody};
use tokio::sync::{oneshot, watch};
use tracing::Span;

use crate::driver::{ClientRequest, DriverHandle};
use crate::forward::{forward, Forwarded, Forwarder};
use crate::peers::Peers;
use crate::poller::ClusterView;
use crate::reconfigure::{self, Rejected};

// The OpenAPI document of the routes below. Declared here rather than in
// lib.rs so that it sees the handlers' `#[utoipa::path]`s; the file is
// src/openapi.rs.
#[path = "openapi.rs"]
pub mod openapi;

/// Marks a request a follower forwarded, so that it is never forwarded twice.
pub const FORWARDED_HEADER: &str = "x-paxid-forwarded";
/// Seconds a client should wait before retrying while no leader is known.
const RETRY_AFTER_S: u64 = 1;

#[derive(Clone)]
pub struct AppState {
    pub driver: DriverHandle,
    pub cluster: watch::Receiver<ClusterView>,
    pub peers: Arc<Peers>,
    pub node_id: u32,
    pub advertise_url: String,
    pub count_max: u64,
    /// `--sequences`: when not empty, the only names besides `default`.
    pub sequences_allowed: BTreeSet<SequenceName>,
    pub cluster_token: service::Tokens,
    /// Guards `POST /next-id`; open when no client token is configured.
    pub client_token: service::Tokens,
    /// A leader the acceptors have not heard for this long is presumed
    /// gone: requests are refused at once rather than forwarded into a hang.
    pub leader_silence_max_ms: u64,
    /// How long a forwarded request may take (the leader's own client
    /// timeout, plus the hop).
    pub forward_timeout: Duration,
    /// Callers waiting for a coalesced forward to the leader.
    pub forwarder: Arc<Forwarder>,
}

/// Shared by every request; behind an `Arc` so that extracting it is a
/// reference count, not a copy of its strings and channel handles.
type Shared = Arc<AppState>;

/// The whole router: client API, internal status, probes.
pub fn app(state: AppState) -> Router {
    let state: Shared = Arc::new(state);
    let internal = Router::new()
        .route(routes::STATUS, get(status))
        .route(routes::ACCEPTORS, post(change_acceptors))
        .route_layer(service::require_bearer(state.cluster_token.clone()));
    let ready_state = state.clone();
    let client = Router::new()
        .route(routes::NEXT_ID, post(next_id))
        .route_layer(service::require_bearer(state.client_token.clone()));
    Router::new()
        .merge(client)
        .merge(internal)
        .with_state(state)
        .merge(service::health_routes(move || ready(ready_state.clone())))
        .merge(service::openapi_route(api::openapi::SEQUENCER))
}

/// `POST /next-id`. Its `#[utoipa::path]` is the operation in the served
/// document (`crate::openapi`): statuses here are every one the handler, its
/// extractors and the standard layers can answer with.
#[utoipa::path(
    post,
    path = "/next-id",
    operation_id = "nextId",
    tag = "ids",
    summary = "Allocate `count` consecutive IDs of `sequence`.",
    description = "No body, or a JSON object with optional `count` and `sequence`. \
        Bad input never changes any state: the next ID after a rejected request \
        is the same as if it had never been sent.",
    request_body(content = NextIdRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "1..=255 visible ASCII characters (`!` to `~`). Every call with the same key \
            gets the first call's IDs, from any replica and across leader changes, while the key is in \
            the window (the last 65 536 keys, within the last 65 536 slots chosen). The same key with \
            another `count` or `sequence` is a 422 `idempotency-key-reused`."),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The IDs `id ..= id + count - 1`.", body = NextIdResponse),
        (status = 400, description = "The body is not JSON.",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token of this scope is required.",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` (RFC 6750)."))),
        (status = 409, description = "Conflicts with the state: the sequence would pass 2^64 - 1 \
            (`conflict`), or the first call with this `Idempotency-Key` is not answered yet \
            (`idempotency-key-in-use`, with `Retry-After`: retry to get its IDs).",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "With `idempotency-key-in-use`: seconds to wait before retrying."))),
        (status = 413, description = "The body is over the limit.",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or values, a malformed `Idempotency-Key` \
            (`invalid-request`), or a key used with another `count` or `sequence` (`idempotency-key-reused`).",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not available now; retry after Retry-After seconds.",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn next_id(
    State(state): State<Shared>,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody<NextIdRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let (sequence, count) = validate(body.unwrap_or_default(), &state)?;
    metrics::counter!("paxid_sequencer_requests_total").increment(1);
    if headers.contains_key(FORWARDED_HEADER) {
        // Sent here as to the leader: a campaign under way (a successor's)
        // may make this replica the leader in a moment.
        crate::handover::wait_for_campaign(&state.driver.view).await;
    }
    if state.driver.view.borrow().is_leader() {
        match allocate(&state, sequence.clone(), count, key.clone()).await {
            // Never in a slot: this leader resigned and was deposed by its
            // successor while it held the request (see `crate::handover`),
            // or lost its leadership before it took the request: forward it.
            Err(error) if error == refused(Refusal::NotLeader) => {}
            answered => return answered.map(|r| Json(r).into_response()),
        }
    }
    if state.driver.view.borrow().resigned {
        crate::handover::wait_for_successor(&state).await;
    }
    // A replica that is stopping forwards a forwarded request once more: a
    // follower sent it here before the handover. It never leads again, so
    // this cannot loop.
    if headers.contains_key(FORWARDED_HEADER) && !state.driver.view.borrow().resigned {
        return Err(no_leader("this replica is not the leader (forwarded request)"));
    }
    let mut forwarded = forward(&state, &headers, &sequence, count, key.as_ref()).await?;
    if matches!(forwarded, Forwarded::LeaderMoved) && !state.driver.view.borrow().is_leader() {
        // Leadership moved while the old leader had it (a handover, or an
        // election): ask the new one. Whatever the old one does with its
        // copy can only leave a gap (see below).
        forwarded = forward(&state, &headers, &sequence, count, key.as_ref()).await?;
    }
    match forwarded {
        Forwarded::Answer(response) => Ok(response),
        // Elected while the old leader kept the request (paused, or cut
        // off): serve it here. The old leader is deposed, so whatever it
        // does with its copy can only leave a gap, never a duplicate.
        Forwarded::LeaderMoved if state.driver.view.borrow().is_leader() => {
            allocate(&state, sequence, count, key)
                .await
                .map(|r| Json(r).into_response())
        }
        Forwarded::LeaderMoved => Err(no_leader(
            "leadership moved while the request was forwarded; retry",
        )),
    }
}

/// Returns once this replica leads or the acceptors name a leader other
/// than `url`; never while `url` is still the leader they name.
pub(crate) async fn leadership_moved_from(state: &AppState, url: &str) {
    let mut cluster = state.cluster.clone();
    let mut view = state.driver.view.clone();
    loop {
        let moved = view.borrow_and_update().is_leader()
            || cluster
                .borrow_and_update()
                .leader
                .as_ref()
                .is_some_and(|(_, leader)| leader != url);
        if moved {
            return;
        }
        tokio::select! {
            changed = cluster.changed() => if changed.is_err() { return std::future::pending().await },
            changed = view.changed() => if changed.is_err() { return std::future::pending().await },
        }
    }
}

/// The `Idempotency-Key` header, if sent: one, of 1..=255 visible ASCII
/// characters. Refused before anything is consumed.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let bad = |detail: String| {
        ApiError::unprocessable(detail).with_extension("field", IDEMPOTENCY_KEY_HEADER.into())
    };
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad("Idempotency-Key is sent more than once".into()));
    }
    let value = value
        .to_str()
        .map_err(|_| bad(IdempotencyKeyError::BadCharacter.to_string()))?;
    IdempotencyKey::parse(value)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

/// `Idempotency-Key` (see `paxos_core::idempotency`).
pub(crate) const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

fn validate(body: NextIdRequest, state: &AppState) -> Result<(SequenceName, u64), ApiError> {
    let count_max = state.count_max;
    let count = body.count.unwrap_or(1);
    if count == 0 || count > count_max {
        return Err(
            ApiError::unprocessable(format!("count must be between 1 and {count_max}, got {count}"))
                .with_extension("field", "count".into()),
        );
    }
    let sequence = match body.sequence {
        None => SequenceName::default_sequence(),
        Some(name) => SequenceName::parse(&name)
            .map_err(|e| ApiError::unprocessable(e.to_string()).with_extension("field", "sequence".into()))?,
    };
    let allowed = state.sequences_allowed.is_empty()
        || sequence == SequenceName::default_sequence()
        || state.sequences_allowed.contains(&sequence);
    if !allowed {
        return Err(ApiError::unprocessable(format!(
            "sequence {:?} is not one this cluster serves (--sequences)",
            sequence.as_str()
        ))
        .with_extension("field", "sequence".into()));
    }
    Ok((sequence, count))
}

async fn allocate(
    state: &AppState,
    sequence: SequenceName,
    count: u64,
    key: Option<IdempotencyKey>,
) -> Result<NextIdResponse, ApiError> {
    let (reply, answer) = oneshot::channel();
    let request = ClientRequest {
        sequence: sequence.clone(),
        count,
        key,
        reply,
        span: Span::current(),
    };
    state
        .driver
        .requests
        .try_send(request)
        .map_err(|_| overloaded())?;
    let allocation = answer
        .await
        .map_err(|_| no_leader("the sequencer is shutting down"))?;
    match allocation {
        Ok(a) => Ok(NextIdResponse {
            id: a.first,
            count: a.count,
            sequence: a.sequence.as_str().to_owned(),
        }),
        Err(refusal) => Err(refused(refusal)),
    }
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotLeader | Refusal::Deposed => no_leader("leadership changed; retry"),
        Refusal::TimedOut => no_leader("no quorum answered in time; the IDs may be skipped, never reused"),
        Refusal::Overloaded => overloaded(),
        Refusal::TooManySequences => {
            ApiError::unprocessable("the cluster holds its maximum number of sequences")
                .with_extension("field", "sequence".into())
        }
        Refusal::Exhausted => ApiError::conflict("this sequence would pass 2^64 - 1"),
        Refusal::Reconfiguring => no_leader("the cluster is moving to a new configuration; retry"),
        Refusal::KeyReused => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem::IDEMPOTENCY_KEY_REUSED,
            "Idempotency-Key reused",
        )
        .with_detail("this Idempotency-Key was used with another count or sequence")
        .with_extension("field", IDEMPOTENCY_KEY_HEADER.into()),
        Refusal::KeyInFlight => ApiError::new(
            StatusCode::CONFLICT,
            problem::IDEMPOTENCY_KEY_IN_USE,
            "Idempotency-Key in use",
        )
        .with_detail("the first call with this Idempotency-Key is not answered yet; retry to get its IDs")
        .with_retry_after_s(RETRY_AFTER_S),
        Refusal::KeysLoading => {
            no_leader("the new leader is still reading back recent Idempotency-Keys; retry")
        }
    }
}

pub(crate) fn no_leader(detail: &str) -> ApiError {
    ApiError::unavailable(detail.to_owned(), RETRY_AFTER_S)
}

fn overloaded() -> ApiError {
    ApiError::unavailable("too many requests waiting; retry", RETRY_AFTER_S)
}

/// `POST /v1/acceptors` on the leader: puts the configuration that seats
/// these acceptors into the log, and answers with it once chosen.
async fn change_acceptors(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<ReconfigureRequest>,
) -> Result<Json<api::internal::Configuration>, ApiError> {
    if !state.driver.view.borrow().is_leader() {
        let leader = state.cluster.borrow().leader.clone().map(|(_, url)| url);
        let detail = match leader {
            Some(url) => format!("this replica is not the leader; send the change to {url}"),
            None => "this replica is not the leader, and no leader is known yet".to_owned(),
        };
        return Err(ApiError::unavailable(detail, RETRY_AFTER_S));
    }
    match reconfigure::propose(&state.peers, &state.driver, body.acceptors, body.epoch).await {
        Ok(configuration) => Ok(Json((&configuration).into())),
        Err(Rejected::Invalid(detail)) => {
            Err(ApiError::unprocessable(detail).with_extension("field", "acceptors".into()))
        }
        Err(Rejected::Unfit(detail)) => Err(ApiError::conflict(detail)),
        Err(Rejected::Unavailable(detail)) => Err(ApiError::unavailable(detail, RETRY_AFTER_S)),
    }
}

async fn status(State(state): State<Shared>) -> Json<SequencerStatus> {
    let view = state.driver.view.borrow().clone();
    let cluster = state.cluster.borrow().clone();
    let table = state.peers.acceptors();
    Json(SequencerStatus {
        node_id: state.node_id,
        role: view.role_name().to_owned(),
        ballot: view.ballot().map(Into::into),
        advertise_url: state.advertise_url.clone(),
        leader_url: cluster.leader.map(|(_, url)| url),
        chosen_below: view.chosen_below,
        slots_in_flight: view.slots_in_flight,
        acceptors_reachable: cluster.reachable,
        acceptors: table.urls.len(),
        epoch: table.epoch,
        acceptor_urls: table.urls.clone(),
    })
}

/// Ready when a quorum of acceptors answers and a leader serves: this
/// replica, or one that answers its liveness probe.
async fn ready(state: Shared) -> Result<(), String> {
    let cluster = state.cluster.borrow().clone();
    let needed = quorum(state.peers.acceptor_count());
    if cluster.reachable < needed {
        return Err(format!(
            "{} of {} acceptors reachable; {needed} needed",
            cluster.reachable,
            state.peers.acceptor_count()
        ));
    }
    if state.driver.view.borrow().is_leader() {
        return Ok(());
    }
    let Some((_, url)) = cluster.leader else {
        return Err("no leader elected yet".into());
    };
    if url == state.advertise_url {
        return Err("the acceptors name this replica leader, but it is not (yet)".into());
    }
    let probe = format!("{}/livez", url.trim_end_matches('/'));
    match state
        .peers
        .client()
        .get(&probe)
        .timeout(Duration::from_millis(500))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the leader at {url} answered {}", r.status())),
        Err(e) => Err(format!("the leader at {url} is unreachable: {e}")),
    }
}
