//! A new leader reads the `Idempotency-Key`s chosen before it back from the
//! acceptors' logs (see `paxos_core::idempotency`).
//!
//! Until it has them, keyed requests it does not know are answered 503
//! (`Refusal::KeysLoading`): a retry's key may be among them. Unkeyed
//! requests are served meanwhile. One acceptor's snapshot and the log
//! entries after it, every one marked chosen, are enough: the snapshot's
//! counters tell which keyed parts took effect. Any acceptor with a chosen
//! point at the leadership's start will do, and at least the one whose
//! promise set that start has one.

use std::time::Duration;

use api::internal::LogResponse;
use paxos_core::idempotency::{sources, History};
use paxos_core::{AcceptorId, KeyedPart, KeysWanted, Slot, Snapshot, Value};
use tracing::{debug, info, warn};

use crate::peers::Peers;

/// Entries asked for per `GET /v1/log`: the acceptor's maximum.
const LOG_PAGE_ENTRIES: usize = 10_000;
/// Waited after every acceptor failed, before the driver tries again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// The effective keyed parts of `wanted`, from the first acceptor that has
/// them all (`paxos_core::idempotency::sources` says which may); None when
/// none has (yet).
pub async fn read_back(peers: &Peers, wanted: KeysWanted) -> Option<Vec<(Slot, KeyedPart)>> {
    let acceptors = peers.acceptor_count();
    let mut bases = Vec::new();
    for to in (0..acceptors).map(AcceptorId) {
        match peers
            .snapshot(to)
            .await
            .map_err(|e| e.to_string())
            .and_then(|s| Snapshot::try_from(&s))
        {
            Ok(snapshot) => bases.push((to.0, snapshot)),
            Err(reason) => debug!(acceptor = to.0, %reason, "no snapshot to read the keys back from"),
        }
    }
    let starts: Vec<(usize, Slot)> = bases.iter().map(|(a, s)| (*a, s.below)).collect();
    for a in sources(&starts, acceptors, wanted) {
        let snapshot = &bases.iter().find(|(b, _)| *b == a).expect("a source answered").1;
        if snapshot.below > wanted.from {
            warn!(
                acceptor = a,
                compacted_below = %snapshot.below,
                window_from = %wanted.from,
                "every acceptor's log starts after the window of idempotency keys; keys chosen before it are not known"
            );
        }
        match read_from(peers, AcceptorId(a), snapshot, wanted).await {
            Ok(parts) => {
                info!(
                    from = %wanted.from,
                    below = %wanted.below,
                    keys = parts.len(),
                    acceptor = a,
                    "read back the idempotency keys chosen before this leadership"
                );
                return Some(parts);
            }
            Err(reason) => debug!(acceptor = a, %reason, "cannot read the keys back from this acceptor"),
        }
    }
    warn!(
        from = %wanted.from,
        below = %wanted.below,
        "no acceptor could give the idempotency keys back yet; keyed requests wait"
    );
    None
}

async fn read_from(
    peers: &Peers,
    to: AcceptorId,
    snapshot: &Snapshot,
    wanted: KeysWanted,
) -> Result<Vec<(Slot, KeyedPart)>, String> {
    let mut history = History::after(snapshot, wanted);
    // Page by page. Compaction may move on meanwhile (the window's start
    // moves with every slot chosen), as long as it stays below the next
    // slot to read: the entries fed already came after the snapshot.
    while history.next() < wanted.below {
        let from = history.next().0;
        let page: LogResponse = peers
            .log(to, from, LOG_PAGE_ENTRIES)
            .await
            .map_err(|e| e.to_string())?;
        if page.compacted_below > from {
            return Err(format!("compacted to {} while read", page.compacted_below));
        }
        if page.chosen_below < wanted.below.0 {
            return Err(format!("chosen only below {}", page.chosen_below));
        }
        if page.entries.is_empty() {
            return Err(format!("no entries from {from}"));
        }
        for entry in &page.entries {
            let value = Value::try_from(&entry.value)?;
            history
                .feed(Slot(entry.slot), &value, entry.chosen)
                .map_err(|gap| format!("slot {} is missing or not marked chosen", gap.0))?;
        }
        if history.next().0 == from {
            return Err(format!("slot {from} is missing"));
        }
    }
    history
        .finish()
        .map_err(|gap| format!("slot {} is missing", gap.0))
}
