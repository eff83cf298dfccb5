//! End-to-end: a leader asked to stop (SIGTERM) hands over (issue 14,
//! item 1). It stops opening slots, finishes those in flight, and a
//! follower takes over at once; requests it held meanwhile are forwarded
//! to the new leader. Under load from plain clients (no retries: every
//! answer that is not a 200 counts as a failure) and from `paxid-client`
//! callers (retries), no call may fail, no ID may repeat or go backwards,
//! and a new leader must serve sooner than an election timeout would
//! allow.

// Each test holds the cluster lock for its whole run on purpose.
#![allow(clippy::await_holding_lock)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxid_tests::{check_history, serial, Cluster, ClusterSpec, Op};
use tokio::sync::Mutex;

const SERVE_WITHIN: Duration = Duration::from_secs(20);
/// The sequencers' default `--election-timeout-min-ms`: an election cannot
/// end sooner than this after the leader went quiet.
const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(300);

/// What one plain client saw: every call, and how each failed one failed.
#[derive(Default)]
struct Plain {
    /// Every call, with the index of the client that made it.
    ops: Vec<(usize, Op)>,
    /// Answers other than 200 (503s, in practice).
    refused: usize,
    /// When each call that was sent and got no answer (the connection was
    /// cut) was sent.
    unanswered_ns: Vec<u64>,
    /// Calls never sent: the stopped sequencer no longer accepted
    /// connections (a load balancer moves on, nothing can be lost).
    not_connected: usize,
}

/// Plain clients: one call after the other on `url`, no retry. A client
/// whose sequencer refuses connections moves to `fallback`, as a load
/// balancer drops a stopped endpoint.
fn plain_clients(
    count: usize,
    url: String,
    fallback: Option<String>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    record: Arc<Mutex<Plain>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    (0..count)
        .map(|i| {
            let (http, stop, record) = (http.clone(), stop.clone(), record.clone());
            let who = format!("{url} #{i}");
            let (mut url, fallback) = (url.clone(), fallback.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let invoked_ns = epoch.elapsed().as_nanos() as u64;
                    let sent = http.post(format!("{url}/next-id")).send().await;
                    let answer = match sent {
                        Ok(response) if response.status().is_success() => response
                            .json::<api::client::NextIdResponse>()
                            .await
                            .map(|a| (a.sequence, a.id, a.count))
                            .map_err(|_| Some(false)),
                        Ok(response) => {
                            let status = response.status();
                            let body = response.text().await.unwrap_or_default();
                            println!("a plain client of {url} got {status}: {body}");
                            Err(Some(true))
                        }
                        Err(error) if error.is_connect() => Err(None),
                        Err(_) => Err(Some(false)),
                    };
                    let completed_ns = epoch.elapsed().as_nanos() as u64;
                    let mut record = record.lock().await;
                    match &answer {
                        Ok(_) => {}
                        Err(Some(true)) => record.refused += 1,
                        Err(Some(false)) => record.unanswered_ns.push(invoked_ns),
                        Err(None) => record.not_connected += 1,
                    }
                    let op = Op {
                        invoked_ns,
                        completed_ns,
                        result: answer.clone().ok(),
                    };
                    record.ops.push((client_key(&who), op));
                    drop(record);
                    match (&answer, &fallback) {
                        (Ok(_), _) => {}
                        (Err(None), Some(next)) => url = next.clone(),
                        (Err(_), _) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect()
}

/// Callers of one `paxid-client` (retries with `Retry-After`, endpoint
/// failover, coalescing); a failed call is one that failed after retries.
fn library_callers(
    count: usize,
    client: paxid_client::Client,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    ops: Arc<Mutex<Vec<(usize, Op)>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..count)
        .map(|i| {
            let (client, stop, ops) = (client.clone(), stop.clone(), ops.clone());
            tokio::spawn(async move {
                let sequence = if i % 2 == 0 { "default" } else { "orders" };
                while !stop.load(Ordering::Relaxed) {
                    let invoked_ns = epoch.elapsed().as_nanos() as u64;
                    let result = client.next_id(sequence, 1 + (i as u64 % 3)).await;
                    let completed_ns = epoch.elapsed().as_nanos() as u64;
                    let failed = result.is_err();
                    let op = Op {
                        invoked_ns,
                        completed_ns,
                        result: result.ok().map(|a| (sequence.to_owned(), a.first, a.count)),
                    };
                    ops.lock().await.push((client_key(&format!("library #{i}")), op));
                    if failed {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect()
}

/// The longest time in `[from_ns, to_ns]` with no successful call
/// completing.
fn longest_pause(ops: &[Op], from_ns: u64, to_ns: u64) -> Duration {
    let mut done: Vec<u64> = ops
        .iter()
        .filter(|op| op.result.is_some())
        .map(|op| op.completed_ns)
        .filter(|t| (from_ns..=to_ns).contains(t))
        .collect();
    done.sort_unstable();
    let mut last = from_ns;
    let mut longest = 0;
    for t in done.into_iter().chain([to_ns]) {
        longest = longest.max(t - last);
        last = t;
    }
    Duration::from_nanos(longest)
}

/// A number per client name, for tagging its calls.
fn client_key(who: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    who.hash(&mut hasher);
    hasher.finish() as usize
}

/// Per client, IDs strictly increase (a client's calls are sequential):
/// returns how many went backwards or repeated.
fn reversals(ops: &[(usize, Op)]) -> usize {
    let mut last: std::collections::BTreeMap<(usize, &str), u64> = Default::default();
    let mut reversed = 0;
    for (client, op) in ops {
        if let Some((sequence, first, count)) = &op.result {
            let previous = last.insert((*client, sequence.as_str()), first + count - 1);
            reversed += usize::from(previous.is_some_and(|p| *first <= p));
        }
    }
    reversed
}

fn untagged(ops: &[(usize, Op)]) -> Vec<Op> {
    ops.iter().map(|(_, op)| op.clone()).collect()
}

/// The index of a sequencer other than `stopped` whose status says it leads.
async fn leading_follower(cluster: &Cluster, stopped: usize) -> Option<usize> {
    for (i, url) in cluster.sequencer_urls().iter().enumerate() {
        if i == stopped {
            continue;
        }
        let status = cluster
            .http
            .get(format!("{url}/v1/status"))
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        let Ok(status) = status else { continue };
        let Ok(status) = status.json::<api::client::SequencerStatus>().await else {
            continue;
        };
        if status.role == "leader" {
            return Some(i);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_asked_to_stop_hands_over_without_a_failed_call() {
    hand_over_under_load(3, false).await;
}

/// As a rolling update of two replicas goes: the follower is restarted
/// (SIGTERM, start) and serves again, then the leader is stopped, and the
/// freshly started follower must take over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_takes_over_from_a_leader_asked_to_stop() {
    hand_over_under_load(2, true).await;
}

async fn hand_over_under_load(sequencers: usize, restart_follower_first: bool) {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    let mut leader = cluster.wait_leader(SERVE_WITHIN).await;
    if restart_follower_first {
        let follower = (leader + 1) % sequencers;
        let exit = cluster.sequencers[follower].terminate();
        assert!(
            exit.is_some_and(|s| s.success()),
            "the follower did not exit cleanly: {exit:?}"
        );
        cluster.sequencers[follower].start();
        cluster.wait_serving(SERVE_WITHIN).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        leader = cluster.wait_leader(SERVE_WITHIN).await;
    }
    let urls = cluster.sequencer_urls();
    let leader_url = urls[leader].clone();
    let followers: Vec<String> = urls.iter().filter(|u| **u != leader_url).cloned().collect();

    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // Plain clients of the leader itself (their calls are in flight or held
    // when it is told to stop) and of each follower (forwarded to it).
    let at_leader = Arc::new(Mutex::new(Plain::default()));
    let at_followers = Arc::new(Mutex::new(Plain::default()));
    let mut tasks = plain_clients(
        4,
        leader_url.clone(),
        Some(followers[0].clone()),
        stop.clone(),
        epoch,
        at_leader.clone(),
    );
    for follower in &followers {
        tasks.extend(plain_clients(
            2,
            follower.clone(),
            None,
            stop.clone(),
            epoch,
            at_followers.clone(),
        ));
    }
    // Library callers, the stopped leader first among their endpoints.
    let client = paxid_client::Client::builder()
        .endpoints(std::iter::once(leader_url.clone()).chain(followers.iter().cloned()))
        .build();
    let library_ops = Arc::new(Mutex::new(Vec::new()));
    tasks.extend(library_callers(
        8,
        client.clone(),
        stop.clone(),
        epoch,
        library_ops.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stopped_ns = epoch.elapsed().as_nanos() as u64;
    let stopped_at = Instant::now();
    // SIGTERM, as Kubernetes sends it.
    cluster.sequencers[leader].sigterm();
    let mut successor = None;
    let mut takeover = None;
    let mut exit = None;
    let mut exit_after = None;
    while exit.is_none() || successor.is_none() {
        assert!(
            stopped_at.elapsed() < SERVE_WITHIN,
            "no takeover or no exit\n{}",
            cluster.logs()
        );
        if successor.is_none() {
            if let Some(new) = leading_follower(&cluster, leader).await {
                successor = Some(new);
                takeover = Some(stopped_at.elapsed());
            }
        }
        if exit.is_none() {
            if let Some(status) = cluster.sequencers[leader].exit_status() {
                exit = Some(status);
                exit_after = Some(stopped_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (successor, takeover, exit_after) = (
        successor.unwrap_or(0),
        takeover.unwrap_or_default(),
        exit_after.unwrap_or_default(),
    );
    // From then on the stopped sequencer is a follower on its way out, which
    // a load balancer (a Kubernetes Service) no longer routes to: plain
    // clients that still call it may see its connections close.
    let took_over_ns = stopped_ns + takeover.as_nanos() as u64;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window_end_ns = epoch.elapsed().as_nanos() as u64;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client task");
    }

    let at_leader = at_leader.lock().await;
    let at_followers = at_followers.lock().await;
    let library_ops = library_ops.lock().await;
    let stats = client.stats();
    let library_failed = library_ops.iter().filter(|(_, op)| op.result.is_none()).count();
    let tagged: Vec<(usize, Op)> = at_leader
        .ops
        .iter()
        .chain(&at_followers.ops)
        .chain(library_ops.iter())
        .cloned()
        .collect();
    let all = untagged(&tagged);
    println!(
        "SIGTERM of the leader sequencer-{}: sequencer-{} leads {takeover:?} after it; the old one exited \
         {exit_after:?} after it ({exit:?})",
        leader + 1,
        successor + 1
    );
    println!(
        "plain clients of the stopped leader: {} calls, {} answered other than 200 (503), {} sent and \
         unanswered ({} of them sent before the successor led), {} not sent (connection refused once it stopped listening; then they moved on); \
         longest pause {:?}",
        at_leader.ops.len(),
        at_leader.refused,
        at_leader.unanswered_ns.len(),
        at_leader.unanswered_ns.iter().filter(|t| **t < took_over_ns).count(),
        at_leader.not_connected,
        longest_pause(&untagged(&at_leader.ops), stopped_ns, window_end_ns),
    );
    println!(
        "plain clients of the followers: {} calls, {} answered other than 200 (503), {} sent and \
         unanswered, {} not sent; longest pause {:?}",
        at_followers.ops.len(),
        at_followers.refused,
        at_followers.unanswered_ns.len(),
        at_followers.not_connected,
        longest_pause(&untagged(&at_followers.ops), stopped_ns, window_end_ns),
    );
    println!(
        "paxid-client callers: {} calls, {library_failed} failed after retries, {} HTTP requests for {} \
         calls; longest pause {:?}",
        library_ops.len(),
        stats.http_requests,
        stats.calls,
        longest_pause(&untagged(&library_ops), stopped_ns, window_end_ns),
    );
    println!(
        "all clients: longest pause {:?}",
        longest_pause(&all, stopped_ns, window_end_ns)
    );
    let summary = check_history(&all).unwrap_or_else(|violation| panic!("{violation}\n{}", cluster.logs()));
    let reversed = reversals(&tagged);
    println!("history: {summary:?}; per-client reversals or repeats: {reversed}");
    assert_eq!(reversed, 0, "a client's IDs went backwards");

    assert!(
        exit.is_some_and(|s| s.success()),
        "the old leader did not exit cleanly: {exit:?}"
    );
    assert_eq!(
        (
            at_leader.refused,
            at_leader
                .unanswered_ns
                .iter()
                .filter(|t| **t < took_over_ns)
                .count()
        ),
        (0, 0),
        "a call sent to the stopped leader before its successor led failed, or got a 503\n{}",
        cluster.logs()
    );
    assert_eq!(
        (
            at_followers.refused,
            at_followers.unanswered_ns.len(),
            at_followers.not_connected
        ),
        (0, 0, 0),
        "plain clients of the followers saw failures\n{}",
        cluster.logs()
    );
    assert_eq!(library_failed, 0, "paxid-client calls failed after retries");
    assert!(
        takeover < ELECTION_TIMEOUT_MIN,
        "the new leader took {takeover:?}, no faster than an election timeout ({ELECTION_TIMEOUT_MIN:?})"
    );
}
