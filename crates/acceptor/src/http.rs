//! The internal `/v1` API: parse and validate at the edge (no driver sees
//! bad input), hand the core types to the driver, answer with wire types.

// ApiError is the response itself, built once per refused request.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

use api::internal::{
    AcceptRequest, AcceptResponse, AcceptorStatus, CommitRequest, CommitResponse, Entry, InstallRequest,
    JoinRequest, JoinResponse, LeaderInfo, LearnerProgress, LogResponse, MemberState, PrepareRequest,
    PrepareResponse, TransitionRequest,
};
use api::routes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use paxos_core::Slot;
use serde::Deserialize;
use service::{ApiError, JsonBody};
use tracing::Instrument;

use crate::driver::{Conflict, DriverGone};
use crate::{metrics, AppState};

/// Entries returned by `GET /v1/log` when the request names no limit.
pub const LOG_ENTRIES_DEFAULT: usize = 1000;
/// Most entries one `GET /v1/log` returns.
pub const LOG_ENTRIES_MAX: usize = 10_000;
/// Most slots in one accept; the body limit usually binds first.
pub const PROPOSALS_PER_ACCEPT_MAX: usize = 100_000;
/// Highest slot an accept may name: the slot after it must exist.
pub const SLOT_MAX: u64 = u64::MAX - 1;
/// Longest leader URL recorded, in bytes.
pub const LEADER_URL_BYTES_MAX: usize = 2048;
/// Longest learner id, in characters of `[A-Za-z0-9_.-]`.
pub const LEARNER_ID_CHARS_MAX: usize = 64;

/// The `/v1` routes, each behind the cluster token when one is set.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route(routes::PREPARE, post(prepare))
        .route(routes::ACCEPT, post(accept))
        .route(routes::COMMIT, post(commit))
        .route(routes::JOIN, post(join))
        .route(routes::INSTALL, post(install))
        .route(routes::TRANSITION, post(transition).get(current_transition))
        .route(routes::LOG, get(log))
        .route(routes::STATUS, get(status))
        .route(routes::SNAPSHOT, get(snapshot))
        .route(routes::LEARNER_PROGRESS, post(learner_progress))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), same_cluster))
        .route_layer(service::require_bearer(state.cluster_token.clone()))
        .with_state(state)
}

/// A caller that names another cluster (a sequencer or learner pointed at
/// the wrong acceptors) gets nothing from this one: no promise, no vote,
/// no log. Callers that name none (the CLI, curl) pass.
async fn same_cluster(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let ours = state.identity.cluster_id.as_str();
    match request.headers().get(api::CLUSTER_ID_HEADER) {
        Some(theirs) if theirs.as_bytes() != ours.as_bytes() => {
            let theirs = String::from_utf8_lossy(theirs.as_bytes()).into_owned();
            ::metrics::counter!("paxid_acceptor_wrong_cluster_total").increment(1);
            axum::response::IntoResponse::into_response(
                ApiError::new(StatusCode::CONFLICT, api::problem::WRONG_CLUSTER, "Wrong cluster")
                    .with_detail(format!(
                        "this acceptor belongs to cluster {ours:?}; the caller names cluster {theirs:?}"
                    )),
            )
        }
        _ => next.run(request).await,
    }
}

async fn prepare(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<PrepareRequest>,
) -> Result<Json<PrepareResponse>, ApiError> {
    let prepare = request.to_core().map_err(invalid)?;
    if let Some(replace) = prepare.replace {
        if replace.retire == replace.admit {
            return Err(invalid("replace: retire and admit name the same member"));
        }
    }
    let span = tracing::info_span!("prepare", ballot = %prepare.ballot, from = request.from);
    let reply = state
        .driver
        .prepare(prepare)
        .instrument(span)
        .await
        .map_err(gone)?;
    PrepareResponse::from_core(&reply)
        .map(Json)
        .ok_or_else(not_voting)
}

async fn accept(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AcceptRequest>,
) -> Result<Json<AcceptResponse>, ApiError> {
    let accept = validate_accept(&request).map_err(invalid)?;
    let ballot = accept.ballot;
    let slots = accept.entries.iter().map(|(slot, _)| slot.0);
    let span = tracing::info_span!(
        "accept",
        ballot = %accept.ballot,
        slots = accept.entries.len(),
        slot_min = slots.clone().min(),
        slot_max = slots.max(),
        chosen_below = accept.chosen_below.0,
    );
    let reply = state
        .driver
        .accept(accept, request.leader_url)
        .instrument(span)
        .await
        .map_err(gone)?;
    match reply {
        paxos_core::AcceptReply::Conflict { slot } => Err(conflict(Conflict(format!(
            "slot {slot} is chosen with another value, or holds another value under ballot {ballot}"
        )))),
        reply => AcceptResponse::from_core(&reply).map(Json).ok_or_else(not_voting),
    }
}

async fn commit(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CommitRequest>,
) -> Result<Json<CommitResponse>, ApiError> {
    let commit = request.to_core().map_err(invalid)?;
    check_leader_url(&request.leader_url).map_err(invalid)?;
    let span = tracing::info_span!(
        "commit",
        ballot = %commit.ballot,
        chosen_below = commit.chosen_below.0,
        snapshot_below = commit.snapshot.as_ref().map(|s| s.below.0),
    );
    let reply = state
        .driver
        .commit(commit, request.leader_url)
        .instrument(span)
        .await
        .map_err(gone)?;
    let reply = reply.map_err(|_| not_voting())?;
    Ok(Json(CommitResponse::from_core(&reply)))
}

async fn join(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<JoinRequest>,
) -> Result<Json<JoinResponse>, ApiError> {
    let membership = paxos_core::Membership::try_from(&request.membership).map_err(invalid)?;
    let floor = api::internal::Snapshot {
        below: 0,
        counters: request.floor.clone(),
    };
    let floor = paxos_core::Snapshot::try_from(&floor).map_err(invalid)?.counters;
    let reply = state
        .driver
        .join(paxos_core::Join { membership, floor })
        .instrument(tracing::info_span!("join"))
        .await
        .map_err(gone)?;
    joined(reply)
}

async fn install(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<InstallRequest>,
) -> Result<Json<JoinResponse>, ApiError> {
    let install = request.to_core().map_err(invalid)?;
    let span = tracing::info_span!("install", ballot = %install.ballot, entries = install.entries.len());
    let reply = state
        .driver
        .install(install)
        .instrument(span)
        .await
        .map_err(gone)?;
    joined(reply)
}

async fn transition(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<TransitionRequest>,
) -> Result<Json<JoinResponse>, ApiError> {
    let (transition, tail) = request.to_core().map_err(invalid)?;
    let span = tracing::info_span!(
        "transition",
        epoch = transition.configuration.epoch,
        seats = transition.configuration.seats.len(),
        snapshot_below = transition.snapshot.below.0,
    );
    let reply = async {
        // The tail first, so that a member of the ended epoch holds it chosen
        // and keeps its log; its refusal (a blank seat, a later promise) only
        // means the transition folds in the snapshot instead.
        if let Some(tail) = tail {
            let reply = state.driver.accept(tail, None).await?;
            tracing::debug!(?reply, "the leader's chosen tail before the transition");
        }
        state.driver.transition(transition).await
    }
    .instrument(span)
    .await
    .map_err(gone)?;
    match reply {
        paxos_core::JoinReply::Joined => Ok(Json(JoinResponse { voting: true })),
        paxos_core::JoinReply::NotBlank => Err(conflict(Conflict(format!(
            "this acceptor is in epoch {} or later already; a transition moves it to a later epoch, once",
            request.configuration.epoch
        )))),
        paxos_core::JoinReply::NotAMember => Err(conflict(Conflict(
            "the configuration offered does not seat this acceptor (its node_uuid)".into(),
        ))),
    }
}

async fn current_transition(State(state): State<AppState>) -> Result<Json<TransitionRequest>, ApiError> {
    let current = state.driver.current_transition().await.map_err(gone)?;
    let current = current.ok_or_else(|| {
        ApiError::not_found(
            "this acceptor is in epoch 0 (the cluster as founded, with no configuration) or does not vote; \
             ask a voting acceptor of the latest epoch",
        )
    })?;
    Ok(Json(TransitionRequest::from_core(&current, None)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

async fn log(
    State(state): State<AppState>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<LogResponse>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(LOG_ENTRIES_DEFAULT);
    if !(1..=LOG_ENTRIES_MAX).contains(&limit) {
        return Err(invalid(format!(
            "limit must be 1..={LOG_ENTRIES_MAX}, got {limit}"
        )));
    }
    let span = tracing::info_span!("log", from = query.from, limit);
    let view = state
        .driver
        .log(Slot(query.from), limit)
        .instrument(span)
        .await
        .map_err(gone)?;
    Ok(Json(LogResponse {
        compacted_below: view.compacted_below.0,
        chosen_below: view.chosen_below.0,
        entries: view
            .entries
            .iter()
            .map(|(slot, accepted)| Entry::from_core(*slot, accepted))
            .collect(),
        node_uuid: Some(state.identity.node_uuid.clone()),
    }))
}

async fn status(State(state): State<AppState>) -> Result<Json<AcceptorStatus>, ApiError> {
    let view = state.driver.status().await.map_err(gone)?;
    let member_state = match (&view.membership, view.voting) {
        (None, _) => MemberState::Blank,
        (Some(_), true) => MemberState::Voting,
        (Some(_), false) => MemberState::Retired,
    };
    Ok(Json(AcceptorStatus {
        cluster_id: state.identity.cluster_id.clone(),
        node_uuid: state.identity.node_uuid.clone(),
        state: member_state,
        membership: view.membership.as_ref().map(api::internal::Membership::from),
        configuration: view
            .configuration
            .as_ref()
            .map(api::internal::Configuration::from),
        promised: view.promised.into(),
        leader: view.leader.map(|leader| LeaderInfo {
            ballot: leader.ballot.into(),
            url: leader.url,
            heard_ago_ms: leader.heard_ago_ms,
        }),
        chosen_below: view.chosen_below.0,
        compacted_below: view.compacted_below.0,
        log_entries: view.log_entries,
    }))
}

async fn snapshot(State(state): State<AppState>) -> Result<Json<api::internal::Snapshot>, ApiError> {
    let snapshot = state.driver.snapshot().await.map_err(gone)?;
    Ok(Json(api::internal::Snapshot::from(&snapshot)))
}

async fn learner_progress(
    State(state): State<AppState>,
    Path(learner_id): Path<String>,
    JsonBody(progress): JsonBody<LearnerProgress>,
) -> Result<StatusCode, ApiError> {
    check_learner_id(&learner_id).map_err(invalid)?;
    let span = tracing::info_span!("learner_progress", learner_id = %learner_id, learned_below = progress.learned_below);
    let result = state
        .driver
        .learner_progress(learner_id, progress.learned_below)
        .instrument(span)
        .await
        .map_err(gone)?;
    result.map_err(conflict)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything the core or the store would trip over, refused here.
fn validate_accept(request: &AcceptRequest) -> Result<paxos_core::Accept, String> {
    if request.proposals.len() > PROPOSALS_PER_ACCEPT_MAX {
        let n = request.proposals.len();
        return Err(format!(
            "{n} proposals; at most {PROPOSALS_PER_ACCEPT_MAX} per accept"
        ));
    }
    let mut seen = BTreeSet::new();
    for proposal in &request.proposals {
        if proposal.slot > SLOT_MAX {
            return Err(format!(
                "slot {} is out of range; the highest is {SLOT_MAX}",
                proposal.slot
            ));
        }
        if !seen.insert(proposal.slot) {
            return Err(format!("slot {} appears twice", proposal.slot));
        }
    }
    if let Some(url) = &request.leader_url {
        check_leader_url(url)?;
    }
    request.to_core()
}

fn check_leader_url(url: &str) -> Result<(), String> {
    if url.len() > LEADER_URL_BYTES_MAX {
        return Err(format!(
            "leader_url has {} bytes; the maximum is {LEADER_URL_BYTES_MAX}",
            url.len()
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control()) => Ok(()),
        _ => Err(format!("leader_url {url:?} is not an http:// or https:// URL")),
    }
}

fn check_learner_id(id: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if id.is_empty() || id.len() > LEARNER_ID_CHARS_MAX || !id.chars().all(valid_char) {
        return Err(format!(
            "learner id {id:?} must be 1..={LEARNER_ID_CHARS_MAX} characters of [A-Za-z0-9_.-]"
        ));
    }
    Ok(())
}

/// 422 for well-formed JSON whose content is refused; counted, since a
/// peer sending these is misconfigured or buggy.
fn invalid(detail: impl Into<String>) -> ApiError {
    metrics::rejection("invalid_request");
    ApiError::unprocessable(detail)
}

fn gone(error: DriverGone) -> ApiError {
    ApiError::unavailable(error.to_string(), 1)
}

fn conflict(error: Conflict) -> ApiError {
    ApiError::conflict(error.0)
}

/// 503: a blank acceptor votes only once founded or rebuilt, a retired one
/// never again, and none in an epoch it has not moved to; the sender
/// treats it as a lost message.
fn not_voting() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        api::problem::NOT_VOTING,
        "Not voting",
    )
    .with_detail(format!(
        "{NOT_VOTING_DETAIL}; or the ballot is of a later epoch than this acceptor's \
         (it votes there once a transition has moved it)"
    ))
    .with_retry_after_s(1)
}

/// What `/readyz` and refused votes say about a blank or retired acceptor.
pub const NOT_VOTING_DETAIL: &str =
    "this acceptor does not vote: it is blank (a new cluster not founded yet, \
     or a lost disk not rebuilt yet; a sequencer founds or rebuilds it) or it was retired";

fn joined(reply: paxos_core::JoinReply) -> Result<Json<JoinResponse>, ApiError> {
    match reply {
        paxos_core::JoinReply::Joined => Ok(Json(JoinResponse { voting: true })),
        paxos_core::JoinReply::NotBlank => Err(conflict(Conflict(
            "this acceptor holds a membership already; only a blank acceptor joins".into(),
        ))),
        paxos_core::JoinReply::NotAMember => Err(conflict(Conflict(
            "the membership offered does not count this acceptor (its node_uuid) as a voter".into(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_urls_and_learner_ids_are_checked() {
        assert!(check_leader_url("http://10.0.0.1:7000").is_ok());
        assert!(check_leader_url("https://seq-0.paxid").is_ok());
        for bad in ["", "http://", "ftp://x", "http://a b", "x"] {
            assert!(check_leader_url(bad).is_err(), "{bad:?}");
        }
        assert!(check_leader_url(&format!("http://{}", "a".repeat(LEADER_URL_BYTES_MAX))).is_err());
        assert!(check_learner_id("learner-0.eu_1").is_ok());
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            assert!(check_learner_id(bad).is_err(), "{bad:?}");
        }
    }
}
