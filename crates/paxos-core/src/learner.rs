//! The learner: decides which slots are chosen and releases them in order.
//!
//! A slot is known chosen when the leader says so, when an acceptor reports
//! it marked chosen, or when a majority of acceptors report a vote of the
//! same ballot (one ballot never carries two values for one slot).
//!
//! Everything it is told comes from the network, so a report that
//! contradicts an earlier one (a second value chosen for a slot, a second
//! value for one slot and ballot) is refused and returned as a [`Conflict`]:
//! the learner keeps the first value and goes on. Only a faulty or forged
//! peer, or a broken agreement, can cause one; the caller logs and counts it.

// A `Conflict` carries both values (a keyed value is a large one); it is
// returned only on a forged or faulty report, never on the hot path.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::types::{quorum, Accepted, AcceptorId, Ballot, Configuration, MemberId, Slot, Value};

/// A report the learner refused because it contradicts one it already
/// took: `kept` stays, `refused` is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub slot: Slot,
    /// What was refused: a value reported chosen, or a vote.
    pub kind: ConflictKind,
    pub kept: Value,
    pub refused: Value,
}

/// Which kind of report a [`Conflict`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    /// A second value reported chosen (a push or a chosen mark) for a slot
    /// that already holds another.
    Chosen,
    /// A vote whose value differs from another acceptor's vote of the same
    /// ballot for the same slot.
    Vote { ballot: Ballot },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ConflictKind::Chosen => write!(
                f,
                "two different values reported chosen for slot {}: kept {:?}, refused {:?}",
                self.slot, self.kept, self.refused
            ),
            ConflictKind::Vote { ballot } => write!(
                f,
                "two different values voted for slot {} under ballot {ballot:?}: kept {:?}, refused {:?}",
                self.slot, self.kept, self.refused
            ),
        }
    }
}

impl std::error::Error for Conflict {}

/// Tracks votes and chosen values above the delivery point.
#[derive(Clone, Debug)]
pub struct Learner {
    /// The configuration whose acceptors it reads: votes of other epochs
    /// say nothing about this one's slots.
    epoch: u64,
    acceptors: usize,
    /// The next slot to release; everything below was released.
    next: Slot,
    /// Slots beyond `next + window_slots_max` are ignored until the window moves.
    window_slots_max: u64,
    votes: BTreeMap<Slot, Vec<Option<Ballot>>>,
    /// Who answers at each acceptor index, where it said
    /// ([`Learner::identify`]): votes count once per member.
    members: Vec<Option<MemberId>>,
    values: BTreeMap<(Slot, Ballot), Value>,
    chosen: BTreeMap<Slot, Value>,
    /// Set once it released a stop sign: it releases nothing more, and the
    /// caller goes on with a learner of the configuration named.
    ended: Option<Configuration>,
}

impl Learner {
    pub fn new(acceptors: usize, next: Slot, window_slots_max: u64) -> Learner {
        Learner::in_epoch(0, acceptors, next, window_slots_max)
    }

    /// A learner of `epoch`, whose acceptors are `acceptors` many.
    pub fn in_epoch(epoch: u64, acceptors: usize, next: Slot, window_slots_max: u64) -> Learner {
        assert!(acceptors >= 1 && window_slots_max >= 1);
        Learner {
            epoch,
            ended: None,
            acceptors,
            next,
            window_slots_max,
            votes: BTreeMap::new(),
            members: vec![None; acceptors],
            values: BTreeMap::new(),
            chosen: BTreeMap::new(),
        }
    }

    /// `member` answers at `from`. Votes count once per member, so one
    /// acceptor reached at two addresses is one vote; a new member at an
    /// index (a lost disk) brings none of the old one's votes.
    pub fn identify(&mut self, from: AcceptorId, member: MemberId) {
        let Some(known) = self.members.get_mut(from.0) else {
            return;
        };
        if known.replace(member).is_some_and(|before| before != member) {
            for votes in self.votes.values_mut() {
                votes[from.0] = None;
            }
        }
    }

    /// The configuration a released stop sign named: this learner is done,
    /// and one of that epoch goes on from [`Learner::next`].
    pub fn ended(&self) -> Option<&Configuration> {
        self.ended.as_ref()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The first slot not yet released.
    pub fn next(&self) -> Slot {
        self.next
    }

    /// The highest slot this learner will take in now.
    pub fn window_end(&self) -> Slot {
        Slot(self.next.0.saturating_add(self.window_slots_max))
    }

    /// A value known chosen (leader push, or an acceptor's chosen mark).
    ///
    /// Released slots and slots beyond the window are ignored. A slot that
    /// already holds a different chosen value keeps it; the new one is
    /// refused and returned as a [`Conflict`].
    pub fn learn_chosen(&mut self, slot: Slot, value: Value) -> Result<(), Conflict> {
        if slot < self.next || slot >= self.window_end() {
            return Ok(());
        }
        match self.chosen.get(&slot) {
            Some(known) if *known == value => Ok(()),
            Some(known) => Err(Conflict {
                slot,
                kind: ConflictKind::Chosen,
                kept: known.clone(),
                refused: value,
            }),
            None => {
                self.chosen.insert(slot, value);
                Ok(())
            }
        }
    }

    /// One acceptor's vote for one slot, read from its log.
    ///
    /// A chosen mark that contradicts the value already known chosen, or a
    /// vote whose value contradicts another acceptor's vote of the same
    /// ballot, is refused and returned as a [`Conflict`]. Votes for a slot
    /// already known chosen are ignored (an older ballot may hold another
    /// value).
    ///
    /// Votes under a ballot of another epoch are ignored: above a stop
    /// sign, an acceptor that has not moved yet may hold void votes (even
    /// chosen ones) of the epoch that ended.
    pub fn observe(&mut self, from: AcceptorId, slot: Slot, accepted: &Accepted) -> Result<(), Conflict> {
        if accepted.ballot.epoch != self.epoch || from.0 >= self.acceptors {
            return Ok(());
        }
        if accepted.chosen {
            return self.learn_chosen(slot, accepted.value.clone());
        }
        if slot < self.next || slot >= self.window_end() || self.chosen.contains_key(&slot) {
            return Ok(());
        }
        // One ballot never carries two values for one slot: a vote saying
        // otherwise is refused, and the value first reported is kept.
        if let Some(known) = self.values.get(&(slot, accepted.ballot)) {
            if *known != accepted.value {
                return Err(Conflict {
                    slot,
                    kind: ConflictKind::Vote {
                        ballot: accepted.ballot,
                    },
                    kept: known.clone(),
                    refused: accepted.value.clone(),
                });
            }
        }
        let votes = self
            .votes
            .entry(slot)
            .or_insert_with(|| vec![None; self.acceptors]);
        votes[from.0] = Some(accepted.ballot);
        let same = voters(&self.members, votes, accepted.ballot);
        self.values
            .entry((slot, accepted.ballot))
            .or_insert_with(|| accepted.value.clone());
        if same >= quorum(self.acceptors) {
            return self.learn_chosen(slot, accepted.value.clone());
        }
        Ok(())
    }

    /// Chosen slots from `next` on without a gap; they are released once.
    /// A stop sign is the last slot released: see [`Learner::ended`].
    pub fn take_ready(&mut self) -> Vec<(Slot, Value)> {
        let mut ready = Vec::new();
        while self.ended.is_none() {
            let Some(value) = self.chosen.remove(&self.next) else {
                break;
            };
            self.ended = value.reconfiguration().cloned();
            ready.push((self.next, value));
            self.next = self.next.next();
        }
        if !ready.is_empty() {
            self.votes = self.votes.split_off(&self.next);
            self.values = self.values.split_off(&(self.next, Ballot::ZERO));
        }
        ready
    }
}

/// How many distinct members voted `ballot` among `votes`, indexed like
/// `members` (an index that never said who it is counts as one of its own).
fn voters(members: &[Option<MemberId>], votes: &[Option<Ballot>], ballot: Ballot) -> usize {
    let mut distinct = BTreeSet::new();
    let mut anonymous = 0;
    for (member, _) in members.iter().zip(votes).filter(|(_, v)| **v == Some(ballot)) {
        match member {
            Some(member) => {
                distinct.insert(*member);
            }
            None => anonymous += 1,
        }
    }
    distinct.len() + anonymous
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Allocation, NodeId, SequenceName};

    fn vote(round: u64, value: Value) -> Accepted {
        Accepted {
            ballot: Ballot::new(round, NodeId(1)),
            value,
            chosen: false,
        }
    }

    fn marked(round: u64, value: Value) -> Accepted {
        Accepted {
            chosen: true,
            ..vote(round, value)
        }
    }

    fn alloc_value(first: u64) -> Value {
        Value::Allocations(vec![Allocation {
            sequence: SequenceName::default_sequence(),
            first,
            count: 1,
        }])
    }

    #[test]
    fn a_majority_of_one_ballot_is_chosen_and_released_in_order() {
        let mut l = Learner::new(3, Slot(0), 100);
        assert_eq!(l.observe(AcceptorId(0), Slot(1), &vote(1, Value::Noop)), Ok(()));
        assert_eq!(l.observe(AcceptorId(1), Slot(1), &vote(1, Value::Noop)), Ok(()));
        assert!(l.take_ready().is_empty(), "slot 0 is still missing");
        assert_eq!(l.observe(AcceptorId(0), Slot(0), &vote(1, Value::Noop)), Ok(()));
        assert_eq!(l.observe(AcceptorId(1), Slot(0), &vote(2, Value::Noop)), Ok(()));
        assert!(l.take_ready().is_empty(), "two ballots are not a majority");
        assert_eq!(l.observe(AcceptorId(2), Slot(0), &vote(2, Value::Noop)), Ok(()));
        let ready: Vec<Slot> = l.take_ready().into_iter().map(|(s, _)| s).collect();
        assert_eq!(ready, vec![Slot(0), Slot(1)]);
        assert_eq!(l.next(), Slot(2));
    }

    /// One acceptor read at two URLs is one vote; a new identity at an
    /// index (a lost disk) does not keep the old one's votes.
    #[test]
    fn votes_count_once_per_member_and_a_new_identity_drops_the_old_votes() {
        let mut l = Learner::new(3, Slot(0), 100);
        l.identify(AcceptorId(0), MemberId(7));
        l.identify(AcceptorId(1), MemberId(7));
        assert_eq!(l.observe(AcceptorId(0), Slot(0), &vote(1, Value::Noop)), Ok(()));
        assert_eq!(l.observe(AcceptorId(1), Slot(0), &vote(1, Value::Noop)), Ok(()));
        assert!(
            l.take_ready().is_empty(),
            "one member at two URLs is not a majority"
        );

        l.identify(AcceptorId(2), MemberId(8));
        assert_eq!(l.observe(AcceptorId(2), Slot(1), &vote(1, Value::Noop)), Ok(()));
        l.identify(AcceptorId(2), MemberId(9));
        assert_eq!(l.observe(AcceptorId(0), Slot(1), &vote(1, Value::Noop)), Ok(()));
        assert!(l.take_ready().is_empty(), "member 8's vote left with it");

        assert_eq!(l.observe(AcceptorId(2), Slot(0), &vote(1, Value::Noop)), Ok(()));
        assert_eq!(l.take_ready().len(), 1, "members 7 and 9 choose slot 0");
    }

    #[test]
    fn a_chosen_mark_or_a_push_is_enough() {
        let mut l = Learner::new(3, Slot(0), 100);
        assert_eq!(l.observe(AcceptorId(2), Slot(0), &marked(1, Value::Noop)), Ok(()));
        assert_eq!(l.learn_chosen(Slot(1), Value::Noop), Ok(()));
        assert_eq!(l.take_ready().len(), 2);
    }

    #[test]
    fn a_stop_sign_is_released_last_and_votes_of_other_epochs_are_ignored() {
        use crate::types::{Configuration, MemberId, Seat};
        let next = Configuration {
            epoch: 1,
            seats: vec![Seat {
                address: "http://a".into(),
                member: MemberId(1),
            }],
        };
        let mut l = Learner::new(3, Slot(0), 100);
        assert_eq!(l.learn_chosen(Slot(0), alloc_value(1)), Ok(()));
        assert_eq!(l.learn_chosen(Slot(1), Value::Reconfigure(next.clone())), Ok(()));
        // A void slot of epoch 0, chosen after the stop sign.
        assert_eq!(l.learn_chosen(Slot(2), alloc_value(5)), Ok(()));
        let ready: Vec<Slot> = l.take_ready().into_iter().map(|(s, _)| s).collect();
        assert_eq!(ready, vec![Slot(0), Slot(1)], "nothing after the stop sign");
        assert_eq!(l.ended(), Some(&next));
        assert!(l.take_ready().is_empty());

        let mut l = Learner::in_epoch(1, 1, Slot(2), 100);
        let old = marked(7, alloc_value(5));
        assert_eq!(l.observe(AcceptorId(0), Slot(2), &old), Ok(()));
        assert!(
            l.take_ready().is_empty(),
            "an epoch-0 chosen mark is void in epoch 1"
        );
        let new = Accepted {
            ballot: Ballot::in_epoch(1, 1, NodeId(1)),
            ..marked(1, alloc_value(9))
        };
        assert_eq!(l.observe(AcceptorId(0), Slot(2), &new), Ok(()));
        assert_eq!(l.take_ready(), vec![(Slot(2), alloc_value(9))]);
    }

    #[test]
    fn released_and_far_slots_are_ignored() {
        let mut l = Learner::new(3, Slot(5), 10);
        assert_eq!(l.learn_chosen(Slot(4), Value::Noop), Ok(()));
        assert_eq!(l.learn_chosen(Slot(15), Value::Noop), Ok(()));
        assert!(l.take_ready().is_empty());
        assert_eq!(l.next(), Slot(5));
    }

    /// `POST /v1/chosen` listing slot 50 twice with two values used to stop
    /// the learner on an `assert_eq!`.
    #[test]
    fn a_second_value_chosen_for_a_slot_is_refused_and_the_first_kept() {
        let mut l = Learner::new(3, Slot(50), 100);
        let _ = l.learn_chosen(Slot(50), alloc_value(1));
        let _ = l.learn_chosen(Slot(50), alloc_value(2));
        let _ = l.observe(AcceptorId(0), Slot(50), &marked(1, alloc_value(3)));
        assert_eq!(l.take_ready(), vec![(Slot(50), alloc_value(1))]);
    }

    #[test]
    fn conflicts_are_returned_as_values() {
        let mut l = Learner::new(3, Slot(50), 100);
        assert_eq!(l.learn_chosen(Slot(50), alloc_value(1)), Ok(()));
        assert_eq!(
            l.learn_chosen(Slot(50), alloc_value(1)),
            Ok(()),
            "a repeat is no conflict"
        );
        assert_eq!(
            l.learn_chosen(Slot(50), alloc_value(2)),
            Err(Conflict {
                slot: Slot(50),
                kind: ConflictKind::Chosen,
                kept: alloc_value(1),
                refused: alloc_value(2),
            })
        );
        let from_mark = l.observe(AcceptorId(1), Slot(50), &marked(4, alloc_value(3)));
        assert_eq!(
            from_mark.map_err(|c| (c.kind, c.refused)),
            Err((ConflictKind::Chosen, alloc_value(3)))
        );
        let conflict = l.learn_chosen(Slot(50), Value::Noop).expect_err("a conflict");
        assert!(conflict.to_string().contains("slot 50"), "{conflict}");
        assert_eq!(l.take_ready(), vec![(Slot(50), alloc_value(1))]);
    }

    /// One ballot never carries two values for one slot: a vote saying
    /// otherwise is refused and cannot make up a majority.
    #[test]
    fn a_second_value_for_one_ballot_is_refused_and_not_counted() {
        let mut l = Learner::new(3, Slot(0), 100);
        assert_eq!(
            l.observe(AcceptorId(0), Slot(0), &vote(1, alloc_value(1))),
            Ok(())
        );
        let conflict = l
            .observe(AcceptorId(1), Slot(0), &vote(1, alloc_value(2)))
            .expect_err("a conflict");
        assert_eq!(
            conflict.kind,
            ConflictKind::Vote {
                ballot: Ballot::new(1, NodeId(1))
            }
        );
        assert_eq!(
            (conflict.kept, conflict.refused),
            (alloc_value(1), alloc_value(2))
        );
        assert!(
            l.observe(AcceptorId(2), Slot(0), &vote(1, alloc_value(2)))
                .is_err(),
            "the refused value gains no vote"
        );
        assert!(l.take_ready().is_empty(), "one vote is not a majority");
        assert_eq!(
            l.observe(AcceptorId(2), Slot(0), &vote(1, alloc_value(1))),
            Ok(())
        );
        assert_eq!(l.take_ready(), vec![(Slot(0), alloc_value(1))]);
    }

    /// Votes for a slot already known chosen are ignored: an older ballot
    /// may well hold another value.
    #[test]
    fn votes_for_a_chosen_slot_are_ignored() {
        let mut l = Learner::new(3, Slot(0), 100);
        assert_eq!(l.learn_chosen(Slot(0), alloc_value(1)), Ok(()));
        for a in 0..3 {
            assert_eq!(
                l.observe(AcceptorId(a), Slot(0), &vote(1, alloc_value(9))),
                Ok(())
            );
        }
        assert_eq!(l.take_ready(), vec![(Slot(0), alloc_value(1))]);
    }

    mod arbitrary {
        use std::collections::{BTreeMap, BTreeSet};

        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Push {
                slot: u64,
                value: u64,
            },
            Vote {
                from: usize,
                slot: u64,
                round: u64,
                value: u64,
                chosen: bool,
            },
            Take,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..24u64, 0..3u64).prop_map(|(slot, value)| Op::Push { slot, value }),
                (0..3usize, 0..24u64, 1..4u64, 0..3u64, any::<bool>()).prop_map(
                    |(from, slot, round, value, chosen)| Op::Vote {
                        from,
                        slot,
                        round,
                        value,
                        chosen
                    }
                ),
                Just(Op::Take),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// Arbitrary pushes and log entries, as a faulty or forged peer
            /// may send: no panic; slots are released in order, each once,
            /// without a gap; each released value was reported for its
            /// slot; a conflict keeps what is then released.
            #[test]
            fn arbitrary_reports_never_panic_and_release_in_order(ops in vec(op(), 0..200)) {
                let mut l = Learner::new(3, Slot(0), 8);
                let mut released: Vec<Value> = Vec::new();
                let mut reported: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
                let mut kept: BTreeMap<u64, Value> = BTreeMap::new();
                for op in ops.into_iter().chain([Op::Take]) {
                    let outcome = match op {
                        Op::Push { slot, value } => {
                            reported.entry(slot).or_default().insert(value);
                            l.learn_chosen(Slot(slot), alloc_value(value))
                        }
                        Op::Vote { from, slot, round, value, chosen } => {
                            reported.entry(slot).or_default().insert(value);
                            let accepted = Accepted {
                                ballot: Ballot::new(round, NodeId(1)),
                                value: alloc_value(value),
                                chosen,
                            };
                            l.observe(AcceptorId(from), Slot(slot), &accepted)
                        }
                        Op::Take => {
                            for (slot, value) in l.take_ready() {
                                prop_assert_eq!(slot.0, released.len() as u64, "in order, no gap");
                                let first = value.allocations()[0].first;
                                prop_assert!(reported[&slot.0].contains(&first), "{} was never reported", first);
                                if let Some(kept) = kept.get(&slot.0) {
                                    prop_assert_eq!(kept, &value, "a conflict keeps the first value");
                                }
                                released.push(value);
                            }
                            Ok(())
                        }
                    };
                    if let Err(conflict) = outcome {
                        prop_assert_ne!(&conflict.kept, &conflict.refused);
                        prop_assert!(conflict.slot >= l.next(), "released slots are ignored");
                        if conflict.kind == ConflictKind::Chosen {
                            kept.insert(conflict.slot.0, conflict.kept);
                        }
                    }
                    prop_assert_eq!(l.next().0, released.len() as u64);
                }
            }
        }
    }
}
