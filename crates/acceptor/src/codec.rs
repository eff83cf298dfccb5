//! The on-disk encoding of every record: a small binary format with a
//! CRC32 over the key and the payload, so a torn, corrupt or misplaced
//! record is an error at load, never a silent default.
//!
//! Record layout: `[format version: u8][payload][crc32(key, version, payload): u32 BE]`.
//! Integers are big-endian; strings are a u32 length then UTF-8 bytes; a
//! member id is 16 bytes (two u64).

use std::collections::{BTreeMap, BTreeSet};

use paxos_core::{
    Accepted, Allocation, Ballot, Counters, MemberId, Membership, NodeId, SequenceName, Slot, Snapshot, Value,
};

/// Bumped when a payload layout changes; an unknown version is refused.
const FORMAT_VERSION: u8 = 1;
const CHECKSUM_BYTES: usize = 4;
const VALUE_NOOP: u8 = 0;
const VALUE_ALLOCATIONS: u8 = 1;

/// Why a stored record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt record {key}: {reason}")]
pub struct CorruptRecord {
    pub key: String,
    pub reason: String,
}

/// Frames `payload` for storage under `key`.
pub fn seal(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(1 + payload.len() + CHECKSUM_BYTES);
    record.push(FORMAT_VERSION);
    record.extend_from_slice(payload);
    let crc = checksum(key, &record);
    record.extend_from_slice(&crc.to_be_bytes());
    record
}

/// Checks the frame of a record read under `key` and returns its payload.
pub fn open<'a>(key: &[u8], record: &'a [u8]) -> Result<&'a [u8], CorruptRecord> {
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
    if body[0] != FORMAT_VERSION {
        return Err(corrupt(&format!("unknown format version {}", body[0])));
    }
    Ok(&body[1..])
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

fn checksum(key: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(key.len() as u64).to_be_bytes());
    hasher.update(key);
    hasher.update(body);
    hasher.finalize()
}

/// Builds a payload.
#[derive(Default)]
pub struct Encoder(Vec<u8>);

impl Encoder {
    /// The payload built so far; the encoder is left empty.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A string of at most `u32::MAX` bytes (identities, learner ids).
    pub fn str(&mut self, s: &str) -> &mut Self {
        let len = u32::try_from(s.len()).expect("strings we store are short");
        self.u32(len);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub fn ballot(&mut self, b: Ballot) -> &mut Self {
        self.u64(b.round).u32(b.node.0)
    }

    pub fn accepted(&mut self, a: &Accepted) -> &mut Self {
        self.ballot(a.ballot).u8(u8::from(a.chosen)).value(&a.value)
    }

    pub fn value(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::Noop => self.u8(VALUE_NOOP),
            Value::Allocations(allocations) => {
                self.u8(VALUE_ALLOCATIONS).u32(len_u32(allocations.len()));
                for a in allocations {
                    self.str(a.sequence.as_str()).u64(a.first).u64(a.count);
                }
                self
            }
        }
    }

    pub fn snapshot(&mut self, s: &Snapshot) -> &mut Self {
        self.u64(s.below.0).u32(len_u32(s.counters.len()));
        for (name, next) in s.counters.iter() {
            self.str(name.as_str()).u64(next);
        }
        self
    }
    pub fn membership(&mut self, m: &Membership) -> &mut Self {
        for set in [&m.members, &m.retired] {
            self.u32(len_u32(set.len()));
            for member in set {
                self.u64((member.0 >> 64) as u64).u64(member.0 as u64);
            }
        }
        self
    }
}

fn len_u32(len: usize) -> u32 {
    // Bounded by the request body limit long before 4 billion.
    u32::try_from(len).expect("collection too large to store")
}

/// Reads a payload; every read checks the bytes are there.
pub struct Decoder<'a> {
    key: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(key: &'a [u8], payload: &'a [u8]) -> Decoder<'a> {
        Decoder { key, rest: payload }
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

    pub fn ballot(&mut self) -> Result<Ballot, CorruptRecord> {
        Ok(Ballot::new(self.u64()?, NodeId(self.u32()?)))
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
            VALUE_ALLOCATIONS => {
                let n = self.u32()?;
                let mut allocations = Vec::new();
                for _ in 0..n {
                    let sequence = self.sequence()?;
                    let first = self.u64()?;
                    let count = self.u64()?;
                    if first.checked_add(count).is_none() {
                        return Err(self.corrupt("allocation overflows u64"));
                    }
                    allocations.push(Allocation {
                        sequence,
                        first,
                        count,
                    });
                }
                Ok(Value::Allocations(allocations))
            }
            other => Err(self.corrupt(format!("unknown value kind {other}"))),
        }
    }

    pub fn snapshot(&mut self) -> Result<Snapshot, CorruptRecord> {
        let below = Slot(self.u64()?);
        let n = self.u32()?;
        let mut counters = BTreeMap::new();
        for _ in 0..n {
            let name = self.sequence()?;
            counters.insert(name, self.u64()?);
        }
        Ok(Snapshot {
            below,
            counters: Counters::from_map(counters),
        })
    }

    pub fn membership(&mut self) -> Result<Membership, CorruptRecord> {
        let mut sets = [BTreeSet::new(), BTreeSet::new()];
        for set in &mut sets {
            for _ in 0..self.u32()? {
                let high = u128::from(self.u64()?);
                let low = u128::from(self.u64()?);
                set.insert(MemberId(high << 64 | low));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Accepted {
        let sequence = SequenceName::parse("orders").expect("valid");
        Accepted {
            ballot: Ballot::new(7, NodeId(2)),
            value: Value::Allocations(vec![Allocation {
                sequence,
                first: 10,
                count: 5,
            }]),
            chosen: true,
        }
    }

    #[test]
    fn records_round_trip() {
        let mut e = Encoder::default();
        e.accepted(&sample());
        let record = seal(b"log/x", &e.finish());
        let payload = open(b"log/x", &record).expect("intact");
        let mut d = Decoder::new(b"log/x", payload);
        assert_eq!(d.accepted().expect("decodes"), sample());
        d.finish().expect("no trailing bytes");
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut e = Encoder::default();
        e.accepted(&sample());
        let record = seal(b"log/x", &e.finish());
        for byte in 0..record.len() {
            for bit in 0..8 {
                let mut bad = record.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    open(b"log/x", &bad).is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_record_under_another_key_is_refused() {
        let record = seal(b"meta/promised", &[1, 2, 3]);
        assert!(open(b"meta/promised", &record).is_ok());
        assert!(open(b"meta/base", &record).is_err());
        assert!(open(b"meta/base", &[]).is_err());
    }

    #[test]
    fn truncated_and_padded_payloads_are_refused() {
        let mut d = Decoder::new(b"k", &[0, 0, 0]);
        assert!(d.u64().is_err());
        let d = Decoder::new(b"k", &[0]);
        assert!(d.finish().is_err());
        let mut e = Encoder::default();
        e.u8(VALUE_ALLOCATIONS).u32(1).str("a b").u64(1).u64(1);
        let payload = e.finish();
        assert!(
            Decoder::new(b"k", &payload).value().is_err(),
            "invalid sequence names are refused"
        );
    }
}
