//! Multi-Paxos for paxid, as plain state machines.
//!
//! No async, no I/O, no clock or randomness reads, no serde: time and random
//! draws come in as arguments, effects come out as values that a driver
//! executes. See ARCHITECTURE.md for the protocol and its invariants.

pub mod acceptor;
pub mod contact;
pub mod idempotency;
pub mod learner;
pub mod proposer;
pub mod rebuild;
pub mod storage;
pub mod types;
pub mod upkeep;

pub use acceptor::{
    Accept, AcceptReply, Acceptor, AcceptorState, AcceptorView, Change, Commit, CommitReply, HeldReply,
    Install, Join, JoinReply, NotVoting, Persisted, Prepare, PrepareReply, Promise, Step, Transition,
};
pub use contact::{Heard, LeaderContact};
pub use idempotency::{KeyCheck, KeyIndex, KeysWanted};
pub use learner::Learner;
pub use proposer::{AcceptorStatus, Effect, IdRequest, Proposer, ProposerConfig, Refusal, RequestId, Role};
pub use rebuild::{Rebuild, RebuildStep};
pub use storage::{AcceptorStore, MemoryStore};
pub use types::{
    quorum, Accepted, AcceptorId, Allocation, Ballot, Configuration, Counters, IdempotencyKey,
    IdempotencyKeyError, KeyedPart, MemberId, Membership, NodeId, Replace, Seat, SequenceName,
    SequenceNameError, Slot, Snapshot, Value,
};
