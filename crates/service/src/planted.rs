//! Bugs planted on purpose, to show that a named test catches each
//! (`scripts/planted-bugs.sh`, `make planted-bugs`). A bug is compiled in
//! only when the build runs with `PAXID_PLANTED_BUG=<name>` in its
//! environment; a normal build has none, and a binary that carries one
//! says so in its log at start. (The core's bugs are `--cfg paxid_bug`
//! flags; for the drivers that would rebuild RocksDB's C++ for every bug,
//! while a compile-time variable recompiles only the crates above this.)

/// The bug compiled into this build, if any.
pub const PLANTED_BUG: Option<&str> = option_env!("PAXID_PLANTED_BUG");

/// Whether `bug` is the one compiled in.
pub fn is(bug: &str) -> bool {
    PLANTED_BUG == Some(bug)
}
