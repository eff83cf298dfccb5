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

/// Transitional, not part of the wire types: the TLS provider belongs to
/// the clients, `paxid_client::install_tls_provider` (which this mirrors).
/// Only the `tests/` crate still calls this one; once it calls that one,
/// delete this function and this crate's `rustls` dependency.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Sequencers and learners name their cluster (`--cluster-id`) on every
/// call to an acceptor; an acceptor of another cluster answers 409
/// `wrong-cluster` and so is never counted.
pub const CLUSTER_ID_HEADER: &str = "x-paxid-cluster-id";
