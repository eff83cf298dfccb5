//! The proposer: follower, candidate or leader of a Multi-Paxos log.
//!
//! It has no durable state. Everything a new leader needs comes back from a
//! quorum of acceptors in phase 1. Inputs arrive through `handle_*` and
//! `tick` with the current time; effects leave through [`Proposer::drain_effects`].
//! The driver sends each `Send` effect to its acceptor and feeds the answer
//! back, answers clients from `Reply` effects and pushes `Chosen` ones to
//! learners.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::acceptor::{Accept, AcceptReply, Commit, CommitReply, NotVoting, Prepare, PrepareReply, Promise};
use crate::idempotency::{KeyCheck, KeyIndex, KeysWanted, KEYED_PER_SLOT_MAX};
use crate::types::{
    quorum, AcceptorId, Allocation, Ballot, Configuration, Counters, IdempotencyKey, KeyedPart, MemberId,
    Membership, NodeId, SequenceName, Slot, Snapshot, Value,
};

/// Limits and timings, each with its unit in its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProposerConfig {
    pub node: NodeId,
    /// The configuration this proposer works in: its ballots carry it, and
    /// `AcceptorId(i)` is that configuration's seat `i`.
    pub epoch: u64,
    pub acceptors: usize,
    /// Slots proposed but not yet chosen, at most.
    pub pipeline_slots_max: usize,
    /// Client requests batched into one slot, at most.
    pub batch_requests_max: usize,
    /// Client requests waiting for a slot, at most; more are refused.
    pub pending_requests_max: usize,
    /// IDs one request may ask for, at most.
    pub count_max: u64,
    /// Distinct sequence names, at most.
    pub sequences_max: usize,
    pub heartbeat_interval_ms: u64,
    /// A follower campaigns after the leader made no progress on a majority
    /// for a time drawn uniformly from this range.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Pre-vote: a follower campaigns only when a majority of acceptors
    /// answered its status polls within the election timeout and heard no
    /// leader in it. A follower cut off from the
    /// acceptors then stays quiet instead of raising its round over and
    /// over, and cannot depose a healthy leader when the network heals.
    /// Liveness only; the model check turns it off to explore every
    /// campaign.
    pub prevote: bool,
    /// A leader steps down when fewer than a majority of acceptors answered
    /// it within this long (so that its clients fail fast and go to the
    /// new leader). Longer than a heartbeat, with room for a loaded machine.
    pub quorum_contact_ms: u64,
    /// An accept not acknowledged after this long is sent again.
    pub accept_retry_ms: u64,
    /// A client waits at most this long for its slot to be chosen (the
    /// sequencer's `--id-timeout-ms`; not the HTTP layer's
    /// `--request-timeout-ms`, which bounds a whole request).
    pub id_timeout_ms: u64,
    /// Chosen values kept to catch lagging acceptors up slot by slot.
    pub catchup_slots_max: usize,
    /// Catch-up slots sent to one acceptor in one accept, at most.
    pub catchup_batch_max: usize,
    /// Allocations in one catch-up accept, at most (at least one slot goes
    /// out): bounds its body, about 70 bytes of JSON per allocation, well
    /// under the acceptor's 16 MiB body limit at the default.
    pub catchup_allocations_max: usize,
}

impl ProposerConfig {
    // The defaults, in one place: `ProposerConfig::new` uses them and the
    // sequencer's flags default to them (`paxid-sequencer --help`).
    /// Two slots in flight: requests arriving while the pipeline is full
    /// share the next slot, so fewer acceptor round trips per ID on a small
    /// machine (docs/benchmarks.md).
    pub const PIPELINE_SLOTS_MAX: usize = 2;
    pub const BATCH_REQUESTS_MAX: usize = 8192;
    pub const PENDING_REQUESTS_MAX: usize = 65_536;
    pub const COUNT_MAX: u64 = 1_000_000;
    pub const SEQUENCES_MAX: usize = 1024;
    pub const HEARTBEAT_INTERVAL_MS: u64 = 50;
    pub const ELECTION_TIMEOUT_MIN_MS: u64 = 300;
    pub const ELECTION_TIMEOUT_MAX_MS: u64 = 600;
    pub const QUORUM_CONTACT_MS: u64 = 1_000;
    /// Accepts are sent again after this many heartbeats without an answer.
    pub const ACCEPT_RETRY_HEARTBEATS: u64 = 4;
    pub const ID_TIMEOUT_MS: u64 = 5_000;

    pub fn new(node: NodeId, acceptors: usize) -> ProposerConfig {
        ProposerConfig {
            node,
            epoch: 0,
            acceptors,
            pipeline_slots_max: Self::PIPELINE_SLOTS_MAX,
            batch_requests_max: Self::BATCH_REQUESTS_MAX,
            pending_requests_max: Self::PENDING_REQUESTS_MAX,
            count_max: Self::COUNT_MAX,
            sequences_max: Self::SEQUENCES_MAX,
            heartbeat_interval_ms: Self::HEARTBEAT_INTERVAL_MS,
            election_timeout_min_ms: Self::ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max_ms: Self::ELECTION_TIMEOUT_MAX_MS,
            prevote: true,
            quorum_contact_ms: Self::QUORUM_CONTACT_MS,
            accept_retry_ms: Self::HEARTBEAT_INTERVAL_MS * Self::ACCEPT_RETRY_HEARTBEATS,
            id_timeout_ms: Self::ID_TIMEOUT_MS,
            catchup_slots_max: 65_536,
            catchup_batch_max: 1024,
            catchup_allocations_max: 65_536,
        }
    }

    fn assert_valid(&self) {
        assert!(self.acceptors >= 1, "at least one acceptor");
        assert!(self.pipeline_slots_max >= 1);
        assert!(self.batch_requests_max >= 1);
        assert!(self.count_max >= 1);
        assert!(self.sequences_max >= 1);
        assert!(self.election_timeout_min_ms <= self.election_timeout_max_ms);
        assert!(self.heartbeat_interval_ms < self.election_timeout_min_ms);
        assert!(self.heartbeat_interval_ms < self.quorum_contact_ms);
        assert!(self.catchup_batch_max >= 1);
        assert!(self.catchup_allocations_max >= 1);
    }
}

/// Chosen by the driver, unique among the requests it has in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A client's ask, already validated at the edge.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdRequest {
    pub id: RequestId,
    pub sequence: SequenceName,
    pub count: u64,
    /// `Idempotency-Key`: a retry under the same key gets the same IDs
    /// (see [`crate::idempotency`]).
    pub key: Option<IdempotencyKey>,
}

/// Why a request got no IDs. None of them means IDs were consumed that a
/// later request could receive again: a refused or failed request leaves at
/// most a gap.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// This proposer is not the leader (the driver forwards or answers 503).
    NotLeader,
    /// The leader lost its leadership before the slot was chosen.
    Deposed,
    /// The slot was not chosen within the request timeout.
    TimedOut,
    /// Too many requests waiting.
    Overloaded,
    /// A new sequence beyond `sequences_max`.
    TooManySequences,
    /// The sequence would pass `u64::MAX`.
    Exhausted,
    /// This configuration is ending (a stop sign is in its log): ask again
    /// in a moment, when the next one has a leader.
    Reconfiguring,
    /// The key was used already with another `sequence` or `count`.
    KeyReused,
    /// A request with this key is taken and not chosen yet: ask again in a
    /// moment, and get its answer.
    KeyInFlight,
    /// A new leader is still reading back the keys chosen before it: ask
    /// again in a moment.
    KeysLoading,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    Prepare {
        to: AcceptorId,
        prepare: Prepare,
    },
    /// An accept for one acceptor: catch-up and resends, whose entries
    /// differ from one acceptor to the next.
    Accept {
        to: AcceptorId,
        accept: Accept,
    },
    /// The same accept for every acceptor of this proposer's configuration
    /// (phase 2a of new or recovered slots): one value, so the driver
    /// encodes it once whatever the number of acceptors.
    AcceptAll {
        accept: Accept,
    },
    Commit {
        to: AcceptorId,
        commit: Commit,
    },
    Reply {
        request: RequestId,
        result: Result<Allocation, Refusal>,
    },
    /// A slot became chosen; emitted in slot order, every slot once per leadership.
    Chosen {
        slot: Slot,
        value: Value,
    },
    BecameLeader {
        ballot: Ballot,
    },
    SteppedDown {
        ballot: Ballot,
        seen: Option<Ballot>,
    },
    /// The stop sign was chosen: this epoch is over. The driver moves the
    /// seats of `configuration` into it with a [`crate::Transition`]
    /// carrying `snapshot` (everything chosen, the stop sign included) and
    /// goes on with a proposer of the new epoch. `request` is the
    /// reconfiguration this leader was asked for, if this stop sign is it.
    ///
    /// `tail` re-sends the last chosen values, the stop sign last, with
    /// `chosen_below` at the snapshot: a seat that was a member of the ended
    /// epoch and gets it just before its transition marks them chosen, so
    /// the transition keeps its log instead of folding it into the snapshot.
    /// Acceptors learn chosen marks a round trip late, so without it every
    /// member folds at once, and slots a learner had not read yet are gone
    /// from every acceptor.
    Reconfigured {
        configuration: Configuration,
        snapshot: Snapshot,
        tail: Accept,
        request: Option<RequestId>,
    },
    /// An acceptor promised a ballot of a later epoch: a configuration
    /// this proposer does not know replaced its own. It does nothing more;
    /// the driver finds the configuration of `epoch` and starts over there.
    Superseded {
        epoch: u64,
    },
}

impl Effect {
    /// The accept this effect sends to acceptor `to`, if it sends one: an
    /// [`Effect::Accept`] for `to` or an [`Effect::AcceptAll`].
    pub fn accept_for(&self, to: AcceptorId) -> Option<&Accept> {
        match self {
            Effect::Accept { to: target, accept } if *target == to => Some(accept),
            Effect::AcceptAll { accept } => Some(accept),
            _ => None,
        }
    }
}

/// A follower's view of one acceptor, from its status endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AcceptorStatus {
    pub promised: Ballot,
    /// How long ago the acceptor heard the leader of its promised ballot;
    /// None if never.
    pub leader_heard_ago_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Follower,
    Candidate { ballot: Ballot },
    Leader { ballot: Ballot },
}

/// The proposer state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposer {
    config: ProposerConfig,
    /// The highest round seen anywhere; a new ballot goes above it.
    round_seen_max: u64,
    /// Slots below `known_chosen.below` are known chosen, and applying them
    /// gives `known_chosen.counters`; phase 1 starts there. The counters
    /// must come with the slot: acceptors report nothing below the point a
    /// prepare starts at, so a leader that knew only the slot would take
    /// slots between an acceptor's chosen point and it for empty.
    known_chosen: Snapshot,
    /// The chosen values this proposer kept as leader, up to
    /// `known_chosen`: re-elected where it left off (a rebuild's phase 1 or
    /// a blip deposes a leader that then wins again), it catches lagging
    /// acceptors up with them instead of snapshots. Its own chosen point
    /// is ahead of every acceptor's (they learn it a round trip late), so
    /// without them every acceptor got a snapshot at once, and the slots
    /// learners had not read were folded away everywhere.
    known_window: Option<CatchUp>,
    /// Everything learned from promises about who may vote: a retired
    /// member's promise never counts again (see [`countable`]).
    membership: Membership,
    /// Per acceptor: when (our clock) it last heard a leader, as reported.
    leader_heard_at_ms: Vec<Option<u64>>,
    /// Per acceptor: when (our clock) its last status arrived.
    status_at_ms: Vec<Option<u64>>,
    election_timeout_ms: u64,
    /// When the follower last saw a live leader, or became a follower.
    follower_since_ms: u64,
    /// Set once this epoch is over: the proposer is inert from then on.
    ended: Option<u64>,
    /// Set by [`Proposer::resign`]: this sequencer is stopping. It opens no
    /// new slot and never campaigns again (see `resign`).
    resigned: bool,
    /// The first slot of this epoch's log: no key is read back from below.
    epoch_start: Slot,
    /// The keys this proposer knew as leader, up to `known_chosen`: like
    /// `known_window`, kept for a re-election where it left off, which then
    /// need not read them back from the acceptors.
    known_keys: Option<KeyIndex>,
    state: State,
    effects: Vec<Effect>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum State {
    Follower,
    Candidate(Candidate),
    Leader(Box<Leader>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Candidate {
    ballot: Ballot,
    started_at_ms: u64,
    promises: BTreeMap<AcceptorId, Promise>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Leader {
    ballot: Ballot,
    next_slot: Slot,
    /// Next ID per sequence for new allocations: above every range seen.
    counters: Counters,
    in_flight: BTreeMap<Slot, InFlight>,
    pending: VecDeque<(IdRequest, u64)>,
    chosen_below: Slot,
    /// Chosen slots above `chosen_below`, waiting for the gap below them,
    /// with their clients: a client is answered only once every slot below
    /// its own is chosen (see [`Counters::apply`]).
    chosen_ahead: BTreeMap<Slot, (Value, Vec<Waiting>)>,
    /// The state machine after applying every slot below `chosen_below`.
    applied: Counters,
    /// The first stop sign in the log (recovered or proposed): nothing
    /// new is proposed after it. With the reconfiguration request, if ours.
    stop: Option<(Slot, Option<RequestId>)>,
    /// Set when the stop sign was applied.
    reconfigured: Option<(Configuration, Snapshot)>,
    /// The `Idempotency-Key`s chosen in the window, and those taken since.
    keys: KeyIndex,
    /// Acknowledgements that choose a slot: a majority of the acceptors
    /// addressed and of the voters the promises named (see
    /// `Proposer::phase1_quorum`), fixed at election.
    quorum: usize,
    catchup: CatchUp,
    /// Per acceptor: its chosen point as last reported, and when it last
    /// answered under our ballot.
    acceptor_chosen_below: Vec<Option<Slot>>,
    answered_at_ms: Vec<Option<u64>>,
    heartbeat_sent_at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct InFlight {
    value: Value,
    acks: Acks,
    sent_at_ms: u64,
    /// Clients waiting on this slot, with their part of its allocations.
    waiting: Vec<Waiting>,
}

impl InFlight {
    fn new(value: Value, acceptors: usize, now_ms: u64, waiting: Vec<Waiting>) -> InFlight {
        InFlight {
            value,
            acks: Acks::new(acceptors),
            sent_at_ms: now_ms,
            waiting,
        }
    }
}

/// Who accepted one slot. A slot is chosen by a majority of *members*: an
/// acceptor reached at two URLs (an alias such as `localhost` beside
/// `127.0.0.1`) is one vote, however many addresses answer for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Acks {
    by_acceptor: Vec<bool>,
    members: BTreeSet<MemberId>,
    /// Votes from acceptors that did not say who they are (older versions).
    anonymous: usize,
}

impl Acks {
    fn new(acceptors: usize) -> Acks {
        Acks {
            by_acceptor: vec![false; acceptors],
            members: BTreeSet::new(),
            anonymous: 0,
        }
    }

    fn add(&mut self, from: AcceptorId, member: Option<MemberId>) {
        if std::mem::replace(&mut self.by_acceptor[from.0], true) {
            return;
        }
        match member {
            Some(member) => {
                self.members.insert(member);
            }
            None => self.anonymous += 1,
        }
    }

    fn votes(&self) -> usize {
        self.members.len() + self.anonymous
    }

    fn missing(&self) -> impl Iterator<Item = AcceptorId> + '_ {
        self.by_acceptor
            .iter()
            .enumerate()
            .filter(|(_, acked)| !**acked)
            .map(|(to, _)| AcceptorId(to))
    }
}

/// A client waiting for its slot: its part of the slot's allocation, and
/// when its request arrived (our clock).
type Waiting = (RequestId, Allocation, u64);

/// The recent chosen log, kept to catch lagging acceptors up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CatchUp {
    base: Snapshot,
    values: VecDeque<Value>,
}

impl Proposer {
    pub fn new(config: ProposerConfig, now_ms: u64, random: u64) -> Proposer {
        Proposer::resume(config, Snapshot::default(), now_ms, random)
    }

    /// A proposer that knows `known_chosen` already: the start of its
    /// epoch's log after a reconfiguration.
    pub fn resume(config: ProposerConfig, known_chosen: Snapshot, now_ms: u64, random: u64) -> Proposer {
        config.assert_valid();
        let mut proposer = Proposer {
            epoch_start: known_chosen.below,
            known_keys: None,
            leader_heard_at_ms: vec![None; config.acceptors],
            status_at_ms: vec![None; config.acceptors],
            round_seen_max: 0,
            known_chosen,
            known_window: None,
            membership: Membership::default(),
            election_timeout_ms: 0,
            follower_since_ms: now_ms,
            ended: None,
            resigned: false,
            state: State::Follower,
            effects: Vec::new(),
            config,
        };
        proposer.election_timeout_ms = proposer.draw_timeout(random);
        proposer
    }

    pub fn config(&self) -> &ProposerConfig {
        &self.config
    }

    pub fn role(&self) -> Role {
        match &self.state {
            State::Follower => Role::Follower,
            State::Candidate(c) => Role::Candidate { ballot: c.ballot },
            State::Leader(l) => Role::Leader { ballot: l.ballot },
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.state, State::Leader(_))
    }

    /// The epoch that replaced this proposer's, once it is over.
    pub fn ended(&self) -> Option<u64> {
        self.ended
    }

    /// Slots proposed and not yet chosen (0 unless leader).
    pub fn slots_in_flight(&self) -> usize {
        match &self.state {
            State::Leader(l) => l.in_flight.len(),
            _ => 0,
        }
    }

    pub fn chosen_below(&self) -> Slot {
        match &self.state {
            State::Leader(l) => l.chosen_below,
            _ => self.known_chosen.below,
        }
    }

    /// Everything the driver must do now, in order.
    pub fn drain_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// A client wants IDs. Only a leader takes it; others refuse NotLeader.
    pub fn handle_request(&mut self, now_ms: u64, request: IdRequest) {
        assert!(request.count >= 1 && request.count <= self.config.count_max);
        let State::Leader(leader) = &mut self.state else {
            self.effects.push(Effect::Reply {
                request: request.id,
                result: Err(Refusal::NotLeader),
            });
            return;
        };
        if leader.pending.len() >= self.config.pending_requests_max {
            self.effects.push(Effect::Reply {
                request: request.id,
                result: Err(Refusal::Overloaded),
            });
            return;
        }
        if let Some(key) = &request.key {
            let answer = match leader.keys.check(key, &request.sequence, request.count) {
                KeyCheck::New => None,
                KeyCheck::Chosen(allocation) => Some(Ok(allocation)),
                KeyCheck::InFlight => Some(Err(Refusal::KeyInFlight)),
                KeyCheck::Reused => Some(Err(Refusal::KeyReused)),
                KeyCheck::Loading => Some(Err(Refusal::KeysLoading)),
            };
            if let Some(result) = answer {
                self.effects.push(Effect::Reply {
                    request: request.id,
                    result,
                });
                return;
            }
            leader
                .keys
                .take(key.clone(), request.sequence.clone(), request.count);
        }
        leader.pending.push_back((request, now_ms));
    }

    /// The chosen log a new leader must read back from the acceptors before
    /// it allocates under keys it does not know (see [`crate::idempotency`]);
    /// None when it needs nothing, or is not the leader.
    pub fn keys_wanted(&self) -> Option<KeysWanted> {
        match &self.state {
            State::Leader(leader) => leader.keys.wanted(),
            _ => None,
        }
    }

    /// The effective keyed parts of the chosen slots `wanted.from ..
    /// wanted.below`, read back for [`Proposer::keys_wanted`]. Ignored
    /// unless this leadership still asks for exactly them.
    pub fn load_keys(&mut self, below: Slot, parts: Vec<(Slot, KeyedPart)>) {
        if let State::Leader(leader) = &mut self.state {
            leader.keys.load(below, parts);
        }
    }

    /// The operator asks for `configuration` to follow this one. Only a
    /// leader whose log holds no stop sign yet takes it: the stop sign goes
    /// into the next slot and nothing is proposed after it. Answered with
    /// `Reconfigured` once chosen, or a `Reply` refusal.
    pub fn handle_reconfigure(&mut self, now_ms: u64, request: RequestId, configuration: Configuration) {
        let epoch = self.config.epoch;
        let refusal = match &self.state {
            State::Leader(l) if l.stop.is_some() => Some(Refusal::Reconfiguring),
            State::Leader(_) if configuration.epoch != epoch + 1 || !configuration.is_valid() => {
                Some(Refusal::Reconfiguring)
            }
            State::Leader(_) => None,
            _ => Some(Refusal::NotLeader),
        };
        if let Some(refusal) = refusal {
            self.effects.push(Effect::Reply {
                request,
                result: Err(refusal),
            });
            return;
        }
        let State::Leader(leader) = &mut self.state else {
            unreachable!("checked above")
        };
        let slot = leader.propose_stop(now_ms, request, configuration, self.config.acceptors);
        leader.send_accepts(&[slot], &mut self.effects);
        leader.refuse_pending(&mut self.effects);
    }

    /// Campaigns now, without waiting for the election timeout or a
    /// pre-vote: for the sequencer that ended the previous epoch, which
    /// knows that nobody leads the new one yet. A campaign is always safe;
    /// this only saves the timeout.
    pub fn campaign_now(&mut self, now_ms: u64) {
        if self.ended.is_none() && !self.resigned && matches!(self.state, State::Follower) {
            self.campaign(now_ms);
        }
    }

    /// This sequencer is asked to stop (SIGTERM): hand leadership over
    /// without losing a request. From now on it opens no new slot: requests
    /// keep arriving and are held (pending), while the slots already in
    /// flight are chosen and their clients answered as usual. Once
    /// [`Proposer::is_drained`] says so, the driver asks a follower to
    /// campaign; its higher ballot deposes this leader, which then releases
    /// every held request with [`Refusal::NotLeader`]: they were never in a
    /// slot, so the driver forwards them to the new leader and no ID can be
    /// handed out twice. Requests in a slot whose fate is unknown (a drain
    /// that did not finish) are refused `Deposed` as on any step-down.
    ///
    /// Resigning is for good: the proposer never campaigns again. A
    /// candidate gives its campaign up; a follower has nothing to drain.
    pub fn resign(&mut self, now_ms: u64) {
        self.resigned = true;
        if matches!(self.state, State::Candidate(_)) {
            self.become_follower(now_ms);
        }
    }

    /// [`Proposer::resign`] was called.
    pub fn is_resigned(&self) -> bool {
        self.resigned
    }

    /// Resigned, and nothing is left in a slot: no slot is in flight and
    /// every chosen one was answered. True for a resigned follower.
    pub fn is_drained(&self) -> bool {
        self.resigned
            && match &self.state {
                State::Leader(leader) => leader.in_flight.is_empty() && leader.chosen_ahead.is_empty(),
                _ => true,
            }
    }

    /// A follower learned an acceptor's status.
    pub fn handle_status(&mut self, now_ms: u64, from: AcceptorId, status: AcceptorStatus) {
        // Planted bug (scripts/planted-bugs.sh), with the acceptor's half: a
        // restarted follower does not learn rounds from statuses, so it starts
        // again from round 1.
        #[cfg(not(paxid_bug = "ballot_reuse"))]
        self.see(status.promised);
        self.leader_heard_at_ms[from.0] = status.leader_heard_ago_ms.map(|ago| now_ms.saturating_sub(ago));
        self.status_at_ms[from.0] = Some(now_ms);
    }

    pub fn handle_prepare_reply(
        &mut self,
        now_ms: u64,
        from: AcceptorId,
        ballot: Ballot,
        reply: PrepareReply,
    ) {
        match reply {
            PrepareReply::Rejected { promised } => {
                self.see(promised);
                if matches!(&self.state, State::Candidate(c) if c.ballot == ballot) && promised > ballot {
                    self.become_follower(now_ms);
                }
            }
            PrepareReply::Promised(promise) => {
                let State::Candidate(candidate) = &mut self.state else {
                    return;
                };
                if candidate.ballot != ballot || promise.ballot != ballot {
                    return;
                }
                candidate.promises.insert(from, promise);
                let counted = countable(&candidate.promises, &mut self.membership).len();
                if counted >= self.phase1_quorum() {
                    self.become_leader(now_ms);
                }
            }
            PrepareReply::NotVoting => {}
        }
    }

    /// Promises needed: a majority of the acceptors it addresses, and of
    /// the voters the promises name. The second matters when a process is
    /// started with an `--acceptors` list that is not the cluster's (a
    /// subset, or members a reconfiguration removed): a majority of its
    /// list need not be one of the cluster.
    fn phase1_quorum(&self) -> usize {
        quorum(self.config.acceptors).max(quorum(self.membership.voters().count()))
    }

    /// What this proposer has learned about who may vote.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// An acceptor answered an accept carrying `slots` under `ballot`.
    pub fn handle_accept_reply(
        &mut self,
        now_ms: u64,
        from: AcceptorId,
        ballot: Ballot,
        slots: &[Slot],
        reply: AcceptReply,
    ) {
        match reply {
            AcceptReply::Rejected { promised } => self.on_rejected(now_ms, ballot, promised),
            // No vote: as if the message was lost. A conflict means a bug on
            // one side; the driver logs it, and the slot waits for others.
            AcceptReply::Conflict { .. } | AcceptReply::NotVoting => {}
            AcceptReply::Accepted { chosen_below, member } => {
                let State::Leader(leader) = &mut self.state else {
                    return;
                };
                if leader.ballot != ballot {
                    return;
                }
                leader.note_answer(now_ms, from, chosen_below);
                for slot in slots {
                    leader.ack(*slot, from, member);
                }
                leader.advance_chosen(self.config.catchup_slots_max, &mut self.effects);
                if leader.reconfigured.is_some() {
                    self.end_epoch(now_ms);
                }
            }
        }
    }

    /// A blank or retired acceptor's `Err` counts as no answer.
    pub fn handle_commit_reply(
        &mut self,
        now_ms: u64,
        from: AcceptorId,
        ballot: Ballot,
        reply: Result<CommitReply, NotVoting>,
    ) {
        let Ok(reply) = reply else { return };
        if reply.promised > ballot {
            self.on_rejected(now_ms, ballot, reply.promised);
            return;
        }
        if let State::Leader(leader) = &mut self.state {
            if leader.ballot == ballot {
                leader.note_answer(now_ms, from, reply.chosen_below);
            }
        }
    }

    /// Timers: elections, heartbeats, retries, timeouts; then proposes.
    /// `random` is a fresh uniform draw from the driver.
    pub fn tick(&mut self, now_ms: u64, random: u64) {
        if self.ended.is_some() {
            return;
        }
        match &self.state {
            // A resigned proposer never campaigns again.
            State::Follower if self.resigned => {}
            State::Follower => self.follower_tick(now_ms, random),
            State::Candidate(c) => {
                if now_ms.saturating_sub(c.started_at_ms) >= self.election_timeout_ms {
                    self.become_follower(now_ms);
                    self.election_timeout_ms = self.draw_timeout(random);
                }
            }
            State::Leader(_) => self.leader_tick(now_ms),
        }
    }

    /// How long a driver may wait before its next [`Proposer::tick`]
    /// without delaying anything due on time: a leader's next heartbeat or
    /// accept resend, a candidate's or follower's election timer. At least
    /// 1 ms, and at most [`Proposer::POLL_MS_MAX`]: client timeouts and the
    /// quorum-contact check are coarse, and a follower's leader-alive test
    /// moves with every status poll, so those are looked at on that
    /// cadence rather than computed.
    pub fn poll_timeout_ms(&self, now_ms: u64) -> u64 {
        let due = match &self.state {
            _ if self.ended.is_some() => return Self::POLL_MS_MAX,
            // Past its timer a follower that did not campaign waits for
            // fresher statuses (pre-vote said no): look again on their cadence.
            State::Follower => match self.follower_since_ms.saturating_add(self.election_timeout_ms) {
                due if due <= now_ms => return Self::POLL_MS_MAX,
                due => due,
            },
            State::Candidate(c) => c.started_at_ms.saturating_add(self.election_timeout_ms),
            State::Leader(leader) => leader.next_due_ms(&self.config),
        };
        due.saturating_sub(now_ms).clamp(1, Self::POLL_MS_MAX)
    }

    /// The longest wait [`Proposer::poll_timeout_ms`] returns.
    pub const POLL_MS_MAX: u64 = 20;

    /// Proposes new slots from pending requests while the pipeline has room.
    /// Drivers call it after handling a burst of inputs, so that everything
    /// that arrived meanwhile shares slots.
    pub fn flush(&mut self, now_ms: u64) {
        let config = &self.config;
        let State::Leader(leader) = &mut self.state else {
            return;
        };
        // Planted bug (scripts/planted-bugs.sh): the stop sign is treated as
        // a no-op, so the epoch goes on after it.
        if leader.stop.is_some() && !cfg!(paxid_bug = "stop_sign_ignored") {
            leader.refuse_pending(&mut self.effects);
            return;
        }
        // Resigned: hold every request (see `resign`).
        if self.resigned {
            return;
        }
        let mut proposed = Vec::new();
        while leader.in_flight.len() < config.pipeline_slots_max && !leader.pending.is_empty() {
            if let Some(slot) = leader.propose_batch(now_ms, config, &mut self.effects) {
                proposed.push(slot);
            }
        }
        if !proposed.is_empty() {
            leader.send_accepts(&proposed, &mut self.effects);
        }
    }

    fn follower_tick(&mut self, now_ms: u64, random: u64) {
        if let Some(heard_at) = self.leader_alive_until(now_ms) {
            // The timeout runs from when a majority last heard the leader,
            // not from this tick: statuses arrive every poll, so counting
            // from the first silent one waited two timeouts in all.
            self.follower_since_ms = self.follower_since_ms.max(heard_at);
            return;
        }
        if now_ms.saturating_sub(self.follower_since_ms) < self.election_timeout_ms {
            return;
        }
        if self.config.prevote && !self.quorum_hears_no_leader(now_ms) {
            // Either we cannot tell whether a leader lives, or an acceptor
            // we reach still hears one: stay quiet.
            return;
        }
        self.election_timeout_ms = self.draw_timeout(random);
        self.campaign(now_ms);
    }

    /// Pre-vote: a majority of acceptors answered a status poll within the
    /// election timeout and heard no leader in it. Acceptors that do not
    /// answer count for nothing, and one that hears a leader counts against
    /// campaigning (Raft's pre-vote with leader stickiness): under a partial
    /// partition a follower that reaches one acceptor the leader cannot
    /// must not depose a leader that still has its quorum.
    fn quorum_hears_no_leader(&self, now_ms: u64) -> bool {
        let recent =
            |at: &Option<u64>| matches!(at, Some(t) if now_ms.saturating_sub(*t) < self.election_timeout_ms);
        #[cfg(not(paxid_bug = "no_stickiness"))]
        let hears_leader = recent;
        // Planted bug (scripts/planted-bugs.sh): no leader stickiness, every
        // acceptor that answers counts for a campaign, so under a partial
        // partition two sequencers depose each other in turn.
        #[cfg(paxid_bug = "no_stickiness")]
        let hears_leader = |_: &Option<u64>| false;
        let quiet = self
            .status_at_ms
            .iter()
            .zip(&self.leader_heard_at_ms)
            .filter(|(answered, heard)| recent(answered) && !hears_leader(heard))
            .count();
        quiet >= quorum(self.config.acceptors)
    }

    /// When a majority of acceptors had last heard a leader (the latest
    /// time by which a quorum of them had), if that is within the election
    /// timeout: the leader is alive.
    fn leader_alive_until(&self, now_ms: u64) -> Option<u64> {
        let mut heard: Vec<u64> = self.leader_heard_at_ms.iter().flatten().copied().collect();
        heard.sort_unstable_by(|a, b| b.cmp(a));
        heard
            .get(quorum(self.config.acceptors) - 1)
            .copied()
            .filter(|at| now_ms.saturating_sub(*at) < self.election_timeout_ms)
    }

    fn campaign(&mut self, now_ms: u64) {
        self.round_seen_max += 1;
        let ballot = Ballot::in_epoch(self.config.epoch, self.round_seen_max, self.config.node);
        let prepare = Prepare {
            ballot,
            from: self.known_chosen.below,
            replace: None,
        };
        for to in (0..self.config.acceptors).map(AcceptorId) {
            self.effects.push(Effect::Prepare {
                to,
                prepare: prepare.clone(),
            });
        }
        self.state = State::Candidate(Candidate {
            ballot,
            started_at_ms: now_ms,
            promises: BTreeMap::new(),
        });
    }

    fn become_leader(&mut self, now_ms: u64) {
        let State::Candidate(mut candidate) = std::mem::replace(&mut self.state, State::Follower) else {
            unreachable!("only a candidate becomes leader")
        };
        // Recover from counted promises only: a retired member's votes may be
        // stale, and its promise did not fence anything.
        let counted: Vec<AcceptorId> = countable(&candidate.promises, &mut self.membership)
            .into_keys()
            .collect();
        candidate.promises.retain(|id, _| counted.contains(id));
        let window = self.known_window.take();
        let mut leader = Leader::recover(
            candidate,
            &self.known_chosen,
            window,
            now_ms,
            self.config.acceptors,
        );
        leader.keys = match self.known_keys.take() {
            // Re-elected where it left off: its keys reach back as before.
            Some(keys) if keys.end() == leader.chosen_below => keys,
            _ => KeyIndex::starting_at(leader.chosen_below, self.epoch_start),
        };
        // A retry of a key in a recovered slot must wait for that slot, not
        // take a second range. Planted bug (scripts/planted-bugs.sh): it
        // does not.
        let recovered = leader
            .in_flight
            .iter()
            .filter(|_| !cfg!(paxid_bug = "keys_not_recovered"));
        for (slot, flight) in recovered {
            for part in flight.value.keyed_parts() {
                leader.keys.propose(*slot, part);
            }
        }
        leader.quorum = self.phase1_quorum();
        let ballot = leader.ballot;
        let recovered: Vec<Slot> = leader.in_flight.keys().copied().collect();
        self.effects.push(Effect::BecameLeader { ballot });
        let mut leader = Box::new(leader);
        leader.send_accepts(&recovered, &mut self.effects);
        leader.send_heartbeats(&self.config, &mut self.effects);
        self.state = State::Leader(leader);
        self.flush(now_ms);
    }

    fn leader_tick(&mut self, now_ms: u64) {
        let config = &self.config;
        let State::Leader(leader) = &mut self.state else {
            return;
        };
        if !leader.has_quorum_contact(now_ms, config) {
            let ballot = leader.ballot;
            self.step_down(now_ms, ballot, None);
            return;
        }
        leader.time_out_requests(now_ms, config.id_timeout_ms, &mut self.effects);
        leader.resend_unacknowledged(now_ms, config, &mut self.effects);
        if now_ms.saturating_sub(leader.heartbeat_sent_at_ms) >= config.heartbeat_interval_ms {
            leader.heartbeat_sent_at_ms = now_ms;
            leader.send_heartbeats(config, &mut self.effects);
        }
        self.flush(now_ms);
    }

    fn on_rejected(&mut self, now_ms: u64, ballot: Ballot, promised: Ballot) {
        self.see(promised);
        if matches!(&self.state, State::Leader(l) if l.ballot == ballot) && promised > ballot {
            self.step_down(now_ms, ballot, Some(promised));
        }
    }

    /// Fails every waiting client: a deposed leader can get nothing chosen.
    fn step_down(&mut self, now_ms: u64, ballot: Ballot, seen: Option<Ballot>) {
        if let State::Leader(mut leader) = std::mem::replace(&mut self.state, State::Follower) {
            self.known_chosen = leader.catchup.chosen_prefix();
            let empty = CatchUp {
                base: Snapshot::default(),
                values: VecDeque::new(),
            };
            self.known_window = Some(std::mem::replace(&mut leader.catchup, empty));
            let keys = std::mem::replace(&mut leader.keys, KeyIndex::starting_at(Slot::ZERO, Slot::ZERO));
            self.known_keys = Some(keys.chosen_only());
            if self.resigned {
                leader.release_held(&mut self.effects);
            }
            leader.fail_all(Refusal::Deposed, &mut self.effects);
        }
        self.effects.push(Effect::SteppedDown { ballot, seen });
        self.become_follower(now_ms);
    }

    fn become_follower(&mut self, now_ms: u64) {
        self.state = State::Follower;
        self.follower_since_ms = now_ms;
        // Forget who heard whom: only fresh statuses may keep us quiet, or
        // let us campaign.
        self.leader_heard_at_ms.iter_mut().for_each(|h| *h = None);
        self.status_at_ms.iter_mut().for_each(|h| *h = None);
    }

    fn see(&mut self, ballot: Ballot) {
        if ballot.epoch == self.config.epoch {
            self.round_seen_max = self.round_seen_max.max(ballot.round);
        } else if ballot.epoch > self.config.epoch && self.ended.is_none() {
            self.supersede(ballot.epoch);
        }
    }

    /// A later epoch exists: fail every waiting client and go quiet.
    fn supersede(&mut self, epoch: u64) {
        if let State::Leader(leader) = &mut self.state {
            leader.fail_all(Refusal::Reconfiguring, &mut self.effects);
        }
        self.state = State::Follower;
        self.ended = Some(epoch);
        self.effects.push(Effect::Superseded { epoch });
    }

    /// The stop sign was applied: report it, then go quiet.
    fn end_epoch(&mut self, now_ms: u64) {
        let State::Leader(leader) = &mut self.state else {
            return;
        };
        let (configuration, snapshot) = leader.reconfigured.take().expect("checked by the caller");
        let tail = leader.chosen_tail(&self.config);
        let request = leader.stop.and_then(|(_, request)| request);
        leader.fail_all(Refusal::Reconfiguring, &mut self.effects);
        self.known_chosen = snapshot.clone();
        self.ended = Some(configuration.epoch);
        self.effects.push(Effect::Reconfigured {
            configuration,
            snapshot,
            tail,
            request,
        });
        self.become_follower(now_ms);
    }

    fn draw_timeout(&self, random: u64) -> u64 {
        let span = self.config.election_timeout_max_ms - self.config.election_timeout_min_ms;
        self.config.election_timeout_min_ms + random % (span + 1)
    }
}

impl Leader {
    /// Phase 1 is done: rebuild the log from a quorum's promises.
    ///
    /// Slots below the highest reported chosen point are chosen and folded
    /// into that acceptor's snapshot. Above it, each slot gets the value of
    /// the highest ballot reported, holes up to the highest reported slot
    /// get no-ops, and new allocations start above every range seen.
    /// `known` is what this proposer knew chosen when it campaigned; the
    /// prepare asked for nothing below it.
    fn recover(
        candidate: Candidate,
        known: &Snapshot,
        known_window: Option<CatchUp>,
        now_ms: u64,
        acceptors: usize,
    ) -> Leader {
        // `counters` is mutable for the planted bug `hole_new_allocation`.
        #[allow(unused_mut)]
        let Recovered {
            base,
            mut highest,
            mut counters,
        } = recover_log(candidate.promises.values(), known);
        let top = highest.keys().next_back().copied();
        let next_slot = top.map_or(base.below, Slot::next);
        let mut in_flight = BTreeMap::new();
        let mut slot = base.below;
        while slot < next_slot {
            #[cfg(not(paxid_bug = "hole_new_allocation"))]
            let value = highest.remove(&slot).unwrap_or(Value::Noop);
            // Planted bug (scripts/planted-bugs.sh): a hole gets fresh IDs, which
            // lie above the ranges of the higher slots recovered after it.
            #[cfg(paxid_bug = "hole_new_allocation")]
            let value = highest.remove(&slot).map_or_else(
                || {
                    let sequence = SequenceName::default_sequence();
                    let first = counters.next_id(&sequence);
                    counters.raise_to(&sequence, first + 1);
                    Value::Allocations(vec![Allocation {
                        sequence,
                        first,
                        count: 1,
                    }])
                },
                |v| v,
            );
            in_flight.insert(slot, InFlight::new(value, acceptors, now_ms, Vec::new()));
            slot = slot.next();
        }
        let stop = in_flight
            .iter()
            .find(|(_, flight)| flight.value.reconfiguration().is_some())
            .map(|(slot, _)| (*slot, None));
        let mut acceptor_chosen_below = vec![None; acceptors];
        for (id, promise) in &candidate.promises {
            acceptor_chosen_below[id.0] = Some(promise.snapshot.below);
        }
        Leader {
            ballot: candidate.ballot,
            next_slot,
            counters,
            in_flight,
            pending: VecDeque::new(),
            chosen_below: base.below,
            chosen_ahead: BTreeMap::new(),
            applied: base.counters.clone(),
            stop,
            reconfigured: None,
            keys: KeyIndex::starting_at(base.below, base.below),
            quorum: quorum(acceptors),
            catchup: match known_window {
                // Re-elected where it left off: the values it chose still
                // reach back to the acceptors behind (see `known_window`).
                Some(window) if window.end() == base.below => window,
                _ => CatchUp {
                    base,
                    values: VecDeque::new(),
                },
            },
            acceptor_chosen_below,
            answered_at_ms: candidate
                .promises
                .keys()
                .fold(vec![None; acceptors], |mut v, id| {
                    v[id.0] = Some(now_ms);
                    v
                }),
            heartbeat_sent_at_ms: now_ms,
        }
    }

    /// Takes pending requests into one new slot. Returns the slot, or None
    /// if every request taken was refused.
    fn propose_batch(
        &mut self,
        now_ms: u64,
        config: &ProposerConfig,
        effects: &mut Vec<Effect>,
    ) -> Option<Slot> {
        let mut allocations: Vec<Allocation> = Vec::new();
        let mut keyed: Vec<KeyedPart> = Vec::new();
        let mut waiting = Vec::new();
        let mut taken = 0;
        while taken < config.batch_requests_max {
            // A slot holds a bounded number of keys; the rest wait for the next.
            let full = keyed.len() >= KEYED_PER_SLOT_MAX;
            let Some((request, received_at_ms)) = self.pending.pop_front() else {
                break;
            };
            if full && request.key.is_some() {
                self.pending.push_front((request, received_at_ms));
                break;
            }
            taken += 1;
            let known = self.counters.contains(&request.sequence)
                || allocations.iter().any(|a| a.sequence == request.sequence);
            let refusal = if !known && self.counters.len() >= config.sequences_max {
                Some(Refusal::TooManySequences)
            } else {
                None
            };
            let first = self.counters.next_id(&request.sequence);
            let end = first.checked_add(request.count);
            if let Some(refusal) = refusal.or(end.is_none().then_some(Refusal::Exhausted)) {
                if let Some(key) = &request.key {
                    self.keys.drop_waiting(key);
                }
                effects.push(Effect::Reply {
                    request: request.id,
                    result: Err(refusal),
                });
                continue;
            }
            let end = end.expect("checked above");
            self.counters.raise_to(&request.sequence, end);
            let part = Allocation {
                sequence: request.sequence.clone(),
                first,
                count: request.count,
            };
            match allocations.iter_mut().find(|a| a.sequence == request.sequence) {
                Some(range) => range.count += request.count,
                None => allocations.push(part.clone()),
            }
            if let Some(key) = request.key {
                keyed.push(KeyedPart {
                    key,
                    allocation: part.clone(),
                });
            }
            waiting.push((request.id, part, received_at_ms));
        }
        if waiting.is_empty() {
            return None;
        }
        let slot = self.next_slot;
        self.next_slot = slot.next();
        for part in &keyed {
            self.keys.propose(slot, part);
        }
        let value = if keyed.is_empty() {
            Value::Allocations(allocations)
        } else {
            Value::KeyedAllocations {
                allocations,
                keys: keyed,
            }
        };
        self.in_flight
            .insert(slot, InFlight::new(value, config.acceptors, now_ms, waiting));
        Some(slot)
    }

    /// Puts the stop sign into the next slot.
    fn propose_stop(
        &mut self,
        now_ms: u64,
        request: RequestId,
        configuration: Configuration,
        acceptors: usize,
    ) -> Slot {
        let slot = self.next_slot;
        self.next_slot = slot.next();
        self.stop = Some((slot, Some(request)));
        let flight = InFlight::new(Value::Reconfigure(configuration), acceptors, now_ms, Vec::new());
        self.in_flight.insert(slot, flight);
        slot
    }

    /// Requests not in a slot yet get no slot in this epoch.
    fn refuse_pending(&mut self, effects: &mut Vec<Effect>) {
        for (request, _) in self.pending.drain(..) {
            if let Some(key) = &request.key {
                self.keys.drop_waiting(key);
            }
            effects.push(Effect::Reply {
                request: request.id,
                result: Err(Refusal::Reconfiguring),
            });
        }
    }

    /// Fails every client still waiting, in a slot or not.
    fn fail_all(&mut self, refusal: Refusal, effects: &mut Vec<Effect>) {
        let pending = self.pending.drain(..).map(|(request, _)| request.id);
        let in_flight = self.in_flight.values_mut().flat_map(|f| f.waiting.drain(..));
        let chosen_ahead = self.chosen_ahead.values_mut().flat_map(|(_, w)| w.drain(..));
        let waiting = in_flight.chain(chosen_ahead).map(|(request, _, _)| request);
        for request in pending.chain(waiting).collect::<Vec<_>>() {
            effects.push(Effect::Reply {
                request,
                result: Err(refusal.clone()),
            });
        }
    }

    /// One accept per acceptor carrying every listed in-flight slot.
    fn send_accepts(&mut self, slots: &[Slot], effects: &mut Vec<Effect>) {
        if slots.is_empty() {
            return;
        }
        let entries = slots
            .iter()
            .filter_map(|s| self.in_flight.get(s).map(|f| (*s, f.value.clone())))
            .collect();
        let accept = Accept {
            ballot: self.ballot,
            chosen_below: self.chosen_below,
            entries,
        };
        effects.push(Effect::AcceptAll { accept });
    }

    fn ack(&mut self, slot: Slot, from: AcceptorId, member: Option<MemberId>) {
        let Some(flight) = self.in_flight.get_mut(&slot) else {
            return;
        };
        flight.acks.add(from, member);
        if flight.acks.votes() < self.quorum {
            return;
        }
        let flight = self.in_flight.remove(&slot).expect("present above");
        self.chosen_ahead.insert(slot, (flight.value, flight.waiting));
    }

    /// Answers clients and reports chosen slots, in slot order.
    fn advance_chosen(&mut self, catchup_slots_max: usize, effects: &mut Vec<Effect>) {
        while self.reconfigured.is_none() {
            let Some((value, waiting)) = self.chosen_ahead.remove(&self.chosen_below) else {
                break;
            };
            let effective = self.applied.apply(&value);
            self.keys.apply(self.chosen_below, &value, &effective);
            for (request, allocation, _) in waiting {
                // Our own allocations lie above everything recovery saw, so
                // they always take effect; anything else is a bug.
                assert!(
                    effective.iter().any(|e| e.sequence == allocation.sequence
                        && e.first <= allocation.first
                        && allocation.end() <= e.end()),
                    "slot {} was chosen with {allocation:?}, which does not take effect",
                    self.chosen_below
                );
                effects.push(Effect::Reply {
                    request,
                    result: Ok(allocation),
                });
            }
            effects.push(Effect::Chosen {
                slot: self.chosen_below,
                value: value.clone(),
            });
            let stop = value.reconfiguration().cloned();
            self.catchup.push(value, catchup_slots_max);
            self.chosen_below = self.chosen_below.next();
            if let Some(configuration) = stop.filter(|_| !cfg!(paxid_bug = "stop_sign_ignored")) {
                // Every slot after the stop sign is void in this epoch.
                let snapshot = self.catchup.chosen_prefix();
                self.reconfigured = Some((configuration, snapshot));
            }
        }
    }

    fn note_answer(&mut self, now_ms: u64, from: AcceptorId, chosen_below: Slot) {
        self.answered_at_ms[from.0] = Some(now_ms);
        self.acceptor_chosen_below[from.0] = Some(chosen_below);
    }

    /// A majority answered within `quorum_contact_ms`. A leader cut off
    /// from its quorum steps down rather than hold clients forever.
    fn has_quorum_contact(&self, now_ms: u64, config: &ProposerConfig) -> bool {
        let recent = self
            .answered_at_ms
            .iter()
            .filter(|at| matches!(at, Some(t) if now_ms.saturating_sub(*t) < config.quorum_contact_ms))
            .count();
        recent >= self.quorum.max(quorum(config.acceptors))
    }

    fn time_out_requests(&mut self, now_ms: u64, timeout_ms: u64, effects: &mut Vec<Effect>) {
        let expired = |received: u64| now_ms.saturating_sub(received) >= timeout_ms;
        while let Some((request, received)) = self.pending.front() {
            if !expired(*received) {
                break;
            }
            effects.push(Effect::Reply {
                request: request.id,
                result: Err(Refusal::TimedOut),
            });
            if let Some(key) = &request.key {
                self.keys.drop_waiting(key);
            }
            self.pending.pop_front();
        }
        // The slot stays in flight with its value: it may still be chosen,
        // and a ballot never carries two values for one slot.
        let in_flight = self.in_flight.values_mut().map(|f| &mut f.waiting);
        let chosen_ahead = self.chosen_ahead.values_mut().map(|(_, waiting)| waiting);
        for waiting in in_flight.chain(chosen_ahead) {
            waiting.retain(|(request, _, received)| {
                let keep = !expired(*received);
                if !keep {
                    effects.push(Effect::Reply {
                        request: *request,
                        result: Err(Refusal::TimedOut),
                    });
                }
                keep
            });
        }
    }

    /// When the next heartbeat or accept resend is due.
    fn next_due_ms(&self, config: &ProposerConfig) -> u64 {
        let heartbeat = self
            .heartbeat_sent_at_ms
            .saturating_add(config.heartbeat_interval_ms);
        let resend = self
            .in_flight
            .values()
            .map(|flight| flight.sent_at_ms.saturating_add(config.accept_retry_ms))
            .min()
            .unwrap_or(u64::MAX);
        heartbeat.min(resend)
    }

    fn resend_unacknowledged(&mut self, now_ms: u64, config: &ProposerConfig, effects: &mut Vec<Effect>) {
        let mut per_acceptor: Vec<Vec<(Slot, Value)>> = vec![Vec::new(); config.acceptors];
        for (slot, flight) in self.in_flight.iter_mut() {
            if now_ms.saturating_sub(flight.sent_at_ms) < config.accept_retry_ms {
                continue;
            }
            flight.sent_at_ms = now_ms;
            for to in flight.acks.missing() {
                per_acceptor[to.0].push((*slot, flight.value.clone()));
            }
        }
        for (to, entries) in per_acceptor.into_iter().enumerate() {
            if !entries.is_empty() {
                let accept = Accept {
                    ballot: self.ballot,
                    chosen_below: self.chosen_below,
                    entries,
                };
                effects.push(Effect::Accept {
                    to: AcceptorId(to),
                    accept,
                });
            }
        }
    }

    /// The last chosen values up to the chosen point, re-sent under our
    /// ballot with that chosen point: what lets the acceptors of an ended
    /// epoch keep their logs through the transition (see
    /// [`Effect::Reconfigured`]). As long as catch-up allows, and reaching
    /// back to the acceptor that lags most.
    fn chosen_tail(&self, config: &ProposerConfig) -> Accept {
        let end = self.chosen_below.0;
        let lagging = self
            .acceptor_chosen_below
            .iter()
            .flatten()
            .min()
            .map_or(end, |s| s.0);
        let from = lagging
            .max(end.saturating_sub(config.catchup_batch_max as u64))
            .max(self.catchup.base.below.0);
        Accept {
            ballot: self.ballot,
            chosen_below: self.chosen_below,
            entries: self
                .catchup
                .values_up_to_end(Slot(from), config.catchup_allocations_max),
        }
    }

    /// Heartbeat every acceptor; catch up those behind the chosen point.
    fn send_heartbeats(&mut self, config: &ProposerConfig, effects: &mut Vec<Effect>) {
        for to in (0..config.acceptors).map(AcceptorId) {
            let behind = self.acceptor_chosen_below[to.0].filter(|c| *c < self.chosen_below);
            let snapshot = match behind {
                Some(point) if point < self.catchup.base.below => Some(self.catchup.base.clone()),
                _ => None,
            };
            let commit = Commit {
                ballot: self.ballot,
                chosen_below: self.chosen_below,
                snapshot,
            };
            effects.push(Effect::Commit { to, commit });
            if let Some(point) = behind {
                let from = point.max(self.catchup.base.below);
                let entries =
                    self.catchup
                        .values_from(from, config.catchup_batch_max, config.catchup_allocations_max);
                if !entries.is_empty() {
                    let accept = Accept {
                        ballot: self.ballot,
                        chosen_below: self.chosen_below,
                        entries,
                    };
                    effects.push(Effect::Accept { to, accept });
                }
            }
        }
    }
}

impl Leader {
    /// Requests a resigned leader held, never put into a slot, go back to
    /// the driver as `NotLeader`: it forwards them to the next leader.
    fn release_held(&mut self, effects: &mut Vec<Effect>) {
        for (request, _) in self.pending.drain(..) {
            effects.push(Effect::Reply {
                request: request.id,
                result: Err(Refusal::NotLeader),
            });
        }
    }
}

impl CatchUp {
    /// The slot after the last value held: the chosen point.
    fn end(&self) -> Slot {
        Slot(self.base.below.0 + self.values.len() as u64)
    }

    /// Everything chosen so far, folded into one snapshot.
    fn chosen_prefix(&self) -> Snapshot {
        let mut snapshot = self.base.clone();
        for value in &self.values {
            snapshot.counters.raise_above(value);
            snapshot.below = snapshot.below.next();
        }
        snapshot
    }

    fn push(&mut self, value: Value, slots_max: usize) {
        self.values.push_back(value);
        while self.values.len() > slots_max {
            let oldest = self.values.pop_front().expect("longer than the limit");
            self.base.counters.raise_above(&oldest);
            self.base.below = self.base.below.next();
        }
    }

    /// Chosen values from `from` to the end, dropping the oldest while they
    /// hold more than `allocations_max` allocations (the newest is kept).
    fn values_up_to_end(&self, from: Slot, allocations_max: usize) -> Vec<(Slot, Value)> {
        let skip = (from.0 - self.base.below.0) as usize;
        let mut allocations = 0;
        let mut tail: Vec<(Slot, Value)> = self
            .values
            .iter()
            .enumerate()
            .skip(skip)
            .rev()
            .take_while(|(i, v)| {
                allocations += v.weight();
                *i + 1 == self.values.len() || allocations <= allocations_max
            })
            .map(|(i, v)| (Slot(self.base.below.0 + i as u64), v.clone()))
            .collect();
        tail.reverse();
        tail
    }

    /// Chosen values from `from` on: at most `slots_max` slots, and no more
    /// than `allocations_max` allocations unless the first slot alone has more.
    fn values_from(&self, from: Slot, slots_max: usize, allocations_max: usize) -> Vec<(Slot, Value)> {
        let skip = (from.0 - self.base.below.0) as usize;
        let mut allocations = 0;
        self.values
            .iter()
            .skip(skip)
            .take(slots_max)
            .enumerate()
            .take_while(|(i, v)| {
                allocations += v.weight();
                *i == 0 || allocations <= allocations_max
            })
            .map(|(i, v)| (Slot(from.0 + i as u64), v.clone()))
            .collect()
    }
}

/// What a quorum's promises say about the log.
pub(crate) struct Recovered {
    /// The highest chosen snapshot reported (or the one the proposer knew).
    pub base: Snapshot,
    /// Above `base`, per slot, the value of the highest ballot reported.
    pub highest: BTreeMap<Slot, Value>,
    /// Above every range seen in any promise.
    pub counters: Counters,
}

/// Phase 1's rule, shared by a new leader and a rebuild: slots below the
/// highest reported chosen point are chosen and folded into that snapshot;
/// above it, each slot gets the value of the highest ballot reported.
pub(crate) fn recover_log<'a>(
    promises: impl Iterator<Item = &'a Promise> + Clone,
    known: &Snapshot,
) -> Recovered {
    let base = promises
        .clone()
        .map(|p| &p.snapshot)
        .chain([known])
        .max_by_key(|snapshot| snapshot.below)
        .expect("never empty")
        .clone();
    let mut counters = base.counters.clone();
    counters.merge(&known.counters);
    let mut highest: BTreeMap<Slot, (Ballot, Value)> = BTreeMap::new();
    for promise in promises {
        counters.merge(&promise.snapshot.counters);
        for (slot, accepted) in &promise.votes {
            counters.raise_above(&accepted.value);
            if *slot < base.below {
                continue;
            }
            #[cfg(not(paxid_bug = "no_adopt_highest"))]
            let better = highest.get(slot).is_none_or(|(b, _)| accepted.ballot > *b);
            // Planted bug (scripts/planted-bugs.sh): the lowest ballot's value wins.
            #[cfg(paxid_bug = "no_adopt_highest")]
            let better = highest.get(slot).is_none_or(|(b, _)| accepted.ballot < *b);
            if better {
                highest.insert(*slot, (accepted.ballot, accepted.value.clone()));
            }
        }
    }
    let highest = highest
        .into_iter()
        .map(|(slot, (_, value))| (slot, value))
        .collect();
    Recovered {
        base,
        highest,
        counters,
    }
}

/// The promises that count towards a quorum: from distinct members that
/// no promise held (nor `known`) reports retired. Merges every promise's
/// membership into `known` on the way.
///
/// Why: a promise the lost disk gave may still sit in a candidate's set.
/// The rebuild that replaced that member recorded the retirement, with its
/// own promise, on a quorum of the others; any quorum this candidate can
/// complete intersects that one, and the member in both either promised
/// us first (so the rebuild's ballot is above ours and fences it) or
/// reports the retirement here.
pub(crate) fn countable<'a>(
    promises: &'a BTreeMap<AcceptorId, Promise>,
    known: &mut Membership,
) -> BTreeMap<AcceptorId, &'a Promise> {
    for promise in promises.values() {
        known.merge(&promise.membership);
    }
    let mut members = std::collections::BTreeSet::new();
    promises
        .iter()
        .filter(|(_, promise)| {
            // Planted bug (scripts/planted-bugs.sh): identities are not checked.
            cfg!(paxid_bug = "rejoin_blank") || known.votes(promise.member) && members.insert(promise.member)
        })
        .map(|(id, promise)| (*id, promise))
        .collect()
}
