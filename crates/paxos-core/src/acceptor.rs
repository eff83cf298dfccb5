//! The acceptor: the only role with durable state.
//!
//! Every handler returns a [`Step`]: the state change to persist and the
//! reply to send. The reply can only be taken out with a [`Persisted`]
//! token, which a store hands back after its write is durable, so "persist,
//! then speak" is the only order the types allow.

use std::collections::BTreeMap;

use crate::types::{
    Accepted, Ballot, Configuration, Counters, MemberId, Membership, Replace, Slot, Snapshot, Value,
};

/// Phase 1a: "promise me `ballot`, and tell me what you accepted from `from` on".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prepare {
    pub ballot: Ballot,
    pub from: Slot,
    /// Set by a rebuild (see [`crate::rebuild`]): recorded atomically with
    /// the promise, so that every later promise of this acceptor says that
    /// `retire` no longer counts.
    pub replace: Option<Replace>,
}

/// Phase 1b.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Promise {
    pub ballot: Ballot,
    /// Who promised, and who it knows may vote: a proposer counts a promise
    /// only from a member that no promise it holds reports retired.
    pub member: MemberId,
    pub membership: Membership,
    /// Every slot below `snapshot.below` is chosen; `counters` applies them.
    pub snapshot: Snapshot,
    /// Its votes: every slot it accepted a value in, at or above
    /// `max(from, snapshot.below)`, with the ballot of that vote.
    pub votes: Vec<(Slot, Accepted)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PrepareReply {
    Promised(Promise),
    Rejected {
        promised: Ballot,
    },
    /// Blank (not founded or not rebuilt yet) or retired: this acceptor
    /// holds no state it could vote with.
    NotVoting,
}

/// A blank acceptor (and only a blank one) becomes a voting member: as a
/// founder of a new cluster ([`Acceptor::handle_join`]) or rebuilt in the
/// place of a lost member ([`Acceptor::handle_install`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JoinReply {
    Joined,
    /// It holds a membership already; nothing changed.
    NotBlank,
    /// The membership offered does not let it vote; nothing changed.
    NotAMember,
}

/// Founds a new cluster on acceptors that were all blank.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Join {
    pub membership: Membership,
    /// Every sequence starts at or above these next IDs: how a cluster
    /// re-created after every acceptor lost its disk avoids the IDs the
    /// lost one handed out (the operator's floor, or a learner's counters).
    pub floor: Counters,
}

/// What a rebuild hands the blank acceptor that replaces a lost member:
/// the promise and votes a leader of `ballot` would have sent it, computed
/// from a quorum of the other members' promises (see [`crate::rebuild`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Install {
    pub ballot: Ballot,
    pub membership: Membership,
    pub snapshot: Snapshot,
    /// Votes above `snapshot.below`, taken under `ballot`.
    pub entries: Vec<(Slot, Value)>,
}

/// Moves an acceptor into the configuration a chosen stop sign named.
///
/// `snapshot` is chosen in the new epoch's log: everything up to and
/// including the stop sign, or any later chosen point of the new epoch.
/// Safe to send at any time, by anyone who learned both: the acceptor has
/// never answered a ballot of the new epoch (it refuses them until it has
/// moved), so it starts there as an acceptor that missed every message so
/// far, with no promise it could have forgotten.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transition {
    pub configuration: Configuration,
    pub snapshot: Snapshot,
}

/// Phase 2a for many slots at once, carrying the leader's chosen point so
/// that acceptors learn chosen marks without a separate round trip.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Accept {
    pub ballot: Ballot,
    pub chosen_below: Slot,
    pub entries: Vec<(Slot, Value)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AcceptReply {
    /// Every entry of the request was accepted. `member` is who voted, so
    /// that a proposer counts a vote once per member even when it reaches
    /// one acceptor at two addresses (None from an acceptor too old to say).
    Accepted {
        chosen_below: Slot,
        member: Option<MemberId>,
    },
    Rejected {
        promised: Ballot,
    },
    /// The accept would put a second value into `slot`, which is chosen or
    /// holds another value under the same ballot. A correct leader never
    /// sends one; nothing of the accept was taken.
    Conflict {
        slot: Slot,
    },
    NotVoting,
}

/// A blank or retired acceptor answers no commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NotVoting;

/// The leader's heartbeat: "every slot below `chosen_below` that you
/// accepted under `ballot` holds the chosen value". `snapshot` is sent to
/// an acceptor too far behind to be caught up slot by slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Commit {
    pub ballot: Ballot,
    pub chosen_below: Slot,
    pub snapshot: Option<Snapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommitReply {
    pub promised: Ballot,
    pub chosen_below: Slot,
}

/// Everything an acceptor keeps on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AcceptorState {
    /// Who this acceptor is; drawn when its data dir was created.
    pub member: MemberId,
    /// None while blank: a new acceptor before its cluster is founded, or
    /// a wiped one before it is rebuilt. A blank acceptor never votes.
    pub membership: Option<Membership>,
    /// The configuration it moved to last; None in epoch 0.
    pub configuration: Option<Configuration>,
    pub promised: Ballot,
    /// The compacted prefix: slots below `base.below` are folded into counters.
    pub base: Snapshot,
    /// Votes for slots at or above `base.below`.
    pub log: BTreeMap<Slot, Accepted>,
}

impl AcceptorState {
    /// A new or wiped acceptor: it votes only after it joins or is rebuilt.
    pub fn blank(member: MemberId) -> AcceptorState {
        AcceptorState {
            member,
            ..AcceptorState::default()
        }
    }

    /// A founding member of `membership` that has voted on nothing yet.
    pub fn founded(member: MemberId, membership: Membership) -> AcceptorState {
        AcceptorState {
            member,
            membership: Some(membership),
            ..AcceptorState::default()
        }
    }

    /// The epoch it votes in: that of the last configuration it moved to.
    pub fn epoch(&self) -> u64 {
        self.configuration.as_ref().map_or(0, |c| c.epoch)
    }
}

/// One transition's writes, applied by a store as a single atomic batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Change {
    /// Replaces the membership.
    pub membership: Option<Membership>,
    /// Replaces the configuration (a move to a new epoch).
    pub configuration: Option<Configuration>,
    pub promised: Option<Ballot>,
    /// Replaces the compacted prefix and deletes log entries below it.
    /// A store applies it before `truncate` and `put`.
    pub compact: Option<Snapshot>,
    /// Deletes log entries at and above this slot: the void tail of an
    /// epoch that ended. Applied before `put`.
    pub truncate: Option<Slot>,
    pub put: Vec<(Slot, Accepted)>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        *self == Change::default()
    }

    /// Applies the change to a state: what a store does on disk, done in memory.
    pub fn apply_to(&self, state: &mut AcceptorState) {
        if let Some(membership) = &self.membership {
            state.membership = Some(membership.clone());
        }
        if let Some(configuration) = &self.configuration {
            state.configuration = Some(configuration.clone());
        }
        if let Some(ballot) = self.promised {
            state.promised = ballot;
        }
        if let Some(snapshot) = &self.compact {
            state.log = state.log.split_off(&snapshot.below);
            state.base = snapshot.clone();
        }
        if let Some(from) = self.truncate {
            state.log.split_off(&from);
        }
        for (slot, accepted) in &self.put {
            state.log.insert(*slot, accepted.clone());
        }
    }
}

/// Proof that every change handed to a store so far is durable.
///
/// Only a store creates one, and only after its synced write returned.
#[derive(Debug)]
pub struct Persisted(());

impl Persisted {
    /// For store implementations: call only after the write is durable.
    pub fn after_durable_write() -> Persisted {
        Persisted(())
    }
}

/// A handler's outcome: a change to persist (maybe none) and a held reply.
#[must_use = "the change must be persisted before the reply is sent"]
#[derive(Debug)]
pub struct Step<R> {
    change: Change,
    reply: R,
}

impl<R> Step<R> {
    fn new(change: Change, reply: R) -> Step<R> {
        Step { change, reply }
    }

    pub fn change(&self) -> &Change {
        &self.change
    }

    /// The reply, to look at (for logs and metrics): sending it still
    /// takes the proof of durability.
    pub fn peek(&self) -> &R {
        &self.reply
    }

    /// The reply, released only against proof that the change is durable.
    pub fn into_reply(self, _proof: Persisted) -> R {
        self.reply
    }

    /// Splits the step for a driver that persists many steps in one batch.
    pub fn into_parts(self) -> (Change, HeldReply<R>) {
        (self.change, HeldReply(self.reply))
    }
}

/// A reply whose change went into a group write; released like a `Step`'s.
#[derive(Debug)]
pub struct HeldReply<R>(R);

impl<R> HeldReply<R> {
    pub fn release(self, _proof: &Persisted) -> R {
        self.0
    }
}

/// What an operator or a follower sequencer sees of an acceptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptorView {
    pub member: MemberId,
    /// None while blank.
    pub membership: Option<Membership>,
    /// None in epoch 0.
    pub configuration: Option<Configuration>,
    /// Whether it votes: it holds a membership that counts it.
    pub voting: bool,
    pub promised: Ballot,
    pub chosen_below: Slot,
    pub compacted_below: Slot,
    pub log_entries: usize,
}

/// The acceptor state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Acceptor {
    state: AcceptorState,
    /// Derived: first slot at or above `base.below` not marked chosen.
    chosen_below: Slot,
    /// Derived: counters after applying every slot below `chosen_below`.
    chosen_counters: Counters,
}

impl Acceptor {
    /// Rebuilds the acceptor from what its store loaded.
    pub fn restore(state: AcceptorState) -> Acceptor {
        let mut acceptor = Acceptor {
            chosen_below: state.base.below,
            chosen_counters: state.base.counters.clone(),
            state,
        };
        acceptor.advance_chosen_prefix();
        acceptor
    }

    pub fn state(&self) -> &AcceptorState {
        &self.state
    }

    pub fn view(&self) -> AcceptorView {
        AcceptorView {
            member: self.state.member,
            membership: self.state.membership.clone(),
            configuration: self.state.configuration.clone(),
            voting: self.voting(),
            promised: self.state.promised,
            chosen_below: self.chosen_below,
            compacted_below: self.state.base.below,
            log_entries: self.state.log.len(),
        }
    }

    pub fn handle_prepare(&mut self, prepare: &Prepare) -> Step<PrepareReply> {
        let retires_me = prepare.replace.is_some_and(|r| r.retire == self.state.member);
        if !self.voting() || retires_me || self.not_moved_to(prepare.ballot) {
            return Step::new(Change::default(), PrepareReply::NotVoting);
        }
        let membership = self.state.membership.clone().unwrap_or_default();
        // Strictly greater: a ballot can be promised once, so a sequencer
        // that restarted and picked a ballot it already used cannot gather
        // a second quorum for it.
        #[cfg(not(paxid_bug = "ballot_reuse"))]
        let stale = prepare.ballot <= self.state.promised;
        // Planted bug (scripts/planted-bugs.sh): a ballot may be promised twice.
        #[cfg(paxid_bug = "ballot_reuse")]
        let stale = prepare.ballot < self.state.promised;
        if stale {
            let promised = self.state.promised;
            return Step::new(Change::default(), PrepareReply::Rejected { promised });
        }
        let mut change = Change {
            promised: Some(prepare.ballot),
            ..Change::default()
        };
        if let Some(replace) = prepare.replace {
            let mut replaced = membership.clone();
            replaced.replace(replace);
            change.membership = Some(replaced).filter(|m| *m != membership);
        }
        self.apply(&change);
        let from = prepare.from.max(self.chosen_below);
        let promise = Promise {
            ballot: prepare.ballot,
            member: self.state.member,
            membership: self.state.membership.clone().unwrap_or_default(),
            snapshot: Snapshot {
                below: self.chosen_below,
                counters: self.chosen_counters.clone(),
            },
            votes: self.entries_from(from, usize::MAX),
        };
        Step::new(change, PrepareReply::Promised(promise))
    }

    pub fn handle_accept(&mut self, accept: &Accept) -> Step<AcceptReply> {
        if !self.voting() || self.not_moved_to(accept.ballot) {
            return Step::new(Change::default(), AcceptReply::NotVoting);
        }
        #[cfg(not(paxid_bug = "accept_below_promise"))]
        let stale = accept.ballot < self.state.promised;
        // Planted bug (scripts/planted-bugs.sh): no fencing of deposed leaders.
        #[cfg(paxid_bug = "accept_below_promise")]
        let stale = false;
        if stale {
            let promised = self.state.promised;
            return Step::new(Change::default(), AcceptReply::Rejected { promised });
        }
        let mut change = Change::default();
        if accept.ballot > self.state.promised {
            change.promised = Some(accept.ballot);
        }
        for (slot, value) in &accept.entries {
            match self.vote(accept.ballot, *slot, value) {
                Ok(Some(accepted)) => change.put.push((*slot, accepted)),
                Ok(None) => {}
                Err(slot) => return Step::new(Change::default(), AcceptReply::Conflict { slot }),
            }
        }
        self.apply(&change);
        let marks = self.chosen_marks(accept.ballot, accept.chosen_below);
        self.apply(&marks);
        change.put.extend(marks.put);
        let chosen_below = self.chosen_below;
        let member = Some(self.state.member);
        Step::new(change, AcceptReply::Accepted { chosen_below, member })
    }

    pub fn handle_commit(&mut self, commit: &Commit) -> Step<Result<CommitReply, NotVoting>> {
        if !self.voting() || self.not_moved_to(commit.ballot) {
            return Step::new(Change::default(), Err(NotVoting));
        }
        let mut change = Change::default();
        // A commit comes from a leader whose phase 1 a quorum promised: an
        // acceptor that missed that prepare promises it now, so that it
        // fences older ballots and names this leader in its status.
        if commit.ballot > self.state.promised {
            change.promised = Some(commit.ballot);
            self.apply(&change);
        }
        if let Some(snapshot) = &commit.snapshot {
            // Only the leader we follow may replace our log with a snapshot.
            let current = commit.ballot >= self.state.promised;
            if current && snapshot.below > self.chosen_below {
                let install = Change {
                    compact: Some(snapshot.clone()),
                    ..Change::default()
                };
                self.apply(&install);
                change.compact = install.compact;
            }
        }
        let marks = self.chosen_marks(commit.ballot, commit.chosen_below);
        self.apply(&marks);
        change.put.extend(marks.put);
        let reply = CommitReply {
            promised: self.state.promised,
            chosen_below: self.chosen_below,
        };
        Step::new(change, Ok(reply))
    }

    /// Founds a new cluster: a blank acceptor counted by `join.membership`
    /// starts voting, with nothing promised or accepted.
    pub fn handle_join(&mut self, join: &Join) -> Step<JoinReply> {
        let floor = Snapshot {
            below: Slot::ZERO,
            counters: join.floor.clone(),
        };
        let change = Change {
            compact: Some(floor).filter(|f| !f.counters.is_empty()),
            ..Change::default()
        };
        self.become_member(&join.membership, change)
    }

    /// A blank acceptor takes the place of a lost member: it starts voting
    /// with the promise and votes a rebuild computed for it.
    pub fn handle_install(&mut self, install: &Install) -> Step<JoinReply> {
        let put = install
            .entries
            .iter()
            .filter(|(slot, _)| *slot >= install.snapshot.below)
            .map(|(slot, value)| {
                let accepted = Accepted {
                    ballot: install.ballot,
                    value: value.clone(),
                    chosen: false,
                };
                (*slot, accepted)
            })
            .collect();
        let change = Change {
            promised: Some(install.ballot),
            compact: Some(install.snapshot.clone()),
            put,
            ..Change::default()
        };
        self.become_member(&install.membership, change)
    }

    /// Enters the configuration a chosen stop sign named, once: a blank
    /// acceptor seated by it starts voting, a member of the epoch before
    /// drops that epoch's void tail and votes in the new one.
    pub fn handle_transition(&mut self, transition: &Transition) -> Step<JoinReply> {
        let configuration = &transition.configuration;
        if configuration.epoch <= self.state.epoch() {
            return Step::new(Change::default(), JoinReply::NotBlank);
        }
        if !configuration.is_valid() || !configuration.seats_member(self.state.member) {
            return Step::new(Change::default(), JoinReply::NotAMember);
        }
        let snapshot = &transition.snapshot;
        // Keep our chosen votes when the snapshot starts right after the
        // stop sign and we hold everything up to it chosen (learners read
        // them from us); fold in the snapshot otherwise. Anything from the
        // snapshot on is the ended epoch's void tail.
        let stop_sign = Value::Reconfigure(configuration.clone());
        let after_stop_sign = self
            .state
            .log
            .iter()
            .find(|(_, accepted)| accepted.chosen && accepted.value == stop_sign)
            .map(|(slot, _)| slot.next());
        let keep = after_stop_sign == Some(snapshot.below) && self.chosen_below >= snapshot.below;
        let compact = (!keep).then(|| snapshot.clone());
        let change = Change {
            membership: Some(configuration.membership()),
            configuration: Some(configuration.clone()),
            promised: Some(Ballot::opening(configuration.epoch)),
            compact,
            truncate: Some(snapshot.below),
            put: Vec::new(),
        };
        self.apply(&change);
        // Marks above the stop sign were void and are gone with the tail.
        self.chosen_below = snapshot.below;
        self.chosen_counters = snapshot.counters.clone();
        Step::new(change, JoinReply::Joined)
    }

    /// A ballot of an epoch this acceptor has not moved to (yet): it must
    /// not vote there before a [`Transition`] gives it that epoch's start.
    fn not_moved_to(&self, ballot: Ballot) -> bool {
        ballot.epoch > self.state.epoch()
    }

    fn become_member(&mut self, membership: &Membership, mut change: Change) -> Step<JoinReply> {
        if self.state.membership.is_some() {
            return Step::new(Change::default(), JoinReply::NotBlank);
        }
        if !membership.votes(self.state.member) {
            return Step::new(Change::default(), JoinReply::NotAMember);
        }
        change.membership = Some(membership.clone());
        self.apply(&change);
        Step::new(change, JoinReply::Joined)
    }

    /// Everything this acceptor knows chosen, folded: what another
    /// acceptor needs to move into this one's epoch (see [`Transition`]).
    pub fn chosen_snapshot(&self) -> Snapshot {
        Snapshot {
            below: self.chosen_below,
            counters: self.chosen_counters.clone(),
        }
    }

    /// A founded or rebuilt member that was never retired.
    pub fn voting(&self) -> bool {
        // Planted bug (scripts/planted-bugs.sh): a blank acceptor votes with
        // the empty state it has, as paxid did before identities were checked.
        if cfg!(paxid_bug = "rejoin_blank") {
            return true;
        }
        self.state
            .membership
            .as_ref()
            .is_some_and(|m| m.votes(self.state.member))
    }

    /// Folds chosen slots below `below` into the snapshot and drops them.
    /// Never goes past the chosen prefix: only chosen slots may be forgotten.
    pub fn compact(&mut self, below: Slot) -> Step<Slot> {
        let target = below.min(self.chosen_below);
        if target <= self.state.base.below {
            let current = self.state.base.below;
            return Step::new(Change::default(), current);
        }
        let mut counters = self.state.base.counters.clone();
        for accepted in self.state.log.range(..target).map(|(_, a)| a) {
            counters.raise_above(&accepted.value);
        }
        let snapshot = Snapshot {
            below: target,
            counters,
        };
        let change = Change {
            compact: Some(snapshot),
            ..Change::default()
        };
        self.apply(&change);
        Step::new(change, target)
    }

    /// Accepted entries from `from` on, at most `limit` of them; read only.
    pub fn entries_from(&self, from: Slot, limit: usize) -> Vec<(Slot, Accepted)> {
        let from = from.max(self.state.base.below);
        self.state
            .log
            .range(from..)
            .take(limit)
            .map(|(slot, accepted)| (*slot, accepted.clone()))
            .collect()
    }

    /// The vote to write for one slot of an accept, None if nothing
    /// changes, or Err(slot) if the accept would put a second value into a
    /// chosen slot or a second value under one ballot: input a peer can
    /// send, so a refusal, not an assertion.
    fn vote(&self, ballot: Ballot, slot: Slot, value: &Value) -> Result<Option<Accepted>, Slot> {
        if slot < self.state.base.below {
            // Compacted, hence chosen: the leader can only be re-proposing
            // the chosen value, and acknowledging it is safe.
            return Ok(None);
        }
        match self.state.log.get(&slot) {
            Some(existing) if existing.chosen || existing.ballot == ballot => {
                if existing.value == *value {
                    Ok(None)
                } else {
                    Err(slot)
                }
            }
            _ => Ok(Some(Accepted {
                ballot,
                value: value.clone(),
                chosen: false,
            })),
        }
    }

    /// Chosen marks implied by a leader's "chosen below" under its ballot.
    fn chosen_marks(&self, ballot: Ballot, chosen_below: Slot) -> Change {
        if chosen_below <= self.chosen_below {
            return Change::default();
        }
        let put = self
            .state
            .log
            .range(self.chosen_below..chosen_below)
            .filter(|(_, accepted)| accepted.ballot == ballot && !accepted.chosen)
            .map(|(slot, accepted)| {
                (
                    *slot,
                    Accepted {
                        chosen: true,
                        ..accepted.clone()
                    },
                )
            })
            .collect();
        Change {
            put,
            ..Change::default()
        }
    }

    fn apply(&mut self, change: &Change) {
        change.apply_to(&mut self.state);
        // `<=`: a founding floor is a snapshot below slot 0.
        if change.compact.is_some() && self.chosen_below <= self.state.base.below {
            self.chosen_below = self.state.base.below;
            self.chosen_counters = self.state.base.counters.clone();
        }
        self.advance_chosen_prefix();
    }

    fn advance_chosen_prefix(&mut self) {
        while let Some(accepted) = self.state.log.get(&self.chosen_below) {
            if !accepted.chosen {
                break;
            }
            self.chosen_counters.raise_above(&accepted.value);
            self.chosen_below = self.chosen_below.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Allocation, Configuration, NodeId, SequenceName};

    fn ballot(round: u64, node: u32) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    fn alloc(first: u64, count: u64) -> Value {
        Value::Allocations(vec![Allocation {
            sequence: SequenceName::default_sequence(),
            first,
            count,
        }])
    }

    fn release<R>(step: Step<R>) -> (Change, R) {
        let change = step.change().clone();
        (change, step.into_reply(Persisted::after_durable_write()))
    }

    const ME: MemberId = MemberId(1);

    fn acceptor() -> Acceptor {
        let membership = Membership::founding([ME, MemberId(2), MemberId(3)]);
        Acceptor::restore(AcceptorState::founded(ME, membership))
    }

    #[test]
    fn prepare_above_promise_is_promised_and_persisted() {
        let mut a = acceptor();
        let (change, reply) = release(a.handle_prepare(&Prepare {
            ballot: ballot(1, 1),
            from: Slot(0),
            replace: None,
        }));
        assert_eq!(
            change,
            Change {
                promised: Some(ballot(1, 1)),
                ..Change::default()
            }
        );
        let PrepareReply::Promised(promise) = reply else {
            panic!("expected a promise")
        };
        assert_eq!(promise.ballot, ballot(1, 1));
        assert!(promise.votes.is_empty());
        assert_eq!(a.state().promised, ballot(1, 1));
    }

    #[test]
    fn prepare_at_or_below_promise_is_rejected_without_change() {
        let mut a = acceptor();
        let _ = release(a.handle_prepare(&Prepare {
            ballot: ballot(2, 1),
            from: Slot(0),
            replace: None,
        }));
        for b in [ballot(2, 1), ballot(1, 9)] {
            let (change, reply) = release(a.handle_prepare(&Prepare {
                ballot: b,
                from: Slot(0),
                replace: None,
            }));
            assert!(change.is_empty());
            assert_eq!(
                reply,
                PrepareReply::Rejected {
                    promised: ballot(2, 1)
                }
            );
        }
    }

    #[test]
    fn accept_below_promise_is_rejected_and_at_promise_is_accepted() {
        let mut a = acceptor();
        let _ = release(a.handle_prepare(&Prepare {
            ballot: ballot(2, 1),
            from: Slot(0),
            replace: None,
        }));
        let low = Accept {
            ballot: ballot(1, 2),
            chosen_below: Slot(0),
            entries: vec![(Slot(0), alloc(1, 1))],
        };
        let (change, reply) = release(a.handle_accept(&low));
        assert!(change.is_empty());
        assert_eq!(
            reply,
            AcceptReply::Rejected {
                promised: ballot(2, 1)
            }
        );

        let ok = Accept {
            ballot: ballot(2, 1),
            chosen_below: Slot(0),
            entries: vec![(Slot(0), alloc(1, 1))],
        };
        let (change, reply) = release(a.handle_accept(&ok));
        assert_eq!(
            change.put,
            vec![(
                Slot(0),
                Accepted {
                    ballot: ballot(2, 1),
                    value: alloc(1, 1),
                    chosen: false
                }
            )]
        );
        assert_eq!(change.promised, None);
        assert_eq!(
            reply,
            AcceptReply::Accepted {
                chosen_below: Slot(0),
                member: Some(ME),
            }
        );
    }

    #[test]
    fn accept_above_promise_raises_the_promise() {
        let mut a = acceptor();
        let accept = Accept {
            ballot: ballot(3, 1),
            chosen_below: Slot(0),
            entries: vec![(Slot(5), Value::Noop)],
        };
        let (change, _) = release(a.handle_accept(&accept));
        assert_eq!(change.promised, Some(ballot(3, 1)));
        assert_eq!(a.state().promised, ballot(3, 1));
    }

    #[test]
    fn promise_reports_accepted_entries_and_chosen_snapshot() {
        let mut a = acceptor();
        let b = ballot(1, 1);
        let accept = Accept {
            ballot: b,
            chosen_below: Slot(0),
            entries: vec![(Slot(0), alloc(1, 10)), (Slot(1), alloc(11, 5))],
        };
        let _ = release(a.handle_accept(&accept));
        let _ = release(a.handle_commit(&Commit {
            ballot: b,
            chosen_below: Slot(1),
            snapshot: None,
        }));
        let (_, reply) = release(a.handle_prepare(&Prepare {
            ballot: ballot(2, 2),
            from: Slot(0),
            replace: None,
        }));
        let PrepareReply::Promised(promise) = reply else {
            panic!("expected a promise")
        };
        assert_eq!(promise.snapshot.below, Slot(1));
        assert_eq!(
            promise
                .snapshot
                .counters
                .next_id(&SequenceName::default_sequence()),
            11
        );
        assert_eq!(
            promise.votes,
            vec![(
                Slot(1),
                Accepted {
                    ballot: b,
                    value: alloc(11, 5),
                    chosen: false
                }
            )]
        );
    }

    #[test]
    fn commit_marks_only_entries_of_its_ballot() {
        let mut a = acceptor();
        let old = ballot(1, 1);
        let new = ballot(2, 2);
        let _ = release(a.handle_accept(&Accept {
            ballot: old,
            chosen_below: Slot(0),
            entries: vec![(Slot(0), alloc(1, 1))],
        }));
        let _ = release(a.handle_accept(&Accept {
            ballot: new,
            chosen_below: Slot(0),
            entries: vec![(Slot(1), alloc(2, 1))],
        }));
        let (change, reply) = release(a.handle_commit(&Commit {
            ballot: new,
            chosen_below: Slot(2),
            snapshot: None,
        }));
        // Slot 0 holds a vote of another ballot: its value may not be the chosen one.
        let marked: Vec<Slot> = change.put.iter().map(|(s, _)| *s).collect();
        assert_eq!(marked, vec![Slot(1)]);
        assert_eq!(reply.expect("a member").chosen_below, Slot(0));
        let (change, reply) = release(a.handle_commit(&Commit {
            ballot: old,
            chosen_below: Slot(1),
            snapshot: None,
        }));
        assert_eq!(change.put.len(), 1);
        assert_eq!(
            reply.expect("a member").chosen_below,
            Slot(2),
            "slot 1 was marked already"
        );
    }

    #[test]
    fn commit_with_snapshot_installs_it_when_behind() {
        let mut a = acceptor();
        let counters = Counters::from_map([(SequenceName::default_sequence(), 100)].into());
        let snapshot = Snapshot {
            below: Slot(50),
            counters,
        };
        let (change, reply) = release(a.handle_commit(&Commit {
            ballot: ballot(1, 1),
            chosen_below: Slot(60),
            snapshot: Some(snapshot.clone()),
        }));
        assert_eq!(change.compact, Some(snapshot));
        assert_eq!(reply.expect("a member").chosen_below, Slot(50));
        assert_eq!(a.view().compacted_below, Slot(50));
    }

    #[test]
    fn compaction_stops_at_the_chosen_prefix() {
        let mut a = acceptor();
        let b = ballot(1, 1);
        let entries = vec![
            (Slot(0), alloc(1, 1)),
            (Slot(1), alloc(2, 1)),
            (Slot(2), alloc(3, 1)),
        ];
        let _ = release(a.handle_accept(&Accept {
            ballot: b,
            chosen_below: Slot(2),
            entries,
        }));
        let (change, below) = release(a.compact(Slot(10)));
        assert_eq!(below, Slot(2));
        let snapshot = change.compact.expect("a snapshot");
        assert_eq!(snapshot.counters.next_id(&SequenceName::default_sequence()), 3);
        assert_eq!(a.state().log.len(), 1);
        // Accepts for compacted slots are acknowledged and change nothing.
        let again = Accept {
            ballot: b,
            chosen_below: Slot(2),
            entries: vec![(Slot(0), alloc(1, 1))],
        };
        let (change, reply) = release(a.handle_accept(&again));
        assert!(change.is_empty());
        assert_eq!(
            reply,
            AcceptReply::Accepted {
                chosen_below: Slot(2),
                member: Some(ME),
            }
        );
    }

    #[test]
    fn restore_rebuilds_the_chosen_prefix() {
        let mut a = acceptor();
        let b = ballot(1, 1);
        let _ = release(a.handle_accept(&Accept {
            ballot: b,
            chosen_below: Slot(1),
            entries: vec![(Slot(0), alloc(1, 4))],
        }));
        let restored = Acceptor::restore(a.state().clone());
        assert_eq!(restored.view(), a.view());
        assert_eq!(restored.view().chosen_below, Slot(1));
    }

    fn prepare(round: u64, replace: Option<Replace>) -> Prepare {
        Prepare {
            ballot: ballot(round, 1),
            from: Slot(0),
            replace,
        }
    }

    #[test]
    fn a_blank_acceptor_never_votes_and_says_so() {
        let mut a = Acceptor::restore(AcceptorState::blank(ME));
        assert!(!a.voting());
        let (change, reply) = release(a.handle_prepare(&prepare(1, None)));
        assert!(change.is_empty());
        assert_eq!(reply, PrepareReply::NotVoting);
        let accept = Accept {
            ballot: ballot(1, 1),
            chosen_below: Slot(0),
            entries: vec![(Slot(0), alloc(1, 1))],
        };
        let (change, reply) = release(a.handle_accept(&accept));
        assert!(change.is_empty());
        assert_eq!(reply, AcceptReply::NotVoting);
        let commit = Commit {
            ballot: ballot(1, 1),
            chosen_below: Slot(1),
            snapshot: Some(Snapshot::default()),
        };
        let (change, reply) = release(a.handle_commit(&commit));
        assert!(change.is_empty());
        assert_eq!(reply, Err(NotVoting));
    }

    #[test]
    fn only_a_blank_member_joins() {
        let founders = Membership::founding([ME, MemberId(2)]);
        let mut stranger = Acceptor::restore(AcceptorState::blank(MemberId(9)));
        let (change, reply) = release(stranger.handle_join(&Join {
            membership: founders.clone(),
            floor: Counters::default(),
        }));
        assert!(change.is_empty());
        assert_eq!(reply, JoinReply::NotAMember);
        let mut a = Acceptor::restore(AcceptorState::blank(ME));
        let floor = Counters::from_map([(SequenceName::default_sequence(), 5000)].into());
        let (change, reply) = release(a.handle_join(&Join {
            membership: founders.clone(),
            floor,
        }));
        assert_eq!(reply, JoinReply::Joined);
        assert_eq!(change.membership, Some(founders.clone()));
        assert!(a.voting());
        // A founding floor: every promise says IDs start there.
        let (_, reply) = release(a.handle_prepare(&prepare(1, None)));
        let PrepareReply::Promised(promise) = reply else {
            panic!("a member promises")
        };
        assert_eq!(
            promise
                .snapshot
                .counters
                .next_id(&SequenceName::default_sequence()),
            5000
        );
        assert_eq!(promise.snapshot.below, Slot(0));
        let again = Join {
            membership: founders,
            floor: Counters::default(),
        };
        let (change, reply) = release(a.handle_join(&again));
        assert!(change.is_empty());
        assert_eq!(reply, JoinReply::NotBlank, "a member never joins again");
    }

    #[test]
    fn a_prepare_records_a_replacement_with_the_promise_and_reports_it() {
        let mut a = acceptor();
        let replace = Replace {
            retire: MemberId(3),
            admit: MemberId(9),
        };
        let (change, reply) = release(a.handle_prepare(&prepare(2, Some(replace))));
        let membership = change.membership.clone().expect("recorded with the promise");
        assert!(!membership.votes(MemberId(3)) && membership.votes(MemberId(9)));
        assert_eq!(change.promised, Some(ballot(2, 1)));
        let PrepareReply::Promised(promise) = reply else {
            panic!("expected a promise")
        };
        assert_eq!((promise.member, promise.membership), (ME, membership.clone()));
        // A rejected prepare records nothing.
        let other = Replace {
            retire: MemberId(2),
            admit: MemberId(8),
        };
        let (change, _) = release(a.handle_prepare(&prepare(1, Some(other))));
        assert!(change.is_empty());
        // Nobody retires us by a prepare sent to us.
        let me = Replace {
            retire: ME,
            admit: MemberId(7),
        };
        let (change, reply) = release(a.handle_prepare(&prepare(5, Some(me))));
        assert!(change.is_empty());
        assert_eq!(reply, PrepareReply::NotVoting);
    }

    #[test]
    fn a_retired_acceptor_stops_voting() {
        let mut membership = Membership::founding([ME, MemberId(2), MemberId(3)]);
        membership.replace(Replace {
            retire: ME,
            admit: MemberId(9),
        });
        let mut a = Acceptor::restore(AcceptorState::founded(ME, membership));
        assert!(!a.voting());
        assert_eq!(
            release(a.handle_prepare(&prepare(1, None))).1,
            PrepareReply::NotVoting
        );
    }

    #[test]
    fn an_install_makes_a_blank_acceptor_vote_with_the_rebuilt_state() {
        let mut membership = Membership::founding([MemberId(2), MemberId(3), MemberId(4)]);
        membership.replace(Replace {
            retire: MemberId(4),
            admit: ME,
        });
        let counters = Counters::from_map([(SequenceName::default_sequence(), 11)].into());
        let install = Install {
            ballot: ballot(7, 2),
            membership: membership.clone(),
            snapshot: Snapshot {
                below: Slot(3),
                counters,
            },
            entries: vec![(Slot(4), alloc(11, 5)), (Slot(2), alloc(9, 2))],
        };
        let mut a = Acceptor::restore(AcceptorState::blank(ME));
        let (change, reply) = release(a.handle_install(&install));
        assert_eq!(reply, JoinReply::Joined);
        assert_eq!(change.promised, Some(ballot(7, 2)));
        assert_eq!(change.membership, Some(membership));
        // Slot 2 lies in the snapshot: chosen, not a vote.
        let vote = Accepted {
            ballot: ballot(7, 2),
            value: alloc(11, 5),
            chosen: false,
        };
        assert_eq!(change.put, vec![(Slot(4), vote)]);
        assert_eq!(a.view().chosen_below, Slot(3));
        // It fences every ballot below the rebuild's, and votes above it.
        assert!(matches!(
            release(a.handle_prepare(&prepare(6, None))).1,
            PrepareReply::Rejected { .. }
        ));
        assert!(matches!(
            release(a.handle_prepare(&prepare(8, None))).1,
            PrepareReply::Promised(_)
        ));
        // Installed once: a second install changes nothing.
        let (change, reply) = release(a.handle_install(&install));
        assert!(change.is_empty());
        assert_eq!(reply, JoinReply::NotBlank);
    }

    #[test]
    fn a_second_value_for_a_slot_is_refused_as_a_conflict_without_change() {
        let mut a = acceptor();
        let b = ballot(1, 1);
        let accept = |entries| Accept {
            ballot: b,
            chosen_below: Slot(0),
            entries,
        };
        let _ = release(a.handle_accept(&accept(vec![(Slot(0), alloc(1, 1))])));
        let (change, reply) =
            release(a.handle_accept(&accept(vec![(Slot(1), Value::Noop), (Slot(0), alloc(5, 1))])));
        assert!(change.is_empty(), "nothing of a refused accept is taken");
        assert_eq!(reply, AcceptReply::Conflict { slot: Slot(0) });
        let _ = release(a.handle_commit(&Commit {
            ballot: b,
            chosen_below: Slot(1),
            snapshot: None,
        }));
        let higher = Accept {
            ballot: ballot(2, 2),
            chosen_below: Slot(0),
            entries: vec![(Slot(0), Value::Noop)],
        };
        let (change, reply) = release(a.handle_accept(&higher));
        assert!(change.is_empty());
        assert_eq!(
            reply,
            AcceptReply::Conflict { slot: Slot(0) },
            "a chosen slot keeps its value"
        );
    }

    #[test]
    fn a_snapshot_from_a_deposed_leader_is_not_installed() {
        let mut a = acceptor();
        let _ = release(a.handle_prepare(&prepare(5, None)));
        let snapshot = Snapshot {
            below: Slot(50),
            counters: Counters::default(),
        };
        let (change, _) = release(a.handle_commit(&Commit {
            ballot: ballot(4, 1),
            chosen_below: Slot(60),
            snapshot: Some(snapshot),
        }));
        assert!(change.compact.is_none());
        assert_eq!(a.view().compacted_below, Slot(0));
    }

    fn epoch_1(members: &[u128]) -> Configuration {
        Configuration {
            epoch: 1,
            seats: members
                .iter()
                .map(|m| crate::types::Seat {
                    address: format!("http://a{m}"),
                    member: MemberId(*m),
                })
                .collect(),
        }
    }

    /// A member that moves keeps its chosen votes below the new epoch's
    /// start, drops the void tail, and fences every ballot of epoch 0.
    #[test]
    fn a_transition_drops_the_void_tail_and_fences_the_old_epoch() {
        let mut a = acceptor();
        let b = ballot(1, 1);
        let _ = release(a.handle_prepare(&Prepare {
            ballot: b,
            from: Slot(0),
            replace: None,
        }));
        let configuration = epoch_1(&[1, 7]);
        let stop_sign = Value::Reconfigure(configuration.clone());
        let entries = vec![
            (Slot(0), alloc(1, 2)),
            (Slot(1), stop_sign),
            (Slot(2), alloc(9, 1)),
        ];
        let _ = release(a.handle_accept(&Accept {
            ballot: b,
            chosen_below: Slot(0),
            entries,
        }));
        // Slots 0 and 1 (the stop sign) are chosen; 2 is chosen too, but void.
        let _ = release(a.handle_commit(&Commit {
            ballot: b,
            chosen_below: Slot(3),
            snapshot: None,
        }));
        let snapshot = Snapshot {
            below: Slot(2),
            counters: Counters::from_map([(SequenceName::default_sequence(), 3)].into()),
        };
        let (change, reply) = release(a.handle_transition(&Transition {
            configuration: configuration.clone(),
            snapshot: snapshot.clone(),
        }));
        assert_eq!(reply, JoinReply::Joined);
        assert_eq!(change.truncate, Some(Slot(2)));
        assert!(change.compact.is_none(), "it holds the chosen votes below slot 2");
        assert_eq!(
            a.state().log.keys().copied().collect::<Vec<_>>(),
            vec![Slot(0), Slot(1)]
        );
        assert_eq!(a.chosen_snapshot(), snapshot);
        assert_eq!(a.state().promised, Ballot::opening(1));
        assert_eq!(a.state().epoch(), 1);
        // Epoch 0 ballots are rejected with the opening promise.
        let (_, reply) = release(a.handle_prepare(&Prepare {
            ballot: ballot(99, 2),
            from: Slot(0),
            replace: None,
        }));
        assert_eq!(
            reply,
            PrepareReply::Rejected {
                promised: Ballot::opening(1)
            }
        );
        // A second transition into the same epoch changes nothing.
        let (change, reply) = release(a.handle_transition(&Transition {
            configuration,
            snapshot,
        }));
        assert_eq!((change.is_empty(), reply), (true, JoinReply::NotBlank));
        // Restarted from its durable state, it is the same acceptor.
        assert_eq!(
            Acceptor::restore(a.state().clone()).chosen_snapshot(),
            a.chosen_snapshot()
        );
    }

    /// An acceptor refuses ballots of an epoch it has not moved to, and
    /// only a configuration that seats it moves it.
    #[test]
    fn later_epochs_are_refused_until_a_transition_that_seats_this_acceptor() {
        let mut a = acceptor();
        let later = Ballot::in_epoch(1, 1, NodeId(1));
        let (change, reply) = release(a.handle_prepare(&Prepare {
            ballot: later,
            from: Slot(0),
            replace: None,
        }));
        assert_eq!((change.is_empty(), reply), (true, PrepareReply::NotVoting));
        let (_, reply) = release(a.handle_accept(&Accept {
            ballot: later,
            chosen_below: Slot(0),
            entries: vec![(Slot(0), alloc(1, 1))],
        }));
        assert_eq!(reply, AcceptReply::NotVoting);
        let snapshot = Snapshot {
            below: Slot(4),
            counters: Counters::default(),
        };
        let (change, reply) = release(a.handle_transition(&Transition {
            configuration: epoch_1(&[2, 3]),
            snapshot: snapshot.clone(),
        }));
        assert_eq!((change.is_empty(), reply), (true, JoinReply::NotAMember));
        // A blank acceptor seated by the configuration starts voting there.
        let mut blank = Acceptor::restore(AcceptorState::blank(MemberId(7)));
        let (change, reply) = release(blank.handle_transition(&Transition {
            configuration: epoch_1(&[1, 7]),
            snapshot: snapshot.clone(),
        }));
        assert_eq!(reply, JoinReply::Joined);
        assert_eq!(change.compact, Some(snapshot));
        assert!(blank.voting());
        let (_, reply) = release(blank.handle_prepare(&Prepare {
            ballot: later,
            from: Slot(0),
            replace: None,
        }));
        let PrepareReply::Promised(promise) = reply else {
            panic!("a moved acceptor promises in its epoch")
        };
        assert_eq!(promise.snapshot.below, Slot(4));
    }
}
