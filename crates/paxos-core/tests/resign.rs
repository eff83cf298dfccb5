//! A leader asked to stop (`Proposer::resign`): it opens no new slot,
//! finishes the slots in flight, says when it is drained, and once a higher
//! ballot deposes it, releases every request it held as `NotLeader` (never
//! in a slot: the driver forwards them), while requests in a slot whose
//! fate is unknown are refused `Deposed`. It never campaigns again.

use paxos_core::{
    AcceptReply, AcceptorId, AcceptorStatus, Allocation, Ballot, Effect, IdRequest, MemberId, Membership,
    NodeId, PrepareReply, Promise, Proposer, ProposerConfig, Refusal, RequestId, Role, SequenceName, Slot,
    Snapshot,
};

mod support;
use support::replies;

const ELECTION_MS: u64 = 400;

fn config() -> ProposerConfig {
    let mut config = ProposerConfig::new(NodeId(1), 3);
    config.pipeline_slots_max = 2;
    config.election_timeout_min_ms = ELECTION_MS;
    config.election_timeout_max_ms = ELECTION_MS;
    config.heartbeat_interval_ms = 50;
    config.accept_retry_ms = 200;
    config.id_timeout_ms = 5_000;
    config.quorum_contact_ms = ELECTION_MS;
    config
}

fn ballot(round: u64, node: u32) -> Ballot {
    Ballot::new(round, NodeId(node))
}

fn request(id: u64, count: u64) -> IdRequest {
    IdRequest {
        id: RequestId(id),
        sequence: SequenceName::default_sequence(),
        count,
        key: None,
    }
}

fn alloc(first: u64, count: u64) -> Allocation {
    Allocation {
        sequence: SequenceName::default_sequence(),
        first,
        count,
    }
}

fn no_leader_heard(p: &mut Proposer, now: u64) {
    for from in 0..3 {
        let status = AcceptorStatus {
            promised: ballot(0, 0),
            leader_heard_ago_ms: None,
        };
        p.handle_status(now, AcceptorId(from), status);
    }
}

fn promise(from: usize, ballot: Ballot) -> PrepareReply {
    PrepareReply::Promised(Promise {
        ballot,
        member: MemberId(from as u128 + 1),
        membership: Membership::founding((1..=3).map(MemberId)),
        snapshot: Snapshot::default(),
        votes: Vec::new(),
    })
}

fn accepted() -> AcceptReply {
    AcceptReply::Accepted {
        chosen_below: Slot(0),
        member: None,
    }
}

/// Leader under ballot 1.1, effects drained.
fn leader() -> Proposer {
    let mut p = Proposer::new(config(), 0, 0);
    no_leader_heard(&mut p, ELECTION_MS);
    p.tick(ELECTION_MS, 0);
    let b = ballot(1, 1);
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(0), b, promise(0, b));
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(1), b, promise(1, b));
    assert_eq!(p.role(), Role::Leader { ballot: b });
    let _ = p.drain_effects();
    p
}

/// An accept carries slot 1: the slot after the one in flight is opened.
/// (Catch-up accepts re-send chosen slot 0 to the acceptor behind.)
fn opens_a_slot(effects: &[Effect]) -> bool {
    effects.iter().any(|e| {
        matches!(e, Effect::Accept { accept, .. } | Effect::AcceptAll { accept } if accept.entries.iter().any(|(slot, _)| *slot >= Slot(1)))
    })
}

#[test]
fn a_resigned_leader_holds_new_requests_and_drains_the_slots_in_flight() {
    let mut p = leader();
    let b = ballot(1, 1);
    p.handle_request(500, request(1, 2));
    p.flush(500);
    assert_eq!(p.slots_in_flight(), 1);
    let _ = p.drain_effects();

    p.resign(501);
    assert!(p.is_resigned());
    assert!(!p.is_drained(), "slot 0 is still in flight");
    // A request arriving now is held: no slot, no answer.
    p.handle_request(502, request(2, 1));
    p.flush(502);
    p.tick(502, 0);
    let effects = p.drain_effects();
    assert!(
        !opens_a_slot(&effects),
        "a resigned leader opened a slot: {effects:?}"
    );
    assert_eq!(replies(&effects), vec![]);

    // Slot 0 is chosen: its client is answered, and nothing is left in a slot.
    p.handle_accept_reply(503, AcceptorId(0), b, &[Slot(0)], accepted());
    p.handle_accept_reply(503, AcceptorId(1), b, &[Slot(0)], accepted());
    let effects = p.drain_effects();
    assert_eq!(replies(&effects), vec![(RequestId(1), Ok(alloc(1, 2)))]);
    assert!(p.is_drained());
    assert_eq!(p.role(), Role::Leader { ballot: b }, "it leads until deposed");

    // Heartbeats go on (they keep followers from an election) but still no slot.
    p.tick(600, 0);
    p.flush(600);
    let effects = p.drain_effects();
    assert!(effects.iter().any(|e| matches!(e, Effect::Commit { .. })));
    assert!(!opens_a_slot(&effects));

    // The successor's ballot deposes it: the held request goes back as
    // NotLeader (forward it), never Deposed.
    let successor = ballot(2, 2);
    p.handle_commit_reply(
        610,
        AcceptorId(0),
        b,
        Ok(paxos_core::CommitReply {
            promised: successor,
            chosen_below: Slot(1),
        }),
    );
    assert_eq!(p.role(), Role::Follower);
    let effects = p.drain_effects();
    assert_eq!(replies(&effects), vec![(RequestId(2), Err(Refusal::NotLeader))]);
}

#[test]
fn a_slot_of_unknown_fate_is_refused_deposed_and_held_requests_not_leader() {
    let mut p = leader();
    let b = ballot(1, 1);
    p.handle_request(500, request(1, 1));
    p.flush(500);
    p.resign(501);
    p.handle_request(502, request(2, 1));
    p.flush(502);
    let _ = p.drain_effects();
    // Deposed before slot 0 was chosen: its IDs may yet be chosen by the
    // successor's recovery, so its client must not get them (nor a forward
    // that could look like a fresh call): Deposed, as on any step-down.
    p.handle_accept_reply(
        503,
        AcceptorId(0),
        b,
        &[Slot(0)],
        AcceptReply::Rejected {
            promised: ballot(2, 2),
        },
    );
    let effects = p.drain_effects();
    assert_eq!(
        replies(&effects),
        vec![
            (RequestId(2), Err(Refusal::NotLeader)),
            (RequestId(1), Err(Refusal::Deposed)),
        ]
    );
}

#[test]
fn a_resigned_proposer_never_campaigns() {
    let mut p = Proposer::new(config(), 0, 0);
    p.resign(0);
    assert!(p.is_drained(), "a follower has nothing to drain");
    for now in [ELECTION_MS, 2 * ELECTION_MS, 3 * ELECTION_MS] {
        no_leader_heard(&mut p, now);
        p.tick(now, 0);
    }
    p.campaign_now(4 * ELECTION_MS);
    assert_eq!(p.drain_effects(), vec![]);
    assert_eq!(p.role(), Role::Follower);

    // A candidate that resigns gives its campaign up.
    let mut p = Proposer::new(config(), 0, 0);
    no_leader_heard(&mut p, ELECTION_MS);
    p.tick(ELECTION_MS, 0);
    assert!(matches!(p.role(), Role::Candidate { .. }));
    p.resign(ELECTION_MS + 1);
    assert_eq!(p.role(), Role::Follower);
    let b = ballot(1, 1);
    p.handle_prepare_reply(ELECTION_MS + 2, AcceptorId(0), b, promise(0, b));
    p.handle_prepare_reply(ELECTION_MS + 2, AcceptorId(1), b, promise(1, b));
    assert_eq!(p.role(), Role::Follower, "late promises elect nobody");
}

#[test]
fn a_leader_that_did_not_resign_still_refuses_its_pending_requests_deposed() {
    let mut p = leader();
    let b = ballot(1, 1);
    p.handle_request(500, request(1, 1));
    p.flush(500);
    p.handle_request(501, request(2, 1));
    let _ = p.drain_effects();
    p.handle_accept_reply(
        502,
        AcceptorId(0),
        b,
        &[Slot(0)],
        AcceptReply::Rejected {
            promised: ballot(2, 2),
        },
    );
    let refusals: Vec<_> = replies(&p.drain_effects()).into_iter().map(|(_, r)| r).collect();
    assert_eq!(refusals, vec![Err(Refusal::Deposed), Err(Refusal::Deposed)]);
}
