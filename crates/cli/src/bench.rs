//! `paxid bench`: closed-loop load from C concurrent keep-alive clients.
//!
//! Each client is a tokio task that sends its next request as soon as the
//! previous one is answered, over one shared reqwest client whose pool keeps
//! one HTTP/1.1 connection per task. Each task records latencies in its own
//! [`Histogram`]; they are merged at the end. Every client also checks that
//! the IDs it receives strictly increase, the one property a closed loop can
//! check for free (a later call started after an earlier one returned).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use api::client::{NextIdRequest, NextIdResponse};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
use crate::http::{check, join, send, Api, CliError};

/// Concurrent clients, at most.
pub const CLIENTS_MAX: usize = 10_000;
/// How often the progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// A client that got an error waits this long before its next request, so a
/// dead server does not turn the loop into a busy spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);
/// The etcd key and value of every put (base64 of `seq` and `x`).
const ETCD_PUT_BODY: &str = r#"{"key":"c2Vx","value":"eA=="}"#;

/// What is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `POST {url}/next-id` of a paxid sequencer (or the ceiling).
    Paxid,
    /// `POST {url}/v3/kv/put` of etcd's JSON gateway; the ID is the
    /// cluster revision.
    Etcd,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Paxid => "paxid",
            Target::Etcd => "etcd",
        }
    }
}

/// When the load stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    After(Duration),
    Requests(u64),
}

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub url: String,
    pub target: Target,
    pub clients: usize,
    pub stop: Stop,
    pub count: u64,
    pub sequence: Option<String>,
    /// Every request carries a new `Idempotency-Key` (what keys cost).
    pub keyed: bool,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

/// The result, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub target: Target,
    pub url: String,
    pub clients: usize,
    pub count: u64,
    pub sequence: Option<String>,
    pub keyed: bool,
    pub elapsed_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_s: f64,
    pub ids: u64,
    pub ids_per_s: f64,
    /// Answers whose ID was not above the same client's previous one.
    pub order_violations: u64,
    pub latency_ms: Latencies,
    pub first_error: Option<String>,
}

/// Of successful requests, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latencies {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Runs the load; fails only if the target cannot be reached at all (a
/// first request is sent, uncounted, to find out).
pub async fn run(api: &Api, config: &BenchConfig) -> Result<BenchReport, CliError> {
    let load = Arc::new(Load::new(api, config)?);
    load.call().await?;
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let deadline = match config.stop {
        Stop::After(duration) => Some(started + duration),
        Stop::Requests(_) => None,
    };
    let tasks: Vec<_> = (0..config.clients)
        .map(|_| tokio::spawn(client_loop(load.clone(), shared.clone(), deadline, config.stop)))
        .collect();
    let progress = config
        .progress
        .then(|| tokio::spawn(print_progress(shared.clone(), started)));
    let mut outcome = ClientOutcome::default();
    for task in tasks {
        match task.await {
            Ok(done) => outcome.merge(done),
            Err(error) => return Err(CliError::Usage(format!("a load task failed: {error}"))),
        }
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    Ok(report(config, &shared, outcome, started.elapsed()))
}

/// One line per report, for people.
pub fn render_human(report: &BenchReport) -> String {
    let l = &report.latency_ms;
    let sequence = report.sequence.as_deref().unwrap_or("default");
    let mut lines = vec![
        format!("target     {} {}", report.target.name(), report.url),
        format!(
            "load       {} clients, count {}, sequence {sequence}{}, {:.2} s",
            report.clients,
            report.count,
            if report.keyed {
                ", a new Idempotency-Key per request"
            } else {
                ""
            },
            report.elapsed_s
        ),
        format!(
            "requests   {} ok, {} errors, {:.0} requests/s",
            report.requests, report.errors, report.requests_per_s
        ),
        format!("ids        {} IDs, {:.0} IDs/s", report.ids, report.ids_per_s),
        format!(
            "latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p999 {:.3} ms  max {:.3} ms",
            l.p50, l.p90, l.p99, l.p999, l.max
        ),
    ];
    if report.order_violations > 0 {
        lines.push(format!(
            "VIOLATION  {} answers were not above the same client's previous ID",
            report.order_violations
        ));
    }
    if let Some(error) = &report.first_error {
        lines.push(format!("first error: {error}"));
    }
    lines.join("\n")
}

/// The request every client sends, built once.
struct Load {
    api: Api,
    target: Target,
    url: String,
    /// `url`, parsed once rather than on every request.
    parsed_url: reqwest::Url,
    body: Vec<u8>,
    count: u64,
    /// With `--keyed`: keys are this prefix and a counter, new per request.
    key_prefix: Option<String>,
    keys_sent: AtomicU64,
}

impl Load {
    fn new(api: &Api, config: &BenchConfig) -> Result<Load, CliError> {
        let (url, body) = match config.target {
            Target::Paxid => {
                let request = NextIdRequest {
                    count: Some(config.count),
                    sequence: config.sequence.clone(),
                };
                let body = serde_json::to_vec(&request).map_err(|e| CliError::Usage(e.to_string()))?;
                (join(&config.url, api::routes::NEXT_ID), body)
            }
            Target::Etcd => {
                if config.count != 1 || config.sequence.is_some() || config.keyed {
                    return Err(CliError::Usage(
                        "--target etcd takes neither --count, --sequence nor --keyed".into(),
                    ));
                }
                (join(&config.url, "/v3/kv/put"), ETCD_PUT_BODY.as_bytes().to_vec())
            }
        };
        let parsed_url =
            reqwest::Url::parse(&url).map_err(|e| CliError::Usage(format!("invalid URL {url}: {e}")))?;
        Ok(Load {
            api: api.clone(),
            target: config.target,
            url,
            parsed_url,
            body,
            count: config.count,
            // Unique to this run, so that no key of an earlier run is reused.
            key_prefix: config.keyed.then(|| format!("bench-{:016x}", rand_u64())),
            keys_sent: AtomicU64::new(0),
        })
    }

    /// One request; its first ID and how many IDs it brought.
    async fn call(&self) -> Result<(u64, u64), CliError> {
        let mut request = self
            .api
            .client()
            .post(self.parsed_url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(self.body.clone());
        if let Some(token) = self.api.client_token() {
            request = request.bearer_auth(token);
        }
        if let Some(prefix) = &self.key_prefix {
            let n = self.keys_sent.fetch_add(1, Ordering::Relaxed);
            request = request.header("idempotency-key", format!("{prefix}-{n}"));
        }
        let response = check(Method::POST, &self.url, send(&self.url, request).await?).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| crate::http::transport_error(&self.url, &e))?;
        let bad = |reason: String| CliError::BadAnswer {
            url: self.url.clone(),
            reason,
        };
        match self.target {
            Target::Paxid => {
                let answer: NextIdResponse = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
                if answer.count != self.count {
                    return Err(bad(format!("asked for {} IDs, got {}", self.count, answer.count)));
                }
                Ok((answer.id, answer.count))
            }
            Target::Etcd => {
                let answer: EtcdPutResponse =
                    serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
                Ok((answer.header.revision.value().map_err(bad)?, 1))
            }
        }
    }
}

/// Totals every client adds to, read by the progress line.
#[derive(Default)]
struct Shared {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests handed out so far under `Stop::Requests`.
    tickets: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn note_error(&self, error: &CliError) {
        let mut first_error = self.first_error.lock().unwrap_or_else(PoisonError::into_inner);
        first_error.get_or_insert_with(|| error.to_string());
    }
}

/// What one client measured.
#[derive(Default)]
struct ClientOutcome {
    latencies: Histogram,
    ids: u64,
    order_violations: u64,
}

impl ClientOutcome {
    fn merge(&mut self, other: ClientOutcome) {
        self.latencies.merge(&other.latencies);
        self.ids += other.ids;
        self.order_violations += other.order_violations;
    }
}

async fn client_loop(
    load: Arc<Load>,
    shared: Arc<Shared>,
    deadline: Option<Instant>,
    stop: Stop,
) -> ClientOutcome {
    let mut outcome = ClientOutcome::default();
    // The first ID above everything this client has received.
    let mut above: u64 = 0;
    loop {
        let go_on = match stop {
            Stop::After(_) => deadline.is_some_and(|deadline| Instant::now() < deadline),
            Stop::Requests(total) => shared.tickets.fetch_add(1, Ordering::Relaxed) < total,
        };
        if !go_on {
            return outcome;
        }
        let sent = Instant::now();
        match load.call().await {
            Ok((first, count)) => {
                outcome.latencies.record(sent.elapsed());
                outcome.ids += count;
                if first < above {
                    outcome.order_violations += 1;
                }
                above = above.max(first.saturating_add(count));
                shared.requests.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                shared.note_error(&error);
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

async fn print_progress(shared: Arc<Shared>, started: Instant) {
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
    let mut previous = 0;
    loop {
        ticker.tick().await;
        let requests = shared.requests.load(Ordering::Relaxed);
        let errors = shared.errors.load(Ordering::Relaxed);
        eprintln!(
            "[{:>4.0} s] {requests} requests, {} requests/s, {errors} errors",
            started.elapsed().as_secs_f64(),
            requests - previous
        );
        previous = requests;
    }
}

fn report(config: &BenchConfig, shared: &Shared, outcome: ClientOutcome, elapsed: Duration) -> BenchReport {
    let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let requests = shared.requests.load(Ordering::Relaxed);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let h = &outcome.latencies;
    BenchReport {
        target: config.target,
        url: config.url.clone(),
        clients: config.clients,
        count: config.count,
        sequence: config.sequence.clone(),
        keyed: config.keyed,
        elapsed_s: seconds,
        requests,
        errors: shared.errors.load(Ordering::Relaxed),
        requests_per_s: requests as f64 / seconds,
        ids: outcome.ids,
        ids_per_s: outcome.ids as f64 / seconds,
        order_violations: outcome.order_violations,
        latency_ms: Latencies {
            p50: ms(h.quantile(0.5)),
            p90: ms(h.quantile(0.9)),
            p99: ms(h.quantile(0.99)),
            p999: ms(h.quantile(0.999)),
            max: ms(h.max()),
        },
        first_error: shared
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    }
}

/// The part of etcd's put answer we read.
#[derive(Deserialize)]
struct EtcdPutResponse {
    header: EtcdHeader,
}

#[derive(Deserialize)]
struct EtcdHeader {
    revision: Int64,
}

/// etcd's JSON gateway writes int64 fields as strings; accept both.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Number(u64),
    Text(String),
}

impl Int64 {
    fn value(&self) -> Result<u64, String> {
        match self {
            Int64::Number(n) => Ok(*n),
            Int64::Text(s) => s.parse().map_err(|e| format!("revision {s:?}: {e}")),
        }
    }
}

/// A random draw for the run's key prefix: the standard library's
/// randomly seeded hasher (no RNG dependency for one number).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_revisions_parse_as_string_or_number() {
        let text = r#"{"header":{"cluster_id":"1","member_id":"2","revision":"42","raft_term":"3"}}"#;
        let answer: EtcdPutResponse = serde_json::from_str(text).expect("parses");
        assert_eq!(answer.header.revision.value(), Ok(42));
        let number: EtcdPutResponse = serde_json::from_str(r#"{"header":{"revision":7}}"#).expect("parses");
        assert_eq!(number.header.revision.value(), Ok(7));
        let junk: EtcdPutResponse = serde_json::from_str(r#"{"header":{"revision":"x"}}"#).expect("parses");
        assert!(junk.header.revision.value().is_err());
    }
}
