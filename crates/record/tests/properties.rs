//! Property tests of the record codec: every value decodes to itself, and
//! no byte string makes a decoder panic.

use paxos_core::{
    Accepted, Allocation, Ballot, Configuration, Counters, IdempotencyKey, KeyedPart, MemberId, NodeId, Seat,
    SequenceName, Slot, Snapshot, Value,
};
use proptest::prelude::*;
use record::{CorruptRecord, Decoder, Encoder};

fn sequence() -> impl Strategy<Value = SequenceName> {
    "[a-z0-9_.-]{1,20}".prop_map(|s| SequenceName::parse(&s).expect("a valid name"))
}

fn allocation() -> impl Strategy<Value = Allocation> {
    (sequence(), any::<u64>(), any::<u64>()).prop_map(|(sequence, first, count)| Allocation {
        sequence,
        first: first / 2,
        count: count / 2,
    })
}

fn configuration() -> impl Strategy<Value = Configuration> {
    (
        1..u64::MAX,
        prop::collection::btree_map("[a-z:/.0-9]{1,30}", any::<u128>(), 1..6),
    )
        .prop_filter_map("distinct members", |(epoch, seats)| {
            let seats = seats
                .into_iter()
                .map(|(address, member)| Seat {
                    address,
                    member: MemberId(member),
                })
                .collect();
            let c = Configuration { epoch, seats };
            c.is_valid().then_some(c)
        })
}

fn value() -> impl Strategy<Value = Value> {
    let keyed = (
        prop::collection::vec(allocation(), 0..4),
        prop::collection::vec(("[!-~]{1,40}", allocation()), 0..4),
    )
        .prop_map(|(allocations, keys)| Value::KeyedAllocations {
            allocations,
            keys: keys
                .into_iter()
                .map(|(key, allocation)| KeyedPart {
                    key: IdempotencyKey::parse(&key).expect("a valid key"),
                    allocation,
                })
                .collect(),
        });
    prop_oneof![
        Just(Value::Noop),
        prop::collection::vec(allocation(), 0..5).prop_map(Value::Allocations),
        configuration().prop_map(Value::Reconfigure),
        keyed,
    ]
}

fn ballot() -> impl Strategy<Value = Ballot> {
    (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(e, r, n)| Ballot::in_epoch(e, r, NodeId(n)))
}

fn counters() -> impl Strategy<Value = Counters> {
    prop::collection::btree_map(sequence(), any::<u64>(), 0..6).prop_map(Counters::from_map)
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

proptest! {
    #[test]
    fn accepted_values_round_trip(ballot in ballot(), value in value(), chosen in any::<bool>(), key in prop::collection::vec(any::<u8>(), 0..20)) {
        let accepted = Accepted { ballot, value, chosen };
        let record = Encoder::default().accepted(&accepted).seal(&key);
        prop_assert_eq!(decode(&key, &record, Decoder::accepted), Ok(accepted));
    }

    #[test]
    fn values_configurations_snapshots_round_trip(value in value(), c in configuration(), below in any::<u64>(), counters in counters()) {
        let record = Encoder::default().value(&value).seal(b"v");
        prop_assert_eq!(decode(b"v", &record, Decoder::value), Ok(value));
        let record = Encoder::default().configuration(&c).seal(b"c");
        prop_assert_eq!(decode(b"c", &record, Decoder::configuration), Ok(c));
        let snapshot = Snapshot { below: Slot(below), counters: counters.clone() };
        let record = Encoder::default().snapshot(&snapshot).seal(b"s");
        prop_assert_eq!(decode(b"s", &record, Decoder::snapshot), Ok(snapshot));
        let record = Encoder::default().counters(&counters).seal(b"n");
        prop_assert_eq!(decode(b"n", &record, Decoder::counters), Ok(counters));
    }

    #[test]
    fn options_and_strings_round_trip(s in ".{0,50}", o in prop::option::of(any::<u64>()), b in any::<bool>()) {
        let record = Encoder::default().str(&s).option(o, |e, v| { e.u64(v); }).bool(b).seal(b"k");
        let read = decode(b"k", &record, |d| Ok((d.str()?, d.option(|d| d.u64())?, d.bool()?)));
        prop_assert_eq!(read, Ok((s, o, b)));
    }

    /// Arbitrary bytes, as a whole record or as a validly framed payload
    /// of every version: an error or a value, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), version in 0u8..6) {
        let _ = decode(b"k", &bytes, Decoder::accepted);
        // Frame the bytes validly so that the payload decoders are reached.
        let mut record = vec![version];
        record.extend_from_slice(&bytes);
        let crc = record::checksum(b"k", &record);
        record.extend_from_slice(&crc.to_be_bytes());
        let _ = decode(b"k", &record, Decoder::accepted);
        let _ = decode(b"k", &record, Decoder::value);
        let _ = decode(b"k", &record, Decoder::configuration);
        let _ = decode(b"k", &record, Decoder::snapshot);
        let _ = decode(b"k", &record, Decoder::membership);
        let _ = decode(b"k", &record, |d| Ok((d.str()?, d.option(|d| d.u64())?)));
    }
}
