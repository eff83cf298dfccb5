//! Harness for paxid's end-to-end tests: real binaries as real processes on
//! loopback ports, temp data dirs, a recorded client history and the
//! linearizability checker of the product brief.

pub mod checker;
pub mod chosen;
pub mod cluster;
pub mod delivery;
pub mod interpose;
pub mod load;

pub use checker::{check_history, Op};
pub use cluster::{Cluster, ClusterSpec, Proc};
pub use load::{run_load, LoadSpec};

/// End-to-end tests start whole clusters; on two cores, running two at once
/// would make elections flap. Every such test holds this lock.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
