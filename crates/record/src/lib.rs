//! The on-disk encoding of every record of the acceptor and the learner
//! stores: a small binary format with a CRC32 over the key and the
//! payload, so a torn, corrupt or misplaced record is an error at load,
//! never a silent default. The stores choose their keys and payload
//! layouts; this crate holds the frame, the primitives and the layouts of
//! the core types, so both stores write them the same way.
//!
//! Record layout: `[format version: u8][payload][crc32(key, version, payload): u32 BE]`.
//! Integers are big-endian; strings are a u32 length then UTF-8 bytes; a
//! member id is 16 bytes (two u64).
//!
//! Versions (a record is written with the lowest version that holds it,
//! and every version up to [`VERSION_LATEST`] is read):
//! - 1: the first layout. A ballot is `round u64, node u32` (epoch 0).
//! - 2: a ballot is `epoch u64, round u64, node u32`; a value may be a
//!   reconfiguration (kind 2); configurations are stored. Records holding
//!   a ballot, a value or a configuration (the promise, log entries, the
//!   configuration) are written in it; the others keep version 1.
//! - 3: a value may be keyed allocations (kind 3): the allocations as in
//!   kind 1, then the keyed parts (`key`, then an allocation). Only a
//!   record holding one is written in it.

use std::collections::{BTreeMap, BTreeSet};

use paxos_core::{
    Accepted, Allocation, Ballot, Configuration, Counters, IdempotencyKey, KeyedPart, MemberId, Membership,
    NodeId, Seat, SequenceName, Slot, Snapshot, Value,
};

/// The first layout: ballots without an epoch.
pub const VERSION_1: u8 = 1;
/// Ballots with an epoch, reconfiguration values, configurations.
pub const VERSION_2: u8 = 2;
/// Keyed allocations (`Idempotency-Key`).
pub const VERSION_3: u8 = 3;
/// The newest version this build reads; a higher one is refused.
pub const VERSION_LATEST: u8 = VERSION_3;
const CHECKSUM_BYTES: usize = 4;
const VALUE_NOOP: u8 = 0;
const VALUE_ALLOCATIONS: u8 = 1;
const VALUE_RECONFIGURE: u8 = 2;
const VALUE_KEYED_ALLOCATIONS: u8 = 3;

/// Why a stored record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt record {key}: {reason}")]
pub struct CorruptRecord {
    pub key: String,
    pub reason: String,
}

/// Frames `payload` for storage under `key` as a record of `version`.
fn seal_with(key: &[u8], version: u8, payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(1 + payload.len() + CHECKSUM_BYTES);
    record.push(version);
    record.extend_from_slice(payload);
    let crc = checksum(key, &record);
    record.extend_from_slice(&crc.to_be_bytes());
    record
}

/// Checks the frame of a record read under `key` and returns its version
/// and payload.
fn open_frame<'a>(key: &[u8], record: &'a [u8]) -> Result<(u8, &'a [u8]), CorruptRecord> {
    let corrupt = |reason: &str| CorruptRecord {
        key: printable_key(key),
        reason: reason.to_owned(),
    };
    if record.len() < 1 + CHECKSUM_BYTES {
        return Err(corrupt("shorter than its frame"));
    }
    let (body, stored) = record.split_at(record.len() - CHECKSUM_BYTES);
    let stored = u32::from_be_bytes([stored[0], stored[1], stored[2], stored[3]]);
    if checksum(key, body) != stored {
        return Err(corrupt("checksum mismatch"));
    }
    let version = body[0];
    if !(VERSION_1..=VERSION_LATEST).contains(&version) {
        return Err(corrupt(&format!(
            "unknown format version {version} (this build reads 1..={VERSION_LATEST})"
        )));
    }
    Ok((version, &body[1..]))
}

/// A key as text for error messages: the log keys end in binary slots.
pub fn printable_key(key: &[u8]) -> String {
    key.iter()
        .map(|b| {
            if b.is_ascii_graphic() {
                (*b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// The checksum of a record's `body` (version and payload) under `key`.
pub fn checksum(key: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(key.len() as u64).to_be_bytes());
    hasher.update(key);
    hasher.update(body);
    hasher.finalize()
}

/// Builds a payload and seals it with the version its contents need.
pub struct Encoder {
    payload: Vec<u8>,
    version: u8,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder {
            payload: Vec::new(),
            version: VERSION_1,
        }
    }
}

impl Encoder {
    /// The record for `key`: the payload built so far, framed with the
    /// lowest version that holds it. The encoder is left empty.
    pub fn seal(&mut self, key: &[u8]) -> Vec<u8> {
        let record = seal_with(key, self.version, &self.payload);
        *self = Encoder::default();
        record
    }

    fn needs(&mut self, version: u8) -> &mut Self {
        self.version = self.version.max(version);
        self
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.payload.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.payload.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.payload.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A string of at most `u32::MAX` bytes (identities, learner ids, URLs).
    pub fn str(&mut self, s: &str) -> &mut Self {
        let len = u32::try_from(s.len()).expect("strings we store are short");
        self.u32(len);
        self.payload.extend_from_slice(s.as_bytes());
        self
    }

    pub fn member(&mut self, m: MemberId) -> &mut Self {
        self.u64((m.0 >> 64) as u64).u64(m.0 as u64)
    }

    /// Version 2: the epoch first, so the bytes sort as ballots do.
    pub fn ballot(&mut self, b: Ballot) -> &mut Self {
        self.needs(VERSION_2).u64(b.epoch).u64(b.round).u32(b.node.0)
    }

    pub fn accepted(&mut self, a: &Accepted) -> &mut Self {
        self.ballot(a.ballot).u8(u8::from(a.chosen)).value(&a.value)
    }

    pub fn value(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::Noop => self.u8(VALUE_NOOP),
            Value::Allocations(allocations) => self.u8(VALUE_ALLOCATIONS).allocations(allocations),
            Value::KeyedAllocations { allocations, keys } => {
                self.needs(VERSION_3)
                    .u8(VALUE_KEYED_ALLOCATIONS)
                    .allocations(allocations);
                self.u32(len_u32(keys.len()));
                for part in keys {
                    self.str(part.key.as_str()).allocation(&part.allocation);
                }
                self
            }
            Value::Reconfigure(configuration) => self.u8(VALUE_RECONFIGURE).configuration(configuration),
        }
    }

    fn allocations(&mut self, allocations: &[Allocation]) -> &mut Self {
        self.u32(len_u32(allocations.len()));
        for a in allocations {
            self.allocation(a);
        }
        self
    }

    fn allocation(&mut self, a: &Allocation) -> &mut Self {
        self.str(a.sequence.as_str()).u64(a.first).u64(a.count)
    }

    /// Version 2: `epoch u64`, then the seats in order (`address`, `member`).
    pub fn configuration(&mut self, c: &Configuration) -> &mut Self {
        self.needs(VERSION_2).u64(c.epoch).u32(len_u32(c.seats.len()));
        for seat in &c.seats {
            self.str(&seat.address).member(seat.member);
        }
        self
    }

    pub fn snapshot(&mut self, s: &Snapshot) -> &mut Self {
        self.u64(s.below.0).counters(&s.counters)
    }

    /// `count u32`, then each sequence (`name`, `next u64`) in name order.
    pub fn counters(&mut self, c: &Counters) -> &mut Self {
        self.u32(len_u32(c.len()));
        for (name, next) in c.iter() {
            self.str(name.as_str()).u64(next);
        }
        self
    }

    /// A flag: 0 or 1.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.u8(u8::from(b))
    }

    /// `0` for `None`, or `1` then the value written by `write`.
    pub fn option<T>(&mut self, v: Option<T>, write: impl FnOnce(&mut Self, T)) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                write(self, v);
                self
            }
        }
    }

    pub fn membership(&mut self, m: &Membership) -> &mut Self {
        for set in [&m.members, &m.retired] {
            self.u32(len_u32(set.len()));
            for member in set {
                self.member(*member);
            }
        }
        self
    }
}

fn len_u32(len: usize) -> u32 {
    // Bounded by the request body limit long before 4 billion.
    u32::try_from(len).expect("collection too large to store")
}

/// Reads a record's payload; every read checks the bytes are there, and
/// the layout read is the record's version.
pub struct Decoder<'a> {
    key: &'a [u8],
    version: u8,
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Checks the frame of `record`, read under `key` (checksum, version),
    /// and reads its payload.
    pub fn open(key: &'a [u8], record: &'a [u8]) -> Result<Decoder<'a>, CorruptRecord> {
        let (version, rest) = open_frame(key, record)?;
        Ok(Decoder { key, version, rest })
    }

    /// The record's format version.
    pub fn version(&self) -> u8 {
        self.version
    }

    pub fn corrupt(&self, reason: impl Into<String>) -> CorruptRecord {
        CorruptRecord {
            key: printable_key(self.key),
            reason: reason.into(),
        }
    }

    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), CorruptRecord> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt(format!("{} trailing bytes", self.rest.len())))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        if self.rest.len() < n {
            return Err(self.corrupt("truncated payload"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, CorruptRecord> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, CorruptRecord> {
        let b = self.take(8)?;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(b);
        Ok(u64::from_be_bytes(bytes))
    }

    pub fn str(&mut self) -> Result<String, CorruptRecord> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt("string is not UTF-8"))
    }

    pub fn member(&mut self) -> Result<MemberId, CorruptRecord> {
        let high = u128::from(self.u64()?);
        let low = u128::from(self.u64()?);
        Ok(MemberId(high << 64 | low))
    }

    /// Version 1 ballots have no epoch: they are of epoch 0.
    pub fn ballot(&mut self) -> Result<Ballot, CorruptRecord> {
        let epoch = if self.version >= VERSION_2 { self.u64()? } else { 0 };
        Ok(Ballot::in_epoch(epoch, self.u64()?, NodeId(self.u32()?)))
    }

    pub fn accepted(&mut self) -> Result<Accepted, CorruptRecord> {
        let ballot = self.ballot()?;
        let chosen = match self.u8()? {
            0 => false,
            1 => true,
            other => return Err(self.corrupt(format!("chosen flag {other}"))),
        };
        let value = self.value()?;
        Ok(Accepted {
            ballot,
            value,
            chosen,
        })
    }

    pub fn value(&mut self) -> Result<Value, CorruptRecord> {
        match self.u8()? {
            VALUE_NOOP => Ok(Value::Noop),
            VALUE_ALLOCATIONS => Ok(Value::Allocations(self.allocations()?)),
            VALUE_KEYED_ALLOCATIONS if self.version >= VERSION_3 => {
                let allocations = self.allocations()?;
                let n = self.u32()?;
                let mut keys = Vec::new();
                for _ in 0..n {
                    let key = self.str()?;
                    let key = IdempotencyKey::parse(&key)
                        .map_err(|e| self.corrupt(format!("idempotency key: {e}")))?;
                    let allocation = self.allocation()?;
                    keys.push(KeyedPart { key, allocation });
                }
                Ok(Value::KeyedAllocations { allocations, keys })
            }
            VALUE_RECONFIGURE if self.version >= VERSION_2 => Ok(Value::Reconfigure(self.configuration()?)),
            other => Err(self.corrupt(format!(
                "unknown value kind {other} in a version {} record",
                self.version
            ))),
        }
    }

    fn allocations(&mut self) -> Result<Vec<Allocation>, CorruptRecord> {
        let n = self.u32()?;
        let mut allocations = Vec::new();
        for _ in 0..n {
            allocations.push(self.allocation()?);
        }
        Ok(allocations)
    }

    fn allocation(&mut self) -> Result<Allocation, CorruptRecord> {
        let sequence = self.sequence()?;
        let first = self.u64()?;
        let count = self.u64()?;
        if first.checked_add(count).is_none() {
            return Err(self.corrupt("allocation overflows u64"));
        }
        Ok(Allocation {
            sequence,
            first,
            count,
        })
    }

    /// A configuration as only a valid one is stored: an epoch above 0, at
    /// least one seat, no address or member twice.
    pub fn configuration(&mut self) -> Result<Configuration, CorruptRecord> {
        if self.version < VERSION_2 {
            return Err(self.corrupt(format!("a configuration in a version {} record", self.version)));
        }
        let epoch = self.u64()?;
        let n = self.u32()?;
        // Not preallocated: a corrupt count runs out of bytes instead.
        let mut seats = Vec::new();
        for _ in 0..n {
            let address = self.str()?;
            let member = self.member()?;
            seats.push(Seat { address, member });
        }
        let configuration = Configuration { epoch, seats };
        if epoch == 0 || !configuration.is_valid() {
            return Err(
                self.corrupt("configuration of epoch 0, without seats, or with an address or member twice")
            );
        }
        Ok(configuration)
    }

    pub fn snapshot(&mut self) -> Result<Snapshot, CorruptRecord> {
        let below = Slot(self.u64()?);
        let counters = self.counters()?;
        Ok(Snapshot { below, counters })
    }

    pub fn counters(&mut self) -> Result<Counters, CorruptRecord> {
        let n = self.u32()?;
        let mut counters = BTreeMap::new();
        for _ in 0..n {
            let name = self.sequence()?;
            counters.insert(name, self.u64()?);
        }
        Ok(Counters::from_map(counters))
    }

    pub fn bool(&mut self) -> Result<bool, CorruptRecord> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.corrupt(format!("flag {other}"))),
        }
    }

    /// The counterpart of [`Encoder::option`].
    pub fn option<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, CorruptRecord>,
    ) -> Result<Option<T>, CorruptRecord> {
        if self.bool()? {
            Ok(Some(read(self)?))
        } else {
            Ok(None)
        }
    }

    pub fn membership(&mut self) -> Result<Membership, CorruptRecord> {
        let mut sets = [BTreeSet::new(), BTreeSet::new()];
        for set in &mut sets {
            for _ in 0..self.u32()? {
                set.insert(self.member()?);
            }
        }
        let [members, retired] = sets;
        Ok(Membership { members, retired })
    }

    fn sequence(&mut self) -> Result<SequenceName, CorruptRecord> {
        let name = self.str()?;
        SequenceName::parse(&name).map_err(|e| self.corrupt(format!("sequence name: {e}")))
    }
}

/// Records as the version 1 codec (before epochs) wrote them, for the
/// tests that check old records still decode, here and in the acceptor's
/// store (which loads them from a data dir). Test data only: public so that
/// both crates pin the same bytes.
#[doc(hidden)]
pub mod v1_samples {
    /// A log entry at slot 3: ballot 7.2, chosen, `orders` 10 + 5.
    pub const V1_LOG_KEY: &[u8] = b"log/\0\0\0\0\0\0\0\x03";
    pub const V1_LOG_RECORD: &str =
        "01000000000000000700000002010100000001000000066f7264657273000000000000000a000000000000000525bcf8b7";
    /// `meta/promised`: ballot 4.2.
    pub const V1_PROMISED_RECORD: &str = "01000000000000000400000002db05f272";

    /// The bytes of a hex string (the samples above).
    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::v1_samples::{hex, V1_LOG_KEY, V1_LOG_RECORD, V1_PROMISED_RECORD};
    use super::*;

    fn orders() -> SequenceName {
        SequenceName::parse("orders").expect("valid")
    }

    fn sample() -> Accepted {
        Accepted {
            ballot: Ballot::in_epoch(3, 7, NodeId(2)),
            value: Value::Allocations(vec![Allocation {
                sequence: orders(),
                first: 10,
                count: 5,
            }]),
            chosen: true,
        }
    }

    fn configuration() -> Configuration {
        Configuration {
            epoch: 4,
            seats: vec![
                Seat {
                    address: "http://acceptor-0:7100".into(),
                    member: MemberId(u128::MAX - 1),
                },
                Seat {
                    address: "https://acceptor-9.paxid".into(),
                    member: MemberId(42),
                },
            ],
        }
    }

    fn decode<'a, T>(
        key: &'a [u8],
        record: &'a [u8],
        read: impl FnOnce(&mut Decoder<'a>) -> Result<T, CorruptRecord>,
    ) -> Result<T, CorruptRecord> {
        let mut d = Decoder::open(key, record)?;
        let value = read(&mut d)?;
        d.finish()?;
        Ok(value)
    }

    #[test]
    fn records_round_trip() {
        let record = Encoder::default().accepted(&sample()).seal(b"log/x");
        assert_eq!(record[0], VERSION_2, "a ballot needs version 2");
        assert_eq!(decode(b"log/x", &record, Decoder::accepted), Ok(sample()));
    }

    #[test]
    fn ballots_keep_their_epoch() {
        for ballot in [
            Ballot::ZERO,
            Ballot::new(9, NodeId(3)),
            Ballot::opening(1),
            Ballot::in_epoch(u64::MAX, u64::MAX, NodeId(u32::MAX)),
        ] {
            let record = Encoder::default().ballot(ballot).seal(b"meta/promised");
            assert_eq!(decode(b"meta/promised", &record, Decoder::ballot), Ok(ballot));
        }
    }

    #[test]
    fn reconfigure_values_and_configurations_round_trip() {
        let stop_sign = Accepted {
            ballot: Ballot::in_epoch(3, 1, NodeId(1)),
            value: Value::Reconfigure(configuration()),
            chosen: false,
        };
        let record = Encoder::default().accepted(&stop_sign).seal(b"log/y");
        assert_eq!(decode(b"log/y", &record, Decoder::accepted), Ok(stop_sign));
        let record = Encoder::default()
            .configuration(&configuration())
            .seal(b"meta/configuration");
        assert_eq!(record[0], VERSION_2);
        assert_eq!(
            decode(b"meta/configuration", &record, Decoder::configuration),
            Ok(configuration())
        );
        for value in [Value::Noop, Value::Allocations(Vec::new())] {
            let record = Encoder::default().value(&value).seal(b"v");
            assert_eq!(record[0], VERSION_1, "{value:?} needs nothing new");
            assert_eq!(decode(b"v", &record, Decoder::value), Ok(value));
        }
    }

    #[test]
    fn keyed_allocations_round_trip_in_version_3_only() {
        let part = |key: &str, first| KeyedPart {
            key: IdempotencyKey::parse(key).expect("valid"),
            allocation: Allocation {
                sequence: SequenceName::default_sequence(),
                first,
                count: 2,
            },
        };
        let keyed = Accepted {
            ballot: Ballot::new(4, NodeId(2)),
            value: Value::KeyedAllocations {
                allocations: vec![Allocation {
                    sequence: SequenceName::default_sequence(),
                    first: 10,
                    count: 6,
                }],
                keys: vec![part("a", 10), part("~!b", 14)],
            },
            chosen: true,
        };
        let record = Encoder::default().accepted(&keyed).seal(b"log/k");
        assert_eq!(record[0], VERSION_3);
        assert_eq!(decode(b"log/k", &record, Decoder::accepted), Ok(keyed));
        // A version 2 record cannot hold kind 3: refused, not misread.
        let mut payload = Vec::new();
        payload.push(VALUE_KEYED_ALLOCATIONS);
        payload.extend_from_slice(&0u32.to_be_bytes());
        payload.extend_from_slice(&0u32.to_be_bytes());
        let record = seal_with(b"v", VERSION_2, &payload);
        assert!(decode(b"v", &record, Decoder::value).is_err());
        let record = seal_with(b"v", VERSION_3, &payload);
        assert!(decode(b"v", &record, Decoder::value).is_ok());
    }

    #[test]
    fn records_without_ballots_keep_version_1() {
        let membership = Membership::founding([MemberId(1), MemberId(u128::MAX)]);
        let record = Encoder::default()
            .membership(&membership)
            .seal(b"meta/membership");
        assert_eq!(record[0], VERSION_1);
        assert_eq!(
            decode(b"meta/membership", &record, Decoder::membership),
            Ok(membership)
        );
        let snapshot = Snapshot {
            below: Slot(9),
            counters: Counters::from_map(BTreeMap::from([(orders(), 77)])),
        };
        let record = Encoder::default().snapshot(&snapshot).seal(b"meta/base");
        assert_eq!(record[0], VERSION_1);
        assert_eq!(decode(b"meta/base", &record, Decoder::snapshot), Ok(snapshot));
    }

    #[test]
    fn version_1_records_decode_with_epoch_0() {
        let record = hex(V1_LOG_RECORD);
        let accepted = decode(V1_LOG_KEY, &record, Decoder::accepted).expect("a version 1 log entry");
        assert_eq!(
            accepted,
            Accepted {
                ballot: Ballot::new(7, NodeId(2)),
                ..sample()
            }
        );
        assert_eq!(accepted.ballot.epoch, 0);
        let record = hex(V1_PROMISED_RECORD);
        assert_eq!(
            decode(b"meta/promised", &record, Decoder::ballot),
            Ok(Ballot::new(4, NodeId(2)))
        );
    }

    #[test]
    fn version_1_records_cannot_hold_what_version_2_added() {
        // A reconfiguration value and a configuration sealed as version 1.
        let payload = Encoder::default()
            .u8(VALUE_RECONFIGURE)
            .configuration(&configuration())
            .payload
            .clone();
        let record = seal_with(b"v", VERSION_1, &payload);
        let error = decode(b"v", &record, Decoder::value).expect_err("refused");
        assert!(error.reason.contains("unknown value kind 2"), "{error}");
        let payload = Encoder::default().configuration(&configuration()).payload.clone();
        let record = seal_with(b"c", VERSION_1, &payload);
        assert!(decode(b"c", &record, Decoder::configuration).is_err());
    }

    #[test]
    fn unknown_versions_are_refused() {
        for version in [0, VERSION_LATEST + 1, u8::MAX] {
            let record = seal_with(b"k", version, &[]);
            let error = Decoder::open(b"k", &record).err().expect("refused");
            assert!(error.reason.contains("unknown format version"), "{error}");
        }
    }

    #[test]
    fn invalid_configurations_are_corrupt() {
        let mut epoch_0 = configuration();
        epoch_0.epoch = 0;
        let mut no_seats = configuration();
        no_seats.seats.clear();
        let mut twice = configuration();
        twice.seats[1].member = twice.seats[0].member;
        let mut same_url = configuration();
        same_url.seats[1].address = same_url.seats[0].address.clone();
        for bad in [epoch_0, no_seats, twice, same_url] {
            let record = Encoder::default().configuration(&bad).seal(b"c");
            assert!(decode(b"c", &record, Decoder::configuration).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_truncation_and_padding_is_an_error_not_a_panic() {
        let stop_sign = Accepted {
            ballot: Ballot::in_epoch(3, 1, NodeId(1)),
            value: Value::Reconfigure(configuration()),
            chosen: true,
        };
        let mut e = Encoder::default();
        e.accepted(&stop_sign);
        assert_eq!(e.version, VERSION_2);
        let payload = e.payload.clone();
        for len in 0..payload.len() {
            // Validly framed, so only the payload decoder can object.
            let record = seal_with(b"log/z", VERSION_2, &payload[..len]);
            assert!(
                decode(b"log/z", &record, Decoder::accepted).is_err(),
                "{len} bytes"
            );
        }
        let mut padded = payload.clone();
        padded.push(0);
        let record = seal_with(b"log/z", VERSION_2, &padded);
        assert!(decode(b"log/z", &record, Decoder::accepted).is_err());
        // Garbage of every length, read as either version: errors or
        // values, never a panic.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..200 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Mostly small bytes, so counts and kinds are plausible.
                    (state % 4) as u8 * (state >> 60) as u8
                })
                .collect();
            for version in [VERSION_1, VERSION_2] {
                let record = seal_with(b"log/z", version, &garbage);
                let _ = decode(b"log/z", &record, Decoder::accepted);
                let _ = decode(b"log/z", &record, Decoder::configuration);
                let _ = decode(b"log/z", &record, Decoder::membership);
                let _ = decode(b"log/z", &record, Decoder::snapshot);
            }
        }
        // A huge seat count runs out of bytes instead of allocating.
        let record = seal_with(b"c", VERSION_2, &[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode(b"c", &record, Decoder::configuration).is_err());
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let stop_sign = Accepted {
            ballot: Ballot::in_epoch(3, 1, NodeId(1)),
            value: Value::Reconfigure(configuration()),
            chosen: false,
        };
        for accepted in [sample(), stop_sign] {
            let record = Encoder::default().accepted(&accepted).seal(b"log/x");
            for byte in 0..record.len() {
                for bit in 0..8 {
                    let mut bad = record.clone();
                    bad[byte] ^= 1 << bit;
                    assert!(
                        Decoder::open(b"log/x", &bad).is_err(),
                        "flip of bit {bit} in byte {byte} went unnoticed"
                    );
                }
            }
        }
    }

    #[test]
    fn a_record_under_another_key_is_refused() {
        let record = Encoder::default().u8(1).u8(2).u8(3).seal(b"meta/promised");
        assert!(Decoder::open(b"meta/promised", &record).is_ok());
        assert!(Decoder::open(b"meta/base", &record).is_err());
        assert!(Decoder::open(b"meta/base", &[]).is_err());
    }

    #[test]
    fn truncated_and_padded_payloads_are_refused() {
        let record = seal_with(b"k", VERSION_1, &[0, 0, 0]);
        let mut d = Decoder::open(b"k", &record).expect("framed");
        assert!(d.u64().is_err());
        let record = seal_with(b"k", VERSION_1, &[0]);
        assert!(Decoder::open(b"k", &record).expect("framed").finish().is_err());
        let record = Encoder::default()
            .u8(VALUE_ALLOCATIONS)
            .u32(1)
            .str("a b")
            .u64(1)
            .u64(1)
            .seal(b"k");
        assert!(
            Decoder::open(b"k", &record).expect("framed").value().is_err(),
            "invalid sequence names are refused"
        );
    }
}
