//! The vocabulary's helpers and how it prints: log lines, error bodies and
//! metrics labels use these `Display` forms.

use paxos_core::{Ballot, Counters, MemberId, NodeId, SequenceName, SequenceNameError, Slot};

fn seq(name: &str) -> SequenceName {
    SequenceName::parse(name).expect("valid")
}

fn counters(entries: &[(&str, u64)]) -> Counters {
    Counters::from_map(entries.iter().map(|(name, next)| (seq(name), *next)).collect())
}

#[test]
fn merging_counters_takes_the_pointwise_maximum() {
    let mut mine = counters(&[("a", 5), ("b", 2)]);
    mine.merge(&counters(&[("b", 7), ("c", 3), ("a", 1)]));
    assert_eq!(mine, counters(&[("a", 5), ("b", 7), ("c", 3)]));
}

#[test]
fn counters_list_their_sequences_in_name_order() {
    let c = counters(&[("b", 9), ("a", 4)]);
    let listed: Vec<(&str, u64)> = c.iter().map(|(name, next)| (name.as_str(), next)).collect();
    assert_eq!(listed, vec![("a", 4), ("b", 9)]);
    assert_eq!(c.len(), 2);
    assert!(!c.is_empty());
    assert!(c.contains(&seq("a")));
    assert!(!c.contains(&seq("z")), "a sequence never allocated");

    let none = Counters::default();
    assert_eq!(none.len(), 0);
    assert!(none.is_empty());
    assert_eq!(none.iter().count(), 0);
    assert!(!none.contains(&seq("a")));
}

#[test]
fn ballots_print_as_round_dot_node_with_the_epoch_after_the_first() {
    assert_eq!(Ballot::new(3, NodeId(2)).to_string(), "3.2");
    assert_eq!(Ballot::in_epoch(1, 3, NodeId(2)).to_string(), "1:3.2");
    assert_eq!(Ballot::opening(4).to_string(), "4:0.0");
}

#[test]
fn slots_sequence_names_and_members_print_plainly() {
    assert_eq!(Slot(42).to_string(), "42");
    assert_eq!(seq("orders.v2").to_string(), "orders.v2");
    assert_eq!(MemberId(255).to_string(), format!("{}ff", "0".repeat(30)));
}

#[test]
fn sequence_name_errors_say_what_is_wrong() {
    assert_eq!(SequenceNameError::Empty.to_string(), "sequence name is empty");
    assert_eq!(
        SequenceNameError::TooLong { len: 65 }.to_string(),
        "sequence name has 65 characters; the maximum is 64"
    );
    assert_eq!(
        SequenceNameError::BadCharacter { character: ' ' }.to_string(),
        "sequence name contains ' '; allowed are A-Z a-z 0-9 _ . -"
    );
}

#[test]
fn a_configuration_needs_a_seat_and_no_address_or_member_twice() {
    use paxos_core::{Configuration, Seat};
    let seat = |address: &str, member: u128| Seat {
        address: address.to_owned(),
        member: MemberId(member),
    };
    let configuration = |seats| Configuration { epoch: 1, seats };
    assert!(configuration(vec![seat("http://a", 1), seat("http://b", 2)]).is_valid());
    assert!(!configuration(Vec::new()).is_valid(), "no seat");
    assert!(
        !configuration(vec![seat("http://a", 1), seat("http://a", 2)]).is_valid(),
        "one address twice"
    );
    assert!(
        !configuration(vec![seat("http://a", 1), seat("http://b", 1)]).is_valid(),
        "one member twice"
    );
}

#[test]
fn idempotency_keys_and_their_errors_print_as_the_api_shows_them() {
    use paxos_core::{IdempotencyKey, IdempotencyKeyError};
    let key = IdempotencyKey::parse("order-42/retry").expect("valid");
    assert_eq!(key.to_string(), "order-42/retry");
    assert_eq!(IdempotencyKeyError::Empty.to_string(), "Idempotency-Key is empty");
    assert_eq!(
        IdempotencyKeyError::TooLong { len: 256 }.to_string(),
        "Idempotency-Key has 256 characters; the maximum is 255"
    );
    assert_eq!(
        IdempotencyKeyError::BadCharacter.to_string(),
        "Idempotency-Key may hold only visible ASCII characters (! to ~)"
    );
}
