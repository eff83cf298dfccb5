//! The internal API between services, under `/v1/`. See docs/internal-api.md.
//!
//! Protocol rejections (a ballot below the promise) are answers, not errors:
//! they come back as `200` with `"outcome": "rejected"` and the promised ballot.

use std::collections::BTreeMap;

use paxos_core as core;
use serde::{Deserialize, Serialize};

/// Ordered by `(epoch, round, node)`; `epoch` is left out while 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ballot {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    pub round: u64,
    pub node: u32,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub sequence: String,
    pub id: u64,
    pub count: u64,
}

/// IDs `id ..= id + count - 1` of `sequence`, handed to the request
/// that carried `key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyedPart {
    pub key: String,
    pub sequence: String,
    pub id: u64,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Value {
    Noop,
    Allocations {
        allocations: Vec<Allocation>,
        /// The parts keyed requests (`Idempotency-Key`) received, each
        /// inside one of `allocations`; absent when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keys: Vec<KeyedPart>,
    },
    /// The stop sign: the log goes on, after this slot, in `configuration`.
    Reconfigure {
        configuration: Configuration,
    },
}

/// The acceptors of an epoch after the first, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Configuration {
    pub epoch: u64,
    pub seats: Vec<Seat>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seat {
    /// Base URL every sequencer and learner uses for this acceptor.
    pub url: String,
    pub node_uuid: String,
}

/// `POST /v1/transition`: moves an acceptor into a configuration chosen
/// through the log, starting from a chosen snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub configuration: Configuration,
    pub snapshot: Snapshot,
    /// The leader's last chosen values with its chosen point, applied as an
    /// accept just before the move: a member of the ended epoch marks them
    /// chosen and keeps its log for learners instead of folding it into the
    /// snapshot (see `paxos_core::Effect::Reconfigured`). Absent when a
    /// transition read from an acceptor is passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<AcceptRequest>,
}

/// One slot's vote as an acceptor holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub slot: u64,
    pub ballot: Ballot,
    pub value: Value,
    pub chosen: bool,
}

/// A value to accept in one slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    pub slot: u64,
    pub value: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub below: u64,
    /// Next ID per sequence.
    pub counters: BTreeMap<String, u64>,
}

/// Who may vote: acceptor identities (their `node_uuid`), each set only
/// grows. See ARCHITECTURE.md, "Lost disks".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub members: Vec<String>,
    #[serde(default)]
    pub retired: Vec<String>,
}

/// A lost member and the blank acceptor rebuilt in its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    pub retire: String,
    pub admit: String,
}

/// `POST /v1/prepare`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareRequest {
    pub ballot: Ballot,
    pub from: u64,
    /// Only from a rebuild: recorded with the promise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<Replace>,
}

/// `POST /v1/join`: founds a new cluster on blank acceptors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub membership: Membership,
    /// Next ID per sequence to start at or above (a re-created cluster).
    #[serde(default)]
    pub floor: BTreeMap<String, u64>,
}

/// `POST /v1/install`: a rebuild's result, for the blank acceptor that
/// replaces a lost member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    pub ballot: Ballot,
    pub membership: Membership,
    pub snapshot: Snapshot,
    pub entries: Vec<Proposal>,
}

/// The answer to a join or an install that took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinResponse {
    pub voting: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum PrepareResponse {
    Promised {
        ballot: Ballot,
        /// The promising acceptor's `node_uuid`, and who it knows may vote.
        member: String,
        membership: Membership,
        snapshot: Snapshot,
        entries: Vec<Entry>,
    },
    Rejected {
        promised: Ballot,
    },
}

/// `POST /v1/accept`: many slots under one ballot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    pub ballot: Ballot,
    pub chosen_below: u64,
    pub proposals: Vec<Proposal>,
    /// How peers reach the leader; recorded for followers' forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_url: Option<String>,
}

/// Fields unknown to this version are ignored (an answer from a newer
/// acceptor), unlike in requests, whose shape is checked strictly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AcceptResponse {
    /// `node_uuid`: the member that voted; absent from acceptors before it
    /// existed (their votes count per URL).
    Accepted {
        chosen_below: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_uuid: Option<String>,
    },
    Rejected {
        promised: Ballot,
    },
}

/// `POST /v1/commit`: the leader's heartbeat and chosen point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub ballot: Ballot,
    pub chosen_below: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    pub leader_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitResponse {
    pub promised: Ballot,
    pub chosen_below: u64,
}

/// `GET /v1/log?from=S&limit=N`: votes from slot S on, for learners.
/// Fields unknown to this version are ignored (an answer from a newer
/// acceptor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogResponse {
    /// Slots below this were compacted away.
    pub compacted_below: u64,
    /// Every slot below this is chosen.
    pub chosen_below: u64,
    pub entries: Vec<Entry>,
    /// Who answers: a learner counts a vote once per member, so one
    /// acceptor listed at two URLs is one vote. Absent from acceptors
    /// before it existed (their votes count per URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_uuid: Option<String>,
}

/// The leader an acceptor last heard under its promised ballot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderInfo {
    pub ballot: Ballot,
    pub url: String,
    pub heard_ago_ms: u64,
}

/// `GET /v1/status` of an acceptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptorStatus {
    pub cluster_id: String,
    pub node_uuid: String,
    /// `blank` (not founded or not rebuilt yet: it does not vote),
    /// `voting`, or `retired` (replaced after its disk was lost).
    pub state: MemberState,
    /// None while blank.
    pub membership: Option<Membership>,
    /// The configuration it moved to last; None in epoch 0 (the cluster as
    /// founded, addressed by each process's `--acceptors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Configuration>,
    pub promised: Ballot,
    pub leader: Option<LeaderInfo>,
    pub chosen_below: u64,
    pub compacted_below: u64,
    pub log_entries: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    Blank,
    Voting,
    Retired,
}

/// `POST /v1/learners/{id}/progress`: a learner has taken every slot below
/// `learned_below`, so acceptors may compact up to there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerProgress {
    pub learned_below: u64,
}

/// `POST /v1/chosen` on a learner: slots the leader just saw chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChosenPush {
    pub slots: Vec<Proposal>,
    /// The epoch of the leader that saw them chosen: a learner following
    /// another epoch drops the push (slots after a stop sign are void).
    #[serde(default)]
    pub epoch: u64,
}

// ---- conversions to and from paxos-core -------------------------------

impl From<core::Ballot> for Ballot {
    fn from(b: core::Ballot) -> Ballot {
        Ballot {
            epoch: b.epoch,
            round: b.round,
            node: b.node.0,
        }
    }
}

impl From<Ballot> for core::Ballot {
    fn from(b: Ballot) -> core::Ballot {
        core::Ballot::in_epoch(b.epoch, b.round, core::NodeId(b.node))
    }
}

/// Most seats a configuration may have, and the longest acceptor URL.
pub const SEATS_MAX: usize = 64;
pub const URL_LEN_MAX: usize = 2048;

impl From<&core::Configuration> for Configuration {
    fn from(c: &core::Configuration) -> Configuration {
        Configuration {
            epoch: c.epoch,
            seats: c
                .seats
                .iter()
                .map(|s| Seat {
                    url: s.address.clone(),
                    node_uuid: node_uuid(s.member),
                })
                .collect(),
        }
    }
}

impl TryFrom<&Configuration> for core::Configuration {
    type Error = String;
    fn try_from(c: &Configuration) -> Result<core::Configuration, String> {
        if c.seats.len() > SEATS_MAX {
            return Err(format!("a configuration has at most {SEATS_MAX} seats"));
        }
        let mut seats = Vec::with_capacity(c.seats.len());
        for seat in &c.seats {
            let url = seat.url.trim_end_matches('/');
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.len() > URL_LEN_MAX || url.chars().any(|ch| ch.is_whitespace()) {
                return Err(format!(
                    "{:?} is not an http(s) URL of at most {URL_LEN_MAX} bytes",
                    seat.url
                ));
            }
            seats.push(core::Seat {
                address: url.to_owned(),
                member: member_id(&seat.node_uuid)?,
            });
        }
        let configuration = core::Configuration {
            epoch: c.epoch,
            seats,
        };
        if c.epoch == 0 || !configuration.is_valid() {
            return Err(
                "a configuration has an epoch above 0, at least one seat, and no URL or node twice".into(),
            );
        }
        Ok(configuration)
    }
}

impl TransitionRequest {
    pub fn from_core(t: &core::Transition, tail: Option<&core::Accept>) -> TransitionRequest {
        TransitionRequest {
            configuration: (&t.configuration).into(),
            snapshot: (&t.snapshot).into(),
            tail: tail.map(|accept| AcceptRequest::from_core(accept, None)),
        }
    }

    /// The transition, and the tail to accept before it.
    pub fn to_core(&self) -> Result<(core::Transition, Option<core::Accept>), String> {
        let transition = core::Transition {
            configuration: core::Configuration::try_from(&self.configuration)?,
            snapshot: core::Snapshot::try_from(&self.snapshot)?,
        };
        let tail = self.tail.as_ref().map(AcceptRequest::to_core).transpose()?;
        Ok((transition, tail))
    }
}

impl From<&core::Allocation> for Allocation {
    fn from(a: &core::Allocation) -> Allocation {
        Allocation {
            sequence: a.sequence.as_str().to_owned(),
            id: a.first,
            count: a.count,
        }
    }
}

impl TryFrom<&Allocation> for core::Allocation {
    type Error = String;
    fn try_from(a: &Allocation) -> Result<core::Allocation, String> {
        let sequence = core::SequenceName::parse(&a.sequence).map_err(|e| e.to_string())?;
        if a.count == 0 {
            return Err("an allocation has count 0".into());
        }
        if a.id.checked_add(a.count).is_none() {
            return Err("an allocation overflows u64".into());
        }
        Ok(core::Allocation {
            sequence,
            first: a.id,
            count: a.count,
        })
    }
}

impl From<&core::Value> for Value {
    fn from(v: &core::Value) -> Value {
        match v {
            core::Value::Noop => Value::Noop,
            core::Value::Allocations(a) => Value::Allocations {
                allocations: a.iter().map(Allocation::from).collect(),
                keys: Vec::new(),
            },
            core::Value::KeyedAllocations { allocations, keys } => Value::Allocations {
                allocations: allocations.iter().map(Allocation::from).collect(),
                keys: keys
                    .iter()
                    .map(|part| KeyedPart {
                        key: part.key.as_str().to_owned(),
                        sequence: part.allocation.sequence.as_str().to_owned(),
                        id: part.allocation.first,
                        count: part.allocation.count,
                    })
                    .collect(),
            },
            core::Value::Reconfigure(c) => Value::Reconfigure {
                configuration: c.into(),
            },
        }
    }
}

impl TryFrom<&Value> for core::Value {
    type Error = String;
    fn try_from(v: &Value) -> Result<core::Value, String> {
        match v {
            Value::Noop => Ok(core::Value::Noop),
            Value::Allocations { allocations, keys } => {
                let parsed: Result<Vec<_>, _> = allocations.iter().map(core::Allocation::try_from).collect();
                let allocations = parsed?;
                if keys.is_empty() {
                    return Ok(core::Value::Allocations(allocations));
                }
                let keys = keyed_parts(keys, &allocations)?;
                Ok(core::Value::KeyedAllocations { allocations, keys })
            }
            Value::Reconfigure { configuration } => Ok(core::Value::Reconfigure(
                core::Configuration::try_from(configuration)?,
            )),
        }
    }
}

/// Keyed parts as only a leader builds them: distinct keys, each part
/// inside one of the value's allocations, no two overlapping.
fn keyed_parts(keys: &[KeyedPart], allocations: &[core::Allocation]) -> Result<Vec<core::KeyedPart>, String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut parts = Vec::with_capacity(keys.len());
    for part in keys {
        let key = core::IdempotencyKey::parse(&part.key).map_err(|e| e.to_string())?;
        if !seen.insert(key.clone()) {
            return Err(format!("key {:?} is listed twice", part.key));
        }
        let allocation = core::Allocation::try_from(&Allocation {
            sequence: part.sequence.clone(),
            id: part.id,
            count: part.count,
        })?;
        let inside = allocations.iter().any(|a| {
            a.sequence == allocation.sequence && a.first <= allocation.first && allocation.end() <= a.end()
        });
        if !inside {
            return Err(format!(
                "the part of key {:?} lies outside the value's allocations",
                part.key
            ));
        }
        parts.push(core::KeyedPart { key, allocation });
    }
    let mut ranges: Vec<&core::Allocation> = parts.iter().map(|p| &p.allocation).collect();
    ranges.sort_by(|a, b| (&a.sequence, a.first).cmp(&(&b.sequence, b.first)));
    if ranges
        .windows(2)
        .any(|w| w[0].sequence == w[1].sequence && w[1].first < w[0].end())
    {
        return Err("two keyed parts overlap".into());
    }
    Ok(parts)
}

impl From<&core::Snapshot> for Snapshot {
    fn from(s: &core::Snapshot) -> Snapshot {
        let counters = s
            .counters
            .iter()
            .map(|(name, next)| (name.as_str().to_owned(), next))
            .collect();
        Snapshot {
            below: s.below.0,
            counters,
        }
    }
}

impl TryFrom<&Snapshot> for core::Snapshot {
    type Error = String;
    fn try_from(s: &Snapshot) -> Result<core::Snapshot, String> {
        let mut counters = BTreeMap::new();
        for (name, next) in &s.counters {
            let name = core::SequenceName::parse(name).map_err(|e| e.to_string())?;
            counters.insert(name, *next);
        }
        Ok(core::Snapshot {
            below: core::Slot(s.below),
            counters: core::Counters::from_map(counters),
        })
    }
}

impl Entry {
    pub fn from_core(slot: core::Slot, accepted: &core::Accepted) -> Entry {
        Entry {
            slot: slot.0,
            ballot: accepted.ballot.into(),
            value: (&accepted.value).into(),
            chosen: accepted.chosen,
        }
    }

    pub fn to_core(&self) -> Result<(core::Slot, core::Accepted), String> {
        let accepted = core::Accepted {
            ballot: self.ballot.into(),
            value: core::Value::try_from(&self.value)?,
            chosen: self.chosen,
        };
        Ok((core::Slot(self.slot), accepted))
    }
}

impl Proposal {
    pub fn from_core(slot: core::Slot, value: &core::Value) -> Proposal {
        Proposal {
            slot: slot.0,
            value: value.into(),
        }
    }

    pub fn to_core(&self) -> Result<(core::Slot, core::Value), String> {
        Ok((core::Slot(self.slot), core::Value::try_from(&self.value)?))
    }
}

/// A `node_uuid` as the core's [`core::MemberId`]: its 128 bits.
pub fn member_id(node_uuid: &str) -> Result<core::MemberId, String> {
    let hex: String = node_uuid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return Err(format!("{node_uuid:?} is not a UUID"));
    }
    u128::from_str_radix(&hex, 16)
        .map(core::MemberId)
        .map_err(|_| format!("{node_uuid:?} is not a UUID"))
}

/// A [`core::MemberId`] as the `node_uuid` it came from (8-4-4-4-12).
pub fn node_uuid(member: core::MemberId) -> String {
    let hex = format!("{:032x}", member.0);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Most members (and retired members) a membership may list.
pub const MEMBERS_MAX: usize = 1024;

impl From<&core::Membership> for Membership {
    fn from(m: &core::Membership) -> Membership {
        Membership {
            members: m.members.iter().copied().map(node_uuid).collect(),
            retired: m.retired.iter().copied().map(node_uuid).collect(),
        }
    }
}

impl TryFrom<&Membership> for core::Membership {
    type Error = String;
    fn try_from(m: &Membership) -> Result<core::Membership, String> {
        if m.members.len() > MEMBERS_MAX || m.retired.len() > MEMBERS_MAX {
            return Err(format!("a membership lists at most {MEMBERS_MAX} members"));
        }
        let ids = |list: &[String]| list.iter().map(|u| member_id(u)).collect::<Result<_, _>>();
        Ok(core::Membership {
            members: ids(&m.members)?,
            retired: ids(&m.retired)?,
        })
    }
}

impl Replace {
    pub fn to_core(&self) -> Result<core::Replace, String> {
        Ok(core::Replace {
            retire: member_id(&self.retire)?,
            admit: member_id(&self.admit)?,
        })
    }
}

impl PrepareRequest {
    pub fn from_core(prepare: &core::Prepare) -> PrepareRequest {
        PrepareRequest {
            ballot: prepare.ballot.into(),
            from: prepare.from.0,
            replace: prepare.replace.map(|r| Replace {
                retire: node_uuid(r.retire),
                admit: node_uuid(r.admit),
            }),
        }
    }

    pub fn to_core(&self) -> Result<core::Prepare, String> {
        Ok(core::Prepare {
            ballot: self.ballot.into(),
            from: core::Slot(self.from),
            replace: self.replace.as_ref().map(Replace::to_core).transpose()?,
        })
    }
}

impl InstallRequest {
    pub fn from_core(install: &core::Install) -> InstallRequest {
        InstallRequest {
            ballot: install.ballot.into(),
            membership: (&install.membership).into(),
            snapshot: (&install.snapshot).into(),
            entries: install
                .entries
                .iter()
                .map(|(s, v)| Proposal::from_core(*s, v))
                .collect(),
        }
    }

    pub fn to_core(&self) -> Result<core::Install, String> {
        let entries: Result<Vec<_>, _> = self.entries.iter().map(Proposal::to_core).collect();
        Ok(core::Install {
            ballot: self.ballot.into(),
            membership: core::Membership::try_from(&self.membership)?,
            snapshot: core::Snapshot::try_from(&self.snapshot)?,
            entries: entries?,
        })
    }
}

impl PrepareResponse {
    /// None for a refusal that is not an answer: the acceptor does not vote
    /// (the HTTP layer answers 503 then).
    pub fn from_core(reply: &core::PrepareReply) -> Option<PrepareResponse> {
        Some(match reply {
            core::PrepareReply::Rejected { promised } => PrepareResponse::Rejected {
                promised: (*promised).into(),
            },
            core::PrepareReply::Promised(p) => PrepareResponse::Promised {
                ballot: p.ballot.into(),
                member: node_uuid(p.member),
                membership: (&p.membership).into(),
                snapshot: (&p.snapshot).into(),
                entries: p.votes.iter().map(|(s, a)| Entry::from_core(*s, a)).collect(),
            },
            core::PrepareReply::NotVoting => return None,
        })
    }

    pub fn to_core(&self) -> Result<core::PrepareReply, String> {
        Ok(match self {
            PrepareResponse::Rejected { promised } => core::PrepareReply::Rejected {
                promised: (*promised).into(),
            },
            PrepareResponse::Promised {
                ballot,
                member,
                membership,
                snapshot,
                entries,
            } => {
                let entries: Result<Vec<_>, _> = entries.iter().map(Entry::to_core).collect();
                core::PrepareReply::Promised(core::Promise {
                    ballot: (*ballot).into(),
                    member: member_id(member)?,
                    membership: core::Membership::try_from(membership)?,
                    snapshot: core::Snapshot::try_from(snapshot)?,
                    votes: entries?,
                })
            }
        })
    }
}

impl AcceptRequest {
    pub fn from_core(accept: &core::Accept, leader_url: Option<String>) -> AcceptRequest {
        AcceptRequest {
            ballot: accept.ballot.into(),
            chosen_below: accept.chosen_below.0,
            proposals: accept
                .entries
                .iter()
                .map(|(s, v)| Proposal::from_core(*s, v))
                .collect(),
            leader_url,
        }
    }

    pub fn to_core(&self) -> Result<core::Accept, String> {
        let entries: Result<Vec<_>, _> = self.proposals.iter().map(Proposal::to_core).collect();
        Ok(core::Accept {
            ballot: self.ballot.into(),
            chosen_below: core::Slot(self.chosen_below),
            entries: entries?,
        })
    }
}

impl AcceptResponse {
    /// None for the refusals the HTTP layer answers as problems: a
    /// conflict (409) and a blank or retired acceptor (503).
    pub fn from_core(reply: &core::AcceptReply) -> Option<AcceptResponse> {
        Some(match reply {
            core::AcceptReply::Accepted { chosen_below, member } => AcceptResponse::Accepted {
                chosen_below: chosen_below.0,
                node_uuid: member.map(node_uuid),
            },
            core::AcceptReply::Rejected { promised } => AcceptResponse::Rejected {
                promised: (*promised).into(),
            },
            core::AcceptReply::Conflict { .. } | core::AcceptReply::NotVoting => return None,
        })
    }

    pub fn to_core(&self) -> core::AcceptReply {
        match self {
            AcceptResponse::Accepted {
                chosen_below,
                node_uuid,
            } => core::AcceptReply::Accepted {
                chosen_below: core::Slot(*chosen_below),
                // An unreadable uuid names no member: the vote counts per URL.
                member: node_uuid.as_deref().and_then(|uuid| member_id(uuid).ok()),
            },
            AcceptResponse::Rejected { promised } => core::AcceptReply::Rejected {
                promised: (*promised).into(),
            },
        }
    }
}

impl CommitRequest {
    pub fn from_core(commit: &core::Commit, leader_url: String) -> CommitRequest {
        CommitRequest {
            ballot: commit.ballot.into(),
            chosen_below: commit.chosen_below.0,
            snapshot: commit.snapshot.as_ref().map(Snapshot::from),
            leader_url,
        }
    }

    pub fn to_core(&self) -> Result<core::Commit, String> {
        Ok(core::Commit {
            ballot: self.ballot.into(),
            chosen_below: core::Slot(self.chosen_below),
            snapshot: self.snapshot.as_ref().map(core::Snapshot::try_from).transpose()?,
        })
    }
}

impl CommitResponse {
    pub fn from_core(reply: &core::CommitReply) -> CommitResponse {
        CommitResponse {
            promised: reply.promised.into(),
            chosen_below: reply.chosen_below.0,
        }
    }

    pub fn to_core(&self) -> core::CommitReply {
        core::CommitReply {
            promised: self.promised.into(),
            chosen_below: core::Slot(self.chosen_below),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json() {
        let value = Value::Allocations {
            allocations: vec![Allocation {
                sequence: "default".into(),
                id: 7,
                count: 3,
            }],
            keys: Vec::new(),
        };
        let json = serde_json::to_string(&value).expect("serialize");
        assert_eq!(
            json,
            r#"{"kind":"allocations","allocations":[{"sequence":"default","id":7,"count":3}]}"#
        );
        let back: Value = serde_json::from_str(&json).expect("parse");
        assert_eq!(core::Value::try_from(&back), core::Value::try_from(&value));
    }

    #[test]
    fn invalid_wire_values_are_refused() {
        let bad_name = Value::Allocations {
            allocations: vec![Allocation {
                sequence: "a b".into(),
                id: 1,
                count: 1,
            }],
            keys: Vec::new(),
        };
        assert!(core::Value::try_from(&bad_name).is_err());
        let overflow = Value::Allocations {
            allocations: vec![Allocation {
                sequence: "a".into(),
                id: u64::MAX,
                count: 1,
            }],
            keys: Vec::new(),
        };
        assert!(core::Value::try_from(&overflow).is_err());
    }

    #[test]
    fn keyed_parts_round_trip_and_must_lie_inside_distinct() {
        let part = |key: &str, id, count| KeyedPart {
            key: key.into(),
            sequence: "default".into(),
            id,
            count,
        };
        let value = |keys| Value::Allocations {
            allocations: vec![Allocation {
                sequence: "default".into(),
                id: 10,
                count: 5,
            }],
            keys,
        };
        let keyed = value(vec![part("a", 10, 2), part("b", 12, 3)]);
        let json = serde_json::to_string(&keyed).expect("serialize");
        assert!(
            json.contains(r#""keys":[{"key":"a","sequence":"default","id":10,"count":2}"#),
            "{json}"
        );
        let core_value = core::Value::try_from(&keyed).expect("valid");
        assert_eq!(core_value.keyed_parts().len(), 2);
        assert_eq!(Value::from(&core_value), keyed);
        for bad in [
            vec![part("a", 10, 2), part("a", 12, 3)],
            vec![part("a", 14, 2)],
            vec![part("a", 10, 3), part("b", 12, 3)],
            vec![part("", 10, 1)],
            vec![part("a b", 10, 1)],
        ] {
            assert!(core::Value::try_from(&value(bad.clone())).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejections_are_tagged() {
        let reply = AcceptResponse::Rejected {
            promised: Ballot {
                epoch: 0,
                round: 3,
                node: 1,
            },
        };
        let json = serde_json::to_string(&reply).expect("serialize");
        assert_eq!(json, r#"{"outcome":"rejected","promised":{"round":3,"node":1}}"#);
    }

    #[test]
    fn node_uuids_and_member_ids_round_trip() {
        let uuid = "5f0c3a9e-1b7d-4c2e-9a4f-0d8e6b1c2a3f";
        let member = member_id(uuid).expect("a uuid");
        assert_eq!(member, core::MemberId(0x5f0c3a9e1b7d4c2e9a4f0d8e6b1c2a3f));
        assert_eq!(node_uuid(member), uuid);
        for bad in [
            "",
            "n",
            "5f0c3a9e-1b7d-4c2e-9a4f-0d8e6b1c2a3",
            "zf0c3a9e-1b7d-4c2e-9a4f-0d8e6b1c2a3f",
        ] {
            assert!(member_id(bad).is_err(), "{bad:?}");
        }
    }
}
