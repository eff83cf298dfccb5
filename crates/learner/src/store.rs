//! The learner's RocksDB store: learned log, learner id, the configuration
//! it follows, subscriptions and their delivery cursors.
//!
//! Every record is framed by the shared record codec ([`record`]): a format
//! version, a binary payload and a CRC32 over the key, the version and the
//! payload, so a torn, corrupt or misplaced record is an error on read
//! instead of being delivered. Every state change is one `WriteBatch`;
//! writes that other parties rely on are synced before the caller proceeds.
//!
//! The previous release wrote `crc32(json) (4 bytes, big endian) ++ JSON`
//! without a version or the key under the checksum; [`Store::open`] rewrites
//! such a store in the binary format once ([`migrate`]), marked by
//! `m:format`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use api::learner::LearnerGap;
use paxos_core::{Allocation, Configuration, Counters, SequenceName, Slot, Value};
use record::{printable_key, CorruptRecord, Decoder, Encoder};
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

/// Why the store failed; every variant is an operating error of the disk.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record under key {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The data directory was written by a newer build, or holds records
    /// of the previous release that cannot be migrated: refused rather
    /// than misread.
    #[error("learner data dir {dir}: {reason}")]
    Format { dir: String, reason: String },
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

/// The store's format ([`STORE_FORMAT`]); absent in a store of the
/// previous release (JSON records), which [`Store::open`] migrates.
const FORMAT_KEY: &[u8] = b"m:format";
/// Binary records framed by the shared codec (the JSON records of the
/// previous release count as format 1).
const STORE_FORMAT: u8 = 2;
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
        let store = Store { db: Arc::new(db) };
        store.check_format(dir)?;
        Ok(store)
    }

    /// Reads the format marker: writes it in a new store, migrates a store
    /// of the previous release, refuses one of a later format.
    fn check_format(&self, dir: &Path) -> Result<(), StoreError> {
        let refuse = |reason: String| StoreError::Format {
            dir: dir.display().to_string(),
            reason,
        };
        match self.db.get(FORMAT_KEY)? {
            Some(bytes) => {
                let format = decode(FORMAT_KEY, &bytes, Decoder::u8).map_err(|e| refuse(e.to_string()))?;
                if format != STORE_FORMAT {
                    return Err(refuse(format!(
                        "store format {format}, this build reads {STORE_FORMAT}: run the release that wrote it"
                    )));
                }
                Ok(())
            }
            None => {
                let mut batch = migrate(&self.db).map_err(|e| {
                    refuse(format!(
                        "{e}; the previous release's records could not be migrated: \
                         restore the directory from a backup or start this learner with an empty one"
                    ))
                })?;
                batch.put(FORMAT_KEY, Encoder::default().u8(STORE_FORMAT).seal(FORMAT_KEY));
                self.write(batch, true)
            }
        }
    }

    /// This learner's stable id, generated and persisted on first use.
    pub fn learner_id(&self, generate: impl FnOnce() -> String) -> Result<String, StoreError> {
        if let Some(id) = self.get(LEARNER_ID_KEY, |d| d.str())? {
            return Ok(id);
        }
        let id = generate();
        let mut batch = WriteBatch::default();
        batch.put(LEARNER_ID_KEY, Encoder::default().str(&id).seal(LEARNER_ID_KEY));
        self.write(batch, true)?;
        Ok(id)
    }

    /// Every slot below this is in the learned log.
    pub fn learned_below(&self) -> Result<u64, StoreError> {
        Ok(self.get(LEARNED_BELOW_KEY, |d| d.u64())?.unwrap_or(0))
    }

    /// The counters after applying every learned slot, in slot order.
    pub fn counters(&self) -> Result<Counters, StoreError> {
        if let Some(counters) = self.get(COUNTERS_KEY, |d| d.counters())? {
            return Ok(counters);
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
        self.get(CONFIGURATION_KEY, |d| Ok((d.u64()?, d.configuration()?)))
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
            let key = log_key(slot.0);
            batch.put(&key, Encoder::default().value(&effective).seal(&key));
            next += 1;
        }
        put_u64(&mut batch, LEARNED_BELOW_KEY, next);
        put_counters(&mut batch, counters);
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
        put_gap(&mut batch, &gap);
        put_u64(&mut batch, LEARNED_BELOW_KEY, below);
        put_counters(&mut batch, counters);
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
            out.push(decode(&key, &bytes, gap)?);
        }
        Ok(out)
    }

    /// The first gap that ends above `slot` (it may contain `slot`).
    pub fn next_gap(&self, slot: u64) -> Result<Option<LearnerGap>, StoreError> {
        Ok(self.gaps()?.into_iter().find(|gap| gap.below_slot > slot))
    }

    /// The first slot the learned log still holds (0 until pruned).
    pub fn log_start(&self) -> Result<u64, StoreError> {
        Ok(self.get(LOG_START_KEY, |d| d.u64())?.unwrap_or(0))
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
        put_u64(&mut batch, LOG_START_KEY, below);
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
            out.push((slot, decode(&key, &bytes, Decoder::value)?));
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
            out.push(decode(&key, &bytes, subscription)?);
        }
        Ok(out)
    }

    /// Writes one subscription record; `sync` when a party outside this
    /// process will rely on it (an API answer, a message about to be sent).
    pub fn put_subscription(&self, record: &SubscriptionRecord, sync: bool) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        put_subscription(&mut batch, record);
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
        put_configuration(batch, from_slot, configuration);
        Ok(())
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    fn get<T>(
        &self,
        key: &[u8],
        read: impl for<'a> FnOnce(&mut Decoder<'a>) -> Result<T, CorruptRecord>,
    ) -> Result<Option<T>, StoreError> {
        match self.db.get(key)? {
            Some(bytes) => Ok(Some(decode(key, &bytes, read)?)),
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

fn put_u64(batch: &mut WriteBatch, key: &[u8], v: u64) {
    batch.put(key, Encoder::default().u64(v).seal(key));
}

fn put_counters(batch: &mut WriteBatch, counters: &Counters) {
    batch.put(
        COUNTERS_KEY,
        Encoder::default().counters(counters).seal(COUNTERS_KEY),
    );
}

/// `from_slot u64`, then the configuration.
fn put_configuration(batch: &mut WriteBatch, from_slot: u64, configuration: &Configuration) {
    let record = Encoder::default()
        .u64(from_slot)
        .configuration(configuration)
        .seal(CONFIGURATION_KEY);
    batch.put(CONFIGURATION_KEY, record);
}

/// `from_slot u64, below_slot u64`.
fn put_gap(batch: &mut WriteBatch, gap: &LearnerGap) {
    let key = gap_key(gap.from_slot);
    batch.put(
        &key,
        Encoder::default()
            .u64(gap.from_slot)
            .u64(gap.below_slot)
            .seal(&key),
    );
}

fn gap(d: &mut Decoder<'_>) -> Result<LearnerGap, CorruptRecord> {
    let from_slot = d.u64()?;
    let below_slot = d.u64()?;
    if below_slot <= from_slot {
        return Err(d.corrupt(format!("gap {from_slot}..{below_slot} is empty")));
    }
    Ok(LearnerGap {
        from_slot,
        below_slot,
    })
}

const STATE_ACTIVE: u8 = 0;
const STATE_FAILING: u8 = 1;
const STATE_DISABLED: u8 = 2;

/// A subscription, in field order: `id`, `url`, `sequences` (option of a
/// u32 count and names), `secret`, `state u8`, `failing_since_ms` (option
/// u64), `disabled_reason` (option string), `delivered_below u64`,
/// `pending` (option of `first_slot u64, end_slot u64, created_ms u64,
/// gap flag`), `epoch u64`.
fn put_subscription(batch: &mut WriteBatch, r: &SubscriptionRecord) {
    let key = subscription_key(&r.id);
    let mut e = Encoder::default();
    e.str(&r.id).str(&r.url);
    e.option(r.sequences.as_ref(), |e, names| {
        e.u32(u32::try_from(names.len()).expect("a subscription names few sequences"));
        for name in names {
            e.str(name);
        }
    });
    let state = match r.state {
        DeliveryState::Active => STATE_ACTIVE,
        DeliveryState::Failing => STATE_FAILING,
        DeliveryState::Disabled => STATE_DISABLED,
    };
    e.str(&r.secret).u8(state);
    e.option(r.failing_since_ms, |e, ms| {
        e.u64(ms);
    });
    e.option(r.disabled_reason.as_deref(), |e, reason| {
        e.str(reason);
    });
    e.u64(r.delivered_below);
    e.option(r.pending, |e, p| {
        e.u64(p.first_slot).u64(p.end_slot).u64(p.created_ms).bool(p.gap);
    });
    e.u64(r.epoch);
    batch.put(&key, e.seal(&key));
}

fn subscription(d: &mut Decoder<'_>) -> Result<SubscriptionRecord, CorruptRecord> {
    let id = d.str()?;
    let url = d.str()?;
    let sequences = d.option(|d| {
        let n = d.u32()?;
        // Not preallocated: a corrupt count runs out of bytes instead.
        let mut names = Vec::new();
        for _ in 0..n {
            names.push(d.str()?);
        }
        Ok(names)
    })?;
    let secret = d.str()?;
    let state = match d.u8()? {
        STATE_ACTIVE => DeliveryState::Active,
        STATE_FAILING => DeliveryState::Failing,
        STATE_DISABLED => DeliveryState::Disabled,
        other => return Err(d.corrupt(format!("delivery state {other}"))),
    };
    let failing_since_ms = d.option(|d| d.u64())?;
    let disabled_reason = d.option(|d| d.str())?;
    let delivered_below = d.u64()?;
    let pending = d.option(|d| {
        Ok(PendingMessage {
            first_slot: d.u64()?,
            end_slot: d.u64()?,
            created_ms: d.u64()?,
            gap: d.bool()?,
        })
    })?;
    let epoch = d.u64()?;
    Ok(SubscriptionRecord {
        id,
        url,
        sequences,
        secret,
        state,
        failing_since_ms,
        disabled_reason,
        delivered_below,
        pending,
        epoch,
    })
}

/// Opens the record under `key` and reads all of it with `read`.
fn decode<'a, T>(
    key: &'a [u8],
    bytes: &'a [u8],
    read: impl FnOnce(&mut Decoder<'a>) -> Result<T, CorruptRecord>,
) -> Result<T, StoreError> {
    let mut d = Decoder::open(key, bytes)?;
    let value = read(&mut d)?;
    d.finish()?;
    Ok(value)
}

impl From<CorruptRecord> for StoreError {
    fn from(e: CorruptRecord) -> StoreError {
        StoreError::Corrupt {
            key: e.key,
            reason: e.reason,
        }
    }
}

fn corrupt(key: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        key: printable_key(key),
        reason,
    }
}

/// The rewrite of a store of the previous release (`crc32(json) ++ json`
/// records, no format marker) in the binary format: every record read,
/// checked and re-encoded into one batch, which the caller writes synced
/// with the marker, so the migration happens entirely or not at all. A
/// record that fails its old checksum or does not parse fails the
/// migration; a key this store never wrote too. An empty store yields an
/// empty batch.
fn migrate(db: &DB) -> Result<WriteBatch, StoreError> {
    let mut batch = WriteBatch::default();
    for item in db.iterator(IteratorMode::Start) {
        let (key, bytes) = item?;
        let key = &key[..];
        match key {
            LEARNER_ID_KEY => {
                let id: String = legacy::decode(key, &bytes)?;
                batch.put(key, Encoder::default().str(&id).seal(key));
            }
            LEARNED_BELOW_KEY | LOG_START_KEY => put_u64(&mut batch, key, legacy::decode(key, &bytes)?),
            COUNTERS_KEY => {
                let wire: BTreeMap<String, u64> = legacy::decode(key, &bytes)?;
                put_counters(
                    &mut batch,
                    &counters_from_wire(wire).map_err(|r| corrupt(key, r))?,
                );
            }
            CONFIGURATION_KEY => {
                let record: ConfigurationRecord = legacy::decode(key, &bytes)?;
                let configuration =
                    Configuration::try_from(&record.configuration).map_err(|r| corrupt(key, r))?;
                put_configuration(&mut batch, record.from_slot, &configuration);
            }
            _ if parse_log_key(key).is_some() => {
                let wire: api::internal::Value = legacy::decode(key, &bytes)?;
                let value = Value::try_from(&wire).map_err(|r| corrupt(key, r))?;
                batch.put(key, Encoder::default().value(&value).seal(key));
            }
            _ if key.starts_with(GAP_PREFIX) => {
                let gap: LearnerGap = legacy::decode(key, &bytes)?;
                if key != gap_key(gap.from_slot) {
                    return Err(corrupt(key, "a gap stored under another slot".into()));
                }
                put_gap(&mut batch, &gap);
            }
            _ if key.starts_with(SUBSCRIPTION_PREFIX) => {
                let record: SubscriptionRecord = legacy::decode(key, &bytes)?;
                if key != subscription_key(&record.id) {
                    return Err(corrupt(key, "a subscription stored under another id".into()));
                }
                put_subscription(&mut batch, &record);
            }
            _ => return Err(corrupt(key, "not a key a learner writes".into())),
        }
    }
    Ok(batch)
}

/// The record format of the previous release, read only to migrate it.
mod legacy {
    use serde::de::DeserializeOwned;

    use super::{corrupt, StoreError};

    /// `crc32(json)` (4 bytes, big endian), then the JSON.
    pub(super) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
        if bytes.len() < 4 {
            return Err(corrupt(key, "shorter than its checksum".into()));
        }
        let (crc, json) = bytes.split_at(4);
        let expected = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(json) != expected {
            return Err(corrupt(
                key,
                "checksum mismatch (previous release's format)".into(),
            ));
        }
        serde_json::from_slice(json).map_err(|e| corrupt(key, e.to_string()))
    }

    /// How the previous release wrote a record, for the migration tests.
    #[cfg(test)]
    pub(super) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let json = serde_json::to_vec(value).expect("store records serialize");
        let mut out = crc32fast::hash(&json).to_be_bytes().to_vec();
        out.extend_from_slice(&json);
        out
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
        let key = log_key(1);
        let record = Encoder::default().value(&range(5, 20)).seal(&key);
        store.db.put(&key, record).expect("put");
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
        let bad = Encoder::default()
            .u64(3)
            .configuration(&Configuration {
                epoch: 1,
                seats: vec![],
            })
            .seal(CONFIGURATION_KEY);
        store.db.put(CONFIGURATION_KEY, bad).expect("put");
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

    fn subscription_record(id: &str, pending: Option<PendingMessage>) -> SubscriptionRecord {
        SubscriptionRecord {
            id: id.to_owned(),
            url: format!("https://hooks.example/{id}"),
            sequences: Some(vec!["default".into(), "orders".into()]),
            secret: "whsec_c2VjcmV0".into(),
            state: DeliveryState::Failing,
            failing_since_ms: Some(1_700_000_000_000),
            disabled_reason: None,
            delivered_below: 7,
            pending,
            epoch: 3,
        }
    }

    /// A data dir as the previous release wrote it: every record
    /// `crc32(json) ++ json`, built the way its `encode` did.
    fn write_previous_release_store(dir: &Path) -> (SubscriptionRecord, SubscriptionRecord, Configuration) {
        let db = DB::open_default(dir).expect("open raw");
        let next = configuration(2, &["http://d:1", "http://e:2"]);
        let with_pending = subscription_record(
            "sub_a",
            Some(PendingMessage {
                first_slot: 7,
                end_slot: 9,
                created_ms: 1_700_000_000_123,
                gap: true,
            }),
        );
        let mut disabled = subscription_record("sub_b", None);
        disabled.state = DeliveryState::Disabled;
        disabled.sequences = None;
        disabled.disabled_reason = Some("410 Gone".into());
        db.put(LEARNER_ID_KEY, legacy::encode(&"lrn_old")).expect("put");
        db.put(LEARNED_BELOW_KEY, legacy::encode(&102u64)).expect("put");
        db.put(LOG_START_KEY, legacy::encode(&1u64)).expect("put");
        let counters = BTreeMap::from([("default".to_owned(), 4002u64), ("orders".to_owned(), 61)]);
        db.put(COUNTERS_KEY, legacy::encode(&counters)).expect("put");
        let record = ConfigurationRecord {
            from_slot: 100,
            configuration: (&next).into(),
        };
        db.put(CONFIGURATION_KEY, legacy::encode(&record)).expect("put");
        for (slot, value) in [(1, range(1, 10)), (100, Value::Noop), (101, range(4000, 2))] {
            db.put(log_key(slot), legacy::encode(&api::internal::Value::from(&value)))
                .expect("put");
        }
        let gap = LearnerGap {
            from_slot: 2,
            below_slot: 100,
        };
        db.put(gap_key(2), legacy::encode(&gap)).expect("put");
        for record in [&with_pending, &disabled] {
            db.put(subscription_key(&record.id), legacy::encode(record))
                .expect("put");
        }
        (with_pending, disabled, next)
    }

    /// The first open of a previous release's store rewrites every record
    /// in the binary format (one synced batch with the format marker);
    /// every record reads back intact, and no JSON is left on disk.
    #[test]
    fn a_store_of_the_previous_release_is_migrated_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (with_pending, disabled, next) = write_previous_release_store(dir.path());
        for _ in 0..2 {
            let store = Store::open(dir.path()).expect("opens and migrates");
            assert_eq!(store.learner_id(|| "lrn_new".into()).expect("id"), "lrn_old");
            assert_eq!(store.learned_below().expect("read"), 102);
            assert_eq!(store.log_start().expect("read"), 1);
            let counters = store.counters().expect("counters");
            assert_eq!(counters.next_id(&SequenceName::default_sequence()), 4002);
            assert_eq!(
                counters.next_id(&SequenceName::parse("orders").expect("name")),
                61
            );
            assert_eq!(store.configuration().expect("read"), Some((100, next.clone())));
            assert_eq!(
                store.read_log(0, 200, 10).expect("read"),
                vec![(1, range(1, 10)), (100, Value::Noop), (101, range(4000, 2))]
            );
            assert_eq!(
                store.gaps().expect("gaps"),
                vec![LearnerGap {
                    from_slot: 2,
                    below_slot: 100
                }]
            );
            assert_eq!(
                store.subscriptions().expect("subscriptions"),
                vec![with_pending.clone(), disabled.clone()]
            );
            for item in store.db.iterator(IteratorMode::Start) {
                let (key, bytes) = item.expect("iterate");
                assert!(
                    Decoder::open(&key, &bytes).is_ok(),
                    "{} is a binary record",
                    printable_key(&key)
                );
            }
            // The previous release's reader refuses the new records (a
            // downgrade stops at its first read instead of misreading).
            let bytes = store.db.get(LEARNED_BELOW_KEY).expect("get").expect("present");
            assert!(legacy::decode::<u64>(LEARNED_BELOW_KEY, &bytes).is_err());
        }
    }

    /// A previous release's record that fails its checksum is not skipped
    /// or defaulted: the open is refused, naming the data dir, and the
    /// store is left as it was.
    #[test]
    fn a_corrupt_record_of_the_previous_release_refuses_the_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_previous_release_store(dir.path());
        {
            let db = DB::open_default(dir.path()).expect("open raw");
            let mut bytes = db.get(log_key(100)).expect("get").expect("present");
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            db.put(log_key(100), bytes).expect("put");
        }
        for _ in 0..2 {
            let error = Store::open(dir.path()).err().expect("refused");
            let text = error.to_string();
            assert!(matches!(error, StoreError::Format { .. }), "{text}");
            assert!(text.contains(&dir.path().display().to_string()), "{text}");
            assert!(text.contains("checksum mismatch"), "{text}");
        }
    }

    /// A record copied under another key, a record of a future version and
    /// a store of a future format are errors, never values.
    #[test]
    fn moved_and_future_records_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .append(
                    Slot(0),
                    &[(Slot(0), alloc(1)), (Slot(1), alloc(2))],
                    &mut Counters::default(),
                )
                .expect("append");
            store
                .put_subscription(&subscription_record("sub_a", None), true)
                .expect("put");
            let record = store.db.get(log_key(0)).expect("get").expect("present");
            store.db.put(log_key(1), record).expect("copy under another key");
            assert!(matches!(store.read_log(0, 2, 2), Err(StoreError::Corrupt { .. })));
            let record = store
                .db
                .get(subscription_key("sub_a"))
                .expect("get")
                .expect("present");
            store.db.put(subscription_key("sub_b"), record).expect("copy");
            assert!(matches!(store.subscriptions(), Err(StoreError::Corrupt { .. })));
            store.db.delete(subscription_key("sub_b")).expect("delete");
            // A well-framed record of a version this build does not know.
            let mut future = vec![record::VERSION_LATEST + 1];
            future.extend_from_slice(&5u64.to_be_bytes());
            let crc = record::checksum(LEARNED_BELOW_KEY, &future);
            future.extend_from_slice(&crc.to_be_bytes());
            store.db.put(LEARNED_BELOW_KEY, &future).expect("put");
            let error = store.learned_below().expect_err("refused");
            assert!(error.to_string().contains("unknown format version"), "{error}");
            let marker = Encoder::default().u8(STORE_FORMAT + 1).seal(FORMAT_KEY);
            store.db.put(FORMAT_KEY, marker).expect("put");
        }
        let error = Store::open(dir.path())
            .err()
            .expect("a later store format is refused");
        assert!(matches!(error, StoreError::Format { .. }), "{error}");
        assert!(
            error.to_string().contains(&dir.path().display().to_string()),
            "{error}"
        );
    }
}
