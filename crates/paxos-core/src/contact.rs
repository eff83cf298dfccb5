//! Which leader an acceptor last heard, and whether it is still the leader
//! its status may name.
//!
//! Followers decide when to campaign from what the acceptors report here
//! (see [`crate::proposer::AcceptorStatus`]): a majority that heard no
//! leader lets one campaign, and a single acceptor that still hears one
//! keeps it quiet (pre-vote with leader stickiness). So the rules of what
//! counts as hearing a leader are protocol, and live here once, not in
//! each driver:
//!
//! - Only an accept the acceptor took (`Accepted`) is contact: a refused
//!   one came from a deposed leader, a conflicting one from a faulty one.
//! - A heartbeat (commit) is contact only when it comes from the ballot the
//!   acceptor promised after it: one from below the promise is a deposed
//!   leader still beating.
//! - A status names a leader only if it was heard under the current
//!   promise: a later promise means a candidate is running or won, and the
//!   old leader may no longer reach a majority.
//! - A move to another epoch forgets the leader: nobody leads the new one
//!   until a phase 1 there.
//!
//! The driver says who the leader is (`L`: a URL in the acceptor service,
//! a node index in the simulation) and what time it is (`at_ms`, `now_ms`
//! on any clock of its own that does not go back); nothing here is durable,
//! since a restarted acceptor has heard nobody yet.

use crate::acceptor::{Accept, AcceptReply, Commit, CommitReply, JoinReply, NotVoting};
use crate::types::Ballot;

/// The last leader an acceptor heard from, under which ballot and when.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaderContact<L> {
    last: Option<Contact<L>>,
}

/// What a status reports: the leader heard under the current promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Heard<'a, L> {
    pub ballot: Ballot,
    pub leader: &'a L,
    pub heard_ago_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Contact<L> {
    ballot: Ballot,
    leader: L,
    at_ms: u64,
}

impl<L> Default for LeaderContact<L> {
    fn default() -> Self {
        LeaderContact::new()
    }
}

impl<L> LeaderContact<L> {
    /// Nobody heard yet: how every acceptor process starts.
    pub const fn new() -> LeaderContact<L> {
        LeaderContact { last: None }
    }

    /// The acceptor answered `accept` from `leader` with `reply` at `at_ms`:
    /// contact only if it took it. `Accepted` also means the acceptor's
    /// promise is now the accept's ballot.
    pub fn accepted(&mut self, accept: &Accept, reply: &AcceptReply, at_ms: u64, leader: L) {
        if matches!(reply, AcceptReply::Accepted { .. }) {
            self.record(accept.ballot, leader, at_ms);
        }
    }

    /// The acceptor answered the heartbeat `commit` from `leader` with
    /// `reply` at `at_ms`: contact only if the promise it reports is the
    /// commit's ballot (a commit above the promise raised it to that). A
    /// heartbeat from below the promise comes from a deposed leader and
    /// must not keep followers quiet.
    pub fn committed(
        &mut self,
        commit: &Commit,
        reply: &Result<CommitReply, NotVoting>,
        at_ms: u64,
        leader: L,
    ) {
        if matches!(reply, Ok(r) if r.promised == commit.ballot) {
            self.record(commit.ballot, leader, at_ms);
        }
    }

    /// The acceptor answered a transition with `reply`: once it has moved to
    /// another epoch, a leader of the epoch before is no leader there.
    pub fn transitioned(&mut self, reply: &JoinReply) {
        if *reply == JoinReply::Joined {
            self.forget();
        }
    }

    /// Forgets the leader (a restart, a lost disk).
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// The leader to report while the acceptor's promise is `promised`: only
    /// one heard under that very ballot, with how long ago (saturating, so a
    /// driver clock read before `at_ms` reports 0).
    pub fn status(&self, promised: Ballot, now_ms: u64) -> Option<Heard<'_, L>> {
        self.last
            .as_ref()
            .filter(|contact| contact.ballot == promised)
            .map(|contact| Heard {
                ballot: contact.ballot,
                leader: &contact.leader,
                heard_ago_ms: now_ms.saturating_sub(contact.at_ms),
            })
    }

    fn record(&mut self, ballot: Ballot, leader: L, at_ms: u64) {
        self.last = Some(Contact {
            ballot,
            leader,
            at_ms,
        });
    }
}
