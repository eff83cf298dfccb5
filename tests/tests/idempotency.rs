//! Retry-safe IDs: `POST /next-id` with `Idempotency-Key` on a real
//! cluster, from any replica and across the leader's death.

// Each test holds the cluster lock for its whole run on purpose: tests run
// on separate threads with separate runtimes, so a std mutex is right here.
#![allow(clippy::await_holding_lock)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxid_tests::checker::{check_history, Op};
use paxid_tests::load::{run_load, LoadSpec};
use paxid_tests::{serial, Cluster, ClusterSpec};
use serde_json::{json, Value};
use tokio::sync::Mutex;

const SERVE_WITHIN: Duration = Duration::from_secs(20);

/// One keyed call: the status, and `(id, count, sequence)` on a 200, or
/// the problem's type otherwise; None when no answer came.
async fn keyed(http: &reqwest::Client, url: &str, key: &str, body: Value) -> Option<(u16, Value)> {
    let response = http
        .post(format!("{url}/next-id"))
        .header("idempotency-key", key)
        .timeout(Duration::from_secs(2))
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let json: Value = response.json().await.unwrap_or(Value::Null);
    Some((status, json))
}

fn range(answer: &Value) -> (u64, u64) {
    (
        answer["id"].as_u64().expect("an id"),
        answer["count"].as_u64().expect("a count"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_gets_one_allocation_from_any_replica_and_only_in_its_shape() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 2,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    let http = cluster.http.clone();
    let leader = cluster.wait_leader(SERVE_WITHIN).await;
    let urls = cluster.sequencer_urls();
    let (leader_url, follower_url) = (urls[leader].clone(), urls[1 - leader].clone());

    let body = json!({ "count": 3 });
    let (status, first) = keyed(&http, &leader_url, "order-17", body.clone())
        .await
        .expect("answer");
    assert_eq!(status, 200, "{first}");
    for url in [&leader_url, &follower_url, &leader_url] {
        let (status, again) = keyed(&http, url, "order-17", body.clone()).await.expect("answer");
        assert_eq!(
            (status, &again),
            (200, &first),
            "a retry at {url} gets the first call's IDs"
        );
    }
    // Another shape under the same key: 422, at either replica.
    for (url, other) in [
        (&leader_url, json!({ "count": 4 })),
        (&follower_url, json!({ "count": 3, "sequence": "other" })),
        (&leader_url, json!({})),
    ] {
        let (status, problem) = keyed(&http, url, "order-17", other.clone())
            .await
            .expect("answer");
        assert_eq!(status, 422, "{other} at {url}: {problem}");
        assert_eq!(
            problem["type"],
            "https://paxid.dev/problems/idempotency-key-reused"
        );
        assert_eq!(problem["field"], "idempotency-key");
    }
    // Retries and refusals consumed nothing; other keys get new ranges.
    let (first_id, _) = range(&first);
    let plain: Value = http
        .post(format!("{leader_url}/next-id"))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(plain["id"].as_u64(), Some(first_id + 3));
    let (status, other) = keyed(&http, &follower_url, "order-18", json!({ "count": 3 }))
        .await
        .expect("answer");
    assert_eq!((status, range(&other)), (200, (first_id + 4, 3)), "{other}");
    // Keys are per call, not per sequence: the same key on another
    // sequence is the reuse above, and a key is case-sensitive.
    let (status, upper) = keyed(&http, &leader_url, "ORDER-17", body).await.expect("answer");
    assert_eq!((status, range(&upper)), (200, (first_id + 7, 3)));
}

/// What the callers saw of one key: when its first call started, and every
/// range an answer gave it.
#[derive(Default, Debug, Clone)]
struct KeyRecord {
    invoked_ns: u64,
    first_answered: Option<(u64, u64)>,
    ranges: Vec<(u64, u64)>,
    completed_ns: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_keys_keep_their_ids_across_the_leaders_death() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 3,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    let urls = cluster.sequencer_urls();
    // Unkeyed callers beside the keyed ones: their IDs join the check.
    let load = run_load(LoadSpec {
        urls: urls.clone(),
        clients: 4,
        counts: vec![1, 2],
        ..LoadSpec::default()
    });
    let records: Arc<Mutex<BTreeMap<String, KeyRecord>>> = Arc::default();
    let keys_per_caller = 150;
    let callers: Vec<_> = (0..6)
        .map(|caller| {
            let (http, urls, records) = (cluster.http.clone(), urls.clone(), records.clone());
            let epoch = load.epoch();
            tokio::spawn(async move {
                for n in 0..keys_per_caller {
                    let key = format!("caller{caller}-call{n}");
                    let count = 1 + (n % 3);
                    let url = &urls[(caller + n as usize) % urls.len()];
                    let invoked_ns = epoch.elapsed().as_nanos() as u64;
                    let answer = keyed(&http, url, &key, json!({ "count": count })).await;
                    let completed_ns = epoch.elapsed().as_nanos() as u64;
                    let answered = answer
                        .filter(|(status, _)| *status == 200)
                        .map(|(_, a)| range(&a));
                    let record = KeyRecord {
                        invoked_ns,
                        first_answered: answered,
                        ranges: answered.into_iter().collect(),
                        completed_ns,
                    };
                    records.lock().await.insert(key, record);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    // Kill the leader while keyed calls are in flight.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = cluster.wait_leader(SERVE_WITHIN).await;
    let killed_ns = load.now_ns();
    cluster.sequencers[leader].kill9();
    println!("killed the leader sequencer-{}", leader + 1);
    for caller in callers {
        caller.await.expect("caller");
    }
    cluster.sequencers[leader].start();

    // Retry every key, twice, at each replica in turn: the new leader read
    // the keys chosen before it back from the acceptors.
    let http = cluster.http.clone();
    let mut records = records.lock().await.clone();
    let (mut retried_after_failure, mut answered_first) = (0, 0);
    // How long keyed calls waited for the new leader: an election, then
    // its read-back of the keys chosen before it.
    let mut first_keyed_ok_ns = records
        .values()
        .filter(|r| r.invoked_ns > killed_ns && r.first_answered.is_some())
        .map(|r| r.completed_ns)
        .min();
    for (n, (key, record)) in records.iter_mut().enumerate() {
        let count: u64 = key
            .rsplit("call")
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .expect("n")
            % 3
            + 1;
        answered_first += usize::from(record.first_answered.is_some());
        retried_after_failure += usize::from(record.first_answered.is_none());
        for round in 0..2 {
            let deadline = Instant::now() + SERVE_WITHIN;
            let answer = loop {
                let url = &urls[(n + round) % urls.len()];
                match keyed(&http, url, key, json!({ "count": count })).await {
                    Some((200, answer)) => break range(&answer),
                    Some((503 | 409, _)) | None => {}
                    Some((status, problem)) => panic!("retry of {key} at {url}: {status} {problem}"),
                }
                assert!(
                    Instant::now() < deadline,
                    "no answer for {key}\n{}",
                    cluster.logs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            record.ranges.push(answer);
            record.completed_ns = load.now_ns();
            first_keyed_ok_ns.get_or_insert(record.completed_ns);
        }
    }
    println!(
        "first keyed call answered {:?} after kill -9 of the leader",
        first_keyed_ok_ns.map(|ns| Duration::from_nanos(ns - killed_ns))
    );
    let history = load.stop().await;
    let mut second_ranges = Vec::new();
    for (key, record) in &records {
        let first = record.ranges[0];
        if record.ranges.iter().any(|r| *r != first) {
            second_ranges.push(format!("{key}: {:?}", record.ranges));
        }
    }
    assert!(
        second_ranges.is_empty(),
        "keys answered with more than one range:\n{}\n{}",
        second_ranges.join("\n"),
        cluster.logs()
    );
    // Each key is one operation from its first call to its last answer;
    // with the unkeyed calls, IDs are unique and ordered in real time.
    let mut ops = history;
    let unkeyed = ops.len();
    ops.extend(records.values().map(|record| Op {
        invoked_ns: record.invoked_ns,
        completed_ns: record.completed_ns,
        result: Some(("default".to_owned(), record.ranges[0].0, record.ranges[0].1)),
    }));
    let summary = check_history(&ops).unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    println!(
        "{} keys: {answered_first} answered at once, {retried_after_failure} first calls failed and were retried; \
         every retry got the first range; {unkeyed} unkeyed calls beside; checker: {summary:?}",
        records.len()
    );
    assert!(
        answered_first > 100,
        "too few keyed calls answered: {answered_first}"
    );
}
