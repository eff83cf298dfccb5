//! The protocol's vocabulary, parsed once at the edge and trusted inside.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Distinct per sequencer; the tie-breaker inside a [`Ballot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub u32);

/// A proposal number, compared lexicographically by `(epoch, round, node)`.
///
/// `Ballot::ZERO` is below every ballot a sequencer can use (node ids are
/// distinct and rounds start at 1), so it means "nothing promised yet".
/// The epoch is the configuration's (see [`Configuration`]): an acceptor
/// that moved to a new configuration promises `Ballot::opening(epoch)`,
/// which fences every ballot of the configurations before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ballot {
    pub epoch: u64,
    pub round: u64,
    pub node: NodeId,
}

impl Ballot {
    pub const ZERO: Ballot = Ballot {
        epoch: 0,
        round: 0,
        node: NodeId(0),
    };

    /// A ballot of the first configuration (epoch 0).
    pub fn new(round: u64, node: NodeId) -> Ballot {
        Ballot::in_epoch(0, round, node)
    }

    pub fn in_epoch(epoch: u64, round: u64, node: NodeId) -> Ballot {
        Ballot { epoch, round, node }
    }

    /// What an acceptor promises when it enters `epoch`: below every ballot
    /// a sequencer can use in it, above every ballot of earlier epochs.
    pub fn opening(epoch: u64) -> Ballot {
        Ballot::in_epoch(epoch, 0, NodeId(0))
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch > 0 {
            write!(f, "{}:", self.epoch)?;
        }
        write!(f, "{}.{}", self.round, self.node.0)
    }
}

/// A position in the replicated log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Slot(pub u64);

impl Slot {
    pub const ZERO: Slot = Slot(0);

    pub fn next(self) -> Slot {
        Slot(self.0.checked_add(1).expect("slot space exhausted"))
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Index of an acceptor in the sequencer's `--acceptors` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AcceptorId(pub usize);

/// A validated sequence name: 1..=64 characters of `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceName(String);

/// Why a string is not a [`SequenceName`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SequenceNameError {
    Empty,
    TooLong { len: usize },
    BadCharacter { character: char },
}

impl fmt::Display for SequenceNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SequenceNameError::Empty => write!(f, "sequence name is empty"),
            SequenceNameError::TooLong { len } => write!(
                f,
                "sequence name has {len} characters; the maximum is {}",
                SequenceName::LEN_MAX
            ),
            SequenceNameError::BadCharacter { character } => write!(
                f,
                "sequence name contains {character:?}; allowed are A-Z a-z 0-9 _ . -"
            ),
        }
    }
}

impl SequenceName {
    pub const LEN_MAX: usize = 64;
    pub const DEFAULT: &'static str = "default";

    pub fn parse(name: &str) -> Result<SequenceName, SequenceNameError> {
        if name.is_empty() {
            return Err(SequenceNameError::Empty);
        }
        if let Some(character) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(SequenceNameError::BadCharacter { character });
        }
        if name.len() > Self::LEN_MAX {
            return Err(SequenceNameError::TooLong { len: name.len() });
        }
        Ok(SequenceName(name.to_owned()))
    }

    pub fn default_sequence() -> SequenceName {
        SequenceName(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SequenceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// IDs `first ..= first + count - 1` of one sequence.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Allocation {
    pub sequence: SequenceName,
    pub first: u64,
    pub count: u64,
}

impl Allocation {
    /// The first ID above this range.
    pub fn end(&self) -> u64 {
        self.first
            .checked_add(self.count)
            .expect("allocation overflows u64: the leader must never build one")
    }
}

/// A client's name for one call, from its `Idempotency-Key` header:
/// 1..=255 visible ASCII characters (`!` to `~`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdempotencyKey(String);

/// Why a string is not an [`IdempotencyKey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyKeyError {
    Empty,
    TooLong { len: usize },
    BadCharacter,
}

impl fmt::Display for IdempotencyKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdempotencyKeyError::Empty => write!(f, "Idempotency-Key is empty"),
            IdempotencyKeyError::TooLong { len } => write!(
                f,
                "Idempotency-Key has {len} characters; the maximum is {}",
                IdempotencyKey::LEN_MAX
            ),
            IdempotencyKeyError::BadCharacter => {
                write!(
                    f,
                    "Idempotency-Key may hold only visible ASCII characters (! to ~)"
                )
            }
        }
    }
}

impl IdempotencyKey {
    pub const LEN_MAX: usize = 255;

    pub fn parse(key: &str) -> Result<IdempotencyKey, IdempotencyKeyError> {
        if key.is_empty() {
            return Err(IdempotencyKeyError::Empty);
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdempotencyKeyError::BadCharacter);
        }
        if key.len() > Self::LEN_MAX {
            return Err(IdempotencyKeyError::TooLong { len: key.len() });
        }
        Ok(IdempotencyKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The part of a slot's allocation that one keyed request received.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyedPart {
    pub key: IdempotencyKey,
    pub allocation: Allocation,
}

/// What a slot holds once chosen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// Fills a hole found during recovery; allocates nothing.
    Noop,
    /// At most one allocation per sequence, ranges above all earlier slots.
    Allocations(Vec<Allocation>),
    /// Allocations as above, some of whose requests carried an
    /// `Idempotency-Key`: `keys` names each such request's part, so that
    /// every leader that reads the chosen log answers a retry with it (see
    /// [`crate::idempotency`]). Never empty `keys`: without any, the value
    /// is `Allocations`.
    KeyedAllocations {
        allocations: Vec<Allocation>,
        keys: Vec<KeyedPart>,
    },
    /// The stop sign: this configuration decides nothing after this slot,
    /// and the log goes on, from the next slot, in the one named here.
    /// Allocates nothing; every slot above it in this epoch is void.
    Reconfigure(Configuration),
}

impl Value {
    pub fn allocations(&self) -> &[Allocation] {
        match self {
            Value::Noop | Value::Reconfigure(_) => &[],
            Value::Allocations(allocations) | Value::KeyedAllocations { allocations, .. } => allocations,
        }
    }

    /// The parts of this value's allocations that keyed requests received.
    pub fn keyed_parts(&self) -> &[KeyedPart] {
        match self {
            Value::KeyedAllocations { keys, .. } => keys,
            _ => &[],
        }
    }

    /// Its size in allocations, for the limits on catch-up bodies: a keyed
    /// part, with a key of up to 255 characters, weighs up to about four
    /// allocations on the wire.
    pub fn weight(&self) -> usize {
        self.allocations().len() + 4 * self.keyed_parts().len()
    }

    pub fn reconfiguration(&self) -> Option<&Configuration> {
        match self {
            Value::Reconfigure(configuration) => Some(configuration),
            _ => None,
        }
    }
}

/// The acceptors of one epoch, in order: `AcceptorId(i)` is `seats[i]`.
///
/// Epoch 0 is the cluster as founded, addressed by each process's own
/// `--acceptors` list (no configuration is stored). Every later epoch is
/// chosen through the log as a [`Value::Reconfigure`] of the one before,
/// and carries the addresses every process uses from then on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Configuration {
    pub epoch: u64,
    pub seats: Vec<Seat>,
}

/// One acceptor of a configuration: where it answers and who it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seat {
    pub address: String,
    pub member: MemberId,
}

impl Configuration {
    /// Who may vote in this epoch: its seated members, none retired yet.
    pub fn membership(&self) -> Membership {
        Membership::founding(self.seats.iter().map(|s| s.member))
    }

    pub fn seats_member(&self, member: MemberId) -> bool {
        self.seats.iter().any(|s| s.member == member)
    }

    /// At least one seat, no address or member twice.
    pub fn is_valid(&self) -> bool {
        let addresses: BTreeSet<&str> = self.seats.iter().map(|s| s.address.as_str()).collect();
        let members: BTreeSet<MemberId> = self.seats.iter().map(|s| s.member).collect();
        !self.seats.is_empty() && addresses.len() == self.seats.len() && members.len() == self.seats.len()
    }
}

/// The state machine: for each sequence, the next ID to hand out.
///
/// A sequence that was never allocated starts at 1.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters(BTreeMap<SequenceName, u64>);

impl Counters {
    pub const FIRST_ID: u64 = 1;

    pub fn from_map(map: BTreeMap<SequenceName, u64>) -> Counters {
        Counters(map)
    }

    pub fn next_id(&self, sequence: &SequenceName) -> u64 {
        self.0.get(sequence).copied().unwrap_or(Self::FIRST_ID)
    }

    /// Raises counters above every range in `value`. Taking the maximum
    /// (not the last) makes this safe to apply to values that were accepted
    /// but superseded: they can only push the counters up, leaving a gap.
    pub fn raise_above(&mut self, value: &Value) {
        for allocation in value.allocations() {
            self.raise_to(&allocation.sequence, allocation.end());
        }
    }

    /// Applies the value of the next slot, in slot order, and returns the
    /// allocations that take effect: those that start at or above their
    /// sequence's counter. The others are void and hand out nothing.
    ///
    /// Void allocations exist because recovery must re-propose, in each
    /// slot, the highest-ballot value its quorum reports, even one that an
    /// old leader allocated against a view that a later leader, who never
    /// saw that vote, has since allocated past at a lower slot. Paxos may
    /// choose it; this rule keeps it from handing out IDs twice. Every
    /// consumer of the chosen log (learners, subscribers) applies it.
    pub fn apply(&mut self, value: &Value) -> Vec<Allocation> {
        let mut effective = Vec::new();
        for allocation in value.allocations() {
            if allocation.first >= self.next_id(&allocation.sequence) {
                effective.push(allocation.clone());
            }
            self.raise_to(&allocation.sequence, allocation.end());
        }
        effective
    }

    pub fn raise_to(&mut self, sequence: &SequenceName, next_id: u64) {
        let entry = self.0.entry(sequence.clone()).or_insert(Self::FIRST_ID);
        *entry = (*entry).max(next_id);
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &Counters) {
        for (sequence, next_id) in &other.0 {
            self.raise_to(sequence, *next_id);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SequenceName, u64)> {
        self.0.iter().map(|(name, next)| (name, *next))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, sequence: &SequenceName) -> bool {
        self.0.contains_key(sequence)
    }
}

/// "Every slot below `below` is chosen, and applying them gives `counters`."
///
/// Acceptors report one in every promise, so that a new leader needs no
/// values below it; leaders install one on acceptors that fell too far
/// behind to be caught up slot by slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub below: Slot,
    pub counters: Counters,
}

/// One slot's vote as an acceptor holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Accepted {
    pub ballot: Ballot,
    pub value: Value,
    /// Set once the acceptor knows this exact value is the chosen one.
    pub chosen: bool,
}

/// An acceptor's identity, drawn at random when its data dir is created.
///
/// A wiped disk therefore comes back as a *different* member: nothing it
/// says can be mistaken for the votes and promises the lost disk held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MemberId(pub u128);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Which acceptors may vote.
///
/// Both sets only grow, so reports merged in any order give the same
/// answer, and a member once retired (its disk was lost and it was
/// replaced) never counts again, whatever stale promise of it is still
/// held somewhere. See ARCHITECTURE.md, "Lost disks".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    pub members: BTreeSet<MemberId>,
    pub retired: BTreeSet<MemberId>,
}

impl Membership {
    /// The membership a new cluster starts with.
    pub fn founding(members: impl IntoIterator<Item = MemberId>) -> Membership {
        Membership {
            members: members.into_iter().collect(),
            retired: BTreeSet::new(),
        }
    }

    /// True when `member` may vote: admitted and never retired.
    pub fn votes(&self, member: MemberId) -> bool {
        self.members.contains(&member) && !self.retired.contains(&member)
    }

    /// The members that may vote.
    pub fn voters(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.members.iter().copied().filter(|m| !self.retired.contains(m))
    }

    /// Union of both sets.
    pub fn merge(&mut self, other: &Membership) {
        self.members.extend(other.members.iter().copied());
        self.retired.extend(other.retired.iter().copied());
    }

    /// `retire` never votes again; `admit` may, once it has been rebuilt.
    pub fn replace(&mut self, replace: Replace) {
        self.retired.insert(replace.retire);
        self.members.insert(replace.admit);
    }
}

/// A lost member and the blank acceptor rebuilt in its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Replace {
    pub retire: MemberId,
    pub admit: MemberId,
}

/// Majority of `n`: the smallest number of acceptors any two of which
/// groups intersect.
pub fn quorum(acceptors: usize) -> usize {
    acceptors / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_order_by_round_then_node() {
        assert!(Ballot::new(2, NodeId(1)) > Ballot::new(1, NodeId(9)));
        assert!(Ballot::new(2, NodeId(2)) > Ballot::new(2, NodeId(1)));
        assert!(Ballot::ZERO < Ballot::new(1, NodeId(0)));
    }

    #[test]
    fn sequence_names_are_validated() {
        assert!(SequenceName::parse("orders.v2-eu_1").is_ok());
        assert_eq!(SequenceName::parse(""), Err(SequenceNameError::Empty));
        assert_eq!(
            SequenceName::parse("a b"),
            Err(SequenceNameError::BadCharacter { character: ' ' })
        );
        assert_eq!(
            SequenceName::parse(&"x".repeat(65)),
            Err(SequenceNameError::TooLong { len: 65 })
        );
        assert!(SequenceName::parse(&"x".repeat(64)).is_ok());
        assert!(SequenceName::parse("é").is_err());
    }

    #[test]
    fn counters_only_go_up() {
        let seq = SequenceName::default_sequence();
        let mut counters = Counters::default();
        assert_eq!(counters.next_id(&seq), 1);
        counters.raise_to(&seq, 10);
        counters.raise_to(&seq, 5);
        assert_eq!(counters.next_id(&seq), 10);
    }

    #[test]
    fn apply_voids_allocations_below_the_counter() {
        let a = SequenceName::default_sequence();
        let b = SequenceName::parse("b").expect("valid");
        let value = |first_a, first_b| {
            Value::Allocations(vec![
                Allocation {
                    sequence: a.clone(),
                    first: first_a,
                    count: 3,
                },
                Allocation {
                    sequence: b.clone(),
                    first: first_b,
                    count: 2,
                },
            ])
        };
        let mut counters = Counters::default();
        assert_eq!(counters.apply(&value(1, 1)).len(), 2);
        // `a` starts inside the range applied before: void; `b` is above: takes effect.
        let effective = counters.apply(&value(2, 3));
        assert_eq!(
            effective,
            vec![Allocation {
                sequence: b.clone(),
                first: 3,
                count: 2
            }]
        );
        // A void allocation still raises its counter: it leaves a gap, never a reuse.
        assert_eq!(counters.next_id(&a), 5);
        assert!(counters.apply(&Value::Noop).is_empty());
    }

    #[test]
    fn quorum_is_a_majority() {
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(5), 3);
        assert_eq!(quorum(4), 3);
    }
}
