//! Where an acceptor's state lives between restarts.
//!
//! The service stores it in RocksDB; the simulation in memory. Both pass
//! the same [`conformance`] suite, so the simulation's crashes mean what a
//! real crash means: only what a completed `write` returned for survives.

use std::fmt;

use crate::acceptor::{AcceptorState, Change, Persisted};

pub trait AcceptorStore {
    type Error: fmt::Debug + fmt::Display;

    /// The state as of the last completed write.
    fn load(&self) -> Result<AcceptorState, Self::Error>;

    /// Applies `changes` in order as one atomic, durable write.
    fn write(&mut self, changes: &[Change]) -> Result<Persisted, Self::Error>;
}

/// A store in memory: durable for the simulation's purposes.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: AcceptorState,
    writes: u64,
}

impl MemoryStore {
    /// A store that holds `state` already, as a data dir would.
    pub fn with_state(state: AcceptorState) -> MemoryStore {
        MemoryStore { state, writes: 0 }
    }

    pub fn writes(&self) -> u64 {
        self.writes
    }
}

impl AcceptorStore for MemoryStore {
    type Error = std::convert::Infallible;

    fn load(&self) -> Result<AcceptorState, Self::Error> {
        Ok(self.state.clone())
    }

    fn write(&mut self, changes: &[Change]) -> Result<Persisted, Self::Error> {
        for change in changes {
            change.apply_to(&mut self.state);
        }
        self.writes += 1;
        Ok(Persisted::after_durable_write())
    }
}

/// The behaviour every store must have. Call [`conformance::run`] with a
/// function that opens the store at a fixed place (a directory, say), so
/// that a second call reopens what the first wrote.
pub mod conformance {
    use super::*;
    use crate::types::{
        Accepted, Allocation, Ballot, Configuration, Counters, MemberId, Membership, NodeId, Replace, Seat,
        SequenceName, Slot, Snapshot, Value,
    };

    fn ballot(round: u64) -> Ballot {
        Ballot::new(round, NodeId(1))
    }

    fn value(first: u64) -> Value {
        Value::Allocations(vec![Allocation {
            sequence: SequenceName::default_sequence(),
            first,
            count: 3,
        }])
    }

    fn accepted(round: u64, first: u64, chosen: bool) -> Accepted {
        Accepted {
            ballot: ballot(round),
            value: value(first),
            chosen,
        }
    }

    /// Panics with a message naming the broken rule.
    pub fn run<S: AcceptorStore>(mut open: impl FnMut() -> S) {
        let store = open();
        assert_eq!(
            store.load().expect("load"),
            AcceptorState::default(),
            "a new store is empty"
        );
        drop(store);

        let mut store = open();
        let first = Change {
            membership: Some(Membership::founding([MemberId(7), MemberId(8), MemberId(9)])),
            promised: Some(ballot(3)),
            put: vec![
                (Slot(0), accepted(2, 1, true)),
                (Slot(1), accepted(3, 4, false)),
                (Slot(7), accepted(3, 7, false)),
            ],
            ..Change::default()
        };
        let second = Change {
            put: vec![(Slot(1), accepted(3, 4, true))],
            ..Change::default()
        };
        store.write(&[first.clone(), second.clone()]).expect("write");
        let mut expected = AcceptorState::default();
        first.apply_to(&mut expected);
        second.apply_to(&mut expected);
        assert_eq!(
            store.load().expect("load"),
            expected,
            "load returns what was written"
        );
        drop(store);

        let mut store = open();
        assert_eq!(
            store.load().expect("load"),
            expected,
            "a write survives reopening"
        );
        let counters = Counters::from_map([(SequenceName::default_sequence(), 7)].into());
        let mut replaced = Membership::founding([MemberId(7), MemberId(8), MemberId(9)]);
        replaced.replace(Replace {
            retire: MemberId(9),
            admit: MemberId(10),
        });
        let compact = Change {
            membership: Some(replaced),
            promised: Some(ballot(4)),
            compact: Some(Snapshot {
                below: Slot(2),
                counters,
            }),
            put: vec![(Slot(8), accepted(4, 10, false))],
            ..Change::default()
        };
        store.write(std::slice::from_ref(&compact)).expect("write");
        compact.apply_to(&mut expected);
        assert_eq!(
            expected.log.keys().copied().collect::<Vec<_>>(),
            vec![Slot(7), Slot(8)]
        );
        drop(store);

        let store = open();
        assert_eq!(
            store.load().expect("load"),
            expected,
            "compaction deletes below and keeps the snapshot"
        );
        let mut store = store;
        store.write(&[]).expect("an empty write is allowed");
        assert_eq!(store.load().expect("load"), expected);

        // A move to epoch 1: the configuration is stored, the void tail
        // from slot 8 on is deleted, and a vote of the new epoch lands.
        let configuration = Configuration {
            epoch: 1,
            seats: vec![
                Seat {
                    address: "http://a:1".into(),
                    member: MemberId(7),
                },
                Seat {
                    address: "http://d:1".into(),
                    member: MemberId(11),
                },
            ],
        };
        let transition = Change {
            membership: Some(configuration.membership()),
            configuration: Some(configuration),
            promised: Some(Ballot::opening(1)),
            truncate: Some(Slot(8)),
            put: vec![(Slot(9), accepted(5, 20, false))],
            ..Change::default()
        };
        store.write(std::slice::from_ref(&transition)).expect("write");
        transition.apply_to(&mut expected);
        assert_eq!(
            expected.log.keys().copied().collect::<Vec<_>>(),
            vec![Slot(7), Slot(9)]
        );
        drop(store);
        let store = open();
        assert_eq!(
            store.load().expect("load"),
            expected,
            "a transition keeps its configuration and deletes the tail"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A memory store shared across "reopens", as a directory would be.
    struct Shared(Rc<RefCell<MemoryStore>>);

    impl AcceptorStore for Shared {
        type Error = std::convert::Infallible;
        fn load(&self) -> Result<AcceptorState, Self::Error> {
            self.0.borrow().load()
        }
        fn write(&mut self, changes: &[Change]) -> Result<Persisted, Self::Error> {
            self.0.borrow_mut().write(changes)
        }
    }

    #[test]
    fn memory_store_conforms() {
        let disk = Rc::new(RefCell::new(MemoryStore::default()));
        conformance::run(|| Shared(disk.clone()));
    }
}
