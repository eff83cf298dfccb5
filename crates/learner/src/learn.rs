//! Learning chosen slots: pulled from the acceptors, read at once when the
//! leader pushes.
//!
//! A push is a hint, never a source: anyone holding the cluster token can
//! post to `/v1/chosen`, so the learner releases only what its acceptors
//! confirm (a majority of votes under one ballot, or an acceptor's chosen
//! mark) and a push only makes the pull loop read them now.
//!
//! One task (the "learning actor") owns the [`paxos_core::Learner`]: it takes
//! pulled votes from a channel, and appends every released slot
//! to the store (synced) before it publishes the new learned point. Nothing
//! downstream (delivery, progress reports) sees a slot before it is durable.
//! Because the actor is never cancelled mid-append, two appends can never
//! race each other.
//!
//! The acceptors read are those of the configuration the learner follows,
//! an [`AcceptorSet`]: in epoch 0 the `--acceptors` list, later the seats of
//! the configuration a chosen stop sign named. The actor moves to it once
//! the stop sign is durable (the store records the new configuration in
//! the same synced write), and publishes the new set in a `watch` that the
//! pull loop, the jump logic and the progress reports read before every
//! round. Pulled votes and jumps carry the epoch they were read in; the
//! actor drops those of another epoch, so an index into an older list is
//! never taken for a seat of the new one.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::internal::LogResponse;
use paxid_client::internal::{CallError, InternalClient};
use paxos_core::learner::Conflict;
use paxos_core::{Accepted, AcceptorId, Configuration, Counters, Learner, MemberId, Slot, Value};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinError;

use crate::store::Store;
use crate::{metric, SERVICE_NAME};
use service::fatal;

/// Slots above the learned point the learner keeps in memory; votes beyond
/// are dropped (the pull loop brings them again once the window moves).
pub const WINDOW_SLOTS_MAX: u64 = 4096;
/// Entries asked from each acceptor per poll.
pub const PULL_ENTRIES_MAX: u64 = 512;
/// Most slots appended in one write batch.
pub const GROUP_SLOTS_MAX: usize = 8192;
/// Inputs queued for the learning actor.
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
/// Shortest time between two checks for a later epoch the acceptors moved
/// to while the learner was past its stop sign (see `adopt_later_epoch`).
const EPOCH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What the pull loop remembers between polls.
#[derive(Default)]
struct PollState {
    /// By URL: whether the last read answered (to log changes only).
    reachable: HashMap<String, bool>,
    coverage_logged: Option<Instant>,
    epoch_checked: Option<Instant>,
    silent_max: Duration,
}

/// Something for the learning actor.
#[derive(Debug)]
enum Input {
    Pulled {
        /// The epoch of the [`AcceptorSet`] `acceptor` indexes.
        epoch: u64,
        acceptor: AcceptorId,
        /// Who answered, where it said: votes count once per member.
        member: Option<MemberId>,
        entries: Vec<(Slot, Accepted)>,
    },
    /// Every acceptor compacted above `from`: start again at this snapshot.
    Jump(Jump),
    /// The acceptors hold `from` in a later epoch: go on there.
    Adopt {
        /// The epoch the learner followed when the acceptors were read.
        epoch: u64,
        from: u64,
        configuration: Configuration,
    },
}

#[derive(Debug)]
struct Jump {
    /// The epoch the learner followed when the acceptors were read.
    epoch: u64,
    from: u64,
    below: u64,
    counters: Counters,
    acceptor: String,
    /// The later configuration `below` lies in, if not the current one.
    configuration: Option<Configuration>,
}

/// The acceptors of the configuration the learner follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptorSet {
    pub epoch: u64,
    /// Base URLs; `AcceptorId(i)` is `urls[i]`.
    pub urls: Arc<[String]>,
}

impl AcceptorSet {
    fn of(configuration: &Configuration) -> AcceptorSet {
        AcceptorSet {
            epoch: configuration.epoch,
            urls: configuration.seats.iter().map(|s| s.address.clone()).collect(),
        }
    }
}

/// The handle the HTTP layer and delivery use; cheap to clone.
#[derive(Clone)]
pub struct Learning {
    inputs: mpsc::Sender<Input>,
    learned: watch::Receiver<u64>,
    acceptors: watch::Receiver<AcceptorSet>,
    pull_now: Arc<Notify>,
    coverage: Arc<Coverage>,
}

/// Set while every acceptor has compacted above the learner's next slot:
/// the slots in between can no longer be learned. Also tracks how long no
/// acceptor of the followed configuration has answered at all.
#[derive(Debug, Default)]
pub struct Coverage {
    lost: Mutex<Option<String>>,
    silent: Mutex<Option<Silence>>,
}

#[derive(Debug)]
struct Silence {
    since: Instant,
    epoch: u64,
    errors: String,
    logged: bool,
}

impl Coverage {
    /// The reason learning is stalled by compaction, if it is.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().expect("coverage lock poisoned").clone()
    }

    /// Why learning is stalled if no acceptor has answered for `longer_than`.
    pub fn silent(&self, longer_than: Duration) -> Option<String> {
        let silent = self.silent.lock().expect("coverage lock poisoned");
        let silence = silent.as_ref()?;
        let elapsed = silence.since.elapsed();
        (elapsed >= longer_than).then(|| {
            format!(
                "no acceptor of configuration epoch {} has answered for {} s; still retrying ({})",
                silence.epoch,
                elapsed.as_secs(),
                silence.errors
            )
        })
    }

    fn set(&self, lost: Option<String>) {
        metrics::gauge!(metric::COVERAGE_LOST).set(if lost.is_some() { 1.0 } else { 0.0 });
        *self.lost.lock().expect("coverage lock poisoned") = lost;
    }

    fn heard(&self) {
        let ended = self.silent.lock().expect("coverage lock poisoned").take();
        if let Some(silence) = ended.filter(|s| s.logged) {
            tracing::info!(
                epoch = silence.epoch,
                silent_s = silence.since.elapsed().as_secs(),
                "an acceptor answers again"
            );
        }
    }

    /// No acceptor of `epoch` answered this poll; logs once when the
    /// silence passes `log_after`.
    fn unheard(&self, epoch: u64, errors: String, log_after: Duration) {
        let mut silent = self.silent.lock().expect("coverage lock poisoned");
        let silence = match silent.as_mut() {
            Some(silence) if silence.epoch == epoch => silence,
            _ => silent.insert(Silence {
                since: Instant::now(),
                epoch,
                errors: String::new(),
                logged: false,
            }),
        };
        silence.errors = errors;
        if !silence.logged && silence.since.elapsed() >= log_after {
            silence.logged = true;
            tracing::error!(
                epoch,
                silent_s = silence.since.elapsed().as_secs(),
                errors = %silence.errors,
                "no acceptor of the configuration this learner follows answers; still retrying \
                 (if the cluster moved to other acceptors while this learner was away and the old \
                 ones are gone, start it with --acceptors of the current configuration)"
            );
        }
    }
}

/// What the acceptor's `GET /v1/status` says that the learner needs; other
/// fields are ignored, so that an acceptor may report more.
#[derive(Debug, serde::Deserialize)]
struct AcceptorEpoch {
    #[serde(default)]
    configuration: Option<api::internal::Configuration>,
    /// Who answers at that URL (a new one: its disk was lost or replaced).
    #[serde(default)]
    node_uuid: Option<String>,
}

impl Learning {
    /// Starts from the store's learned point, in the configuration the store
    /// records, or in epoch 0 with `seed` (the `--acceptors` list). Returns
    /// the handle and the actor future, which must run for the life of the
    /// process.
    pub fn start(
        store: Store,
        seed: Vec<String>,
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
        metrics::describe_gauge!(
            metric::EPOCH,
            "The epoch of the configuration whose acceptors this learner reads."
        );
        // Present from the start, so that an alert on its increase sees 0 first.
        // (`source` is always `pull` since pushes became hints; the label
        // stays for the dashboards and alerts that select on it.)
        metrics::counter!(metric::CONFLICTS_TOTAL, "source" => "pull").increment(0);
        let (set, from_slot) = match store.configuration()? {
            Some((from_slot, configuration)) => (AcceptorSet::of(&configuration), from_slot),
            None => (
                AcceptorSet {
                    epoch: 0,
                    urls: seed.into(),
                },
                0,
            ),
        };
        following(&set, from_slot, "start");
        let learner = Learner::in_epoch(set.epoch, set.urls.len(), Slot(learned_below), WINDOW_SLOTS_MAX);
        let (inputs, rx) = mpsc::channel(INPUT_QUEUE_MAX);
        let (learned_tx, learned) = watch::channel(learned_below);
        let (acceptors_tx, acceptors) = watch::channel(set);
        let pull_now = Arc::new(Notify::new());
        let actor = run_actor(
            learner,
            counters,
            store,
            rx,
            learned_tx,
            acceptors_tx,
            pull_now.clone(),
        );
        let learning = Learning {
            inputs,
            learned,
            acceptors,
            pull_now,
            coverage: Arc::new(Coverage::default()),
        };
        Ok((learning, actor))
    }

    /// The leader pushed slots up to `highest` as chosen: if that is news,
    /// read the acceptors now rather than at the next poll. The values
    /// pushed are not taken (see the module comment).
    pub fn hint(&self, highest: Slot) {
        if highest.0 >= self.learned_below() {
            self.pull_now.notify_one();
        }
    }

    /// Every slot below this is durable in the learned log.
    pub fn learned_below(&self) -> u64 {
        *self.learned.borrow()
    }

    /// Watches the learned point.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.learned.clone()
    }

    /// The configuration followed now: its epoch and acceptor URLs.
    pub fn acceptor_set(&self) -> AcceptorSet {
        self.acceptors.borrow().clone()
    }

    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// Polls every acceptor of the followed configuration from the learned
    /// point, forever. `silent_max` is how long no acceptor may answer
    /// before that is logged as an error (readiness says so too).
    pub async fn pull_loop(self, client: InternalClient, interval: Duration, silent_max: Duration) {
        let mut poll = PollState {
            silent_max,
            ..PollState::default()
        };
        loop {
            let started = Instant::now();
            let set = self.acceptor_set();
            let from = self.learned_below();
            let full_page = self.pull_once(&client, &set, from, &mut poll).await;
            // A full page means we are catching up: ask again without waiting.
            // A move to another configuration also notifies `pull_now`.
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

    /// Reports the learned point to every acceptor of the followed
    /// configuration, so that their compaction never outruns this learner.
    pub async fn progress_loop(self, client: InternalClient, learner_id: String, interval: Duration) {
        let mut reported: HashMap<String, (u64, Instant)> = HashMap::new();
        loop {
            tokio::time::sleep(interval).await;
            let set = self.acceptor_set();
            let below = self.learned_below();
            reported.retain(|url, _| set.urls.contains(url));
            let calls = set.urls.iter().filter_map(|url| {
                let due = match reported.get(url) {
                    Some((sent, at)) => *sent != below || at.elapsed() >= PROGRESS_REFRESH,
                    None => true,
                };
                due.then(|| {
                    let client = &client;
                    let learner_id = &learner_id;
                    async move { (url, client.learner_progress(url, learner_id, below).await) }
                })
            });
            for (url, result) in futures::future::join_all(calls).await {
                match result {
                    Ok(()) => {
                        reported.insert(url.clone(), (below, Instant::now()));
                    }
                    Err(error) => {
                        tracing::debug!(acceptor = %url, %error, "progress report failed")
                    }
                }
            }
        }
    }

    /// Watches who answers at each acceptor URL of the followed
    /// configuration, and reports a new identity there (a lost or replaced
    /// disk): log line and `paxid_learner_acceptor_identity_changes_total`.
    pub async fn identity_loop(self, client: InternalClient, interval: Duration) {
        let mut seen: HashMap<String, String> = HashMap::new();
        loop {
            tokio::time::sleep(interval).await;
            let set = self.acceptor_set();
            let calls = set.urls.iter().map(|url| {
                let client = &client;
                async move { (url, fetch_status(client, url).await) }
            });
            for (url, answer) in futures::future::join_all(calls).await {
                let Some(now) = answer.ok().and_then(|status| status.node_uuid) else {
                    continue;
                };
                match seen.insert(url.clone(), now.clone()) {
                    Some(before) if before != now => {
                        tracing::warn!(acceptor = %url, %before, %now, "an acceptor answers with a new identity (lost or replaced disk?)");
                        metrics::counter!("paxid_learner_acceptor_identity_changes_total").increment(1);
                    }
                    _ => {}
                }
            }
        }
    }

    /// One poll of every acceptor; true if some acceptor returned a full page.
    async fn pull_once(
        &self,
        client: &InternalClient,
        set: &AcceptorSet,
        from: u64,
        poll: &mut PollState,
    ) -> bool {
        let calls = set.urls.iter().map(|url| client.log(url, from, PULL_ENTRIES_MAX));
        let results = futures::future::join_all(calls).await;
        let mut compacted_above = Vec::new();
        let mut answered = 0;
        let mut errors = Vec::new();
        let mut full_page = false;
        // Whether every acceptor that answered holds only slots of later
        // epochs at `from` (and at least one holds any).
        let mut later_only = true;
        let mut any_entry = false;
        for (i, result) in results.into_iter().enumerate() {
            let url = &set.urls[i];
            let was_reachable = poll.reachable.entry(url.clone()).or_insert(true);
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    if std::mem::replace(was_reachable, false) {
                        tracing::warn!(acceptor = %url, %error, "cannot read the acceptor's log");
                    }
                    errors.push(format!("{url}: {error}"));
                    continue;
                }
            };
            if !std::mem::replace(was_reachable, true) {
                tracing::info!(acceptor = %url, "reading the acceptor's log again");
            }
            answered += 1;
            if response.compacted_below > from {
                compacted_above.push((i, response.compacted_below));
            }
            full_page |= response.entries.len() as u64 >= PULL_ENTRIES_MAX;
            if let Some(first) = response.entries.first() {
                any_entry = true;
                later_only &= first.ballot.epoch > set.epoch;
            }
            let entries = parse_entries(url, &response);
            let member = response
                .node_uuid
                .as_deref()
                .and_then(|uuid| api::internal::member_id(uuid).ok());
            if !entries.is_empty()
                && self
                    .inputs
                    .send(Input::Pulled {
                        epoch: set.epoch,
                        acceptor: AcceptorId(i),
                        member,
                        entries,
                    })
                    .await
                    .is_err()
            {
                fatal(SERVICE_NAME, "the learning actor stopped");
            }
        }
        poll.reachable.retain(|url, _| set.urls.contains(url));
        if answered == 0 {
            self.coverage
                .unheard(set.epoch, errors.join("; "), poll.silent_max);
        } else {
            self.coverage.heard();
        }
        if answered == set.urls.len() && compacted_above.len() == answered {
            // Nobody holds slot `from` any more: start again at a snapshot.
            match self
                .start_from_snapshot(client, set, from, &compacted_above)
                .await
            {
                Ok(()) => {
                    self.coverage.set(None);
                    poll.coverage_logged = None;
                    return true;
                }
                Err(error) => {
                    tracing::warn!(learned_below = from, %error, "cannot take an acceptor's snapshot");
                }
            }
        } else if answered > 0
            && any_entry
            && later_only
            && poll
                .epoch_checked
                .is_none_or(|at| at.elapsed() >= EPOCH_CHECK_INTERVAL)
        {
            poll.epoch_checked = Some(Instant::now());
            if self.adopt_later_epoch(client, set, from).await {
                return true;
            }
        }
        let lowest: Vec<u64> = compacted_above.iter().map(|(_, below)| *below).collect();
        self.update_coverage(set.urls.len(), from, &lowest, &mut poll.coverage_logged);
        full_page
    }

    /// The acceptors hold only slots of later epochs at `from`: the learner
    /// passed a stop sign without reading it (a snapshot it jumped to had
    /// folded it in). An acceptor that moved to a later epoch, has not
    /// compacted past `from`, and holds nothing older than its epoch at
    /// `from`, holds `from` in that epoch (it would still hold the chosen
    /// slots of the epoch before, up to its stop sign, otherwise): the
    /// learner goes on there, at `from`, without skipping anything; the
    /// highest such epoch wins. If every such acceptor compacted past
    /// `from`, the learner jumps to the snapshot of one whose log starts in
    /// its epoch, recording the gap. True if the actor was told.
    async fn adopt_later_epoch(&self, client: &InternalClient, set: &AcceptorSet, from: u64) -> bool {
        let checks = set.urls.iter().map(|url| async move {
            let status = fetch_status(client, url).await.ok()?;
            let configuration = Configuration::try_from(status.configuration.as_ref()?).ok()?;
            if configuration.epoch <= set.epoch {
                return None;
            }
            let log = client.log(url, from, 1).await.ok()?;
            let first = log.entries.first().map(|entry| entry.ballot.epoch);
            first.is_none_or(|e| e == configuration.epoch).then_some((
                configuration,
                url.clone(),
                log.compacted_below.max(from),
            ))
        });
        let mut found: Vec<_> = futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect();
        // No gap first, then the highest epoch, then the shortest gap.
        found.sort_by_key(|(c, _, at)| (*at > from, std::cmp::Reverse(c.epoch), *at));
        let Some((configuration, acceptor, at)) = found.into_iter().next() else {
            return false;
        };
        tracing::warn!(
            learned_below = from,
            epoch = set.epoch,
            later_epoch = configuration.epoch,
            at,
            %acceptor,
            "the acceptors hold only later epochs at the learned point: a stop sign was folded into \
             a snapshot; following the acceptor's configuration"
        );
        let input = if at == from {
            Input::Adopt {
                epoch: set.epoch,
                from,
                configuration,
            }
        } else {
            let snapshot = match client.snapshot(&acceptor).await {
                Ok(snapshot) if snapshot.below == at => snapshot,
                Ok(snapshot) => {
                    tracing::warn!(%acceptor, below = snapshot.below, at, "the acceptor's log moved meanwhile");
                    return false;
                }
                Err(error) => {
                    tracing::warn!(%acceptor, %error, "cannot take the acceptor's snapshot");
                    return false;
                }
            };
            let counters = match crate::store::counters_from_wire(snapshot.counters) {
                Ok(counters) => counters,
                Err(reason) => {
                    tracing::warn!(%acceptor, %reason, "invalid snapshot counters");
                    return false;
                }
            };
            Input::Jump(Jump {
                epoch: set.epoch,
                from,
                below: at,
                counters,
                acceptor,
                configuration: Some(configuration),
            })
        };
        if self.inputs.send(input).await.is_err() {
            fatal(SERVICE_NAME, "the learning actor stopped");
        }
        true
    }

    /// Takes the snapshot of an acceptor (those in the latest epoch first,
    /// then the one compacted least far) and hands it to the actor, which
    /// records the gap `from .. below` and continues at `below`.
    ///
    /// The acceptor's status says which epoch it votes in. One behind the
    /// learner's is skipped (its snapshot may fold void slots above a stop
    /// sign). One in a later epoch moved on since: if its log at `below`
    /// holds nothing older than that epoch, `below` lies in it and the
    /// learner adopts its configuration with the jump; if it still holds
    /// the learner's own epoch there (it kept the chosen slots up to its
    /// stop sign), the learner jumps in its own epoch and will meet the stop
    /// sign by reading on. The snapshot is read before the status, and the
    /// log's compacted point must still be the snapshot's, so that a move
    /// between the reads is noticed (and retried at the next poll).
    async fn start_from_snapshot(
        &self,
        client: &InternalClient,
        set: &AcceptorSet,
        from: u64,
        compacted_above: &[(usize, u64)],
    ) -> Result<(), String> {
        // Acceptors in later epochs first: one still in this learner's epoch
        // may have folded the stop sign into its snapshot.
        let epochs = futures::future::join_all(compacted_above.iter().map(|(i, _)| async move {
            let status = fetch_status(client, &set.urls[*i]).await.ok()?;
            Some(status.configuration.map_or(0, |c| c.epoch))
        }))
        .await;
        let mut candidates: Vec<(u64, usize, u64)> = compacted_above
            .iter()
            .zip(epochs)
            .map(|((i, below), epoch)| (epoch.unwrap_or(0), *i, *below))
            .collect();
        candidates.sort_by_key(|(epoch, _, below)| (std::cmp::Reverse(*epoch), *below));
        let mut errors = Vec::new();
        for (_, i, _) in candidates {
            let url = &set.urls[i];
            let snapshot = match client.snapshot(url).await {
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
            let counters = match crate::store::counters_from_wire(snapshot.counters) {
                Ok(counters) => counters,
                Err(reason) => {
                    errors.push(format!("{url}: invalid snapshot counters: {reason}"));
                    continue;
                }
            };
            let configuration = match self.epoch_at(client, set, url, snapshot.below).await {
                Ok(configuration) => configuration,
                Err(error) => {
                    errors.push(format!("{url}: {error}"));
                    continue;
                }
            };
            let jump = Jump {
                epoch: set.epoch,
                from,
                below: snapshot.below,
                counters,
                acceptor: url.clone(),
                configuration,
            };
            if self.inputs.send(Input::Jump(jump)).await.is_err() {
                fatal(SERVICE_NAME, "the learning actor stopped");
            }
            return Ok(());
        }
        Err(errors.join("; "))
    }

    /// The configuration slot `below` lies in, by the acceptor at `url`
    /// whose snapshot ends there: `None` for the followed one, the
    /// acceptor's own for a later one; an error when neither can be told.
    async fn epoch_at(
        &self,
        client: &InternalClient,
        set: &AcceptorSet,
        url: &str,
        below: u64,
    ) -> Result<Option<Configuration>, String> {
        let status = fetch_status(client, url).await.map_err(|e| e.to_string())?;
        let reported = match &status.configuration {
            Some(wire) => Some(
                Configuration::try_from(wire).map_err(|reason| format!("invalid configuration: {reason}"))?,
            ),
            None => None,
        };
        let epoch = reported.as_ref().map_or(0, |c| c.epoch);
        if epoch < set.epoch {
            return Err(format!(
                "it votes in epoch {epoch}, behind this learner's epoch {}",
                set.epoch
            ));
        }
        let Some(configuration) = reported.filter(|_| epoch > set.epoch) else {
            return Ok(None);
        };
        let log = client.log(url, below, 1).await.map_err(|e| e.to_string())?;
        if log.compacted_below != below {
            return Err(format!(
                "its log moved from slot {below} to {} meanwhile",
                log.compacted_below
            ));
        }
        match log.entries.first().map(|entry| entry.ballot.epoch) {
            None => Ok(Some(configuration)),
            Some(found) if found == epoch => Ok(Some(configuration)),
            Some(found) if found == set.epoch => Ok(None),
            Some(found) => Err(format!(
                "it moved to epoch {epoch} but still holds slots of epoch {found} at slot {below}, \
                 whose acceptors this learner (epoch {}) does not know",
                set.epoch
            )),
        }
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

/// Says which configuration the learner reads from now on: the
/// `paxid_learner_epoch` gauge and one log line.
fn following(set: &AcceptorSet, from_slot: u64, why: &'static str) {
    metrics::gauge!(metric::EPOCH).set(set.epoch as f64);
    let urls = set.urls.join(",");
    tracing::info!(
        epoch = set.epoch,
        from_slot,
        acceptors = %urls,
        why,
        "following configuration epoch={} acceptors={urls}",
        set.epoch
    );
}

async fn run_actor(
    mut learner: Learner,
    mut counters: Counters,
    store: Store,
    mut inputs: mpsc::Receiver<Input>,
    learned: watch::Sender<u64>,
    acceptors: watch::Sender<AcceptorSet>,
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
        if let Input::Adopt {
            epoch,
            from,
            configuration,
        } = input
        {
            if learner.epoch() != epoch || learner.next().0 != from {
                continue;
            }
            let (store, moved) = (store.clone(), configuration.clone());
            let adopted = tokio::task::spawn_blocking(move || store.adopt(from, &moved)).await;
            done_or_fatal(adopted, "recording the configuration");
            let set = AcceptorSet::of(&configuration);
            following(&set, from, "acceptors moved on");
            learner = Learner::in_epoch(set.epoch, set.urls.len(), Slot(from), WINDOW_SLOTS_MAX);
            acceptors.send_replace(set);
            pull_now.notify_one();
            continue;
        }
        if let Input::Jump(jump) = input {
            if learner.epoch() != jump.epoch || learner.next().0 != jump.from {
                // Learned meanwhile: the acceptors still held the slot after
                // all, or a stop sign moved the learner on.
                continue;
            }
            let Jump {
                from,
                below,
                counters: snapshot,
                acceptor,
                configuration,
                ..
            } = jump;
            let (store, kept, moved) = (store.clone(), snapshot.clone(), configuration.clone());
            let jumped =
                tokio::task::spawn_blocking(move || store.jump(from, below, &kept, moved.as_ref())).await;
            done_or_fatal(jumped, "recording a gap in the learned log");
            let set = match &configuration {
                Some(configuration) => AcceptorSet::of(configuration),
                None => acceptors.borrow().clone(),
            };
            learner = Learner::in_epoch(set.epoch, set.urls.len(), Slot(below), WINDOW_SLOTS_MAX);
            counters = snapshot;
            metrics::counter!(metric::SKIPPED_SLOTS_TOTAL).increment(below - from);
            metrics::gauge!(metric::LEARNED_BELOW).set(below as f64);
            tracing::warn!(
                from_slot = from,
                below_slot = below,
                skipped = below - from,
                epoch = set.epoch,
                %acceptor,
                "every acceptor compacted its log above the learned point: started again from the \
                 acceptor's snapshot; slots {from}..{below} are skipped and their allocations are \
                 never delivered (subscribers get an ids.gap message)"
            );
            // The learned point first: readers of a new set start from it.
            learned.send_replace(below);
            if configuration.is_some() {
                following(&set, below, "jump");
                acceptors.send_replace(set);
            }
            pull_now.notify_one();
            continue;
        }
        apply(&mut learner, input);
        // Release after every input, not once per group: the window moves
        // with each release, and a later push in the group may lie beyond
        // where the window started.
        let mut ready = learner.take_ready();
        // Group commit: fold whatever else is queued into the same append,
        // up to a stop sign (what follows it is for the next epoch's learner).
        while ready.len() < GROUP_SLOTS_MAX && learner.ended().is_none() {
            let Ok(input) = inputs.try_recv() else { break };
            if matches!(input, Input::Jump(_) | Input::Adopt { .. }) {
                // After this append: these check the learned point.
                next_input = Some(input);
                break;
            }
            apply(&mut learner, input);
            ready.extend(learner.take_ready());
        }
        if let Some((from, _)) = ready.first() {
            let from = *from;
            let store = store.clone();
            // A stop sign is the last slot of `ready`: the store records the
            // configuration it names in the same synced write.
            let appended = tokio::task::spawn_blocking(move || {
                let below = store.append(from, &ready, &mut counters);
                (below, counters)
            })
            .await;
            let appended = appended.map(|(below, advanced)| below.map(|below| (below, advanced)));
            let (below, advanced) = done_or_fatal(appended, "appending to the learned log");
            counters = advanced;
            metrics::gauge!(metric::LEARNED_BELOW).set(below as f64);
            learned.send_replace(below);
            if let Some(configuration) = learner.ended().cloned() {
                // The stop sign is durable: go on in the configuration it
                // named, from the next slot; this epoch's slots above it
                // are void and are never read again. (The learned point is
                // published first: readers of the new set start from it.)
                let set = AcceptorSet::of(&configuration);
                following(&set, below, "stop sign");
                learner = Learner::in_epoch(set.epoch, set.urls.len(), learner.next(), WINDOW_SLOTS_MAX);
                acceptors.send_replace(set);
                pull_now.notify_one();
            }
        }
    }
}

/// What a blocking store write run by `spawn_blocking` returned; ends the
/// process (see the crate's doc) if `what` failed or its task did.
fn done_or_fatal<T, E: Display>(joined: Result<Result<T, E>, JoinError>, what: &str) -> T {
    match joined {
        Ok(Ok(done)) => done,
        Ok(Err(error)) => fatal(SERVICE_NAME, &format!("{what} failed: {error}")),
        Err(error) => fatal(SERVICE_NAME, &format!("{what} failed: {error}")),
    }
}

/// Feeds one input to the learner.
fn apply(learner: &mut Learner, input: Input) {
    match input {
        Input::Pulled {
            epoch,
            acceptor,
            member,
            entries,
        } => {
            if epoch != learner.epoch() {
                // Read from the acceptors of another configuration: the
                // index does not name a seat of this one.
                return;
            }
            if let Some(member) = member {
                learner.identify(acceptor, member);
            }
            for (slot, accepted) in &entries {
                if accepted.ballot.epoch == learner.epoch() {
                    if let Some(reason) = stop_sign_refused(learner, *slot, &accepted.value) {
                        refused_stop_sign(*slot, &reason, acceptor);
                        continue;
                    }
                }
                if let Err(conflict) = learner.observe(acceptor, *slot, accepted) {
                    refused(&conflict, acceptor);
                }
            }
        }
        Input::Jump(_) | Input::Adopt { .. } => unreachable!("handled by the actor loop"),
    }
}

/// Why a stop sign at `slot` cannot be this epoch's: a configuration is
/// always followed by the next epoch. Slots already released are ignored
/// (a late push of the stop sign that started this epoch, say).
fn stop_sign_refused(learner: &Learner, slot: Slot, value: &Value) -> Option<String> {
    let configuration = value.reconfiguration()?;
    let expected = learner.epoch() + 1;
    (slot >= learner.next() && configuration.epoch != expected).then(|| {
        format!(
            "a stop sign naming epoch {} where this learner (epoch {}) expects epoch {expected}",
            configuration.epoch,
            learner.epoch()
        )
    })
}

fn refused_stop_sign(slot: Slot, reason: &str, acceptor: AcceptorId) {
    metrics::counter!(metric::CONFLICTS_TOTAL, "source" => "pull").increment(1);
    tracing::error!(slot = slot.0, acceptor = acceptor.0, "refused a report: {reason}");
}

/// A report that contradicts what the learner already took: the learner
/// kept the first value and refused this one. Only a faulty or forged peer
/// (or broken agreement) sends one, so it is an error for the operator, but
/// not a reason to stop learning.
fn refused(conflict: &Conflict, acceptor: AcceptorId) {
    metrics::counter!(metric::CONFLICTS_TOTAL, "source" => "pull").increment(1);
    tracing::error!(
        slot = conflict.slot.0,
        acceptor = acceptor.0,
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

async fn fetch_status(client: &InternalClient, url: &str) -> Result<AcceptorEpoch, CallError> {
    client.get_json(url, api::routes::STATUS).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_core::{Allocation, SequenceName};

    fn seed(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://127.0.0.1:{}", 9 + i)).collect()
    }

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
        let (learning, actor) = Learning::start(store.clone(), seed(3)).expect("start");
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
                epoch: 0,
                acceptor: AcceptorId(acceptor),
                member: None,
                entries,
            };
            learning.inputs.send(input).await.expect("the actor runs");
        }
        for (from, to) in [(0, 1), (3, 4)] {
            learning
                .inputs
                .send(chosen_marks(from, to))
                .await
                .expect("the actor runs");
        }
        let mut learned = learning.subscribe();
        let reached = tokio::time::timeout(Duration::from_secs(10), learned.wait_for(|below| *below >= 4));
        assert!(reached.await.is_ok(), "learned only {}", learning.learned_below());
        let log = store.read_log(1, 3, 2).expect("read");
        let firsts: Vec<u64> = log.iter().map(|(_, v)| v.allocations()[0].first).collect();
        assert_eq!(firsts, vec![2, 3], "the values reported first are kept");
        assert!(!actor.is_finished(), "the actor still runs");
        actor.abort();
    }

    /// Slots `from..to` as one acceptor's chosen marks.
    fn chosen_marks(from: u64, to: u64) -> Input {
        let entries = chunk(from, to)
            .into_iter()
            .map(|(slot, value)| {
                let ballot = paxos_core::Ballot::new(1, paxos_core::NodeId(1));
                (
                    slot,
                    Accepted {
                        ballot,
                        value,
                        chosen: true,
                    },
                )
            })
            .collect();
        Input::Pulled {
            epoch: 0,
            acceptor: AcceptorId(0),
            member: None,
            entries,
        }
    }

    /// On a current-thread runtime the actor cannot run while the pulls are
    /// queued, so they reach it as one group spanning four windows; each
    /// must be taken in as the window moves.
    #[tokio::test(flavor = "current_thread")]
    async fn a_group_of_pulls_larger_than_the_window_is_learned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let (learning, actor) = Learning::start(store.clone(), seed(3)).expect("start");
        let total = 4 * WINDOW_SLOTS_MAX;
        for from in (0..total).step_by(500) {
            let pulled = chosen_marks(from, (from + 500).min(total));
            learning.inputs.try_send(pulled).expect("queued");
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
