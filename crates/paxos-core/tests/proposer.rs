//! Proposer transitions: each test drives the real `Proposer` through its
//! public inputs and asserts the new role and the exact effects emitted.

use paxos_core::{
    Accept, AcceptReply, Accepted, AcceptorId, AcceptorStatus, Allocation, Ballot, Commit, CommitReply,
    Counters, Effect, IdRequest, MemberId, Membership, NodeId, Prepare, PrepareReply, Promise, Proposer,
    ProposerConfig, Refusal, RequestId, Role, SequenceName, Slot, Snapshot, Value,
};

const ELECTION_MS: u64 = 400;

fn config(pipeline_slots_max: usize) -> ProposerConfig {
    let mut config = ProposerConfig::new(NodeId(1), 3);
    config.pipeline_slots_max = pipeline_slots_max;
    // min == max: the election timeout does not depend on the random draw.
    config.election_timeout_min_ms = ELECTION_MS;
    config.election_timeout_max_ms = ELECTION_MS;
    config.heartbeat_interval_ms = 50;
    config.accept_retry_ms = 200;
    config.id_timeout_ms = 1_000;
    config.quorum_contact_ms = ELECTION_MS;
    config
}

/// Acceptors 0 and 1 (a majority) answer a status poll at `now` without
/// having heard any leader; then the proposer's timers run. Pre-vote lets a
/// follower campaign only on such fresh statuses.
fn tick_with_no_leader_heard(p: &mut Proposer, now: u64) {
    for from in [0, 1] {
        let status = AcceptorStatus {
            promised: ballot(0, 0),
            leader_heard_ago_ms: None,
        };
        p.handle_status(now, AcceptorId(from), status);
    }
    p.tick(now, 0);
}

fn ballot(round: u64, node: u32) -> Ballot {
    Ballot::new(round, NodeId(node))
}

fn seq(name: &str) -> SequenceName {
    SequenceName::parse(name).expect("valid")
}

fn alloc(name: &str, first: u64, count: u64) -> Allocation {
    Allocation {
        sequence: seq(name),
        first,
        count,
    }
}

fn value(allocations: &[Allocation]) -> Value {
    Value::Allocations(allocations.to_vec())
}

fn request(id: u64, name: &str, count: u64) -> IdRequest {
    IdRequest {
        id: RequestId(id),
        sequence: seq(name),
        count,
        key: None,
    }
}

fn to_all(make: impl Fn(AcceptorId) -> Effect) -> Vec<Effect> {
    (0..3).map(AcceptorId).map(make).collect()
}

fn accepts(ballot: Ballot, chosen_below: u64, entries: &[(u64, Value)]) -> Vec<Effect> {
    let entries: Vec<(Slot, Value)> = entries.iter().map(|(s, v)| (Slot(*s), v.clone())).collect();
    vec![Effect::AcceptAll {
        accept: Accept {
            ballot,
            chosen_below: Slot(chosen_below),
            entries,
        },
    }]
}

/// Resent accepts: one per acceptor (each gets the slots it has not
/// acknowledged), here the same slots to all.
fn resent(ballot: Ballot, chosen_below: u64, entries: &[(u64, Value)]) -> Vec<Effect> {
    let entries: Vec<(Slot, Value)> = entries.iter().map(|(s, v)| (Slot(*s), v.clone())).collect();
    to_all(|to| Effect::Accept {
        to,
        accept: Accept {
            ballot,
            chosen_below: Slot(chosen_below),
            entries: entries.clone(),
        },
    })
}

fn prepares(ballot: Ballot, from: u64) -> Vec<Effect> {
    let prepare = Prepare {
        ballot,
        from: Slot(from),
        replace: None,
    };
    to_all(|to| Effect::Prepare {
        to,
        prepare: prepare.clone(),
    })
}

fn commits(ballot: Ballot, chosen_below: u64) -> Vec<Effect> {
    to_all(|to| Effect::Commit {
        to,
        commit: Commit {
            ballot,
            chosen_below: Slot(chosen_below),
            snapshot: None,
        },
    })
}

/// Acceptor `i` of the three is member `i + 1` of the founding membership.
fn member(acceptor: usize) -> MemberId {
    MemberId(acceptor as u128 + 1)
}

fn founders() -> Membership {
    Membership::founding((0..3).map(member))
}

fn empty_promise(from: usize, ballot: Ballot) -> PrepareReply {
    PrepareReply::Promised(Promise {
        ballot,
        member: member(from),
        membership: founders(),
        snapshot: Snapshot::default(),
        votes: Vec::new(),
    })
}

/// An acceptor's vote that does not say who voted (as acceptors before
/// `member` existed): counted once per acceptor.
fn accepted(chosen_below: u64) -> AcceptReply {
    AcceptReply::Accepted {
        chosen_below: Slot(chosen_below),
        member: None,
    }
}

/// A proposer that campaigned at `ELECTION_MS` with ballot 1.1 and won
/// with two empty promises; its effects are drained.
fn leader(pipeline_slots_max: usize) -> Proposer {
    let mut p = Proposer::new(config(pipeline_slots_max), 0, 0);
    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let b = ballot(1, 1);
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(0), b, empty_promise(0, b));
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(1), b, empty_promise(1, b));
    assert_eq!(p.role(), Role::Leader { ballot: b });
    let _ = p.drain_effects();
    p
}

#[test]
fn election_timeout_campaigns_with_a_prepare_to_every_acceptor() {
    let mut p = Proposer::new(config(4), 0, 0);
    p.tick(ELECTION_MS - 1, 0);
    assert_eq!(p.role(), Role::Follower);
    assert_eq!(p.drain_effects(), vec![]);

    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let b = ballot(1, 1);
    assert_eq!(p.role(), Role::Candidate { ballot: b });
    assert_eq!(p.drain_effects(), prepares(b, 0));
}

#[test]
fn a_live_leader_keeps_a_follower_quiet_and_statuses_raise_its_rounds() {
    let mut p = Proposer::new(config(4), 0, 0);
    let status = AcceptorStatus {
        promised: ballot(7, 2),
        leader_heard_ago_ms: Some(10),
    };
    p.handle_status(ELECTION_MS, AcceptorId(0), status);
    p.handle_status(ELECTION_MS, AcceptorId(1), status);
    p.tick(ELECTION_MS, 0);
    assert_eq!(p.role(), Role::Follower, "a majority heard the leader 10 ms ago");
    assert_eq!(p.drain_effects(), vec![]);

    // The leader goes silent: the acceptors last heard it an election
    // timeout ago, and the next campaign is above every round seen.
    let silent = AcceptorStatus {
        promised: ballot(7, 2),
        leader_heard_ago_ms: Some(ELECTION_MS + 20),
    };
    p.handle_status(2 * ELECTION_MS + 10, AcceptorId(0), silent);
    p.handle_status(2 * ELECTION_MS + 10, AcceptorId(1), silent);
    p.tick(2 * ELECTION_MS + 10, 0);
    assert_eq!(p.drain_effects(), prepares(ballot(8, 1), 0));
}

#[test]
fn prevote_a_follower_that_hears_no_majority_stays_quiet() {
    let mut p = Proposer::new(config(4), 0, 0);
    // Cut off from every acceptor: no status for ten election timeouts.
    p.tick(10 * ELECTION_MS, 0);
    assert_eq!(p.role(), Role::Follower);
    assert_eq!(
        p.drain_effects(),
        vec![],
        "no campaign without a majority's status"
    );
    // One acceptor (a minority) answers: still no campaign.
    let status = AcceptorStatus {
        promised: ballot(0, 0),
        leader_heard_ago_ms: None,
    };
    p.handle_status(11 * ELECTION_MS, AcceptorId(2), status);
    p.tick(11 * ELECTION_MS, 0);
    assert_eq!(p.drain_effects(), vec![]);
    // Statuses older than the election timeout do not count either.
    p.handle_status(11 * ELECTION_MS, AcceptorId(0), status);
    p.tick(12 * ELECTION_MS, 0);
    assert_eq!(p.drain_effects(), vec![]);
    // A fresh majority that heard no leader: campaign, in round 1.
    tick_with_no_leader_heard(&mut p, 12 * ELECTION_MS + 1);
    assert_eq!(p.role(), Role::Candidate { ballot: ballot(1, 1) });
}

/// Issue 12: under a partial partition (the leader cut from acceptor 0, this
/// follower cut from acceptor 2) the follower saw a majority answer with
/// fewer than a majority hearing a leader, campaigned and won, and the two
/// could alternate. Pre-vote now needs a majority of acceptors that answer
/// *and* heard no leader, as Raft's pre-vote with leader stickiness: one
/// acceptor that hears a live leader keeps the follower quiet.
#[test]
fn prevote_one_acceptor_hearing_a_live_leader_keeps_a_follower_quiet() {
    let mut p = Proposer::new(config(4), 0, 0);
    let now = 3 * ELECTION_MS;
    let quiet = AcceptorStatus {
        promised: ballot(4, 2),
        leader_heard_ago_ms: None,
    };
    let hears = AcceptorStatus {
        promised: ballot(4, 2),
        leader_heard_ago_ms: Some(5),
    };
    p.handle_status(now, AcceptorId(0), quiet);
    p.handle_status(now, AcceptorId(1), hears);
    p.tick(now, 0);
    assert_eq!(p.role(), Role::Follower, "acceptor 1 hears a live leader");
    assert_eq!(p.drain_effects(), vec![]);
    // Once acceptor 1 stops hearing it too, the follower campaigns.
    let silent = AcceptorStatus {
        leader_heard_ago_ms: Some(ELECTION_MS + 1),
        ..hears
    };
    p.handle_status(now + 1, AcceptorId(0), quiet);
    p.handle_status(now + 1, AcceptorId(1), silent);
    p.tick(now + 1, 0);
    assert_eq!(p.role(), Role::Candidate { ballot: ballot(5, 1) });
}

#[test]
fn without_prevote_a_cut_off_follower_campaigns() {
    let mut config = config(4);
    config.prevote = false;
    let mut p = Proposer::new(config, 0, 0);
    p.tick(ELECTION_MS, 0);
    assert_eq!(p.role(), Role::Candidate { ballot: ballot(1, 1) });
}

#[test]
fn requests_to_a_follower_are_refused_not_leader() {
    let mut p = Proposer::new(config(4), 0, 0);
    p.handle_request(0, request(9, "default", 1));
    assert_eq!(
        p.drain_effects(),
        vec![Effect::Reply {
            request: RequestId(9),
            result: Err(Refusal::NotLeader)
        }]
    );
}

#[test]
fn a_quorum_of_promises_makes_a_leader_that_recovers_the_log() {
    let mut p = Proposer::new(config(4), 0, 0);
    p.handle_status(
        0,
        AcceptorId(2),
        AcceptorStatus {
            promised: ballot(4, 2),
            leader_heard_ago_ms: None,
        },
    );
    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let b = ballot(5, 1);
    assert_eq!(p.role(), Role::Candidate { ballot: b });
    let _ = p.drain_effects();

    let z = value(&[alloc("default", 6, 2)]);
    let y = value(&[alloc("orders", 20, 1)]);
    let vote = |ballot, value: &Value| Accepted {
        ballot,
        value: value.clone(),
        chosen: false,
    };
    // Acceptor 0 saw an older value in slot 0 and a value in slot 2.
    let first = Promise {
        ballot: b,
        member: member(0),
        membership: founders(),
        snapshot: Snapshot::default(),
        votes: vec![
            (Slot(0), vote(ballot(3, 2), &value(&[alloc("default", 1, 5)]))),
            (Slot(2), vote(ballot(2, 3), &y)),
        ],
    };
    // Acceptor 1 saw a higher ballot in slot 0.
    let second = Promise {
        ballot: b,
        member: member(1),
        membership: founders(),
        snapshot: Snapshot::default(),
        votes: vec![(Slot(0), vote(ballot(4, 2), &z))],
    };
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(0), b, PrepareReply::Promised(first));
    assert_eq!(p.drain_effects(), vec![], "one promise is not a quorum");
    // A promise for another ballot (late, from an old campaign) counts for nothing.
    p.handle_prepare_reply(
        ELECTION_MS,
        AcceptorId(2),
        ballot(1, 1),
        empty_promise(2, ballot(1, 1)),
    );
    assert_eq!(p.role(), Role::Candidate { ballot: b });
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(1), b, PrepareReply::Promised(second));

    assert_eq!(p.role(), Role::Leader { ballot: b });
    // Slot 0: the highest ballot's value; slot 1: a hole, so a no-op; slot 2: the only value.
    let mut expected = vec![Effect::BecameLeader { ballot: b }];
    expected.extend(accepts(b, 0, &[(0, z), (1, Value::Noop), (2, y)]));
    expected.extend(commits(b, 0));
    assert_eq!(p.drain_effects(), expected);

    // New allocations start above every range seen (default ..=7, orders ..=20) and above slot 2.
    p.handle_request(ELECTION_MS, request(1, "default", 1));
    p.handle_request(ELECTION_MS, request(2, "orders", 1));
    p.flush(ELECTION_MS);
    let fresh = value(&[alloc("default", 8, 1), alloc("orders", 21, 1)]);
    assert_eq!(p.drain_effects(), accepts(b, 0, &[(3, fresh)]));
}

#[test]
fn recovery_starts_from_the_most_advanced_snapshot() {
    let mut p = Proposer::new(config(4), 0, 0);
    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let b = ballot(1, 1);
    let _ = p.drain_effects();
    let counters = Counters::from_map([(seq("default"), 11)].into());
    let ahead = Promise {
        ballot: b,
        member: member(0),
        membership: founders(),
        snapshot: Snapshot {
            below: Slot(3),
            counters,
        },
        votes: Vec::new(),
    };
    // The other acceptor is behind and still reports slot 1, which is chosen.
    let vote = Accepted {
        ballot: ballot(0, 2),
        value: value(&[alloc("default", 5, 1)]),
        chosen: false,
    };
    let behind = Promise {
        ballot: b,
        member: member(1),
        membership: founders(),
        snapshot: Snapshot::default(),
        votes: vec![(Slot(1), vote)],
    };
    p.handle_prepare_reply(0, AcceptorId(0), b, PrepareReply::Promised(ahead));
    p.handle_prepare_reply(0, AcceptorId(1), b, PrepareReply::Promised(behind));
    assert_eq!(p.chosen_below(), Slot(3));
    let effects = p.drain_effects();
    assert_eq!(effects[0], Effect::BecameLeader { ballot: b });
    assert!(!effects.iter().any(|e| matches!(e, Effect::Accept { accept, .. } | Effect::AcceptAll { accept } if !accept.entries.is_empty() && accept.entries[0].0 < Slot(3))), "nothing below the snapshot is re-proposed");
    p.handle_request(0, request(1, "default", 1));
    p.flush(0);
    assert_eq!(
        p.drain_effects(),
        accepts(b, 3, &[(3, value(&[alloc("default", 11, 1)]))])
    );
}

#[test]
fn majority_acks_answer_clients_and_report_chosen_in_slot_order() {
    let mut p = leader(2);
    let b = ballot(1, 1);
    p.handle_request(500, request(1, "default", 2));
    p.flush(500);
    p.handle_request(501, request(2, "default", 1));
    p.flush(501);
    let slot0 = value(&[alloc("default", 1, 2)]);
    let slot1 = value(&[alloc("default", 3, 1)]);
    let mut expected = accepts(b, 0, &[(0, slot0.clone())]);
    expected.extend(accepts(b, 0, &[(1, slot1.clone())]));
    assert_eq!(p.drain_effects(), expected);
    assert_eq!(p.slots_in_flight(), 2);

    // Slot 1 is chosen first: its client waits until slot 0 is chosen too.
    p.handle_accept_reply(502, AcceptorId(0), b, &[Slot(1)], accepted(0));
    p.handle_accept_reply(502, AcceptorId(2), b, &[Slot(1)], accepted(0));
    assert_eq!(p.drain_effects(), vec![]);
    assert_eq!(p.chosen_below(), Slot(0));

    p.handle_accept_reply(503, AcceptorId(1), b, &[Slot(0)], accepted(0));
    assert_eq!(p.drain_effects(), vec![], "one ack of three is not a majority");
    p.handle_accept_reply(503, AcceptorId(1), b, &[Slot(0)], accepted(0));
    assert_eq!(p.drain_effects(), vec![], "a duplicated ack counts once");
    p.handle_accept_reply(504, AcceptorId(2), b, &[Slot(0)], accepted(0));
    assert_eq!(
        p.drain_effects(),
        vec![
            Effect::Reply {
                request: RequestId(1),
                result: Ok(alloc("default", 1, 2))
            },
            Effect::Chosen {
                slot: Slot(0),
                value: slot0
            },
            Effect::Reply {
                request: RequestId(2),
                result: Ok(alloc("default", 3, 1))
            },
            Effect::Chosen {
                slot: Slot(1),
                value: slot1
            },
        ]
    );
    assert_eq!(p.chosen_below(), Slot(2));
    assert_eq!(p.slots_in_flight(), 0);
    // A late ack for a chosen slot changes nothing.
    p.handle_accept_reply(505, AcceptorId(0), b, &[Slot(0)], accepted(2));
    assert_eq!(p.drain_effects(), vec![]);
}

/// A sequencer given one acceptor at two URLs (say `127.0.0.1:7001` and
/// `localhost:7001`) must not count its vote twice: the slot is chosen by
/// a majority of members, not of addresses.
#[test]
fn one_member_answering_at_two_addresses_is_one_vote() {
    let mut p = leader(2);
    let b = ballot(1, 1);
    p.handle_request(500, request(1, "default", 1));
    p.flush(500);
    let _ = p.drain_effects();
    let vote_of = |m: usize| AcceptReply::Accepted {
        chosen_below: Slot(0),
        member: Some(member(m)),
    };
    // Acceptors 0 and 1 are the same member (an alias).
    p.handle_accept_reply(501, AcceptorId(0), b, &[Slot(0)], vote_of(0));
    p.handle_accept_reply(501, AcceptorId(1), b, &[Slot(0)], vote_of(0));
    assert_eq!(
        p.drain_effects(),
        vec![],
        "one member at two addresses is one vote"
    );
    assert_eq!(p.chosen_below(), Slot(0));
    // A second member makes the majority.
    p.handle_accept_reply(502, AcceptorId(2), b, &[Slot(0)], vote_of(2));
    assert_eq!(p.chosen_below(), Slot(1));
    assert!(p.drain_effects().contains(&Effect::Reply {
        request: RequestId(1),
        result: Ok(alloc("default", 1, 1))
    }));
}

#[test]
fn requests_arriving_while_the_pipeline_is_full_share_one_slot() {
    let mut p = leader(1);
    let b = ballot(1, 1);
    p.handle_request(500, request(1, "default", 1));
    p.flush(500);
    let _ = p.drain_effects();
    p.handle_request(501, request(2, "default", 1));
    p.handle_request(502, request(3, "orders", 2));
    p.handle_request(503, request(4, "default", 3));
    p.flush(503);
    assert_eq!(p.drain_effects(), vec![], "the pipeline is full");

    for from in [0, 1] {
        p.handle_accept_reply(504, AcceptorId(from), b, &[Slot(0)], accepted(0));
    }
    let _ = p.drain_effects();
    p.flush(504);
    // One slot, one allocation per sequence, in order of arrival.
    let batch = value(&[alloc("default", 2, 4), alloc("orders", 1, 2)]);
    assert_eq!(p.drain_effects(), accepts(b, 1, &[(1, batch.clone())]));

    for from in [1, 2] {
        p.handle_accept_reply(505, AcceptorId(from), b, &[Slot(1)], accepted(1));
    }
    assert_eq!(
        p.drain_effects(),
        vec![
            Effect::Reply {
                request: RequestId(2),
                result: Ok(alloc("default", 2, 1))
            },
            Effect::Reply {
                request: RequestId(3),
                result: Ok(alloc("orders", 1, 2))
            },
            Effect::Reply {
                request: RequestId(4),
                result: Ok(alloc("default", 3, 3))
            },
            Effect::Chosen {
                slot: Slot(1),
                value: batch
            },
        ]
    );
}

#[test]
fn a_higher_ballot_deposes_the_leader_and_refuses_every_waiting_client() {
    let mut p = leader(1);
    let b = ballot(1, 1);
    p.handle_request(500, request(1, "default", 1));
    p.flush(500);
    p.handle_request(501, request(2, "default", 1));
    let _ = p.drain_effects();

    // A rejection for another ballot of ours (an old one) is ignored.
    p.handle_accept_reply(
        502,
        AcceptorId(0),
        ballot(0, 1),
        &[Slot(0)],
        AcceptReply::Rejected {
            promised: ballot(1, 1),
        },
    );
    assert_eq!(p.drain_effects(), vec![]);

    let seen = ballot(9, 2);
    p.handle_accept_reply(
        502,
        AcceptorId(0),
        b,
        &[Slot(0)],
        AcceptReply::Rejected { promised: seen },
    );
    assert_eq!(p.role(), Role::Follower);
    assert_eq!(
        p.drain_effects(),
        vec![
            Effect::Reply {
                request: RequestId(2),
                result: Err(Refusal::Deposed)
            },
            Effect::Reply {
                request: RequestId(1),
                result: Err(Refusal::Deposed)
            },
            Effect::SteppedDown {
                ballot: b,
                seen: Some(seen)
            },
        ]
    );
    // Its next campaign goes above the ballot that deposed it.
    tick_with_no_leader_heard(&mut p, 502 + ELECTION_MS);
    assert_eq!(p.drain_effects(), prepares(ballot(10, 1), 0));
}

#[test]
fn a_commit_reply_with_a_higher_promise_deposes_the_leader() {
    let mut p = leader(4);
    let b = ballot(1, 1);
    let reply = CommitReply {
        promised: ballot(2, 3),
        chosen_below: Slot(0),
    };
    p.handle_commit_reply(500, AcceptorId(2), b, Ok(reply));
    assert_eq!(p.role(), Role::Follower);
    assert_eq!(
        p.drain_effects(),
        vec![Effect::SteppedDown {
            ballot: b,
            seen: Some(ballot(2, 3))
        }]
    );
}

#[test]
fn a_request_timeout_answers_timed_out_but_keeps_the_slot() {
    let mut p = leader(4);
    let b = ballot(1, 1);
    p.handle_request(ELECTION_MS, request(1, "default", 1));
    p.flush(ELECTION_MS);
    let _ = p.drain_effects();
    let now = ELECTION_MS + 1_000;
    // A majority still answers, so the leader keeps its leadership.
    for from in [0, 1] {
        let reply = CommitReply {
            promised: b,
            chosen_below: Slot(0),
        };
        p.handle_commit_reply(now - 10, AcceptorId(from), b, Ok(reply));
    }
    p.tick(now, 0);
    assert_eq!(p.role(), Role::Leader { ballot: b });
    let slot0 = value(&[alloc("default", 1, 1)]);
    let mut expected = vec![Effect::Reply {
        request: RequestId(1),
        result: Err(Refusal::TimedOut),
    }];
    // The slot stays in flight with its value: it is sent again, unchanged.
    expected.extend(resent(b, 0, &[(0, slot0.clone())]));
    expected.extend(commits(b, 0));
    assert_eq!(p.drain_effects(), expected);
    assert_eq!(p.slots_in_flight(), 1);

    for from in [0, 2] {
        p.handle_accept_reply(now + 1, AcceptorId(from), b, &[Slot(0)], accepted(0));
    }
    assert_eq!(
        p.drain_effects(),
        vec![Effect::Chosen {
            slot: Slot(0),
            value: slot0
        }],
        "no second answer"
    );
}

#[test]
fn a_leader_cut_off_from_its_quorum_steps_down() {
    let mut p = leader(4);
    let b = ballot(1, 1);
    p.handle_request(ELECTION_MS, request(1, "default", 1));
    p.flush(ELECTION_MS);
    let _ = p.drain_effects();
    p.tick(2 * ELECTION_MS, 0);
    assert_eq!(p.role(), Role::Follower);
    assert_eq!(
        p.drain_effects(),
        vec![
            Effect::Reply {
                request: RequestId(1),
                result: Err(Refusal::Deposed)
            },
            Effect::SteppedDown {
                ballot: b,
                seen: None
            },
        ]
    );
}

#[test]
fn a_rejected_prepare_with_a_higher_ballot_ends_the_campaign() {
    let mut p = Proposer::new(config(4), 0, 0);
    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let _ = p.drain_effects();
    p.handle_prepare_reply(
        ELECTION_MS,
        AcceptorId(0),
        ballot(1, 1),
        PrepareReply::Rejected {
            promised: ballot(3, 2),
        },
    );
    assert_eq!(p.role(), Role::Follower);
    assert_eq!(p.drain_effects(), vec![]);
    tick_with_no_leader_heard(&mut p, 2 * ELECTION_MS);
    assert_eq!(p.drain_effects(), prepares(ballot(4, 1), 0));
}

/// A promise of a member that another promise reports retired (its disk was
/// lost and it was rebuilt elsewhere) does not count, and its votes are not
/// recovered: they may be all that is left of a disk that is gone.
#[test]
fn a_retired_members_promise_does_not_count() {
    let mut p = Proposer::new(config(4), 0, 0);
    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let b = ballot(1, 1);
    let _ = p.drain_effects();
    let mut retired = founders();
    retired.replace(paxos_core::Replace {
        retire: member(0),
        admit: MemberId(9),
    });
    let stale_vote = Accepted {
        ballot: ballot(9, 9),
        value: value(&[alloc("default", 500, 1)]),
        chosen: false,
    };
    let stale = Promise {
        ballot: b,
        member: member(0),
        membership: founders(),
        snapshot: Snapshot::default(),
        votes: vec![(Slot(0), stale_vote)],
    };
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(0), b, PrepareReply::Promised(stale));
    let fresh = Promise {
        ballot: b,
        member: member(1),
        membership: retired.clone(),
        snapshot: Snapshot::default(),
        votes: Vec::new(),
    };
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(1), b, PrepareReply::Promised(fresh));
    assert_eq!(
        p.role(),
        Role::Candidate { ballot: b },
        "one countable promise is not a quorum"
    );
    assert_eq!(p.membership(), &retired);
    // Two URLs answering as one member count once.
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(2), b, empty_promise(1, b));
    assert_eq!(p.role(), Role::Candidate { ballot: b });
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(2), b, empty_promise(2, b));
    assert_eq!(p.role(), Role::Leader { ballot: b });
    let effects = p.drain_effects();
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Accept { .. } | Effect::AcceptAll { .. })),
        "nothing to recover: the retired member's vote is ignored, got {effects:?}"
    );
}

#[test]
fn acceptors_that_do_not_vote_are_no_answer() {
    let mut p = Proposer::new(config(4), 0, 0);
    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let b = ballot(1, 1);
    let _ = p.drain_effects();
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(0), b, PrepareReply::NotVoting);
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(1), b, empty_promise(1, b));
    assert_eq!(p.role(), Role::Candidate { ballot: b });
}

/// Issue 12: catch-up sent up to `catchup_batch_max` slots in one accept
/// whatever their size; past the acceptor's body limit the 413 looked like
/// a lost message and the same accept went out again forever. Catch-up
/// accepts are bounded by allocations too (a proxy for bytes).
#[test]
fn catch_up_accepts_are_bounded_by_their_allocations() {
    let mut config = config(1);
    config.catchup_allocations_max = 10;
    let mut p = Proposer::new(config, 0, 0);
    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let b = ballot(1, 1);
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(0), b, empty_promise(0, b));
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(1), b, empty_promise(1, b));
    let _ = p.drain_effects();
    let now = ELECTION_MS;
    for slot in 0..10u64 {
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            p.handle_request(now, request(slot * 3 + i as u64 + 1, name, 1));
        }
        p.flush(now);
        let _ = p.drain_effects();
        for from in [0, 1] {
            p.handle_accept_reply(now, AcceptorId(from), b, &[Slot(slot)], accepted(slot + 1));
        }
    }
    assert_eq!(p.chosen_below(), Slot(10));
    let _ = p.drain_effects();
    // Acceptor 2 reports that it has nothing chosen: it needs catching up.
    let behind = CommitReply {
        promised: b,
        chosen_below: Slot(0),
    };
    p.handle_commit_reply(now, AcceptorId(2), b, Ok(behind));
    p.tick(now + 100, 0);
    let catch_up: Vec<Accept> = p
        .drain_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Accept {
                to: AcceptorId(2),
                accept,
            } => Some(accept),
            _ => None,
        })
        .collect();
    assert_eq!(catch_up.len(), 1, "one catch-up accept");
    let allocations: usize = catch_up[0]
        .entries
        .iter()
        .map(|(_, v)| v.allocations().len())
        .sum();
    assert!(
        (1..=10).contains(&allocations),
        "{allocations} allocations in one catch-up accept; the limit is 10"
    );
    assert_eq!(catch_up[0].entries.first().map(|(s, _)| *s), Some(Slot(0)));
}

fn next_configuration() -> paxos_core::Configuration {
    paxos_core::Configuration {
        epoch: 1,
        seats: (0..3)
            .map(|i| paxos_core::Seat {
                address: format!("http://a{i}"),
                member: MemberId(10 + i as u128),
            })
            .collect(),
    }
}

/// A stop sign goes into the next slot; nothing is proposed after it, and
/// once chosen the proposer reports the new configuration with the chosen
/// prefix through the stop sign, then stays quiet.
#[test]
fn a_reconfiguration_is_a_stop_sign_and_ends_the_epoch() {
    let mut p = leader(4);
    let b = ballot(1, 1);
    let now = ELECTION_MS + 1;
    p.handle_request(now, request(1, "a", 2));
    p.flush(now);
    assert_eq!(
        p.drain_effects(),
        accepts(b, 0, &[(0, value(&[alloc("a", 1, 2)]))])
    );
    let next = next_configuration();
    p.handle_reconfigure(now, RequestId(9), next.clone());
    let stop = Value::Reconfigure(next.clone());
    assert_eq!(p.drain_effects(), accepts(b, 0, &[(1, stop.clone())]));
    // A request arriving now gets no slot in this epoch.
    p.handle_request(now, request(2, "a", 1));
    p.flush(now);
    assert_eq!(
        p.drain_effects(),
        vec![Effect::Reply {
            request: RequestId(2),
            result: Err(Refusal::Reconfiguring)
        }]
    );
    // A second reconfiguration is refused while the first is under way.
    p.handle_reconfigure(now, RequestId(10), next.clone());
    assert_eq!(
        p.drain_effects(),
        vec![Effect::Reply {
            request: RequestId(10),
            result: Err(Refusal::Reconfiguring)
        }]
    );
    for from in [0, 1] {
        p.handle_accept_reply(now, AcceptorId(from), b, &[Slot(0), Slot(1)], accepted(0));
    }
    let effects = p.drain_effects();
    let snapshot = Snapshot {
        below: Slot(2),
        counters: Counters::from_map([(seq("a"), 3)].into()),
    };
    assert_eq!(
        effects,
        vec![
            Effect::Reply {
                request: RequestId(1),
                result: Ok(alloc("a", 1, 2))
            },
            Effect::Chosen {
                slot: Slot(0),
                value: value(&[alloc("a", 1, 2)])
            },
            Effect::Chosen {
                slot: Slot(1),
                value: stop.clone()
            },
            Effect::Reconfigured {
                configuration: next,
                snapshot,
                // Both acceptors said nothing was chosen yet: the tail
                // reaches back to slot 0, the stop sign last.
                tail: Accept {
                    ballot: b,
                    chosen_below: Slot(2),
                    entries: vec![(Slot(0), value(&[alloc("a", 1, 2)])), (Slot(1), stop)],
                },
                request: Some(RequestId(9)),
            },
        ]
    );
    assert_eq!(p.ended(), Some(1));
    assert_eq!(p.role(), Role::Follower);
    p.tick(10 * ELECTION_MS, 0);
    tick_with_no_leader_heard(&mut p, 20 * ELECTION_MS);
    assert_eq!(p.drain_effects(), vec![], "an ended proposer never campaigns");
}

/// A leader that recovers a stop sign re-proposes it and nothing after it.
#[test]
fn a_recovered_stop_sign_stops_new_proposals() {
    let mut p = Proposer::new(config(4), 0, 0);
    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let b = ballot(1, 1);
    let stop = Value::Reconfigure(next_configuration());
    let voted = PrepareReply::Promised(Promise {
        ballot: b,
        member: member(0),
        membership: founders(),
        snapshot: Snapshot::default(),
        votes: vec![(
            Slot(0),
            Accepted {
                ballot: ballot(0, 2),
                value: stop.clone(),
                chosen: false,
            },
        )],
    });
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(0), b, voted);
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(1), b, empty_promise(1, b));
    let _ = p.drain_effects();
    p.handle_request(ELECTION_MS, request(1, "a", 1));
    p.flush(ELECTION_MS);
    assert_eq!(
        p.drain_effects(),
        vec![Effect::Reply {
            request: RequestId(1),
            result: Err(Refusal::Reconfiguring)
        }]
    );
    for from in [0, 1] {
        p.handle_accept_reply(ELECTION_MS, AcceptorId(from), b, &[Slot(0)], accepted(0));
    }
    assert!(p
        .drain_effects()
        .iter()
        .any(|e| matches!(e, Effect::Reconfigured { request: None, .. })));
}

/// A promise of a later epoch means this one ended: the proposer fails
/// its clients, reports it once, and goes quiet.
#[test]
fn a_promise_of_a_later_epoch_supersedes_the_proposer() {
    let mut p = leader(4);
    let b = ballot(1, 1);
    let now = ELECTION_MS + 1;
    p.handle_request(now, request(1, "a", 1));
    p.flush(now);
    let _ = p.drain_effects();
    let later = Ballot::opening(2);
    p.handle_accept_reply(
        now,
        AcceptorId(0),
        b,
        &[Slot(0)],
        AcceptReply::Rejected { promised: later },
    );
    assert_eq!(
        p.drain_effects(),
        vec![
            Effect::Reply {
                request: RequestId(1),
                result: Err(Refusal::Reconfiguring)
            },
            Effect::Superseded { epoch: 2 },
        ]
    );
    assert_eq!(p.ended(), Some(2));
    tick_with_no_leader_heard(&mut p, 10 * ELECTION_MS);
    assert_eq!(p.drain_effects(), vec![]);
}

/// A process started with an `--acceptors` list that is not the cluster's
/// (two removed members and a stranger, say) must not lead with a majority
/// of its list: it also needs a majority of the voters the promises name.
#[test]
fn a_majority_of_the_list_is_not_enough_when_the_promises_name_more_voters() {
    let mut p = Proposer::new(config(4), 0, 0);
    tick_with_no_leader_heard(&mut p, ELECTION_MS);
    let b = ballot(1, 1);
    let five = Membership::founding((0..5).map(member));
    let promise = |from: usize| {
        PrepareReply::Promised(Promise {
            ballot: b,
            member: member(from),
            membership: five.clone(),
            snapshot: Snapshot::default(),
            votes: Vec::new(),
        })
    };
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(0), b, promise(0));
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(1), b, promise(1));
    assert_eq!(
        p.role(),
        Role::Candidate { ballot: b },
        "2 of 5 voters is no majority"
    );
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(2), b, promise(2));
    assert_eq!(p.role(), Role::Leader { ballot: b });
    // Phase 2 likewise: two acknowledgements are a majority of the list,
    // not of the five voters; the third chooses the slot.
    let _ = p.drain_effects();
    p.handle_request(ELECTION_MS, request(1, "a", 1));
    p.flush(ELECTION_MS);
    let _ = p.drain_effects();
    for from in [0, 1] {
        p.handle_accept_reply(ELECTION_MS, AcceptorId(from), b, &[Slot(0)], accepted(0));
    }
    assert_eq!(p.chosen_below(), Slot(0), "2 of 5 voters chose nothing");
    p.handle_accept_reply(ELECTION_MS, AcceptorId(2), b, &[Slot(0)], accepted(0));
    assert_eq!(p.chosen_below(), Slot(1));
}

/// The driver sleeps until the proposer's next deadline instead of ticking
/// every few milliseconds: a leader wakes for its next heartbeat or accept
/// resend, a follower for its election timer, never later than
/// `POLL_MS_MAX`, never in a busy loop.
#[test]
fn poll_timeout_is_the_next_deadline_within_bounds() {
    let max = Proposer::POLL_MS_MAX;
    let follower = Proposer::new(config(2), 0, 0);
    let t = follower.poll_timeout_ms(0);
    assert!((1..=max).contains(&t), "a new follower: {t}");
    assert_eq!(
        follower.poll_timeout_ms(100 * ELECTION_MS),
        max,
        "past its timer a follower waits for fresher statuses, it does not spin"
    );

    let mut p = leader(2);
    let now = ELECTION_MS + 1;
    p.tick(now, 0);
    p.drain_effects();
    let t = p.poll_timeout_ms(now);
    assert!((1..=max).contains(&t), "a leader: {t}");
    p.handle_request(now, request(1, "a", 1));
    p.flush(now);
    p.drain_effects();
    let config = config(2);
    let resend_in = config.accept_retry_ms.min(config.heartbeat_interval_ms).min(max);
    assert!(p.poll_timeout_ms(now) <= resend_in);
    assert_eq!(
        p.poll_timeout_ms(now + 10 * config.accept_retry_ms),
        1,
        "an overdue resend is run at once"
    );
}

/// The election timeout runs from when a majority last heard the leader, not
/// from when the follower noticed the silence: statuses arrive every poll,
/// so counting from the first silent one waited two timeouts (the container
/// suite measured 0.84–1.18 s to the first success after a leader pause or
/// disconnect with 300–600 ms timeouts).
#[test]
fn a_follower_campaigns_one_election_timeout_after_the_leader_went_silent() {
    const POLL_MS: u64 = 50;
    let mut p = Proposer::new(config(4), 0, 0);
    let silent_from = 1_000;
    let mut now = 0;
    let campaigned_at = loop {
        now += POLL_MS;
        assert!(now < silent_from + 3 * ELECTION_MS, "never campaigned");
        // Acceptors 0 and 1 heard the leader until `silent_from`.
        let status = AcceptorStatus {
            promised: ballot(7, 2),
            leader_heard_ago_ms: Some(now.saturating_sub(silent_from)),
        };
        p.handle_status(now, AcceptorId(0), status);
        p.handle_status(now, AcceptorId(1), status);
        p.tick(now, 0);
        if matches!(p.role(), Role::Candidate { .. }) {
            break now;
        }
    };
    assert!(
        campaigned_at <= silent_from + ELECTION_MS + POLL_MS,
        "campaigned {} ms after the leader went silent; the timeout is {ELECTION_MS} ms",
        campaigned_at - silent_from
    );
    assert!(
        campaigned_at >= silent_from + ELECTION_MS,
        "campaigned before a majority had missed the leader for a whole timeout"
    );
}
