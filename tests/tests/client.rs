//! End-to-end: the Rust client library (`paxid-client`) against real
//! acceptors and sequencers. Every history goes through the
//! linearizability checker; figures are printed, never asserted on time.

// Each test holds the cluster lock for its whole run on purpose: tests run
// on separate threads with separate runtimes, so a std mutex is right here.
#![allow(clippy::await_holding_lock)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxid_client::{Client, Error};
use paxid_tests::{check_history, serial, Cluster, ClusterSpec, Op};

const SERVE_WITHIN: Duration = Duration::from_secs(20);
const TASKS: usize = 64;
const COUNTS: [u64; 4] = [1, 1, 3, 10];
const SEQUENCES: [&str; 2] = ["default", "orders"];

fn two_sequencers() -> ClusterSpec {
    ClusterSpec {
        acceptors: 3,
        sequencers: 2,
        ..ClusterSpec::default()
    }
}

/// What the tasks recorded: the history, and every error by caller.
struct Run {
    history: Vec<Op>,
    errors: Vec<String>,
}

/// `TASKS` tasks sharing `client`, each calling in a closed loop until it
/// made `calls_per_task` calls or `stop` is set.
async fn run_tasks(client: &Client, calls_per_task: usize, stop: Arc<AtomicBool>) -> Run {
    let epoch = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut ops = Vec::new();
                let mut errors = Vec::new();
                for call in 0..calls_per_task {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let count = COUNTS[(task + call) % COUNTS.len()];
                    let sequence = SEQUENCES[(task + call) % SEQUENCES.len()];
                    let invoked_ns = epoch.elapsed().as_nanos() as u64;
                    let outcome = client.next_id(sequence, count).await;
                    let completed_ns = epoch.elapsed().as_nanos() as u64;
                    let result = match outcome {
                        Ok(ids) => {
                            assert_eq!((ids.sequence.as_str(), ids.count), (sequence, count));
                            Some((ids.sequence, ids.first, ids.count))
                        }
                        Err(e) => {
                            errors.push(format!("task {task} call {call}: {e}"));
                            None
                        }
                    };
                    ops.push(Op {
                        invoked_ns,
                        completed_ns,
                        result,
                    });
                }
                (ops, errors)
            })
        })
        .collect();
    let mut run = Run {
        history: Vec::new(),
        errors: Vec::new(),
    };
    for task in tasks {
        let (ops, errors) = task.await.expect("task");
        run.history.extend(ops);
        run.errors.extend(errors);
    }
    run
}

/// `POST /next-id` requests each sequencer served so far (every status,
/// forwarded ones included), from its `/metrics`.
async fn next_id_served(cluster: &Cluster) -> Vec<u64> {
    let mut served = Vec::new();
    for proc in &cluster.sequencers {
        let text = match cluster.http.get(format!("{}/metrics", proc.url())).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let total = text
            .lines()
            .filter(|l| l.starts_with("paxid_http_requests_total{") && l.contains("route=\"/next-id\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        served.push(total as u64);
    }
    served
}

fn assert_linearizable(cluster: &Cluster, history: &[Op]) {
    match check_history(history) {
        Ok(summary) => println!("history: {summary:?}"),
        Err(violation) => panic!("{violation}\n{}", cluster.logs()),
    }
}

/// The longest call of a history.
fn longest(history: &[Op]) -> Duration {
    let ns = history.iter().map(|op| op.completed_ns - op.invoked_ns).max();
    Duration::from_nanos(ns.unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_share_calls_and_the_history_is_linearizable() {
    let _serial = serial();
    let mut cluster = Cluster::start(two_sequencers());
    cluster.wait_serving(SERVE_WITHIN).await;
    let client = Client::builder().endpoints(cluster.sequencer_urls()).build();
    let served_before = next_id_served(&cluster).await;
    let started = Instant::now();
    let run = run_tasks(&client, 100, Arc::new(AtomicBool::new(false))).await;
    let elapsed = started.elapsed();
    let served: Vec<u64> = next_id_served(&cluster)
        .await
        .iter()
        .zip(&served_before)
        .map(|(after, before)| after - before)
        .collect();
    let stats = client.stats();
    println!(
        "{} client calls in {elapsed:?} became {} coalesced calls, {} HTTP requests sent; \
         POST /next-id served per sequencer (forwards counted at both): {served:?}; longest call {:?}",
        stats.callers,
        stats.calls,
        stats.http_requests,
        longest(&run.history)
    );
    assert!(run.errors.is_empty(), "{:?}\n{}", run.errors, cluster.logs());
    assert_eq!(stats.callers as usize, TASKS * 100);
    assert!(
        stats.calls < stats.callers,
        "no coalescing with {TASKS} concurrent tasks: {stats:?}"
    );
    assert!(
        served.iter().sum::<u64>() >= stats.http_requests,
        "the sequencers served fewer requests than the client sent: {served:?}, {stats:?}"
    );
    assert_linearizable(&cluster, &run.history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_run_costs_retries_not_failures() {
    let _serial = serial();
    let mut cluster = Cluster::start(two_sequencers());
    cluster.wait_serving(SERVE_WITHIN).await;
    // The leader first, so that the kill hits the endpoint the client
    // uses: connection errors, then the follower's 503 during the election.
    let leader = cluster.wait_leader(SERVE_WITHIN).await;
    let urls = cluster.sequencer_urls();
    let mut endpoints = vec![urls[leader].clone()];
    endpoints.extend(urls.iter().filter(|u| **u != urls[leader]).cloned());
    let client = Client::builder().endpoints(endpoints).build();
    let stop = Arc::new(AtomicBool::new(false));
    let running = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move { run_tasks(&client, usize::MAX, stop).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_kill = client.stats();
    cluster.sequencers[leader].kill9();
    let killed = Instant::now();
    // Run until well after the new leader serves.
    let new_leader = cluster.wait_leader(SERVE_WITHIN).await;
    println!(
        "kill -9 of the leader sequencer-{}: sequencer-{} leads {:?} later",
        leader + 1,
        new_leader + 1,
        killed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let run = running.await.expect("load");
    let stats = client.stats();
    println!(
        "{} client calls ({} before the kill), {} coalesced calls, {} HTTP requests (retries included), \
         {} calls failed; longest call {:?}; now on {}",
        stats.callers,
        before_kill.callers,
        stats.calls,
        stats.http_requests,
        stats.calls_failed,
        longest(&run.history),
        client.current_endpoint()
    );
    assert!(run.errors.is_empty(), "{:?}\n{}", run.errors, cluster.logs());
    assert!(
        stats.callers > before_kill.callers,
        "calls went on after the kill"
    );
    assert_linearizable(&cluster, &run.history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_back_at_once_as_problems() {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec {
        sequencer_args: vec!["--client-token".into(), "s3cret".into()],
        ..two_sequencers()
    });
    let client = Client::builder()
        .endpoints(cluster.sequencer_urls())
        .token("s3cret")
        // The first call also waits for the cluster to come up.
        .retry_budget(Duration::from_secs(60))
        .build();
    let first = client.next_id_default(1).await;
    assert!(first.is_ok(), "{first:?}\n{}", cluster.logs());

    let before = client.stats();
    let error = client.next_id("not a name!", 1).await.expect_err("invalid name");
    println!("invalid sequence name: {error}");
    match &error {
        Error::Refused(problem) => {
            assert_eq!(problem.status, 422);
            assert_eq!(problem.type_, api::problem::INVALID_REQUEST);
            assert!(problem.detail.is_some(), "{problem:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let after = client.stats();
    assert_eq!(
        after.http_requests - before.http_requests,
        1,
        "a 422 is not retried"
    );

    // The wrong token: 401, not retried either.
    let intruder = Client::builder()
        .endpoints(cluster.sequencer_urls())
        .token("wrong")
        .build();
    let error = intruder.next_id_default(1).await.expect_err("wrong token");
    println!("wrong token: {error}");
    assert_eq!(error.problem().map(|p| p.status), Some(401), "{error:?}");
    assert_eq!(intruder.stats().http_requests, 1, "a 401 is not retried");

    // The refusals changed nothing: the next IDs follow the first.
    let next = client.next_id_default(1).await.expect("served");
    let first = first.expect("checked above");
    assert!(next.first > first.last(), "{first:?} then {next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_calls_get_one_range_per_key_even_across_the_leaders_death() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 3,
        ..two_sequencers()
    });
    let client = Client::builder()
        .endpoints(cluster.sequencer_urls())
        .retry_budget(Duration::from_secs(30))
        .build();
    let first = client
        .next_id_keyed("orders", 5, "order-1")
        .await
        .expect("served");
    let again = client
        .next_id_keyed("orders", 5, "order-1")
        .await
        .expect("served");
    assert_eq!(first, again, "the same key, the same IDs");
    let reused = client
        .next_id_keyed("orders", 6, "order-1")
        .await
        .expect_err("another count");
    assert_eq!(
        reused.problem().map(|p| p.type_.as_str()),
        Some(api::problem::IDEMPOTENCY_KEY_REUSED),
        "{reused:?}"
    );
    // Kill the leader, then retry through the client: the new leader gives
    // the first range back, and a new key gets IDs above everything before.
    let leader = cluster.wait_leader(SERVE_WITHIN).await;
    cluster.sequencers[leader].kill9();
    let after = client
        .next_id_keyed("orders", 5, "order-1")
        .await
        .expect("served");
    assert_eq!(after, first, "after the leader's death\n{}", cluster.logs());
    let fresh = client
        .next_id_keyed("orders", 1, "order-2")
        .await
        .expect("served");
    assert!(fresh.first > first.last(), "{first:?} then {fresh:?}");
    let stats = client.stats();
    println!("keyed calls through a leader's death: {stats:?}");
    assert_eq!(stats.calls_failed, 1, "only the reused key failed: {stats:?}");
}
