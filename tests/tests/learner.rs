//! End-to-end: real acceptors, sequencers and learner processes, and real
//! webhook subscribers (`paxid-test-subscriber`, a separate process that logs
//! every message it receives). Clients record their history; what the
//! subscribers received is checked against it and against the Standard
//! Webhooks signature, by code independent of the learner's signer.

// Each test holds the cluster lock for its whole run on purpose: tests run
// on separate threads with separate runtimes, so a std mutex is right here.
#![allow(clippy::await_holding_lock)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api::learner::{SubscriptionCreated, SubscriptionView};
use paxid_tests::chosen;
use paxid_tests::cluster::free_port;
use paxid_tests::delivery::{self, Delivered};
use paxid_tests::{check_history, run_load, serial, Cluster, ClusterSpec, LoadSpec, Op, Proc};

const SERVE_WITHIN: Duration = Duration::from_secs(20);
/// Slots reach the learner by push at once, or by pull within a second.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(30);

/// A subscriber process and its subscription.
struct Subscriber {
    proc: Proc,
    id: String,
    secret: String,
    sequences: Option<Vec<String>>,
}

impl Subscriber {
    /// Starts a receiver answering `status` and subscribes it.
    async fn start(cluster: &Cluster, name: &str, sequences: Option<&[&str]>, status: u16) -> Subscriber {
        let port = free_port();
        let args = vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--status".into(),
            status.to_string(),
        ];
        let proc = cluster.spawn(name, "paxid-test-subscriber", port, args);
        let sequences: Option<Vec<String>> = sequences.map(|s| s.iter().map(|s| s.to_string()).collect());
        let created = subscribe(cluster, &format!("{}/hook", proc.url()), sequences.as_deref()).await;
        Subscriber {
            proc,
            id: created.id,
            secret: created.secret,
            sequences,
        }
    }

    /// What it received so far, checked (signatures, order, repeats only
    /// under the same `webhook-id`, no overlap).
    fn delivered(&self) -> Delivered {
        let received = delivery::parse_log(&self.proc.log_text()).unwrap_or_else(|e| panic!("{e}"));
        delivery::check_deliveries(&received, &self.secret)
            .unwrap_or_else(|violation| panic!("{}: {violation}", self.proc.name))
    }

    /// The successful calls of `history` this subscriber must receive.
    fn wanted(&self, history: &[Op]) -> Vec<Op> {
        history
            .iter()
            .filter(|op| match (&op.result, &self.sequences) {
                (Some(_), None) => true,
                (Some((sequence, _, _)), Some(wanted)) => wanted.contains(sequence),
                (None, _) => false,
            })
            .cloned()
            .collect()
    }
}

fn learner_url(cluster: &Cluster) -> String {
    cluster.learner.as_ref().expect("a learner").url()
}

async fn subscribe(cluster: &Cluster, url: &str, sequences: Option<&[String]>) -> SubscriptionCreated {
    let response = post_subscription(cluster, url, sequences).await;
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 201, "subscribing {url}: {text}");
    serde_json::from_str(&text).expect("a SubscriptionCreated")
}

async fn post_subscription(cluster: &Cluster, url: &str, sequences: Option<&[String]>) -> reqwest::Response {
    let mut body = serde_json::json!({ "url": url });
    if let Some(sequences) = sequences {
        body["sequences"] = serde_json::json!(sequences);
    }
    cluster
        .http
        .post(format!("{}/v1/subscriptions", learner_url(cluster)))
        .json(&body)
        .send()
        .await
        .expect("the learner answers")
}

async fn subscription(cluster: &Cluster, id: &str) -> SubscriptionView {
    let url = format!("{}/v1/subscriptions/{id}", learner_url(cluster));
    let response = cluster.http.get(url).send().await.expect("the learner answers");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a SubscriptionView")
}

async fn list_subscriptions(cluster: &Cluster) -> Vec<SubscriptionView> {
    let url = format!("{}/v1/subscriptions", learner_url(cluster));
    let response = cluster.http.get(url).send().await.expect("the learner answers");
    assert_eq!(response.status(), 200);
    response
        .json::<api::learner::SubscriptionList>()
        .await
        .expect("a SubscriptionList")
        .subscriptions
}

/// Waits until every call a subscriber must receive lies in an allocation
/// it received, then returns what it received.
async fn wait_covered(cluster: &Cluster, subscriber: &Subscriber, history: &[Op]) -> Delivered {
    let wanted = subscriber.wanted(history);
    let started = Instant::now();
    loop {
        let delivered = subscriber.delivered();
        let missing = delivered.uncovered(&wanted);
        if missing.is_empty() {
            return delivered;
        }
        if started.elapsed() > CATCH_UP_WITHIN {
            let view = subscription(cluster, &subscriber.id).await;
            panic!(
                "{}: {} of {} calls never delivered, first {:?}; subscription {view:?}\n{}\n--- {} ---\n{}",
                subscriber.proc.name,
                missing.len(),
                wanted.len(),
                missing[0],
                cluster.logs(),
                subscriber.proc.name,
                subscriber.proc.log_tail(5)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_linearizable(cluster: &Cluster, history: &[Op]) {
    match check_history(history) {
        Ok(summary) => println!("history: {summary:?}"),
        Err(violation) => panic!("{violation}\n{}", cluster.logs()),
    }
}

fn load_spec(cluster: &Cluster) -> LoadSpec {
    LoadSpec {
        urls: cluster.sequencer_urls(),
        clients: 8,
        counts: vec![1, 1, 5, 1, 100],
        sequences: vec![None, Some("orders".into()), Some("users".into())],
        ..LoadSpec::default()
    }
}

fn cluster_with_learner(learner_args: &[&str]) -> Cluster {
    Cluster::start(ClusterSpec {
        sequencers: 2,
        learner: true,
        learner_args: learner_args.iter().map(|a| a.to_string()).collect(),
        ..ClusterSpec::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_across_a_subscriber_outage_and_a_learner_kill9() {
    let _serial = serial();
    let mut cluster = cluster_with_learner(&["--retry-initial-ms", "100", "--retry-max-ms", "500"]);
    cluster.wait_serving(SERVE_WITHIN).await;
    let mut all = Subscriber::start(&cluster, "subscriber-all", None, 204).await;
    let orders = Subscriber::start(&cluster, "subscriber-orders", Some(&["orders"]), 204).await;
    let users = Subscriber::start(&cluster, "subscriber-users", Some(&["users"]), 204).await;
    let load = run_load(load_spec(&cluster));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The subscriber goes away for a while; the learner keeps retrying.
    all.proc.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    all.proc.start();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The learner dies mid-delivery (load is running: there always is one).
    let learner = cluster.learner.as_mut().expect("a learner");
    learner.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    learner.start();
    tokio::time::sleep(Duration::from_millis(2000)).await;

    let history = load.stop().await;
    assert_linearizable(&cluster, &history);
    for subscriber in [&all, &orders, &users] {
        let delivered = wait_covered(&cluster, subscriber, &history).await;
        println!("{}: {:?}", subscriber.proc.name, delivered.summary);
        if let Some(wanted) = &subscriber.sequences {
            let got: Vec<String> = delivered.sequences().map(str::to_owned).collect();
            assert_eq!(&got, wanted, "{} received other sequences", subscriber.proc.name);
        }
    }
    assert_eq!(
        all.delivered().sequences().count(),
        3,
        "default, orders and users"
    );
    assert_every_chosen_allocation_delivered(&cluster, &[&all, &orders, &users]).await;
}

/// Each subscriber received every effective allocation of the chosen log
/// (as the acceptors hold it) for its sequences, slot by slot, from the
/// first slot it received (a subscription starts where the learner was) to
/// the last: also those no client saw answered.
async fn assert_every_chosen_allocation_delivered(cluster: &Cluster, subscribers: &[&Subscriber]) {
    let chosen = chosen::read_chosen_log(cluster).await.expect("the chosen log");
    for subscriber in subscribers {
        let wanted = |sequence: &str| {
            subscriber
                .sequences
                .as_ref()
                .is_none_or(|list| list.iter().any(|s| s == sequence))
        };
        let delivered = subscriber.delivered();
        let span = delivered.slot_span().expect("something delivered");
        match chosen::delivered_as_chosen(&chosen, &delivered, span, wanted) {
            Ok(report) => println!("{}: {report}", subscriber.proc.name),
            Err(problems) => panic!("{}: {problems}", subscriber.proc.name),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_failing_forever_is_disabled_while_the_healthy_one_keeps_up() {
    let _serial = serial();
    let args = [
        "--disable-after-failing-ms",
        "2000",
        "--retry-initial-ms",
        "100",
        "--retry-max-ms",
        "400",
    ];
    let mut cluster = cluster_with_learner(&args);
    cluster.wait_serving(SERVE_WITHIN).await;
    let healthy = Subscriber::start(&cluster, "subscriber-healthy", None, 204).await;
    let broken = Subscriber::start(&cluster, "subscriber-broken", None, 500).await;
    let load = run_load(load_spec(&cluster));
    let started = Instant::now();
    let mut disabled_after = None;
    while started.elapsed() < Duration::from_secs(5) || disabled_after.is_none() {
        let view = subscription(&cluster, &broken.id).await;
        if view.state == "disabled" && disabled_after.is_none() {
            disabled_after = Some(started.elapsed());
            println!(
                "broken subscriber disabled after {:?}: {view:?}",
                started.elapsed()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the broken subscriber was never disabled: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let history = load.stop().await;
    assert_linearizable(&cluster, &history);
    let delivered = wait_covered(&cluster, &healthy, &history).await;
    println!("healthy: {:?}", delivered.summary);
    let attempts = delivery::parse_log(&broken.proc.log_text()).expect("log").len();
    assert!(
        attempts > 1,
        "the broken subscriber was retried ({attempts} attempts)"
    );
    let view = subscription(&cluster, &broken.id).await;
    assert_eq!(view.state, "disabled", "{view:?}");
    assert_eq!(subscription(&cluster, &healthy.id).await.state, "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_metadata_urls_are_refused_without_the_allow_flag() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 1,
        learner: true,
        allow_private_webhooks: false,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://127.0.0.1:9/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "http://localhost:9/hook",
    ] {
        let response = post_subscription(&cluster, url, None).await;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_client_error(), "{url} was not refused: {status} {text}");
        assert_eq!(content_type, "application/problem+json", "{url}: {text}");
        println!("{url}: {status} {text}");
    }
    assert!(
        list_subscriptions(&cluster).await.is_empty(),
        "a refused URL was stored"
    );
}

/// Steady load, no faults: prints how long an ID takes from the client's
/// answer to the subscriber, and how many allocations are delivered per
/// second. Figures only; the assertions are about correctness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_lag_at_steady_load() {
    let _serial = serial();
    let mut cluster = cluster_with_learner(&[]);
    cluster.wait_serving(SERVE_WITHIN).await;
    let subscriber = Subscriber::start(&cluster, "subscriber", None, 204).await;
    let wall_at_epoch = SystemTime::now();
    let load = run_load(load_spec(&cluster));
    let ran_for = Duration::from_secs(5);
    tokio::time::sleep(ran_for).await;
    let history = load.stop().await;
    assert_linearizable(&cluster, &history);
    let delivered = wait_covered(&cluster, &subscriber, &history).await;
    let received = delivery::parse_log(&subscriber.proc.log_text()).expect("log");
    let epoch_unix_ns = wall_at_epoch
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let mut lags = delivery::lags_ms(&received, &history, epoch_unix_ns);
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    println!(
        "delivery lag (client answer -> subscriber) over {} calls: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         {} allocations in {} messages, {:.0} allocations/s delivered",
        lags.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        delivered.summary.allocations,
        delivered.summary.messages,
        delivered.summary.allocations as f64 / ran_for.as_secs_f64(),
    );
}
