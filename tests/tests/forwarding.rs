//! A follower coalesces the calls it forwards (issue 13): concurrent
//! callers of one sequence share forwards to the leader, each gets its own
//! slice of the allocation, and the whole history is checked for
//! duplicates and reversals. The forwards and the calls they carried are
//! read from the follower's metrics and printed (no timed assertion).

// The test holds the cluster lock for its whole run on purpose (see
// tests/sequencer.rs).
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use paxid_tests::{check_history, run_load, serial, Cluster, ClusterSpec, LoadSpec};

const SERVE_WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_coalesces_concurrent_calls_and_each_gets_its_own_slice() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        acceptors: 3,
        sequencers: 2,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    let leader = cluster.wait_leader(SERVE_WITHIN).await;
    let follower = cluster.sequencer_urls()[1 - leader].clone();
    let before = forward_counters(&cluster, &follower).await;
    // Two sequences and mixed counts: slices of one forward must never
    // mix sequences, and must add up to the forward's count.
    let load = run_load(LoadSpec {
        urls: vec![follower.clone()],
        clients: 64,
        counts: vec![1, 3, 7],
        sequences: vec![None, Some("orders".into())],
        call_timeout: Duration::from_secs(5),
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let history = load.stop().await;
    let summary = check_history(&history).unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let after = forward_counters(&cluster, &follower).await;
    let (forwards, carried) = (after.0 - before.0, after.1 - before.1);
    println!(
        "through the follower: {summary:?}; {carried} calls in {forwards} forwards ({:.1} calls per forward)",
        carried as f64 / forwards.max(1) as f64
    );
    assert!(summary.ok_ops > 100, "the load made progress: {summary:?}");
    assert!(
        carried as usize >= summary.ok_ops,
        "every call served went through a forward"
    );
    assert!(
        forwards < carried,
        "64 concurrent callers share forwards: {carried} calls, {forwards} forwards"
    );
}

/// `(paxid_sequencer_forwards_total, paxid_sequencer_forwarded_requests_total)`.
async fn forward_counters(cluster: &Cluster, url: &str) -> (u64, u64) {
    (
        cluster.metric(url, "paxid_sequencer_forwards_total").await as u64,
        cluster
            .metric(url, "paxid_sequencer_forwarded_requests_total")
            .await as u64,
    )
}
