//! Wire types shared by every paxid server and client, so they cannot drift.
//!
//! Only this crate knows JSON. Each internal type converts to and from its
//! `paxos-core` counterpart; conversions from the wire validate (sequence
//! names, counts) and fail with a message fit for a problem+json `detail`.

pub mod client;
pub mod internal;
pub mod learner;
pub mod problem;

/// Prefix of every internal endpoint.
pub const INTERNAL_PREFIX: &str = "/v1";
