//! `MemoryStore`, and the conformance suite's power: a suite that passes a
//! broken store proves nothing about RocksDB, so each broken store here
//! must fail it, with the message naming the broken rule.

use std::cell::RefCell;
use std::rc::Rc;

use paxos_core::storage::conformance;
use paxos_core::{AcceptorState, AcceptorStore, Ballot, Change, MemberId, MemoryStore, Persisted};

#[test]
fn a_memory_store_counts_its_writes() {
    let mut store = MemoryStore::default();
    assert_eq!(store.writes(), 0);
    let _ = store.write(&[]).expect("write");
    assert_eq!(store.writes(), 1);
    let _ = store
        .write(&[Change::default(), Change::default()])
        .expect("write");
    assert_eq!(store.writes(), 2, "one write per call, however many changes");
}

#[test]
fn a_memory_store_starts_with_the_state_it_is_given() {
    let state = AcceptorState {
        promised: Ballot::new(4, paxos_core::NodeId(2)),
        ..AcceptorState::blank(MemberId(7))
    };
    let store = MemoryStore::with_state(state.clone());
    assert_eq!(store.load().expect("load"), state);
    assert_eq!(store.writes(), 0);
}

/// A store that forgets everything when reopened.
struct Forgetful(MemoryStore);

impl AcceptorStore for Forgetful {
    type Error = std::convert::Infallible;
    fn load(&self) -> Result<AcceptorState, Self::Error> {
        self.0.load()
    }
    fn write(&mut self, changes: &[Change]) -> Result<Persisted, Self::Error> {
        self.0.write(changes)
    }
}

#[test]
#[should_panic(expected = "a write survives reopening")]
fn the_suite_fails_a_store_that_loses_writes_on_reopening() {
    conformance::run(|| Forgetful(MemoryStore::default()));
}

/// A store shared across reopens that writes every vote under the zero
/// ballot: it keeps values but not who proposed them.
struct BallotLosing(Rc<RefCell<MemoryStore>>);

impl AcceptorStore for BallotLosing {
    type Error = std::convert::Infallible;
    fn load(&self) -> Result<AcceptorState, Self::Error> {
        self.0.borrow().load()
    }
    fn write(&mut self, changes: &[Change]) -> Result<Persisted, Self::Error> {
        let lossy: Vec<Change> = changes
            .iter()
            .map(|change| {
                let mut change = change.clone();
                for (_, accepted) in &mut change.put {
                    accepted.ballot = Ballot::ZERO;
                }
                change
            })
            .collect();
        self.0.borrow_mut().write(&lossy)
    }
}

#[test]
#[should_panic(expected = "load returns what was written")]
fn the_suite_fails_a_store_that_loses_the_ballot_of_a_vote() {
    let disk = Rc::new(RefCell::new(MemoryStore::default()));
    conformance::run(|| BallotLosing(disk.clone()));
}

/// What a lossy store keeps of the changes it is given.
type Lose = fn(&[Change]) -> Vec<Change>;

/// A store shared across reopens that loses part of what it is given, as a
/// store with a separate code path for batches, compactions or epoch
/// transitions might.
struct Lossy {
    disk: Rc<RefCell<MemoryStore>>,
    lose: Lose,
}

impl AcceptorStore for Lossy {
    type Error = std::convert::Infallible;
    fn load(&self) -> Result<AcceptorState, Self::Error> {
        self.disk.borrow().load()
    }
    fn write(&mut self, changes: &[Change]) -> Result<Persisted, Self::Error> {
        self.disk.borrow_mut().write(&(self.lose)(changes))
    }
}

/// Runs the suite on a store that loses what `lose` drops; returns the
/// message it failed with, or None if it passed the store.
fn suite_failure(lose: Lose) -> Option<String> {
    let disk = Rc::new(RefCell::new(MemoryStore::default()));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        conformance::run(|| Lossy {
            disk: disk.clone(),
            lose,
        })
    }));
    let payload = outcome.err()?;
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
}

/// Each way of losing part of a write that the suite must notice, with the
/// rule it names.
#[test]
fn the_suite_fails_stores_that_lose_part_of_a_write() {
    fn each(changes: &[Change], f: fn(&mut Change)) -> Vec<Change> {
        changes
            .iter()
            .map(|c| {
                let mut c = c.clone();
                f(&mut c);
                c
            })
            .collect()
    }
    let batched = "load returns what was written";
    let compacted = "compaction deletes below and keeps the snapshot";
    let moved = "a transition keeps its configuration and deletes the tail";
    let cases: [(&str, Lose, &str); 8] = [
        (
            "only the first change of a batch",
            |cs| cs[..cs.len().min(1)].to_vec(),
            batched,
        ),
        (
            "the membership in a batch",
            |cs| {
                if cs.len() > 1 {
                    each(cs, |c| c.membership = None)
                } else {
                    cs.to_vec()
                }
            },
            batched,
        ),
        (
            "the promise in a batch",
            |cs| {
                if cs.len() > 1 {
                    each(cs, |c| c.promised = None)
                } else {
                    cs.to_vec()
                }
            },
            batched,
        ),
        (
            "the membership of a compaction",
            |cs| {
                each(cs, |c| {
                    if c.compact.is_some() {
                        c.membership = None
                    }
                })
            },
            compacted,
        ),
        (
            "the promise of a compaction",
            |cs| {
                each(cs, |c| {
                    if c.compact.is_some() {
                        c.promised = None
                    }
                })
            },
            compacted,
        ),
        (
            "the membership of a transition",
            |cs| {
                each(cs, |c| {
                    if c.truncate.is_some() {
                        c.membership = None
                    }
                })
            },
            moved,
        ),
        (
            "the configuration of a transition",
            |cs| {
                each(cs, |c| {
                    if c.truncate.is_some() {
                        c.configuration = None
                    }
                })
            },
            moved,
        ),
        (
            "the promise of a transition",
            |cs| {
                each(cs, |c| {
                    if c.truncate.is_some() {
                        c.promised = None
                    }
                })
            },
            moved,
        ),
    ];
    for (lost, lose, rule) in cases {
        let failure = suite_failure(lose);
        assert!(
            failure.as_deref().is_some_and(|m| m.contains(rule)),
            "a store losing {lost} must fail with {rule:?}, got {failure:?}"
        );
    }
}
