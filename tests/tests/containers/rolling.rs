//! The rolling restart (issue 14 item 1): every sequencer, every acceptor
//! and the learner restarted one at a time (`docker restart`: SIGTERM, wait
//! for the exit, start), each back before the next, as a StatefulSet
//! rolling update does, while dedicated clients call the sequencers:
//! `paxid-client` callers (retries with `Retry-After`, endpoint failover)
//! and plain clients (no retry; a refused connection moves them to the
//! other sequencer, as a Service drops a stopped pod). Per restart it
//! prints the 503s the plain clients got, their calls cut, the longest
//! time no dedicated client got IDs, and whether the same leader (node and
//! ballot) leads afterwards: an acceptor's or the learner's restart should
//! cost no election. Asserted: no `paxid-client`
//! call fails after its retries, no client's IDs go backwards, and the
//! calls join the suite's history (no duplicate, no reversal, every
//! allocation delivered to the subscriber).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paxid_tests::Op;

use super::compose::{ACCEPTORS, LEARNER, SEQUENCERS};
use super::probe::LoadClock;
use super::{Run, RECOVER_WITHIN};

/// How one call of a dedicated client ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ids,
    /// A plain client's call answered 503 (or another non-200).
    Refused,
    /// A plain client's call sent and not answered (connection cut).
    Cut,
    /// A plain client's connection refused: nothing was sent.
    NotSent,
    /// A `paxid-client` call that failed after its retries.
    Failed,
}

struct Call {
    /// The client that made it: its IDs must strictly increase.
    client: usize,
    op: Op,
    outcome: Outcome,
}

struct Clients {
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Each non-200 answer a plain client got: status, URL and problem.
    refusals: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    fn start(urls: Vec<String>, clock: Arc<LoadClock>) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let library = paxid_client::Client::builder().endpoints(urls.clone()).build();
        for client in 0..4 {
            let (library, stop, calls, clock) = (library.clone(), stop.clone(), calls.clone(), clock.clone());
            tasks.push(tokio::spawn(async move {
                let sequence = if client % 2 == 0 { "default" } else { "orders" };
                while !stop.load(Ordering::Relaxed) {
                    let invoked_ns = clock.now_ns();
                    let result = library.next_id(sequence, 1).await;
                    let op = Op {
                        invoked_ns,
                        completed_ns: clock.now_ns(),
                        result: result
                            .as_ref()
                            .ok()
                            .map(|a| (sequence.to_owned(), a.first, a.count)),
                    };
                    let outcome = if result.is_ok() {
                        Outcome::Ids
                    } else {
                        Outcome::Failed
                    };
                    calls
                        .lock()
                        .expect("calls lock")
                        .push(Call { client, op, outcome });
                    if outcome != Outcome::Ids {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        for client in 4..8 {
            let (http, stop, calls, clock, urls) = (
                http.clone(),
                stop.clone(),
                calls.clone(),
                clock.clone(),
                urls.clone(),
            );
            let refusals = refusals.clone();
            tasks.push(tokio::spawn(async move {
                let mut url = client % urls.len();
                while !stop.load(Ordering::Relaxed) {
                    let invoked_ns = clock.now_ns();
                    let sent = http.post(format!("{}/next-id", urls[url])).send().await;
                    let (outcome, result) = match sent {
                        Ok(r) if r.status().is_success() => {
                            match r.json::<api::client::NextIdResponse>().await {
                                Ok(a) => (Outcome::Ids, Some((a.sequence, a.id, a.count))),
                                Err(_) => (Outcome::Cut, None),
                            }
                        }
                        Ok(r) => {
                            let status = r.status();
                            let body = r.text().await.unwrap_or_default();
                            let detail = format!("{status} from {}: {body}", urls[url]);
                            refusals.lock().expect("refusals lock").push(detail);
                            (Outcome::Refused, None)
                        }
                        Err(e) if e.is_connect() => (Outcome::NotSent, None),
                        Err(_) => (Outcome::Cut, None),
                    };
                    let op = Op {
                        invoked_ns,
                        completed_ns: clock.now_ns(),
                        result,
                    };
                    calls
                        .lock()
                        .expect("calls lock")
                        .push(Call { client, op, outcome });
                    match outcome {
                        Outcome::Ids => {}
                        Outcome::NotSent | Outcome::Cut => url = (url + 1) % urls.len(),
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }));
        }
        Clients {
            stop,
            calls,
            refusals,
            tasks,
        }
    }

    async fn stop(self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        std::mem::take(&mut *self.calls.lock().expect("calls lock"))
    }

    fn count(&self, from_ns: u64, to_ns: u64, outcome: Outcome) -> usize {
        let calls = self.calls.lock().expect("calls lock");
        calls
            .iter()
            .filter(|c| c.outcome == outcome && (from_ns..=to_ns).contains(&c.op.invoked_ns))
            .count()
    }

    /// The longest time in `[from_ns, to_ns]` with no call getting IDs.
    fn longest_pause(&self, from_ns: u64, to_ns: u64) -> Duration {
        let calls = self.calls.lock().expect("calls lock");
        let mut done: Vec<u64> = calls
            .iter()
            .filter(|c| c.outcome == Outcome::Ids && (from_ns..=to_ns).contains(&c.op.completed_ns))
            .map(|c| c.op.completed_ns)
            .collect();
        done.sort_unstable();
        let mut last = from_ns;
        let mut longest = 0;
        for t in done.into_iter().chain([to_ns]) {
            longest = longest.max(t.saturating_sub(last));
            last = t;
        }
        Duration::from_nanos(longest)
    }
}

impl Run<'_> {
    /// The rolling restart; its calls go into `self.probes` (the suite's
    /// history and delivery checks).
    pub(crate) async fn rolling_restart(&mut self) {
        println!("--- rolling restart: every sequencer, acceptor and learner, one at a time ---");
        // Earlier steps restarted acceptors without waiting for them.
        for index in 0..ACCEPTORS.len() {
            self.wait_voting(index, self.load.now_ns()).await;
        }
        let clock = Arc::new(LoadClock::of(&self.load));
        let clients = Clients::start(self.compose.sequencer_urls(), clock);
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A StatefulSet updates from the highest ordinal down.
        let order = SEQUENCERS
            .iter()
            .rev()
            .chain(ACCEPTORS.iter().rev())
            .chain([LEARNER].iter());
        let mut table = Vec::new();
        let mut failures = 0;
        let mut refusals = 0;
        for service in order {
            let before = self.leadership().await;
            let leader = before.map(|(i, _)| SEQUENCERS[i]);
            let role = if leader == Some(*service) { " (leader)" } else { "" };
            let from_ns = self.load.now_ns();
            let started = Instant::now();
            self.compose.restart(service).await;
            let stopped_in = started.elapsed();
            self.wait_back(service).await;
            let back_ns = self.load.now_ns();
            // As a rolling update waits for readiness, then goes on.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let to_ns = self.load.now_ns();
            // An acceptor's or the learner's restart should cost no election.
            let after = match self.leadership().await {
                Some(now) if Some(now) == before => "same".to_owned(),
                Some((i, _)) => format!("new: {}", SEQUENCERS[i]),
                None => "none".to_owned(),
            };
            let refused = clients.count(from_ns, to_ns, Outcome::Refused);
            let cut = clients.count(from_ns, to_ns, Outcome::Cut);
            let not_sent = clients.count(from_ns, to_ns, Outcome::NotSent);
            let failed = clients.count(from_ns, to_ns, Outcome::Failed);
            failures += failed;
            refusals += refused;
            let line = format!(
                "{:<24} {:>9.2?} {:>9.2?} {:>5} {:>5} {:>8} {:>7} {:>10.1?}  {after}",
                format!("{service}{role}"),
                stopped_in,
                Duration::from_nanos(back_ns - from_ns),
                refused,
                cut,
                not_sent,
                failed,
                clients.longest_pause(from_ns, to_ns),
            );
            println!("  {line}");
            table.push(line);
        }
        let refused: Vec<String> = clients.refusals.lock().expect("refusals lock").clone();
        let calls = clients.stop().await;
        for detail in &refused {
            println!("  a plain client got {detail}");
        }
        println!(
            "rolling restart: {:<22} {:>9} {:>9} {:>5} {:>5} {:>8} {:>7} {:>10}  leader",
            "restarted", "restart", "back", "503s", "cut", "not sent", "failed", "longest"
        );
        println!(
            "                  {:<22} {:>9} {:>9} {:>5} {:>5} {:>8} {:>7} {:>10}  after",
            "", "(docker)", "(ready)", "plain", "plain", "plain", "library", "pause"
        );
        for line in &table {
            println!("                  {line}");
        }
        let mut last: std::collections::BTreeMap<(usize, String), u64> = Default::default();
        let mut reversals = 0;
        for call in &calls {
            if let Some((sequence, first, count)) = &call.op.result {
                let previous = last.insert((call.client, sequence.clone()), first + count - 1);
                reversals += usize::from(previous.is_some_and(|p| *first <= p));
            }
        }
        let ok = calls.iter().filter(|c| c.outcome == Outcome::Ids).count();
        println!(
            "rolling restart: {} calls, {ok} with IDs, {failures} paxid-client calls failed after retries, \
             {refusals} 503s to plain clients, {reversals} per-client reversals",
            calls.len()
        );
        self.probes.extend(calls.into_iter().map(|c| c.op));
        assert_eq!(
            reversals, 0,
            "a client's IDs went backwards in the rolling restart"
        );
        assert_eq!(
            failures,
            0,
            "paxid-client calls failed after retries in the rolling restart\n{}",
            self.compose.report().await
        );
    }

    /// The leader and its ballot (round, node), if one leads.
    async fn leadership(&self) -> Option<(usize, (u64, u32))> {
        let index = self.compose.leader().await?;
        let ballot = self.compose.status(index).await?.ballot?;
        Some((index, (ballot.round, ballot.node)))
    }

    /// Until `service` serves again: a sequencer answers `POST /next-id`,
    /// an acceptor votes, the learner answers.
    async fn wait_back(&mut self, service: &str) {
        if let Some(index) = ACCEPTORS.iter().position(|a| *a == service) {
            self.wait_voting(index, self.load.now_ns()).await;
            return;
        }
        if SEQUENCERS.contains(&service) {
            let since = self.load.now_ns();
            self.both_sequencers_serve(since).await;
            return;
        }
        let started = Instant::now();
        while self.compose.learner_status().await.is_none() {
            assert!(started.elapsed() < RECOVER_WITHIN, "the learner did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
