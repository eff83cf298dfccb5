//! End-to-end: the webhook consumer's kit of `docs/webhooks.md` against a
//! real learner. Real acceptors, sequencers and learner processes deliver
//! real HTTP webhooks to the example receivers, each a separate process:
//! `examples/webhooks/verify.py` (the `standardwebhooks` package),
//! `examples/webhooks/verify.js` (Node's standard library) and
//! `crates/learner/examples/verify_webhook.rs` (built by `cargo test
//! --workspace`, which builds every example). Each receiver must accept
//! every real delivery, deduplicate a replay by slot, and refuse the forged
//! messages this test sends itself (bad signature, old and future
//! timestamps), while accepting a correctly signed one.

// The test holds the cluster lock for its whole run on purpose: tests run
// on separate threads with separate runtimes, so a std mutex is right here.
#![allow(clippy::await_holding_lock)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api::learner::{SubscriptionCreated, SubscriptionView, WebhookMessage};
use base64::Engine;
use hmac::{Hmac, Mac};
use paxid_tests::cluster::free_port;
use paxid_tests::{serial, Cluster, ClusterSpec};

const SERVE_WITHIN: Duration = Duration::from_secs(20);
/// Slots reach the learner by push at once, or by pull within a second.
const DELIVERED_WITHIN: Duration = Duration::from_secs(30);
const LISTENING_WITHIN: Duration = Duration::from_secs(15);
/// The learner's `--subscription-token`.
const TOKEN: &str = "webhooks-subscription-token";
/// The `standardwebhooks` release `scripts/setup.sh` installs.
const STANDARDWEBHOOKS: &str = "standardwebhooks==1.1.0";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// `target/release/examples/verify_webhook`, next to this test's `deps/`.
fn rust_receiver() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = profile.join("examples").join("verify_webhook");
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` (make test) builds it, or \
         `cargo build --release -p paxid-learner --example verify_webhook`",
        path.display()
    );
    path
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `Ok` when `standardwebhooks` is importable (installing it with pip if
/// needed), else why not.
fn python_ready() -> Result<(), String> {
    if !runs("python3", &["--version"]) {
        return Err("python3 is not installed".into());
    }
    let import = ["-c", "import standardwebhooks"];
    if runs("python3", &import) {
        return Ok(());
    }
    println!("standardwebhooks is not importable: pip installing {STANDARDWEBHOOKS}");
    let installed = runs("python3", &["-m", "pip", "install", "-q", STANDARDWEBHOOKS])
        || runs(
            "python3",
            &[
                "-m",
                "pip",
                "install",
                "-q",
                "--break-system-packages",
                STANDARDWEBHOOKS,
            ],
        );
    match installed && runs("python3", &import) {
        true => Ok(()),
        false => Err(format!(
            "standardwebhooks is not importable and `pip install {STANDARDWEBHOOKS}` failed"
        )),
    }
}

/// One example receiver process and its subscription.
struct Receiver {
    name: &'static str,
    child: Child,
    port: u16,
    out: PathBuf,
    log: PathBuf,
    id: String,
    secret: String,
}

/// One line of a receiver's output file.
#[derive(Debug, serde::Deserialize)]
struct Line {
    accepted: bool,
    webhook_id: String,
    #[serde(rename = "type", default)]
    type_: Option<String>,
    #[serde(default)]
    new_slots: Vec<u64>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl Receiver {
    /// Subscribes `http://127.0.0.1:<port>/hook`, then starts the receiver
    /// (`command()` plus `HOST:PORT OUT_FILE`) with the subscription's
    /// secret and waits until it listens. A receiver that exits at once
    /// (its port was taken meanwhile: free ports are only probed) is tried
    /// again on another port, under a new subscription.
    async fn start(
        cluster: &Cluster,
        name: &'static str,
        from_slot: Option<u64>,
        command: impl Fn() -> Command,
    ) -> Receiver {
        for attempt in 1..=3 {
            let port = free_port();
            let created = subscribe(cluster, &format!("http://127.0.0.1:{port}/hook"), from_slot).await;
            let out = cluster.data_dir().join(format!("{name}-{attempt}.jsonl"));
            let log = cluster.data_dir().join(format!("{name}-{attempt}.log"));
            let log_file = std::fs::File::create(&log).expect("receiver log");
            let child = command()
                .arg(format!("127.0.0.1:{port}"))
                .arg(&out)
                .env("WEBHOOK_SECRET", &created.secret)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone log"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start the {name} receiver: {e}"));
            let mut receiver = Receiver {
                name,
                child,
                port,
                out,
                log,
                id: created.id,
                secret: created.secret,
            };
            if receiver.wait_listening().await {
                return receiver;
            }
            println!(
                "the {name} receiver exited at start on port {port} (attempt {attempt}):\n{}",
                receiver.log_text()
            );
            let response = cluster
                .http
                .delete(format!(
                    "{}/v1/subscriptions/{}",
                    cluster.learner_url(),
                    receiver.id
                ))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("the learner answers");
            assert_eq!(response.status(), 204);
        }
        panic!("the {name} receiver did not start in 3 attempts");
    }

    /// True once the port accepts connections and the process still runs
    /// a moment later; false if it exited.
    async fn wait_listening(&mut self) -> bool {
        let started = Instant::now();
        loop {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Another process may hold the port; this one then exits.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return matches!(self.child.try_wait(), Ok(None));
            }
            assert!(
                started.elapsed() < LISTENING_WITHIN,
                "the {} receiver does not listen:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn lines(&self) -> Vec<Line> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        // A line without its newline is still being written: read it next time.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: bad output line {line:?}: {e}", self.name))
            })
            .collect()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Every slot of every accepted `ids.allocated` message, by slot
    /// (a replayed slot must carry the same allocations).
    fn slots(&self) -> BTreeMap<u64, Vec<api::internal::Allocation>> {
        let mut slots = BTreeMap::new();
        for line in self.lines().into_iter().filter(|l| l.accepted) {
            let Some(body) = &line.body else { continue };
            let Ok(message) = serde_json::from_str::<WebhookMessage>(body) else {
                continue;
            };
            for slot in message.data.slots {
                if let Some(before) = slots.insert(slot.slot, slot.allocations.clone()) {
                    assert_eq!(
                        before, slot.allocations,
                        "{}: slot {} came twice with different allocations",
                        self.name, slot.slot
                    );
                }
            }
        }
        slots
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn subscribe(cluster: &Cluster, url: &str, from_slot: Option<u64>) -> SubscriptionCreated {
    let mut body = serde_json::json!({ "url": url });
    if let Some(from_slot) = from_slot {
        body["from_slot"] = from_slot.into();
    }
    let response = cluster
        .http
        .post(format!("{}/v1/subscriptions", cluster.learner_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("the learner answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 201, "subscribing {url}: {text}");
    serde_json::from_str(&text).expect("a SubscriptionCreated")
}

async fn subscription(cluster: &Cluster, id: &str) -> SubscriptionView {
    let response = cluster
        .http
        .get(format!("{}/v1/subscriptions/{id}", cluster.learner_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the learner answers");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a SubscriptionView")
}

/// `wait_serving` does not wait for the learner, which may still be opening
/// its store.
async fn wait_learner_ready(cluster: &Cluster) {
    let started = Instant::now();
    loop {
        let ready = cluster
            .http
            .get(format!("{}/readyz", cluster.learner_url()))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return;
        }
        assert!(
            started.elapsed() < SERVE_WITHIN,
            "the learner is not ready within {SERVE_WITHIN:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Standard Webhooks v1, written here independently of the learner's signer.
fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64 secret");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", engine.encode(mac.finalize().into_bytes()))
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Sends one hand-made webhook to `receiver`; returns the status.
async fn send(
    cluster: &Cluster,
    receiver: &Receiver,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: &str,
) -> u16 {
    cluster
        .http
        .post(receiver.url())
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: no answer: {e}", receiver.name))
        .status()
        .as_u16()
}

/// Waits until `receiver` has an allocation covering every call of `calls`.
async fn wait_covered(cluster: &Cluster, receiver: &Receiver, calls: &[(String, u64, u64)]) {
    let started = Instant::now();
    loop {
        let ranges: Vec<api::internal::Allocation> = receiver.slots().into_values().flatten().collect();
        let missing: Vec<_> = calls
            .iter()
            .filter(|(sequence, id, count)| {
                !ranges
                    .iter()
                    .any(|a| &a.sequence == sequence && a.id <= *id && id + count <= a.id + a.count)
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        if started.elapsed() > DELIVERED_WITHIN {
            let view = subscription(cluster, &receiver.id).await;
            panic!(
                "{}: {} of {} calls never delivered, first {:?}; subscription {view:?}\n{}\n--- {} ---\n{}",
                receiver.name,
                missing.len(),
                calls.len(),
                missing[0],
                cluster.logs(),
                receiver.name,
                receiver.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The three example receivers (Python only if `standardwebhooks` is
/// importable or installable, Node only if installed), each subscribed.
async fn start_receivers(cluster: &Cluster, from_slot: Option<u64>) -> Vec<Receiver> {
    let examples = repo_root().join("examples").join("webhooks");
    let mut receivers = Vec::new();
    match python_ready() {
        Ok(()) => {
            let script = examples.join("verify.py");
            let command = || {
                let mut command = Command::new("python3");
                command.arg(&script);
                command
            };
            receivers.push(Receiver::start(cluster, "python", from_slot, command).await);
        }
        Err(reason) => println!("SKIPPED the Python receiver: {reason}"),
    }
    if runs("node", &["--version"]) {
        let script = examples.join("verify.js");
        let command = || {
            let mut command = Command::new("node");
            command.arg(&script);
            command
        };
        receivers.push(Receiver::start(cluster, "node", from_slot, command).await);
    } else {
        println!("SKIPPED the Node receiver: node is not installed");
    }
    let program = rust_receiver();
    receivers.push(Receiver::start(cluster, "rust", from_slot, || Command::new(&program)).await);
    receivers
}

/// `POST /next-id` once per `i`, one call at a time, alternating sequencers,
/// sequences and counts; returns `(sequence, first, count)` per call.
async fn allocate(cluster: &Cluster, range: std::ops::Range<usize>) -> Vec<(String, u64, u64)> {
    let urls = cluster.sequencer_urls();
    let mut calls = Vec::new();
    for i in range {
        let body = match i % 3 {
            0 => serde_json::json!({}),
            1 => serde_json::json!({ "count": 5, "sequence": "orders" }),
            _ => serde_json::json!({ "count": 100 }),
        };
        let response = cluster
            .http
            .post(format!("{}/next-id", urls[i % urls.len()]))
            .json(&body)
            .send()
            .await
            .expect("the sequencer answers");
        assert_eq!(response.status(), 200);
        let answer: api::client::NextIdResponse = response.json().await.expect("a next-id answer");
        calls.push((answer.sequence, answer.id, answer.count));
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_receivers_verify_real_deliveries_and_refuse_forgeries() {
    let _serial = serial();
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 2,
        learner: true,
        learner_args: learner_args(),
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    wait_learner_ready(&cluster).await;

    // The subscription API takes the subscription token.
    let refused = cluster
        .http
        .post(format!("{}/v1/subscriptions", cluster.learner_url()))
        .json(&serde_json::json!({ "url": "http://127.0.0.1:9/hook" }))
        .send()
        .await
        .expect("the learner answers");
    assert_eq!(refused.status(), 401, "a subscription without the token");

    let receivers = start_receivers(&cluster, None).await;

    // Allocations, one call at a time, on both sequencers, in two rounds
    // each waited for, so that they come in more than one message.
    let mut calls = allocate(&cluster, 0..6).await;
    for receiver in &receivers {
        wait_covered(&cluster, receiver, &calls).await;
    }
    calls.extend(allocate(&cluster, 6..12).await);

    for receiver in &receivers {
        wait_covered(&cluster, receiver, &calls).await;
        let lines = receiver.lines();
        let refused: Vec<_> = lines.iter().filter(|l| !l.accepted).collect();
        assert!(
            refused.is_empty(),
            "{}: refused real deliveries {refused:?}",
            receiver.name
        );
        // In slot order, each slot new once.
        let new: Vec<u64> = lines.iter().flat_map(|l| l.new_slots.iter().copied()).collect();
        assert!(
            new.windows(2).all(|w| w[0] < w[1]),
            "{}: slots out of order {new:?}",
            receiver.name
        );
        let prefix = format!("msg_{}_", receiver.id);
        assert!(lines.iter().all(|l| l.webhook_id.starts_with(&prefix)));
        println!(
            "{}: {} messages, slots {:?}",
            receiver.name,
            lines.len(),
            receiver.slots().keys().collect::<Vec<_>>()
        );
    }

    // A replay re-sends slots already delivered, with the same allocations
    // per slot but under new webhook-ids: the range is cut again, and the
    // slots of the two rounds above, first sent in separate messages, now
    // fit in one. The receivers deduplicate by slot, so nothing is new.
    for receiver in &receivers {
        let before = receiver.lines();
        let ids_before: BTreeSet<String> = before.iter().map(|l| l.webhook_id.clone()).collect();
        let slots_before = receiver.slots();
        let first = *slots_before.keys().next().expect("slots were delivered");
        let response = cluster
            .http
            .post(format!(
                "{}/v1/subscriptions/{}/replay",
                cluster.learner_url(),
                receiver.id
            ))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "from_slot": first }))
            .send()
            .await
            .expect("the learner answers");
        assert_eq!(response.status(), 200, "replay of {}", receiver.name);
        let started = Instant::now();
        loop {
            let view = subscription(&cluster, &receiver.id).await;
            let lines = receiver.lines();
            if view.lag_slots == 0 && lines.len() > before.len() {
                let replayed = &lines[before.len()..];
                assert!(
                    replayed.iter().all(|l| l.accepted),
                    "{}: {replayed:?}",
                    receiver.name
                );
                assert!(
                    replayed.iter().all(|l| l.new_slots.is_empty()),
                    "{}: a replayed slot was taken as new: {replayed:?}",
                    receiver.name
                );
                assert!(
                    replayed.iter().any(|l| !ids_before.contains(&l.webhook_id)),
                    "{}: the replay came under the same webhook-ids {replayed:?}",
                    receiver.name
                );
                // `slots()` checked that each replayed slot carries the
                // same allocations as before.
                assert_eq!(receiver.slots(), slots_before, "{}", receiver.name);
                break;
            }
            assert!(
                started.elapsed() < DELIVERED_WITHIN,
                "{}: the replay was not delivered; {view:?}\n{}",
                receiver.name,
                receiver.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Forgeries, sent by the test itself, each refused with a 4xx (never
    // 2xx, and never 410, which would unsubscribe); then a correctly signed
    // message is accepted, so the refusals are for the defects alone.
    let forged_slot = 1u64 << 40;
    let body = format!(
        r#"{{"type":"ids.allocated","timestamp":"2026-01-01T00:00:00.000Z","data":{{"slots":[{{"slot":{forged_slot},"allocations":[{{"sequence":"default","id":1,"count":1}}]}}]}}}}"#
    );
    let tampered = body.replace(r#""count":1"#, r#""count":2"#);
    for receiver in &receivers {
        let before = receiver.lines().len();
        let now = now_s();
        let id = format!("msg_forged_{}", receiver.name);
        let cases = [
            (
                "a tampered body",
                now,
                sign(&receiver.secret, &id, now, &body),
                tampered.as_str(),
            ),
            (
                "another secret",
                now,
                sign("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &id, now, &body),
                body.as_str(),
            ),
            (
                "a timestamp 10 minutes old",
                now - 600,
                sign(&receiver.secret, &id, now - 600, &body),
                body.as_str(),
            ),
            (
                "a timestamp 10 minutes ahead",
                now + 600,
                sign(&receiver.secret, &id, now + 600, &body),
                body.as_str(),
            ),
        ];
        for (what, timestamp, signature, sent) in &cases {
            let status = send(&cluster, receiver, &id, *timestamp, signature, sent).await;
            assert!(
                (400..500).contains(&status) && status != 410,
                "{}: a message with {what} got {status}",
                receiver.name
            );
        }
        let lines = receiver.lines();
        assert_eq!(
            lines.len(),
            before + cases.len(),
            "{}: one line per forgery",
            receiver.name
        );
        assert!(lines[before..].iter().all(|l| !l.accepted), "{}", receiver.name);
        println!(
            "{}: refused {:?}",
            receiver.name,
            lines[before..]
                .iter()
                .map(|l| l.reason.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        );

        let valid = sign(&receiver.secret, &id, now, &body);
        let status = send(&cluster, receiver, &id, now, &valid, &body).await;
        assert!(
            (200..300).contains(&status),
            "{}: a valid message got {status}",
            receiver.name
        );
        let last = receiver.lines().pop().expect("a line");
        assert!(
            last.accepted && last.new_slots == [forged_slot],
            "{}: {last:?}",
            receiver.name
        );
    }

    // Every real delivery was acknowledged.
    for receiver in &receivers {
        let view = subscription(&cluster, &receiver.id).await;
        assert_eq!(view.state, "active", "{}: {view:?}", receiver.name);
        assert_eq!(view.lag_slots, 0, "{}: {view:?}", receiver.name);
    }
    println!(
        "receivers {:?} checked in {:?}",
        receivers.iter().map(|r| r.name).collect::<Vec<_>>(),
        started.elapsed()
    );
}

/// The learner's `--subscription-token` and quick retries.
fn learner_args() -> Vec<String> {
    [
        "--subscription-token",
        TOKEN,
        "--retry-initial-ms",
        "100",
        "--retry-max-ms",
        "500",
    ]
    .map(String::from)
    .to_vec()
}

/// A learner that lost its disk while the acceptors compacted past it
/// starts again from their snapshot and announces the skipped slots with an
/// `ids.gap` message (the recipe of `learner_recovery.rs`). Each receiver,
/// subscribed from slot 0, verifies and acknowledges it, moves its
/// `next_slot` past it, and then takes every allocation made afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_receivers_accept_a_gap_notice_and_move_past_it() {
    let _serial = serial();
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 1,
        learner: true,
        acceptor_args: [
            "--retain-slots",
            "200",
            "--key-window-slots",
            "0",
            "--compact-interval-ms",
            "100",
        ]
        .map(String::from)
        .to_vec(),
        learner_args: learner_args(),
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    wait_learner_ready(&cluster).await;

    // The learner stops; the acceptors go on and compact past it.
    let status_url = format!("{}/v1/status", cluster.learner_url());
    let status: api::learner::LearnerStatus = cluster
        .http
        .get(&status_url)
        .send()
        .await
        .expect("the learner answers")
        .json()
        .await
        .expect("a LearnerStatus");
    let stopped = status.learned_below;
    cluster.learner.as_mut().expect("a learner").terminate();
    let load = paxid_tests::run_load(paxid_tests::LoadSpec {
        urls: cluster.sequencer_urls(),
        clients: 4,
        ..paxid_tests::LoadSpec::default()
    });
    let acceptor = cluster.acceptor_urls()[0].clone();
    let waited = Instant::now();
    while (cluster.metric(&acceptor, "paxid_acceptor_compacted_below").await as u64) <= stopped + 1 {
        assert!(
            waited.elapsed() < DELIVERED_WITHIN,
            "the acceptors never compacted past the learner"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.stop().await;

    // Its disk is lost; it comes back blank, from the snapshot.
    cluster.restart_learner_blank(SERVE_WITHIN).await;
    let receivers = start_receivers(&cluster, Some(0)).await;
    let calls = allocate(&cluster, 0..6).await;

    for receiver in &receivers {
        wait_covered(&cluster, receiver, &calls).await;
        let lines = receiver.lines();
        assert!(
            lines.iter().all(|l| l.accepted),
            "{}: refused real deliveries {lines:?}",
            receiver.name
        );
        // The notices come first (usually one; a learner that lagged
        // far enough states a second one continuing the first), then
        // allocations only at or above the last notice's end, all new.
        let gaps: Vec<api::learner::LearnerGap> = lines
            .iter()
            .take_while(|l| l.type_.as_deref() == Some("ids.gap"))
            .map(|l| {
                let body = l.body.as_deref().expect("a body");
                serde_json::from_str::<api::learner::WebhookGapMessage>(body)
                    .expect("an ids.gap body")
                    .data
            })
            .collect();
        assert!(
            !gaps.is_empty(),
            "{}: no ids.gap message first in {lines:?}",
            receiver.name
        );
        assert_eq!(gaps[0].from_slot, 0, "{}: {gaps:?}", receiver.name);
        assert!(
            gaps.windows(2).all(|w| w[0].below_slot == w[1].from_slot),
            "{}: gaps not contiguous {gaps:?}",
            receiver.name
        );
        let below = gaps[gaps.len() - 1].below_slot;
        assert!(below > stopped, "{}: {gaps:?}", receiver.name);
        let rest = &lines[gaps.len()..];
        assert!(
            rest.iter().all(|l| l.type_.as_deref() == Some("ids.allocated")),
            "{}: {rest:?}",
            receiver.name
        );
        let after: Vec<u64> = rest.iter().flat_map(|l| l.new_slots.clone()).collect();
        assert!(!after.is_empty(), "{}", receiver.name);
        assert!(
            after.iter().all(|slot| *slot >= below),
            "{}: {gaps:?}, then {after:?}",
            receiver.name
        );
        println!(
            "{}: gaps {gaps:?} ({}), then slots {}..={}",
            receiver.name,
            lines[0].body.as_deref().unwrap_or(""),
            after[0],
            after[after.len() - 1]
        );
    }
    for receiver in &receivers {
        let view = subscription(&cluster, &receiver.id).await;
        assert_eq!(view.state, "active", "{}: {view:?}", receiver.name);
    }
    println!("gap checked in {:?}", started.elapsed());
}
