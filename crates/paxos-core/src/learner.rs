//! The learner: decides which slots are chosen and releases them in order.
//!
//! A slot is known chosen when the leader says so, when an acceptor reports
//! it marked chosen, or when a majority of acceptors report a vote of the
//! same ballot (one ballot never carries two values for one slot).

use std::collections::BTreeMap;

use crate::types::{quorum, Accepted, AcceptorId, Ballot, Slot, Value};

/// Tracks votes and chosen values above the delivery point.
#[derive(Clone, Debug)]
pub struct Learner {
    acceptors: usize,
    /// The next slot to release; everything below was released.
    next: Slot,
    /// Slots beyond `next + window_slots_max` are ignored until the window moves.
    window_slots_max: u64,
    votes: BTreeMap<Slot, Vec<Option<Ballot>>>,
    values: BTreeMap<(Slot, Ballot), Value>,
    chosen: BTreeMap<Slot, Value>,
}

impl Learner {
    pub fn new(acceptors: usize, next: Slot, window_slots_max: u64) -> Learner {
        assert!(acceptors >= 1 && window_slots_max >= 1);
        Learner {
            acceptors,
            next,
            window_slots_max,
            votes: BTreeMap::new(),
            values: BTreeMap::new(),
            chosen: BTreeMap::new(),
        }
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
    pub fn learn_chosen(&mut self, slot: Slot, value: Value) {
        if slot < self.next || slot >= self.window_end() {
            return;
        }
        if let Some(known) = self.chosen.get(&slot) {
            assert_eq!(known, &value, "two different values chosen for slot {slot}");
            return;
        }
        self.chosen.insert(slot, value);
    }

    /// One acceptor's vote for one slot, read from its log.
    pub fn observe(&mut self, from: AcceptorId, slot: Slot, accepted: &Accepted) {
        if accepted.chosen {
            self.learn_chosen(slot, accepted.value.clone());
            return;
        }
        if slot < self.next || slot >= self.window_end() || self.chosen.contains_key(&slot) {
            return;
        }
        let votes = self
            .votes
            .entry(slot)
            .or_insert_with(|| vec![None; self.acceptors]);
        votes[from.0] = Some(accepted.ballot);
        self.values
            .insert((slot, accepted.ballot), accepted.value.clone());
        let same = votes.iter().filter(|v| **v == Some(accepted.ballot)).count();
        if same >= quorum(self.acceptors) {
            self.learn_chosen(slot, accepted.value.clone());
        }
    }

    /// Chosen slots from `next` on without a gap; they are released once.
    pub fn take_ready(&mut self) -> Vec<(Slot, Value)> {
        let mut ready = Vec::new();
        while let Some(value) = self.chosen.remove(&self.next) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    fn vote(round: u64, value: Value) -> Accepted {
        Accepted {
            ballot: Ballot::new(round, NodeId(1)),
            value,
            chosen: false,
        }
    }

    #[test]
    fn a_majority_of_one_ballot_is_chosen_and_released_in_order() {
        let mut l = Learner::new(3, Slot(0), 100);
        l.observe(AcceptorId(0), Slot(1), &vote(1, Value::Noop));
        l.observe(AcceptorId(1), Slot(1), &vote(1, Value::Noop));
        assert!(l.take_ready().is_empty(), "slot 0 is still missing");
        l.observe(AcceptorId(0), Slot(0), &vote(1, Value::Noop));
        l.observe(AcceptorId(1), Slot(0), &vote(2, Value::Noop));
        assert!(l.take_ready().is_empty(), "two ballots are not a majority");
        l.observe(AcceptorId(2), Slot(0), &vote(2, Value::Noop));
        let ready: Vec<Slot> = l.take_ready().into_iter().map(|(s, _)| s).collect();
        assert_eq!(ready, vec![Slot(0), Slot(1)]);
        assert_eq!(l.next(), Slot(2));
    }

    #[test]
    fn a_chosen_mark_or_a_push_is_enough() {
        let mut l = Learner::new(3, Slot(0), 100);
        let mut marked = vote(1, Value::Noop);
        marked.chosen = true;
        l.observe(AcceptorId(2), Slot(0), &marked);
        l.learn_chosen(Slot(1), Value::Noop);
        assert_eq!(l.take_ready().len(), 2);
    }

    #[test]
    fn released_and_far_slots_are_ignored() {
        let mut l = Learner::new(3, Slot(5), 10);
        l.learn_chosen(Slot(4), Value::Noop);
        l.learn_chosen(Slot(15), Value::Noop);
        assert!(l.take_ready().is_empty());
        assert_eq!(l.next(), Slot(5));
    }

    fn alloc_value(first: u64) -> Value {
        Value::Allocations(vec![crate::types::Allocation {
            sequence: crate::types::SequenceName::default_sequence(),
            first,
            count: 1,
        }])
    }

    /// `POST /v1/chosen` listing slot 50 twice with two values used to stop
    /// the learner on an `assert_eq!`.
    #[test]
    fn a_second_value_chosen_for_a_slot_is_refused_and_the_first_kept() {
        let mut l = Learner::new(3, Slot(50), 100);
        let _ = l.learn_chosen(Slot(50), alloc_value(1));
        let _ = l.learn_chosen(Slot(50), alloc_value(2));
        let mut marked = vote(1, alloc_value(3));
        marked.chosen = true;
        let _ = l.observe(AcceptorId(0), Slot(50), &marked);
        assert_eq!(l.take_ready(), vec![(Slot(50), alloc_value(1))]);
    }

    mod arbitrary {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Push { slot: u64, value: u64 },
            Vote { from: usize, slot: u64, round: u64, value: u64, chosen: bool },
            Take,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..24u64, 0..3u64).prop_map(|(slot, value)| Op::Push { slot, value }),
                (0..3usize, 0..24u64, 1..4u64, 0..3u64, any::<bool>()).prop_map(
                    |(from, slot, round, value, chosen)| Op::Vote { from, slot, round, value, chosen }
                ),
                Just(Op::Take),
            ]
        }

        proptest! {
            #[test]
            fn arbitrary_reports_never_panic_and_release_in_order(ops in vec(op(), 0..200)) {
                let mut l = Learner::new(3, Slot(0), 8);
                let mut released: Vec<Value> = Vec::new();
                for op in ops.into_iter().chain([Op::Take]) {
                    match op {
                        Op::Push { slot, value } => {
                            let _ = l.learn_chosen(Slot(slot), alloc_value(value));
                        }
                        Op::Vote { from, slot, round, value, chosen } => {
                            let accepted = Accepted {
                                ballot: Ballot::new(round, NodeId(1)),
                                value: alloc_value(value),
                                chosen,
                            };
                            let _ = l.observe(AcceptorId(from), Slot(slot), &accepted);
                        }
                        Op::Take => {
                            for (slot, value) in l.take_ready() {
                                prop_assert_eq!(slot.0, released.len() as u64, "in order, no gap");
                                released.push(value);
                            }
                        }
                    }
                    prop_assert_eq!(l.next().0, released.len() as u64);
                }
            }
        }
    }
}
