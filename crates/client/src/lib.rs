//! `paxid-client`: the Rust client of paxid's `POST /next-id`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), paxid_client::Error> {
//! let client = paxid_client::Client::builder()
//!     .endpoints(["http://10.0.0.1:8080", "http://10.0.0.2:8080"])
//!     .token("client-token") // the sequencers' --client-token, if set
//!     .build();
//! let ids = client.next_id("orders", 10).await?; // IDs ids.first ..= ids.last()
//! let one = client.next_id_default(1).await?.first;
//! # let _ = (ids, one); Ok(()) }
//! ```
//!
//! # Endpoints, leader following, retries
//!
//! Calls go to the endpoint that answered last. A connection error, a
//! timeout, a 503, a 429 or another 5xx moves the client to the next
//! endpoint at once; when a whole round of endpoints has failed it waits
//! (exponential backoff with jitter, at least the server's `Retry-After`
//! seconds, at most [`Builder::backoff`]'s cap) and goes round again, until
//! the retry budget ([`Builder::retry_budget`], [`Builder::attempts_max`])
//! is spent. Any other 4xx is returned at once as [`Error::Refused`] with
//! the server's RFC 9457 problem document: the same request would be
//! refused again.
//!
//! The client does not look for the leader itself. Followers forward
//! `POST /next-id` to the leader the acceptors name, and the only place a
//! sequencer names its leader is `GET /v1/status`, an internal route behind
//! the cluster token (which a client should not hold) giving the leader's
//! `--advertise-url` (which a client may not reach). Sticking to the
//! endpoint that answered last is enough: after a leader change it is a
//! follower that forwards, or the new leader.
//!
//! # Coalescing, and why it keeps the ID contract
//!
//! Concurrent callers of one sequence share calls: at most one
//! `POST /next-id` per sequence is in flight per [`Client`]. Callers that
//! arrive meanwhile queue up, and the next call asks for the sum of their
//! counts (at most [`Builder::count_max`], the sequencers' `--count-max`;
//! callers beyond it wait for the call after). The answer's range is cut
//! into consecutive slices in arrival order. IDs are never prefetched or
//! cached: a caller's IDs always come from a call sent after it arrived,
//! and IDs not handed to a caller (its task was dropped) are skipped.
//!
//! This keeps paxid's contract (unique IDs, and if call A returned before
//! call B was made, B's IDs are higher):
//!
//! - *Unique*: each answer is a range no other answer overlaps (the
//!   cluster's guarantee), and its slices are disjoint.
//! - *Real-time order*: say caller A got its IDs before caller B arrived.
//!   A's IDs came from a call that had returned by then, and B's come from
//!   a call sent after B arrived, so after that call returned: the cluster
//!   gives B's call higher IDs. Callers that share one call were all
//!   waiting while it was in flight, so they overlap in time and any order
//!   among them is allowed.
//! - What a cache would break: IDs fetched before B arrived could be lower
//!   than those of a call that completed in between (another client, or
//!   another `Client` in this process).
//!
//! # Failures
//!
//! A call that fails after its retries fails every caller that shared it
//! with the same error; the next callers start a fresh call. A call
//! retried after a timeout may leave a gap: the timed-out attempt's IDs may
//! have been chosen and are then handed to no one. Gaps are allowed by the
//! contract; duplicates and reversals never happen.
//!
//! # Retry-safe calls
//!
//! [`Client::next_id_keyed`] sends an `Idempotency-Key`: a retry of the
//! same logical call (by this client after a timeout, or by the caller
//! after a crash) gets the first call's IDs, never a second range. Keyed
//! calls are not coalesced, and a 409 `idempotency-key-in-use` (the first
//! call is not answered yet) is retried like a 503.

#![allow(clippy::result_large_err)]

pub mod backoff;
pub mod batch;
mod error;
pub mod internal;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use api::client::{NextIdRequest, NextIdResponse};
use tokio::sync::oneshot;

pub use backoff::Backoff;
pub use error::{Error, Failure, Problem};

/// The sequence of `POST /next-id` without a name.
pub const DEFAULT_SEQUENCE: &str = "default";
/// The sequencers' default `--count-max`.
pub const COUNT_MAX_DEFAULT: u64 = 1_000_000;

/// Installs rustls' ring provider as the process default, once.
///
/// reqwest is built with `rustls-no-provider` (https webhooks without a C
/// build), and panics when a client is built before a provider is
/// installed; every paxid process calls this before its first client
/// ([`Builder::build`] and [`internal::InternalClient::new`] do).
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// IDs `first ..= first + count - 1` of `sequence`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub sequence: String,
    pub first: u64,
    pub count: u64,
}

impl Allocation {
    /// The last ID (`count` is at least 1).
    pub fn last(&self) -> u64 {
        self.first + (self.count - 1)
    }

    /// Every ID of the allocation.
    pub fn ids(&self) -> std::ops::RangeInclusive<u64> {
        self.first..=self.last()
    }
}

/// What the client did so far; see [`Client::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Callers of `next_id` queued for a call (each one a share of it).
    pub callers: u64,
    /// Calls made for them: one per batch of coalesced callers.
    pub calls: u64,
    /// HTTP requests sent for those calls (retries included).
    pub http_requests: u64,
    /// Calls that failed after their retries.
    pub calls_failed: u64,
}

/// A cheap handle (an `Arc`): clone it into every task. Needs a tokio
/// runtime; each call is made by a task of its own.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Builds a [`Client`]; every setting but the endpoints has a default.
#[derive(Clone, Debug)]
pub struct Builder {
    endpoints: Vec<String>,
    token: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry_budget: Duration,
    attempts_max: u32,
    backoff: Backoff,
    count_max: u64,
    waiting_max: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            endpoints: Vec::new(),
            token: None,
            connect_timeout: Duration::from_secs(1),
            // Above the sequencers' default --id-timeout-ms (5 s), so that
            // the server's 503 comes first.
            request_timeout: Duration::from_secs(6),
            retry_budget: Duration::from_secs(20),
            attempts_max: 32,
            backoff: Backoff::default(),
            count_max: COUNT_MAX_DEFAULT,
            waiting_max: 100_000,
        }
    }
}

impl Builder {
    /// Sequencer base URLs (`http://host:port`), any replicas; the first
    /// is tried first.
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints = endpoints
            .into_iter()
            .map(|e| e.into().trim_end_matches('/').to_owned())
            .collect();
        self
    }

    /// Sent as `Authorization: Bearer`: one of the sequencers'
    /// `--client-token`s. Without one, no header is sent.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Limit on opening a connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Limit on one HTTP request (default 6 s, above the sequencers'
    /// `--id-timeout-ms`). A request that times out may have consumed IDs.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// No new attempt starts after this long since the call began (default
    /// 20 s); the last attempt may run up to `request_timeout` past it.
    pub fn retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = budget;
        self
    }

    /// At most this many HTTP requests per call (default 32; at least 1).
    pub fn attempts_max(mut self, attempts: u32) -> Self {
        self.attempts_max = attempts.max(1);
        self
    }

    /// The wait between rounds of endpoints (default 50 ms doubling, capped
    /// at 2 s; `Retry-After` is honoured up to the cap).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The sequencers' `--count-max` (default 1 000 000): the largest call
    /// the client makes, and the largest count a caller may ask for.
    pub fn count_max(mut self, count_max: u64) -> Self {
        self.count_max = count_max.max(1);
        self
    }

    /// Callers that may wait per sequence (default 100 000); more get
    /// [`Error::Overloaded`] at once.
    pub fn waiting_max(mut self, waiting: usize) -> Self {
        self.waiting_max = waiting.max(1);
        self
    }

    /// The client. Panics without endpoints (a programming error).
    pub fn build(self) -> Client {
        assert!(
            !self.endpoints.is_empty(),
            "paxid-client needs at least one endpoint"
        );
        // reqwest is built with rustls and no default provider.
        install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .build()
            .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"));
        Client {
            inner: Arc::new(Inner {
                http,
                current: AtomicUsize::new(0),
                queues: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                config: self,
            }),
        }
    }
}

impl Client {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `count` consecutive IDs of `sequence`, shared with concurrent callers
    /// of the same sequence (see the crate docs).
    pub async fn next_id(&self, sequence: &str, count: u64) -> Result<Allocation, Error> {
        let count_max = self.inner.config.count_max;
        if count == 0 || count > count_max {
            return Err(Error::InvalidCount { count, count_max });
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut queues = self.inner.queues();
            let queue = queues.entry(sequence.to_owned()).or_default();
            if queue.waiting.len() >= self.inner.config.waiting_max {
                return Err(Error::Overloaded {
                    sequence: sequence.to_owned(),
                    waiting: queue.waiting.len(),
                });
            }
            queue.waiting.push_back(Waiter { count, reply });
            // Counted under the lock: a caller counted is a caller queued.
            self.inner.counters.callers.fetch_add(1, Ordering::Relaxed);
            if !queue.calling {
                queue.calling = true;
                tokio::spawn(self.inner.clone().drive(sequence.to_owned()));
            }
        }
        answer.await.unwrap_or(Err(Error::Closed))
    }

    /// `count` consecutive IDs of `sequence` under an `Idempotency-Key`:
    /// every call with the same `key` (from this client or any other, to
    /// any replica, across leader changes, within the server's window) gets
    /// the same IDs, so this call and its retries never take two ranges.
    /// Not shared with other callers (the key names this call alone); the
    /// client's retries include 409s for a first call still under way.
    pub async fn next_id_keyed(&self, sequence: &str, count: u64, key: &str) -> Result<Allocation, Error> {
        let count_max = self.inner.config.count_max;
        if count == 0 || count > count_max {
            return Err(Error::InvalidCount { count, count_max });
        }
        self.inner.counters.callers.fetch_add(1, Ordering::Relaxed);
        let answer = self.inner.call(sequence, count, Some(key)).await;
        if answer.is_err() {
            self.inner.counters.calls_failed.fetch_add(1, Ordering::Relaxed);
        }
        answer.map(|answer| Allocation {
            sequence: answer.sequence,
            first: answer.id,
            count: answer.count,
        })
    }

    /// `count` IDs of the `default` sequence.
    pub async fn next_id_default(&self, count: u64) -> Result<Allocation, Error> {
        self.next_id(DEFAULT_SEQUENCE, count).await
    }

    /// Counters since the client was built (coalescing shows as `calls`
    /// below `callers`).
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            callers: c.callers.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
            http_requests: c.http_requests.load(Ordering::Relaxed),
            calls_failed: c.calls_failed.load(Ordering::Relaxed),
        }
    }

    /// The endpoint the next call goes to first.
    pub fn current_endpoint(&self) -> &str {
        let endpoints = &self.inner.config.endpoints;
        &endpoints[self.inner.current.load(Ordering::Relaxed) % endpoints.len()]
    }
}

struct Inner {
    http: reqwest::Client,
    config: Builder,
    /// Index of the endpoint that answered last (or is to be tried next).
    current: AtomicUsize,
    /// Per sequence: the callers waiting for the next call. Held only to
    /// push or take, never across an await.
    queues: Mutex<HashMap<String, Queue>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    callers: AtomicU64,
    calls: AtomicU64,
    http_requests: AtomicU64,
    calls_failed: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// In arrival order.
    waiting: VecDeque<Waiter>,
    /// A task is making calls for this sequence (at most one).
    calling: bool,
}

struct Waiter {
    count: u64,
    reply: oneshot::Sender<Result<Allocation, Error>>,
}

/// Drops the sequence's queue if its calling task ends other than by
/// emptying it (a panic, or its runtime shut down mid-call): the waiting
/// callers get [`Error::Closed`] and the next caller starts a new task,
/// instead of queueing behind one that is gone.
struct Driving<'a> {
    inner: &'a Inner,
    sequence: &'a str,
    finished: bool,
}

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.inner.queues().remove(self.sequence);
        }
    }
}

/// What one attempt came to.
enum Attempt {
    Served(NextIdResponse),
    /// Worth another attempt, elsewhere or later.
    Retry {
        failure: Failure,
        retry_after: Option<Duration>,
    },
    /// Final: returned to the callers as it is.
    Fail(Error),
}

impl Inner {
    fn queues(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        // Nothing panics while holding it; if something did, the map is
        // still consistent (each change is one push or one drain).
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The one task calling for `sequence`: takes the waiting callers in
    /// batches until none is left.
    async fn drive(self: Arc<Self>, sequence: String) {
        let mut guard = Driving {
            inner: &self,
            sequence: &sequence,
            finished: false,
        };
        loop {
            let batch: Option<Vec<Waiter>> = {
                let mut queues = self.queues();
                match queues.get_mut(&sequence) {
                    None => None,
                    Some(queue) => {
                        // Callers that went away (their future was dropped)
                        // ask for nothing: their IDs would only be a gap.
                        queue.waiting.retain(|w| !w.reply.is_closed());
                        let len =
                            batch::batch_len(queue.waiting.iter().map(|w| w.count), self.config.count_max);
                        if len == 0 {
                            queues.remove(&sequence);
                            None
                        } else {
                            Some(queue.waiting.drain(..len).collect())
                        }
                    }
                }
            };
            let Some(batch) = batch else {
                guard.finished = true;
                return;
            };
            let counts: Vec<u64> = batch.iter().map(|w| w.count).collect();
            let total: u64 = counts.iter().sum();
            match self.call(&sequence, total, None).await {
                Ok(answer) => {
                    for (waiter, (first, count)) in batch.into_iter().zip(batch::slices(answer.id, &counts)) {
                        // A caller that went away leaves its slice unused: a gap.
                        let _ = waiter.reply.send(Ok(Allocation {
                            sequence: answer.sequence.clone(),
                            first,
                            count,
                        }));
                    }
                }
                Err(error) => {
                    self.counters.calls_failed.fetch_add(1, Ordering::Relaxed);
                    for waiter in batch {
                        let _ = waiter.reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    /// One call (`count` IDs of `sequence`, under `key` if given) with its
    /// retries.
    async fn call(&self, sequence: &str, count: u64, key: Option<&str>) -> Result<NextIdResponse, Error> {
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let endpoints = self.config.endpoints.len();
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut round = 0u32;
        let mut failed_in_round = 0usize;
        let mut retry_after_in_round: Option<Duration> = None;
        loop {
            let index = self.current.load(Ordering::Relaxed) % endpoints;
            attempts += 1;
            let failure = match self.attempt(index, sequence, count, key).await {
                Attempt::Served(answer) => return Ok(answer),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { failure, retry_after } => {
                    retry_after_in_round = retry_after_in_round.max(retry_after);
                    failure
                }
            };
            // Move on, unless a concurrent call moved already.
            let _ = self.current.compare_exchange(
                index,
                (index + 1) % endpoints,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            let elapsed = started.elapsed();
            let exhausted = |elapsed: Duration| {
                attempts >= self.config.attempts_max || elapsed >= self.config.retry_budget
            };
            if exhausted(elapsed) {
                return Err(Error::Unavailable {
                    attempts,
                    elapsed_ms: elapsed.as_millis() as u64,
                    last: failure,
                });
            }
            tracing::debug!(%failure, attempts, "paxid next-id attempt failed; trying the next endpoint");
            failed_in_round += 1;
            if failed_in_round >= endpoints {
                let wait = self
                    .config
                    .backoff
                    .delay(round, retry_after_in_round, backoff::random_u64())
                    .min(self.config.retry_budget.saturating_sub(elapsed));
                tracing::debug!(?wait, round, "every endpoint failed; backing off");
                tokio::time::sleep(wait).await;
                round = round.saturating_add(1);
                failed_in_round = 0;
                retry_after_in_round = None;
                if exhausted(started.elapsed()) {
                    return Err(Error::Unavailable {
                        attempts,
                        elapsed_ms: started.elapsed().as_millis() as u64,
                        last: failure,
                    });
                }
            }
        }
    }

    /// One HTTP request to endpoint `index`.
    async fn attempt(&self, index: usize, sequence: &str, count: u64, key: Option<&str>) -> Attempt {
        self.counters.http_requests.fetch_add(1, Ordering::Relaxed);
        let endpoint = &self.config.endpoints[index];
        let body = NextIdRequest {
            count: Some(count),
            sequence: Some(sequence.to_owned()),
        };
        let mut request = self
            .http
            .post(internal::join(endpoint, api::routes::NEXT_ID))
            .json(&body);
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY_HEADER, key);
        }
        let transport = |e: reqwest::Error| {
            let endpoint = endpoint.clone();
            if e.is_timeout() {
                Failure::Timeout { endpoint }
            } else {
                Failure::Transport {
                    endpoint,
                    message: error_chain(&e),
                }
            }
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Retry {
                    failure: transport(e),
                    retry_after: None,
                }
            }
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => {
                return Attempt::Retry {
                    failure: transport(e),
                    retry_after,
                }
            }
        };
        if status == 200 {
            return match serde_json::from_slice::<NextIdResponse>(&bytes) {
                Ok(answer) => match check_answer(&answer, sequence, count) {
                    Ok(()) => Attempt::Served(answer),
                    Err(why) => Attempt::Fail(Error::InvalidAnswer(why)),
                },
                Err(e) => Attempt::Fail(Error::InvalidAnswer(format!("{endpoint}: {e}"))),
            };
        }
        let problem = serde_json::from_slice::<Problem>(&bytes).ok();
        // The first call under this key is still under way: its answer
        // comes to a retry.
        let key_in_use = status == 409
            && problem
                .as_ref()
                .is_some_and(|p| p.type_ == api::problem::IDEMPOTENCY_KEY_IN_USE);
        if is_retryable(status) || key_in_use {
            return Attempt::Retry {
                failure: Failure::Status {
                    endpoint: endpoint.clone(),
                    status,
                    problem,
                },
                retry_after,
            };
        }
        // A refusal keeps the server's document; a body that is not one
        // (a proxy's page, say) still gives a problem with the status.
        let problem = problem.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&bytes);
            let title = format!("HTTP {status}");
            Problem::new(api::problem::ABOUT_BLANK, &title, status)
                .with_detail(text.chars().take(200).collect::<String>())
        });
        Attempt::Fail(Error::Refused(problem))
    }
}

/// The header that makes a call retry-safe (see [`Client::next_id_keyed`]).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// 503 (no leader or quorum), 429, and other 5xx (a proxy's 502/504, a
/// server bug) are worth another attempt; other statuses are not.
fn is_retryable(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// `Retry-After` in seconds (the form paxid sends); an HTTP date is ignored.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// An answer's `Retry-After` in its delay-seconds form (the one paxid
/// sends); absent, or an HTTP date, is None. Every paxid caller reads it
/// here: the clients, the CLI, and the learner's webhook deliveries.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// The answer must be the allocation asked for, or its IDs could be cut
/// into slices that are not the server's.
fn check_answer(answer: &NextIdResponse, sequence: &str, count: u64) -> Result<(), String> {
    if answer.count != count || answer.sequence != sequence {
        return Err(format!(
            "asked for {count} of {sequence:?}, got {} of {:?}",
            answer.count, answer.sequence
        ));
    }
    if answer.id == 0 || answer.id.checked_add(count - 1).is_none() {
        return Err(format!(
            "first ID {} with count {count} is out of range",
            answer.id
        ));
    }
    Ok(())
}

/// reqwest's error with its sources ("error sending request: connection
/// refused"), which its `Display` alone leaves out.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: u64, count: u64, sequence: &str) -> NextIdResponse {
        NextIdResponse {
            id,
            count,
            sequence: sequence.into(),
        }
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        for status in [429, 500, 502, 503, 504] {
            assert!(is_retryable(status), "{status}");
        }
        for status in [400, 401, 404, 409, 413, 415, 422] {
            assert!(!is_retryable(status), "{status}");
        }
    }

    #[test]
    fn retry_after_in_seconds_is_read_and_dates_ignored() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn an_answer_that_is_not_the_allocation_asked_for_is_refused() {
        assert!(check_answer(&answer(5, 10, "orders"), "orders", 10).is_ok());
        assert!(check_answer(&answer(5, 9, "orders"), "orders", 10).is_err());
        assert!(check_answer(&answer(5, 10, "default"), "orders", 10).is_err());
        assert!(check_answer(&answer(0, 1, "orders"), "orders", 1).is_err());
        assert!(check_answer(&answer(u64::MAX, 2, "orders"), "orders", 2).is_err());
        assert!(check_answer(&answer(u64::MAX, 1, "orders"), "orders", 1).is_ok());
    }

    #[test]
    fn allocation_ids_are_first_to_last() {
        let a = Allocation {
            sequence: "default".into(),
            first: 7,
            count: 3,
        };
        assert_eq!(a.last(), 9);
        assert_eq!(a.ids().collect::<Vec<_>>(), vec![7, 8, 9]);
    }

    #[test]
    fn a_runtime_shut_down_mid_call_does_not_wedge_the_sequence() {
        // Accepts connections (the kernel's backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", silent.local_addr().expect("addr"));
        let client = Client::builder().endpoints([url]).build();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let call = client.next_id("default", 1);
            assert!(tokio::time::timeout(Duration::from_millis(50), call)
                .await
                .is_err());
        });
        assert_eq!(client.inner.queues().len(), 1, "the call is still in flight");
        // The calling task is dropped with its runtime; the queue goes with
        // it, so a caller on another runtime starts afresh.
        runtime.shutdown_timeout(Duration::from_secs(5));
        assert!(client.inner.queues().is_empty());
    }

    #[tokio::test]
    async fn counts_outside_one_to_count_max_are_refused_without_a_call() {
        let client = Client::builder()
            .endpoints(["http://127.0.0.1:9"])
            .count_max(10)
            .build();
        for count in [0, 11] {
            let error = client.next_id("default", count).await.expect_err("refused");
            assert!(
                matches!(error, Error::InvalidCount { count_max: 10, .. }),
                "{error}"
            );
        }
        assert_eq!(client.stats(), Stats::default());
    }

    #[tokio::test]
    async fn an_unreachable_cluster_fails_every_caller_once_the_budget_is_spent() {
        // Port 9 (discard) is closed on loopback: connection refused.
        let client = Client::builder()
            .endpoints(["http://127.0.0.1:9", "http://127.0.0.1:9/"])
            .attempts_max(4)
            .backoff(Backoff {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(5),
            })
            .build();
        let calls = (0..8).map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.next_id("default", 1).await })
        });
        for call in calls.collect::<Vec<_>>() {
            let error = call.await.expect("task").expect_err("nobody answers");
            assert!(
                matches!(
                    error,
                    Error::Unavailable {
                        attempts: 4,
                        last: Failure::Transport { .. },
                        ..
                    }
                ),
                "{error}"
            );
        }
        let stats = client.stats();
        assert_eq!(stats.callers, 8);
        assert_eq!(stats.http_requests, 4 * stats.calls);
        assert_eq!(stats.calls_failed, stats.calls);
        // A fresh batch after a failure: the client is not stuck.
        assert!(client.next_id("default", 1).await.is_err());
        assert_eq!(client.stats().calls, stats.calls + 1);
    }
}
