//! `Idempotency-Key` at the proposer: a keyed request's part goes into its
//! slot's value; a retry gets it back without a slot, from the leader that
//! chose it, a leader that recovered its slot, or one that read it back;
//! another shape is refused; a new leader that has not read the keys back
//! refuses keys it does not know.

use paxos_core::{
    AcceptReply, Accepted, AcceptorId, AcceptorStatus, Allocation, Ballot, Effect, IdRequest, IdempotencyKey,
    KeyedPart, MemberId, Membership, NodeId, PrepareReply, Promise, Proposer, ProposerConfig, Refusal,
    RequestId, Role, SequenceName, Slot, Snapshot, Value,
};

mod support;
use support::replies;

const ELECTION_MS: u64 = 400;

fn config() -> ProposerConfig {
    let mut config = ProposerConfig::new(NodeId(1), 3);
    config.election_timeout_min_ms = ELECTION_MS;
    config.election_timeout_max_ms = ELECTION_MS;
    config.quorum_contact_ms = ELECTION_MS;
    config
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).expect("valid key")
}

fn keyed(id: u64, count: u64, k: &str) -> IdRequest {
    IdRequest {
        id: RequestId(id),
        sequence: SequenceName::default_sequence(),
        count,
        key: Some(key(k)),
    }
}

fn plain(id: u64, count: u64) -> IdRequest {
    IdRequest {
        key: None,
        ..keyed(id, count, "unused")
    }
}

fn alloc(first: u64, count: u64) -> Allocation {
    Allocation {
        sequence: SequenceName::default_sequence(),
        first,
        count,
    }
}

fn promise(from: usize, ballot: Ballot, snapshot: Snapshot, entries: Vec<(Slot, Accepted)>) -> PrepareReply {
    PrepareReply::Promised(Promise {
        ballot,
        member: MemberId(from as u128 + 1),
        membership: Membership::founding((1..=3).map(MemberId)),
        snapshot,
        votes: entries,
    })
}

/// A leader under `round`.1 elected by acceptors 0 and 1, which both
/// report `snapshot` and `entries`; effects drained.
fn elect(
    mut p: Proposer,
    now: u64,
    round: u64,
    snapshot: Snapshot,
    entries: Vec<(Slot, Accepted)>,
) -> Proposer {
    for from in 0..3 {
        let status = AcceptorStatus {
            promised: Ballot::ZERO,
            leader_heard_ago_ms: None,
        };
        p.handle_status(now, AcceptorId(from), status);
    }
    p.tick(now, 0);
    let Role::Candidate { ballot } = p.role() else {
        panic!("not campaigning: {:?}", p.role())
    };
    assert_eq!(ballot.round, round);
    for from in 0..2 {
        p.handle_prepare_reply(
            now,
            AcceptorId(from),
            ballot,
            promise(from, ballot, snapshot.clone(), entries.clone()),
        );
    }
    assert_eq!(p.role(), Role::Leader { ballot });
    let _ = p.drain_effects();
    p
}

fn leader() -> Proposer {
    elect(
        Proposer::new(config(), 0, 0),
        ELECTION_MS,
        1,
        Snapshot::default(),
        Vec::new(),
    )
}

fn ballot_of(p: &Proposer) -> Ballot {
    match p.role() {
        Role::Leader { ballot } => ballot,
        role => panic!("not leading: {role:?}"),
    }
}

fn choose(p: &mut Proposer, now: u64, slot: Slot) -> Vec<Effect> {
    let ballot = ballot_of(p);
    for from in 0..2 {
        let reply = AcceptReply::Accepted {
            chosen_below: Slot(0),
            member: Some(MemberId(from as u128 + 1)),
        };
        p.handle_accept_reply(now, AcceptorId(from), ballot, &[slot], reply);
    }
    p.drain_effects()
}

fn proposed(effects: &[Effect]) -> Vec<(Slot, Value)> {
    let mut values: Vec<(Slot, Value)> = effects
        .iter()
        .filter_map(|e| e.accept_for(AcceptorId(0)).map(|accept| accept.entries.clone()))
        .flatten()
        .collect();
    values.dedup();
    values
}

fn ask(p: &mut Proposer, now: u64, request: IdRequest) -> Vec<Effect> {
    p.handle_request(now, request);
    p.flush(now);
    p.drain_effects()
}

#[test]
fn a_keyed_request_records_its_part_and_a_retry_gets_it_without_a_slot() {
    let mut p = leader();
    let effects = ask(&mut p, 500, keyed(1, 3, "k"));
    let values = proposed(&effects);
    let expected = Value::KeyedAllocations {
        allocations: vec![alloc(1, 3)],
        keys: vec![KeyedPart {
            key: key("k"),
            allocation: alloc(1, 3),
        }],
    };
    assert_eq!(values, vec![(Slot(0), expected)]);

    // While slot 0 is in flight: the same call is told to come back, another
    // shape under the key is refused.
    assert_eq!(
        replies(&ask(&mut p, 501, keyed(2, 3, "k"))),
        vec![(RequestId(2), Err(Refusal::KeyInFlight))]
    );
    assert_eq!(
        replies(&ask(&mut p, 501, keyed(3, 4, "k"))),
        vec![(RequestId(3), Err(Refusal::KeyReused))]
    );

    let effects = choose(&mut p, 502, Slot(0));
    assert_eq!(replies(&effects), vec![(RequestId(1), Ok(alloc(1, 3)))]);
    // Chosen: a retry is answered at once, with no new slot.
    let effects = ask(&mut p, 503, keyed(4, 3, "k"));
    assert_eq!(replies(&effects), vec![(RequestId(4), Ok(alloc(1, 3)))]);
    assert!(
        proposed(&effects).is_empty(),
        "a retry opened a slot: {effects:?}"
    );
    assert_eq!(p.slots_in_flight(), 0);
    let other = IdRequest {
        sequence: SequenceName::parse("other").expect("valid"),
        ..keyed(5, 3, "k")
    };
    assert_eq!(
        replies(&ask(&mut p, 503, other)),
        vec![(RequestId(5), Err(Refusal::KeyReused))]
    );
    // Nothing above consumed IDs: the next request starts right after.
    let effects = ask(&mut p, 504, plain(6, 1));
    assert_eq!(
        proposed(&effects),
        vec![(Slot(1), Value::Allocations(vec![alloc(4, 1)]))]
    );
}

#[test]
fn keyed_and_plain_requests_share_a_slot_and_each_gets_its_part() {
    let mut p = leader();
    let _ = ask(&mut p, 500, plain(1, 1));
    // Slot 0 in flight, the pipeline has room for one more: these share slot 1.
    p.handle_request(501, keyed(2, 2, "a"));
    p.handle_request(501, plain(3, 5));
    p.handle_request(501, keyed(4, 1, "b"));
    p.flush(501);
    let values = proposed(&p.drain_effects());
    let part = |k: &str, first, count| KeyedPart {
        key: key(k),
        allocation: alloc(first, count),
    };
    assert_eq!(
        values,
        vec![(
            Slot(1),
            Value::KeyedAllocations {
                allocations: vec![alloc(2, 8)],
                keys: vec![part("a", 2, 2), part("b", 9, 1)],
            }
        )]
    );
    let _ = choose(&mut p, 502, Slot(0));
    let answered = replies(&choose(&mut p, 502, Slot(1)));
    assert_eq!(
        answered,
        vec![
            (RequestId(2), Ok(alloc(2, 2))),
            (RequestId(3), Ok(alloc(4, 5))),
            (RequestId(4), Ok(alloc(9, 1)))
        ]
    );
    assert_eq!(
        replies(&ask(&mut p, 503, keyed(5, 1, "b"))),
        vec![(RequestId(5), Ok(alloc(9, 1)))]
    );
}

#[test]
fn a_new_leader_refuses_unknown_keys_until_it_read_the_earlier_ones_back() {
    let chosen = Snapshot {
        below: Slot(10),
        counters: paxos_core::Counters::default(),
    };
    let mut p = elect(Proposer::new(config(), 0, 0), ELECTION_MS, 1, chosen, Vec::new());
    let wanted = p.keys_wanted().expect("keys chosen before slot 10 are wanted");
    assert_eq!((wanted.from, wanted.below), (Slot(0), Slot(10)));
    assert_eq!(
        replies(&ask(&mut p, 500, keyed(1, 1, "old"))),
        vec![(RequestId(1), Err(Refusal::KeysLoading))]
    );
    // Unkeyed requests are served meanwhile.
    let effects = ask(&mut p, 500, plain(2, 1));
    assert_eq!(proposed(&effects).len(), 1);

    let old = KeyedPart {
        key: key("old"),
        allocation: alloc(40, 1),
    };
    p.load_keys(Slot(9), vec![(Slot(3), old.clone())]);
    assert!(p.keys_wanted().is_some(), "not what it asked for: ignored");
    p.load_keys(Slot(10), vec![(Slot(3), old)]);
    assert_eq!(p.keys_wanted(), None);
    let effects = ask(&mut p, 501, keyed(3, 1, "old"));
    assert_eq!(replies(&effects), vec![(RequestId(3), Ok(alloc(40, 1)))]);
    let effects = ask(&mut p, 501, keyed(4, 1, "new"));
    assert!(
        replies(&effects).is_empty(),
        "a new key is allocated: {effects:?}"
    );
}

#[test]
fn a_key_in_a_recovered_slot_is_answered_once_that_slot_is_chosen() {
    // An old leader put key "k" into slot 0 and died; acceptor 0 voted it.
    let part = KeyedPart {
        key: key("k"),
        allocation: alloc(1, 2),
    };
    let value = Value::KeyedAllocations {
        allocations: vec![alloc(1, 2)],
        keys: vec![part],
    };
    let vote = Accepted {
        ballot: Ballot::new(1, NodeId(2)),
        value: value.clone(),
        chosen: false,
    };
    let mut p = Proposer::new(config(), 0, 0);
    p.handle_status(
        0,
        AcceptorId(0),
        AcceptorStatus {
            promised: Ballot::new(1, NodeId(2)),
            leader_heard_ago_ms: None,
        },
    );
    let mut p = elect(p, ELECTION_MS, 2, Snapshot::default(), vec![(Slot(0), vote)]);
    assert_eq!(p.keys_wanted(), None, "nothing was chosen before");
    // The retry arrives while the recovered slot is in flight again.
    assert_eq!(
        replies(&ask(&mut p, 500, keyed(1, 2, "k"))),
        vec![(RequestId(1), Err(Refusal::KeyInFlight))]
    );
    let _ = choose(&mut p, 501, Slot(0));
    assert_eq!(
        replies(&ask(&mut p, 502, keyed(2, 2, "k"))),
        vec![(RequestId(2), Ok(alloc(1, 2)))]
    );
}

#[test]
fn a_leader_reelected_where_it_left_off_keeps_its_keys() {
    let mut p = leader();
    let _ = ask(&mut p, 500, keyed(1, 1, "k"));
    let _ = choose(&mut p, 501, Slot(0));
    // Deposed by a higher ballot, then elected again at the same chosen point.
    let ballot = ballot_of(&p);
    let reply = AcceptReply::Rejected {
        promised: Ballot::new(5, NodeId(2)),
    };
    p.handle_accept_reply(600, AcceptorId(0), ballot, &[Slot(1)], reply);
    assert_eq!(p.role(), Role::Follower);
    let snapshot = Snapshot {
        below: Slot(1),
        counters: paxos_core::Counters::default(),
    };
    let mut p = elect(p, 600 + ELECTION_MS, 6, snapshot, Vec::new());
    assert_eq!(
        p.keys_wanted(),
        None,
        "its own keys reach back to where it left off"
    );
    assert_eq!(
        replies(&ask(&mut p, 2000, keyed(2, 1, "k"))),
        vec![(RequestId(2), Ok(alloc(1, 1)))]
    );
}
