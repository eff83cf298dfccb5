//! The real binary under kill -9: every promise and accept acknowledged
//! before the kill is there after the restart, and what was refused is
//! still refused. Also: group commit, SIGTERM, and the identity check, all
//! over real processes and real HTTP.
//!
//! The kill points come from a seed printed at the start; set
//! `PAXID_TEST_SEED` to replay one.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::internal::{AcceptResponse, Ballot, PrepareResponse, Proposal};
use common::{metric, metric_sum, value_for, Client, Process};
use rand::{Rng, SeedableRng};

const KILL_POINTS: usize = 6;
const WRITERS: u32 = 4;
const SLOTS_PER_ACCEPT: u64 = 8;
const ACCEPTS_PER_PREPARE: usize = 6;
const LOG_PAGE_ENTRIES: usize = 10_000;

/// What the acceptor acknowledged to the writers.
#[derive(Default)]
struct Acks {
    promises: Vec<Ballot>,
    accepts: Vec<(u64, Ballot)>,
}

fn order(b: Ballot) -> (u64, u32) {
    (b.round, b.node)
}

fn seed() -> u64 {
    let seed = std::env::var("PAXID_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64
        });
    eprintln!("crash test seed: {seed} (replay with PAXID_TEST_SEED={seed})");
    seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_votes_survive_kill_9() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let dir = tempfile::tempdir().expect("temp dir");
    let acks = Arc::new(Mutex::new(Acks::default()));
    let next_slot = Arc::new(AtomicU64::new(0));
    let mut process = Process::start(dir.path(), &[]);
    for point in 0..KILL_POINTS {
        let client = Client::new(&process.url);
        client.found_alone().await;
        let promised_round = client.status().await.expect("status").promised.round;
        let next_round = Arc::new(AtomicU64::new(promised_round + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (1..=WRITERS)
            .map(|node| {
                let writer = Writer {
                    client: client.clone(),
                    node,
                    acks: acks.clone(),
                    next_round: next_round.clone(),
                    next_slot: next_slot.clone(),
                    stop: stop.clone(),
                };
                tokio::spawn(writer.run())
            })
            .collect();
        let kill_after = Duration::from_millis(rng.random_range(30..600));
        tokio::time::sleep(kill_after).await;
        process.kill_9();
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.await.expect("writer task");
        }
        process = Process::start(dir.path(), &[]);
        let (promises, accepts) = {
            let acks = acks.lock().expect("acks");
            (acks.promises.clone(), acks.accepts.clone())
        };
        eprintln!(
            "kill point {point} after {kill_after:?}: {} promises, {} slots acknowledged so far",
            promises.len(),
            accepts.len()
        );
        verify(&Client::new(&process.url), &promises, &accepts).await;
    }
    let acks = acks.lock().expect("acks");
    assert!(
        acks.promises.len() >= KILL_POINTS,
        "the writers got too little acknowledged to test anything"
    );
    assert!(!acks.accepts.is_empty(), "no accept was ever acknowledged");
}

struct Writer {
    client: Client,
    node: u32,
    acks: Arc<Mutex<Acks>>,
    next_round: Arc<AtomicU64>,
    next_slot: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Writer {
    /// Prepares ever higher ballots and accepts runs of fresh slots under
    /// them, recording every acknowledgement, until the process dies.
    async fn run(self) {
        while !self.stop.load(Ordering::SeqCst) {
            let ballot = Ballot {
                epoch: 0,
                round: self.next_round.fetch_add(1, Ordering::SeqCst),
                node: self.node,
            };
            // Only the votes on fresh slots matter to this writer.
            let from = self.next_slot.load(Ordering::SeqCst);
            match self.client.prepare(ballot, from).await {
                Ok(PrepareResponse::Promised { .. }) => self.acks.lock().expect("acks").promises.push(ballot),
                Ok(PrepareResponse::Rejected { promised }) => {
                    self.next_round.fetch_max(promised.round + 1, Ordering::SeqCst);
                    continue;
                }
                Err(_) => return,
            }
            for _ in 0..ACCEPTS_PER_PREPARE {
                let first = self.next_slot.fetch_add(SLOTS_PER_ACCEPT, Ordering::SeqCst);
                let slots = first..first + SLOTS_PER_ACCEPT;
                let proposals = slots
                    .clone()
                    .map(|slot| Proposal {
                        slot,
                        value: value_for(slot),
                    })
                    .collect();
                match self.client.accept(ballot, proposals).await {
                    Ok(AcceptResponse::Accepted { .. }) => {
                        self.acks
                            .lock()
                            .expect("acks")
                            .accepts
                            .extend(slots.map(|slot| (slot, ballot)));
                    }
                    Ok(AcceptResponse::Rejected { promised }) => {
                        self.next_round.fetch_max(promised.round + 1, Ordering::SeqCst);
                        break;
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

async fn verify(client: &Client, promises: &[Ballot], accepts: &[(u64, Ballot)]) {
    let log = read_whole_log(client).await;
    for (slot, ballot) in accepts {
        let held = log
            .get(slot)
            .unwrap_or_else(|| panic!("acknowledged accept of slot {slot} under {ballot:?} is lost"));
        assert!(
            order(*held) >= order(*ballot),
            "slot {slot}: holds {held:?}, acknowledged {ballot:?}"
        );
    }
    let promised = client.status().await.expect("status").promised;
    let highest = promises
        .iter()
        .chain(accepts.iter().map(|(_, b)| b))
        .copied()
        .max_by_key(|b| order(*b));
    let Some(highest) = highest else { return };
    assert!(
        order(promised) >= order(highest),
        "promised {promised:?} is below the acknowledged {highest:?}"
    );
    // What was refused before the kill is still refused.
    let same = client.prepare(highest, 0).await.expect("prepare");
    assert!(
        matches!(same, PrepareResponse::Rejected { .. }),
        "a prepare at an acknowledged promise passed: {same:?}"
    );
    let below = Ballot {
        epoch: 0,
        round: highest.round - 1,
        node: u32::MAX,
    };
    let fresh_slot = u64::MAX - 1;
    let low = client
        .accept(
            below,
            vec![Proposal {
                slot: fresh_slot,
                value: value_for(1),
            }],
        )
        .await
        .expect("accept");
    assert!(
        matches!(low, AcceptResponse::Rejected { .. }),
        "an accept below the promise passed: {low:?}"
    );
}

async fn read_whole_log(client: &Client) -> BTreeMap<u64, Ballot> {
    let mut log = BTreeMap::new();
    let mut from = 0;
    loop {
        let page = client.log(from, LOG_PAGE_ENTRIES).await.expect("log");
        let Some(last) = page.entries.last().map(|e| e.slot) else {
            return log;
        };
        log.extend(page.entries.into_iter().map(|e| (e.slot, e.ballot)));
        from = last + 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accepts_share_fsyncs() {
    const WRITERS: u64 = 64;
    const ACCEPTS_EACH: u64 = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let process = Process::start(dir.path(), &[]);
    let client = Client::new(&process.url);
    client.found_alone().await;
    let ballot = Ballot {
        epoch: 0,
        round: 1,
        node: 1,
    };
    assert!(matches!(
        client.prepare(ballot, 0).await.expect("prepare"),
        PrepareResponse::Promised { .. }
    ));
    let before = metric(
        &client.metrics().await.expect("metrics"),
        "paxid_acceptor_fsync_seconds_count",
    );
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..ACCEPTS_EACH {
                    let slot = w * ACCEPTS_EACH + i;
                    let reply = client
                        .accept(
                            ballot,
                            vec![Proposal {
                                slot,
                                value: value_for(slot),
                            }],
                        )
                        .await
                        .expect("accept");
                    assert!(matches!(reply, AcceptResponse::Accepted { .. }));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let text = client.metrics().await.expect("metrics");
    let fsyncs = metric(&text, "paxid_acceptor_fsync_seconds_count") - before;
    let accepts = (WRITERS * ACCEPTS_EACH) as f64;
    eprintln!("{accepts} accepts took {fsyncs} fsyncs");
    assert!(
        fsyncs < accepts,
        "{accepts} concurrent accepts took {fsyncs} fsyncs: no group commit"
    );
    assert_eq!(client.status().await.expect("status").log_entries as f64, accepts);
    assert!(metric_sum(&text, "paxid_http_requests_total{route=\"/v1/accept\"") >= accepts);
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let process = Process::start(dir.path(), &[]);
    let client = Client::new(&process.url);
    client.found_alone().await;
    let ballot = Ballot {
        epoch: 0,
        round: 3,
        node: 2,
    };
    client.prepare(ballot, 0).await.expect("prepare");
    client
        .accept(
            ballot,
            vec![Proposal {
                slot: 0,
                value: value_for(0),
            }],
        )
        .await
        .expect("accept");
    let status = process.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0, got {status:?}");
    let process = Process::start(dir.path(), &[]);
    let client = Client::new(&process.url);
    client.found_alone().await;
    assert_eq!(client.status().await.expect("status").promised, ballot);
    assert_eq!(client.log(0, 10).await.expect("log").entries.len(), 1);
}

#[tokio::test]
async fn a_data_dir_of_another_cluster_is_refused_with_both_ids() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(Process::start(dir.path(), &["--cluster-id", "alpha"]));
    let (status, stderr) = common::run_to_exit(dir.path(), &["--cluster-id", "beta"]);
    assert!(!status.success());
    assert!(
        stderr.contains("\"alpha\"") && stderr.contains("\"beta\""),
        "{stderr}"
    );
}
