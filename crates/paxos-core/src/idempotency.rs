//! Retry-safe IDs: what a leader knows of `Idempotency-Key`s.
//!
//! A keyed request's part of its slot's allocation is written into the
//! slot's value ([`Value::KeyedAllocations`]), so the key is in the chosen
//! log with its IDs, and every leader reads the same answer back from it:
//! the leader that chose it from its own index, a new one from the
//! acceptors' logs ([`Proposer::keys_wanted`](crate::Proposer::keys_wanted)).
//!
//! The window: a key is remembered while its slot is among the last
//! [`WINDOW_SLOTS`] chosen and it is among the last [`KEYS_MAX`] keys
//! chosen. Acceptors keep at least [`WINDOW_SLOTS`] slots of log below
//! their chosen point, so that a new leader can read the window back. A
//! reconfiguration starts a new window (the new epoch's acceptors hold its
//! log only).
//!
//! Only parts that take effect are remembered ([`Counters::apply`]): a
//! void part handed out nothing, and its range may be another caller's.

use std::collections::{BTreeMap, VecDeque};

use crate::types::{Allocation, Counters, IdempotencyKey, KeyedPart, SequenceName, Slot, Snapshot, Value};

/// Chosen slots whose keys a leader remembers, at most.
pub const WINDOW_SLOTS: u64 = 65_536;
/// Keys a leader remembers, at most: about 64 MiB with 255-character keys,
/// about 14 MiB with UUIDs.
pub const KEYS_MAX: usize = 65_536;
/// Keyed requests in one slot, at most (more wait for the next slot): bounds
/// a value, hence the acceptors' disk for the window, to about 90 KB.
pub const KEYED_PER_SLOT_MAX: usize = 256;

/// What the leader answers a keyed request with, before it takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// Never seen in the window: allocate, and record the key.
    New,
    /// Chosen already with this allocation, asked for the same way.
    Chosen(Allocation),
    /// Taken already with the same `sequence` and `count`, not chosen yet.
    InFlight,
    /// Taken or chosen with another `sequence` or `count`.
    Reused,
    /// Not known here, but the keys chosen before this leadership are not
    /// read back yet: the key may be among them.
    Loading,
}

/// A request taken with a key, not chosen yet: waiting for a slot (`slot`
/// None) or in one, this leader's or one recovered from an older leader.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Open {
    sequence: SequenceName,
    count: u64,
    slot: Option<Slot>,
}

/// A leader's keys: those chosen in the window, and those taken since.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyIndex {
    /// Slots below this are applied: the chosen point.
    end: Slot,
    /// Set while keys chosen below this slot (the chosen point this
    /// leadership started at) are not read back yet.
    load_below: Option<Slot>,
    /// The window's first slot can be no lower than this: the start of the
    /// epoch, whose acceptors hold nothing older.
    floor: Slot,
    chosen: BTreeMap<IdempotencyKey, (Slot, Allocation)>,
    /// The keys of `chosen`, oldest first, to evict them.
    order: VecDeque<(Slot, IdempotencyKey)>,
    open: BTreeMap<IdempotencyKey, Open>,
}

/// The chosen log a new leader must read back: slots `from .. below`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeysWanted {
    pub from: Slot,
    pub below: Slot,
}

/// Why a log read back cannot give the keys: this slot is missing or not
/// marked chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryGap(pub Slot);

impl KeyIndex {
    /// The index of a leadership that starts at the chosen point `end`,
    /// in an epoch that started at `floor`: complete only if nothing was
    /// chosen before it in this epoch.
    pub fn starting_at(end: Slot, floor: Slot) -> KeyIndex {
        KeyIndex {
            end,
            load_below: (end > floor).then_some(end),
            floor,
            chosen: BTreeMap::new(),
            order: VecDeque::new(),
            open: BTreeMap::new(),
        }
    }

    /// The chosen point this index reflects.
    pub fn end(&self) -> Slot {
        self.end
    }

    /// What must be read back before keys unknown here can be allocated.
    pub fn wanted(&self) -> Option<KeysWanted> {
        self.load_below.map(|below| KeysWanted {
            from: Slot(below.0.saturating_sub(WINDOW_SLOTS)).max(self.floor),
            below,
        })
    }

    /// The effective keyed parts of `slots .. below`, read back from the
    /// chosen log, older than everything this index holds. False (and
    /// nothing changes) if they are not what [`KeyIndex::wanted`] asks for.
    pub fn load(&mut self, below: Slot, parts: Vec<(Slot, KeyedPart)>) -> bool {
        if self.load_below != Some(below) {
            return false;
        }
        let mut older = VecDeque::new();
        for (slot, part) in parts.into_iter().filter(|(slot, _)| *slot < below) {
            if let std::collections::btree_map::Entry::Vacant(entry) = self.chosen.entry(part.key) {
                older.push_back((slot, entry.key().clone()));
                entry.insert((slot, part.allocation));
            }
        }
        older.append(&mut self.order);
        self.order = older;
        self.load_below = None;
        self.evict();
        true
    }

    /// How to answer a request for `count` IDs of `sequence` under `key`.
    pub fn check(&self, key: &IdempotencyKey, sequence: &SequenceName, count: u64) -> KeyCheck {
        if let Some((_, allocation)) = self.chosen.get(key) {
            return if allocation.sequence == *sequence && allocation.count == count {
                KeyCheck::Chosen(allocation.clone())
            } else {
                KeyCheck::Reused
            };
        }
        if let Some(open) = self.open.get(key) {
            return if open.sequence == *sequence && open.count == count {
                KeyCheck::InFlight
            } else {
                KeyCheck::Reused
            };
        }
        match self.load_below {
            Some(_) => KeyCheck::Loading,
            None => KeyCheck::New,
        }
    }

    /// A keyed request was taken: it waits for a slot.
    pub fn take(&mut self, key: IdempotencyKey, sequence: SequenceName, count: u64) {
        let open = Open {
            sequence,
            count,
            slot: None,
        };
        self.open.insert(key, open);
    }

    /// A taken request got its part in `slot`, or a recovered slot holds one.
    pub fn propose(&mut self, slot: Slot, part: &KeyedPart) {
        let open = Open {
            sequence: part.allocation.sequence.clone(),
            count: part.allocation.count,
            slot: Some(slot),
        };
        self.open.insert(part.key.clone(), open);
    }

    /// A taken request left before it got a slot (refused, timed out).
    pub fn drop_waiting(&mut self, key: &IdempotencyKey) {
        if self.open.get(key).is_some_and(|open| open.slot.is_none()) {
            self.open.remove(key);
        }
    }

    /// `slot` is chosen with `value`, and `effective` are the allocations
    /// of it that take effect: its keys are chosen, or void and forgotten.
    pub fn apply(&mut self, slot: Slot, value: &Value, effective: &[Allocation]) {
        for part in value.keyed_parts() {
            if self
                .open
                .get(&part.key)
                .is_some_and(|open| open.slot == Some(slot))
            {
                self.open.remove(&part.key);
            }
        }
        for part in effective_parts(value, effective) {
            if !self.chosen.contains_key(&part.key) {
                self.chosen
                    .insert(part.key.clone(), (slot, part.allocation.clone()));
                self.order.push_back((slot, part.key.clone()));
            }
        }
        self.end = slot.next();
        self.evict();
    }

    /// What a leader keeps when it steps down: the chosen keys. Whatever
    /// was open may or may not be chosen; the next leader recovers it.
    pub fn chosen_only(mut self) -> KeyIndex {
        self.open.clear();
        self
    }

    /// Keys remembered now (chosen, in the window).
    pub fn len(&self) -> usize {
        self.chosen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chosen.is_empty()
    }

    fn evict(&mut self) {
        let window_start = self.end.0.saturating_sub(WINDOW_SLOTS);
        while let Some((slot, key)) = self.order.front() {
            if slot.0 >= window_start && self.order.len() <= KEYS_MAX {
                break;
            }
            // A key is in `order` once, with the slot it is chosen in.
            self.chosen.remove(key);
            self.order.pop_front();
        }
    }
}

/// The keyed parts of `value` that lie in an allocation that takes effect.
pub fn effective_parts<'a>(
    value: &'a Value,
    effective: &'a [Allocation],
) -> impl Iterator<Item = &'a KeyedPart> {
    value.keyed_parts().iter().filter(move |part| {
        let a = &part.allocation;
        effective
            .iter()
            .any(|e| e.sequence == a.sequence && e.first <= a.first && a.end() <= e.end())
    })
}

/// Which acceptors to read the keys `wanted` back from, best first, given
/// where the log of each that answered starts (`(acceptor, compacted
/// below)`, out of `acceptors`): those whose log reaches back to the
/// window's start. A log that starts later (a rebuilt acceptor, or one
/// caught up with a snapshot) lacks keys another may hold, so it is used
/// only when every acceptor answered and none reaches back: then the keys
/// below the furthest one are gone everywhere (after a membership change,
/// say), and it is the best there is.
pub fn sources(bases: &[(usize, Slot)], acceptors: usize, wanted: KeysWanted) -> Vec<usize> {
    let reaching: Vec<usize> = bases
        .iter()
        .filter(|(_, below)| *below <= wanted.from)
        .map(|(a, _)| *a)
        .collect();
    if !reaching.is_empty() || bases.len() < acceptors {
        return reaching;
    }
    bases
        .iter()
        .min_by_key(|(_, below)| *below)
        .map(|(a, _)| *a)
        .into_iter()
        .collect()
}

/// Reads the effective keyed parts of the slots `from .. below` out of a
/// chosen log read back from one acceptor: its snapshot, then its entries
/// from the snapshot on, each marked chosen, fed in slot order (page by
/// page: the log may be long). The snapshot's counters are what tells a
/// void part from one that took effect, so the entries must follow it
/// without a gap.
#[derive(Clone, Debug)]
pub struct History {
    counters: Counters,
    next: Slot,
    wanted: KeysWanted,
    parts: Vec<(Slot, KeyedPart)>,
}

impl History {
    pub fn after(snapshot: &Snapshot, wanted: KeysWanted) -> History {
        History {
            counters: snapshot.counters.clone(),
            next: snapshot.below,
            wanted,
            parts: Vec::new(),
        }
    }

    /// The next slot to feed; done once it reaches `wanted.below`.
    pub fn next(&self) -> Slot {
        self.next
    }

    /// One entry of the log; entries at or above `wanted.below` are ignored.
    pub fn feed(&mut self, slot: Slot, value: &Value, chosen: bool) -> Result<(), HistoryGap> {
        if slot >= self.wanted.below {
            return Ok(());
        }
        if slot != self.next || !chosen {
            return Err(HistoryGap(self.next));
        }
        let effective = self.counters.apply(value);
        if slot >= self.wanted.from {
            let parts = effective_parts(value, &effective).map(|part| (slot, part.clone()));
            self.parts.extend(parts);
        }
        self.next = slot.next();
        Ok(())
    }

    /// The parts read, once every slot below `wanted.below` was fed.
    pub fn finish(self) -> Result<Vec<(Slot, KeyedPart)>, HistoryGap> {
        if self.next < self.wanted.below {
            return Err(HistoryGap(self.next));
        }
        Ok(self.parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k).expect("valid key")
    }

    fn seq() -> SequenceName {
        SequenceName::default_sequence()
    }

    fn alloc(first: u64, count: u64) -> Allocation {
        Allocation {
            sequence: seq(),
            first,
            count,
        }
    }

    fn keyed(first: u64, count: u64, k: &str) -> Value {
        Value::KeyedAllocations {
            allocations: vec![alloc(first, count)],
            keys: vec![KeyedPart {
                key: key(k),
                allocation: alloc(first, count),
            }],
        }
    }

    #[test]
    fn keys_are_read_from_a_log_that_reaches_back_to_the_window() {
        let wanted = KeysWanted {
            from: Slot(10),
            below: Slot(100),
        };
        let bases = [(0, Slot(50)), (1, Slot(10)), (2, Slot(0))];
        assert_eq!(sources(&bases, 3, wanted), vec![1, 2]);
        // Acceptor 1 is down and 0 was rebuilt: 0 alone would lose keys 2 may hold.
        assert_eq!(sources(&[(0, Slot(50))], 3, wanted), Vec::<usize>::new());
        // Every acceptor answered and none reaches back: the furthest one.
        assert_eq!(
            sources(&[(0, Slot(50)), (1, Slot(30)), (2, Slot(60))], 3, wanted),
            vec![1]
        );
    }

    #[test]
    fn keys_are_validated() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("a b").is_err(), "space is not visible");
        assert!(IdempotencyKey::parse("é").is_err());
        assert!(IdempotencyKey::parse("tab\t").is_err());
        assert!(IdempotencyKey::parse("!~").is_ok());
    }

    #[test]
    fn a_chosen_key_answers_with_its_allocation_and_refuses_another_shape() {
        let mut index = KeyIndex::starting_at(Slot(0), Slot(0));
        assert_eq!(index.check(&key("a"), &seq(), 3), KeyCheck::New);
        index.take(key("a"), seq(), 3);
        assert_eq!(index.check(&key("a"), &seq(), 3), KeyCheck::InFlight);
        assert_eq!(index.check(&key("a"), &seq(), 4), KeyCheck::Reused);
        let value = keyed(1, 3, "a");
        index.propose(Slot(0), &value.keyed_parts()[0]);
        index.apply(Slot(0), &value, value.allocations());
        assert_eq!(index.check(&key("a"), &seq(), 3), KeyCheck::Chosen(alloc(1, 3)));
        let other = SequenceName::parse("other").expect("valid");
        assert_eq!(index.check(&key("a"), &other, 3), KeyCheck::Reused);
        assert_eq!(index.check(&key("a"), &seq(), 2), KeyCheck::Reused);
    }

    #[test]
    fn a_void_part_is_forgotten_not_answered() {
        let mut index = KeyIndex::starting_at(Slot(0), Slot(0));
        let value = keyed(1, 3, "a");
        index.propose(Slot(4), &value.keyed_parts()[0]);
        // The allocation is void: an earlier slot handed these IDs out.
        index.apply(Slot(4), &value, &[]);
        assert_eq!(index.check(&key("a"), &seq(), 3), KeyCheck::New);
    }

    #[test]
    fn a_leadership_after_chosen_slots_waits_for_the_keys_before_it() {
        let mut index = KeyIndex::starting_at(Slot(100), Slot(0));
        assert_eq!(
            index.wanted(),
            Some(KeysWanted {
                from: Slot(0),
                below: Slot(100)
            })
        );
        assert_eq!(index.check(&key("old"), &seq(), 1), KeyCheck::Loading);
        let value = keyed(50, 1, "new");
        index.apply(Slot(100), &value, value.allocations());
        assert_eq!(
            index.check(&key("new"), &seq(), 1),
            KeyCheck::Chosen(alloc(50, 1))
        );
        assert!(!index.load(Slot(99), Vec::new()), "not what it asked for");
        let old = KeyedPart {
            key: key("old"),
            allocation: alloc(7, 1),
        };
        assert!(index.load(Slot(100), vec![(Slot(10), old)]));
        assert_eq!(index.wanted(), None);
        assert_eq!(index.check(&key("old"), &seq(), 1), KeyCheck::Chosen(alloc(7, 1)));
        assert_eq!(index.check(&key("never"), &seq(), 1), KeyCheck::New);
    }

    #[test]
    fn the_window_reaches_back_no_further_than_the_epoch() {
        let index = KeyIndex::starting_at(Slot(WINDOW_SLOTS + 500), Slot(300));
        assert_eq!(index.wanted().map(|w| w.from), Some(Slot(500)));
        let index = KeyIndex::starting_at(Slot(1000), Slot(300));
        assert_eq!(index.wanted().map(|w| w.from), Some(Slot(300)));
        let index = KeyIndex::starting_at(Slot(300), Slot(300));
        assert_eq!(index.wanted(), None, "nothing chosen in this epoch yet");
    }

    #[test]
    fn keys_leave_the_window_by_slot_and_by_count() {
        let mut index = KeyIndex::starting_at(Slot(0), Slot(0));
        let value = keyed(1, 1, "first");
        index.apply(Slot(0), &value, value.allocations());
        for slot in 1..WINDOW_SLOTS {
            index.apply(Slot(slot), &Value::Noop, &[]);
        }
        assert_eq!(
            index.check(&key("first"), &seq(), 1),
            KeyCheck::Chosen(alloc(1, 1))
        );
        index.apply(Slot(WINDOW_SLOTS), &Value::Noop, &[]);
        assert_eq!(
            index.check(&key("first"), &seq(), 1),
            KeyCheck::New,
            "out of the window"
        );

        // Two keys a slot: the count binds long before the slots do.
        let mut index = KeyIndex::starting_at(Slot(0), Slot(0));
        let part = |n: u64| KeyedPart {
            key: key(&format!("k{n}")),
            allocation: alloc(n + 1, 1),
        };
        for n in (0..=KEYS_MAX as u64).step_by(2) {
            let value = Value::KeyedAllocations {
                allocations: vec![alloc(n + 1, 2)],
                keys: vec![part(n), part(n + 1)],
            };
            index.apply(Slot(n / 2), &value, value.allocations());
        }
        assert!((KEYS_MAX as u64 / 2 + 1) < WINDOW_SLOTS);
        assert_eq!(index.len(), KEYS_MAX);
        assert_eq!(
            index.check(&key("k0"), &seq(), 1),
            KeyCheck::New,
            "the oldest went first"
        );
        assert_eq!(index.check(&key("k1"), &seq(), 1), KeyCheck::New);
        assert_eq!(index.check(&key("k2"), &seq(), 1), KeyCheck::Chosen(alloc(3, 1)));
    }

    fn read(
        snapshot: &Snapshot,
        log: &[(Slot, &Value, bool)],
        from: u64,
        below: u64,
    ) -> Result<Vec<(Slot, KeyedPart)>, HistoryGap> {
        let wanted = KeysWanted {
            from: Slot(from),
            below: Slot(below),
        };
        let mut history = History::after(snapshot, wanted);
        for (slot, value, chosen) in log {
            history.feed(*slot, value, *chosen)?;
        }
        history.finish()
    }

    #[test]
    fn history_is_read_from_the_snapshot_on_without_gaps() {
        let snapshot = Snapshot {
            below: Slot(5),
            counters: Counters::default(),
        };
        let a = keyed(1, 2, "a");
        // Void: slot 5 handed out 1..=2 already.
        let void = keyed(2, 1, "void");
        let b = keyed(3, 1, "b");
        let log = [(Slot(5), &a, true), (Slot(6), &void, true), (Slot(7), &b, true)];
        let parts = read(&snapshot, &log, 0, 8).expect("complete");
        let keys: Vec<&str> = parts.iter().map(|(_, p)| p.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(
            read(&snapshot, &log, 6, 8).map(|p| p.len()),
            Ok(1),
            "slots before `from` only set the counters"
        );
        assert_eq!(
            read(&snapshot, &log[1..], 0, 8),
            Err(HistoryGap(Slot(5))),
            "must start at the snapshot"
        );
        let gap = [(Slot(5), &a, true), (Slot(7), &b, true)];
        assert_eq!(read(&snapshot, &gap, 0, 8), Err(HistoryGap(Slot(6))));
        let unmarked = [(Slot(5), &a, true), (Slot(6), &void, false)];
        assert_eq!(read(&snapshot, &unmarked, 0, 8), Err(HistoryGap(Slot(6))));
        assert_eq!(
            read(&snapshot, &unmarked, 0, 6).map(|p| p.len()),
            Ok(1),
            "entries from `below` on are not looked at"
        );
        assert_eq!(
            read(&snapshot, &log[..2], 0, 8),
            Err(HistoryGap(Slot(7))),
            "short of `below`"
        );
    }
}
