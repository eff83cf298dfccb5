//! Shared by the simulation and the model check: a seeded random source,
//! the ghost record of every durable vote (from which "chosen" is decided
//! independently of any proposer or learner), and the client-history
//! checker; and by the proposer's unit tests: [`replies`].

#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use paxos_core::{Accepted, Allocation, Ballot, Counters, Effect, Refusal, RequestId, Slot, Value};

/// The client answers among `effects`, in order.
pub fn replies(effects: &[Effect]) -> Vec<(RequestId, Result<Allocation, Refusal>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply { request, result } => Some((*request, result.clone())),
            _ => None,
        })
        .collect()
}

/// SplitMix64: tiny, seedable, good enough to drive a simulation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What the world has durably decided, recorded from acceptors' writes.
///
/// A value is chosen in a slot once a majority of acceptors have durably
/// voted for it under one ballot (at any time, not necessarily at once:
/// that is Paxos's definition). Every claim that something is chosen — a
/// proposer's `Chosen` effect, a learner's release, a client's IDs — is
/// checked against this record, which no protocol code computes.
///
/// Invariant 2 is checked on the allocations that take effect when the
/// chosen log is applied in slot order ([`Counters::apply`]). With
/// `raw_ranges` it is checked on every chosen value, void or not, as
/// PRODUCT.md words it; the protocol does not guarantee that (see the
/// simulation's `raw_ranges_counterexample` seeds).
#[derive(Debug)]
pub struct Ghost {
    acceptors: usize,
    raw_ranges: bool,
    /// The chosen prefix applied so far, and the allocations voided on the way.
    applied_below: Slot,
    applied: Counters,
    pub voided: u64,
    /// One ballot carries at most one value per slot (what makes "a
    /// majority of one ballot" mean "a majority for one value").
    proposals: HashMap<(Slot, Ballot), Value>,
    /// Which acceptors ever durably voted (slot, ballot), as a bit set.
    voters: HashMap<(Slot, Ballot), u32>,
    chosen: BTreeMap<Slot, Value>,
    /// The ballot under which each slot was first seen chosen, for messages.
    chosen_ballot: BTreeMap<Slot, Ballot>,
    /// Per sequence, the chosen ranges by slot and by first ID.
    by_slot: BTreeMap<String, BTreeMap<Slot, (u64, u64)>>,
    by_id: BTreeMap<String, BTreeMap<u64, u64>>,
}

impl Ghost {
    pub fn new(acceptors: usize, raw_ranges: bool) -> Ghost {
        assert!((1..=32).contains(&acceptors));
        Ghost {
            acceptors,
            raw_ranges,
            applied_below: Slot(0),
            applied: Counters::default(),
            voided: 0,
            proposals: HashMap::new(),
            voters: HashMap::new(),
            chosen: BTreeMap::new(),
            chosen_ballot: BTreeMap::new(),
            by_slot: BTreeMap::new(),
            by_id: BTreeMap::new(),
        }
    }

    pub fn chosen(&self) -> &BTreeMap<Slot, Value> {
        &self.chosen
    }

    /// The first slot not chosen.
    pub fn chosen_prefix(&self) -> Slot {
        let mut next = Slot(0);
        for slot in self.chosen.keys() {
            if *slot != next {
                break;
            }
            next = next.next();
        }
        next
    }

    /// Acceptor `from` made `accepted` durable in `slot`.
    pub fn durable_vote(&mut self, from: usize, slot: Slot, accepted: &Accepted) -> Result<(), String> {
        let key = (slot, accepted.ballot);
        match self.proposals.get(&key) {
            Some(value) if *value != accepted.value => {
                return Err(format!(
                    "slot {slot} ballot {}: acceptor {from} voted {:?} but another voted {value:?}",
                    accepted.ballot, accepted.value
                ))
            }
            Some(_) => {}
            None => {
                self.proposals.insert(key, accepted.value.clone());
            }
        }
        let voters = self.voters.entry(key).or_insert(0);
        *voters |= 1 << from;
        if voters.count_ones() as usize >= paxos_core::quorum(self.acceptors) {
            self.choose(slot, accepted.ballot, &accepted.value)?;
        }
        Ok(())
    }

    /// A proposer, learner or acceptor mark claims `value` is chosen in `slot`.
    pub fn check_claim(&self, slot: Slot, value: &Value, who: &str) -> Result<(), String> {
        match self.chosen.get(&slot) {
            Some(chosen) if chosen == value => Ok(()),
            Some(chosen) => Err(format!(
                "{who} claims slot {slot} chose {value:?}, but {chosen:?} was chosen"
            )),
            None => Err(format!(
                "{who} claims slot {slot} chose {value:?}, but no majority voted for it"
            )),
        }
    }

    /// IDs handed to a client lie inside one range that took effect.
    pub fn check_reply(&self, allocation: &Allocation) -> Result<(), String> {
        let inside = self
            .by_id
            .get(allocation.sequence.as_str())
            .and_then(|ranges| ranges.range(..=allocation.first).next_back())
            .is_some_and(|(_, end)| allocation.end() <= *end);
        if inside {
            Ok(())
        } else {
            Err(format!(
                "a client got {allocation:?}, which no applied chosen slot hands out"
            ))
        }
    }

    fn choose(&mut self, slot: Slot, ballot: Ballot, value: &Value) -> Result<(), String> {
        if let Some(chosen) = self.chosen.get(&slot) {
            if chosen != value {
                return Err(format!(
                    "agreement: slot {slot} chose both {chosen:?} and {value:?}"
                ));
            }
            return Ok(());
        }
        let mut names: Vec<&str> = Vec::new();
        for allocation in value.allocations() {
            let name = allocation.sequence.as_str();
            if allocation.count == 0 || names.contains(&name) {
                return Err(format!("slot {slot} holds a malformed value {value:?}"));
            }
            names.push(name);
            if self.raw_ranges {
                self.check_disjoint_and_ordered(slot, allocation)
                    .map_err(|e| format!("{e} (ballots: {:?} then {ballot})", self.chosen_ballot))?;
                self.record(slot, allocation);
            }
        }
        self.chosen.insert(slot, value.clone());
        self.chosen_ballot.insert(slot, ballot);
        self.apply_prefix()
    }

    /// Applies the chosen prefix in slot order, checking invariant 2 on
    /// what takes effect.
    fn apply_prefix(&mut self) -> Result<(), String> {
        while let Some(value) = self.chosen.get(&self.applied_below).cloned() {
            let slot = self.applied_below;
            let effective = self.applied.apply(&value);
            self.voided += (value.allocations().len() - effective.len()) as u64;
            if !self.raw_ranges {
                for allocation in &effective {
                    self.check_disjoint_and_ordered(slot, allocation)?;
                    self.record(slot, allocation);
                }
            }
            self.applied_below = slot.next();
        }
        Ok(())
    }

    fn record(&mut self, slot: Slot, allocation: &Allocation) {
        let name = allocation.sequence.as_str().to_owned();
        let range = (allocation.first, allocation.end());
        self.by_slot.entry(name.clone()).or_default().insert(slot, range);
        self.by_id.entry(name).or_default().insert(range.0, range.1);
    }

    /// Invariant 2: the chosen neighbours of `slot` hold lower and higher IDs.
    fn check_disjoint_and_ordered(&self, slot: Slot, allocation: &Allocation) -> Result<(), String> {
        let Some(ranges) = self.by_slot.get(allocation.sequence.as_str()) else {
            return Ok(());
        };
        if let Some((below, (_, end))) = ranges.range(..slot).next_back() {
            if *end > allocation.first {
                return Err(format!(
                    "ranges: slot {below} holds {} IDs up to {} but the higher slot {slot} starts at {}",
                    allocation.sequence,
                    end - 1,
                    allocation.first
                ));
            }
        }
        if let Some((above, (first, _))) = ranges.range(slot.next()..).next() {
            if *first < allocation.end() {
                return Err(format!(
                    "ranges: slot {slot} holds {} IDs up to {} but the higher slot {above} starts at {first}",
                    allocation.sequence,
                    allocation.end() - 1
                ));
            }
        }
        Ok(())
    }
}

/// One call that returned IDs, as its client saw it. Times are any totally
/// ordered clock (the simulation uses its event counter, so that two events
/// of one millisecond are still ordered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    pub sequence: String,
    pub invoked: u64,
    pub completed: u64,
    pub first: u64,
    pub count: u64,
}

impl CallRecord {
    fn last(&self) -> u64 {
        self.first + self.count - 1
    }
}

/// Why a history is not linearizable for the ID specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryViolation {
    /// Two calls received a common ID.
    Duplicate { a: CallRecord, b: CallRecord },
    /// `earlier` completed before `later` was invoked, yet `later` got an
    /// ID not above every ID of `earlier`.
    Reversed { earlier: CallRecord, later: CallRecord },
}

impl fmt::Display for HistoryViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryViolation::Duplicate { a, b } => write!(f, "duplicate IDs: {a:?} and {b:?}"),
            HistoryViolation::Reversed { earlier, later } => {
                write!(
                    f,
                    "real-time order: {earlier:?} completed before {later:?} was invoked"
                )
            }
        }
    }
}

/// Checks invariant 3 on a whole history in O(n log n).
///
/// For this specification a history is linearizable exactly when (a) no ID
/// is handed out twice and (b) whenever call A completed before call B was
/// invoked, every ID of B is above every ID of A. (a): sort by first ID and
/// compare neighbours. (b): sweep the calls in invocation order while a
/// second cursor walks the calls in completion order, keeping the highest
/// ID of everything completed strictly before the current invocation; it
/// is enough to compare against that maximum. Failed calls constrain
/// nothing (their IDs may be a gap) and are left out by the caller.
pub fn check_history(calls: &[CallRecord]) -> Result<(), HistoryViolation> {
    let mut by_sequence: BTreeMap<&str, Vec<&CallRecord>> = BTreeMap::new();
    for call in calls {
        assert!(
            call.count >= 1 && call.invoked < call.completed,
            "malformed record {call:?}"
        );
        by_sequence.entry(call.sequence.as_str()).or_default().push(call);
    }
    for calls in by_sequence.values() {
        check_unique(calls)?;
        check_real_time(calls)?;
    }
    Ok(())
}

fn check_unique(calls: &[&CallRecord]) -> Result<(), HistoryViolation> {
    let mut sorted = calls.to_vec();
    sorted.sort_by_key(|c| (c.first, c.count));
    for pair in sorted.windows(2) {
        if pair[0].last() >= pair[1].first {
            return Err(HistoryViolation::Duplicate {
                a: pair[0].clone(),
                b: pair[1].clone(),
            });
        }
    }
    Ok(())
}

fn check_real_time(calls: &[&CallRecord]) -> Result<(), HistoryViolation> {
    let mut by_invoked = calls.to_vec();
    by_invoked.sort_by_key(|c| c.invoked);
    let mut by_completed = calls.to_vec();
    by_completed.sort_by_key(|c| c.completed);
    let mut done = by_completed.iter().peekable();
    let mut highest: Option<&CallRecord> = None;
    for call in by_invoked {
        while let Some(earlier) = done.next_if(|c| c.completed < call.invoked) {
            if highest.is_none_or(|h| earlier.last() > h.last()) {
                highest = Some(earlier);
            }
        }
        if let Some(earlier) = highest {
            if call.first <= earlier.last() {
                return Err(HistoryViolation::Reversed {
                    earlier: earlier.clone(),
                    later: call.clone(),
                });
            }
        }
    }
    Ok(())
}
