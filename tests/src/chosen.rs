//! The chosen log as the acceptors report it, and the allocations in it
//! that take effect: what a subscriber of every sequence must receive, slot
//! by slot, whether or not a client ever saw it.

use std::collections::BTreeMap;

use api::internal::{Allocation, LogResponse, Value};

use crate::Cluster;

/// Slot -> the effective allocations of that slot (void ones removed),
/// for every chosen slot the acceptors still hold.
pub type Effective = BTreeMap<u64, Vec<Allocation>>;

/// Reads `/v1/log` from every running acceptor and merges it: a slot is
/// chosen if one acceptor marks it chosen (or holds it below its
/// `chosen_below`), or a majority accepted it under one ballot (the marks
/// arrive one round trip late, so the last slots may be unmarked).
/// Fails if the log was compacted (slots lost to the check).
pub async fn read_chosen_log(cluster: &Cluster) -> Result<BTreeMap<u64, Value>, String> {
    let mut logs = Vec::new();
    for url in cluster.acceptor_urls() {
        if let Ok(log) = read_log(cluster, &url).await {
            logs.push(log);
        }
    }
    merge(&logs, cluster.acceptors.len())
}

async fn read_log(cluster: &Cluster, url: &str) -> Result<Vec<LogResponse>, String> {
    let mut pages = Vec::new();
    let mut from = 0;
    loop {
        let mut request = cluster.http.get(format!("{url}/v1/log?from={from}&limit=10000"));
        if let Some(token) = &cluster.spec.cluster_token {
            request = request.bearer_auth(token);
        }
        let page: LogResponse = request
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.entries.last() else {
            pages.push(page);
            return Ok(pages);
        };
        from = last.slot + 1;
        pages.push(page);
    }
}

/// Merges the pages of each acceptor (`logs[i]` = one acceptor's pages).
pub fn merge(logs: &[Vec<LogResponse>], acceptors: usize) -> Result<BTreeMap<u64, Value>, String> {
    let mut chosen = BTreeMap::new();
    // (slot, ballot as JSON) -> (value, votes)
    let mut votes: BTreeMap<(u64, String), (Value, usize)> = BTreeMap::new();
    for pages in logs {
        for page in pages {
            if page.compacted_below > 0 {
                return Err(format!(
                    "an acceptor compacted below slot {}: raise --key-window-slots/--retain-slots",
                    page.compacted_below
                ));
            }
            for entry in &page.entries {
                if entry.chosen || entry.slot < page.chosen_below {
                    insert(&mut chosen, entry.slot, &entry.value)?;
                }
                let ballot = serde_json::to_string(&entry.ballot).unwrap_or_default();
                votes
                    .entry((entry.slot, ballot))
                    .or_insert((entry.value.clone(), 0))
                    .1 += 1;
            }
        }
    }
    for ((slot, _), (value, count)) in votes {
        if count * 2 > acceptors {
            insert(&mut chosen, slot, &value)?;
        }
    }
    Ok(chosen)
}

fn insert(chosen: &mut BTreeMap<u64, Value>, slot: u64, value: &Value) -> Result<(), String> {
    match chosen.get(&slot) {
        Some(known) if known != value => Err(format!("slot {slot}: two different values chosen")),
        _ => {
            chosen.insert(slot, value.clone());
            Ok(())
        }
    }
}

/// Applies the chosen log in slot order with the product's rule (an
/// allocation takes effect only if it starts at or above its sequence's
/// counter; every allocation raises the counter) and keeps, per slot, the
/// effective allocations of the sequences `wanted` accepts. Slots left with
/// none are left out.
pub fn effective(chosen: &BTreeMap<u64, Value>, wanted: impl Fn(&str) -> bool) -> Effective {
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    let mut out = Effective::new();
    for (&slot, value) in chosen {
        let Value::Allocations { allocations, .. } = value else {
            continue;
        };
        let mut taken = Vec::new();
        for allocation in allocations {
            let counter = next.entry(allocation.sequence.as_str()).or_insert(1);
            if allocation.id >= *counter && wanted(&allocation.sequence) {
                taken.push(allocation.clone());
            }
            *counter = (*counter).max(allocation.id + allocation.count);
        }
        if !taken.is_empty() {
            out.insert(slot, taken);
        }
    }
    out
}
