//! End-to-end: a learner whose store is lost after the acceptors compacted
//! past it starts again from the acceptors' snapshot, states the gap (status,
//! metric, an `ids.gap` webhook) and delivers everything after it.
//! Real acceptors, sequencer, learner and `paxid-test-subscriber` processes.

// The cluster lock is held for the whole test on purpose (see learner.rs).
#![allow(clippy::await_holding_lock)]

use std::time::{Duration, Instant};

use api::learner::{LearnerStatus, SubscriptionCreated, WEBHOOK_GAP_TYPE};
use paxid_tests::chosen;
use paxid_tests::cluster::free_port;
use paxid_tests::delivery::{self, Received};
use paxid_tests::{check_history, run_load, serial, Cluster, ClusterSpec, LoadSpec, Op, Proc};

const SERVE_WITHIN: Duration = Duration::from_secs(20);
const WITHIN: Duration = Duration::from_secs(30);

async fn learner_status(cluster: &Cluster) -> LearnerStatus {
    let url = format!("{}/v1/status", cluster.learner_url());
    let response = cluster.http.get(url).send().await.expect("the learner answers");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a LearnerStatus")
}

async fn learner_ready(cluster: &Cluster) -> Result<(), String> {
    let url = format!("{}/readyz", cluster.learner_url());
    match cluster.http.get(url).send().await {
        Ok(response) if response.status() == 200 => Ok(()),
        Ok(response) => Err(format!(
            "{}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// Runs client load for `duration` and returns its history.
async fn load_for(cluster: &Cluster, duration: Duration) -> Vec<Op> {
    let load = run_load(LoadSpec {
        urls: cluster.sequencer_urls(),
        clients: 4,
        counts: vec![1, 3],
        ..LoadSpec::default()
    });
    tokio::time::sleep(duration).await;
    load.stop().await
}

async fn subscribe(cluster: &Cluster, name: &str, from_slot: Option<u64>) -> (Proc, SubscriptionCreated) {
    let port = free_port();
    let args = vec!["--listen".into(), format!("127.0.0.1:{port}")];
    let proc = cluster.spawn(name, "paxid-test-subscriber", port, args);
    let mut body = serde_json::json!({ "url": format!("{}/hook", proc.url()) });
    if let Some(from_slot) = from_slot {
        body["from_slot"] = from_slot.into();
    }
    let response = cluster
        .http
        .post(format!("{}/v1/subscriptions", cluster.learner_url()))
        .json(&body)
        .send()
        .await
        .expect("the learner answers");
    assert_eq!(response.status(), 201);
    (proc, response.json().await.expect("created"))
}

/// Gap notices (checked: signed, stable id) and the rest, in order received.
fn split_gaps(received: Vec<Received>, secret: &str) -> (Vec<(u64, u64)>, Vec<Received>) {
    let mut gaps = Vec::new();
    let mut rest = Vec::new();
    for message in received {
        let body: serde_json::Value = serde_json::from_str(&message.body).expect("JSON body");
        if body["type"] == WEBHOOK_GAP_TYPE {
            if let Err(why) = delivery::verify_signed(secret, &message) {
                panic!("gap notice not signed ({why}): {message:?}");
            }
            assert!(!rest.iter().any(|r: &Received| r.webhook_id == message.webhook_id));
            let from = body["data"]["from_slot"].as_u64().expect("from_slot");
            let below = body["data"]["below_slot"].as_u64().expect("below_slot");
            gaps.push((from, below));
        } else {
            rest.push(message);
        }
    }
    (gaps, rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_learner_behind_compaction_starts_from_the_snapshot_and_reports_the_gap() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 1,
        learner: true,
        acceptor_args: [
            "--retain-slots",
            "200",
            // The last 200 slots stay, whatever the learner read: the
            // check against the chosen log below needs some.
            "--key-window-slots",
            "200",
            "--compact-interval-ms",
            "100",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect(),
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;

    // Load while the learner runs, then stop it and keep loading so that the
    // acceptors' retention passes the learner's last progress.
    let before = load_for(&cluster, Duration::from_secs(2)).await;
    let stopped = learner_status(&cluster).await.learned_below;
    cluster.learner.as_mut().expect("a learner").terminate();
    let while_down = load_for(&cluster, Duration::from_secs(2)).await;
    let acceptor = cluster.acceptor_urls()[0].clone();
    let started = Instant::now();
    loop {
        let compacted = cluster.metric(&acceptor, "paxid_acceptor_compacted_below").await;
        if compacted as u64 > stopped + 1 {
            println!("acceptor compacted below {compacted} (learner stopped at {stopped})");
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "the acceptors never compacted past the learner"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The learner's disk is lost; it comes back blank.
    cluster.restart_learner_blank(WITHIN).await;
    // A new subscription at the learner's point, and one from slot 0 (its
    // cursor is at or below the gap, whenever the learner takes it).
    let (subscriber, created) = subscribe(&cluster, "subscriber", None).await;
    let (from_zero, from_zero_created) = subscribe(&cluster, "subscriber-from-0", Some(0)).await;

    let after = load_for(&cluster, Duration::from_secs(3)).await;
    for history in [&before, &while_down, &after] {
        check_history(history).unwrap_or_else(|v| panic!("{v}\n{}", cluster.logs()));
    }
    let wanted: Vec<Op> = after.iter().filter(|op| op.result.is_some()).cloned().collect();
    assert!(
        wanted.len() >= 50,
        "enough calls after the restart: {}",
        wanted.len()
    );

    // Ready again, and every allocation made after the restart delivered.
    let started = Instant::now();
    let delivered = loop {
        let ready = learner_ready(&cluster).await;
        let received = delivery::parse_log(&subscriber.log_text()).expect("subscriber log");
        let (gaps, allocated) = split_gaps(received, &created.secret);
        let delivered = delivery::check_deliveries(&allocated, &created.secret)
            .unwrap_or_else(|violation| panic!("{violation}"));
        let missing = delivered.uncovered(&wanted);
        if ready.is_ok() && missing.is_empty() {
            println!(
                "delivered after the restart: {:?}; gap notices {gaps:?}",
                delivered.summary
            );
            break delivered;
        }
        assert!(
            started.elapsed() < WITHIN,
            "readyz {ready:?}; {} of {} calls after the restart never delivered, first {:?}\n{}\n--- learner ---\n{}",
            missing.len(),
            wanted.len(),
            missing.first(),
            cluster.logs(),
            cluster.learner.as_ref().expect("a learner").log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Also the allocations no client saw: slot by slot as the acceptors
    // hold them (their last 200 slots).
    let chosen = chosen::read_chosen_log(&cluster).await.expect("the chosen log");
    let span = delivered.slot_span().expect("something delivered");
    match chosen::delivered_as_chosen(&chosen, &delivered, span, |_| true) {
        Ok(report) => println!("subscriber: {report}"),
        Err(problems) => panic!("subscriber: {problems}"),
    }

    // The gap is stated: in the status, the metric, and to the subscriber
    // if its cursor was at or below it.
    let status = learner_status(&cluster).await;
    println!(
        "learner status after recovery: learned_below {}, gaps {:?}",
        status.learned_below, status.gaps
    );
    // Usually one gap; under load a learner that lags by more than
    // --retain-slots right after its jump can be passed again, and says so
    // as a second gap that continues the first.
    assert!(!status.gaps.is_empty(), "{status:?}");
    for pair in status.gaps.windows(2) {
        assert_eq!(
            pair[0].below_slot, pair[1].from_slot,
            "contiguous gaps: {status:?}"
        );
    }
    let gap = &api::learner::LearnerGap {
        from_slot: status.gaps[0].from_slot,
        below_slot: status.gaps[status.gaps.len() - 1].below_slot,
    };
    assert_eq!(gap.from_slot, 0, "a blank learner starts at slot 0");
    assert!(
        gap.below_slot > stopped,
        "the gap covers what the acceptors dropped: {gap:?}"
    );
    let started = Instant::now();
    loop {
        let skipped = cluster
            .metric(&cluster.learner_url(), "paxid_learner_skipped_slots_total")
            .await;
        if skipped as u64 == gap.below_slot - gap.from_slot {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "paxid_learner_skipped_slots_total is {skipped}, the gap {gap:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let received = delivery::parse_log(&subscriber.log_text()).expect("subscriber log");
    let (gaps, allocated) = split_gaps(received, &created.secret);
    let first_allocated = allocated.first().map(|m| {
        let body: serde_json::Value = serde_json::from_str(&m.body).expect("JSON");
        body["data"]["slots"][0]["slot"].as_u64().expect("slot")
    });
    for (from, below) in &gaps {
        assert!(*from < *below && *below <= gap.below_slot, "{gaps:?} vs {gap:?}");
    }
    assert!(
        first_allocated.is_some_and(|first| first >= gap.below_slot),
        "nothing is invented for the gap: first delivered slot {first_allocated:?}, gap {gap:?}"
    );
    // The subscription from slot 0 was told of the gap first, once, then
    // got allocations from below_slot on only.
    let started = Instant::now();
    loop {
        let received = delivery::parse_log(&from_zero.log_text()).expect("subscriber log");
        let first_is_gap = received
            .first()
            .is_some_and(|m| m.body.contains(WEBHOOK_GAP_TYPE));
        let (gaps, allocated) = split_gaps(received, &from_zero_created.secret);
        let delivered = delivery::check_deliveries(&allocated, &from_zero_created.secret)
            .unwrap_or_else(|violation| panic!("{violation}"));
        if delivered.uncovered(&wanted).is_empty() {
            println!("from slot 0: gap notices {gaps:?}; then {:?}", delivered.summary);
            assert!(first_is_gap, "the gap notice comes first");
            let notices: Vec<(u64, u64)> = status.gaps.iter().map(|g| (g.from_slot, g.below_slot)).collect();
            assert_eq!(gaps, notices, "one gap notice per gap, in order");
            for message in &allocated {
                let body: serde_json::Value = serde_json::from_str(&message.body).expect("JSON");
                let first = body["data"]["slots"][0]["slot"].as_u64().expect("slot");
                assert!(first >= gap.below_slot, "nothing delivered inside the gap");
            }
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "the subscription from slot 0 never caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The acceptors said they compacted past the learner that was gone.
    let passed = cluster
        .metric(&acceptor, "paxid_acceptor_compaction_passed_learner_total")
        .await;
    assert!(
        passed >= 1.0,
        "compaction passed a registered learner: metric {passed}"
    );
}
