//! The leader against real acceptors: lagging acceptors converge through
//! the heartbeat's catch-up, a deposed leader campaigns from what it saw
//! chosen, and the timing and validation edges of the proposer.
//!
//! `Cluster` routes every `Prepare`, `Accept` and `Commit` effect to a real
//! in-memory `Acceptor` (when it is up) and feeds the reply back, so the
//! tests check where the acceptors end up as well as the exact effects.

use paxos_core::{
    Accept, AcceptReply, Acceptor, AcceptorId, AcceptorState, AcceptorStatus, Allocation, Ballot, Commit,
    CommitReply, Counters, Effect, IdRequest, MemberId, Membership, NodeId, Persisted, Prepare, PrepareReply,
    Promise, Proposer, ProposerConfig, Refusal, RequestId, Role, SequenceName, Slot, Snapshot, Step, Value,
};

const ELECTION_MS: u64 = 400;
const ACCEPTORS: usize = 3;

fn config() -> ProposerConfig {
    let mut config = ProposerConfig::new(NodeId(1), ACCEPTORS);
    config.pipeline_slots_max = 4;
    // min == max: the election timeout does not depend on the random draw.
    config.election_timeout_min_ms = ELECTION_MS;
    config.election_timeout_max_ms = ELECTION_MS;
    config.heartbeat_interval_ms = 50;
    config.accept_retry_ms = 200;
    config.id_timeout_ms = 10_000;
    config.quorum_contact_ms = 10_000;
    config
}

fn ballot(round: u64, node: u32) -> Ballot {
    Ballot::new(round, NodeId(node))
}

fn seq(name: &str) -> SequenceName {
    SequenceName::parse(name).expect("valid")
}

fn one(name: &str, first: u64, count: u64) -> Value {
    Value::Allocations(vec![Allocation {
        sequence: seq(name),
        first,
        count,
    }])
}

fn request(id: u64, name: &str, count: u64) -> IdRequest {
    IdRequest {
        id: RequestId(id),
        sequence: seq(name),
        count,
        key: None,
    }
}

fn member(acceptor: usize) -> MemberId {
    MemberId(acceptor as u128 + 1)
}

fn release<R>(step: Step<R>) -> R {
    step.into_reply(Persisted::after_durable_write())
}

/// A majority of acceptors answered a status poll at `now` and heard no
/// leader: what pre-vote needs before a follower campaigns.
fn no_leader_heard(p: &mut Proposer, now: u64) {
    for from in 0..2 {
        let status = AcceptorStatus {
            promised: Ballot::ZERO,
            leader_heard_ago_ms: None,
        };
        p.handle_status(now, AcceptorId(from), status);
    }
}

/// The effects addressed to acceptor `id`, in order; an accept for every
/// acceptor shows as an accept for `id`.
fn sent_to(effects: &[Effect], id: usize) -> Vec<Effect> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Prepare { to, .. } | Effect::Accept { to, .. } | Effect::Commit { to, .. } => {
                (to.0 == id).then(|| e.clone())
            }
            Effect::AcceptAll { accept } => Some(Effect::Accept {
                to: AcceptorId(id),
                accept: accept.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// One proposer and three real acceptors on a perfect network, except
/// that an acceptor that is down receives nothing.
struct Cluster {
    proposer: Proposer,
    acceptors: Vec<Acceptor>,
    up: Vec<bool>,
    /// Every effect the proposer emitted since the last `take_sent`.
    sent: Vec<Effect>,
}

impl Cluster {
    fn new(config: ProposerConfig) -> Cluster {
        let membership = Membership::founding((0..ACCEPTORS).map(member));
        Cluster {
            proposer: Proposer::new(config, 0, 0),
            acceptors: (0..ACCEPTORS)
                .map(|i| Acceptor::restore(AcceptorState::founded(member(i), membership.clone())))
                .collect(),
            up: vec![true; ACCEPTORS],
            sent: Vec::new(),
        }
    }

    /// Delivers every effect and its reply until the proposer is quiet.
    fn run(&mut self, now: u64) {
        loop {
            let effects = self.proposer.drain_effects();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                self.sent.push(effect.clone());
                self.deliver(now, effect);
            }
        }
    }

    fn deliver(&mut self, now: u64, effect: Effect) {
        let p = &mut self.proposer;
        match effect {
            Effect::Prepare { to, prepare } if self.up[to.0] => {
                let reply = release(self.acceptors[to.0].handle_prepare(&prepare));
                p.handle_prepare_reply(now, to, prepare.ballot, reply);
            }
            Effect::Accept { to, accept } if self.up[to.0] => {
                let slots: Vec<Slot> = accept.entries.iter().map(|(slot, _)| *slot).collect();
                let reply = release(self.acceptors[to.0].handle_accept(&accept));
                p.handle_accept_reply(now, to, accept.ballot, &slots, reply);
            }
            Effect::AcceptAll { accept } => {
                for to in (0..ACCEPTORS).map(AcceptorId) {
                    let accept = accept.clone();
                    self.deliver(now, Effect::Accept { to, accept });
                }
            }
            Effect::Commit { to, commit } if self.up[to.0] => {
                let reply = release(self.acceptors[to.0].handle_commit(&commit));
                p.handle_commit_reply(now, to, commit.ballot, reply);
            }
            _ => {}
        }
    }

    fn tick(&mut self, now: u64) {
        self.proposer.tick(now, 0);
        self.run(now);
    }

    /// Campaigns at `ELECTION_MS` and wins with the acceptors that are up.
    fn elect(&mut self) -> Ballot {
        no_leader_heard(&mut self.proposer, ELECTION_MS);
        self.tick(ELECTION_MS);
        let Role::Leader { ballot } = self.proposer.role() else {
            panic!("no leader: {:?}", self.proposer.role())
        };
        ballot
    }

    /// One request in one slot, proposed and (with a majority up) chosen.
    fn request(&mut self, now: u64, id: u64, name: &str, count: u64) {
        self.proposer.handle_request(now, request(id, name, count));
        self.proposer.flush(now);
        self.run(now);
    }

    fn take_sent(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.sent)
    }

    fn chosen(&self, acceptor: usize) -> Snapshot {
        self.acceptors[acceptor].chosen_snapshot()
    }
}

fn counters(entries: &[(&str, u64)]) -> Counters {
    Counters::from_map(entries.iter().map(|(name, next)| (seq(name), *next)).collect())
}

/// An acceptor that promised and then missed three chosen slots gets
/// exactly those slots on the first heartbeat after it is back, under the
/// current ballot, and marks them chosen.
#[test]
fn a_lagging_acceptor_gets_the_chosen_slots_it_missed_on_the_next_heartbeat() {
    let mut c = Cluster::new(config());
    let b = c.elect();
    c.up[2] = false;
    let now = ELECTION_MS + 1;
    for (id, name) in [(1, "a"), (2, "b"), (3, "a")] {
        c.request(now, id, name, 2);
    }
    assert_eq!(c.proposer.chosen_below(), Slot(3));
    assert_eq!(c.chosen(2).below, Slot(0));
    let _ = c.take_sent();

    c.up[2] = true;
    c.tick(now + 50);
    let sent = c.take_sent();
    let entries = vec![
        (Slot(0), one("a", 1, 2)),
        (Slot(1), one("b", 1, 2)),
        (Slot(2), one("a", 3, 2)),
    ];
    assert_eq!(
        sent_to(&sent, 2),
        vec![
            Effect::Commit {
                to: AcceptorId(2),
                commit: Commit {
                    ballot: b,
                    chosen_below: Slot(3),
                    snapshot: None,
                },
            },
            Effect::Accept {
                to: AcceptorId(2),
                accept: Accept {
                    ballot: b,
                    chosen_below: Slot(3),
                    entries,
                },
            },
        ],
        "the acceptor's promise said it had nothing chosen"
    );
    // The others last reported slot 2 as not chosen yet (their accept
    // carried the point before it): they get slot 2 again with the commit.
    for id in [0, 1] {
        assert_eq!(
            sent_to(&sent, id),
            vec![
                Effect::Commit {
                    to: AcceptorId(id),
                    commit: Commit {
                        ballot: b,
                        chosen_below: Slot(3),
                        snapshot: None,
                    },
                },
                Effect::Accept {
                    to: AcceptorId(id),
                    accept: Accept {
                        ballot: b,
                        chosen_below: Slot(3),
                        entries: vec![(Slot(2), one("a", 3, 2))],
                    },
                },
            ]
        );
    }
    let expected = Snapshot {
        below: Slot(3),
        counters: counters(&[("a", 5), ("b", 3)]),
    };
    assert_eq!(c.chosen(2), expected, "the lagging acceptor converged");
    assert_eq!(c.chosen(0), expected);

    // Caught up: the next heartbeat carries no catch-up accept.
    c.tick(now + 100);
    assert!(
        !c.take_sent().iter().any(|e| matches!(e, Effect::Accept { .. })),
        "nothing to catch up"
    );
}

/// With a catch-up window of two slots, an acceptor behind the window gets
/// the window's base as a snapshot in the commit, then the slots in the
/// window; one exactly at the base gets the slots only.
#[test]
fn an_acceptor_behind_the_catch_up_window_gets_a_snapshot_then_the_window() {
    let mut config = config();
    config.catchup_slots_max = 2;
    let mut c = Cluster::new(config);
    let b = c.elect();
    c.up[2] = false;
    let now = ELECTION_MS + 1;
    for id in 1..=4 {
        c.request(now, id, "a", 1);
    }
    assert_eq!(c.proposer.chosen_below(), Slot(4));
    let _ = c.take_sent();

    let window = vec![(Slot(2), one("a", 3, 1)), (Slot(3), one("a", 4, 1))];
    let base = Snapshot {
        below: Slot(2),
        counters: counters(&[("a", 3)]),
    };
    c.up[2] = true;
    c.tick(now + 50);
    assert_eq!(
        sent_to(&c.take_sent(), 2),
        vec![
            Effect::Commit {
                to: AcceptorId(2),
                commit: Commit {
                    ballot: b,
                    chosen_below: Slot(4),
                    snapshot: Some(base),
                },
            },
            Effect::Accept {
                to: AcceptorId(2),
                accept: Accept {
                    ballot: b,
                    chosen_below: Slot(4),
                    entries: window.clone(),
                },
            },
        ]
    );
    let expected = Snapshot {
        below: Slot(4),
        counters: counters(&[("a", 5)]),
    };
    assert_eq!(c.chosen(2), expected, "snapshot and window together catch it up");

    // An acceptor that reports the window's base needs no snapshot.
    c.up[2] = false;
    let at_base = CommitReply {
        promised: b,
        chosen_below: Slot(2),
    };
    c.proposer
        .handle_commit_reply(now + 60, AcceptorId(2), b, Ok(at_base));
    c.tick(now + 100);
    assert_eq!(
        sent_to(&c.take_sent(), 2),
        vec![
            Effect::Commit {
                to: AcceptorId(2),
                commit: Commit {
                    ballot: b,
                    chosen_below: Slot(4),
                    snapshot: None,
                },
            },
            Effect::Accept {
                to: AcceptorId(2),
                accept: Accept {
                    ballot: b,
                    chosen_below: Slot(4),
                    entries: window,
                },
            },
        ]
    );
}

/// A catch-up accept starts at the slot the acceptor reported, inside the
/// window, with the slots numbered from there.
#[test]
fn catch_up_starts_at_the_slot_the_acceptor_reported() {
    let mut config = config();
    config.catchup_slots_max = 3;
    let mut c = Cluster::new(config);
    let b = c.elect();
    let now = ELECTION_MS + 1;
    for id in 1..=5 {
        c.request(now, id, "a", 1);
    }
    // Window: slots 2, 3, 4 (base below 2).
    let _ = c.take_sent();
    c.up[2] = false;
    let behind = CommitReply {
        promised: b,
        chosen_below: Slot(3),
    };
    c.proposer.handle_commit_reply(now, AcceptorId(2), b, Ok(behind));
    c.tick(now + 50);
    let accepts: Vec<Accept> = sent_to(&c.take_sent(), 2)
        .into_iter()
        .filter_map(|e| match e {
            Effect::Accept { accept, .. } => Some(accept),
            _ => None,
        })
        .collect();
    assert_eq!(
        accepts,
        vec![Accept {
            ballot: b,
            chosen_below: Slot(5),
            entries: vec![(Slot(3), one("a", 4, 1)), (Slot(4), one("a", 5, 1))],
        }]
    );
}

/// A leader deposed after choosing slots campaigns again from the end of
/// what it saw chosen (window and base together), not from slot 0.
#[test]
fn a_deposed_leader_campaigns_again_from_what_it_saw_chosen() {
    let mut config = config();
    config.catchup_slots_max = 1;
    let mut c = Cluster::new(config);
    let b = c.elect();
    let now = ELECTION_MS + 1;
    for id in 1..=3 {
        c.request(now, id, "a", 1);
    }
    assert_eq!(c.proposer.chosen_below(), Slot(3));
    let _ = c.take_sent();

    let higher = CommitReply {
        promised: ballot(5, 2),
        chosen_below: Slot(3),
    };
    c.proposer.handle_commit_reply(now, AcceptorId(0), b, Ok(higher));
    assert_eq!(c.proposer.role(), Role::Follower);
    assert_eq!(c.proposer.chosen_below(), Slot(3));
    let _ = c.proposer.drain_effects();

    let later = now + ELECTION_MS;
    no_leader_heard(&mut c.proposer, later);
    c.proposer.tick(later, 0);
    let prepare = Prepare {
        ballot: ballot(6, 1),
        from: Slot(3),
        replace: None,
    };
    let expected: Vec<Effect> = (0..ACCEPTORS)
        .map(|to| Effect::Prepare {
            to: AcceptorId(to),
            prepare: prepare.clone(),
        })
        .collect();
    assert_eq!(c.proposer.drain_effects(), expected);
}

/// An accept nobody acknowledged is sent again to every acceptor once
/// `accept_retry_ms` has passed, and not a millisecond before.
#[test]
fn an_unacknowledged_accept_is_resent_after_exactly_the_retry_interval() {
    let mut c = Cluster::new(config());
    let b = c.elect();
    c.up = vec![false; ACCEPTORS];
    let now = ELECTION_MS + 1;
    c.request(now, 1, "a", 1);
    let _ = c.take_sent();
    let is_accept = |e: &Effect| matches!(e, Effect::Accept { .. });

    c.tick(now + 199);
    assert!(!c.take_sent().iter().any(is_accept), "too early to retry");
    c.tick(now + 200);
    let resent: Vec<Effect> = c.take_sent().into_iter().filter(is_accept).collect();
    let expected: Vec<Effect> = (0..ACCEPTORS)
        .map(|to| Effect::Accept {
            to: AcceptorId(to),
            accept: Accept {
                ballot: b,
                chosen_below: Slot(0),
                entries: vec![(Slot(0), one("a", 1, 1))],
            },
        })
        .collect();
    assert_eq!(resent, expected);
}

/// A rejection that names the leader's own ballot is no sign of a higher
/// one: the leader stays, and so do its clients.
#[test]
fn a_rejection_naming_the_leaders_own_ballot_does_not_depose_it() {
    let mut c = Cluster::new(config());
    let b = c.elect();
    let _ = c.take_sent();
    let now = ELECTION_MS + 1;
    let reply = AcceptReply::Rejected { promised: b };
    c.proposer
        .handle_accept_reply(now, AcceptorId(0), b, &[Slot(0)], reply);
    assert_eq!(c.proposer.role(), Role::Leader { ballot: b });
    assert_eq!(c.proposer.drain_effects(), vec![]);
}

/// A late rejection of a ballot this proposer no longer uses (a reply to an
/// old leadership) changes nothing, even when it names a higher ballot.
#[test]
fn a_stale_rejection_for_a_ballot_no_longer_led_changes_nothing() {
    let mut p = Proposer::new(config(), 0, 0);
    let reply = AcceptReply::Rejected {
        promised: ballot(3, 2),
    };
    p.handle_accept_reply(10, AcceptorId(0), ballot(1, 1), &[Slot(0)], reply);
    assert_eq!(p.role(), Role::Follower);
    assert_eq!(p.drain_effects(), vec![]);
}

/// A prepare delivered twice is rejected the second time with the same
/// ballot: that is no competitor, and the campaign goes on.
#[test]
fn a_rejection_naming_the_candidates_own_ballot_does_not_end_the_campaign() {
    let mut p = Proposer::new(config(), 0, 0);
    no_leader_heard(&mut p, ELECTION_MS);
    p.tick(ELECTION_MS, 0);
    let b = ballot(1, 1);
    assert_eq!(p.role(), Role::Candidate { ballot: b });
    let _ = p.drain_effects();
    let membership = Membership::founding((0..ACCEPTORS).map(member));
    let promise = |from: usize| {
        PrepareReply::Promised(Promise {
            ballot: b,
            member: member(from),
            membership: membership.clone(),
            snapshot: Snapshot::default(),
            votes: Vec::new(),
        })
    };
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(0), b, promise(0));
    p.handle_prepare_reply(
        ELECTION_MS,
        AcceptorId(0),
        b,
        PrepareReply::Rejected { promised: b },
    );
    assert_eq!(p.role(), Role::Candidate { ballot: b });
    p.handle_prepare_reply(ELECTION_MS, AcceptorId(1), b, promise(1));
    assert_eq!(p.role(), Role::Leader { ballot: b });
}

/// A late prepare rejection (the third acceptor answering after the
/// campaign was won) does not end a leadership: only a rejected accept or
/// commit deposes a leader, and then with its clients answered.
#[test]
fn a_late_prepare_rejection_does_not_end_a_leadership() {
    let mut c = Cluster::new(config());
    c.up[2] = false;
    let b = c.elect();
    let _ = c.take_sent();
    let reply = PrepareReply::Rejected {
        promised: ballot(1, 2),
    };
    c.proposer
        .handle_prepare_reply(ELECTION_MS + 1, AcceptorId(2), b, reply);
    assert_eq!(c.proposer.role(), Role::Leader { ballot: b });
    assert_eq!(c.proposer.drain_effects(), vec![]);
}

/// A promise whose ballot is not that of the prepare it answers (a forged
/// or confused reply) counts for nothing.
#[test]
fn a_promise_naming_another_ballot_is_not_counted() {
    let mut p = Proposer::new(config(), 0, 0);
    no_leader_heard(&mut p, ELECTION_MS);
    p.tick(ELECTION_MS, 0);
    let b = ballot(1, 1);
    let _ = p.drain_effects();
    let membership = Membership::founding((0..ACCEPTORS).map(member));
    for from in 0..ACCEPTORS {
        let reply = PrepareReply::Promised(Promise {
            ballot: ballot(0, 9),
            member: member(from),
            membership: membership.clone(),
            snapshot: Snapshot::default(),
            votes: Vec::new(),
        });
        p.handle_prepare_reply(ELECTION_MS, AcceptorId(from), b, reply);
    }
    assert_eq!(p.role(), Role::Candidate { ballot: b });
    assert_eq!(p.drain_effects(), vec![]);
}

/// The election timeout is drawn from `min..=max` with the random input:
/// `min + random % (max - min + 1)`; with 400..=800 and 1000, 598 ms.
#[test]
fn the_election_timeout_is_drawn_from_its_range() {
    let mut config = config();
    config.election_timeout_min_ms = 400;
    config.election_timeout_max_ms = 800;
    let mut p = Proposer::new(config, 0, 1000);
    no_leader_heard(&mut p, 597);
    p.tick(597, 0);
    assert_eq!(p.role(), Role::Follower, "597 ms is before the timeout");
    no_leader_heard(&mut p, 598);
    p.tick(598, 0);
    assert_eq!(p.role(), Role::Candidate { ballot: ballot(1, 1) });
}

/// A configuration whose heartbeat is not shorter than the election
/// timeout would depose healthy leaders: the proposer refuses it.
#[test]
#[should_panic(expected = "heartbeat_interval_ms < self.election_timeout_min_ms")]
fn a_heartbeat_not_shorter_than_the_election_timeout_is_refused() {
    let mut config = config();
    config.heartbeat_interval_ms = ELECTION_MS;
    let _ = Proposer::new(config, 0, 0);
}

/// `sequences_max` counts distinct sequences, within one batch as across
/// slots: a second new sequence is refused, the known one keeps going.
#[test]
fn a_new_sequence_beyond_the_limit_is_refused_even_within_one_batch() {
    let mut config = config();
    config.sequences_max = 1;
    let mut c = Cluster::new(config);
    let _ = c.elect();
    let _ = c.take_sent();
    let now = ELECTION_MS + 1;
    c.proposer.handle_request(now, request(1, "a", 1));
    c.proposer.handle_request(now, request(2, "b", 1));
    c.proposer.handle_request(now, request(3, "a", 2));
    c.proposer.flush(now);
    c.run(now);
    c.request(now, 4, "a", 1);
    let replies: Vec<(RequestId, Result<Allocation, Refusal>)> = c
        .take_sent()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Reply { request, result } => Some((request, result)),
            _ => None,
        })
        .collect();
    let ids = |first, count| {
        Ok(Allocation {
            sequence: seq("a"),
            first,
            count,
        })
    };
    assert_eq!(
        replies,
        vec![
            (RequestId(2), Err(Refusal::TooManySequences)),
            (RequestId(1), ids(1, 1)),
            (RequestId(3), ids(2, 2)),
            (RequestId(4), ids(4, 1)),
        ]
    );
}

/// `is_leader` is what the driver asks before it serves or forwards a
/// client: true exactly while the role is leader.
#[test]
fn is_leader_follows_the_role() {
    let mut c = Cluster::new(config());
    assert!(!c.proposer.is_leader(), "a new proposer follows");
    let b = c.elect();
    assert!(c.proposer.is_leader());
    let higher = AcceptReply::Rejected {
        promised: ballot(2, 2),
    };
    c.proposer
        .handle_accept_reply(ELECTION_MS + 1, AcceptorId(0), b, &[Slot(0)], higher);
    assert!(!c.proposer.is_leader(), "deposed");
}

/// A reconfiguration must name the next epoch and be valid (at least one
/// seat, no address or member twice); anything else is refused and
/// nothing is proposed.
#[test]
fn a_reconfiguration_to_a_wrong_epoch_or_an_invalid_one_is_refused() {
    use paxos_core::{Configuration, Seat};
    let mut c = Cluster::new(config());
    let _ = c.elect();
    let _ = c.take_sent();
    let seat = |i: u128| Seat {
        address: format!("http://a{i}"),
        member: MemberId(10 + i),
    };
    let skipping = Configuration {
        epoch: 2,
        seats: vec![seat(0), seat(1), seat(2)],
    };
    let twice = Configuration {
        epoch: 1,
        seats: vec![seat(0), seat(0)],
    };
    let empty = Configuration {
        epoch: 1,
        seats: Vec::new(),
    };
    let now = ELECTION_MS + 1;
    for (id, configuration) in [skipping, twice, empty].into_iter().enumerate() {
        let request = RequestId(id as u64);
        c.proposer.handle_reconfigure(now, request, configuration);
        assert_eq!(
            c.proposer.drain_effects(),
            vec![Effect::Reply {
                request,
                result: Err(Refusal::Reconfiguring)
            }]
        );
    }
    assert_eq!(c.proposer.slots_in_flight(), 0);
}

/// The sequencer that ended the previous epoch campaigns at once in the
/// new one; a proposer already campaigning does not start over.
#[test]
fn campaign_now_starts_one_campaign_without_waiting() {
    let mut p = Proposer::new(config(), 0, 0);
    p.campaign_now(5);
    let b = ballot(1, 1);
    assert_eq!(p.role(), Role::Candidate { ballot: b });
    let prepare = Prepare {
        ballot: b,
        from: Slot(0),
        replace: None,
    };
    let expected: Vec<Effect> = (0..ACCEPTORS)
        .map(|to| Effect::Prepare {
            to: AcceptorId(to),
            prepare: prepare.clone(),
        })
        .collect();
    assert_eq!(p.drain_effects(), expected);
    p.campaign_now(6);
    assert_eq!(p.role(), Role::Candidate { ballot: b }, "no second round");
    assert_eq!(p.drain_effects(), vec![]);
}

/// Without pre-vote (as in the model check) a follower still does not
/// campaign while a majority of acceptors report hearing the leader within
/// the election timeout; it campaigns once they stop hearing it.
#[test]
fn without_prevote_a_follower_whose_acceptors_hear_the_leader_stays_quiet() {
    let mut config = config();
    config.prevote = false;
    let mut p = Proposer::new(config, 0, 0);
    let heard = |ago| AcceptorStatus {
        promised: ballot(3, 2),
        leader_heard_ago_ms: Some(ago),
    };
    for now in [ELECTION_MS, 2 * ELECTION_MS] {
        for from in 0..2 {
            p.handle_status(now, AcceptorId(from), heard(10));
        }
        p.tick(now, 0);
        assert_eq!(p.role(), Role::Follower, "the leader is alive at {now}");
    }
    let now = 3 * ELECTION_MS + 1;
    for from in 0..2 {
        p.handle_status(now, AcceptorId(from), heard(ELECTION_MS + 1));
    }
    p.tick(now, 0);
    assert_eq!(p.role(), Role::Candidate { ballot: ballot(4, 1) });
}

/// A ballot of an earlier epoch (an acceptor that has not moved yet) says
/// nothing to a proposer of a later one; a later epoch supersedes it once,
/// and it reports that once.
#[test]
fn earlier_epochs_are_ignored_and_a_later_one_supersedes_once() {
    let mut config = config();
    config.epoch = 1;
    let mut p = Proposer::new(config, 0, 0);
    let status = |epoch| AcceptorStatus {
        promised: Ballot::in_epoch(epoch, 5, NodeId(2)),
        leader_heard_ago_ms: None,
    };
    p.handle_status(10, AcceptorId(0), status(0));
    assert_eq!(p.ended(), None);
    assert_eq!(p.drain_effects(), vec![]);
    p.handle_status(20, AcceptorId(1), status(2));
    assert_eq!(p.ended(), Some(2));
    assert_eq!(p.drain_effects(), vec![Effect::Superseded { epoch: 2 }]);
    p.handle_status(30, AcceptorId(2), status(3));
    assert_eq!(p.ended(), Some(2), "already over");
    assert_eq!(p.drain_effects(), vec![]);
}

/// A leader deposed and elected again where it left off (a rebuild's
/// phase 1 does this to the leader that runs it) catches the acceptors up
/// with the values it chose, not with a snapshot. Its chosen point is ahead
/// of theirs (they learn it a round trip late), so a snapshot would fold
/// away, on every acceptor at once, the slots no learner has read yet (the
/// container suite lost 437 slots of delivery that way).
#[test]
fn a_leader_elected_again_where_it_left_off_catches_up_with_values_not_snapshots() {
    let mut c = Cluster::new(config());
    let b = c.elect();
    let now = ELECTION_MS + 1;
    for id in 1..=3 {
        c.request(now, id, "a", 1);
    }
    assert_eq!(c.proposer.chosen_below(), Slot(3));
    assert!(
        c.chosen(0).below < Slot(3),
        "acceptors learn the chosen point late"
    );
    let higher = CommitReply {
        promised: ballot(5, 2),
        chosen_below: Slot(2),
    };
    c.proposer.handle_commit_reply(now, AcceptorId(0), b, Ok(higher));
    assert_eq!(c.proposer.role(), Role::Follower);
    let _ = c.proposer.drain_effects();

    let later = now + ELECTION_MS;
    no_leader_heard(&mut c.proposer, later);
    c.tick(later);
    assert!(
        matches!(c.proposer.role(), Role::Leader { .. }),
        "{:?}",
        c.proposer.role()
    );
    c.tick(later + 50);
    let snapshots = c
        .take_sent()
        .into_iter()
        .filter(|e| matches!(e, Effect::Commit { commit, .. } if commit.snapshot.is_some()))
        .count();
    assert_eq!(snapshots, 0, "no acceptor gets a snapshot");
    for a in 0..ACCEPTORS {
        assert_eq!(c.chosen(a).below, Slot(3), "acceptor {a} caught up");
        assert_eq!(
            c.acceptors[a].state().base.below,
            Slot(0),
            "acceptor {a} keeps its log"
        );
    }
}
