//! Acceptor edges seen through the public API: what a repeated or
//! conflicting accept writes, when a commit writes nothing, and what a
//! founding floor promises.

use paxos_core::{
    Accept, AcceptReply, Accepted, Acceptor, AcceptorState, Allocation, Ballot, Change, Commit, Counters,
    Join, JoinReply, MemberId, Membership, NodeId, Persisted, Prepare, PrepareReply, SequenceName, Slot,
    Snapshot, Step, Value,
};

const ME: MemberId = MemberId(1);

fn ballot(round: u64) -> Ballot {
    Ballot::new(round, NodeId(1))
}

fn ids(first: u64) -> Value {
    Value::Allocations(vec![Allocation {
        sequence: SequenceName::default_sequence(),
        first,
        count: 2,
    }])
}

fn membership() -> Membership {
    Membership::founding([ME, MemberId(2), MemberId(3)])
}

fn acceptor() -> Acceptor {
    Acceptor::restore(AcceptorState::founded(ME, membership()))
}

fn release<R>(step: Step<R>) -> (Change, R) {
    let change = step.change().clone();
    (change, step.into_reply(Persisted::after_durable_write()))
}

fn accept(round: u64, chosen_below: u64, entries: &[(u64, Value)]) -> Accept {
    Accept {
        ballot: ballot(round),
        chosen_below: Slot(chosen_below),
        entries: entries.iter().map(|(s, v)| (Slot(*s), v.clone())).collect(),
    }
}

fn accepted_below(reply: &AcceptReply) -> Option<Slot> {
    match reply {
        AcceptReply::Accepted { chosen_below, .. } => Some(*chosen_below),
        _ => None,
    }
}

/// A leader resends an accept it got no answer to: the second copy is
/// acknowledged and writes nothing.
#[test]
fn a_repeated_accept_is_acknowledged_without_a_write() {
    let mut a = acceptor();
    let (change, _) = release(a.handle_accept(&accept(1, 0, &[(0, ids(1))])));
    assert_eq!(change.put.len(), 1);
    let (change, reply) = release(a.handle_accept(&accept(1, 0, &[(0, ids(1))])));
    assert!(change.is_empty(), "nothing to persist: {change:?}");
    assert_eq!(accepted_below(&reply), Some(Slot(0)));
}

/// One ballot never carries two values for one slot.
#[test]
fn a_second_value_under_the_same_ballot_is_a_conflict() {
    let mut a = acceptor();
    let _ = release(a.handle_accept(&accept(1, 0, &[(0, ids(1))])));
    let (change, reply) = release(a.handle_accept(&accept(1, 0, &[(0, ids(5))])));
    assert_eq!(reply, AcceptReply::Conflict { slot: Slot(0) });
    assert!(change.is_empty());
}

/// A vote not known chosen is replaced by a higher ballot's value: that is
/// how a new leader's recovery overrides an old leader's proposal.
#[test]
fn a_higher_ballot_replaces_a_vote_not_known_chosen() {
    let mut a = acceptor();
    let _ = release(a.handle_accept(&accept(1, 0, &[(0, ids(1))])));
    let (change, reply) = release(a.handle_accept(&accept(2, 0, &[(0, ids(5))])));
    assert_eq!(accepted_below(&reply), Some(Slot(0)));
    let vote = Accepted {
        ballot: ballot(2),
        value: ids(5),
        chosen: false,
    };
    assert_eq!(change.put, vec![(Slot(0), vote.clone())]);
    assert_eq!(a.state().log.get(&Slot(0)), Some(&vote));
}

/// Once a slot is marked chosen its value is final: a later ballot
/// re-proposing it is acknowledged, another value is refused.
#[test]
fn a_chosen_slot_takes_its_value_again_and_refuses_any_other() {
    let mut a = acceptor();
    let _ = release(a.handle_accept(&accept(1, 1, &[(0, ids(1))])));
    assert_eq!(a.chosen_snapshot().below, Slot(1), "marked chosen");

    let (change, reply) = release(a.handle_accept(&accept(2, 1, &[(0, ids(1))])));
    assert_eq!(accepted_below(&reply), Some(Slot(1)));
    assert_eq!(change.put, vec![], "the chosen mark stays as it is");

    let (change, reply) = release(a.handle_accept(&accept(3, 1, &[(0, ids(5))])));
    assert_eq!(reply, AcceptReply::Conflict { slot: Slot(0) });
    assert!(change.is_empty());
    assert!(a.state().log[&Slot(0)].chosen);
    assert_eq!(a.state().log[&Slot(0)].value, ids(1));
}

/// A heartbeat of the promised leader that marks nothing new writes
/// nothing: heartbeats come every 50 ms and each write is an fsync.
#[test]
fn a_heartbeat_at_the_promised_ballot_with_nothing_new_writes_nothing() {
    let mut a = acceptor();
    let prepare = Prepare {
        ballot: ballot(2),
        from: Slot(0),
        replace: None,
    };
    let _ = release(a.handle_prepare(&prepare));
    let commit = Commit {
        ballot: ballot(2),
        chosen_below: Slot(0),
        snapshot: None,
    };
    let (change, reply) = release(a.handle_commit(&commit));
    assert!(change.is_empty(), "{change:?}");
    assert_eq!(reply.map(|r| r.promised), Ok(ballot(2)));
}

/// A snapshot at the acceptor's own chosen point adds nothing and is not
/// written again.
#[test]
fn a_snapshot_at_the_acceptors_chosen_point_is_not_installed_again() {
    let mut a = acceptor();
    let _ = release(a.handle_accept(&accept(1, 1, &[(0, ids(1))])));
    let commit = Commit {
        ballot: ballot(1),
        chosen_below: Slot(1),
        snapshot: Some(a.chosen_snapshot()),
    };
    let (change, _) = release(a.handle_commit(&commit));
    assert_eq!(change.compact, None);
    assert!(a.state().log.contains_key(&Slot(0)), "the vote is kept");
}

/// A cluster re-created with a floor promises it from slot 0 on, so that
/// the first leader allocates above the IDs the lost cluster handed out.
#[test]
fn a_founding_floor_is_in_every_promise() {
    let floor = Counters::from_map([(SequenceName::default_sequence(), 5000)].into());
    let mut a = Acceptor::restore(AcceptorState::blank(ME));
    let join = Join {
        membership: membership(),
        floor: floor.clone(),
    };
    let (_, reply) = release(a.handle_join(&join));
    assert_eq!(reply, JoinReply::Joined);
    let prepare = Prepare {
        ballot: ballot(1),
        from: Slot(0),
        replace: None,
    };
    let (_, reply) = release(a.handle_prepare(&prepare));
    let PrepareReply::Promised(promise) = reply else {
        panic!("not promised: {reply:?}")
    };
    assert_eq!(
        promise.snapshot,
        Snapshot {
            below: Slot(0),
            counters: floor
        }
    );
}

/// An acceptor that holds the stop sign marked chosen but not every slot
/// below it (its vote there is of an older ballot) must fold in the
/// transition's snapshot: keeping its log would lose the chosen point at
/// the next restart.
#[test]
fn a_transition_folds_in_the_snapshot_when_a_slot_below_the_stop_sign_is_not_marked() {
    use paxos_core::Transition;
    let next = epoch_1_with_me();
    let mut a = acceptor();
    let _ = release(a.handle_accept(&accept(1, 0, &[(0, ids(1))])));
    let stop = Value::Reconfigure(next.clone());
    let _ = release(a.handle_accept(&accept(2, 2, &[(1, stop)])));
    assert!(a.state().log[&Slot(1)].chosen, "the stop sign is marked");
    assert_eq!(a.chosen_snapshot().below, Slot(0), "slot 0 is not");

    let snapshot = Snapshot {
        below: Slot(2),
        counters: Counters::from_map([(SequenceName::default_sequence(), 3)].into()),
    };
    let transition = Transition {
        configuration: next,
        snapshot: snapshot.clone(),
    };
    let (change, reply) = release(a.handle_transition(&transition));
    assert_eq!(reply, JoinReply::Joined);
    assert_eq!(change.compact, Some(snapshot.clone()));
    assert_eq!(a.chosen_snapshot(), snapshot);
    let restarted = Acceptor::restore(a.state().clone());
    assert_eq!(
        restarted.chosen_snapshot(),
        snapshot,
        "the chosen point survives a restart"
    );
}

/// The leader's chosen tail, accepted just before the transition (as the
/// acceptor service does), lets a member that voted every slot but had no
/// chosen mark yet keep its log: learners still read the ended epoch's
/// slots from it. Without the tail it folds them into the snapshot, and
/// when every member does, slots no learner read yet are gone.
#[test]
fn the_leaders_tail_lets_a_member_keep_its_log_through_a_transition() {
    use paxos_core::Transition;
    let next = epoch_1_with_me();
    let stop = Value::Reconfigure(next.clone());
    let votes = [(0, ids(1)), (1, stop)];
    let snapshot = Snapshot {
        below: Slot(2),
        counters: Counters::from_map([(SequenceName::default_sequence(), 3)].into()),
    };
    let transition = Transition {
        configuration: next,
        snapshot: snapshot.clone(),
    };
    for with_tail in [false, true] {
        let mut a = acceptor();
        let _ = release(a.handle_accept(&accept(2, 0, &votes)));
        assert_eq!(a.chosen_snapshot().below, Slot(0), "nothing is marked chosen yet");
        if with_tail {
            let (_, reply) = release(a.handle_accept(&accept(2, 2, &votes)));
            assert!(matches!(reply, AcceptReply::Accepted { .. }), "{reply:?}");
        }
        let (change, reply) = release(a.handle_transition(&transition));
        assert_eq!(reply, JoinReply::Joined);
        assert_eq!(a.chosen_snapshot(), snapshot);
        if with_tail {
            assert_eq!(change.compact, None, "the log is kept");
            assert!(a.state().log[&Slot(0)].chosen, "slot 0 is held, marked chosen");
            let restarted = Acceptor::restore(a.state().clone());
            assert_eq!(restarted.chosen_snapshot(), snapshot, "and survives a restart");
        } else {
            assert_eq!(change.compact, Some(snapshot.clone()), "folded without the tail");
            assert!(a.state().log.is_empty());
        }
    }
}

/// Epoch 1: this acceptor and a member 4.
fn epoch_1_with_me() -> paxos_core::Configuration {
    paxos_core::Configuration {
        epoch: 1,
        seats: [ME, MemberId(4)]
            .into_iter()
            .enumerate()
            .map(|(i, member)| paxos_core::Seat {
                address: format!("http://a{i}"),
                member,
            })
            .collect(),
    }
}
