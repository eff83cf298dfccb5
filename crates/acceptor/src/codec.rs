//! The on-disk encoding of the acceptor's records: the shared record codec
//! ([`record`], also used by the learner store). The frame and the layouts
//! of the core types live there; this module keeps the acceptor's names for
//! them and the version 1 records its store tests load.
//!
//! Record layout: `[format version: u8][payload][crc32(key, version, payload): u32 BE]`.

pub use record::{
    printable_key, CorruptRecord, Decoder, Encoder, VERSION_1, VERSION_2, VERSION_3, VERSION_LATEST,
};

/// Records as the version 1 codec (before epochs) wrote them, for the
/// tests that check old data dirs still load.
#[cfg(test)]
pub(crate) use record::v1_samples;

#[cfg(test)]
mod tests {
    use super::v1_samples::{hex, V1_LOG_KEY, V1_LOG_RECORD};
    use super::*;
    use paxos_core::{Accepted, Allocation, Ballot, NodeId, SequenceName, Value};

    /// The bytes the acceptor wrote before the codec moved to `record`:
    /// the same value still encodes to them, byte for byte.
    #[test]
    fn the_moved_codec_writes_the_same_bytes() {
        let accepted = Accepted {
            ballot: Ballot::in_epoch(3, 7, NodeId(2)),
            value: Value::Allocations(vec![Allocation {
                sequence: SequenceName::parse("orders").expect("valid"),
                first: 10,
                count: 5,
            }]),
            chosen: true,
        };
        let record = Encoder::default().accepted(&accepted).seal(V1_LOG_KEY);
        // Computed independently (Python's zlib.crc32 over the key length,
        // the key, the version and the payload), as the old codec framed it.
        let expected = "020000000000000003000000000000000700000002010100000001000000066f726465\
                        7273000000000000000a0000000000000005869f018b";
        assert_eq!(record, hex(expected));
        let v1 = hex(V1_LOG_RECORD);
        let mut d = Decoder::open(V1_LOG_KEY, &v1).expect("a version 1 record");
        assert_eq!(d.version(), VERSION_1);
        assert_eq!(d.accepted().expect("decodes").ballot, Ballot::new(7, NodeId(2)));
        d.finish().expect("every byte read");
    }
}
