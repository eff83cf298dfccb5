//! An open-loop prober: one `POST /next-id` every [`PROBE_INTERVAL`],
//! alternating between the sequencers' published ports, each with its own
//! timeout. Closed-loop clients stall for a whole call timeout when their
//! sequencer hangs (a paused container), so they measure the client's
//! timeout rather than the outage; a probe fired every few tens of
//! milliseconds measures when the service answers again.
//!
//! Probes hand out real IDs, so they are recorded as [`Op`]s on the load's
//! clock and checked with the load's history. The load's clock is private to
//! it; [`LoadClock`] maps onto it with a known error bound and widens every
//! recorded interval by that bound, so that the checker never sees a call
//! shorter than it was (which could fake a real-time order).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paxid_tests::load::Load;
use paxid_tests::Op;

pub const PROBE_INTERVAL: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Probes in flight, at most; more are skipped until some finish.
const PROBES_IN_FLIGHT_MAX: usize = 64;

/// Nanoseconds on a [`Load`]'s clock, read without the load.
#[derive(Clone, Copy, Debug)]
pub struct LoadClock {
    base: Instant,
    /// The load's clock at `base`, at most `error_ns` early.
    base_ns: u64,
    error_ns: u64,
}

impl LoadClock {
    pub fn of(load: &Load) -> LoadClock {
        let before = load.now_ns();
        let base = Instant::now();
        let after = load.now_ns();
        LoadClock {
            base,
            base_ns: before,
            error_ns: after - before + 1,
        }
    }

    /// A lower bound of the load's clock now.
    pub fn now_ns(&self) -> u64 {
        self.base_ns + self.base.elapsed().as_nanos() as u64
    }

    /// An interval certain to contain the call's true one on the load's clock.
    fn op(&self, invoked_ns: u64, completed_ns: u64, result: Option<(String, u64, u64)>) -> Op {
        Op {
            invoked_ns,
            completed_ns: completed_ns + self.error_ns,
            result,
        }
    }
}

pub struct Prober {
    ops: Arc<Mutex<Vec<Op>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Prober {
    pub fn start(urls: Vec<String>, clock: LoadClock) -> Prober {
        let ops = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .build()
            .expect("http client");
        let task = tokio::spawn(probe_loop(urls, clock, http, ops.clone(), stop.clone()));
        Prober { ops, stop, task }
    }

    /// How long after `since_ns` the first probe invoked at or after it
    /// came back with IDs; waits up to `within`.
    pub async fn first_success_after(&self, since_ns: u64, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let done = {
                let ops = self.ops.lock().expect("probe ops lock");
                let successes = ops
                    .iter()
                    .filter(|op| op.result.is_some() && op.invoked_ns >= since_ns);
                successes.map(|op| op.completed_ns).min()
            };
            if let Some(done) = done {
                return Duration::from_nanos(done.saturating_sub(since_ns));
            }
            assert!(started.elapsed() < within, "no probe succeeded within {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// How many probes invoked in `[from_ns, to_ns)` came back with IDs.
    pub fn successes_between(&self, from_ns: u64, to_ns: u64) -> usize {
        let ops = self.ops.lock().expect("probe ops lock");
        ops.iter()
            .filter(|op| op.result.is_some() && (from_ns..to_ns).contains(&op.invoked_ns))
            .count()
    }

    /// Stops probing, waits for the probes in flight, returns every probe.
    pub async fn stop(self) -> Vec<Op> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let ops = self.ops.lock().expect("probe ops lock");
        ops.clone()
    }
}

async fn probe_loop(
    urls: Vec<String>,
    clock: LoadClock,
    http: reqwest::Client,
    ops: Arc<Mutex<Vec<Op>>>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= PROBES_IN_FLIGHT_MAX {
            continue;
        }
        let url = format!("{}/next-id", urls[next % urls.len()]);
        next += 1;
        let (http, ops) = (http.clone(), ops.clone());
        in_flight.spawn(async move {
            let invoked_ns = clock.now_ns();
            let result = next_id(&http, &url).await;
            let op = clock.op(invoked_ns, clock.now_ns(), result);
            ops.lock().expect("probe ops lock").push(op);
        });
    }
    while in_flight.join_next().await.is_some() {}
}

async fn next_id(http: &reqwest::Client, url: &str) -> Option<(String, u64, u64)> {
    let response = http.post(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let answer: api::client::NextIdResponse = response.json().await.ok()?;
    Some((answer.sequence, answer.id, answer.count))
}
