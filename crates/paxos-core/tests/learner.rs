//! The learner's window: what it ignores stays ignored after the window
//! moves, and votes it must not count are not counted.

use paxos_core::{Accepted, AcceptorId, Allocation, Ballot, Learner, NodeId, SequenceName, Slot, Value};

fn ids(first: u64) -> Value {
    Value::Allocations(vec![Allocation {
        sequence: SequenceName::default_sequence(),
        first,
        count: 1,
    }])
}

fn vote(ballot: Ballot, value: Value) -> Accepted {
    Accepted {
        ballot,
        value,
        chosen: false,
    }
}

fn released(l: &mut Learner) -> Vec<Slot> {
    l.take_ready().into_iter().map(|(slot, _)| slot).collect()
}

/// Far slots are ignored, not kept for later: once the window moves over
/// them they must be reported again.
#[test]
fn a_slot_learned_beyond_the_window_is_not_kept_for_later() {
    let mut l = Learner::new(3, Slot(5), 10);
    assert_eq!(l.learn_chosen(Slot(15), ids(15)), Ok(()));
    for slot in 5..15 {
        assert_eq!(l.learn_chosen(Slot(slot), ids(slot)), Ok(()));
    }
    assert_eq!(released(&mut l), (5..15).map(Slot).collect::<Vec<_>>());
    assert_eq!(l.window_end(), Slot(25));
    assert_eq!(released(&mut l), vec![], "slot 15 was never taken in");
}

/// Votes beyond the window are not counted either: once the window moves,
/// one vote does not complete a majority with votes that were ignored.
#[test]
fn votes_beyond_the_window_are_not_counted_later() {
    let b = Ballot::new(1, NodeId(1));
    let mut l = Learner::new(3, Slot(0), 2);
    for a in 0..2 {
        assert_eq!(l.observe(AcceptorId(a), Slot(2), &vote(b, ids(3))), Ok(()));
    }
    for slot in 0..2 {
        assert_eq!(l.learn_chosen(Slot(slot), ids(slot + 1)), Ok(()));
    }
    assert_eq!(released(&mut l), vec![Slot(0), Slot(1)]);
    assert_eq!(l.window_end(), Slot(4));
    assert_eq!(l.observe(AcceptorId(2), Slot(2), &vote(b, ids(3))), Ok(()));
    assert_eq!(released(&mut l), vec![], "one counted vote is not a majority");
    assert_eq!(l.observe(AcceptorId(0), Slot(2), &vote(b, ids(3))), Ok(()));
    assert_eq!(released(&mut l), vec![Slot(2)]);
}

/// Votes for a released slot are ignored: they cannot conflict with each
/// other, nor with anything released.
#[test]
fn votes_for_released_slots_are_ignored() {
    let b = Ballot::new(1, NodeId(1));
    let mut l = Learner::new(3, Slot(0), 10);
    assert_eq!(l.learn_chosen(Slot(0), ids(1)), Ok(()));
    assert_eq!(released(&mut l), vec![Slot(0)]);
    assert_eq!(l.observe(AcceptorId(0), Slot(0), &vote(b, ids(7))), Ok(()));
    assert_eq!(l.observe(AcceptorId(1), Slot(0), &vote(b, ids(8))), Ok(()));
    assert_eq!(l.next(), Slot(1));
}

/// Votes of another epoch, and from an acceptor index this learner does
/// not have, count for nothing (and do not panic).
#[test]
fn votes_of_other_epochs_or_unknown_acceptors_are_ignored() {
    let mut l = Learner::new(3, Slot(0), 100);
    let later = vote(Ballot::in_epoch(1, 1, NodeId(1)), ids(1));
    for a in 0..3 {
        assert_eq!(l.observe(AcceptorId(a), Slot(0), &later), Ok(()));
    }
    assert_eq!(released(&mut l), vec![], "epoch 1 votes say nothing in epoch 0");
    let b = Ballot::new(1, NodeId(1));
    assert_eq!(l.observe(AcceptorId(3), Slot(0), &vote(b, ids(1))), Ok(()));
    assert_eq!(l.observe(AcceptorId(7), Slot(0), &vote(b, ids(1))), Ok(()));
    assert_eq!(released(&mut l), vec![]);
    // Two known acceptors still make a majority.
    assert_eq!(l.observe(AcceptorId(0), Slot(0), &vote(b, ids(1))), Ok(()));
    assert_eq!(l.observe(AcceptorId(1), Slot(0), &vote(b, ids(1))), Ok(()));
    assert_eq!(released(&mut l), vec![Slot(0)]);
}

/// A learner knows which configuration's acceptors it reads: the driver
/// names it in logs and follows stop signs from it.
#[test]
fn a_learner_reports_its_epoch() {
    assert_eq!(Learner::new(3, Slot(0), 10).epoch(), 0);
    assert_eq!(Learner::in_epoch(2, 3, Slot(9), 10).epoch(), 2);
}
