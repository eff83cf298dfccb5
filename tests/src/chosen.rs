//! The chosen log as the acceptors report it, and the allocations in it
//! that take effect: what a subscriber of every sequence must receive, slot
//! by slot, whether or not a client ever saw it.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use api::internal::{Allocation, LogResponse, Snapshot, Value};
use paxid_client::internal::{InternalClient, Options};

use crate::delivery::Delivered;
use crate::Cluster;

/// Slot -> the effective allocations of that slot (void ones removed),
/// for every chosen slot the acceptors still hold.
pub type Effective = BTreeMap<u64, Vec<Allocation>>;

/// The chosen log as far back as every acceptor that answered still holds
/// it: the slots from `start.below` on, and `start.counters`, each
/// sequence's next ID at that slot, so that which allocations take effect
/// can be computed without the compacted prefix.
#[derive(Clone, Debug, Default)]
pub struct ChosenLog {
    pub start: Snapshot,
    pub slots: BTreeMap<u64, Value>,
}

/// One acceptor's snapshot and its log pages from the snapshot on.
#[derive(Clone, Debug)]
pub struct AcceptorLog {
    pub snapshot: Snapshot,
    pub pages: Vec<LogResponse>,
}

/// Reads `/v1/snapshot` and `/v1/log` from every running acceptor and
/// merges them: a slot is chosen if one acceptor marks it chosen (or holds
/// it below its `chosen_below`), or a majority accepted it under one
/// ballot (the marks arrive one round trip late, so the last slots may be
/// unmarked). Acceptors that compact (`--retain-slots`) keep the check to
/// the slots they all still hold.
pub async fn read_chosen_log(cluster: &Cluster) -> Result<ChosenLog, String> {
    let client = InternalClient::new(Options::default(), Arc::new(cluster.spec.cluster_token.clone()))
        .map_err(|e| e.to_string())?;
    let mut logs = Vec::new();
    for url in cluster.acceptor_urls() {
        if let Ok(log) = read_acceptor(&client, &url).await {
            logs.push(log);
        }
    }
    merge(&logs, cluster.acceptors.len())
}

/// The snapshot, then the log from it on; again if the acceptor compacted
/// in between (the log must start where the snapshot ends).
async fn read_acceptor(client: &InternalClient, url: &str) -> Result<AcceptorLog, String> {
    for _ in 0..10 {
        let snapshot = client.snapshot(url).await.map_err(|e| e.to_string())?;
        let pages = read_log(client, url, snapshot.below).await?;
        if pages
            .first()
            .is_some_and(|page| page.compacted_below == snapshot.below)
        {
            return Ok(AcceptorLog { snapshot, pages });
        }
    }
    Err(format!("{url} kept compacting while its log was read"))
}

async fn read_log(client: &InternalClient, url: &str, mut from: u64) -> Result<Vec<LogResponse>, String> {
    let mut pages = Vec::new();
    loop {
        let page = client.log(url, from, 10_000).await.map_err(|e| e.to_string())?;
        let Some(last) = page.entries.last() else {
            pages.push(page);
            return Ok(pages);
        };
        from = last.slot + 1;
        pages.push(page);
    }
}

/// Merges what each acceptor holds from the latest snapshot among them on.
pub fn merge(logs: &[AcceptorLog], acceptors: usize) -> Result<ChosenLog, String> {
    let start = logs
        .iter()
        .map(|log| &log.snapshot)
        .max_by_key(|snapshot| snapshot.below)
        .cloned()
        .unwrap_or_default();
    let mut chosen = BTreeMap::new();
    // (slot, ballot as JSON) -> (value, votes)
    let mut votes: BTreeMap<(u64, String), (Value, usize)> = BTreeMap::new();
    for page in logs.iter().flat_map(|log| &log.pages) {
        for entry in page.entries.iter().filter(|e| e.slot >= start.below) {
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
    for ((slot, _), (value, count)) in votes {
        if count * 2 > acceptors {
            insert(&mut chosen, slot, &value)?;
        }
    }
    Ok(ChosenLog { start, slots: chosen })
}

/// Whether `delivered` holds exactly the effective chosen allocations of
/// the sequences `wanted` accepts, slot by slot, within `slots` (cut to
/// what the chosen log still holds): every one, including those no client
/// received. `Ok` says how many slots were compared; none is an error, so
/// that a check the acceptors compacted away cannot pass.
pub fn delivered_as_chosen(
    chosen: &ChosenLog,
    delivered: &Delivered,
    slots: RangeInclusive<u64>,
    wanted: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let effective = effective(chosen, wanted);
    let slots = (*slots.start()).max(chosen.start.below)..=*slots.end();
    let problems = delivered.missing_chosen(&effective, slots.clone());
    let compared = effective.range(slots.clone()).count();
    if compared == 0 {
        Err(format!(
            "no effective chosen slot in {slots:?} to compare (compacted?)"
        ))
    } else if problems.is_empty() {
        Ok(format!(
            "every one of {compared} effective chosen slots in {slots:?} delivered"
        ))
    } else {
        Err(format!(
            "{} slots of {compared} chosen in {slots:?} differ: {:?}",
            problems.len(),
            &problems[..problems.len().min(5)]
        ))
    }
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

/// Applies the chosen log in slot order from its start's counters with the
/// product's rule (an allocation takes effect only if it starts at or above
/// its sequence's counter; every allocation raises the counter) and keeps,
/// per slot, the effective allocations of the sequences `wanted` accepts.
/// Slots left with none are left out.
pub fn effective(chosen: &ChosenLog, wanted: impl Fn(&str) -> bool) -> Effective {
    let mut next: BTreeMap<&str, u64> = chosen
        .start
        .counters
        .iter()
        .map(|(sequence, next)| (sequence.as_str(), *next))
        .collect();
    let mut out = Effective::new();
    for (&slot, value) in &chosen.slots {
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
