//! The group-commit actor: the one thread that owns the acceptor state
//! machine and the store.
//!
//! It takes every command waiting in its queue (up to a batch limit),
//! applies each to the core at once (so later commands see earlier ones),
//! writes all their changes in one synced RocksDB batch, and only then
//! sends the replies. Concurrent requests therefore share one fsync, and
//! nothing a reply says (even a read) is ever ahead of the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::thread::JoinHandle;
use std::time::Instant;

use paxos_core::{
    Accept, AcceptReply, Accepted, Acceptor, AcceptorView, Ballot, Change, Commit, CommitReply,
    Configuration, Install, Join, JoinReply, LeaderContact, Membership, NotVoting, Persisted, Prepare,
    PrepareReply, Slot, Snapshot, Step, Transition,
};
use tokio::sync::{mpsc, oneshot};

use crate::metrics;
use crate::store::RocksStore;

/// Commands waiting for the actor; senders wait when it is full.
pub const QUEUE_COMMANDS_MAX: usize = 4096;
/// Most commands applied and persisted by one write.
pub const BATCH_COMMANDS_MAX: usize = 1024;
/// Most learners whose progress is tracked; a decommissioned learner's entry
/// stays, and `--retain-slots` bounds how long it can hold compaction back.
pub const LEARNERS_MAX: usize = 64;

/// Cheap to clone; every HTTP handler talks to the actor through one.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    tx: mpsc::Sender<Command>,
}

/// The actor has stopped: the process is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the acceptor is shutting down")]
pub struct DriverGone;

/// A request the actor refuses, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Conflict(pub String);

/// Accepted entries from a slot on, with the points that frame them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    pub compacted_below: Slot,
    pub chosen_below: Slot,
    pub entries: Vec<(Slot, Accepted)>,
}

/// The leader an acceptor last heard from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHeard {
    pub ballot: Ballot,
    pub url: String,
    pub heard_ago_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    /// None while blank.
    pub membership: Option<Membership>,
    /// None in epoch 0.
    pub configuration: Option<Configuration>,
    pub voting: bool,
    pub promised: Ballot,
    /// Only a leader heard under the current promise.
    pub leader: Option<LeaderHeard>,
    pub chosen_below: Slot,
    pub compacted_below: Slot,
    pub log_entries: usize,
}

/// Settings of the actor.
#[derive(Debug, Clone, Copy)]
pub struct DriverSettings {
    /// How much log compaction keeps below the chosen point.
    pub retention: Retention,
}

/// The actor's thread; join it after [`DriverHandle::shutdown`].
pub struct DriverThread(JoinHandle<()>);

impl DriverThread {
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("the acceptor driver thread panicked");
        }
    }
}

/// Starts the actor on its own thread with the state `store` holds.
pub fn spawn(
    acceptor: Acceptor,
    store: RocksStore,
    learners: BTreeMap<String, u64>,
    settings: DriverSettings,
) -> std::io::Result<(DriverHandle, DriverThread)> {
    let (tx, rx) = mpsc::channel(QUEUE_COMMANDS_MAX);
    let driver = Driver {
        acceptor,
        store,
        learners,
        passed: BTreeSet::new(),
        leader: LeaderContact::new(),
        started: Instant::now(),
        settings,
    };
    driver.publish_gauges();
    let thread = std::thread::Builder::new()
        .name("acceptor-driver".to_owned())
        .spawn(move || {
            // A panic here is a bug in the state machine or in us: the
            // state in memory can no longer be trusted to match the disk.
            if std::panic::catch_unwind(AssertUnwindSafe(|| driver.run(rx))).is_err() {
                tracing::error!("the acceptor driver panicked; aborting so the process restarts from disk");
                std::process::abort();
            }
        })?;
    Ok((DriverHandle { tx }, DriverThread(thread)))
}

impl DriverHandle {
    pub async fn prepare(&self, prepare: Prepare) -> Result<PrepareReply, DriverGone> {
        self.call(|reply| Command::Prepare { prepare, reply }).await
    }

    /// `leader_url` is recorded as the leader last heard if the accept succeeds.
    pub async fn accept(
        &self,
        accept: Accept,
        leader_url: Option<String>,
    ) -> Result<AcceptReply, DriverGone> {
        self.call(|reply| Command::Accept {
            accept,
            leader_url,
            reply,
        })
        .await
    }

    pub async fn commit(
        &self,
        commit: Commit,
        leader_url: String,
    ) -> Result<Result<CommitReply, NotVoting>, DriverGone> {
        self.call(|reply| Command::Commit {
            commit,
            leader_url,
            reply,
        })
        .await
    }

    /// Founds a new cluster on this (blank) acceptor.
    pub async fn join(&self, join: Join) -> Result<JoinReply, DriverGone> {
        self.call(|reply| Command::Join { join, reply }).await
    }

    /// Takes a rebuild's result: this (blank) acceptor replaces a lost member.
    pub async fn install(&self, install: Install) -> Result<JoinReply, DriverGone> {
        self.call(|reply| Command::Install { install, reply }).await
    }

    /// Moves this acceptor into the configuration a chosen stop sign named.
    pub async fn transition(&self, transition: Transition) -> Result<JoinReply, DriverGone> {
        self.call(|reply| Command::Transition { transition, reply }).await
    }

    /// What another acceptor needs to move into this one's epoch: its
    /// configuration and chosen snapshot. None in epoch 0 and while it
    /// does not vote.
    pub async fn current_transition(&self) -> Result<Option<Transition>, DriverGone> {
        self.call(|reply| Command::CurrentTransition { reply }).await
    }

    pub async fn log(&self, from: Slot, limit: usize) -> Result<LogView, DriverGone> {
        self.call(|reply| Command::Log { from, limit, reply }).await
    }

    /// The snapshot the log is compacted to.
    pub async fn snapshot(&self) -> Result<Snapshot, DriverGone> {
        self.call(|reply| Command::Snapshot { reply }).await
    }

    pub async fn status(&self) -> Result<StatusView, DriverGone> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// Err when the learner is new and [`LEARNERS_MAX`] are tracked already.
    pub async fn learner_progress(
        &self,
        id: String,
        learned_below: u64,
    ) -> Result<Result<(), Conflict>, DriverGone> {
        self.call(|reply| Command::LearnerProgress {
            id,
            learned_below,
            reply,
        })
        .await
    }

    /// Makes a synced write through the actor: the store is open and writable.
    pub async fn probe(&self) -> Result<(), DriverGone> {
        self.call(|reply| Command::Probe { reply }).await
    }

    /// Asks for a compaction step; skipped when the queue is full, since
    /// the next tick asks again.
    pub fn request_compaction(&self) -> Result<(), DriverGone> {
        match self.tx.try_send(Command::Compact) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(DriverGone),
        }
    }

    /// Lets the actor finish what is queued, persist it, and stop.
    pub async fn shutdown(&self) {
        // Already gone is fine: then it has stopped.
        let _ = self.tx.send(Command::Shutdown).await;
    }

    /// Asks the actor to stop without waiting for room in its queue; false
    /// when the queue is full (the request was not sent).
    pub fn try_shutdown(&self) -> bool {
        match self.tx.try_send(Command::Shutdown) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
        }
    }

    async fn call<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> Command) -> Result<R, DriverGone> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| DriverGone)?;
        answer.await.map_err(|_| DriverGone)
    }
}

enum Command {
    Prepare {
        prepare: Prepare,
        reply: oneshot::Sender<PrepareReply>,
    },
    Accept {
        accept: Accept,
        leader_url: Option<String>,
        reply: oneshot::Sender<AcceptReply>,
    },
    Commit {
        commit: Commit,
        leader_url: String,
        reply: oneshot::Sender<Result<CommitReply, NotVoting>>,
    },
    Join {
        join: Join,
        reply: oneshot::Sender<JoinReply>,
    },
    Install {
        install: Install,
        reply: oneshot::Sender<JoinReply>,
    },
    Transition {
        transition: Transition,
        reply: oneshot::Sender<JoinReply>,
    },
    CurrentTransition {
        reply: oneshot::Sender<Option<Transition>>,
    },
    Log {
        from: Slot,
        limit: usize,
        reply: oneshot::Sender<LogView>,
    },
    Status {
        reply: oneshot::Sender<StatusView>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
    LearnerProgress {
        id: String,
        learned_below: u64,
        reply: oneshot::Sender<Result<(), Conflict>>,
    },
    Probe {
        reply: oneshot::Sender<()>,
    },
    Compact,
    Shutdown,
}

/// A reply waiting for the batch's write.
type Release = Box<dyn FnOnce(&Persisted) + Send>;

#[derive(Default)]
struct Batch {
    commands: usize,
    changes: Vec<Change>,
    learners: Vec<(String, u64)>,
    probe: bool,
    releases: Vec<Release>,
}

impl Batch {
    /// Holds a core step's reply until the batch is durable.
    fn step<R: Send + 'static>(&mut self, step: Step<R>, send: impl FnOnce(R) + Send + 'static) {
        let (change, held) = step.into_parts();
        if !change.is_empty() {
            self.changes.push(change);
        }
        self.releases
            .push(Box::new(move |persisted| send(held.release(persisted))));
    }

    /// Holds any other reply until the batch is durable: it may describe
    /// state changed earlier in this batch.
    fn reply<R: Send + 'static>(&mut self, reply: oneshot::Sender<R>, value: R) {
        self.releases.push(Box::new(move |_| {
            // The requester may have timed out and gone; nothing to do then.
            let _ = reply.send(value);
        }));
    }
}

struct Driver {
    acceptor: Acceptor,
    store: RocksStore,
    learners: BTreeMap<String, u64>,
    /// Learners compaction has passed (and counted) and that have not
    /// caught up since; in memory, so a restart counts a stale one again.
    passed: BTreeSet<String>,
    /// The leader last heard, by URL; the core decides what counts.
    leader: LeaderContact<String>,
    /// The clock `leader` is read on: milliseconds since this instant.
    started: Instant,
    settings: DriverSettings,
}

impl Driver {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut stopping = false;
        while !stopping {
            let Some(first) = rx.blocking_recv() else { break };
            let mut batch = Batch::default();
            stopping = self.handle(first, &mut batch);
            while !stopping && batch.commands < BATCH_COMMANDS_MAX {
                let Ok(command) = rx.try_recv() else { break };
                stopping = self.handle(command, &mut batch);
            }
            self.persist_and_reply(batch);
        }
        if let Err(error) = self.store.flush() {
            tracing::warn!(%error, "flushing the memtable at shutdown failed; the WAL has everything");
        }
        tracing::info!("acceptor driver stopped");
    }

    /// Applies one command; true when it asks the actor to stop.
    fn handle(&mut self, command: Command, batch: &mut Batch) -> bool {
        batch.commands += 1;
        match command {
            Command::Prepare { prepare, reply } => self.prepare(&prepare, reply, batch),
            Command::Accept {
                accept,
                leader_url,
                reply,
            } => self.accept(&accept, leader_url, reply, batch),
            Command::Commit {
                commit,
                leader_url,
                reply,
            } => self.commit(&commit, leader_url, reply, batch),
            Command::Join { join, reply } => {
                let step = self.acceptor.handle_join(&join);
                self.membership_step(step, reply, batch);
            }
            Command::Install { install, reply } => {
                let step = self.acceptor.handle_install(&install);
                self.membership_step(step, reply, batch);
            }
            Command::Transition { transition, reply } => {
                let step = self.acceptor.handle_transition(&transition);
                self.leader.transitioned(step.peek());
                self.membership_step(step, reply, batch);
            }
            Command::CurrentTransition { reply } => {
                let view = self.acceptor.view();
                let current = view
                    .configuration
                    .filter(|_| view.voting)
                    .map(|configuration| Transition {
                        configuration,
                        snapshot: self.acceptor.chosen_snapshot(),
                    });
                batch.reply(reply, current);
            }
            Command::Log { from, limit, reply } => {
                let view = self.acceptor.view();
                let entries = self.acceptor.entries_from(from, limit);
                let log = LogView {
                    compacted_below: view.compacted_below,
                    chosen_below: view.chosen_below,
                    entries,
                };
                batch.reply(reply, log);
            }
            Command::Status { reply } => batch.reply(reply, self.status()),
            Command::Snapshot { reply } => batch.reply(reply, self.acceptor.state().base.clone()),
            Command::LearnerProgress {
                id,
                learned_below,
                reply,
            } => {
                let result = self.learner_progress(id, learned_below, batch);
                batch.reply(reply, result);
            }
            Command::Probe { reply } => {
                batch.probe = true;
                batch.reply(reply, ());
            }
            Command::Compact => self.compact(batch),
            Command::Shutdown => return true,
        }
        false
    }

    fn prepare(&mut self, prepare: &Prepare, reply: oneshot::Sender<PrepareReply>, batch: &mut Batch) {
        let step = self.acceptor.handle_prepare(prepare);
        match step.peek() {
            PrepareReply::Rejected { .. } => metrics::rejection("prepare_ballot_not_above_promise"),
            PrepareReply::NotVoting => metrics::rejection("not_voting"),
            PrepareReply::Promised(_) => {}
        }
        batch.step(step, move |r| {
            let _ = reply.send(r);
        });
    }

    fn accept(
        &mut self,
        accept: &Accept,
        leader_url: Option<String>,
        reply: oneshot::Sender<AcceptReply>,
        batch: &mut Batch,
    ) {
        let step = self.acceptor.handle_accept(accept);
        if let Some(url) = leader_url {
            self.leader.accepted(accept, step.peek(), self.now_ms(), url);
        }
        match step.peek() {
            AcceptReply::Accepted { .. } => {}
            AcceptReply::Rejected { .. } => metrics::rejection("accept_ballot_below_promise"),
            AcceptReply::Conflict { slot } => {
                tracing::error!(%slot, ballot = %accept.ballot, "refused an accept that would put a second value into a slot");
                metrics::rejection("conflicting_value");
            }
            AcceptReply::NotVoting => metrics::rejection("not_voting"),
        }
        batch.step(step, move |r| {
            let _ = reply.send(r);
        });
    }

    fn commit(
        &mut self,
        commit: &Commit,
        leader_url: String,
        reply: oneshot::Sender<Result<CommitReply, NotVoting>>,
        batch: &mut Batch,
    ) {
        let step = self.acceptor.handle_commit(commit);
        self.leader
            .committed(commit, step.peek(), self.now_ms(), leader_url);
        match step.peek() {
            Err(NotVoting) => metrics::rejection("not_voting"),
            // A heartbeat from below the promise comes from a deposed leader.
            Ok(reply) if reply.promised != commit.ballot => metrics::rejection("commit_ballot_below_promise"),
            Ok(_) => {}
        }
        batch.step(step, move |r| {
            let _ = reply.send(r);
        });
    }

    fn membership_step(
        &mut self,
        step: Step<JoinReply>,
        reply: oneshot::Sender<JoinReply>,
        batch: &mut Batch,
    ) {
        if *step.peek() == JoinReply::Joined {
            let view = self.acceptor.view();
            let epoch = view.configuration.as_ref().map_or(0, |c| c.epoch);
            tracing::info!(member = %view.member, epoch, promised = %view.promised, chosen_below = %view.chosen_below, "this acceptor is a voting member now");
        }
        batch.step(step, move |r| {
            let _ = reply.send(r);
        });
    }

    fn status(&self) -> StatusView {
        let view: AcceptorView = self.acceptor.view();
        let leader = self
            .leader
            .status(view.promised, self.now_ms())
            .map(|heard| LeaderHeard {
                ballot: heard.ballot,
                url: heard.leader.clone(),
                heard_ago_ms: heard.heard_ago_ms,
            });
        StatusView {
            membership: view.membership.clone(),
            configuration: view.configuration.clone(),
            voting: view.voting,
            promised: view.promised,
            leader,
            chosen_below: view.chosen_below,
            compacted_below: view.compacted_below,
            log_entries: view.log_entries,
        }
    }

    /// Milliseconds on the driver's monotonic clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn learner_progress(
        &mut self,
        id: String,
        learned_below: u64,
        batch: &mut Batch,
    ) -> Result<(), Conflict> {
        match self.learners.get(&id) {
            Some(known) if *known == learned_below => return Ok(()),
            None if self.learners.len() >= LEARNERS_MAX => {
                metrics::rejection("too_many_learners");
                return Err(Conflict(format!(
                    "{LEARNERS_MAX} learners are tracked already; {id:?} is not one of them"
                )));
            }
            _ => {}
        }
        // Taken as reported, even if lower: a learner that lost its data
        // must not be skipped by compaction from now on.
        self.learners.insert(id.clone(), learned_below);
        batch.learners.push((id, learned_below));
        Ok(())
    }

    fn compact(&mut self, batch: &mut Batch) {
        let target = compaction_target(
            self.acceptor.view().chosen_below,
            self.learners.values().min().copied(),
            self.settings.retention,
        );
        let step = self.acceptor.compact(target);
        if !step.change().is_empty() {
            tracing::debug!(below = %target, "compacting the log");
            for (id, learned_below) in passed_learners(&self.learners, target, &mut self.passed) {
                metrics::compaction_passed_learner();
                tracing::warn!(
                    learner_id = %id,
                    learned_below,
                    compacted_below = %target,
                    retain_slots = self.settings.retention.retain_slots,
                    "compaction passed a registered learner (--retain-slots): it cannot learn the slots \
                     in between from this acceptor and will start again from a snapshot"
                );
            }
        }
        batch.step(step, |_| {});
    }

    fn persist_and_reply(&mut self, batch: Batch) {
        let writes = !batch.changes.is_empty() || !batch.learners.is_empty() || batch.probe;
        let started = Instant::now();
        let persisted = match self.store.write_all(&batch.changes, &batch.learners, batch.probe) {
            Ok(persisted) => persisted,
            Err(error) => fatal_write_error(&error),
        };
        if writes {
            metrics::record_write(started.elapsed(), batch.changes.len());
        }
        self.publish_gauges();
        for release in batch.releases {
            release(&persisted);
        }
        if service::planted::is("acceptor_reply_before_fsync") {
            if let Err(error) = self.store.sync_wal() {
                fatal_write_error(&error);
            }
        }
    }

    fn publish_gauges(&self) {
        let view = self.acceptor.view();
        metrics::publish_state(&view);
    }
}

/// How much log compaction keeps below the chosen point.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// At most this many slots for lagging learners.
    pub retain_slots: u64,
    /// At least this many, whatever learners read: the window of keys.
    pub key_window_slots: u64,
}

/// The slot below which the log may be dropped: past every learner, unless
/// that keeps more than `retain_slots` below the chosen point; never within
/// `key_window_slots` of it. With no learner ever heard from, only the
/// retention applies.
pub fn compaction_target(chosen_below: Slot, slowest_learner: Option<u64>, retention: Retention) -> Slot {
    let retained = chosen_below.0.saturating_sub(retention.retain_slots);
    let window = chosen_below.0.saturating_sub(retention.key_window_slots);
    Slot(slowest_learner.unwrap_or(0).max(retained).min(window))
}

/// Registered learners that compaction to `compacted_below` passes for the
/// first time (their progress is below it), with their progress; `passed`
/// remembers them until their progress reaches the compaction point again.
pub fn passed_learners(
    learners: &BTreeMap<String, u64>,
    compacted_below: Slot,
    passed: &mut BTreeSet<String>,
) -> Vec<(String, u64)> {
    passed.retain(|id| learners.get(id).is_some_and(|below| *below < compacted_below.0));
    learners
        .iter()
        .filter(|(_, below)| **below < compacted_below.0)
        .filter(|(id, _)| passed.insert((*id).clone()))
        .map(|(id, below)| (id.clone(), *below))
        .collect()
}

/// fsyncgate: after a failed write or fsync the kernel may have dropped the
/// dirty pages, so retrying could report durable what is not. Only the
/// disk, read again from a fresh start, can be trusted: the process exits
/// and the acceptor restarts from disk.
fn fatal_write_error(error: &crate::store::StoreError) -> ! {
    service::fatal(crate::SERVICE_NAME, &format!("a synced write failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(retain_slots: u64) -> Retention {
        Retention {
            retain_slots,
            key_window_slots: 0,
        }
    }

    #[test]
    fn compaction_keeps_the_window_of_keys() {
        let window = |key_window_slots| Retention {
            retain_slots: 1000,
            key_window_slots,
        };
        assert_eq!(compaction_target(Slot(5000), Some(4900), window(300)), Slot(4700));
        assert_eq!(compaction_target(Slot(5000), Some(4900), window(50)), Slot(4900));
        assert_eq!(
            compaction_target(Slot(5000), None, window(2000)),
            Slot(3000),
            "the window wins over retention"
        );
        assert_eq!(compaction_target(Slot(100), Some(100), window(65_536)), Slot(0));
    }

    #[test]
    fn compaction_waits_for_the_slowest_learner_within_retention() {
        assert_eq!(
            compaction_target(Slot(100), None, keep(1000)),
            Slot(0),
            "no learner and little log"
        );
        assert_eq!(
            compaction_target(Slot(5000), None, keep(1000)),
            Slot(4000),
            "retention alone"
        );
        assert_eq!(
            compaction_target(Slot(100), Some(40), keep(1000)),
            Slot(40),
            "the slowest learner"
        );
        assert_eq!(
            compaction_target(Slot(5000), Some(40), keep(1000)),
            Slot(4000),
            "retention passes a laggard"
        );
    }

    #[test]
    fn passing_a_learner_is_counted_once_until_it_catches_up() {
        let mut passed = BTreeSet::new();
        let mut learners = BTreeMap::from([("lrn_a".to_owned(), 40), ("lrn_b".to_owned(), 500)]);
        assert!(
            passed_learners(&learners, Slot(40), &mut passed).is_empty(),
            "compaction up to a learner's point does not pass it"
        );
        assert_eq!(
            passed_learners(&learners, Slot(100), &mut passed),
            vec![("lrn_a".to_owned(), 40)]
        );
        assert!(
            passed_learners(&learners, Slot(200), &mut passed).is_empty(),
            "counted once while it stays behind"
        );
        learners.insert("lrn_a".to_owned(), 300);
        assert!(passed_learners(&learners, Slot(250), &mut passed).is_empty());
        assert!(passed.is_empty(), "caught up: forgotten");
        assert_eq!(
            passed_learners(&learners, Slot(600), &mut passed),
            vec![("lrn_a".to_owned(), 300), ("lrn_b".to_owned(), 500)],
            "passed again after catching up, and the second learner too"
        );
    }
}
