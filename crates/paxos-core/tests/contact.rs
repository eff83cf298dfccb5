//! `LeaderContact`: which leader an acceptor's status names. Each rule is
//! checked against the replies of a real `Acceptor`, as a driver gets them,
//! and a property checks the whole against the rules the acceptor driver
//! and the simulation applied before the core decided them.

use paxos_core::{
    Accept, AcceptReply, Acceptor, AcceptorState, Allocation, Ballot, Commit, CommitReply, Configuration,
    Heard, JoinReply, LeaderContact, MemberId, Membership, NodeId, NotVoting, Persisted, Prepare,
    PrepareReply, Seat, SequenceName, Slot, Snapshot, Step, Transition, Value,
};
use proptest::collection::vec;
use proptest::prelude::*;

const ME: MemberId = MemberId(1);

fn ballot(round: u64, node: u32) -> Ballot {
    Ballot::new(round, NodeId(node))
}

fn acceptor() -> Acceptor {
    let membership = Membership::founding([ME, MemberId(2), MemberId(3)]);
    Acceptor::restore(AcceptorState::founded(ME, membership))
}

fn reply<R>(step: Step<R>) -> R {
    step.into_reply(Persisted::after_durable_write())
}

fn ids(first: u64) -> Value {
    Value::Allocations(vec![Allocation {
        sequence: SequenceName::default_sequence(),
        first,
        count: 1,
    }])
}

fn accept(b: Ballot, slot: u64, first: u64) -> Accept {
    Accept {
        ballot: b,
        chosen_below: Slot(0),
        entries: vec![(Slot(slot), ids(first))],
    }
}

fn commit(b: Ballot) -> Commit {
    Commit {
        ballot: b,
        chosen_below: Slot(0),
        snapshot: None,
    }
}

fn prepare(a: &mut Acceptor, b: Ballot) {
    let promised = reply(a.handle_prepare(&Prepare {
        ballot: b,
        from: Slot(0),
        replace: None,
    }));
    assert!(matches!(promised, PrepareReply::Promised(_)), "{promised:?}");
}

/// Feeds `accept` to the acceptor and the reply to `contact`, as a driver does.
fn deliver_accept(
    a: &mut Acceptor,
    contact: &mut LeaderContact<&'static str>,
    accept: &Accept,
    at_ms: u64,
    leader: &'static str,
) -> AcceptReply {
    let answer = reply(a.handle_accept(accept));
    contact.accepted(accept, &answer, at_ms, leader);
    answer
}

fn deliver_commit(
    a: &mut Acceptor,
    contact: &mut LeaderContact<&'static str>,
    commit: &Commit,
    at_ms: u64,
    leader: &'static str,
) -> Result<CommitReply, NotVoting> {
    let answer = reply(a.handle_commit(commit));
    contact.committed(commit, &answer, at_ms, leader);
    answer
}

fn status(a: &Acceptor, contact: &LeaderContact<&'static str>, now_ms: u64) -> Option<(Ballot, String, u64)> {
    contact
        .status(a.state().promised, now_ms)
        .map(|h: Heard<'_, &str>| (h.ballot, (*h.leader).to_owned(), h.heard_ago_ms))
}

#[test]
fn an_accepted_accept_names_its_leader_with_the_time_since() {
    let mut a = acceptor();
    let mut contact = LeaderContact::new();
    assert_eq!(status(&a, &contact, 0), None, "nobody heard at start");
    let answer = deliver_accept(&mut a, &mut contact, &accept(ballot(1, 1), 0, 1), 100, "l1");
    assert!(matches!(answer, AcceptReply::Accepted { .. }));
    assert_eq!(
        status(&a, &contact, 100),
        Some((ballot(1, 1), "l1".to_owned(), 0))
    );
    assert_eq!(
        status(&a, &contact, 350),
        Some((ballot(1, 1), "l1".to_owned(), 250))
    );
    assert_eq!(
        status(&a, &contact, 40),
        Some((ballot(1, 1), "l1".to_owned(), 0)),
        "a clock read before the contact saturates at 0"
    );
}

/// A refused accept is a deposed leader: it must not replace the leader
/// heard, nor be named after it.
#[test]
fn a_refused_accept_is_no_contact() {
    let mut a = acceptor();
    let mut contact = LeaderContact::new();
    deliver_accept(&mut a, &mut contact, &accept(ballot(2, 2), 0, 1), 10, "l2");
    let answer = deliver_accept(&mut a, &mut contact, &accept(ballot(1, 1), 1, 5), 20, "l1");
    assert!(matches!(answer, AcceptReply::Rejected { .. }), "{answer:?}");
    assert_eq!(
        status(&a, &contact, 30),
        Some((ballot(2, 2), "l2".to_owned(), 20))
    );
}

/// A conflicting accept (a second value under one ballot) comes from a
/// faulty leader: not even its time counts as contact.
#[test]
fn a_conflicting_accept_is_no_contact() {
    let mut a = acceptor();
    let mut contact = LeaderContact::new();
    deliver_accept(&mut a, &mut contact, &accept(ballot(1, 1), 0, 1), 10, "l1");
    let answer = deliver_accept(&mut a, &mut contact, &accept(ballot(1, 1), 0, 9), 20, "forger");
    assert_eq!(answer, AcceptReply::Conflict { slot: Slot(0) });
    assert_eq!(
        status(&a, &contact, 30),
        Some((ballot(1, 1), "l1".to_owned(), 20))
    );
}

/// A blank acceptor refuses everything: it has heard nobody.
#[test]
fn a_blank_acceptor_hears_no_leader() {
    let mut a = Acceptor::restore(AcceptorState::blank(ME));
    let mut contact = LeaderContact::new();
    let answer = deliver_accept(&mut a, &mut contact, &accept(Ballot::default(), 0, 1), 10, "l0");
    assert_eq!(answer, AcceptReply::NotVoting);
    let answer = deliver_commit(&mut a, &mut contact, &commit(Ballot::default()), 10, "l0");
    assert_eq!(answer, Err(NotVoting));
    assert_eq!(status(&a, &contact, 20), None);
}

#[test]
fn a_heartbeat_at_the_promise_is_contact() {
    let mut a = acceptor();
    let mut contact = LeaderContact::new();
    prepare(&mut a, ballot(3, 1));
    assert_eq!(status(&a, &contact, 0), None, "a promise alone is no contact");
    let answer = deliver_commit(&mut a, &mut contact, &commit(ballot(3, 1)), 50, "l1");
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(
        status(&a, &contact, 60),
        Some((ballot(3, 1), "l1".to_owned(), 10))
    );
}

/// A commit above the promise raises it (the acceptor missed the prepare):
/// that leader is heard.
#[test]
fn a_heartbeat_above_the_promise_is_contact() {
    let mut a = acceptor();
    let mut contact = LeaderContact::new();
    let answer = deliver_commit(&mut a, &mut contact, &commit(ballot(4, 2)), 50, "l2");
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(a.state().promised, ballot(4, 2));
    assert_eq!(status(&a, &contact, 50), Some((ballot(4, 2), "l2".to_owned(), 0)));
}

/// A deposed leader goes on beating until it learns of the higher
/// ballot: those heartbeats must not keep followers quiet.
#[test]
fn a_heartbeat_below_the_promise_is_no_contact() {
    let mut a = acceptor();
    let mut contact = LeaderContact::new();
    deliver_accept(&mut a, &mut contact, &accept(ballot(1, 1), 0, 1), 10, "l1");
    prepare(&mut a, ballot(2, 2));
    let answer = deliver_commit(&mut a, &mut contact, &commit(ballot(1, 1)), 20, "l1");
    assert_eq!(answer.map(|r| r.promised), Ok(ballot(2, 2)));
    assert_eq!(status(&a, &contact, 30), None);
    // And the candidate, once it leads, is named.
    let answer = deliver_commit(&mut a, &mut contact, &commit(ballot(2, 2)), 40, "l2");
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(status(&a, &contact, 45), Some((ballot(2, 2), "l2".to_owned(), 5)));
}

/// A later promise means a candidate runs: the leader heard before is
/// hidden, and would be named again only by contact under a new promise.
#[test]
fn a_later_promise_hides_the_old_leader() {
    let mut a = acceptor();
    let mut contact = LeaderContact::new();
    deliver_accept(&mut a, &mut contact, &accept(ballot(1, 1), 0, 1), 10, "l1");
    prepare(&mut a, ballot(2, 2));
    assert_eq!(status(&a, &contact, 20), None);
    assert_eq!(
        contact.status(ballot(1, 1), 20).map(|h| *h.leader),
        Some("l1"),
        "remembered, only not reported under another promise"
    );
}

#[test]
fn a_move_to_another_epoch_forgets_the_leader() {
    let mut a = acceptor();
    let mut contact = LeaderContact::new();
    deliver_accept(&mut a, &mut contact, &accept(ballot(1, 1), 0, 1), 10, "l1");
    contact.transitioned(&JoinReply::NotBlank);
    contact.transitioned(&JoinReply::NotAMember);
    assert!(
        status(&a, &contact, 20).is_some(),
        "a refused transition changes nothing"
    );

    let next = Configuration {
        epoch: 1,
        seats: vec![Seat {
            address: "http://a0".to_owned(),
            member: ME,
        }],
    };
    let transition = Transition {
        configuration: next,
        snapshot: Snapshot {
            below: Slot(1),
            counters: Default::default(),
        },
    };
    let answer = reply(a.handle_transition(&transition));
    assert_eq!(answer, JoinReply::Joined);
    contact.transitioned(&answer);
    assert_eq!(
        contact.status(ballot(1, 1), 20),
        None,
        "forgotten, not only hidden"
    );
    assert_eq!(status(&a, &contact, 20), None);
}

#[test]
fn forget_forgets() {
    let mut a = acceptor();
    let mut contact = LeaderContact::new();
    deliver_accept(&mut a, &mut contact, &accept(ballot(1, 1), 0, 1), 10, "l1");
    contact.forget();
    assert_eq!(contact.status(ballot(1, 1), 20), None);
    assert_eq!(LeaderContact::<String>::default(), LeaderContact::new());
}

/// What an acceptor may be sent, from three leaders of rising rounds.
#[derive(Clone, Debug)]
enum Op {
    Prepare { round: u64 },
    Accept { round: u64, slot: u64, first: u64 },
    Commit { round: u64 },
    Wait { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..5u64).prop_map(|round| Op::Prepare { round }),
        (1..5u64, 0..3u64, 0..2u64).prop_map(|(round, slot, first)| Op::Accept { round, slot, first }),
        (1..5u64).prop_map(|round| Op::Commit { round }),
        (0..300u64).prop_map(|ms| Op::Wait { ms }),
    ]
}

/// The leader of round `r` is node `r`, named `l{r}`.
fn leader_of(round: u64) -> Ballot {
    ballot(round, round as u32)
}

fn name(round: u64) -> &'static str {
    ["l0", "l1", "l2", "l3", "l4"][round as usize]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Any mix of prepares, accepts and heartbeats: the status names a
    /// leader only under the current promise, and exactly the one the
    /// drivers' former rules named (accepts taken; commits at or above the
    /// promise, read before the commit is applied), with the time since.
    #[test]
    fn status_agrees_with_the_drivers_former_rules(ops in vec(op(), 0..60)) {
        let mut a = acceptor();
        let mut contact = LeaderContact::new();
        let mut former: Option<(Ballot, &'static str, u64)> = None;
        let mut now_ms = 0;
        for op in ops {
            match op {
                Op::Prepare { round } => {
                    let _ = reply(a.handle_prepare(&Prepare { ballot: leader_of(round), from: Slot(0), replace: None }));
                }
                Op::Accept { round, slot, first } => {
                    let accept = accept(leader_of(round), slot, first);
                    let answer = deliver_accept(&mut a, &mut contact, &accept, now_ms, name(round));
                    if matches!(answer, AcceptReply::Accepted { .. }) {
                        former = Some((accept.ballot, name(round), now_ms));
                    }
                }
                Op::Commit { round } => {
                    let commit = commit(leader_of(round));
                    let current = commit.ballot >= a.state().promised;
                    let answer = deliver_commit(&mut a, &mut contact, &commit, now_ms, name(round));
                    if answer.is_ok() && current {
                        former = Some((commit.ballot, name(round), now_ms));
                    }
                }
                Op::Wait { ms } => now_ms += ms,
            }
            let promised = a.state().promised;
            let expected = former
                .filter(|(b, _, _)| *b == promised)
                .map(|(b, leader, at)| (b, leader.to_owned(), now_ms - at));
            let got = status(&a, &contact, now_ms);
            if let Some((b, _, _)) = &got {
                prop_assert_eq!(*b, promised, "named only under the current promise");
            }
            prop_assert_eq!(got, expected);
        }
    }
}
