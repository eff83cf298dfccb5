//! Rebuilding a blank acceptor in the place of a lost member.
//!
//! An acceptor whose disk was lost comes back blank, with a new
//! [`MemberId`], and never votes until it is rebuilt. Copying the others'
//! votes is not enough: a promise the lost disk gave may still be held by
//! a candidate, which could complete its phase 1 with it and a promise of
//! another acceptor, while the rebuilt acceptor votes for lower ballots the
//! lost disk had refused. A rebuild therefore is a phase 1 of its own:
//!
//! 1. It prepares a ballot above every promise it has seen, on every
//!    acceptor but the blank one, with `replace: {retire: lost, admit:
//!    blank}`. Each acceptor that promises records the replacement in the
//!    same write as the promise.
//! 2. With promises from a quorum of members (the lost one never counts),
//!    it computes what a leader of that ballot would propose: the highest
//!    chosen snapshot and, above it, the highest-ballot value of each slot.
//! 3. It installs that on the blank acceptor as votes under its ballot, and
//!    the ballot as its promise. Only then does the acceptor vote.
//!
//! Why this is safe, in short (ARCHITECTURE.md has the whole argument and
//! the model check explores it with disk loss among its faults): every
//! value chosen so far was accepted by a quorum, which intersects the
//! rebuild's quorum outside the lost member, so the install holds it.
//! Every ballot below the rebuild's is fenced on that quorum and on the
//! rebuilt acceptor. A candidate holding a promise of the lost disk can
//! complete only with a member of the rebuild's quorum; if that member
//! promised the candidate before the rebuild, the rebuild's ballot is
//! above the candidate's and fences it; if after, its promise reports the
//! lost member retired and the candidate does not count the stale promise.
//! The installed votes carry the rebuild's ballot, which no leader can
//! use (its phase 1 would need a member that promised it already), so they
//! never join a majority with anyone's and never look chosen by themselves.

use std::collections::BTreeMap;

use crate::acceptor::{Install, Prepare, PrepareReply, Promise};
use crate::proposer::{countable, recover_log};
use crate::types::{quorum, AcceptorId, Ballot, Membership, Replace, Slot, Snapshot};

/// One rebuild attempt: a ballot, the blank acceptor, the member it replaces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rebuild {
    prepare: Prepare,
    target: AcceptorId,
    acceptors: usize,
    promises: BTreeMap<AcceptorId, Promise>,
    membership: Membership,
}

/// Where a rebuild stands after a reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RebuildStep {
    /// Not a quorum yet.
    Waiting,
    /// An acceptor promised a higher ballot: try again above it.
    Rejected { promised: Ballot },
    /// A quorum promised: send this to the blank acceptor, once.
    Install(Install),
}

impl Rebuild {
    /// `ballot` must be above every promise seen; `acceptors` is the size
    /// of the cluster (the blank acceptor included).
    pub fn new(ballot: Ballot, target: AcceptorId, replace: Replace, acceptors: usize) -> Rebuild {
        assert!(target.0 < acceptors, "the blank acceptor is one of the cluster's");
        Rebuild {
            prepare: Prepare {
                ballot,
                from: Slot::ZERO,
                replace: Some(replace),
            },
            target,
            acceptors,
            promises: BTreeMap::new(),
            membership: Membership::default(),
        }
    }

    pub fn ballot(&self) -> Ballot {
        self.prepare.ballot
    }

    pub fn target(&self) -> AcceptorId {
        self.target
    }

    /// The prepares to send: to every acceptor but the blank one.
    pub fn prepares(&self) -> Vec<(AcceptorId, Prepare)> {
        (0..self.acceptors)
            .map(AcceptorId)
            .filter(|to| *to != self.target)
            .map(|to| (to, self.prepare.clone()))
            .collect()
    }

    pub fn handle_prepare_reply(&mut self, from: AcceptorId, reply: PrepareReply) -> RebuildStep {
        match reply {
            PrepareReply::Rejected { promised } => RebuildStep::Rejected { promised },
            PrepareReply::NotVoting => RebuildStep::Waiting,
            PrepareReply::Promised(promise) => {
                if from == self.target || promise.ballot != self.prepare.ballot {
                    return RebuildStep::Waiting;
                }
                self.promises.insert(from, promise);
                let counted = countable(&self.promises, &mut self.membership);
                if counted.len() < quorum(self.acceptors) {
                    return RebuildStep::Waiting;
                }
                let recovered = recover_log(counted.values().copied(), &Snapshot::default());
                RebuildStep::Install(Install {
                    ballot: self.prepare.ballot,
                    membership: self.membership.clone(),
                    snapshot: recovered.base,
                    entries: recovered.highest.into_iter().collect(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Accepted, Allocation, Counters, MemberId, NodeId, SequenceName, Value};

    fn promise(
        ballot: Ballot,
        member: u128,
        membership: &Membership,
        entries: Vec<(Slot, Accepted)>,
    ) -> PrepareReply {
        PrepareReply::Promised(Promise {
            ballot,
            member: MemberId(member),
            membership: membership.clone(),
            snapshot: Snapshot::default(),
            votes: entries,
        })
    }

    fn vote(round: u64, first: u64) -> Accepted {
        Accepted {
            ballot: Ballot::new(round, NodeId(1)),
            value: Value::Allocations(vec![Allocation {
                sequence: SequenceName::default_sequence(),
                first,
                count: 1,
            }]),
            chosen: false,
        }
    }

    #[test]
    fn a_quorum_of_the_others_yields_the_install_a_leader_would_send() {
        let replace = Replace {
            retire: MemberId(2),
            admit: MemberId(9),
        };
        let b = Ballot::new(5, NodeId(3));
        let mut rebuild = Rebuild::new(b, AcceptorId(1), replace, 3);
        let targets: Vec<AcceptorId> = rebuild.prepares().into_iter().map(|(to, _)| to).collect();
        assert_eq!(
            targets,
            vec![AcceptorId(0), AcceptorId(2)],
            "never the blank acceptor"
        );
        assert!(rebuild.prepares().iter().all(|(_, p)| p.replace == Some(replace)));
        let mut membership = Membership::founding([MemberId(1), MemberId(2), MemberId(3)]);
        membership.replace(replace);
        let first = promise(
            b,
            1,
            &membership,
            vec![(Slot(0), vote(1, 1)), (Slot(1), vote(2, 5))],
        );
        assert_eq!(
            rebuild.handle_prepare_reply(AcceptorId(0), first),
            RebuildStep::Waiting
        );
        // The blank acceptor cannot count, whatever it sends.
        let stray = promise(b, 9, &membership, Vec::new());
        assert_eq!(
            rebuild.handle_prepare_reply(AcceptorId(1), stray),
            RebuildStep::Waiting
        );
        let second = promise(b, 3, &membership, vec![(Slot(0), vote(3, 2))]);
        let RebuildStep::Install(install) = rebuild.handle_prepare_reply(AcceptorId(2), second) else {
            panic!("a quorum of the others promised")
        };
        assert_eq!(install.ballot, b);
        assert_eq!(install.membership, membership);
        assert_eq!(
            install.entries,
            vec![(Slot(0), vote(3, 2).value), (Slot(1), vote(2, 5).value)],
            "per slot, the value of the highest ballot"
        );
    }

    #[test]
    fn the_retired_member_never_counts_and_a_higher_promise_stops_the_attempt() {
        let replace = Replace {
            retire: MemberId(2),
            admit: MemberId(9),
        };
        let b = Ballot::new(5, NodeId(3));
        let mut rebuild = Rebuild::new(b, AcceptorId(2), replace, 3);
        let mut membership = Membership::founding([MemberId(1), MemberId(2), MemberId(3)]);
        membership.replace(replace);
        // The lost member's old disk, answering from another place, does not count.
        let stale = promise(
            b,
            2,
            &Membership::founding([MemberId(1), MemberId(2), MemberId(3)]),
            Vec::new(),
        );
        assert_eq!(
            rebuild.handle_prepare_reply(AcceptorId(1), stale),
            RebuildStep::Waiting
        );
        assert_eq!(
            rebuild.handle_prepare_reply(AcceptorId(0), promise(b, 1, &membership, Vec::new())),
            RebuildStep::Waiting
        );
        let higher = Ballot::new(6, NodeId(1));
        assert_eq!(
            rebuild.handle_prepare_reply(AcceptorId(1), PrepareReply::Rejected { promised: higher }),
            RebuildStep::Rejected { promised: higher }
        );
        let _ = Counters::default();
    }
}
