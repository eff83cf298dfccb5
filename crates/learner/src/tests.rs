//! Service tests over real TCP: the learner's API, learning from pushes and
//! from acceptors' logs, and delivery to a real HTTP subscriber.
//!
//! Acceptors are small stub servers serving `/v1/log` (the real ones are
//! exercised by the end-to-end tests in `tests/`); the subscriber is a real
//! axum server; the learner is the real one with RocksDB in a temp dir.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::internal::{self as wire, ChosenPush, Entry, LearnerProgress, LogResponse, Proposal};
use api::learner::{SubscriptionCreated, SubscriptionList, SubscriptionView, WebhookMessage};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::oneshot;

use crate::{app, AppState, Config};

// ---- harness -----------------------------------------------------------

/// A learner serving on 127.0.0.1 with its store in `dir`.
struct TestLearner {
    state: AppState,
    url: String,
    /// Kept for pushes: building a client loads the system's CA roots.
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    /// The acceptor that confirms what `push` sends, for learners started
    /// with `no_acceptors()` (a push alone releases nothing).
    voter: Option<StubAcceptor>,
}

fn test_config(dir: &Path, acceptors: Vec<String>) -> Config {
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
fn no_acceptors() -> Vec<String> {
    vec!["http://127.0.0.1:9".to_owned()]
}

async fn start_learner(mut config: Config) -> TestLearner {
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
    async fn stop(mut self) {
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
    async fn push(&self, slots: Vec<Proposal>) {
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

    async fn subscribe(&self, body: serde_json::Value) -> SubscriptionCreated {
        let response = client()
            .post(format!("{}/v1/subscriptions", self.url))
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        response.json().await.expect("created body")
    }

    async fn view(&self, id: &str) -> SubscriptionView {
        let response = client()
            .get(format!("{}/v1/subscriptions/{id}", self.url))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        response.json().await.expect("view")
    }

    async fn wait_learned(&self, below: u64) {
        let state = self.state.clone();
        wait_for(&format!("learned_below to reach {below}"), || {
            state.learning().learned_below() >= below
        })
        .await;
    }
}

fn client() -> reqwest::Client {
    paxid_client::install_tls_provider();
    reqwest::Client::new()
}

/// Polls `condition` until it holds, failing the test after 10 s.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn alloc(sequence: &str, id: u64, count: u64) -> wire::Allocation {
    wire::Allocation {
        sequence: sequence.to_owned(),
        id,
        count,
    }
}

fn slot(slot: u64, allocations: Vec<wire::Allocation>) -> Proposal {
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
fn default_slots(range: std::ops::Range<u64>) -> Vec<Proposal> {
    range
        .map(|s| slot(s, vec![alloc("default", s * 10 + 1, 10)]))
        .collect()
}

// ---- subscriber --------------------------------------------------------

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    fn message(&self) -> WebhookMessage {
        serde_json::from_slice(&self.body).expect("webhook body parses")
    }

    fn slots(&self) -> Vec<u64> {
        self.message().data.slots.iter().map(|s| s.slot).collect()
    }
}

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
        }
    }
}

/// A real HTTP server that records every webhook and answers from a script
/// (then with `default` once the script is used up).
#[derive(Clone)]
struct Subscriber {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
}

impl Subscriber {
    async fn start() -> Subscriber {
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

    fn set_default(&self, reply: Reply) {
        *self.default.lock().expect("lock") = reply;
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().expect("lock").extend(replies);
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Requests answered 2xx, i.e. the deliveries, in arrival order.
    fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }
}

async fn record(State(sub): State<Subscriber>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
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
fn verify(secret: &str, received: &Received) -> bool {
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
fn delivered(subscriber: &Subscriber, secret: &str) -> BTreeMap<u64, Vec<wire::Allocation>> {
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

// ---- subscription API --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_crud() {
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let http = client();

    let created = learner
        .subscribe(json!({"url": "http://127.0.0.1:1/hook", "sequences": ["a", "b", "a"]}))
        .await;
    assert!(created.id.starts_with("sub_"));
    let key = created.secret.strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(STANDARD.decode(key).expect("base64").len(), 32);

    let list = http
        .get(format!("{}/v1/subscriptions", learner.url))
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), 200);
    let text = list.text().await.expect("text");
    assert!(
        !text.contains(&created.secret),
        "the secret is shown only at creation"
    );
    let list: SubscriptionList = serde_json::from_str(&text).expect("list body");
    assert_eq!(list.subscriptions.len(), 1);

    let view = learner.view(&created.id).await;
    assert_eq!(view.url, "http://127.0.0.1:1/hook");
    assert_eq!(
        view.sequences,
        Some(vec!["a".to_owned(), "b".to_owned()]),
        "duplicates folded"
    );
    assert_eq!(view.state, "active");
    assert_eq!(view.delivered_below, 0);

    let enabled = http
        .post(format!("{}/v1/subscriptions/{}/enable", learner.url, created.id))
        .send()
        .await;
    assert_eq!(
        enabled.expect("enable").status(),
        200,
        "enabling an active subscription is a no-op"
    );

    let replay = http
        .post(format!("{}/v1/subscriptions/{}/replay", learner.url, created.id))
        .json(&json!({"from_slot": 5}))
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), 422, "replay cannot move the cursor forward");

    let status: api::learner::LearnerStatus = http
        .get(format!("{}/v1/status", learner.url))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status.subscriptions.len(), 1);

    let deleted = http
        .delete(format!("{}/v1/subscriptions/{}", learner.url, created.id))
        .send()
        .await;
    assert_eq!(deleted.expect("delete").status(), 204);
    let gone = http
        .get(format!("{}/v1/subscriptions/{}", learner.url, created.id))
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), 404);
    assert_eq!(gone.headers()["content-type"], "application/problem+json");
    let again = http
        .delete(format!("{}/v1/subscriptions/{}", learner.url, created.id))
        .send()
        .await;
    assert_eq!(again.expect("delete").status(), 404);
    for path in ["enable", "replay"] {
        let response = http
            .post(format!("{}/v1/subscriptions/nope/{path}", learner.url))
            .json(&json!({"from_slot": 0}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 404, "{path}");
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let http = client();
    let long_name = "x".repeat(65);
    let many: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
    let cases: Vec<(serde_json::Value, u16)> = vec![
        (json!({"url": "not a url"}), 422),
        (json!({"url": "ftp://example.com/x"}), 422),
        (json!({"url": "http://user:pw@example.com/x"}), 422),
        (json!({"url": "file:///etc/passwd"}), 422),
        (
            json!({"url": format!("http://example.com/{}", "a".repeat(3000))}),
            422,
        ),
        (json!({"url": "http://example.com/", "sequences": []}), 422),
        (json!({"url": "http://example.com/", "sequences": ["a b"]}), 422),
        (
            json!({"url": "http://example.com/", "sequences": [long_name]}),
            422,
        ),
        (json!({"url": "http://example.com/", "sequences": many}), 422),
        (json!({"url": "http://example.com/", "color": "red"}), 422),
        (json!({"url": 5}), 422),
        (json!({}), 422),
    ];
    for (body, status) in cases {
        let response = http
            .post(format!("{}/v1/subscriptions", learner.url))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
    }
    let not_json = http
        .post(format!("{}/v1/subscriptions", learner.url))
        .header("content-type", "text/plain")
        .body("url=x")
        .send()
        .await
        .expect("post");
    assert_eq!(not_json.status(), 415);
    let malformed = http
        .post(format!("{}/v1/subscriptions", learner.url))
        .header("content-type", "application/json")
        .body("{\"url\":")
        .send()
        .await
        .expect("post");
    assert_eq!(malformed.status(), 400);
    let bad_push = http
        .post(format!("{}/v1/chosen", learner.url))
        .json(
            &json!({"slots": [{"slot": 0, "value": {"kind": "allocations", "allocations": [
            {"sequence": "no spaces", "id": 1, "count": 1}]}}]}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(bad_push.status(), 422);

    let list: SubscriptionList = http
        .get(format!("{}/v1/subscriptions", learner.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(list.subscriptions.is_empty(), "nothing stored: {list:?}");
    assert_eq!(
        learner.state.learning().learned_below(),
        0,
        "the bad push changed nothing"
    );
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_webhook_targets_are_refused_without_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.allow_private_webhooks = false;
    let learner = start_learner(config).await;
    let http = client();
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let response = http
            .post(format!("{}/v1/subscriptions", learner.url))
            .json(&json!({"url": url}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 422, "{url}");
        let problem: api::problem::Problem = response.json().await.expect("problem");
        let detail = problem.detail.unwrap_or_default();
        assert!(
            detail.contains("may not target") && detail.contains("--allow-private-webhooks"),
            "{detail}"
        );
    }
    let list: SubscriptionList = http
        .get(format!("{}/v1/subscriptions", learner.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(list.subscriptions.is_empty());
    learner.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    learner.subscribe(json!({"url": "http://10.0.0.1/hook"})).await;
    learner.stop().await;
}

/// A name that passes registration but resolves to loopback is refused at
/// connect time: nothing reaches the server behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
    let subscriber = Subscriber::start().await;
    let port = subscriber
        .url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .expect("port")
        .to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.allow_private_webhooks = false;
    let learner = start_learner(config).await;
    // `localhost.` variants are refused by name; a name under a public
    // suffix that resolves to 127.0.0.1 is what rebinding looks like. The
    // resolver only sees names, so use one from /etc/hosts if present.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let Some(name) = hosts
        .lines()
        .filter(|l| l.starts_with("127.") || l.starts_with("::1"))
        .flat_map(|l| l.split_whitespace().skip(1))
        .find(|n| !n.contains("localhost") && !n.starts_with('#'))
    else {
        eprintln!("SKIPPED: /etc/hosts has no non-localhost name for loopback");
        learner.stop().await;
        return;
    };
    let created = learner
        .subscribe(json!({"url": format!("http://{name}:{port}/hook")}))
        .await;
    learner.push(default_slots(0..1)).await;
    wait_for("the subscription to be failing", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.state == "failing")
            .unwrap_or(false)
    })
    .await;
    assert_eq!(
        subscriber.count(),
        0,
        "the guarded resolver let a loopback connection through"
    );
    learner.stop().await;
}

/// Issue 15, scoped credentials: the cluster token guards the internal
/// routes only; the subscription API is open until a subscription token is
/// set, and then takes any of its tokens (rotation) and never the cluster's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_takes_its_own_tokens_and_the_probes_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.cluster_token = service::Tokens::new(&["s3cret,older".into()], None);
    let learner = start_learner(config.clone()).await;
    let http = client();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{}{path}", learner.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/v1/status", None).await.expect("get").status(), 401);
    for token in ["s3cret", "older"] {
        assert_eq!(get("/v1/status", Some(token)).await.expect("get").status(), 200);
    }
    assert_eq!(
        get("/v1/subscriptions", None).await.expect("get").status(),
        200,
        "no subscription token: that scope is open"
    );
    let push = http
        .post(format!("{}/v1/chosen", learner.url))
        .json(&json!({"slots": []}))
        .send()
        .await;
    assert_eq!(push.expect("push").status(), 401);
    for path in ["/livez", "/healthz", "/readyz", "/metrics"] {
        let response = http
            .get(format!("{}{path}", learner.url))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "{path}");
    }
    learner.stop().await;

    // With subscription tokens: any of them, and not the cluster's.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.cluster_token = service::Tokens::new(&["s3cret".into()], None);
    config.subscription_token = service::Tokens::new(&["sub-new".into(), "sub-old".into()], None);
    let learner = start_learner(config).await;
    let get = |token: Option<&str>| {
        let mut request = http.get(format!("{}/v1/subscriptions", learner.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for (token, expected) in [
        (None, 401),
        (Some("s3cret"), 401),
        (Some("sub-new"), 200),
        (Some("sub-old"), 200),
    ] {
        assert_eq!(get(token).await.expect("get").status(), expected, "{token:?}");
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_subscriptions_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.subscriptions_max = 2;
    let learner = start_learner(config).await;
    learner.subscribe(json!({"url": "http://127.0.0.1:1/a"})).await;
    learner.subscribe(json!({"url": "http://127.0.0.1:1/b"})).await;
    let response = client()
        .post(format!("{}/v1/subscriptions", learner.url))
        .json(&json!({"url": "http://127.0.0.1:1/c"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 409);
    learner.stop().await;
}

// ---- delivery ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_slot_in_order_in_batches() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.message_slots_max = 7;
    let learner = start_learner(config).await;
    let created = learner
        .subscribe(json!({"url": subscriber.url, "from_slot": 0}))
        .await;

    // Out of order and with a no-op: the learner releases them in order.
    let mut slots = default_slots(0..40);
    slots[13] = slot(13, vec![]);
    slots.reverse();
    learner.push(slots[..20].to_vec()).await;
    learner.push(slots[20..].to_vec()).await;
    learner.wait_learned(40).await;
    wait_for("every slot delivered", || {
        delivered(&subscriber, &created.secret).len() == 39
    })
    .await;

    let got = delivered(&subscriber, &created.secret);
    let expected: Vec<u64> = (0..40).filter(|s| *s != 13).collect();
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        expected,
        "no-op slot 13 left out, nothing else"
    );
    assert_eq!(got[&7], vec![alloc("default", 71, 10)]);
    let messages = subscriber.received();
    assert!(
        messages.len() < 39,
        "slots are batched: {} messages",
        messages.len()
    );
    for message in &messages {
        assert!(
            message.slots().len() <= 7,
            "at most --message-slots-max slots per message"
        );
        let body = message.message();
        assert_eq!(body.type_, "ids.allocated");
        assert!(
            body.timestamp.ends_with('Z') && body.timestamp.len() == 24,
            "{}",
            body.timestamp
        );
        assert_eq!(message.header("content-type"), "application/json");
        let slots = message.slots();
        let expected_id = format!("msg_{}_{}_{}", created.id, slots[0], slots[slots.len() - 1]);
        assert_eq!(message.header("webhook-id"), expected_id);
        let ts: u64 = message.header("webhook-timestamp").parse().expect("unix seconds");
        assert!(ts.abs_diff(crate::delivery::now_ms() / 1000) < 60);
    }
    let raw = String::from_utf8(messages[0].body.to_vec()).expect("utf8");
    assert!(
        raw.starts_with(r#"{"type":"ids.allocated","timestamp":""#),
        "{raw}"
    );
    assert!(raw
        .contains(r#""data":{"slots":[{"slot":0,"allocations":[{"sequence":"default","id":1,"count":10}]}"#));

    wait_for("the cursor to reach 40", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.delivered_below == 40 && v.lag_slots == 0)
            .unwrap_or(false)
    })
    .await;
    python_verifies(&created.secret, &messages[0]);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_respect_the_byte_limit() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.message_bytes_max = 600;
    let learner = start_learner(config).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..30)).await;
    wait_for("every slot delivered", || {
        delivered(&subscriber, &created.secret).len() == 30
    })
    .await;
    for message in subscriber.received() {
        assert!(message.body.len() <= 600, "{} bytes", message.body.len());
        assert!(
            message.slots().len() > 1,
            "the limit still lets several slots through"
        );
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_message_is_retried_with_the_same_id_and_body() {
    let subscriber = Subscriber::start().await;
    subscriber.script([Reply::status(500), Reply::status(503), Reply::status(429)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..3)).await;
    learner.wait_learned(3).await;
    wait_for("a first attempt", || subscriber.count() >= 1).await;
    // More slots learned while retrying must not change the message.
    learner.push(default_slots(3..6)).await;
    wait_for("all delivered", || {
        delivered(&subscriber, &created.secret).len() == 6
    })
    .await;

    let attempts = subscriber.received();
    let first = &attempts[0];
    for retry in &attempts[1..4] {
        assert_eq!(
            retry.header("webhook-id"),
            first.header("webhook-id"),
            "same id across retries"
        );
        assert_eq!(retry.body, first.body, "same body across retries");
        assert!(
            verify(&created.secret, retry),
            "each retry is signed with its own timestamp"
        );
    }
    assert_ne!(
        attempts[4].header("webhook-id"),
        first.header("webhook-id"),
        "the next message has a new id"
    );
    let view = learner.view(&created.id).await;
    assert_eq!(view.state, "active");
    assert_eq!(view.failing_since, None);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let subscriber = Subscriber::start().await;
    subscriber.script([Reply {
        status: 503,
        headers: vec![("retry-after", "1".to_owned())],
    }]);
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..1)).await;
    wait_for("delivery", || {
        delivered(&subscriber, &created.secret).len() == 1 && subscriber.count() == 2
    })
    .await;
    let attempts = subscriber.received();
    let gap = attempts[1].at - attempts[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?} despite Retry-After: 1"
    );
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_failures_and_are_not_followed() {
    let subscriber = Subscriber::start().await;
    let elsewhere = subscriber.url.replace("/hook", "/elsewhere");
    subscriber.set_default(Reply {
        status: 307,
        headers: vec![("location", elsewhere)],
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..1)).await;
    wait_for("three attempts", || subscriber.count() >= 3).await;
    assert!(
        subscriber.received().iter().all(|r| r.path == "/hook"),
        "a redirect was followed"
    );
    let view = learner.view(&created.id).await;
    assert_eq!(view.state, "failing");
    assert!(view.failing_since.is_some());
    assert_eq!(view.delivered_below, 0);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_and_enable_resumes() {
    let subscriber = Subscriber::start().await;
    subscriber.script([Reply::status(410)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..2)).await;
    wait_for("disabled", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.state == "disabled")
            .unwrap_or(false)
    })
    .await;
    let view = learner.view(&created.id).await;
    assert!(view.disabled_reason.unwrap_or_default().contains("410"));
    assert_eq!(view.delivered_below, 0);
    assert_eq!(view.lag_slots, 2);
    learner.push(default_slots(2..4)).await;
    learner.wait_learned(4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(subscriber.count(), 1, "a disabled subscription gets nothing");

    let enabled = client()
        .post(format!("{}/v1/subscriptions/{}/enable", learner.url, created.id))
        .send()
        .await
        .expect("enable");
    assert_eq!(enabled.status(), 200);
    wait_for("all delivered", || {
        delivered(&subscriber, &created.secret).len() == 4
    })
    .await;
    let attempts = subscriber.received();
    assert_eq!(
        attempts[1].header("webhook-id"),
        attempts[0].header("webhook-id"),
        "resumes the same message"
    );
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscriber_is_disabled_in_time_while_a_healthy_one_keeps_up() {
    let healthy = Subscriber::start().await;
    let failing = Subscriber::start().await;
    failing.set_default(Reply::status(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.disable_after_failing = Duration::from_millis(1500);
    let learner = start_learner(config).await;
    let good = learner.subscribe(json!({"url": healthy.url})).await;
    let bad = learner.subscribe(json!({"url": failing.url})).await;

    let started = Instant::now();
    for batch in 0..10u64 {
        learner.push(default_slots(batch * 5..batch * 5 + 5)).await;
        let healthy_sub = healthy.clone();
        let secret = good.secret.clone();
        wait_for("the healthy subscriber to keep up", move || {
            delivered(&healthy_sub, &secret).len() as u64 == batch * 5 + 5
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(learner.view(&bad.id).await.state, "failing");
    wait_for("the failing subscription to be disabled", || {
        learner
            .state
            .subscriptions()
            .get(&bad.id)
            .map(|v| v.state == "disabled")
            .unwrap_or(false)
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "disabled after {elapsed:?}"
    );
    let view = learner.view(&bad.id).await;
    assert!(view
        .disabled_reason
        .unwrap_or_default()
        .contains("failing continuously"));
    assert!(failing.count() > 3, "it was retried meanwhile");
    assert_eq!(learner.view(&good.id).await.lag_slots, 0);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_filters_select_allocations() {
    let only_a = Subscriber::start().await;
    let only_b = Subscriber::start().await;
    let all = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let a = learner
        .subscribe(json!({"url": only_a.url, "sequences": ["a"]}))
        .await;
    let b = learner
        .subscribe(json!({"url": only_b.url, "sequences": ["b"]}))
        .await;
    let everything = learner.subscribe(json!({"url": all.url})).await;
    learner
        .push(vec![
            slot(0, vec![alloc("a", 1, 5)]),
            slot(1, vec![alloc("b", 1, 2)]),
            slot(2, vec![alloc("a", 6, 1), alloc("b", 3, 1), alloc("c", 1, 1)]),
            slot(3, vec![alloc("c", 2, 1)]),
            slot(4, vec![]),
            slot(5, vec![alloc("b", 4, 4)]),
        ])
        .await;
    wait_for("all delivered", || delivered(&all, &everything.secret).len() == 5).await;
    wait_for("a delivered", || delivered(&only_a, &a.secret).len() == 2).await;
    wait_for("b delivered", || delivered(&only_b, &b.secret).len() == 3).await;
    let got_a = delivered(&only_a, &a.secret);
    assert_eq!(got_a[&0], vec![alloc("a", 1, 5)]);
    assert_eq!(got_a[&2], vec![alloc("a", 6, 1)]);
    let got_b = delivered(&only_b, &b.secret);
    assert_eq!(got_b.keys().copied().collect::<Vec<_>>(), vec![1, 2, 5]);
    assert_eq!(got_b[&2], vec![alloc("b", 3, 1)]);
    for (learner_view, below) in [(learner.view(&a.id).await, 6), (learner.view(&b.id).await, 6)] {
        wait_for("cursor past filtered slots", || {
            learner
                .state
                .subscriptions()
                .get(&learner_view.id)
                .map(|v| v.delivered_below == below)
                .unwrap_or(false)
        })
        .await;
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_sends_again_from_the_given_slot() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..5)).await;
    wait_for("delivered", || delivered(&subscriber, &created.secret).len() == 5).await;
    wait_for("cursor", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.delivered_below == 5)
            .unwrap_or(false)
    })
    .await;
    let before = subscriber.count();
    let response = client()
        .post(format!("{}/v1/subscriptions/{}/replay", learner.url, created.id))
        .json(&json!({"from_slot": 2}))
        .send()
        .await
        .expect("replay");
    assert_eq!(response.status(), 200);
    let view: SubscriptionView = response.json().await.expect("view");
    assert_eq!(view.delivered_below, 2);
    wait_for("replayed", || {
        subscriber.received()[before..]
            .iter()
            .flat_map(Received::slots)
            .collect::<Vec<_>>()
            == vec![2, 3, 4]
    })
    .await;
    learner.stop().await;
}

fn cursor_at(learner: &TestLearner, id: &str, slot: u64) -> bool {
    learner
        .state
        .subscriptions()
        .get(id)
        .is_ok_and(|view| view.delivered_below == slot)
}

/// The learned log is pruned `retain` slots below the slowest cursor, never
/// above it; replays and new subscriptions below the log's start are
/// refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_what_the_slowest_subscriber_needs() {
    let fast = Subscriber::start().await;
    let slow = Subscriber::start().await;
    slow.set_default(Reply::status(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.prune_interval = Duration::from_secs(3600); // pruned by hand below
    let learner = start_learner(config).await;
    let fast_sub = learner.subscribe(json!({"url": fast.url})).await;
    let slow_sub = learner.subscribe(json!({"url": slow.url})).await;
    learner.push(default_slots(0..20)).await;
    wait_for("fast cursor", || cursor_at(&learner, &fast_sub.id, 20)).await;
    let subscriptions = learner.state.subscriptions();
    assert_eq!(
        subscriptions.prune_log(5).expect("prune"),
        0,
        "the failing subscriber holds slot 0"
    );

    slow.set_default(Reply::status(204));
    wait_for("slow cursor", || cursor_at(&learner, &slow_sub.id, 20)).await;
    assert_eq!(subscriptions.prune_log(5).expect("prune"), 15);
    let replay = |from_slot: u64| {
        client()
            .post(format!("{}/v1/subscriptions/{}/replay", learner.url, slow_sub.id))
            .json(&json!({ "from_slot": from_slot }))
            .send()
    };
    let refused = replay(14).await.expect("replay");
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.expect("body").contains("pruned"));
    assert_eq!(
        learner.view(&slow_sub.id).await.delivered_below,
        20,
        "a refused replay changes nothing"
    );
    assert_eq!(replay(15).await.expect("replay").status(), 200);
    let create = client()
        .post(format!("{}/v1/subscriptions", learner.url))
        .json(&json!({"url": fast.url, "from_slot": 3}))
        .send()
        .await
        .expect("create");
    assert_eq!(create.status(), 422);
    learner.stop().await;
}

/// Kill the learner while a message is unacknowledged; the restarted one
/// resumes learning where it stopped and resends the same message id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_disk_with_the_same_message_ids() {
    let subscriber = Subscriber::start().await;
    subscriber.set_default(Reply::status(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..4)).await;
    learner.wait_learned(4).await;
    wait_for("an attempt", || subscriber.count() >= 1).await;
    let learner_id = learner.state.learner_id().to_owned();
    learner.stop().await;
    let first_id = subscriber.received()[0].header("webhook-id");

    subscriber.set_default(Reply::status(200));
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    assert_eq!(
        learner.state.learning().learned_below(),
        4,
        "learning resumes from the stored point"
    );
    assert_eq!(learner.state.learner_id(), learner_id, "the learner id is stable");
    learner.push(default_slots(4..8)).await;
    wait_for("all delivered", || {
        delivered(&subscriber, &created.secret).len() == 8
    })
    .await;
    let after: Vec<Received> = subscriber
        .received()
        .into_iter()
        .filter(|r| r.at > subscriber.received()[0].at)
        .collect();
    let resent = after
        .iter()
        .find(|r| r.slots().first() == Some(&0))
        .expect("slot 0 resent");
    assert_eq!(
        resent.header("webhook-id"),
        first_id,
        "same webhook-id after restart"
    );
    learner.stop().await;
}

// ---- learning from acceptors ---------------------------------------------

/// An acceptor's `/v1/log`, `/v1/status`, `/v1/snapshot` and progress
/// endpoint, serving a fixed log (and the configuration it moved to).
#[derive(Clone)]
struct StubAcceptor {
    log: Arc<Mutex<LogResponse>>,
    progress: Arc<Mutex<Vec<(String, u64, String)>>>,
    polls: Arc<std::sync::atomic::AtomicUsize>,
    /// What `/v1/status` reports as `configuration` (None in epoch 0).
    configuration: Arc<Mutex<Option<wire::Configuration>>>,
    /// What `/v1/snapshot` serves.
    snapshot: Arc<Mutex<wire::Snapshot>>,
    /// `/v1/status` answers 503 while set.
    status_fails: Arc<std::sync::atomic::AtomicBool>,
    /// What `/v1/status` reports as `node_uuid`, if anything.
    node_uuid: Arc<Mutex<Option<String>>>,
}

#[derive(serde::Deserialize)]
struct LogQuery {
    from: u64,
    limit: usize,
}

impl StubAcceptor {
    async fn start() -> (StubAcceptor, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        StubAcceptor::start_on(listener)
    }

    fn start_on(listener: tokio::net::TcpListener) -> (StubAcceptor, String) {
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

    fn vote(&self, slot: u64, round: u64, value: wire::Value, chosen: bool) {
        self.vote_in(0, slot, round, value, chosen);
    }

    /// A vote under a ballot of `epoch`.
    fn vote_in(&self, epoch: u64, slot: u64, round: u64, value: wire::Value, chosen: bool) {
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

    fn last_progress(&self) -> Option<(String, u64, String)> {
        self.progress.lock().expect("lock").last().cloned()
    }

    fn polls(&self) -> usize {
        self.polls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Moved into `configuration`, with everything below `below` compacted
    /// into a snapshot whose counters are `counters`.
    fn moved(&self, configuration: Option<&wire::Configuration>, below: u64, counters: &[(&str, u64)]) {
        *self.configuration.lock().expect("lock") = configuration.cloned();
        self.compact(below, counters);
    }

    fn compact(&self, below: u64, counters: &[(&str, u64)]) {
        let mut log = self.log.lock().expect("lock");
        log.compacted_below = below;
        log.entries.retain(|e| e.slot >= below);
        *self.snapshot.lock().expect("lock") = wire::Snapshot {
            below,
            counters: counters.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect(),
        };
    }
}

async fn stub_status(State(stub): State<StubAcceptor>) -> Response {
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

async fn stub_snapshot(State(stub): State<StubAcceptor>) -> Json<wire::Snapshot> {
    Json(stub.snapshot.lock().expect("lock").clone())
}

async fn stub_acceptors(n: usize) -> (Vec<StubAcceptor>, Vec<String>) {
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
fn configuration(epoch: u64, urls: &[String]) -> wire::Configuration {
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

fn stop_sign(configuration: &wire::Configuration) -> wire::Value {
    wire::Value::Reconfigure {
        configuration: configuration.clone(),
    }
}

fn acceptor_set(epoch: u64, urls: &[String]) -> crate::learn::AcceptorSet {
    crate::learn::AcceptorSet {
        epoch,
        urls: urls.to_vec().into(),
    }
}

async fn metrics_text(learner: &TestLearner) -> String {
    client()
        .get(format!("{}/metrics", learner.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

async fn stub_log(State(stub): State<StubAcceptor>, Query(query): Query<LogQuery>) -> Json<LogResponse> {
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

async fn stub_progress(
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

fn value(sequence: &str, id: u64) -> wire::Value {
    wire::Value::Allocations {
        allocations: vec![alloc(sequence, id, 1)],
        keys: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learns_from_a_majority_of_one_ballot_or_a_chosen_mark_and_reports_progress() {
    let mut stubs = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let (stub, url) = StubAcceptor::start().await;
        stubs.push(stub);
        urls.push(url);
    }
    // Slot 0: a majority under ballot 1. Slot 1: two votes under different
    // ballots, not a majority. Slot 2: one acceptor marks it chosen.
    stubs[0].vote(0, 1, value("a", 1), false);
    stubs[1].vote(0, 1, value("a", 1), false);
    stubs[0].vote(1, 1, value("a", 2), false);
    stubs[1].vote(1, 2, value("a", 3), false);
    stubs[2].vote(2, 2, value("a", 4), true);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), urls);
    config.cluster_token = service::Tokens::new(&["tok".into()], None);
    let learner = start_learner(config).await;
    learner.wait_learned(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        learner.state.learning().learned_below(),
        1,
        "slot 1 has no majority of one ballot"
    );

    stubs[2].vote(1, 2, value("a", 3), false);
    learner.wait_learned(3).await;
    let log = learner.state.inner.store.read_log(0, 3, 3).expect("read");
    let values: Vec<wire::Value> = log.iter().map(|(_, v)| wire::Value::from(v)).collect();
    assert_eq!(
        values,
        vec![value("a", 1), value("a", 3), value("a", 4)],
        "ballot 2's value won slot 1"
    );

    let learner_id = learner.state.learner_id().to_owned();
    for stub in &stubs {
        let stub = stub.clone();
        wait_for("progress reported", move || {
            stub.last_progress().is_some_and(|(_, below, _)| below == 3)
        })
        .await;
    }
    for stub in &stubs {
        let (id, _, auth) = stub.last_progress().expect("reported");
        assert_eq!(id, learner_id);
        assert_eq!(auth, "Bearer tok");
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_makes_the_learner_read_the_acceptors_at_once() {
    let (stub, url) = StubAcceptor::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), vec![url]);
    config.pull_interval = Duration::from_secs(3600);
    let learner = start_learner(config).await;
    let polls = stub.polls.clone();
    wait_for("the first poll", move || {
        polls.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    // The slots appear after the first poll; the next regular poll is an
    // hour away, so only the push below can make the learner read them.
    stub.vote(0, 1, value("a", 1), true);
    stub.vote(1, 1, value("a", 2), true);
    stub.vote(2, 1, value("a", 3), true);
    learner
        .push(vec![
            slot(1, vec![alloc("a", 2, 1)]),
            slot(2, vec![alloc("a", 3, 1)]),
        ])
        .await;
    learner.wait_learned(3).await;
    learner.stop().await;
}

/// A push is a hint (issue 12): whoever holds the cluster token can post
/// to `/v1/chosen`, so a pushed value is never released on its own word.
/// The learner releases what its acceptors confirm, and a push only makes
/// it read them now. (A push listing slot 50 twice with two values used to
/// stop the learning task; later the first value pushed was kept.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_value_the_acceptors_do_not_confirm_is_never_released() {
    let (stub, url) = StubAcceptor::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), vec![url])).await;
    let subscriber = Subscriber::start().await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    // Forged: slots the acceptors never voted for, and slot 1 twice.
    let mut forged = default_slots(0..3);
    forged.push(slot(1, vec![alloc("default", 9001, 5)]));
    learner.push(forged).await;
    let polls = stub.polls();
    let polled = stub.polls.clone();
    wait_for("two polls after the push", move || {
        polled.load(std::sync::atomic::Ordering::SeqCst) >= polls + 2
    })
    .await;
    assert_eq!(
        learner.state.learning().learned_below(),
        0,
        "nothing pushed is released"
    );

    // What the acceptors did choose is learned, and only that.
    stub.vote(0, 1, value("default", 77), false);
    stub.vote(1, 1, value("default", 78), true);
    learner.wait_learned(2).await;
    let log = learner.state.inner.store.read_log(0, 2, 2).expect("read");
    let firsts: Vec<u64> = log.iter().map(|(_, v)| v.allocations()[0].first).collect();
    assert_eq!(
        firsts,
        vec![77, 78],
        "the acceptors' values, not the pushed ones: {log:?}"
    );
    wait_for("both slots delivered", || {
        delivered(&subscriber, &created.secret).len() == 2
    })
    .await;
    let ids: Vec<u64> = delivered(&subscriber, &created.secret)
        .values()
        .flatten()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec![77, 78]);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_above_the_learner_is_reported_as_lost_coverage() {
    let mut stubs = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let (stub, url) = StubAcceptor::start().await;
        stub.log.lock().expect("lock").compacted_below = 10;
        stubs.push(stub);
        urls.push(url);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), urls)).await;
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = http
            .get(format!("{}/readyz", learner.url))
            .send()
            .await
            .expect("readyz");
        if response.status() == 503 {
            let problem: api::problem::Problem = response.json().await.expect("problem");
            assert!(problem.detail.unwrap_or_default().contains("lost coverage"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never reported the lost coverage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = http
        .get(format!("{}/metrics", learner.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await;
    // The recorder is process-wide and other tests' learners set the same
    // gauge, so only its presence is checked here; its value is checked by
    // the end-to-end tests against a learner process of its own.
    assert!(metrics.expect("text").contains("paxid_learner_coverage_lost"));

    // One acceptor still holding slot 0 is enough to learn again.
    stubs[0].log.lock().expect("lock").compacted_below = 0;
    wait_for("ready again", || learner.state.ready().is_ok()).await;
    learner.stop().await;
}

// ---- reconfiguration -----------------------------------------------------

/// Epoch 0 is read from three acceptors until the stop sign at slot 4,
/// which names two other acceptors; the learner delivers everything up to
/// it, then reads slots 5 on from the new acceptors only. The epoch-0 slots
/// above the stop sign are void: one marked chosen with another value, one
/// voted by every old acceptor; neither is ever delivered. After a restart
/// with the same (now stale) `--acceptors`, the learner still reads the new
/// acceptors: the epoch is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_sign_moves_the_learner_to_the_acceptors_it_names_and_a_restart_keeps_them() {
    let (old, old_urls) = stub_acceptors(3).await;
    let (new, new_urls) = stub_acceptors(2).await;
    let next = configuration(1, &new_urls);
    for s in 0..4 {
        for stub in &old[..2] {
            stub.vote(s, 1, value("a", s + 1), false);
        }
    }
    for stub in &old {
        stub.vote(4, 1, stop_sign(&next), true);
    }
    old[0].vote(5, 1, value("a", 900), true);
    for stub in &old {
        stub.vote(6, 1, value("a", 901), false);
    }
    new[0].vote_in(1, 5, 1, value("a", 6), true);
    for stub in &new {
        stub.vote_in(1, 6, 1, value("a", 7), false);
    }

    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), old_urls.clone())).await;
    let created = learner
        .subscribe(json!({"url": subscriber.url, "from_slot": 0}))
        .await;
    learner.wait_learned(7).await;
    assert_eq!(
        learner.state.learning().acceptor_set(),
        acceptor_set(1, &new_urls)
    );
    let recorded = learner
        .state
        .inner
        .store
        .configuration()
        .expect("read")
        .expect("recorded");
    assert_eq!(recorded.0, 5, "epoch 1 starts after the stop sign");
    assert_eq!(wire::Configuration::from(&recorded.1), next);
    wait_for("slots 0..=6 but the stop sign delivered", || {
        delivered(&subscriber, &created.secret).len() == 6
    })
    .await;
    let got = delivered(&subscriber, &created.secret);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3, 5, 6]);
    for (slot, allocations) in &got {
        assert_eq!(allocations, &vec![alloc("a", slot + 1, 1)], "slot {slot}");
    }
    for stub in &new {
        let stub = stub.clone();
        wait_for("progress reported to the new acceptors", move || {
            stub.last_progress().is_some_and(|(_, below, _)| below == 7)
        })
        .await;
    }
    assert!(
        metrics_text(&learner).await.contains(crate::metric::EPOCH),
        "the epoch gauge is exported"
    );
    // The old acceptors are not read any more (a poll under way at the
    // move may still land).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let polls: Vec<usize> = old.iter().map(StubAcceptor::polls).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(old.iter().map(StubAcceptor::polls).collect::<Vec<_>>(), polls);
    assert!(learner.state.ready().is_ok());
    learner.stop().await;

    new[1].vote_in(1, 7, 1, value("a", 8), true);
    old[0].vote(7, 1, value("a", 902), true);
    let polls: Vec<usize> = old.iter().map(StubAcceptor::polls).collect();
    let learner = start_learner(test_config(dir.path(), old_urls.clone())).await;
    assert_eq!(
        learner.state.learning().acceptor_set(),
        acceptor_set(1, &new_urls),
        "the stored epoch wins over --acceptors"
    );
    learner.wait_learned(8).await;
    wait_for("slot 7 delivered", || {
        delivered(&subscriber, &created.secret).contains_key(&7)
    })
    .await;
    assert_eq!(
        delivered(&subscriber, &created.secret)[&7],
        vec![alloc("a", 8, 1)]
    );
    assert_eq!(
        old.iter().map(StubAcceptor::polls).collect::<Vec<_>>(),
        polls,
        "the restarted learner never read the old acceptors"
    );
    learner.stop().await;
}

/// Every acceptor compacted past a new learner's slot 0. Two of them moved
/// to epoch 1 (seating a third, new acceptor) and hold its slots from 10;
/// the third old one stayed in epoch 0 with a snapshot at 8 that folded the
/// stop sign in. The learner takes a snapshot of a moved acceptor, records
/// the gap, adopts epoch 1 and learns the slots after it from the new
/// configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_behind_compaction_jumps_into_the_configuration_its_acceptors_moved_to() {
    let (old, old_urls) = stub_acceptors(3).await;
    let (added, added_urls) = stub_acceptors(1).await;
    let seats = vec![old_urls[0].clone(), old_urls[1].clone(), added_urls[0].clone()];
    let next = configuration(1, &seats);
    old[0].moved(Some(&next), 10, &[("a", 51)]);
    old[1].moved(Some(&next), 10, &[("a", 51)]);
    added[0].moved(Some(&next), 10, &[("a", 51)]);
    old[2].moved(None, 8, &[("a", 40)]);
    old[0].vote_in(1, 10, 1, value("a", 51), true);
    old[1].vote_in(1, 11, 1, value("a", 52), false);
    added[0].vote_in(1, 11, 1, value("a", 52), false);

    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), old_urls.clone())).await;
    learner.wait_learned(12).await;
    assert_eq!(learner.state.learning().acceptor_set(), acceptor_set(1, &seats));
    let gaps = learner.state.gaps().expect("gaps");
    assert_eq!(
        gaps,
        vec![api::learner::LearnerGap {
            from_slot: 0,
            below_slot: 10
        }]
    );
    let store = learner.state.inner.store.clone();
    assert_eq!(
        store.configuration().expect("read").map(|(from, _)| from),
        Some(10)
    );
    let log = store.read_log(0, 12, 12).expect("read");
    let values: Vec<wire::Value> = log.iter().map(|(_, v)| wire::Value::from(v)).collect();
    assert_eq!(values, vec![value("a", 51), value("a", 52)]);
    let counters = learner.state.counters().expect("counters");
    assert_eq!(
        counters.next_id(&paxos_core::SequenceName::parse("a").expect("name")),
        53
    );
    let stub = added[0].clone();
    wait_for("progress reported to the seated acceptor", move || {
        stub.last_progress().is_some_and(|(_, below, _)| below == 12)
    })
    .await;
    learner.stop().await;
}

/// As above, but the moved acceptors do not answer `/v1/status` at first,
/// so the learner takes the snapshot of the one left in epoch 0, which
/// folded the stop sign in: it jumps to slot 8 in epoch 0, where nobody
/// holds anything of epoch 0. Once the moved acceptors answer, it sees they
/// hold only epoch 1 from there and jumps into it, recording that gap too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_that_jumped_past_a_stop_sign_jumps_again_into_the_later_epoch() {
    let (old, old_urls) = stub_acceptors(3).await;
    let (added, added_urls) = stub_acceptors(1).await;
    let seats = vec![old_urls[0].clone(), old_urls[1].clone(), added_urls[0].clone()];
    let next = configuration(1, &seats);
    for stub in [&old[0], &old[1], &added[0]] {
        stub.moved(Some(&next), 10, &[("a", 51)]);
    }
    old[2].moved(None, 8, &[("a", 40)]);
    old[0].vote_in(1, 10, 1, value("a", 51), true);
    old[1].vote_in(1, 11, 1, value("a", 52), false);
    added[0].vote_in(1, 11, 1, value("a", 52), false);
    for stub in &old[..2] {
        stub.status_fails.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), old_urls.clone())).await;
    learner.wait_learned(8).await;
    assert_eq!(learner.state.learning().acceptor_set().epoch, 0);
    for stub in &old[..2] {
        stub.status_fails
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
    learner.wait_learned(12).await;
    assert_eq!(learner.state.learning().acceptor_set(), acceptor_set(1, &seats));
    let gap = |from_slot, below_slot| api::learner::LearnerGap {
        from_slot,
        below_slot,
    };
    assert_eq!(learner.state.gaps().expect("gaps"), vec![gap(0, 8), gap(8, 10)]);
    let log = learner.state.inner.store.read_log(0, 12, 12).expect("read");
    let values: Vec<wire::Value> = log.iter().map(|(_, v)| wire::Value::from(v)).collect();
    assert_eq!(values, vec![value("a", 51), value("a", 52)]);
    learner.stop().await;
}

/// A learner in epoch 0 at slot 5 whose acceptors moved to epoch 1 and
/// hold slot 5 in it (the stop sign was folded into their snapshot): it
/// follows epoch 1 from slot 5, with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_past_a_folded_stop_sign_follows_the_epoch_its_acceptors_hold_there() {
    let (stubs, urls) = stub_acceptors(2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), urls.clone())).await;
    let slots = default_slots(0..5);
    for stub in &stubs {
        for proposal in &slots {
            stub.vote(proposal.slot, 1, proposal.value.clone(), true);
        }
    }
    learner.push(slots).await;
    learner.wait_learned(5).await;

    let next = configuration(1, &urls);
    for stub in &stubs {
        stub.moved(Some(&next), 3, &[("default", 51)]);
        stub.vote_in(1, 5, 1, value("default", 51), false);
        stub.vote_in(1, 6, 1, value("default", 52), false);
    }
    learner.wait_learned(7).await;
    assert_eq!(learner.state.learning().acceptor_set(), acceptor_set(1, &urls));
    assert!(learner.state.gaps().expect("gaps").is_empty(), "nothing skipped");
    let store = learner.state.inner.store.clone();
    assert_eq!(
        store.configuration().expect("read").map(|(from, _)| from),
        Some(5)
    );
    let log = store.read_log(5, 7, 2).expect("read");
    let values: Vec<wire::Value> = log.iter().map(|(_, v)| wire::Value::from(v)).collect();
    assert_eq!(values, vec![value("default", 51), value("default", 52)]);
    learner.stop().await;
}

/// A push naming a bad configuration is refused with 422; a stop sign the
/// acceptors hold that does not name the next epoch is refused as a
/// conflict (the slots before it are learned); a good one moves the
/// learner to the acceptors it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signs_naming_the_wrong_epoch_are_refused() {
    let (stubs, urls) = stub_acceptors(1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let http = client();
    let mut duplicate = configuration(1, &[urls[0].clone(), urls[0].clone()]);
    duplicate.seats[1].node_uuid = "00000000-0000-0000-0000-000000000009".into();
    let bad = [
        configuration(0, &urls),
        configuration(1, &[]),
        configuration(1, &["ftp://127.0.0.1:1".to_owned()]),
        duplicate,
        wire::Configuration {
            epoch: 1,
            seats: vec![wire::Seat {
                url: urls[0].clone(),
                node_uuid: "not-a-uuid".into(),
            }],
        },
    ];
    for configuration in bad {
        let response = http
            .post(format!("{}/v1/chosen", learner.url))
            .json(&ChosenPush {
                slots: vec![Proposal {
                    slot: 0,
                    value: stop_sign(&configuration),
                }],
                epoch: 0,
            })
            .send()
            .await
            .expect("push");
        assert_eq!(response.status(), 422, "{configuration:?}");
    }

    let conflicts = |text: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with("paxid_learner_conflicts_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = conflicts(&metrics_text(&learner).await);
    let mut wrong_epoch = default_slots(0..1);
    wrong_epoch.push(Proposal {
        slot: 1,
        value: stop_sign(&configuration(2, &urls)),
    });
    learner.push(wrong_epoch).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while conflicts(&metrics_text(&learner).await) <= before {
        assert!(Instant::now() < deadline, "the refusal was never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        learner.state.learning().learned_below(),
        1,
        "slot 0 is taken, the stop sign after it is not"
    );
    assert_eq!(learner.state.learning().acceptor_set().epoch, 0);

    let next = configuration(1, &urls);
    let mut slots = default_slots(0..2);
    slots.push(Proposal {
        slot: 2,
        value: stop_sign(&next),
    });
    learner.push(slots).await;
    learner.wait_learned(3).await;
    assert_eq!(learner.state.learning().acceptor_set(), acceptor_set(1, &urls));
    stubs[0].vote_in(1, 3, 1, value("default", 31), true);
    learner.wait_learned(4).await;
    learner.stop().await;
}

/// With no acceptor answering for longer than `acceptors_silent_max`,
/// `/readyz` says so; learning keeps retrying and is ready again as soon
/// as one answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_acceptors_that_do_not_answer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), vec![format!("http://{addr}")]);
    config.acceptors_silent_max = Duration::from_millis(300);
    let learner = start_learner(config).await;
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = http
            .get(format!("{}/readyz", learner.url))
            .send()
            .await
            .expect("readyz");
        if response.status() == 503 {
            let problem: api::problem::Problem = response.json().await.expect("problem");
            let detail = problem.detail.unwrap_or_default();
            assert!(
                detail.contains("no acceptor of configuration epoch 0 has answered"),
                "{detail}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "readyz never reported the silence");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let (_stub, _) = StubAcceptor::start_on(listener);
    wait_for("ready again", || learner.state.ready().is_ok()).await;
    learner.stop().await;
}

// ---- independent signature check -----------------------------------------

/// Verifies a delivered webhook with the PyPI `standardwebhooks` package
/// (1.1.0), an implementation independent of ours. Skips loudly if Python
/// or the package is missing (`pip install standardwebhooks==1.1.0`).
fn python_verifies(secret: &str, received: &Received) {
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

#[test]
fn standardwebhooks_rejects_a_tampered_body() {
    // Proves the Python check can fail: a body changed after signing.
    let key =
        crate::signing::SigningKey::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("secret");
    let ts = crate::delivery::now_ms() / 1000;
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", "msg_x".parse().expect("value"));
    headers.insert("webhook-timestamp", ts.to_string().parse().expect("value"));
    headers.insert(
        "webhook-signature",
        key.sign("msg_x", ts, b"{\"a\":1}").parse().expect("value"),
    );
    let good = Received {
        path: "/".into(),
        headers: headers.clone(),
        body: Bytes::from_static(b"{\"a\":1}"),
        at: Instant::now(),
    };
    python_verifies("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &good);
    let tampered = Received {
        body: Bytes::from_static(b"{\"a\":2}"),
        ..good
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        python_verifies("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &tampered)
    }));
    let python_available = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    if python_available {
        assert!(result.is_err(), "a tampered body must not verify");
    }
    assert!(
        !verify("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &tampered),
        "nor with the Rust verifier"
    );
}

#[test]
fn rfc3339_formats_known_instants() {
    assert_eq!(crate::delivery::rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        crate::delivery::rfc3339(1_649_367_553_123),
        "2022-04-07T21:39:13.123Z"
    );
    assert_eq!(
        crate::delivery::rfc3339(951_782_400_000),
        "2000-02-29T00:00:00.000Z"
    );
}

// ---- figures -------------------------------------------------------------

/// Prints (does not assert) delivery lag and throughput at a steady push
/// rate: `cargo test --release -p paxid-learner -- --ignored --nocapture steady_load`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints figures; run on demand"]
async fn steady_load_figures() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner
        .subscribe(json!({"url": subscriber.url, "from_slot": 0}))
        .await;
    let rate_slots_per_s = 500u64;
    let duration = Duration::from_secs(5);
    let total = rate_slots_per_s * duration.as_secs();
    let started = Instant::now();
    let mut pushed_at = Vec::with_capacity(total as usize);
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate_slots_per_s));
    for s in 0..total {
        ticker.tick().await;
        pushed_at.push(Instant::now());
        learner
            .push(vec![slot(
                s,
                vec![alloc("default", s * 10 + 1, 10), alloc("other", s + 1, 1)],
            )])
            .await;
    }
    wait_for("everything delivered", || {
        delivered(&subscriber, &created.secret).len() as u64 == total
    })
    .await;
    let elapsed = started.elapsed();
    let mut lags: Vec<Duration> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for received in subscriber.received() {
        for s in received.slots() {
            if seen.insert(s) {
                lags.push(received.at - pushed_at[s as usize]);
            }
        }
    }
    lags.sort();
    let p = |q: f64| lags[((lags.len() as f64 - 1.0) * q) as usize];
    let allocations = total * 2;
    eprintln!(
        "steady load: {total} slots ({allocations} allocations) pushed at {rate_slots_per_s}/s; \
         {} webhook requests; delivery lag p50 {:?} p99 {:?} max {:?}; {:.0} allocations/s delivered",
        subscriber.count(),
        p(0.5),
        p(0.99),
        lags[lags.len() - 1],
        allocations as f64 / elapsed.as_secs_f64()
    );
    learner.stop().await;
}

/// Prints how fast a backlog drains: everything is learned first, then one
/// subscription starts at slot 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints figures; run on demand"]
async fn backlog_drain_figures() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let total = 20_000u64;
    for chunk in (0..total).step_by(500) {
        learner.push(default_slots(chunk..chunk + 500)).await;
    }
    learner.wait_learned(total).await;
    let started = Instant::now();
    let created = learner
        .subscribe(json!({"url": subscriber.url, "from_slot": 0}))
        .await;
    wait_for("backlog drained", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.delivered_below == total)
            .unwrap_or(false)
    })
    .await;
    let elapsed = started.elapsed();
    eprintln!(
        "backlog: {total} slots in {} messages drained in {elapsed:?}: {:.0} allocations/s",
        subscriber.count(),
        total as f64 / elapsed.as_secs_f64()
    );
    learner.stop().await;
}

/// Issue 11: the learner reports an acceptor URL that answers under a new
/// identity (its disk was lost or replaced): a log line and a counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_identity_at_an_acceptor_url_is_reported() {
    let (stubs, urls) = stub_acceptors(3).await;
    for (i, stub) in stubs.iter().enumerate() {
        *stub.node_uuid.lock().expect("lock") = Some(format!("00000000-0000-0000-0000-00000000000{i}"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), urls)).await;
    let changes = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("paxid_learner_acceptor_identity_changes_total"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Seen at least once as it was: nothing to report.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = changes(&metrics_text(&learner).await);
    *stubs[1].node_uuid.lock().expect("lock") = Some("00000000-0000-0000-0000-0000000000ff".into());
    let started = Instant::now();
    while changes(&metrics_text(&learner).await) < before + 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no identity change reported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    learner.stop().await;
}
