//! Learning chosen slots: pushed by the leader, pulled from the acceptors.
//!
//! One task (the "learning actor") owns the [`paxos_core::Learner`]: it takes
//! pushes and pulled votes from a channel, and appends every released slot
//! to the store (synced) before it publishes the new learned point. Nothing
//! downstream (delivery, progress reports) sees a slot before it is durable.
//! Because the actor is never cancelled mid-append, two appends can never
//! race each other.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::internal::{LearnerProgress, LogResponse};
use paxos_core::learner::Conflict;
use paxos_core::{Accepted, AcceptorId, Counters, Learner, Slot, Value};
use tokio::sync::{mpsc, watch, Notify};

use crate::store::Store;
use crate::{fatal, metric};

/// Slots above the learned point the learner keeps in memory; pushes beyond
/// are dropped (the pull loop brings them once the window moves).
pub const WINDOW_SLOTS_MAX: u64 = 4096;
/// Entries asked from each acceptor per poll.
pub const PULL_ENTRIES_MAX: u64 = 512;
/// Most slots appended in one write batch.
pub const GROUP_SLOTS_MAX: usize = 8192;
/// Inputs queued for the learning actor before pushes are refused.
pub const INPUT_QUEUE_MAX: usize = 1024;
/// Longest one call to an acceptor may take.
pub const ACCEPTOR_TIMEOUT: Duration = Duration::from_secs(2);
/// Progress is re-sent this often even when unchanged, so that a restarted
/// acceptor learns it soon.
pub const PROGRESS_REFRESH: Duration = Duration::from_secs(5);
/// Shortest time between two polls of the acceptors.
pub const PULL_SPACING_MIN: Duration = Duration::from_millis(20);
/// How often the lost-coverage error is repeated while it lasts.
const COVERAGE_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Something for the learning actor.
#[derive(Debug)]
enum Input {
    Push(Vec<(Slot, Value)>),
    Pulled {
        acceptor: AcceptorId,
        entries: Vec<(Slot, Accepted)>,
    },
    /// Every acceptor compacted above `from`: start again at this snapshot.
    Jump {
        from: u64,
        below: u64,
        counters: Counters,
        acceptor: String,
    },
}

/// The handle the HTTP layer and delivery use; cheap to clone.
#[derive(Clone)]
pub struct Learning {
    inputs: mpsc::Sender<Input>,
    learned: watch::Receiver<u64>,
    pull_now: Arc<Notify>,
    coverage: Arc<Coverage>,
}

/// Why a push was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum PushRefused {
    /// The actor is busy; pulls will bring these slots.
    Overloaded,
}

/// Set while every acceptor has compacted above the learner's next slot:
/// the slots in between can no longer be learned.
#[derive(Debug, Default)]
pub struct Coverage {
    lost: Mutex<Option<String>>,
}

impl Coverage {
    /// The reason learning is stalled by compaction, if it is.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().expect("coverage lock poisoned").clone()
    }

    fn set(&self, lost: Option<String>) {
        metrics::gauge!(metric::COVERAGE_LOST).set(if lost.is_some() { 1.0 } else { 0.0 });
        *self.lost.lock().expect("coverage lock poisoned") = lost;
    }
}

/// Where to reach the acceptors and how to talk to them.
#[derive(Clone)]
pub struct Acceptors {
    pub urls: Vec<String>,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

impl Learning {
    /// Starts from the store's learned point. Returns the handle and the
    /// actor future, which must run for the life of the process.
    pub fn start(
        store: Store,
        acceptors: usize,
    ) -> Result<(Learning, impl std::future::Future<Output = ()> + Send + 'static), crate::store::StoreError>
    {
        let learned_below = store.learned_below()?;
        let counters = store.counters()?;
        metrics::gauge!(metric::LEARNED_BELOW).set(learned_below as f64);
        metrics::describe_counter!(
            metric::SKIPPED_SLOTS_TOTAL,
            "Slots this learner never learned because every acceptor had compacted them away \
             (it started again from a snapshot); kept in the store, so it survives restarts."
        );
        let skipped: u64 = store
            .gaps()?
            .iter()
            .map(|gap| gap.below_slot - gap.from_slot)
            .sum();
        metrics::counter!(metric::SKIPPED_SLOTS_TOTAL).absolute(skipped);
        metrics::describe_counter!(
            metric::CONFLICTS_TOTAL,
            "Reports refused because they contradict a value the learner already holds, by source."
        );
        // Present from the start, so that an alert on its increase sees 0 first.
        for source in ["push", "pull"] {
            metrics::counter!(metric::CONFLICTS_TOTAL, "source" => source).increment(0);
        }
        let learner = Learner::new(acceptors, Slot(learned_below), WINDOW_SLOTS_MAX);
        let (inputs, rx) = mpsc::channel(INPUT_QUEUE_MAX);
        let (learned_tx, learned) = watch::channel(learned_below);
        let pull_now = Arc::new(Notify::new());
        let actor = run_actor(
            learner,
            acceptors,
            counters,
            store,
            rx,
            learned_tx,
            pull_now.clone(),
        );
        let learning = Learning {
            inputs,
            learned,
            pull_now,
            coverage: Arc::new(Coverage::default()),
        };
        Ok((learning, actor))
    }

    /// Chosen slots the leader pushed; any order, any distance ahead.
    pub fn push(&self, slots: Vec<(Slot, Value)>) -> Result<(), PushRefused> {
        self.inputs
            .try_send(Input::Push(slots))
            .map_err(|_| PushRefused::Overloaded)
    }

    /// Every slot below this is durable in the learned log.
    pub fn learned_below(&self) -> u64 {
        *self.learned.borrow()
    }

    /// Watches the learned point.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.learned.clone()
    }

    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// Polls every acceptor's log from the learned point, forever.
    pub async fn pull_loop(self, acceptors: Acceptors, interval: Duration) {
        let mut reachable = vec![true; acceptors.urls.len()];
        let mut coverage_logged: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let from = self.learned_below();
            let full_page = self
                .pull_once(&acceptors, from, &mut reachable, &mut coverage_logged)
                .await;
            // A full page means we are catching up: ask again without waiting.
            if !full_page {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = self.pull_now.notified() => {}
                }
            }
            // Pushes that leave gaps come in bursts while slots are pipelined,
            // and the missing push is often already on its way: bound the rate.
            if let Some(rest) = PULL_SPACING_MIN.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
    }

    /// Reports the learned point to every acceptor, so that their compaction
    /// never outruns this learner.
    pub async fn progress_loop(self, acceptors: Acceptors, learner_id: String, interval: Duration) {
        let mut reported: Vec<Option<(u64, Instant)>> = vec![None; acceptors.urls.len()];
        loop {
            tokio::time::sleep(interval).await;
            let below = self.learned_below();
            let calls = acceptors.urls.iter().enumerate().filter_map(|(i, url)| {
                let due = match reported[i] {
                    Some((sent, at)) => sent != below || at.elapsed() >= PROGRESS_REFRESH,
                    None => true,
                };
                due.then(|| {
                    let acceptors = &acceptors;
                    let learner_id = &learner_id;
                    async move { (i, report_progress(acceptors, url, learner_id, below).await) }
                })
            });
            for (i, result) in futures::future::join_all(calls).await {
                match result {
                    Ok(()) => reported[i] = Some((below, Instant::now())),
                    Err(error) => {
                        tracing::debug!(acceptor = %acceptors.urls[i], %error, "progress report failed")
                    }
                }
            }
        }
    }

    /// One poll of every acceptor; true if some acceptor returned a full page.
    async fn pull_once(
        &self,
        acceptors: &Acceptors,
        from: u64,
        reachable: &mut [bool],
        coverage_logged: &mut Option<Instant>,
    ) -> bool {
        let calls = acceptors.urls.iter().map(|url| fetch_log(acceptors, url, from));
        let results = futures::future::join_all(calls).await;
        let mut compacted_above = Vec::new();
        let mut answered = 0;
        let mut full_page = false;
        for (i, result) in results.into_iter().enumerate() {
            let url = &acceptors.urls[i];
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    if std::mem::replace(&mut reachable[i], false) {
                        tracing::warn!(acceptor = %url, %error, "cannot read the acceptor's log");
                    }
                    continue;
                }
            };
            if !std::mem::replace(&mut reachable[i], true) {
                tracing::info!(acceptor = %url, "reading the acceptor's log again");
            }
            answered += 1;
            if response.compacted_below > from {
                compacted_above.push((i, response.compacted_below));
            }
            full_page |= response.entries.len() as u64 >= PULL_ENTRIES_MAX;
            let entries = parse_entries(url, &response);
            if !entries.is_empty()
                && self
                    .inputs
                    .send(Input::Pulled {
                        acceptor: AcceptorId(i),
                        entries,
                    })
                    .await
                    .is_err()
            {
                fatal("the learning actor stopped");
            }
        }
        if answered == acceptors.urls.len() && compacted_above.len() == answered {
            // Nobody holds slot `from` any more: start again at a snapshot.
            match self.start_from_snapshot(acceptors, from, &compacted_above).await {
                Ok(()) => {
                    self.coverage.set(None);
                    *coverage_logged = None;
                    return true;
                }
                Err(error) => {
                    tracing::warn!(learned_below = from, %error, "cannot take an acceptor's snapshot");
                }
            }
        }
        let lowest: Vec<u64> = compacted_above.iter().map(|(_, below)| *below).collect();
        self.update_coverage(acceptors.urls.len(), from, &lowest, coverage_logged);
        full_page
    }

    /// Takes the snapshot of the acceptor compacted least far and hands it
    /// to the actor, which records the gap `from .. below` and continues at
    /// `below`.
    async fn start_from_snapshot(
        &self,
        acceptors: &Acceptors,
        from: u64,
        compacted_above: &[(usize, u64)],
    ) -> Result<(), String> {
        let mut candidates = compacted_above.to_vec();
        candidates.sort_by_key(|(_, below)| *below);
        let mut errors = Vec::new();
        for (i, _) in candidates {
            let url = &acceptors.urls[i];
            let snapshot = match fetch_snapshot(acceptors, url).await {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    errors.push(format!("{url}: {error}"));
                    continue;
                }
            };
            if snapshot.below <= from {
                errors.push(format!(
                    "{url}: snapshot below {} does not pass slot {from}",
                    snapshot.below
                ));
                continue;
            }
            let counters = crate::store::counters_from_wire(snapshot.counters)
                .map_err(|reason| format!("{url}: invalid snapshot counters: {reason}"))?;
            if self
                .inputs
                .send(Input::Jump {
                    from,
                    below: snapshot.below,
                    counters,
                    acceptor: url.clone(),
                })
                .await
                .is_err()
            {
                fatal("the learning actor stopped");
            }
            return Ok(());
        }
        Err(errors.join("; "))
    }

    fn update_coverage(
        &self,
        acceptors: usize,
        from: u64,
        compacted_above: &[u64],
        logged: &mut Option<Instant>,
    ) {
        if compacted_above.len() < acceptors {
            if self.coverage.lost().is_some() {
                tracing::info!(
                    learned_below = from,
                    "an acceptor holds the next slot again; learning resumes"
                );
            }
            self.coverage.set(None);
            *logged = None;
            return;
        }
        let lowest = compacted_above.iter().copied().min().unwrap_or(from);
        let reason = format!(
            "lost coverage: every acceptor compacted its log above slot {from} (lowest compacted_below \
             is {lowest}); slots {from}..{lowest} can no longer be learned or delivered"
        );
        if logged.is_none_or(|at| at.elapsed() >= COVERAGE_LOG_INTERVAL) {
            tracing::error!(learned_below = from, compacted_below = lowest, "{reason}");
            *logged = Some(Instant::now());
        }
        self.coverage.set(Some(reason));
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_actor(
    mut learner: Learner,
    acceptors: usize,
    mut counters: Counters,
    store: Store,
    mut inputs: mpsc::Receiver<Input>,
    learned: watch::Sender<u64>,
    pull_now: Arc<Notify>,
) {
    let mut next_input = None;
    loop {
        let input = match next_input.take() {
            Some(input) => input,
            None => match inputs.recv().await {
                Some(input) => input,
                None => return,
            },
        };
        if let Input::Jump {
            from,
            below,
            counters: snapshot,
            acceptor,
        } = input
        {
            if learner.next().0 != from {
                // Learned meanwhile: the acceptors still held the slot after all.
                continue;
            }
            let store = store.clone();
            let kept = snapshot.clone();
            let jumped = tokio::task::spawn_blocking(move || store.jump(from, below, &kept)).await;
            match jumped {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => fatal(&format!("recording a gap in the learned log failed: {error}")),
                Err(error) => fatal(&format!("recording a gap in the learned log failed: {error}")),
            }
            learner = Learner::new(acceptors, Slot(below), WINDOW_SLOTS_MAX);
            counters = snapshot;
            metrics::counter!(metric::SKIPPED_SLOTS_TOTAL).increment(below - from);
            metrics::gauge!(metric::LEARNED_BELOW).set(below as f64);
            tracing::warn!(
                from_slot = from,
                below_slot = below,
                skipped = below - from,
                %acceptor,
                "every acceptor compacted its log above the learned point: started again from the \
                 acceptor's snapshot; slots {from}..{below} are skipped and their allocations are \
                 never delivered (subscribers get an ids.gap message)"
            );
            learned.send_replace(below);
            pull_now.notify_one();
            continue;
        }
        let mut pushed_max = apply(&mut learner, input);
        // Release after every input, not once per group: the window moves
        // with each release, and a later push in the group may lie beyond
        // where the window started.
        let mut ready = learner.take_ready();
        // Group commit: fold whatever else is queued into the same append.
        while ready.len() < GROUP_SLOTS_MAX {
            let Ok(input) = inputs.try_recv() else { break };
            if matches!(input, Input::Jump { .. }) {
                // After this append: the jump checks the learned point.
                next_input = Some(input);
                break;
            }
            pushed_max = pushed_max.max(apply(&mut learner, input));
            ready.extend(learner.take_ready());
        }
        if let Some((from, _)) = ready.first() {
            let from = *from;
            let store = store.clone();
            let appended = tokio::task::spawn_blocking(move || {
                let below = store.append(from, &ready, &mut counters);
                (below, counters)
            })
            .await;
            let below = match appended {
                Ok((Ok(below), advanced)) => {
                    counters = advanced;
                    below
                }
                Ok((Err(error), _)) => fatal(&format!("appending to the learned log failed: {error}")),
                Err(error) => fatal(&format!("appending to the learned log failed: {error}")),
            };
            metrics::gauge!(metric::LEARNED_BELOW).set(below as f64);
            learned.send_replace(below);
        }
        if pushed_max.is_some_and(|slot| slot >= learner.next()) {
            // A push left a gap: a slot before it was missed; pull it now.
            pull_now.notify_one();
        }
    }
}

/// Feeds one input to the learner; returns the highest pushed slot.
fn apply(learner: &mut Learner, input: Input) -> Option<Slot> {
    match input {
        Input::Push(slots) => {
            let highest = slots.iter().map(|(slot, _)| *slot).max();
            for (slot, value) in slots {
                if let Err(conflict) = learner.learn_chosen(slot, value) {
                    refused(&conflict, "push", None);
                }
            }
            highest
        }
        Input::Pulled { acceptor, entries } => {
            for (slot, accepted) in &entries {
                if let Err(conflict) = learner.observe(acceptor, *slot, accepted) {
                    refused(&conflict, "pull", Some(acceptor));
                }
            }
            None
        }
        Input::Jump { .. } => unreachable!("jumps are handled by the actor loop"),
    }
}

/// A report that contradicts what the learner already took: the learner
/// kept the first value and refused this one. Only a faulty or forged peer
/// (or broken agreement) sends one, so it is an error for the operator, but
/// not a reason to stop learning. `source` is `push` (`POST /v1/chosen`) or
/// `pull` (an acceptor's log).
fn refused(conflict: &Conflict, source: &'static str, acceptor: Option<AcceptorId>) {
    metrics::counter!(metric::CONFLICTS_TOTAL, "source" => source).increment(1);
    tracing::error!(
        slot = conflict.slot.0,
        source,
        acceptor = acceptor.map(|a| a.0),
        "refused a conflicting report: {conflict}"
    );
}

fn parse_entries(url: &str, response: &LogResponse) -> Vec<(Slot, Accepted)> {
    let mut entries = Vec::with_capacity(response.entries.len());
    for entry in &response.entries {
        match entry.to_core() {
            Ok(parsed) => entries.push(parsed),
            Err(error) => {
                tracing::warn!(acceptor = %url, slot = entry.slot, %error, "ignoring an invalid log entry");
            }
        }
    }
    entries
}

async fn fetch_log(acceptors: &Acceptors, url: &str, from: u64) -> Result<LogResponse, reqwest::Error> {
    let url = format!(
        "{}/v1/log?from={from}&limit={PULL_ENTRIES_MAX}",
        url.trim_end_matches('/')
    );
    let mut request = acceptors.client.get(url).timeout(ACCEPTOR_TIMEOUT);
    if let Some(token) = &acceptors.token {
        request = request.bearer_auth(token);
    }
    request.send().await?.error_for_status()?.json().await
}

async fn fetch_snapshot(acceptors: &Acceptors, url: &str) -> Result<api::internal::Snapshot, reqwest::Error> {
    let url = format!("{}/v1/snapshot", url.trim_end_matches('/'));
    let mut request = acceptors.client.get(url).timeout(ACCEPTOR_TIMEOUT);
    if let Some(token) = &acceptors.token {
        request = request.bearer_auth(token);
    }
    request.send().await?.error_for_status()?.json().await
}

async fn report_progress(
    acceptors: &Acceptors,
    url: &str,
    learner_id: &str,
    below: u64,
) -> Result<(), reqwest::Error> {
    let url = format!("{}/v1/learners/{learner_id}/progress", url.trim_end_matches('/'));
    let mut request = acceptors
        .client
        .post(url)
        .timeout(ACCEPTOR_TIMEOUT)
        .json(&LearnerProgress { learned_below: below });
    if let Some(token) = &acceptors.token {
        request = request.bearer_auth(token);
    }
    request.send().await?.error_for_status()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_core::{Allocation, SequenceName};

    fn chunk(from: u64, to: u64) -> Vec<(Slot, Value)> {
        let sequence = SequenceName::default_sequence();
        (from..to)
            .map(|s| {
                (
                    Slot(s),
                    Value::Allocations(vec![Allocation {
                        sequence: sequence.clone(),
                        first: s + 1,
                        count: 1,
                    }]),
                )
            })
            .collect()
    }

    /// Acceptors whose logs contradict each other (two chosen marks with
    /// different values for slot 1, two values under one ballot for slot
    /// 2): the first value is kept, the rest refused, and the actor keeps
    /// learning.
    #[tokio::test]
    async fn conflicting_pulled_entries_are_refused_and_learning_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let (learning, actor) = Learning::start(store.clone(), 3).expect("start");
        let actor = tokio::spawn(actor);
        let values = chunk(0, 4);
        let other = chunk(10, 14);
        let entry = |s: usize, value: &[(Slot, Value)], round: u64, chosen: bool| {
            (
                Slot(s as u64),
                Accepted {
                    ballot: paxos_core::Ballot::new(round, paxos_core::NodeId(1)),
                    value: value[s].1.clone(),
                    chosen,
                },
            )
        };
        let pulls = [
            (0, vec![entry(1, &values, 1, true), entry(2, &values, 2, false)]),
            (1, vec![entry(1, &other, 1, true), entry(2, &other, 2, false)]),
            (2, vec![entry(2, &other, 2, false), entry(2, &values, 2, false)]),
        ];
        for (acceptor, entries) in pulls {
            let input = Input::Pulled {
                acceptor: AcceptorId(acceptor),
                entries,
            };
            learning.inputs.send(input).await.expect("the actor runs");
        }
        learning.push(chunk(0, 1)).expect("queued");
        learning.push(chunk(3, 4)).expect("queued");
        let mut learned = learning.subscribe();
        let reached = tokio::time::timeout(Duration::from_secs(10), learned.wait_for(|below| *below >= 4));
        assert!(reached.await.is_ok(), "learned only {}", learning.learned_below());
        let log = store.read_log(1, 3, 2).expect("read");
        let firsts: Vec<u64> = log.iter().map(|(_, v)| v.allocations()[0].first).collect();
        assert_eq!(firsts, vec![2, 3], "the values reported first are kept");
        assert!(!actor.is_finished(), "the actor still runs");
        actor.abort();
    }

    /// On a current-thread runtime the actor cannot run while the pushes are
    /// queued, so they reach it as one group spanning four windows; each
    /// must be taken in as the window moves.
    #[tokio::test(flavor = "current_thread")]
    async fn a_group_of_pushes_larger_than_the_window_is_learned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let (learning, actor) = Learning::start(store.clone(), 3).expect("start");
        let total = 4 * WINDOW_SLOTS_MAX;
        for from in (0..total).step_by(500) {
            learning
                .push(chunk(from, (from + 500).min(total)))
                .expect("queued");
        }
        let actor = tokio::spawn(actor);
        let mut learned = learning.subscribe();
        let reached =
            tokio::time::timeout(Duration::from_secs(10), learned.wait_for(|below| *below >= total));
        assert!(
            reached.await.is_ok(),
            "learned only {} of {total}",
            learning.learned_below()
        );
        assert_eq!(
            store.learned_below().expect("read"),
            total,
            "durable before published"
        );
        assert_eq!(
            store.read_log(0, total, usize::MAX).expect("read").len() as u64,
            total
        );
        actor.abort();
    }
}
