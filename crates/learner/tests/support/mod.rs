//! Service tests of the learner over real TCP: the real learner
//! ([`paxid_learner::AppState::start`], [`paxid_learner::app`]) with RocksDB
//! in a temp dir, stub acceptors serving `/v1/log` (the real ones are
//! exercised by the end-to-end tests in `tests/`) and real webhook
//! subscribers (axum servers); HTTP with reqwest. Shared by the test files
//! named after what they cover (subscriptions, delivery, acceptors,
//! signing) and by the figure printers in `benches/`.

#![allow(dead_code)]

pub use std::collections::{BTreeMap, VecDeque};
pub use std::net::SocketAddr;
pub use std::path::Path;
pub use std::sync::{Arc, Mutex};
pub use std::time::{Duration, Instant};

pub use api::internal::{self as wire, ChosenPush, Entry, LearnerProgress, LogResponse, Proposal};
pub use api::learner::{SubscriptionCreated, SubscriptionView, WebhookMessage};
pub use axum::body::Bytes;
pub use axum::extract::{Query, State};
pub use axum::http::{HeaderMap, StatusCode, Uri};
pub use axum::response::{IntoResponse, Response};
pub use axum::routing::{get, post};
pub use axum::{Json, Router};
pub use base64::engine::general_purpose::STANDARD;
pub use base64::Engine;
pub use paxid_learner::{app, AppState, Config};
pub use serde_json::json;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::oneshot;

// ---- learner -------------------------------------------------------------

/// A learner serving on 127.0.0.1 with its store in `dir`.
pub struct TestLearner {
    pub state: AppState,
    pub url: String,
    /// Kept for pushes: building a client loads the system's CA roots.
    pub http: reqwest::Client,
    pub stop: Option<oneshot::Sender<()>>,
    pub server: tokio::task::JoinHandle<()>,
    /// The acceptor that confirms what `push` sends, for learners started
    /// with `no_acceptors()` (a push alone releases nothing).
    pub voter: Option<StubAcceptor>,
}

pub fn test_config(dir: &Path, acceptors: Vec<String>) -> Config {
    let mut config = Config::new("127.0.0.1:0", dir, acceptors);
    config.allow_private_webhooks = true;
    config.retry_initial = Duration::from_millis(20);
    config.retry_max = Duration::from_millis(200);
    config.pull_interval = Duration::from_millis(30);
    config.progress_interval = Duration::from_millis(50);
    config
}

/// Acceptors nobody listens on: learning comes from pushes only.
/// For tests that feed slots with `TestLearner::push`: `start_learner`
/// puts one stub acceptor in its place that votes for whatever is pushed.
pub fn no_acceptors() -> Vec<String> {
    vec!["http://127.0.0.1:9".to_owned()]
}

pub async fn start_learner(mut config: Config) -> TestLearner {
    let mut voter = None;
    if config.acceptors == no_acceptors() {
        let (stub, url) = StubAcceptor::start().await;
        config.acceptors = vec![url];
        voter = Some(stub);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // A store just closed by a previous learner in this process may still be
    // held for a moment by a task being torn down.
    let deadline = Instant::now() + Duration::from_secs(5);
    let state = loop {
        match AppState::start(config.clone()) {
            Ok(state) => break state,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("learner does not start: {error}"),
        }
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let router = app(state.clone());
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    TestLearner {
        state,
        url: format!("http://{addr}"),
        http: client(),
        stop: Some(stop),
        server,
        voter,
    }
}

impl TestLearner {
    pub async fn stop(mut self) {
        self.state.shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
        self.server.abort();
    }

    /// The leader's push of `slots`; a learner started with `no_acceptors()`
    /// also gets them voted (chosen) by its stub acceptor first, as the
    /// acceptors hold every slot a leader pushes.
    pub async fn push(&self, slots: Vec<Proposal>) {
        if let Some(voter) = &self.voter {
            for proposal in &slots {
                voter.vote(proposal.slot, 1, proposal.value.clone(), true);
            }
        }
        let response = self
            .http
            .post(format!("{}/v1/chosen", self.url))
            .json(&ChosenPush { slots, epoch: 0 })
            .send()
            .await
            .expect("push");
        assert_eq!(response.status(), 204);
    }

    pub async fn subscribe(&self, body: serde_json::Value) -> SubscriptionCreated {
        let response = client()
            .post(format!("{}/v1/subscriptions", self.url))
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        response.json().await.expect("created body")
    }

    pub async fn view(&self, id: &str) -> SubscriptionView {
        let response = client()
            .get(format!("{}/v1/subscriptions/{id}", self.url))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        response.json().await.expect("view")
    }

    pub async fn wait_learned(&self, below: u64) {
        let state = self.state.clone();
        wait_for(&format!("learned_below to reach {below}"), || {
            state.learning().learned_below() >= below
        })
        .await;
    }
}

pub fn client() -> reqwest::Client {
    paxid_client::install_tls_provider();
    reqwest::Client::new()
}

/// Polls `condition` until it holds, failing the test after 10 s.
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn alloc(sequence: &str, id: u64, count: u64) -> wire::Allocation {
    wire::Allocation {
        sequence: sequence.to_owned(),
        id,
        count,
    }
}

pub fn slot(slot: u64, allocations: Vec<wire::Allocation>) -> Proposal {
    let value = if allocations.is_empty() {
        wire::Value::Noop
    } else {
        wire::Value::Allocations {
            allocations,
            keys: Vec::new(),
        }
    };
    Proposal { slot, value }
}

/// Slot `s` allocates IDs `s*10+1 ..= s*10+10` of `default`.
pub fn default_slots(range: std::ops::Range<u64>) -> Vec<Proposal> {
    range
        .map(|s| slot(s, vec![alloc("default", s * 10 + 1, 10)]))
        .collect()
}

// ---- subscriber ----------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    pub fn message(&self) -> WebhookMessage {
        serde_json::from_slice(&self.body).expect("webhook body parses")
    }

    pub fn slots(&self) -> Vec<u64> {
        self.message().data.slots.iter().map(|s| s.slot).collect()
    }
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
        }
    }
}

/// A real HTTP server that records every webhook and answers from a script
/// (then with `default` once the script is used up).
#[derive(Clone)]
pub struct Subscriber {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub script: Arc<Mutex<VecDeque<Reply>>>,
    pub default: Arc<Mutex<Reply>>,
}

impl Subscriber {
    pub async fn start() -> Subscriber {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let subscriber = Subscriber {
            url: format!("http://{addr}/hook"),
            received: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(Reply::status(200))),
        };
        let router = Router::new().fallback(record).with_state(subscriber.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        subscriber
    }

    pub fn set_default(&self, reply: Reply) {
        *self.default.lock().expect("lock") = reply;
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().expect("lock").extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Requests answered 2xx, i.e. the deliveries, in arrival order.
    pub fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }
}

pub async fn record(State(sub): State<Subscriber>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    sub.received.lock().expect("lock").push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    });
    let scripted = sub.script.lock().expect("lock").pop_front();
    let reply = scripted.unwrap_or_else(|| sub.default.lock().expect("lock").clone());
    let mut response = StatusCode::from_u16(reply.status)
        .expect("status")
        .into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// A verifier written apart from `signing.rs`: HMAC-SHA256 over
/// `id.timestamp.body` with the base64-decoded secret, compared in constant
/// time by `hmac`.
pub fn verify(secret: &str, received: &Received) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(received.header("webhook-id").as_bytes());
    mac.update(b".");
    mac.update(received.header("webhook-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    let signature = received.header("webhook-signature");
    let Some(encoded) = signature.strip_prefix("v1,") else {
        return false;
    };
    let Ok(bytes) = STANDARD.decode(encoded) else {
        return false;
    };
    !bytes.is_empty() && mac.verify_slice(&bytes).is_ok()
}

/// Slots delivered to a subscriber (2xx answered), with their allocations,
/// checking order and signatures on the way.
pub fn delivered(subscriber: &Subscriber, secret: &str) -> BTreeMap<u64, Vec<wire::Allocation>> {
    let mut out = BTreeMap::new();
    let mut last = None;
    for received in subscriber.received() {
        assert!(
            verify(secret, &received),
            "bad signature on {}",
            received.header("webhook-id")
        );
        for webhook_slot in received.message().data.slots {
            // Retries resend the same slots; anything else must move forward.
            if out.contains_key(&webhook_slot.slot) {
                continue;
            }
            assert!(
                last.is_none_or(|l| webhook_slot.slot > l),
                "slot {} out of order",
                webhook_slot.slot
            );
            last = Some(webhook_slot.slot);
            out.insert(webhook_slot.slot, webhook_slot.allocations);
        }
    }
    out
}

// ---- stub acceptors -------------------------------------------------------

/// An acceptor's `/v1/log`, `/v1/status`, `/v1/snapshot` and progress
/// endpoint, serving a fixed log (and the configuration it moved to).
#[derive(Clone)]
pub struct StubAcceptor {
    pub log: Arc<Mutex<LogResponse>>,
    pub progress: Arc<Mutex<Vec<(String, u64, String)>>>,
    pub polls: Arc<std::sync::atomic::AtomicUsize>,
    /// What `/v1/status` reports as `configuration` (None in epoch 0).
    pub configuration: Arc<Mutex<Option<wire::Configuration>>>,
    /// What `/v1/snapshot` serves.
    pub snapshot: Arc<Mutex<wire::Snapshot>>,
    /// `/v1/status` answers 503 while set.
    pub status_fails: Arc<std::sync::atomic::AtomicBool>,
    /// What `/v1/status` reports as `node_uuid`, if anything.
    pub node_uuid: Arc<Mutex<Option<String>>>,
}

#[derive(serde::Deserialize)]
pub struct LogQuery {
    pub from: u64,
    pub limit: usize,
}

impl StubAcceptor {
    pub async fn start() -> (StubAcceptor, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        StubAcceptor::start_on(listener)
    }

    pub fn start_on(listener: tokio::net::TcpListener) -> (StubAcceptor, String) {
        let stub = StubAcceptor {
            log: Arc::new(Mutex::new(LogResponse {
                compacted_below: 0,
                chosen_below: 0,
                entries: vec![],
                node_uuid: None,
            })),
            progress: Arc::default(),
            polls: Arc::default(),
            configuration: Arc::default(),
            snapshot: Arc::new(Mutex::new(wire::Snapshot {
                below: 0,
                counters: BTreeMap::new(),
            })),
            status_fails: Arc::default(),
            node_uuid: Arc::default(),
        };
        let router = Router::new()
            .route("/v1/log", get(stub_log))
            .route("/v1/status", get(stub_status))
            .route("/v1/snapshot", get(stub_snapshot))
            .route("/v1/learners/{id}/progress", post(stub_progress))
            .with_state(stub.clone());
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (stub, format!("http://{addr}"))
    }

    pub fn vote(&self, slot: u64, round: u64, value: wire::Value, chosen: bool) {
        self.vote_in(0, slot, round, value, chosen);
    }

    /// A vote under a ballot of `epoch`.
    pub fn vote_in(&self, epoch: u64, slot: u64, round: u64, value: wire::Value, chosen: bool) {
        let entry = Entry {
            slot,
            ballot: wire::Ballot {
                epoch,
                round,
                node: 1,
            },
            value,
            chosen,
        };
        let mut log = self.log.lock().expect("lock");
        log.entries.retain(|e| e.slot != slot);
        log.entries.push(entry);
        log.entries.sort_by_key(|e| e.slot);
    }

    pub fn last_progress(&self) -> Option<(String, u64, String)> {
        self.progress.lock().expect("lock").last().cloned()
    }

    pub fn polls(&self) -> usize {
        self.polls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Moved into `configuration`, with everything below `below` compacted
    /// into a snapshot whose counters are `counters`.
    pub fn moved(&self, configuration: Option<&wire::Configuration>, below: u64, counters: &[(&str, u64)]) {
        *self.configuration.lock().expect("lock") = configuration.cloned();
        self.compact(below, counters);
    }

    pub fn compact(&self, below: u64, counters: &[(&str, u64)]) {
        let mut log = self.log.lock().expect("lock");
        log.compacted_below = below;
        log.entries.retain(|e| e.slot >= below);
        *self.snapshot.lock().expect("lock") = wire::Snapshot {
            below,
            counters: counters.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect(),
        };
    }
}

pub async fn stub_status(State(stub): State<StubAcceptor>) -> Response {
    if stub.status_fails.load(std::sync::atomic::Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    // A real acceptor reports more; the learner reads `configuration` only.
    let compacted_below = stub.log.lock().expect("lock").compacted_below;
    let mut status = json!({"state": "voting", "compacted_below": compacted_below});
    if let Some(configuration) = stub.configuration.lock().expect("lock").clone() {
        status["configuration"] = serde_json::to_value(configuration).expect("json");
    }
    if let Some(node_uuid) = stub.node_uuid.lock().expect("lock").clone() {
        status["node_uuid"] = json!(node_uuid);
    }
    Json(status).into_response()
}

pub async fn stub_snapshot(State(stub): State<StubAcceptor>) -> Json<wire::Snapshot> {
    Json(stub.snapshot.lock().expect("lock").clone())
}

pub async fn stub_acceptors(n: usize) -> (Vec<StubAcceptor>, Vec<String>) {
    let mut stubs = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..n {
        let (stub, url) = StubAcceptor::start().await;
        stubs.push(stub);
        urls.push(url);
    }
    (stubs, urls)
}

/// A configuration seating `urls`, members 1, 2, ... in order.
pub fn configuration(epoch: u64, urls: &[String]) -> wire::Configuration {
    wire::Configuration {
        epoch,
        seats: urls
            .iter()
            .enumerate()
            .map(|(i, url)| wire::Seat {
                url: url.clone(),
                node_uuid: format!("00000000-0000-0000-0000-{:012x}", i + 1),
            })
            .collect(),
    }
}

pub fn stop_sign(configuration: &wire::Configuration) -> wire::Value {
    wire::Value::Reconfigure {
        configuration: configuration.clone(),
    }
}

pub fn acceptor_set(epoch: u64, urls: &[String]) -> paxid_learner::learn::AcceptorSet {
    paxid_learner::learn::AcceptorSet {
        epoch,
        urls: urls.to_vec().into(),
    }
}

pub async fn metrics_text(learner: &TestLearner) -> String {
    client()
        .get(format!("{}/metrics", learner.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

pub async fn stub_log(State(stub): State<StubAcceptor>, Query(query): Query<LogQuery>) -> Json<LogResponse> {
    stub.polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let log = stub.log.lock().expect("lock").clone();
    let entries = log
        .entries
        .iter()
        .filter(|e| e.slot >= query.from)
        .take(query.limit)
        .cloned()
        .collect();
    Json(LogResponse { entries, ..log })
}

pub async fn stub_progress(
    State(stub): State<StubAcceptor>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    Json(progress): Json<LearnerProgress>,
) -> StatusCode {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    stub.progress
        .lock()
        .expect("lock")
        .push((id, progress.learned_below, auth));
    StatusCode::NO_CONTENT
}

pub fn value(sequence: &str, id: u64) -> wire::Value {
    wire::Value::Allocations {
        allocations: vec![alloc(sequence, id, 1)],
        keys: Vec::new(),
    }
}

// ---- independent signature check -----------------------------------------

/// Verifies a delivered webhook with the PyPI `standardwebhooks` package
/// (1.1.0), an implementation independent of ours. Skips loudly if Python
/// or the package is missing (`pip install standardwebhooks==1.1.0`).
pub fn python_verifies(secret: &str, received: &Received) {
    let script = r#"
import json, sys
try:
    from standardwebhooks.webhooks import Webhook
except ImportError:
    sys.exit(3)
case = json.load(sys.stdin)
Webhook(case["secret"]).verify(case["body"], case["headers"])
print("verified")
"#;
    let case = json!({
        "secret": secret,
        "body": String::from_utf8(received.body.to_vec()).expect("utf8 body"),
        "headers": {
            "webhook-id": received.header("webhook-id"),
            "webhook-timestamp": received.header("webhook-timestamp"),
            "webhook-signature": received.header("webhook-signature"),
        },
    });
    let child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED standardwebhooks check: python3 is not installed");
        return;
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(case.to_string().as_bytes()).expect("write case");
    }
    let output = child.wait_with_output().expect("python3 runs");
    if output.status.code() == Some(3) {
        eprintln!(
            "SKIPPED standardwebhooks check: python3 cannot import standardwebhooks \
             (pip install standardwebhooks==1.1.0)"
        );
        return;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "standardwebhooks rejected our signature: {stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "verified");
}
