//! What to do about blank acceptors in the cluster as founded (epoch 0):
//! found it, let a founder that missed its join in, or rebuild a lost
//! member. A pure decision over the acceptors' statuses, so that the
//! sequencer's members task and the simulation take the same one.
//!
//! - **First start**: every configured acceptor answered and every one is
//!   blank. Then this is a new cluster: each is sent `join` with the same
//!   founding membership (all of their node uuids), which every sequencer
//!   computes alike, so concurrent sequencers agree.
//! - **A founder that missed its join** (blank, but its uuid is a member,
//!   and no member was ever retired): it never voted, so it joins as it is.
//! - **An unfinished rebuild** (blank, its uuid a member, after a
//!   replacement): a rebuild's prepares admitted it, the install never came.
//!   It is rebuilt again, never joined: it stands in for lost votes.
//! - **A lost disk**: a blank acceptor whose uuid is not a member, while
//!   exactly one member is seen at no URL: rebuild it in that member's
//!   place ([`crate::Rebuild`]). Anything less clear-cut waits: guessing
//!   wrong would retire a member that is only down.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{AcceptorId, MemberId, Membership, Replace};

/// What one acceptor said in its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub member: MemberId,
    /// The epoch of the configuration it is in (0: as founded).
    pub epoch: u64,
    /// None while blank.
    pub membership: Option<Membership>,
    pub promised_round: u64,
}

/// What to do about membership now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to do, or nothing safe to do yet.
    Wait,
    /// Send `join` with this membership to these (blank) acceptors;
    /// `founding` when none is a member yet (then a floor applies).
    Join {
        acceptors: Vec<AcceptorId>,
        membership: Membership,
        founding: bool,
    },
    /// Rebuild a blank acceptor in the place of a lost member.
    Rebuild {
        target: AcceptorId,
        replace: Replace,
        /// Above every promise seen.
        round: u64,
    },
}

/// Decides from the acceptors' statuses (None: no answer).
pub fn plan(statuses: &[Option<Observed>]) -> Plan {
    let answered: Vec<(AcceptorId, &Observed)> = statuses
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().map(|s| (AcceptorId(i), s)))
        .collect();
    let blank: Vec<(AcceptorId, MemberId)> = answered
        .iter()
        .filter(|(_, s)| s.membership.is_none())
        .map(|(id, s)| (*id, s.member))
        .collect();
    if blank.is_empty() {
        return Plan::Wait;
    }
    let mut known = Membership::default();
    for (_, status) in &answered {
        if let Some(membership) = &status.membership {
            known.merge(membership);
        }
    }
    if known.members.is_empty() {
        // Nobody is a member yet: a first start, once every acceptor answered
        // and as itself (two URLs of one acceptor would found a smaller
        // cluster than the list says; `report_aliases` names them).
        if answered.len() < statuses.len() || !aliases(statuses).is_empty() {
            return Plan::Wait;
        }
        return Plan::Join {
            acceptors: blank.iter().map(|(id, _)| *id).collect(),
            membership: Membership::founding(blank.iter().map(|(_, m)| *m)),
            founding: true,
        };
    }
    let blank_voters: Vec<(AcceptorId, MemberId)> = blank
        .iter()
        .filter(|(_, member)| known.votes(*member))
        .copied()
        .collect();
    #[cfg(not(paxid_bug = "join_unfinished_rebuild"))]
    let founders_only = known.retired.is_empty();
    // Planted bug (scripts/planted-bugs.sh): a blank voter joins as a
    // founder even after a replacement, and votes with an empty log in the
    // place of lost votes (the rule before the simulation found it).
    #[cfg(paxid_bug = "join_unfinished_rebuild")]
    let founders_only = true;
    if !blank_voters.is_empty() && founders_only {
        // Nobody was ever replaced, so these are founders that missed
        // their join: they never voted, and join as they are.
        return Plan::Join {
            acceptors: blank_voters.iter().map(|(id, _)| *id).collect(),
            membership: known,
            founding: false,
        };
    }
    let seen: BTreeSet<MemberId> = answered.iter().map(|(_, s)| s.member).collect();
    let missing: Vec<MemberId> = known.voters().filter(|m| !seen.contains(m)).collect();
    if let ([(target, admit)], [], Some(retired)) =
        (blank_voters.as_slice(), missing.as_slice(), known.retired.last())
    {
        // A voter that is blank after a replacement: most likely admitted
        // by the prepares of a rebuild that never installed it. It never
        // voted, but it stands in for a member whose votes were lost, so
        // joining it empty would let a quorum without those votes choose
        // again: rebuild it instead (safe for a founder that missed its
        // join too). Its admission stands; `retire` names a member that is
        // retired already, which changes no membership.
        return Plan::Rebuild {
            target: *target,
            replace: Replace {
                retire: *retired,
                admit: *admit,
            },
            round: answered.iter().map(|(_, s)| s.promised_round).max().unwrap_or(0) + 1,
        };
    }
    // A retired identity can never vote again, whatever it says.
    let newcomers: Vec<(AcceptorId, MemberId)> = blank
        .into_iter()
        .filter(|(_, m)| !known.members.contains(m) && !known.retired.contains(m))
        .collect();
    match (newcomers.as_slice(), missing.as_slice()) {
        ([(target, admit)], [retire]) => Plan::Rebuild {
            target: *target,
            replace: Replace {
                retire: *retire,
                admit: *admit,
            },
            round: answered.iter().map(|(_, s)| s.promised_round).max().unwrap_or(0) + 1,
        },
        _ => Plan::Wait,
    }
}

/// Members that answer at more than one of the addresses, with those
/// addresses' positions. Votes count once per member whatever the list
/// says (the core counts members), but such a list holds fewer acceptors
/// than it seems to.
pub fn aliases(statuses: &[Option<Observed>]) -> BTreeMap<MemberId, Vec<usize>> {
    let mut at: BTreeMap<MemberId, Vec<usize>> = BTreeMap::new();
    for (i, status) in statuses.iter().enumerate() {
        if let Some(status) = status {
            at.entry(status.member).or_default().push(i);
        }
    }
    at.retain(|_, positions| positions.len() > 1);
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u128) -> MemberId {
        MemberId(i)
    }

    fn blank(i: u128) -> Option<Observed> {
        Some(Observed {
            member: member(i),
            epoch: 0,
            membership: None,
            promised_round: 0,
        })
    }

    fn voting(i: u128, membership: &Membership, round: u64) -> Option<Observed> {
        Some(Observed {
            member: member(i),
            epoch: 0,
            membership: Some(membership.clone()),
            promised_round: round,
        })
    }

    #[test]
    fn a_first_start_needs_every_acceptor_blank_and_answering() {
        assert_eq!(plan(&[blank(1), blank(2), None]), Plan::Wait);
        assert_eq!(
            plan(&[blank(3), blank(1), blank(2)]),
            Plan::Join {
                acceptors: vec![AcceptorId(0), AcceptorId(1), AcceptorId(2)],
                membership: Membership::founding([member(1), member(2), member(3)]),
                founding: true,
            }
        );
    }

    /// Issue 1 (found by the simulation): a rebuild's prepares admit the
    /// blank identity before its install. When the install never comes
    /// (the leader died, a higher promise stopped the attempt), the others
    /// name a voter that is still blank; joining it as a founder would make
    /// it vote with an empty log in the place of member 2, whose votes
    /// were lost. It is rebuilt again, wherever the prepares landed.
    #[test]
    fn a_blank_admitted_by_an_unfinished_rebuild_is_rebuilt_not_joined() {
        let founders = Membership::founding([member(1), member(2), member(3)]);
        let mut replaced = founders.clone();
        replaced.replace(Replace {
            retire: member(2),
            admit: member(9),
        });
        let again = Plan::Rebuild {
            target: AcceptorId(1),
            replace: Replace {
                retire: member(2),
                admit: member(9),
            },
            round: 6,
        };
        let both = [voting(1, &replaced, 5), blank(9), voting(3, &replaced, 5)];
        assert_eq!(plan(&both), again);
        let one = [voting(1, &replaced, 5), blank(9), voting(3, &founders, 2)];
        assert_eq!(plan(&one), again);
    }

    /// `127.0.0.1:7001` and `localhost:7001` in one list: founding would
    /// make a two-member cluster of what the operator thinks are three.
    #[test]
    fn no_founding_while_one_acceptor_answers_at_two_urls() {
        let statuses = [blank(1), blank(1), blank(2)];
        assert_eq!(plan(&statuses), Plan::Wait);
        assert_eq!(aliases(&statuses), BTreeMap::from([(member(1), vec![0, 1])]));
        assert!(aliases(&[blank(1), None, blank(2)]).is_empty());
    }

    #[test]
    fn a_founder_that_missed_its_join_joins_as_it_is() {
        let founders = Membership::founding([member(1), member(2), member(3)]);
        let statuses = [voting(1, &founders, 4), voting(2, &founders, 4), blank(3)];
        assert_eq!(
            plan(&statuses),
            Plan::Join {
                acceptors: vec![AcceptorId(2)],
                membership: founders,
                founding: false,
            }
        );
    }

    #[test]
    fn a_wiped_member_is_rebuilt_in_the_place_of_the_one_missing_member() {
        let founders = Membership::founding([member(1), member(2), member(3)]);
        let statuses = [voting(1, &founders, 4), blank(9), voting(3, &founders, 7)];
        assert_eq!(
            plan(&statuses),
            Plan::Rebuild {
                target: AcceptorId(1),
                replace: Replace {
                    retire: member(2),
                    admit: member(9),
                },
                round: 8,
            }
        );
    }

    #[test]
    fn an_unclear_picture_waits() {
        let founders = Membership::founding([member(1), member(2), member(3)]);
        // Member 3 is down, not known lost: two missing, one blank.
        assert_eq!(plan(&[voting(1, &founders, 1), blank(9), None]), Plan::Wait);
        // Nothing blank: nothing to do.
        assert_eq!(
            plan(&[voting(1, &founders, 1), voting(2, &founders, 1), None]),
            Plan::Wait
        );
        // A retired member never comes back by a join.
        let mut replaced = founders.clone();
        replaced.replace(Replace {
            retire: member(2),
            admit: member(9),
        });
        let statuses = [voting(1, &replaced, 1), blank(2), voting(9, &replaced, 1)];
        assert_eq!(plan(&statuses), Plan::Wait);
    }
}
