//! The learner's RocksDB store: learned log, learner id, the configuration
//! it follows, subscriptions and their delivery cursors.
//!
//! Every record is `crc32 (4 bytes, big endian) ++ JSON`, so a torn or
//! corrupted record is detected on read instead of being delivered. Every
//! state change is one `WriteBatch`; writes that other parties rely on are
//! synced before the caller proceeds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use api::learner::LearnerGap;
use paxos_core::{Allocation, Configuration, Counters, SequenceName, Slot, Value};
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Why the store failed; every variant is an operating error of the disk.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record under key {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("task running a store operation failed: {0}")]
    Join(String),
}

/// A handle on the open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

/// Delivery state of one subscription as persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Active,
    Failing,
    Disabled,
}

/// A message whose slot range is fixed before its first attempt, so that
/// its `webhook-id` and body stay the same across retries and restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingMessage {
    /// First slot of the range (holds content for the subscriber).
    pub first_slot: u64,
    /// One past the last slot of the range.
    pub end_slot: u64,
    /// When the message was built, unix milliseconds (the body's timestamp).
    pub created_ms: u64,
    /// An `ids.gap` notice for `first_slot .. end_slot`, which this learner
    /// skipped (see [`Store::jump`]), instead of allocations.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gap: bool,
}

/// One subscription with its cursor, as persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub id: String,
    pub url: String,
    pub sequences: Option<Vec<String>>,
    /// `whsec_...`; never shown after creation.
    pub secret: String,
    pub state: DeliveryState,
    pub failing_since_ms: Option<u64>,
    pub disabled_reason: Option<String>,
    /// Every slot below this was delivered (or had nothing for this subscriber).
    pub delivered_below: u64,
    pub pending: Option<PendingMessage>,
    /// Bumped by replay and enable, so that an attempt started before them
    /// cannot move the cursor afterwards.
    pub epoch: u64,
}

/// The configuration the learner follows once it left epoch 0
/// ([`ConfigurationRecord`]); absent in epoch 0.
/// The configuration (epoch after 0) this learner reads, as persisted: the
/// wire form, checked again when read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationRecord {
    /// The first slot learned in this configuration: the slot after the
    /// stop sign that named it, or the snapshot point of a jump into it.
    pub from_slot: u64,
    pub configuration: api::internal::Configuration,
}

const CONFIGURATION_KEY: &[u8] = b"m:configuration";
const LEARNER_ID_KEY: &[u8] = b"m:learner_id";
const LEARNED_BELOW_KEY: &[u8] = b"m:learned_below";
/// The state machine's counters after applying every learned slot.
const COUNTERS_KEY: &[u8] = b"m:counters";
/// The first slot the learned log still holds; below it, pruned.
const LOG_START_KEY: &[u8] = b"m:log_start";
const LOG_PREFIX: &[u8] = b"l:";
/// Skipped slot ranges ([`Store::jump`]), by their first slot.
const GAP_PREFIX: &[u8] = b"g:";
const SUBSCRIPTION_PREFIX: &[u8] = b"s:";

impl Store {
    /// Opens (creating if needed) the store under `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        // Each record is small; a log of allocations compresses poorly anyway.
        options.set_compression_type(rocksdb::DBCompressionType::None);
        let db = DB::open(&options, dir)?;
        Ok(Store { db: Arc::new(db) })
    }

    /// This learner's stable id, generated and persisted on first use.
    pub fn learner_id(&self, generate: impl FnOnce() -> String) -> Result<String, StoreError> {
        if let Some(id) = self.get::<String>(LEARNER_ID_KEY)? {
            return Ok(id);
        }
        let id = generate();
        let mut batch = WriteBatch::default();
        batch.put(LEARNER_ID_KEY, encode(&id));
        self.write(batch, true)?;
        Ok(id)
    }

    /// Every slot below this is in the learned log.
    pub fn learned_below(&self) -> Result<u64, StoreError> {
        Ok(self.get::<u64>(LEARNED_BELOW_KEY)?.unwrap_or(0))
    }

    /// The counters after applying every learned slot, in slot order.
    pub fn counters(&self) -> Result<Counters, StoreError> {
        if let Some(wire) = self.get::<BTreeMap<String, u64>>(COUNTERS_KEY)? {
            return counters_from_wire(wire).map_err(|reason| corrupt(COUNTERS_KEY, reason));
        }
        // A log written before the counters were kept holds the chosen values
        // themselves: replaying it gives the counters.
        let mut counters = Counters::default();
        let below = self.learned_below()?;
        let mut from = 0;
        while from < below {
            let page = self.read_log(from, below, 4096)?;
            let Some((last, _)) = page.last() else { break };
            from = last + 1;
            for (_, value) in &page {
                counters.apply(value);
            }
        }
        Ok(counters)
    }

    /// The configuration this learner follows and the first slot it reads
    /// there; `None` in epoch 0 (the `--acceptors` list).
    pub fn configuration(&self) -> Result<Option<(u64, Configuration)>, StoreError> {
        let Some(record) = self.get::<ConfigurationRecord>(CONFIGURATION_KEY)? else {
            return Ok(None);
        };
        let configuration = Configuration::try_from(&record.configuration)
            .map_err(|reason| corrupt(CONFIGURATION_KEY, reason))?;
        Ok(Some((record.from_slot, configuration)))
    }

    /// Appends chosen slots, which must continue the log exactly, and moves
    /// the learned point past them: one synced write batch.
    ///
    /// Each slot is stored as it takes effect ([`Counters::apply`]): void
    /// allocations are dropped, so the log holds exactly what was handed
    /// out. `counters` must be the counters before `from` and is advanced.
    ///
    /// A stop sign ([`Value::Reconfigure`]) must be the last slot: it is
    /// stored as a no-op (it hands out nothing, so subscribers get nothing
    /// for it), and the configuration it names is recorded in the same
    /// batch, so the learned point never passes a stop sign without the
    /// epoch that goes on after it.
    pub fn append(
        &self,
        from: Slot,
        values: &[(Slot, Value)],
        counters: &mut Counters,
    ) -> Result<u64, StoreError> {
        let mut batch = WriteBatch::default();
        let mut next = from.0;
        for (i, (slot, value)) in values.iter().enumerate() {
            assert_eq!(slot.0, next, "the learner releases slots without gaps");
            if let Some(configuration) = value.reconfiguration() {
                assert_eq!(i + 1, values.len(), "a stop sign is the last slot released");
                self.put_configuration(&mut batch, slot.0 + 1, configuration)?;
            }
            let applied = counters.apply(value);
            // Planted bug (scripts/planted-bugs.sh): the raw value, void
            // allocations and all, offered to subscribers.
            let effective = if service::planted::is("learner_delivers_void") {
                value.clone()
            } else {
                effective_value(applied)
            };
            batch.put(log_key(slot.0), encode(&api::internal::Value::from(&effective)));
            next += 1;
        }
        batch.put(LEARNED_BELOW_KEY, encode(&next));
        batch.put(COUNTERS_KEY, encode(&counters_to_wire(counters)));
        self.write(batch, true)?;
        Ok(next)
    }

    /// Starts learning again at an acceptor's snapshot: the slots
    /// `from .. below` were compacted away by every acceptor and are never
    /// learned. Records the gap, moves the learned point to `below` and
    /// takes the snapshot's counters, in one synced write. `from` must be
    /// the current learned point; returns `below`.
    ///
    /// With `configuration`, the learner goes on in that (later) epoch from
    /// `below`, recorded in the same write.
    pub fn jump(
        &self,
        from: u64,
        below: u64,
        counters: &Counters,
        configuration: Option<&Configuration>,
    ) -> Result<u64, StoreError> {
        assert!(below > from, "a jump moves forward ({from} -> {below})");
        let learned = self.learned_below()?;
        assert_eq!(learned, from, "a jump starts at the learned point");
        let gap = LearnerGap {
            from_slot: from,
            below_slot: below,
        };
        let mut batch = WriteBatch::default();
        if let Some(configuration) = configuration {
            self.put_configuration(&mut batch, below, configuration)?;
        }
        batch.put(gap_key(from), encode(&gap));
        batch.put(LEARNED_BELOW_KEY, encode(&below));
        batch.put(COUNTERS_KEY, encode(&counters_to_wire(counters)));
        self.write(batch, true)?;
        Ok(below)
    }

    /// Goes on in `configuration` (a later epoch) from `from_slot`, which
    /// must be the learned point: the acceptors hold that slot in it, and
    /// the stop signs before it were folded into a snapshot. One synced write.
    pub fn adopt(&self, from_slot: u64, configuration: &Configuration) -> Result<(), StoreError> {
        let learned = self.learned_below()?;
        assert_eq!(
            learned, from_slot,
            "a configuration is adopted at the learned point"
        );
        let mut batch = WriteBatch::default();
        self.put_configuration(&mut batch, from_slot, configuration)?;
        self.write(batch, true)
    }

    /// Every recorded gap, in slot order.
    pub fn gaps(&self) -> Result<Vec<LearnerGap>, StoreError> {
        let mut out = Vec::new();
        let mode = IteratorMode::From(GAP_PREFIX, Direction::Forward);
        for item in self.db.iterator(mode) {
            let (key, bytes) = item?;
            if !key.starts_with(GAP_PREFIX) {
                break;
            }
            out.push(decode(&key, &bytes)?);
        }
        Ok(out)
    }

    /// The first gap that ends above `slot` (it may contain `slot`).
    pub fn next_gap(&self, slot: u64) -> Result<Option<LearnerGap>, StoreError> {
        Ok(self.gaps()?.into_iter().find(|gap| gap.below_slot > slot))
    }

    /// The first slot the learned log still holds (0 until pruned).
    pub fn log_start(&self) -> Result<u64, StoreError> {
        Ok(self.get::<u64>(LOG_START_KEY)?.unwrap_or(0))
    }

    /// Deletes learned slots below `below` (one atomic batch with the new
    /// log start) and returns the log's start. The caller guarantees no
    /// cursor points below it.
    pub fn prune_below(&self, below: u64) -> Result<u64, StoreError> {
        let start = self.log_start()?;
        if below <= start {
            return Ok(start);
        }
        let mut batch = WriteBatch::default();
        batch.delete_range(log_key(start), log_key(below));
        batch.put(LOG_START_KEY, encode(&below));
        // Not synced: a lost prune leaves the slots and the old start, which
        // agree; pruning again later is harmless.
        self.write(batch, false)?;
        Ok(below)
    }

    /// Learned slots in `from .. until`, at most `slots_max` of them.
    pub fn read_log(&self, from: u64, until: u64, slots_max: usize) -> Result<Vec<(u64, Value)>, StoreError> {
        let start = log_key(from);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(start.as_slice(), Direction::Forward))
        {
            let (key, bytes) = item?;
            let Some(slot) = parse_log_key(&key) else { break };
            if slot >= until || out.len() >= slots_max {
                break;
            }
            let wire: api::internal::Value = decode(&key, &bytes)?;
            let value = Value::try_from(&wire).map_err(|reason| corrupt(&key, reason))?;
            out.push((slot, value));
        }
        Ok(out)
    }

    /// Every stored subscription.
    pub fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let mut out = Vec::new();
        let mode = IteratorMode::From(SUBSCRIPTION_PREFIX, Direction::Forward);
        for item in self.db.iterator(mode) {
            let (key, bytes) = item?;
            if !key.starts_with(SUBSCRIPTION_PREFIX) {
                break;
            }
            out.push(decode(&key, &bytes)?);
        }
        Ok(out)
    }

    /// Writes one subscription record; `sync` when a party outside this
    /// process will rely on it (an API answer, a message about to be sent).
    pub fn put_subscription(&self, record: &SubscriptionRecord, sync: bool) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put(subscription_key(&record.id), encode(record));
        self.write(batch, sync)
    }

    pub fn delete_subscription(&self, id: &str) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.delete(subscription_key(id));
        self.write(batch, true)
    }

    /// A cheap read proving the store answers, for `/readyz`.
    pub fn check(&self) -> Result<(), StoreError> {
        self.learned_below().map(|_| ())
    }

    /// Adds the record of a move into `configuration` at `from_slot` to
    /// `batch`; epochs only go up.
    fn put_configuration(
        &self,
        batch: &mut WriteBatch,
        from_slot: u64,
        configuration: &Configuration,
    ) -> Result<(), StoreError> {
        let current = self.configuration()?.map_or(0, |(_, c)| c.epoch);
        assert!(
            configuration.epoch > current,
            "a learner moves to a later epoch only ({current} -> {})",
            configuration.epoch
        );
        let record = ConfigurationRecord {
            from_slot,
            configuration: configuration.into(),
        };
        batch.put(CONFIGURATION_KEY, encode(&record));
        Ok(())
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get(key)? {
            Some(bytes) => Ok(Some(decode(key, &bytes)?)),
            None => Ok(None),
        }
    }
}

fn effective_value(allocations: Vec<Allocation>) -> Value {
    if allocations.is_empty() {
        Value::Noop
    } else {
        Value::Allocations(allocations)
    }
}

fn counters_to_wire(counters: &Counters) -> BTreeMap<String, u64> {
    counters
        .iter()
        .map(|(name, next)| (name.as_str().to_owned(), next))
        .collect()
}

pub(crate) fn counters_from_wire(wire: BTreeMap<String, u64>) -> Result<Counters, String> {
    let mut map = BTreeMap::new();
    for (name, next) in wire {
        let name = SequenceName::parse(&name).map_err(|e| format!("sequence {name:?}: {e}"))?;
        map.insert(name, next);
    }
    Ok(Counters::from_map(map))
}

fn gap_key(from: u64) -> Vec<u8> {
    let mut key = GAP_PREFIX.to_vec();
    key.extend_from_slice(&from.to_be_bytes());
    key
}

fn log_key(slot: u64) -> Vec<u8> {
    let mut key = LOG_PREFIX.to_vec();
    key.extend_from_slice(&slot.to_be_bytes());
    key
}

fn parse_log_key(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(LOG_PREFIX)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

fn subscription_key(id: &str) -> Vec<u8> {
    let mut key = SUBSCRIPTION_PREFIX.to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain structs cannot fail.
    let json = serde_json::to_vec(value).expect("store records serialize");
    let mut out = crc32fast::hash(&json).to_be_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    if bytes.len() < 4 {
        return Err(corrupt(key, "shorter than its checksum".into()));
    }
    let (crc, json) = bytes.split_at(4);
    let expected = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(json) != expected {
        return Err(corrupt(key, "checksum mismatch".into()));
    }
    serde_json::from_slice(json).map_err(|e| corrupt(key, e.to_string()))
}

fn corrupt(key: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(first: u64) -> Value {
        range(first, 1)
    }

    fn range(first: u64, count: u64) -> Value {
        let sequence = SequenceName::default_sequence();
        Value::Allocations(vec![Allocation {
            sequence,
            first,
            count,
        }])
    }

    #[test]
    fn appended_slots_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            assert_eq!(store.learned_below().expect("read"), 0);
            let next = store
                .append(
                    Slot(0),
                    &[(Slot(0), alloc(1)), (Slot(1), Value::Noop)],
                    &mut Counters::default(),
                )
                .expect("append");
            assert_eq!(next, 2);
            assert_eq!(store.learner_id(|| "lrn_a".into()).expect("id"), "lrn_a");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.learned_below().expect("read"), 2);
        assert_eq!(
            store.learner_id(|| "lrn_b".into()).expect("id"),
            "lrn_a",
            "the id is stable"
        );
        let log = store.read_log(0, 10, 10).expect("read");
        assert_eq!(log, vec![(0, alloc(1)), (1, Value::Noop)]);
        assert_eq!(store.read_log(1, 10, 10).expect("read").len(), 1);
        assert_eq!(store.read_log(0, 1, 10).expect("read").len(), 1);
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store
            .append(Slot(0), &[(Slot(0), alloc(1))], &mut Counters::default())
            .expect("append");
        let mut bytes = store.db.get(log_key(0)).expect("get").expect("present");
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        store.db.put(log_key(0), bytes).expect("put");
        assert!(matches!(store.read_log(0, 1, 1), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    #[should_panic(expected = "without gaps")]
    fn appending_with_a_gap_is_a_bug() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let _ = store.append(Slot(0), &[(Slot(1), Value::Noop)], &mut Counters::default());
    }

    /// A chosen allocation that starts below its counter hands out nothing
    /// (Counters::apply): the log must not offer it to subscribers, and the
    /// counters that decide it must survive a restart.
    #[test]
    fn void_allocations_are_dropped_and_counters_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sequence = SequenceName::default_sequence();
        {
            let store = Store::open(dir.path()).expect("open");
            let mut counters = Counters::default();
            let slots = [(Slot(0), range(1, 10)), (Slot(1), range(5, 20))];
            store.append(Slot(0), &slots, &mut counters).expect("append");
            assert_eq!(
                counters.next_id(&sequence),
                25,
                "a void allocation still raises the counter"
            );
        }
        let store = Store::open(dir.path()).expect("reopen");
        let mut counters = store.counters().expect("counters");
        assert_eq!(counters.next_id(&sequence), 25);
        store
            .append(
                Slot(2),
                &[(Slot(2), range(20, 3)), (Slot(3), range(25, 1))],
                &mut counters,
            )
            .expect("append");
        let log = store.read_log(0, 10, 10).expect("read");
        let expected = vec![
            (0, range(1, 10)),
            (1, Value::Noop),
            (2, Value::Noop),
            (3, range(25, 1)),
        ];
        assert_eq!(log, expected, "only effective allocations are kept");
    }

    #[test]
    fn pruning_deletes_below_the_new_start_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            let slots: Vec<(Slot, Value)> = (0..10).map(|i| (Slot(i), alloc(i + 1))).collect();
            store
                .append(Slot(0), &slots, &mut Counters::default())
                .expect("append");
            store.prune_below(4).expect("prune");
            store.prune_below(2).expect("a lower prune is a no-op");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.log_start().expect("start"), 4);
        let log = store.read_log(0, 10, 100).expect("read");
        let kept: Vec<u64> = log.iter().map(|(slot, _)| *slot).collect();
        assert_eq!(kept, (4..10).collect::<Vec<_>>());
        assert_eq!(
            store.learned_below().expect("learned"),
            10,
            "pruning keeps the learned point"
        );
    }

    /// A data directory from before the counters were stored holds the
    /// chosen values: the counters are rebuilt by replaying them.
    #[test]
    fn counters_are_rebuilt_from_an_older_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store
            .append(
                Slot(0),
                &[(Slot(0), range(1, 10)), (Slot(1), range(5, 20))],
                &mut Counters::default(),
            )
            .expect("append");
        store.db.delete(COUNTERS_KEY).expect("delete");
        let mut batch = WriteBatch::default();
        batch.put(log_key(1), encode(&api::internal::Value::from(&range(5, 20))));
        store.write(batch, true).expect("write");
        let counters = store.counters().expect("counters");
        assert_eq!(counters.next_id(&SequenceName::default_sequence()), 25);
    }

    /// A learner behind every acceptor's compaction starts again at a
    /// snapshot: one synced write records the gap, the new learned point and
    /// the snapshot's counters; nothing is invented for the skipped slots,
    /// and learning continues at `below`.
    #[test]
    fn a_jump_records_the_gap_takes_the_counters_and_moves_the_learned_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sequence = SequenceName::default_sequence();
        {
            let store = Store::open(dir.path()).expect("open");
            let mut counters = Counters::default();
            store
                .append(
                    Slot(0),
                    &[(Slot(0), range(1, 10)), (Slot(1), range(11, 5))],
                    &mut counters,
                )
                .expect("append");
            let snapshot = counters_from_wire(BTreeMap::from([
                ("default".to_owned(), 4000),
                ("orders".to_owned(), 61),
            ]))
            .expect("counters");
            assert_eq!(store.next_gap(0).expect("gaps"), None);
            assert_eq!(store.jump(2, 100, &snapshot, None).expect("jump"), 100);
            let mut counters = store.counters().expect("counters");
            assert_eq!(counters.next_id(&sequence), 4000, "the snapshot's counters");
            store
                .append(Slot(100), &[(Slot(100), range(4000, 2))], &mut counters)
                .expect("learning continues at below");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.learned_below().expect("learned"), 101);
        let gap = LearnerGap {
            from_slot: 2,
            below_slot: 100,
        };
        assert_eq!(store.gaps().expect("gaps"), vec![gap]);
        assert_eq!(
            store.next_gap(0).expect("gaps"),
            Some(gap),
            "a gap ahead of the slot"
        );
        assert_eq!(
            store.next_gap(50).expect("gaps"),
            Some(gap),
            "a gap holding the slot"
        );
        assert_eq!(store.next_gap(100).expect("gaps"), None, "past the gap");
        let counters = store.counters().expect("counters");
        assert_eq!(counters.next_id(&sequence), 4002);
        assert_eq!(
            counters.next_id(&SequenceName::parse("orders").expect("name")),
            61
        );
        let log: Vec<u64> = store
            .read_log(0, 200, 100)
            .expect("read")
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(log, vec![0, 1, 100], "no slot is invented for the gap");
    }

    #[test]
    fn a_blank_store_jumps_from_slot_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let snapshot = counters_from_wire(BTreeMap::from([("default".to_owned(), 77)])).expect("counters");
        store.jump(0, 1501, &snapshot, None).expect("jump");
        assert_eq!(store.learned_below().expect("learned"), 1501);
        assert_eq!(
            store.gaps().expect("gaps"),
            vec![LearnerGap {
                from_slot: 0,
                below_slot: 1501
            }]
        );
    }

    #[test]
    #[should_panic(expected = "at the learned point")]
    fn a_jump_from_elsewhere_than_the_learned_point_is_a_bug() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let _ = store.jump(5, 10, &Counters::default(), None);
    }

    fn configuration(epoch: u64, urls: &[&str]) -> Configuration {
        Configuration {
            epoch,
            seats: urls
                .iter()
                .enumerate()
                .map(|(i, url)| paxos_core::Seat {
                    address: (*url).to_owned(),
                    member: paxos_core::MemberId(i as u128 + 1),
                })
                .collect(),
        }
    }

    /// A stop sign is stored as a no-op (subscribers get nothing for it)
    /// and the configuration it names is recorded in the same write, with
    /// the slot after it; both survive a reopen, and a later jump into a
    /// later epoch replaces the record.
    #[test]
    fn a_stop_sign_records_the_next_configuration_and_it_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let next = configuration(1, &["http://d:1", "http://e:2"]);
        {
            let store = Store::open(dir.path()).expect("open");
            assert_eq!(
                store.configuration().expect("read"),
                None,
                "epoch 0 has no record"
            );
            let mut counters = Counters::default();
            let slots = [(Slot(0), alloc(1)), (Slot(1), Value::Reconfigure(next.clone()))];
            assert_eq!(store.append(Slot(0), &slots, &mut counters).expect("append"), 2);
            assert_eq!(store.configuration().expect("read"), Some((2, next.clone())));
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.configuration().expect("read"), Some((2, next.clone())));
        assert_eq!(
            store.read_log(0, 10, 10).expect("read"),
            vec![(0, alloc(1)), (1, Value::Noop)],
            "the stop sign hands out nothing"
        );
        let mut counters = store.counters().expect("counters");
        assert_eq!(counters.next_id(&SequenceName::default_sequence()), 2);
        store
            .append(Slot(2), &[(Slot(2), alloc(2))], &mut counters)
            .expect("learning goes on at the slot after the stop sign");
        assert_eq!(store.configuration().expect("read"), Some((2, next)));

        let later = configuration(3, &["http://f:3"]);
        store.jump(3, 50, &counters, Some(&later)).expect("jump");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.configuration().expect("read"), Some((50, later)));
        assert_eq!(store.learned_below().expect("read"), 50);
    }

    #[test]
    fn a_corrupt_configuration_record_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let bad = ConfigurationRecord {
            from_slot: 3,
            configuration: api::internal::Configuration {
                epoch: 1,
                seats: vec![],
            },
        };
        store.db.put(CONFIGURATION_KEY, encode(&bad)).expect("put");
        assert!(matches!(store.configuration(), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    #[should_panic(expected = "the last slot")]
    fn a_slot_after_a_stop_sign_in_one_append_is_a_bug() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let stop = Value::Reconfigure(configuration(1, &["http://d:1"]));
        let _ = store.append(
            Slot(0),
            &[(Slot(0), stop), (Slot(1), Value::Noop)],
            &mut Counters::default(),
        );
    }

    #[test]
    #[should_panic(expected = "later epoch only")]
    fn moving_back_to_an_earlier_epoch_is_a_bug() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let stop = |epoch| Value::Reconfigure(configuration(epoch, &["http://d:1"]));
        let mut counters = Counters::default();
        store
            .append(Slot(0), &[(Slot(0), stop(2))], &mut counters)
            .expect("append");
        let _ = store.append(Slot(1), &[(Slot(1), stop(2))], &mut counters);
    }
}
