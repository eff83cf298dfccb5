//! Followers forward `POST /next-id` to the leader, coalesced.
//!
//! One forward per client request made a follower several times slower
//! than the leader under load (6.2 k against 28.9 k requests/s at 256
//! connections, issue 13): every call paid its own hop, and past the pool's
//! idle connections, its own TCP handshake. Here callers of one sequence
//! that hold the same credential share forwards: at most one is in flight
//! per (sequence, credential); callers arriving meanwhile join the next one,
//! whose `count` is the sum of theirs (up to `--count-max`), and its range is
//! cut into consecutive slices in arrival order.
//!
//! Why this keeps every promise of `POST /next-id`: a slice is part of an
//! allocation the leader chose, so IDs stay unique; and every caller's IDs
//! come from a forward sent after that caller arrived (nothing is fetched
//! ahead or kept), so a call that starts after another one ended still gets
//! higher IDs. The leader checks the shared credential again; this replica
//! checked each caller's already (the same `--client-token` guards both).
//! A failed forward fails every caller in it with the leader's answer.
//!
//! A call with an `Idempotency-Key` goes alone, with its key: the leader
//! must see the key to answer a retry with the first call's IDs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api::client::{NextIdRequest, NextIdResponse};
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use paxid_client::batch;
use paxos_core::{IdempotencyKey, SequenceName};
use service::ApiError;
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

use crate::http::{leadership_moved_from, no_leader, AppState, FORWARDED_HEADER, IDEMPOTENCY_KEY_HEADER};

/// What became of a forwarded request.
pub enum Forwarded {
    /// The leader's answer: this caller's slice, or its refusal relayed.
    Answer(Response),
    /// Another replica leads now (possibly this one); the old leader's
    /// answer is no longer awaited.
    LeaderMoved,
}

/// The callers waiting for a forward, per (sequence, credential).
#[derive(Default)]
pub struct Forwarder {
    batches: Mutex<HashMap<BatchKey, Pending>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct BatchKey {
    sequence: SequenceName,
    credential: Option<HeaderValue>,
}

#[derive(Default)]
struct Pending {
    /// A forward of this key is on its way; its task sends the next.
    in_flight: bool,
    waiting: Vec<Waiter>,
}

struct Waiter {
    count: u64,
    reply: oneshot::Sender<Outcome>,
}

/// One forward's result, handed to each of its callers.
#[derive(Clone)]
enum Outcome {
    /// The caller's slice starts here.
    First(u64),
    Refused(Relayed),
    LeaderMoved,
    Failed(String),
}

/// A leader's non-2xx answer, relayed as it came.
#[derive(Clone)]
struct Relayed {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Sends `count` IDs of `sequence` to the leader the acceptors name, in a
/// forward shared with the callers waiting beside this one, and returns
/// this caller's answer.
pub async fn forward(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    sequence: &SequenceName,
    count: u64,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<Forwarded, ApiError> {
    let key = BatchKey {
        sequence: sequence.clone(),
        credential: headers.get(axum::http::header::AUTHORIZATION).cloned(),
    };
    let outcome = match idempotency_key {
        Some(idempotency_key) => send_one(state, &key, count, Some(idempotency_key)).await,
        None => {
            let (reply, answer) = oneshot::channel();
            if state.forwarder.join(key.clone(), Waiter { count, reply }) {
                // The first caller's trace context goes with the forwards it starts.
                tokio::spawn(send_batches(state.clone(), key).instrument(Span::current()));
            }
            answer
                .await
                .map_err(|_| no_leader("the sequencer is shutting down"))?
        }
    };
    match outcome {
        Outcome::First(id) => Ok(Forwarded::Answer(
            Json(NextIdResponse {
                id,
                count,
                sequence: sequence.as_str().to_owned(),
            })
            .into_response(),
        )),
        Outcome::Refused(relayed) => Ok(Forwarded::Answer(
            (relayed.status, relayed.headers, relayed.body).into_response(),
        )),
        Outcome::LeaderMoved => Ok(Forwarded::LeaderMoved),
        Outcome::Failed(reason) => Err(no_leader(&reason)),
    }
}

impl Forwarder {
    /// Queues a caller; true if no forward of `key` is under way, so the
    /// caller must start one.
    fn join(&self, key: BatchKey, waiter: Waiter) -> bool {
        let mut batches = self.batches.lock().expect("forwarder lock");
        let pending = batches.entry(key).or_default();
        pending.waiting.push(waiter);
        !std::mem::replace(&mut pending.in_flight, true)
    }

    /// The next forward's callers, oldest first, holding at most
    /// `count_max` IDs in all (one caller alone never holds more). Empty
    /// when nobody waits: the key is then idle again.
    fn next_batch(&self, key: &BatchKey, count_max: u64) -> Vec<Waiter> {
        let mut batches = self.batches.lock().expect("forwarder lock");
        let Some(pending) = batches.get_mut(key) else {
            return Vec::new();
        };
        let taken = take_within(&mut pending.waiting, count_max);
        if taken.is_empty() {
            batches.remove(key);
        }
        taken
    }
}

/// Removes the oldest waiters whose counts add up to at most `count_max`
/// (the client library's rule: `paxid_client::batch`).
fn take_within(waiting: &mut Vec<Waiter>, count_max: u64) -> Vec<Waiter> {
    let fits = batch::batch_len(waiting.iter().map(|w| w.count), count_max);
    waiting.drain(..fits).collect()
}

/// Sends the forwards of `key` one after another until nobody waits.
async fn send_batches(state: Arc<AppState>, key: BatchKey) {
    loop {
        let batch = state.forwarder.next_batch(&key, state.count_max);
        if batch.is_empty() {
            return;
        }
        let total: u64 = batch.iter().map(|w| w.count).sum();
        metrics::counter!("paxid_sequencer_forwards_total").increment(1);
        metrics::counter!("paxid_sequencer_forwarded_requests_total").increment(batch.len() as u64);
        let outcome = send_one(&state, &key, total, None).await;
        let counts: Vec<u64> = batch.iter().map(|w| w.count).collect();
        let firsts = match outcome {
            Outcome::First(first) => batch::slices(first, &counts)
                .into_iter()
                .map(|(id, _)| Some(id))
                .collect(),
            _ => vec![None; counts.len()],
        };
        for (waiter, first) in batch.into_iter().zip(firsts) {
            let mine = first.map_or_else(|| outcome.clone(), Outcome::First);
            // A caller that went away leaves its slice as a gap.
            let _ = waiter.reply.send(mine);
        }
    }
}

/// One forward of `count` IDs to the leader, unless leadership moves first.
async fn send_one(
    state: &AppState,
    key: &BatchKey,
    count: u64,
    idempotency_key: Option<&IdempotencyKey>,
) -> Outcome {
    let (leader, heard_ago_ms) = {
        let cluster = state.cluster.borrow();
        (cluster.leader.clone(), cluster.leader_heard_ago_ms)
    };
    let Some((_, url)) = leader.filter(|(_, url)| url != &state.advertise_url) else {
        return Outcome::Failed("no leader is known yet".into());
    };
    if heard_ago_ms.is_none_or(|ago| ago > state.leader_silence_max_ms) {
        return Outcome::Failed("the leader has not been heard recently; an election is due".into());
    }
    let body = NextIdRequest {
        count: Some(count),
        sequence: Some(key.sequence.as_str().to_owned()),
    };
    let target = paxid_client::internal::join(&url, api::routes::NEXT_ID);
    let mut request = state.peers.client().post(&target);
    if let Some(credential) = &key.credential {
        request = request.header(reqwest::header::AUTHORIZATION, credential.as_bytes());
    }
    if let Some(idempotency_key) = idempotency_key {
        request = request.header(IDEMPOTENCY_KEY_HEADER, idempotency_key.as_str());
    }
    let sending = request
        .header(FORWARDED_HEADER, "1")
        .headers(telemetry::trace_headers())
        .timeout(state.forward_timeout)
        .json(&body)
        .send();
    let sent = tokio::select! {
        sent = sending => match sent {
            Ok(sent) => sent,
            Err(e) => return Outcome::Failed(format!("the leader at {url} is unreachable: {e}")),
        },
        () = leadership_moved_from(state, &url) => return Outcome::LeaderMoved,
    };
    let status = StatusCode::from_u16(sent.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for name in ["content-type", "retry-after"] {
        if let Some(value) = sent
            .headers()
            .get(name)
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            headers.insert(name, value);
        }
    }
    let body = match sent.bytes().await {
        Ok(body) => body,
        Err(e) => return Outcome::Failed(format!("the leader's answer was cut: {e}")),
    };
    if !status.is_success() {
        return Outcome::Refused(Relayed {
            status,
            headers,
            body,
        });
    }
    match serde_json::from_slice::<NextIdResponse>(&body) {
        Ok(answer) if answer.count == count && answer.sequence == key.sequence.as_str() => {
            Outcome::First(answer.id)
        }
        Ok(answer) => Outcome::Failed(format!(
            "the leader at {url} answered {} IDs of {:?} for {count} of {:?}",
            answer.count,
            answer.sequence,
            key.sequence.as_str()
        )),
        Err(e) => Outcome::Failed(format!("the leader at {url} answered an unreadable body: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiters(counts: &[u64]) -> Vec<Waiter> {
        counts
            .iter()
            .map(|&count| Waiter {
                count,
                reply: oneshot::channel().0,
            })
            .collect()
    }

    fn counts(waiters: &[Waiter]) -> Vec<u64> {
        waiters.iter().map(|w| w.count).collect()
    }

    #[test]
    fn a_forward_takes_the_oldest_callers_within_the_count_limit() {
        let mut waiting = waiters(&[3, 4, 5, 1]);
        assert_eq!(counts(&take_within(&mut waiting, 10)), vec![3, 4]);
        assert_eq!(counts(&waiting), vec![5, 1], "the rest waits, in order");
        assert_eq!(counts(&take_within(&mut waiting, 10)), vec![5, 1]);
        assert!(take_within(&mut waiting, 10).is_empty());
    }

    #[test]
    fn only_the_first_caller_of_an_idle_key_starts_forwards() {
        let forwarder = Forwarder::default();
        let key = BatchKey {
            sequence: SequenceName::default_sequence(),
            credential: None,
        };
        let mut joined = waiters(&[1, 2, 3]).into_iter();
        assert!(forwarder.join(key.clone(), joined.next().expect("three waiters")));
        assert!(!forwarder.join(key.clone(), joined.next().expect("three waiters")));
        let other = BatchKey {
            credential: Some(HeaderValue::from_static("Bearer b")),
            ..key.clone()
        };
        assert!(
            forwarder.join(other, joined.next().expect("three waiters")),
            "another credential is another batch"
        );
        assert_eq!(counts(&forwarder.next_batch(&key, 100)), vec![1, 2]);
        assert!(forwarder.next_batch(&key, 100).is_empty());
        let (reply, _) = oneshot::channel();
        assert!(
            forwarder.join(key, Waiter { count: 1, reply }),
            "an emptied key is idle: the next caller starts a forward again"
        );
    }
}
