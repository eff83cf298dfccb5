//! An exhaustive model check of the real core with `stateright`.
//!
//! The state is the real `Acceptor`s (with the durable `AcceptorState`
//! beside each), the real `Proposer`s, and a network that is a multiset of
//! requests to acceptors, delivered in any order. Loss needs no action: a
//! request never delivered was lost, and safety cannot depend on delivery.
//! A bounded number of duplications copies a request in flight. To keep
//! the space small, an acceptor's answer reaches its proposer in the same
//! step as the request is handled: a reply cannot be overtaken by later
//! events (the simulation covers that), and a proposer misses replies only
//! by leaving the ballot they answer (timeout, step-down, crash).
//! Actions: deliver a message; duplicate one; a proposer's timer fires (bounded); a client
//! asks a leader for an ID (bounded, which bounds the slots); one crash of
//! an acceptor (it restarts from what was durable) or of a proposer (it
//! restarts empty, with `Proposer::new`).
//!
//! Disk loss (bounded): an acceptor loses its memory and its disk at once
//! and comes back blank with a new `MemberId` (`AcceptorState::blank`); the
//! ghost keeps the votes the lost disk held, since they still count for
//! what was chosen. A proposer node may then start a `Rebuild` of the blank
//! acceptor (bounded): its prepares travel like any request, their replies
//! go to the rebuild in the same step, and the `Install` it yields is a
//! request to the blank acceptor, delivered in any order. Its ballot is
//! picked above every durable promise (an omniscient pick: a lower one is
//! only rejected); a rejected rebuild is dropped, and so is the rebuild of
//! a proposer that crashes.
//!
//! Reconfiguration (bounded): a leader is asked to move from epoch 0
//! (acceptors 0, 1, 2) to epoch 1 (acceptors 1, 2 and the spare blank
//! acceptor 3, so one member leaves and one arrives). Its stop sign travels
//! like any accept; once it is chosen the proposer reports `Reconfigured`,
//! and its node sends a `Transition` to each seat of epoch 1 (delivered in
//! any order, or never) and goes on with a proposer of epoch 1. A node
//! whose proposer reports `Superseded` goes on in epoch 1 too, knowing
//! nothing chosen. Old-epoch proposers keep campaigning and proposing
//! meanwhile; acceptors that have not moved keep answering them.
//!
//! Commits (`model_check_commits`, off in the other checks so their state
//! counts stay comparable): a leader's heartbeat (bounded) sends its
//! `Commit`s, which travel like any request (any order, duplicated within
//! the bound, or never); the leader keeps one chosen slot for catch-up, so
//! a lagging acceptor gets the older ones as a snapshot in its commit; an
//! acceptor may compact its chosen prefix (bounded).
//!
//! A ghost in the state records every durable vote. Properties: agreement
//! (one value per slot, one value per ballot and slot); every `Chosen`
//! effect matches the ghost; IDs handed to clients are unique and lie in
//! ranges that take effect when the chosen log is applied; the ranges that
//! take effect are disjoint and ordered by slot; real-time order (a call
//! sent after another was answered gets higher IDs: the ghost counts the
//! answers given when each request is sent; tracked in the two new checks
//! only). `model_check_void_allocation` (three requests, a second campaign)
//! asks, as a `sometimes` property, for a chosen allocation that is void.
//! `model_check_commits` (one leader, two slots, a heartbeat, a
//! compaction) is exhaustive in about 75 s; `model_check_commits_with_a_rival`
//! (both sequencers campaign) did not finish in 20 minutes, and
//! `model_check_void_allocation` did not finish in 25: both are
//! `#[ignore]`d.
//!
//! `PAXID_MODEL_TIMEOUTS`, `PAXID_MODEL_REQUESTS`, `PAXID_MODEL_CRASHES`,
//! `PAXID_MODEL_DUPLICATES`, `PAXID_MODEL_DISK_LOSSES`, `PAXID_MODEL_REBUILDS`
//! and `PAXID_MODEL_RESTART_CAMPAIGNS=1` change the bounds of
//! `model_check_two_slots` (disk losses and rebuilds are 0 there;
//! `model_check_disk_loss` has its own bounds, and takes
//! `PAXID_MODEL_SECOND_CAMPAIGN=1`); `PAXID_MODEL_DEPTH_MAX` and
//! `PAXID_MODEL_STATES_MAX` cut a search short (then it is not exhaustive).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use paxos_core::{
    Accept, AcceptReply, Acceptor, AcceptorId, AcceptorState, Allocation, Ballot, Change, Commit,
    CommitReply, Configuration, Counters, Effect, IdRequest, Install, JoinReply, MemberId, Membership,
    NodeId, NotVoting, Prepare, PrepareReply, Proposer, ProposerConfig, Rebuild, RebuildStep, Replace,
    RequestId, Seat, SequenceName, Slot, Transition, Value,
};
use stateright::{Checker, Model, Property};

/// Seats of epoch 0; acceptor `ACCEPTORS` is a spare, blank until a
/// reconfiguration seats it.
const ACCEPTORS: usize = 3;
const SPARE: usize = ACCEPTORS;
const PROPOSERS: usize = 2;
/// Losing a reply after its request was handled doubles the branching. A
/// proposer also misses replies when it steps down, times out or crashes
/// before they arrive, which the model explores, so it is off by default.
const LOSE_REPLIES: bool = false;
/// How far a timer jump moves a proposer's clock: past every timeout.
const JUMP_MS: u64 = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Msg {
    Prepare {
        p: u8,
        inc: u8,
        to: u8,
        prepare: Prepare,
    },
    Accept {
        p: u8,
        inc: u8,
        to: u8,
        accept: Accept,
    },
    Commit {
        p: u8,
        inc: u8,
        to: u8,
        commit: Commit,
    },
    PrepareReply {
        p: u8,
        inc: u8,
        from: u8,
        ballot: Ballot,
        reply: PrepareReply,
    },
    AcceptReply {
        p: u8,
        inc: u8,
        from: u8,
        ballot: Ballot,
        slots: Vec<Slot>,
        reply: AcceptReply,
    },
    CommitReply {
        p: u8,
        inc: u8,
        from: u8,
        ballot: Ballot,
        reply: Result<CommitReply, NotVoting>,
    },
    /// A rebuild's phase 1, to every acceptor but the blank one.
    RebuildPrepare {
        p: u8,
        inc: u8,
        to: u8,
        prepare: Prepare,
    },
    RebuildReply {
        p: u8,
        inc: u8,
        from: u8,
        ballot: Ballot,
        reply: PrepareReply,
    },
    /// What a rebuild hands the blank acceptor; nobody waits for its answer.
    Install {
        to: u8,
        install: Install,
    },
    /// Moves a seat of epoch 1 there; nobody waits for its answer. The
    /// leader's chosen tail comes with it and is applied first, as the
    /// acceptor service does with `POST /v1/transition`.
    Transition {
        to: u8,
        transition: Transition,
        tail: Accept,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AcceptorNode {
    acceptor: Acceptor,
    durable: AcceptorState,
    /// Changes applied in memory but not yet durable: only ever non-empty
    /// with the planted bug `reply_before_persist`.
    unwritten: Vec<Change>,
    /// The member whose disk this acceptor lost, for a rebuild to retire.
    lost: Option<MemberId>,
    /// The ballot of the install that rebuilt this acceptor, if one did.
    installed: Option<Ballot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ProposerNode {
    proposer: Proposer,
    /// The acceptor behind each `AcceptorId` of the proposer's epoch.
    seats: Vec<u8>,
    inc: u8,
    clock_ms: u64,
    /// The rebuild this sequencer drives, if any; lost in a crash.
    rebuild: Option<Rebuild>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Ghost {
    /// (slot, ballot) → the value and the acceptors that voted it durably.
    votes: BTreeMap<(Slot, Ballot), (Value, u8)>,
    /// Per epoch and slot: the slots of an epoch past its stop sign are void.
    chosen: BTreeMap<(u64, Slot), Value>,
    /// Ranges that take effect, applying the chosen prefix in slot order,
    /// moving to epoch 1 after the first stop sign of epoch 0.
    applied_epoch: u64,
    applied_below: Slot,
    applied: Counters,
    effective: Vec<(Slot, Allocation)>,
    replies: Vec<Allocation>,
    /// Evidence for the `sometimes` properties of disk loss.
    lost_chosen_vote: bool,
    replies_after_loss: bool,
    replies_after_rebuild: bool,
    replies_in_epoch_1: bool,
    /// Per request: how many calls had been answered when it was sent.
    answered_at_invocation: BTreeMap<RequestId, usize>,
    /// A chosen allocation did not take effect (a higher range came first).
    void_allocation: bool,
    /// An acceptor replaced its log with a leader's snapshot.
    snapshot_installed: bool,
    /// The first broken property, by name, with what broke it.
    broken: Option<(&'static str, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    acceptors: Vec<AcceptorNode>,
    proposers: Vec<ProposerNode>,
    /// Sorted by a stable hash, so that equal multisets are equal states.
    network: Vec<(u64, Msg)>,
    duplicates_left: u8,
    timeouts_left: Vec<u8>,
    requests_left: u8,
    crashes_left: u8,
    disk_losses_left: u8,
    rebuilds_left: u8,
    reconfigurations_left: u8,
    /// Whether leaders' commits travel (constant within a check).
    commits: bool,
    heartbeats_left: u8,
    compactions_left: u8,
    ghost: Ghost,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    /// The acceptor handles the request and its reply arrives.
    Deliver(Msg),
    /// The acceptor handles the request and its reply is lost.
    DeliverLoseReply(Msg),
    Duplicate(Msg),
    Timeout(u8),
    Request(u8),
    CrashAcceptor(u8),
    CrashProposer(u8),
    /// Only with the planted bug `reply_before_persist`.
    Write(u8),
    /// The acceptor loses memory and disk; it comes back blank, a new member.
    LoseDisk(u8),
    /// Proposer node `p` starts a rebuild of blank acceptor `a`.
    StartRebuild(u8, u8),
    /// Leader `p` is asked to move the cluster to epoch 1.
    Reconfigure(u8),
    /// Leader `p`'s heartbeat timer fires: commits, and catch-up.
    Heartbeat(u8),
    /// Acceptor `a` folds its chosen prefix into its snapshot.
    Compact(u8),
}

#[derive(Clone, Debug)]
struct Paxid {
    /// A restarted proposer gets a timeout of its own (ten times the states).
    restart_campaigns: bool,
    duplicates: u8,
    timeouts: u8,
    requests: u8,
    crashes: u8,
    disk_losses: u8,
    /// Rebuild attempts, in all.
    rebuilds: u8,
    /// Reconfiguration requests, in all.
    reconfigurations: u8,
    /// The sequencer (0 or 1) with one timeout more than `timeouts`: with
    /// it, sequencer 1 can be rejected by a rebuild's ballot and campaign
    /// above it, and sequencer 0, deposed by sequencer 1, can campaign above
    /// it and recover its own minority-accepted slot.
    campaigns_twice: Option<usize>,
    /// Leaders' commits travel, with catch-up snapshots (the leader keeps
    /// one chosen slot for catch-up, so a lagging acceptor gets a snapshot).
    commits: bool,
    /// Heartbeat timer firings of leaders, in all.
    heartbeats: u8,
    /// Acceptor compactions, in all.
    compactions: u8,
}

fn config(p: usize, commits: bool) -> ProposerConfig {
    config_in(p, 0, commits)
}

fn config_in(p: usize, epoch: u64, commits: bool) -> ProposerConfig {
    let mut config = ProposerConfig::new(NodeId(p as u32 + 1), ACCEPTORS);
    config.epoch = epoch;
    // Room for every slot of the model in flight at once (requests, the
    // stop sign, recovered ones), so no interleaving waits for the pipeline.
    config.pipeline_slots_max = 8;
    config.heartbeat_interval_ms = 10;
    config.election_timeout_min_ms = 100;
    config.election_timeout_max_ms = 100;
    config.quorum_contact_ms = 100;
    // The model has no status polls; without pre-vote a follower may
    // campaign whenever its timer fires, a superset of what pre-vote allows
    // (pre-vote only removes campaigns, so safety checked here holds with it).
    config.prevote = false;
    config.id_timeout_ms = 1_000_000;
    config.accept_retry_ms = 1_000_000;
    if commits {
        // Older chosen slots are folded at once: catch-up needs a snapshot.
        config.catchup_slots_max = 1;
    }
    config
}

/// The founding identity of acceptor `a`.
fn founder(a: usize) -> MemberId {
    MemberId(a as u128 + 1)
}

fn founders() -> Membership {
    Membership::founding((0..ACCEPTORS).map(founder))
}

/// The acceptors seated in `epoch`, in `AcceptorId` order.
fn seats(epoch: u64) -> Vec<u8> {
    if epoch == 0 {
        (0..ACCEPTORS as u8).collect()
    } else {
        (1..=SPARE as u8).collect()
    }
}

/// Epoch 1: acceptor 0 leaves, the spare joins.
fn epoch_1() -> Configuration {
    Configuration {
        epoch: 1,
        seats: seats(1)
            .into_iter()
            .map(|a| Seat {
                address: format!("a{a}"),
                member: founder(a as usize),
            })
            .collect(),
    }
}

fn is_request(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Prepare { .. }
            | Msg::Accept { .. }
            | Msg::Commit { .. }
            | Msg::RebuildPrepare { .. }
            | Msg::Install { .. }
            | Msg::Transition { .. }
    )
}

/// A fresh identity for acceptor `a` after the `loss`th disk loss (from 0).
fn blank_member(a: usize, loss: u8) -> MemberId {
    MemberId(100 + a as u128 + 10 * u128::from(loss))
}

fn stable_hash(msg: &Msg) -> u64 {
    let mut hasher = DefaultHasher::new();
    msg.hash(&mut hasher);
    hasher.finish()
}

impl State {
    fn send(&mut self, msg: Msg) {
        let key = (stable_hash(&msg), msg);
        let at = self
            .network
            .binary_search_by(|(h, m)| h.cmp(&key.0).then_with(|| order(m, &key.1)))
            .unwrap_or_else(|at| at);
        self.network.insert(at, key);
    }

    fn take(&mut self, msg: &Msg) {
        let at = self
            .network
            .iter()
            .position(|(_, m)| m == msg)
            .expect("delivered from the network");
        self.network.remove(at);
    }

    fn break_property(&mut self, name: &'static str, what: String) {
        if self.ghost.broken.is_none() {
            self.ghost.broken = Some((name, what));
        }
    }

    /// Runs a proposer's effects: messages into the network, claims checked.
    fn drain(&mut self, p: usize) {
        let inc = self.proposers[p].inc;
        let pp = p as u8;
        let effects = self.proposers[p].proposer.drain_effects();
        let epoch = self.proposers[p].proposer.config().epoch;
        let seats: Vec<u8> = self.proposers[p].seats.clone();
        let seat = |to: AcceptorId| seats[to.0];
        for effect in effects {
            match effect {
                Effect::Prepare { to, prepare } => self.send(Msg::Prepare {
                    p: pp,
                    inc,
                    to: seat(to),
                    prepare,
                }),
                Effect::Accept { to, accept } => self.send(Msg::Accept {
                    p: pp,
                    inc,
                    to: seat(to),
                    accept,
                }),
                Effect::AcceptAll { accept } => {
                    for &to in &seats {
                        self.send(Msg::Accept {
                            p: pp,
                            inc,
                            to,
                            accept: accept.clone(),
                        });
                    }
                }
                // Heartbeats are left out to keep the space small: they only
                // mark chosen slots and catch acceptors up, which accepts do
                // too (their `chosen_below`); the simulation covers them.
                Effect::Commit { to, commit } if self.commits => self.send(Msg::Commit {
                    p: pp,
                    inc,
                    to: seat(to),
                    commit,
                }),
                Effect::Commit { .. } => {}
                Effect::Reply {
                    request,
                    result: Ok(allocation),
                } => self.reply(request, allocation),
                Effect::Reply { result: Err(_), .. } => {}
                Effect::Chosen { slot, value } => {
                    if self.ghost.chosen.get(&(epoch, slot)) != Some(&value) {
                        let what = format!("proposer {p} reports epoch {epoch} slot {slot} chose {value:?}");
                        self.break_property("chosen effects are chosen", what);
                    }
                }
                Effect::BecameLeader { .. } | Effect::SteppedDown { .. } => {}
                Effect::Reconfigured {
                    configuration,
                    snapshot,
                    tail,
                    ..
                } => {
                    if configuration != epoch_1() {
                        let what = format!("proposer {p} moves to {configuration:?}");
                        self.break_property("chosen effects are chosen", what);
                    }
                    for to in seats_of(&configuration) {
                        let transition = Transition {
                            configuration: configuration.clone(),
                            snapshot: snapshot.clone(),
                        };
                        let tail = tail.clone();
                        self.send(Msg::Transition { to, transition, tail });
                    }
                    self.move_on(p, configuration.epoch, snapshot);
                }
                Effect::Superseded { epoch } => self.move_on(p, epoch, Default::default()),
            }
        }
    }

    /// Node `p` goes on with a proposer of `epoch`; replies to its old one
    /// are dropped, as the driver drops them with the old proposer.
    fn move_on(&mut self, p: usize, epoch: u64, known: paxos_core::Snapshot) {
        let node = &mut self.proposers[p];
        node.inc += 1;
        node.seats = seats(epoch);
        node.proposer = Proposer::resume(config_in(p, epoch, self.commits), known, node.clock_ms, 0);
        node.rebuild = None;
    }

    fn reply(&mut self, request: RequestId, allocation: Allocation) {
        let overlaps = |a: &Allocation| {
            a.sequence == allocation.sequence && a.first < allocation.end() && allocation.first < a.end()
        };
        if self.acceptors.iter().any(|n| n.lost.is_some()) {
            self.ghost.replies_after_loss = true;
        }
        if self.acceptors.iter().any(|n| n.installed.is_some()) {
            self.ghost.replies_after_rebuild = true;
        }
        if self.ghost.applied_epoch == 1 {
            self.ghost.replies_in_epoch_1 = true;
        }
        if self.ghost.replies.iter().any(overlaps) {
            self.break_property(
                "client IDs are unique",
                format!("{allocation:?} handed out twice"),
            );
        }
        let inside = self.ghost.effective.iter().any(|(_, e)| {
            e.sequence == allocation.sequence && e.first <= allocation.first && allocation.end() <= e.end()
        });
        if !inside {
            self.break_property(
                "client IDs take effect",
                format!("{allocation:?} is not in the applied log"),
            );
        }
        // Real-time order: every call answered before this one was sent
        // got IDs below all of this one's.
        let before = self
            .ghost
            .answered_at_invocation
            .get(&request)
            .copied()
            .unwrap_or(0);
        let earlier = self.ghost.replies[..before]
            .iter()
            .find(|a| a.sequence == allocation.sequence && a.end() > allocation.first);
        if let Some(earlier) = earlier {
            let what = format!("{request:?} got {allocation:?}, sent after {earlier:?} was answered");
            self.break_property("real-time order", what);
        }
        self.ghost.replies.push(allocation);
    }

    /// Acceptor `a` made `change` durable.
    fn durable(&mut self, a: usize, change: &Change) {
        change.apply_to(&mut self.acceptors[a].durable);
        for (slot, accepted) in &change.put {
            let key = (*slot, accepted.ballot);
            let (value, voters) = self
                .ghost
                .votes
                .entry(key)
                .or_insert((accepted.value.clone(), 0))
                .clone();
            if value != accepted.value {
                self.break_property(
                    "agreement",
                    format!("slot {slot} ballot {} carries two values", accepted.ballot),
                );
            }
            let voters = voters | (1 << a);
            self.ghost.votes.insert(key, (value.clone(), voters));
            let epoch = accepted.ballot.epoch;
            let seated = seats(epoch).iter().filter(|s| voters & (1 << **s) != 0).count();
            if seated >= paxos_core::quorum(ACCEPTORS) {
                match self.ghost.chosen.get(&(epoch, *slot)) {
                    Some(chosen) if *chosen != value => self.break_property(
                        "agreement",
                        format!("epoch {epoch} slot {slot} chose {chosen:?} and {value:?}"),
                    ),
                    Some(_) => {}
                    None => {
                        self.ghost.chosen.insert((epoch, *slot), value);
                        self.apply_prefix();
                    }
                }
            }
        }
    }

    fn apply_prefix(&mut self) {
        let at = |g: &Ghost| (g.applied_epoch, g.applied_below);
        while let Some(value) = self.ghost.chosen.get(&at(&self.ghost)).cloned() {
            let slot = self.ghost.applied_below;
            if value.reconfiguration().is_some() {
                self.ghost.applied_epoch += 1;
            }
            let effective = self.ghost.applied.apply(&value);
            if effective.len() < value.allocations().len() {
                self.ghost.void_allocation = true;
            }
            for allocation in effective {
                let misordered = self
                    .ghost
                    .effective
                    .iter()
                    .any(|(_, e)| e.sequence == allocation.sequence && e.end() > allocation.first);
                if misordered {
                    self.break_property(
                        "ranges disjoint and ordered",
                        format!("slot {slot}: {allocation:?}"),
                    );
                }
                self.ghost.effective.push((slot, allocation));
            }
            self.ghost.applied_below = slot.next();
        }
    }

    /// Returns the reply, which the planted bug `reply_before_persist`
    /// releases before the write.
    fn acceptor_receive(&mut self, msg: Msg) -> Option<Msg> {
        let (Msg::Prepare { to, .. }
        | Msg::Accept { to, .. }
        | Msg::Commit { to, .. }
        | Msg::RebuildPrepare { to, .. }
        | Msg::Install { to, .. }
        | Msg::Transition { to, .. }) = &msg
        else {
            unreachable!("only requests reach acceptors")
        };
        let a = *to as usize;
        let node = &mut self.acceptors[a];
        let (change, reply) = match msg {
            Msg::Prepare { p, inc, prepare, .. } => {
                let (change, held) = node.acceptor.handle_prepare(&prepare).into_parts();
                let reply = held.release(&paxos_core::Persisted::after_durable_write());
                (
                    change,
                    Msg::PrepareReply {
                        p,
                        inc,
                        from: a as u8,
                        ballot: prepare.ballot,
                        reply,
                    },
                )
            }
            Msg::Accept { p, inc, accept, .. } => {
                let (change, held) = node.acceptor.handle_accept(&accept).into_parts();
                let reply = held.release(&paxos_core::Persisted::after_durable_write());
                let slots = accept.entries.iter().map(|(s, _)| *s).collect();
                (
                    change,
                    Msg::AcceptReply {
                        p,
                        inc,
                        from: a as u8,
                        ballot: accept.ballot,
                        slots,
                        reply,
                    },
                )
            }
            Msg::Commit { p, inc, commit, .. } => {
                let (change, held) = node.acceptor.handle_commit(&commit).into_parts();
                if commit.snapshot.is_some() && change.compact.is_some() {
                    self.ghost.snapshot_installed = true;
                }
                let reply = held.release(&paxos_core::Persisted::after_durable_write());
                (
                    change,
                    Msg::CommitReply {
                        p,
                        inc,
                        from: a as u8,
                        ballot: commit.ballot,
                        reply,
                    },
                )
            }
            Msg::RebuildPrepare { p, inc, prepare, .. } => {
                let (change, held) = node.acceptor.handle_prepare(&prepare).into_parts();
                let reply = held.release(&paxos_core::Persisted::after_durable_write());
                (
                    change,
                    Msg::RebuildReply {
                        p,
                        inc,
                        from: a as u8,
                        ballot: prepare.ballot,
                        reply,
                    },
                )
            }
            Msg::Install { install, .. } => {
                let (change, held) = node.acceptor.handle_install(&install).into_parts();
                let reply = held.release(&paxos_core::Persisted::after_durable_write());
                if reply == JoinReply::Joined {
                    node.installed = Some(install.ballot);
                }
                self.persist(a, change);
                return None;
            }
            Msg::Transition { transition, tail, .. } => {
                let (change, _held) = node.acceptor.handle_accept(&tail).into_parts();
                self.persist(a, change);
                let node = &mut self.acceptors[a];
                let (change, _held) = node.acceptor.handle_transition(&transition).into_parts();
                self.persist(a, change);
                return None;
            }
            other => unreachable!("an acceptor got {other:?}"),
        };
        self.persist(a, change);
        Some(reply)
    }

    fn persist(&mut self, a: usize, change: Change) {
        // The write is synchronous here (the model's step is atomic), so the
        // proof above is honest; the planted bug defers the write instead.
        if cfg!(paxid_bug = "reply_before_persist") {
            if !change.is_empty() {
                self.acceptors[a].unwritten.push(change);
            }
        } else {
            self.durable(a, &change);
        }
    }

    /// A reply to a rebuild's prepare reaches the rebuild of node `p`.
    fn rebuild_receive(&mut self, msg: Msg) {
        let Msg::RebuildReply {
            p,
            inc,
            from,
            ballot,
            reply,
        } = msg
        else {
            unreachable!("only rebuild replies reach a rebuild")
        };
        let node = &mut self.proposers[p as usize];
        if inc != node.inc {
            return;
        }
        let Some(rebuild) = node.rebuild.as_mut().filter(|r| r.ballot() == ballot) else {
            return;
        };
        match rebuild.handle_prepare_reply(AcceptorId(from as usize), reply) {
            RebuildStep::Waiting => {}
            RebuildStep::Rejected { .. } => node.rebuild = None,
            RebuildStep::Install(install) => {
                let to = rebuild.target().0 as u8;
                node.rebuild = None;
                self.send(Msg::Install { to, install });
            }
        }
    }

    fn proposer_receive(&mut self, p: usize, msg: Msg) {
        let node = &mut self.proposers[p];
        let now = node.clock_ms;
        let id = |from: u8| {
            let at = node.seats.iter().position(|s| *s == from);
            AcceptorId(at.expect("replies of the current incarnation come from its seats"))
        };
        match msg {
            Msg::PrepareReply { inc, .. } | Msg::AcceptReply { inc, .. } | Msg::CommitReply { inc, .. }
                if inc != node.inc => {}
            Msg::PrepareReply {
                from, ballot, reply, ..
            } => {
                let from = id(from);
                node.proposer.handle_prepare_reply(now, from, ballot, reply)
            }
            Msg::AcceptReply {
                from,
                ballot,
                slots,
                reply,
                ..
            } => {
                let from = id(from);
                node.proposer
                    .handle_accept_reply(now, from, ballot, &slots, reply)
            }
            Msg::CommitReply {
                from, ballot, reply, ..
            } => {
                let from = id(from);
                node.proposer.handle_commit_reply(now, from, ballot, reply)
            }
            other => unreachable!("a proposer got {other:?}"),
        }
        node.proposer.flush(now);
        self.drain(p);
    }
}

/// A total order on messages with equal hashes (practically never used).
fn order(a: &Msg, b: &Msg) -> std::cmp::Ordering {
    if a == b {
        std::cmp::Ordering::Equal
    } else {
        format!("{a:?}").cmp(&format!("{b:?}"))
    }
}

impl Model for Paxid {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            acceptors: (0..ACCEPTORS)
                .map(|a| AcceptorState::founded(founder(a), founders()))
                .chain([AcceptorState::blank(founder(SPARE))])
                .map(|state| AcceptorNode {
                    acceptor: Acceptor::restore(state.clone()),
                    durable: state,
                    unwritten: Vec::new(),
                    lost: None,
                    installed: None,
                })
                .collect(),
            proposers: (0..PROPOSERS)
                .map(|p| ProposerNode {
                    proposer: Proposer::new(config(p, self.commits), 0, 0),
                    seats: seats(0),
                    inc: 0,
                    clock_ms: 0,
                    rebuild: None,
                })
                .collect(),
            network: Vec::new(),
            duplicates_left: self.duplicates,
            timeouts_left: (0..PROPOSERS)
                .map(|p| self.timeouts + u8::from(self.campaigns_twice == Some(p)))
                .collect(),
            requests_left: self.requests,
            crashes_left: self.crashes,
            disk_losses_left: self.disk_losses,
            rebuilds_left: self.rebuilds,
            reconfigurations_left: self.reconfigurations,
            commits: self.commits,
            heartbeats_left: self.heartbeats,
            compactions_left: self.compactions,
            ghost: Ghost::default(),
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if state.ghost.broken.is_some() {
            return;
        }
        for (i, (_, msg)) in state.network.iter().enumerate() {
            // Equal copies sit next to each other: one action per distinct message.
            if i > 0 && state.network[i - 1].1 == *msg {
                continue;
            }
            actions.push(Action::Deliver(msg.clone()));
            if LOSE_REPLIES {
                actions.push(Action::DeliverLoseReply(msg.clone()));
            }
            if state.duplicates_left > 0 {
                actions.push(Action::Duplicate(msg.clone()));
            }
        }
        for p in 0..PROPOSERS {
            if state.timeouts_left[p] > 0 {
                actions.push(Action::Timeout(p as u8));
            }
            if state.requests_left > 0 && state.proposers[p].proposer.is_leader() {
                actions.push(Action::Request(p as u8));
            }
            if state.crashes_left > 0 {
                actions.push(Action::CrashProposer(p as u8));
            }
            // Sequencer 1 (the one with a campaign in each epoch) is asked;
            // sequencer 0 competes in either epoch.
            if state.reconfigurations_left > 0 && p == 1 && state.proposers[p].proposer.is_leader() {
                actions.push(Action::Reconfigure(p as u8));
            }
            if state.heartbeats_left > 0 && state.proposers[p].proposer.is_leader() {
                actions.push(Action::Heartbeat(p as u8));
            }
        }
        for a in 0..ACCEPTORS {
            // Writes are synchronous unless a bug defers them: a crash then
            // restores exactly the state in memory, so it is left out.
            if state.crashes_left > 0 && !state.acceptors[a].unwritten.is_empty() {
                actions.push(Action::CrashAcceptor(a as u8));
            }
            if !state.acceptors[a].unwritten.is_empty() {
                actions.push(Action::Write(a as u8));
            }
            let acceptor = &state.acceptors[a].acceptor;
            if state.compactions_left > 0 && acceptor.chosen_snapshot().below > acceptor.state().base.below {
                actions.push(Action::Compact(a as u8));
            }
            // The acceptors are symmetric (the model treats them alike up to
            // the names of their members), so the first disk lost is
            // acceptor 0's: a third of the states, and no behaviour lost.
            let first_loss = state.disk_losses_left == self.disk_losses;
            let blank = state.acceptors[a].acceptor.state().membership.is_none();
            if state.disk_losses_left > 0 && !blank && (a == 0 || !first_loss) {
                actions.push(Action::LoseDisk(a as u8));
            }
            if state.rebuilds_left > 0 && blank && state.acceptors[a].lost.is_some() {
                for p in 0..PROPOSERS {
                    if state.proposers[p].rebuild.is_none() {
                        actions.push(Action::StartRebuild(p as u8, a as u8));
                    }
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        // A core assertion that fires is a finding like any other: record
        // it in the state, so that the checker reports the path to it.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut next = last.clone();
            self.step(&mut next, action);
            next
        }));
        Some(step.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            let mut state = last.clone();
            state.break_property("core assertions hold", what);
            state
        }))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        fn holds(state: &State, name: &str) -> bool {
            state
                .ghost
                .broken
                .as_ref()
                .is_none_or(|(broken, _)| *broken != name)
        }
        let mut properties = vec![
            Property::always("core assertions hold", |_, s| holds(s, "core assertions hold")),
            Property::always("agreement", |_, s| holds(s, "agreement")),
            Property::always("chosen effects are chosen", |_, s| {
                holds(s, "chosen effects are chosen")
            }),
            Property::always("client IDs are unique", |_, s| holds(s, "client IDs are unique")),
            Property::always("client IDs take effect", |_, s| {
                holds(s, "client IDs take effect")
            }),
            Property::always("ranges disjoint and ordered", |_, s| {
                holds(s, "ranges disjoint and ordered")
            }),
            Property::always("real-time order", |_, s| holds(s, "real-time order")),
            // Evidence that the bounds reach the interesting states.
            Property::sometimes("a client gets IDs", |_, s: &State| !s.ghost.replies.is_empty()),
        ];
        if self.requests >= 2 {
            properties.push(Property::sometimes("two slots chosen", |_, s: &State| {
                s.ghost.chosen.len() >= 2
            }));
        }
        if self.commits {
            properties.push(Property::sometimes(
                "a lagging acceptor installs a snapshot",
                |_, s: &State| s.ghost.snapshot_installed,
            ));
            properties.push(Property::sometimes("an acceptor compacts", |_, s: &State| {
                s.acceptors.iter().any(|n| n.durable.base.below > Slot::ZERO)
            }));
        }
        if self.requests >= 3 {
            properties.push(Property::sometimes(
                "a chosen allocation is void",
                |_, s: &State| s.ghost.void_allocation,
            ));
        }
        if self.disk_losses > 0 {
            // The lost disk held a vote for a value chosen before the loss.
            properties.push(Property::sometimes(
                "a disk is lost after a slot was chosen",
                |_, s: &State| s.ghost.lost_chosen_vote,
            ));
            properties.push(Property::sometimes(
                "a client gets IDs after a disk loss",
                |_, s: &State| s.ghost.replies_after_loss,
            ));
        }
        if self.disk_losses > 0 && self.rebuilds > 0 {
            // A vote of a real accept, not (only) the install's.
            properties.push(Property::sometimes("a rebuilt acceptor votes", |_, s: &State| {
                s.acceptors.iter().any(|n| {
                    n.durable.member.0 >= 100
                        && n.installed
                            .is_some_and(|b| n.durable.log.values().any(|v| v.ballot != b))
                })
            }));
            properties.push(Property::sometimes(
                "a client gets IDs after a rebuild",
                |_, s: &State| s.ghost.replies_after_rebuild,
            ));
        }
        if self.reconfigurations > 0 {
            properties.push(Property::sometimes(
                "a client gets IDs in epoch 1",
                |_, s: &State| s.ghost.replies_in_epoch_1,
            ));
        }
        if self.disk_losses > 0 && self.rebuilds > 0 && self.campaigns_twice.is_some() {
            // A leader above the rebuild's ballot had a rebuilt acceptor vote
            // for a chosen value that the lost disk had voted for.
            properties.push(Property::sometimes(
                "a leader above a rebuild re-proposes a value the lost disk voted",
                |_, s: &State| {
                    s.acceptors.iter().enumerate().any(|(a, n)| {
                        let Some(installed) = n.installed else {
                            return false;
                        };
                        n.durable.log.iter().any(|(slot, vote)| {
                            let lost_disk_voted =
                                s.ghost.votes.iter().any(|((at, ballot), (value, voters))| {
                                    at == slot
                                        && *ballot < installed
                                        && voters & (1 << a) != 0
                                        && *value == vote.value
                                });
                            vote.ballot > installed
                                && s.ghost.chosen.get(&(vote.ballot.epoch, *slot)) == Some(&vote.value)
                                && lost_disk_voted
                        })
                    })
                },
            ));
        }
        properties
    }
}

impl Paxid {
    fn step(&self, state: &mut State, action: Action) {
        match action {
            Action::Duplicate(msg) => {
                state.duplicates_left -= 1;
                state.send(msg);
            }
            Action::Deliver(msg) | Action::DeliverLoseReply(msg) if !is_request(&msg) => {
                unreachable!("only requests travel: {msg:?}")
            }
            Action::Deliver(msg) => {
                state.take(&msg);
                match state.acceptor_receive(msg) {
                    None => {}
                    Some(reply @ Msg::RebuildReply { .. }) => state.rebuild_receive(reply),
                    Some(reply) => {
                        let (Msg::PrepareReply { p, .. }
                        | Msg::AcceptReply { p, .. }
                        | Msg::CommitReply { p, .. }) = reply
                        else {
                            unreachable!("acceptors answer with replies")
                        };
                        state.proposer_receive(p as usize, reply);
                    }
                }
            }
            Action::DeliverLoseReply(msg) => {
                state.take(&msg);
                let _lost = state.acceptor_receive(msg);
            }
            Action::Timeout(p) => {
                let p = p as usize;
                state.timeouts_left[p] -= 1;
                let node = &mut state.proposers[p];
                node.clock_ms += JUMP_MS;
                node.proposer.tick(node.clock_ms, 0);
                state.drain(p);
            }
            Action::Request(p) => {
                let p = p as usize;
                state.requests_left -= 1;
                let id = RequestId(u64::from(self.requests - state.requests_left));
                let node = &mut state.proposers[p];
                // Request n asks for n IDs, so that two requests never make equal values.
                let request = IdRequest {
                    id,
                    sequence: SequenceName::default_sequence(),
                    count: id.0,
                    key: None,
                };
                // Only the new checks track it, so the older checks' state
                // counts stay as they were measured.
                if self.commits || self.requests >= 3 {
                    let answered = state.ghost.replies.len();
                    state.ghost.answered_at_invocation.insert(id, answered);
                }
                node.proposer.handle_request(node.clock_ms, request);
                node.proposer.flush(node.clock_ms);
                state.drain(p);
            }
            Action::CrashAcceptor(a) => {
                state.crashes_left -= 1;
                let node = &mut state.acceptors[a as usize];
                node.unwritten.clear();
                node.acceptor = Acceptor::restore(node.durable.clone());
            }
            Action::CrashProposer(p) => {
                state.crashes_left -= 1;
                let node = &mut state.proposers[p as usize];
                node.inc += 1;
                // A restarted sequencer starts in epoch 0 again, as one with
                // a stale `--acceptors` list would, and is superseded.
                node.proposer = Proposer::new(config(p as usize, state.commits), node.clock_ms, 0);
                node.seats = seats(0);
                node.rebuild = None;
                if self.restart_campaigns {
                    // The new incarnation may campaign once: how a reused ballot would show.
                    state.timeouts_left[p as usize] = state.timeouts_left[p as usize].max(1);
                }
            }
            Action::Write(a) => {
                let changes = std::mem::take(&mut state.acceptors[a as usize].unwritten);
                for change in &changes {
                    state.durable(a as usize, change);
                }
            }
            Action::LoseDisk(a) => {
                let loss = self.disk_losses - state.disk_losses_left;
                state.disk_losses_left -= 1;
                let a = a as usize;
                let lost_chosen_vote = state.acceptors[a].durable.log.iter().any(|(slot, vote)| {
                    state.ghost.chosen.get(&(vote.ballot.epoch, *slot)) == Some(&vote.value)
                });
                state.ghost.lost_chosen_vote |= lost_chosen_vote;
                let blank = AcceptorState::blank(blank_member(a, loss));
                let node = &mut state.acceptors[a];
                // `actions` loses only a member's disk: it is the one to retire.
                node.lost = Some(node.acceptor.state().member);
                node.unwritten.clear();
                node.installed = None;
                node.acceptor = Acceptor::restore(blank.clone());
                node.durable = blank;
            }
            Action::StartRebuild(p, a) => {
                state.rebuilds_left -= 1;
                let (p, a) = (p as usize, a as usize);
                let round = state
                    .acceptors
                    .iter()
                    .map(|n| n.durable.promised.round)
                    .max()
                    .unwrap_or(0)
                    + 1;
                let ballot = Ballot::new(round, NodeId(p as u32 + 1));
                let replace = Replace {
                    retire: state.acceptors[a].lost.unwrap_or(founder(a)),
                    admit: state.acceptors[a].acceptor.state().member,
                };
                let rebuild = Rebuild::new(ballot, AcceptorId(a), replace, ACCEPTORS);
                let inc = state.proposers[p].inc;
                for (to, prepare) in rebuild.prepares() {
                    state.send(Msg::RebuildPrepare {
                        p: p as u8,
                        inc,
                        to: to.0 as u8,
                        prepare,
                    });
                }
                state.proposers[p].rebuild = Some(rebuild);
            }
            Action::Reconfigure(p) => {
                state.reconfigurations_left -= 1;
                let p = p as usize;
                let node = &mut state.proposers[p];
                node.proposer
                    .handle_reconfigure(node.clock_ms, RequestId(99), epoch_1());
                state.drain(p);
            }
            Action::Heartbeat(p) => {
                let p = p as usize;
                state.heartbeats_left -= 1;
                let node = &mut state.proposers[p];
                let interval = node.proposer.config().heartbeat_interval_ms;
                node.clock_ms += interval;
                node.proposer.tick(node.clock_ms, 0);
                state.drain(p);
            }
            Action::Compact(a) => {
                let a = a as usize;
                state.compactions_left -= 1;
                let node = &mut state.acceptors[a];
                let below = node.acceptor.chosen_snapshot().below;
                let (change, _held) = node.acceptor.compact(below).into_parts();
                state.persist(a, change);
            }
        }
    }
}

fn seats_of(configuration: &Configuration) -> Vec<u8> {
    configuration
        .seats
        .iter()
        .map(|s| s.address[1..].parse().expect("model addresses are a<index>"))
        .collect()
}

fn bound(name: &str, default: u8) -> u8 {
    std::env::var(name).map_or(default, |v| v.parse().expect(name))
}

/// Two slots, a lossy reordering network, one crash: about 40 s.
#[test]
fn model_check_two_slots() {
    check(Paxid {
        restart_campaigns: bound("PAXID_MODEL_RESTART_CAMPAIGNS", 0) == 1,
        duplicates: bound("PAXID_MODEL_DUPLICATES", 0),
        timeouts: bound("PAXID_MODEL_TIMEOUTS", 1),
        requests: bound("PAXID_MODEL_REQUESTS", 2),
        crashes: bound("PAXID_MODEL_CRASHES", 1),
        disk_losses: bound("PAXID_MODEL_DISK_LOSSES", 0),
        rebuilds: bound("PAXID_MODEL_REBUILDS", bound("PAXID_MODEL_DISK_LOSSES", 0)),
        campaigns_twice: None,
        reconfigurations: 0,
        commits: false,
        heartbeats: 0,
        compactions: 0,
    });
}

/// One slot, and the network may also duplicate a request: about 10 s.
#[test]
fn model_check_duplicating_network() {
    check(Paxid {
        restart_campaigns: false,
        duplicates: 1,
        timeouts: 1,
        requests: 1,
        crashes: 1,
        disk_losses: 0,
        rebuilds: 0,
        campaigns_twice: None,
        reconfigurations: 0,
        commits: false,
        heartbeats: 0,
        compactions: 0,
    });
}

/// Disk loss, in two checks that take about 40 s together:
///
/// 1. Two slots, and acceptor 0 loses its disk (before, between or after
///    them) and is never rebuilt: it must not vote, or a leader whose phase 1
///    counts its empty promise hands out IDs again (planted bug
///    `rejoin_blank`). About 930 000 states, 25-30 s on two cores.
/// 2. One slot, one disk loss and one rebuild by either sequencer, at any
///    point: the rebuild's phase 1 races the proposers' campaigns and
///    accepts, the install is delivered whenever, and the rebuilt acceptor
///    votes afterwards. About 385 000 states, 8 s.
///
/// Both at once (two slots and a rebuild) is about 24 million states, 12
/// minutes on two cores: `PAXID_MODEL_DISK_LOSSES=1 PAXID_MODEL_CRASHES=0`
/// with `model_check_two_slots`. `PAXID_MODEL_SECOND_CAMPAIGN=1` lets one
/// sequencer campaign twice in check 2, so that a leader elected above a
/// rebuild re-proposes a value chosen before the loss through the rebuilt
/// acceptor: 5.6 million states, 75 s on two idle cores.
#[test]
fn model_check_disk_loss() {
    check(Paxid {
        restart_campaigns: false,
        duplicates: 0,
        timeouts: 1,
        requests: 2,
        crashes: 0,
        disk_losses: 1,
        rebuilds: 0,
        campaigns_twice: None,
        reconfigurations: 0,
        commits: false,
        heartbeats: 0,
        compactions: 0,
    });
    check(Paxid {
        restart_campaigns: false,
        duplicates: 0,
        timeouts: 1,
        requests: 1,
        crashes: 0,
        disk_losses: 1,
        rebuilds: 1,
        campaigns_twice: (bound("PAXID_MODEL_SECOND_CAMPAIGN", 0) == 1).then_some(1),
        reconfigurations: 0,
        commits: false,
        heartbeats: 0,
        compactions: 0,
    });
}

/// Reconfiguration: sequencer 1, once leader, moves the cluster from
/// acceptors 0-2 to 1-3 while sequencer 0 campaigns and proposes in either
/// epoch; transitions are delivered in any order or never.
#[test]
fn model_check_reconfiguration() {
    check(Paxid {
        restart_campaigns: false,
        duplicates: 0,
        timeouts: 1,
        requests: bound("PAXID_MODEL_REQUESTS", 1),
        crashes: 0,
        disk_losses: 0,
        rebuilds: 0,
        // Sequencer 1 campaigns twice: once in each epoch.
        campaigns_twice: Some(1),
        reconfigurations: 1,
        commits: false,
        heartbeats: 0,
        compactions: 0,
    });
}

/// Commits on: leaders' heartbeats carry chosen marks and, to an acceptor
/// behind the leader's catch-up window, a snapshot (delivered in any order,
/// duplicated or never); acceptors compact their chosen prefix. One
/// sequencer campaigns (once), so the leader is never deposed: what is
/// checked is that commits, snapshot installs and compaction, in any
/// interleaving with the accepts, keep every property. Exhaustive: 16.3 M
/// states, 2.29 M unique, depth 24, 74 s on two cores (2026-12-04).
#[test]
fn model_check_commits() {
    check(commits_model(false));
}

/// The same with a rival: both sequencers campaign once, so a deposed
/// leader's commits and snapshots travel beside the new leader's.
#[test]
#[ignore = "long: run with --ignored"]
fn model_check_commits_with_a_rival() {
    check(commits_model(true));
}

fn commits_model(rival: bool) -> Paxid {
    Paxid {
        restart_campaigns: false,
        duplicates: bound("PAXID_MODEL_COMMIT_DUPLICATES", 0),
        // Without a rival: no timeout in general, one for sequencer 0.
        timeouts: u8::from(rival),
        requests: bound("PAXID_MODEL_COMMIT_REQUESTS", 2),
        crashes: 0,
        disk_losses: 0,
        rebuilds: 0,
        campaigns_twice: (!rival).then_some(0),
        reconfigurations: 0,
        commits: true,
        heartbeats: bound("PAXID_MODEL_HEARTBEATS", 1),
        compactions: bound("PAXID_MODEL_COMPACTIONS", 1),
    }
}

/// Three requests, sequencer 0 campaigns twice: a deposed leader's
/// allocation, recovered at a later slot after a higher range was chosen
/// below it, is chosen and void. The shortest way there: sequencer 0 leads
/// at (1, n1) and sends slot 0 = [1] and slot 1 = [2, 3], the second
/// reaching one acceptor; sequencer 1 leads at (1, n2) through the other
/// two and chooses slot 0 = [1, 3]; sequencer 0, deposed by a rejection,
/// campaigns at (2, n1) through the acceptor holding its slot 1 and one of
/// the others, and must re-propose slot 1, which is chosen but void
/// (below the range of slot 0).
///
/// Measured (2026-12-04): with sequencer 1 campaigning twice instead, the
/// search was exhaustive in 630 s (28.4 M unique states) without reaching
/// the void case: sequencer 1's ballot is above sequencer 0's round 1, so a
/// third leadership above it needs sequencer 0 again. With sequencer 0
/// campaigning twice (these bounds) it did not finish in 25 minutes, and a
/// search cut at 30 M states (5.4 M unique, depth 28, 152 s) had not
/// reached the void case yet. The simulation reaches it
/// (`allocations_voided` in its figures).
#[test]
#[ignore = "did not finish in 25 minutes on two cores: see the comment"]
fn model_check_void_allocation() {
    check(Paxid {
        restart_campaigns: false,
        duplicates: 0,
        timeouts: 1,
        requests: 3,
        crashes: 0,
        disk_losses: 0,
        rebuilds: 0,
        campaigns_twice: Some(0),
        reconfigurations: 0,
        commits: false,
        heartbeats: 0,
        compactions: 0,
    });
}

/// Explores every state within the bounds; prints the counts and, for a
/// broken property, the actions that lead to it.
fn check(model: Paxid) {
    let started = Instant::now();
    let mut builder = model.clone().checker().threads(num_threads());
    if let Ok(depth) = std::env::var("PAXID_MODEL_DEPTH_MAX") {
        builder = builder.target_max_depth(depth.parse().expect("PAXID_MODEL_DEPTH_MAX"));
    }
    if let Ok(max) = std::env::var("PAXID_MODEL_STATES_MAX") {
        builder = builder.target_state_count(max.parse().expect("PAXID_MODEL_STATES_MAX"));
    }
    // Depth first: memory holds fingerprints and one path, not a frontier of states.
    let checker = builder.spawn_dfs().join();
    println!(
        "model check {model:?}: {} states generated, {} unique, max depth {}, {:.1} s",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed().as_secs_f64()
    );
    for (name, path) in checker.discoveries() {
        if let Some((broken, what)) = path
            .last_state()
            .ghost
            .broken
            .as_ref()
            .filter(|(b, _)| *b == name)
        {
            let actions: Vec<String> = path
                .clone()
                .into_actions()
                .iter()
                .map(|a| format!("{a:?}"))
                .collect();
            println!(
                "property {broken:?} broken: {what}\nactions:\n  {}",
                actions.join("\n  ")
            );
        }
    }
    checker.assert_properties();
}

fn num_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
