//! Wire types shared by every paxid server and client, so they cannot drift.
//!
//! The wire's JSON shapes live here and nowhere else (stores have their own
//! binary records). Each internal type converts to and from its
//! `paxos-core` counterpart; conversions from the wire validate (sequence
//! names, counts) and fail with a message fit for a problem+json `detail`.
//! [`routes`] names every path the servers route and the clients call.

pub mod client;
pub mod internal;
pub mod learner;
pub mod openapi;
pub mod problem;
pub mod routes;

/// Sequencers and learners name their cluster (`--cluster-id`) on every
/// call to an acceptor; an acceptor of another cluster answers 409
/// `wrong-cluster` and so is never counted.
pub const CLUSTER_ID_HEADER: &str = "x-paxid-cluster-id";
