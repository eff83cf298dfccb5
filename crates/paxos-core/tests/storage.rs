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
