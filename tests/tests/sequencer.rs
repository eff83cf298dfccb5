//! End-to-end: real acceptors and sequencers, concurrent clients, faults.
//! Every history goes through the linearizability checker.

// Each test holds the cluster lock for its whole run on purpose: tests run
// on separate threads with separate runtimes, so a std mutex is right here.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use paxid_tests::{check_history, run_load, serial, Cluster, ClusterSpec, LoadSpec};

const SERVE_WITHIN: Duration = Duration::from_secs(20);

fn mixed_load(cluster: &Cluster) -> LoadSpec {
    LoadSpec {
        urls: cluster.sequencer_urls(),
        clients: 12,
        counts: vec![1, 1, 7, 1, 100],
        sequences: vec![None, Some("orders".into()), Some("users.v2".into())],
        ..LoadSpec::default()
    }
}

fn assert_linearizable(cluster: &Cluster, history: &[paxid_tests::Op]) -> paxid_tests::checker::CheckSummary {
    match check_history(history) {
        Ok(summary) => {
            println!("history: {summary:?}");
            summary
        }
        Err(violation) => panic!("{violation}\n{}", cluster.logs()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_mixed_counts_and_sequences() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::default());
    cluster.wait_serving(SERVE_WITHIN).await;
    let load = run_load(mixed_load(&cluster));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let history = load.stop().await;
    let summary = assert_linearizable(&cluster, &history);
    assert!(
        summary.ok_ops > 100,
        "too few successful calls: {summary:?}\n{}",
        cluster.logs()
    );
    assert_eq!(summary.sequences, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_then_each_follower() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::default());
    cluster.wait_serving(SERVE_WITHIN).await;
    let load = run_load(mixed_load(&cluster));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for round in 0..2 {
        let leader = cluster.wait_leader(SERVE_WITHIN).await;
        let killed_at = load.now_ns();
        cluster.sequencers[leader].kill9();
        let failover = load.wait_success_after(killed_at, SERVE_WITHIN).await;
        println!(
            "failover {round}: first success {failover:?} after kill -9 of the leader sequencer-{}",
            leader + 1
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.sequencers[leader].start();
    }
    // Then each follower in turn (never the leader).
    for i in 0..cluster.sequencers.len() {
        let leader = cluster.wait_leader(SERVE_WITHIN).await;
        if i == leader {
            continue;
        }
        cluster.sequencers[i].kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.sequencers[i].start();
    }
    let since = load.now_ns();
    load.wait_success_after(since, SERVE_WITHIN).await;
    let history = load.stop().await;
    assert_linearizable(&cluster, &history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_minority_of_acceptors_and_restarting_them() {
    for (acceptors, kill) in [(3usize, 1usize), (5, 2)] {
        let _serial = serial();
        let spec = ClusterSpec {
            acceptors,
            ..ClusterSpec::default()
        };
        let mut cluster = Cluster::start(spec);
        cluster.wait_serving(SERVE_WITHIN).await;
        let load = run_load(mixed_load(&cluster));
        tokio::time::sleep(Duration::from_millis(500)).await;
        for a in 0..kill {
            cluster.acceptors[a].kill9();
        }
        let since = load.now_ns();
        let resumed = load.wait_success_after(since, SERVE_WITHIN).await;
        println!(
            "{kill} of {acceptors} acceptors killed: service continued, first success after {resumed:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        for a in 0..kill {
            cluster.acceptors[a].start();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The restarted ones must be usable: now kill others so that a
        // restarted acceptor is needed for a majority.
        for a in kill..2 * kill {
            cluster.acceptors[a].kill9();
        }
        let since = load.now_ns();
        let resumed = load.wait_success_after(since, SERVE_WITHIN).await;
        println!("restarted acceptors carry the quorum: first success after {resumed:?}");
        for a in kill..2 * kill {
            cluster.acceptors[a].start();
        }
        let history = load.stop().await;
        assert_linearizable(&cluster, &history);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_hands_out_nothing_from_its_old_ballot() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::default());
    cluster.wait_serving(SERVE_WITHIN).await;
    // Clients wait longer than the pause, so the calls held by the paused
    // leader get their answers when it wakes up under its old ballot: a
    // late answer with IDs would be a reversal or a duplicate the checker
    // sees (fencing at the process level, not only in the core).
    let load = run_load(LoadSpec {
        call_timeout: PAUSE * 3,
        ..mixed_load(&cluster)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A pause must catch calls in flight at the leader; if leadership had
    // just moved (a busy machine), pause the new leader again.
    let mut held_calls = 0;
    for attempt in 1..=3 {
        let leader = cluster.wait_leader(SERVE_WITHIN).await;
        // `pause` runs kill(1), which takes milliseconds to start on a busy
        // machine: the pause begins when it returns, not when it was called.
        // (Timed from the call, calls served before the signal landed were
        // counted as the first success after the pause, and calls the
        // paused leader held were not counted as held.)
        cluster.sequencers[leader].pause();
        let paused_at = load.now_ns();
        let failover = load.wait_success_after(paused_at, SERVE_WITHIN).await;
        println!("SIGSTOP of the leader (attempt {attempt}): first success after {failover:?}");
        tokio::time::sleep(PAUSE.saturating_sub(failover)).await;
        let resumed_at = load.now_ns();
        cluster.sequencers[leader].resume();
        // The old leader wakes up with requests in flight under its old
        // ballot; clients keep calling it directly too.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let history = load.history().await;
        let held: Vec<_> = history
            .iter()
            .filter(|op| op.invoked_ns < paused_at && op.completed_ns > resumed_at)
            .collect();
        let held_with_ids = held.iter().filter(|op| op.result.is_some()).count();
        println!(
            "calls held through the pause: {} ({held_with_ids} answered with IDs, the rest refused)",
            held.len()
        );
        held_calls = held.len();
        if held_calls > 0 {
            break;
        }
    }
    let history = load.stop().await;
    assert!(
        held_calls > 0,
        "no call spanned a pause in 3 attempts: the old leader's late answers were not exercised"
    );
    assert_linearizable(&cluster, &history);
}

/// How long the leader stays stopped in the SIGSTOP test.
const PAUSE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_process_keeps_ids_increasing() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::default());
    cluster.wait_serving(SERVE_WITHIN).await;
    let load = run_load(mixed_load(&cluster));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = load.stop().await;
    for proc in cluster.acceptors.iter_mut().chain(cluster.sequencers.iter_mut()) {
        proc.kill9();
    }
    for proc in cluster.acceptors.iter_mut().chain(cluster.sequencers.iter_mut()) {
        proc.start();
    }
    cluster.wait_serving(SERVE_WITHIN).await;
    let load = run_load(mixed_load(&cluster));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = load.stop().await;
    // One history: every call after the restart began after every call
    // before it ended, so the checker demands strictly higher IDs.
    let offset = before.iter().map(|op| op.completed_ns).max().unwrap_or(0) + 1;
    let mut history = before;
    history.extend(after.into_iter().map(|mut op| {
        op.invoked_ns += offset;
        op.completed_ns += offset;
        op
    }));
    assert_linearizable(&cluster, &history);
}
