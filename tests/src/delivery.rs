//! What a webhook subscriber received, checked against the product contract:
//! every message is signed with the subscription's secret, slots arrive in
//! order, a slot comes again only inside a repeat of the same message (same
//! `webhook-id`, same content), allocations of one sequence never overlap
//! and a higher slot holds higher IDs; and every range a client was given
//! lies inside some delivered allocation. [`Delivered::missing_chosen`]
//! compares the delivered slots with the chosen log read from the
//! acceptors ([`crate::chosen`]): every effective chosen allocation must be
//! delivered in its slot with exactly the chosen content, including those
//! no client received.

use std::collections::{BTreeMap, HashMap};

use crate::Op;
use api::internal::Allocation;
use api::learner::{WebhookMessage, WebhookSlot, WEBHOOK_TYPE};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One webhook as the subscriber logged it (one JSON line).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Received {
    #[serde(rename = "webhook-id")]
    pub webhook_id: String,
    #[serde(rename = "webhook-timestamp")]
    pub timestamp: String,
    #[serde(rename = "webhook-signature")]
    pub signature: String,
    pub body: String,
    /// When the subscriber received it (its wall clock), if it says.
    #[serde(rename = "received-unix-ns", default)]
    pub received_unix_ns: Option<u64>,
}

/// Every JSON line of the subscriber's output (other lines are its own
/// diagnostics, which share the file when it runs as a local process).
pub fn parse_log(stdout: &str) -> Result<Vec<Received>, String> {
    stdout
        .lines()
        .filter(|line| line.trim_start().starts_with('{'))
        .map(|line| serde_json::from_str(line).map_err(|e| format!("subscriber log line {line:?}: {e}")))
        .collect()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    pub messages: usize,
    /// Messages received again under a `webhook-id` already seen.
    pub repeats: usize,
    /// Repeats of a message other than the one just before them.
    pub late_repeats: usize,
    pub slots: usize,
    pub allocations: usize,
    pub ids: u64,
}

/// The allocations delivered, once each, after the checks passed.
#[derive(Clone, Debug, Default)]
pub struct Delivered {
    /// Per sequence, `(first, last)` in ascending order (and slot order).
    ranges: BTreeMap<String, Vec<(u64, u64)>>,
    /// Slot -> its allocations as delivered.
    slots: BTreeMap<u64, Vec<Allocation>>,
    pub summary: DeliverySummary,
}

/// Checks the messages in the order received; the error names the first
/// violation.
pub fn check_deliveries(messages: &[Received], secret: &str) -> Result<Delivered, String> {
    let key = signing_key(secret)?;
    let mut seen: HashMap<&str, Vec<WebhookSlot>> = HashMap::new();
    let mut slots: BTreeMap<u64, Vec<Allocation>> = BTreeMap::new();
    let mut last_id: Option<&str> = None;
    let mut summary = DeliverySummary::default();
    for received in messages {
        verify_signature(&key, received)?;
        let message = parse_message(received)?;
        summary.messages += 1;
        let id = received.webhook_id.as_str();
        if let Some(first_time) = seen.get(id) {
            if *first_time != message.data.slots {
                return Err(format!("{id} was sent again with different content"));
            }
            summary.repeats += 1;
            summary.late_repeats += usize::from(last_id != Some(id));
        } else {
            let first_slot = message.data.slots[0].slot;
            if let Some((&highest, _)) = slots.last_key_value() {
                if first_slot <= highest {
                    return Err(format!(
                        "{id} starts at slot {first_slot}, but slot {highest} was already delivered \
                         (out of order, or a slot again under a new webhook-id)"
                    ));
                }
            }
            for slot in &message.data.slots {
                slots.insert(slot.slot, slot.allocations.clone());
            }
            seen.insert(id, message.data.slots);
        }
        last_id = Some(id);
    }
    let ranges = ranges_in_slot_order(&slots)?;
    summary.slots = slots.len();
    summary.allocations = slots.values().map(Vec::len).sum();
    summary.ids = ranges
        .values()
        .flatten()
        .map(|(first, last)| last - first + 1)
        .sum();
    Ok(Delivered {
        ranges,
        slots,
        summary,
    })
}

impl Delivered {
    /// The sequences that were delivered.
    pub fn sequences(&self) -> impl Iterator<Item = &str> {
        self.ranges.keys().map(String::as_str)
    }

    /// The lowest and the highest slot delivered, if any.
    pub fn slot_span(&self) -> Option<std::ops::RangeInclusive<u64>> {
        let first = self.slots.keys().next()?;
        let last = self.slots.keys().next_back()?;
        Some(*first..=*last)
    }

    /// Successful client calls whose IDs are not all inside one delivered
    /// allocation.
    pub fn uncovered<'a>(&self, history: &'a [Op]) -> Vec<&'a Op> {
        history
            .iter()
            .filter(|op| op.result.as_ref().is_some_and(|result| !self.covers(result)))
            .collect()
    }

    /// Differences between the delivered slots and `chosen` (the effective
    /// allocations of the chosen log, [`crate::chosen::effective`]) within
    /// `slots` (a subscription starts where the learner was when it was
    /// created, and slots above the last delivered may not be delivered
    /// yet): effective chosen slots not delivered, delivered slots whose
    /// allocations differ from the chosen ones, delivered slots that are
    /// not chosen.
    pub fn missing_chosen(
        &self,
        chosen: &crate::chosen::Effective,
        slots: std::ops::RangeInclusive<u64>,
    ) -> Vec<String> {
        let sorted = |list: &[Allocation]| {
            let mut list = list.to_vec();
            list.sort_by(|a, b| (&a.sequence, a.id, a.count).cmp(&(&b.sequence, b.id, b.count)));
            list
        };
        let mut problems = Vec::new();
        for (slot, wanted) in chosen.range(slots.clone()) {
            match self.slots.get(slot) {
                None => problems.push(format!("slot {slot}: chosen {wanted:?}, never delivered")),
                Some(got) if sorted(got) != sorted(wanted) => {
                    problems.push(format!("slot {slot}: chosen {wanted:?}, delivered {got:?}"))
                }
                Some(_) => {}
            }
        }
        for (slot, got) in self.slots.range(slots) {
            if !chosen.contains_key(slot) {
                problems.push(format!(
                    "slot {slot}: delivered {got:?}, nothing effective chosen"
                ));
            }
        }
        problems
    }

    fn covers(&self, (sequence, first, count): &(String, u64, u64)) -> bool {
        let Some(ranges) = self.ranges.get(sequence) else {
            return false;
        };
        let after = ranges.partition_point(|(start, _)| start <= first);
        after > 0 && ranges[after - 1].1 >= first + count - 1
    }
}

/// For each successful call of `history`, milliseconds from the client's
/// answer to the first receipt of an allocation holding its first ID.
/// `epoch_unix_ns` is the wall-clock time of the history's zero; calls whose
/// IDs never arrived, and messages without a receipt time, are left out.
pub fn lags_ms(received: &[Received], history: &[Op], epoch_unix_ns: u64) -> Vec<f64> {
    // (sequence, first ID) -> (last ID, first receipt)
    let mut arrivals: BTreeMap<(String, u64), (u64, u64)> = BTreeMap::new();
    for message in received {
        let (Some(at), Ok(parsed)) = (message.received_unix_ns, parse_message(message)) else {
            continue;
        };
        for allocation in parsed.data.slots.iter().flat_map(|slot| &slot.allocations) {
            let last = allocation.id + allocation.count.max(1) - 1;
            arrivals
                .entry((allocation.sequence.clone(), allocation.id))
                .or_insert((last, at));
        }
    }
    let arrival = |sequence: &String, first: u64| {
        let ((found, _), (last, at)) = arrivals.range(..=(sequence.clone(), first)).next_back()?;
        (found == sequence && *last >= first).then_some(*at)
    };
    history
        .iter()
        .filter_map(|op| {
            let (sequence, first, _) = op.result.as_ref()?;
            let at = arrival(sequence, *first)?;
            let answered = epoch_unix_ns + op.completed_ns;
            Some((at as f64 - answered as f64) / 1e6)
        })
        .collect()
}

/// Per sequence, the ranges ordered by slot; fails if a range does not lie
/// above every range of an earlier slot (overlap, or IDs going backwards).
fn ranges_in_slot_order(
    slots: &BTreeMap<u64, Vec<Allocation>>,
) -> Result<BTreeMap<String, Vec<(u64, u64)>>, String> {
    let mut by_sequence: BTreeMap<String, Vec<(u64, u64, u64)>> = BTreeMap::new();
    for (&slot, allocations) in slots {
        for allocation in allocations {
            if allocation.count == 0 {
                return Err(format!(
                    "slot {slot} holds an empty allocation of {:?}",
                    allocation.sequence
                ));
            }
            let last = allocation.id + allocation.count - 1;
            by_sequence
                .entry(allocation.sequence.clone())
                .or_default()
                .push((slot, allocation.id, last));
        }
    }
    let mut ranges = BTreeMap::new();
    for (sequence, mut list) in by_sequence {
        // Inside one slot the order of allocations is free; across slots it is not.
        list.sort_unstable();
        for pair in list.windows(2) {
            let ((slot_a, first_a, last_a), (slot_b, first_b, last_b)) = (pair[0], pair[1]);
            if first_b <= last_a {
                return Err(format!(
                    "sequence {sequence:?}: slot {slot_b} holds {first_b}..={last_b}, \
                     not above {first_a}..={last_a} of slot {slot_a}"
                ));
            }
        }
        ranges.insert(
            sequence,
            list.into_iter().map(|(_, first, last)| (first, last)).collect(),
        );
    }
    Ok(ranges)
}

fn parse_message(received: &Received) -> Result<WebhookMessage, String> {
    let id = &received.webhook_id;
    let message: WebhookMessage = serde_json::from_str(&received.body)
        .map_err(|e| format!("{id}: body is not a webhook message: {e}"))?;
    if message.type_ != WEBHOOK_TYPE {
        return Err(format!(
            "{id}: type {:?}, expected {WEBHOOK_TYPE:?}",
            message.type_
        ));
    }
    let slots = &message.data.slots;
    if slots.is_empty() {
        return Err(format!("{id}: a message without slots"));
    }
    if slots.windows(2).any(|pair| pair[1].slot <= pair[0].slot) {
        let order: Vec<u64> = slots.iter().map(|slot| slot.slot).collect();
        return Err(format!("{id}: slots not ascending inside the message: {order:?}"));
    }
    Ok(message)
}

type HmacSha256 = Hmac<Sha256>;

fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| format!("secret {secret:?} lacks whsec_"))?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("secret is not base64: {e}"))
}

/// `received` carries a valid Standard Webhooks signature for `secret`
/// (`whsec_…`): for checks of single messages outside [`check_deliveries`].
pub fn verify_signed(secret: &str, received: &Received) -> Result<(), String> {
    verify_signature(&signing_key(secret)?, received)
}

/// Standard Webhooks v1: one of the space-separated `v1,<base64>` entries
/// is the HMAC-SHA256 of `id.timestamp.body`, compared in constant time.
fn verify_signature(key: &[u8], received: &Received) -> Result<(), String> {
    let signed = format!("{}.{}.{}", received.webhook_id, received.timestamp, received.body);
    let valid = received
        .signature
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|sig| {
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(sig) else {
                return false;
            };
            let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(signed.as_bytes());
            !bytes.is_empty() && mac.verify_slice(&bytes).is_ok()
        });
    match valid {
        true => Ok(()),
        false => Err(format!(
            "{}: bad signature {:?}",
            received.webhook_id, received.signature
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn sign(id: &str, timestamp: &str, body: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&signing_key(SECRET).expect("key")).expect("key");
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    /// `(sequence, first, count)` of one allocation.
    type Alloc<'a> = (&'a str, u64, u64);

    /// A message for `slots`: each `(slot, [(sequence, first, count)])`.
    fn message(id: &str, slots: &[(u64, &[Alloc])]) -> Received {
        let slots: Vec<serde_json::Value> = slots
            .iter()
            .map(|(slot, allocations)| {
                let allocations: Vec<serde_json::Value> = allocations
                    .iter()
                    .map(|(sequence, id, count)| serde_json::json!({"sequence": sequence, "id": id, "count": count}))
                    .collect();
                serde_json::json!({"slot": slot, "allocations": allocations})
            })
            .collect();
        let body = serde_json::json!({"type": "ids.allocated", "timestamp": "2026-11-01T00:00:00Z", "data": {"slots": slots}})
            .to_string();
        let timestamp = "1700000000".to_owned();
        Received {
            webhook_id: id.into(),
            signature: sign(id, &timestamp, &body),
            timestamp,
            body,
            received_unix_ns: None,
        }
    }

    fn op(sequence: &str, first: u64, count: u64) -> Op {
        Op {
            invoked_ns: 0,
            completed_ns: 1,
            result: Some((sequence.into(), first, count)),
        }
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_test_vector() {
        let received = Received {
            webhook_id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk".into(),
            timestamp: "1649367553".into(),
            signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=".into(),
            body: r#"{"email":"test@example.com","username":"test_user"}"#.into(),
            received_unix_ns: None,
        };
        let key = signing_key(SECRET).expect("key");
        assert!(verify_signature(&key, &received).is_ok());
        let mut tampered = received.clone();
        tampered.body.push(' ');
        assert!(verify_signature(&key, &tampered).is_err());
        let empty = Received {
            signature: "v1,".into(),
            ..received
        };
        assert!(verify_signature(&key, &empty).is_err());
    }

    #[test]
    fn in_order_messages_with_a_repeat_pass_and_cover_the_clients() {
        let a = message(
            "msg_a",
            &[
                (0, &[("default", 1, 3)]),
                (1, &[("default", 4, 1), ("orders", 1, 7)]),
            ],
        );
        let b = message("msg_b", &[(3, &[("default", 10, 2)])]);
        let messages = [a, b.clone(), b];
        let delivered = check_deliveries(&messages, SECRET).expect("valid");
        assert_eq!(
            delivered.summary,
            DeliverySummary {
                messages: 3,
                repeats: 1,
                late_repeats: 0,
                slots: 3,
                allocations: 4,
                ids: 13
            }
        );
        let history = [op("default", 2, 2), op("orders", 1, 7), op("default", 11, 1)];
        assert!(delivered.uncovered(&history).is_empty());
    }

    #[test]
    fn a_client_range_outside_every_allocation_is_reported() {
        let delivered =
            check_deliveries(&[message("msg_a", &[(0, &[("default", 1, 3)])])], SECRET).expect("valid");
        let history = [
            op("default", 3, 2),
            op("default", 9, 1),
            op("other", 1, 1),
            op("default", 1, 3),
        ];
        let uncovered = delivered.uncovered(&history);
        assert_eq!(uncovered, vec![&history[0], &history[1], &history[2]]);
    }

    #[test]
    fn missing_wrong_and_unchosen_slots_are_reported() {
        let delivered = check_deliveries(
            &[message(
                "msg_a",
                &[
                    (0, &[("default", 1, 3)]),
                    (2, &[("default", 5, 1)]),
                    (3, &[("default", 9, 1)]),
                ],
            )],
            SECRET,
        )
        .expect("valid");
        let value = |allocations: &[Alloc]| api::internal::Value::Allocations {
            allocations: allocations
                .iter()
                .map(|(sequence, id, count)| Allocation {
                    sequence: (*sequence).into(),
                    id: *id,
                    count: *count,
                })
                .collect(),
            keys: Vec::new(),
        };
        // Slot 1 is void (starts inside slot 0's range); slot 4 is not delivered.
        let chosen = crate::chosen::ChosenLog {
            start: api::internal::Snapshot::default(),
            slots: [
                (0, value(&[("default", 1, 3)])),
                (1, value(&[("default", 2, 1)])),
                (2, value(&[("default", 5, 2)])),
                (4, value(&[("default", 20, 1)])),
            ]
            .into(),
        };
        let effective = crate::chosen::effective(&chosen, |_| true);
        assert!(
            !effective.contains_key(&1),
            "a void allocation is never delivered"
        );
        let problems = delivered.missing_chosen(&effective, 0..=4);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("slot 2:") && problems[0].contains("delivered"));
        assert!(problems[1].starts_with("slot 4:") && problems[1].contains("never delivered"));
        assert!(problems[2].starts_with("slot 3:") && problems[2].contains("nothing effective"));
    }

    #[test]
    fn a_slot_again_under_a_new_webhook_id_fails() {
        let messages = [
            message("msg_a", &[(0, &[("default", 1, 3)])]),
            message("msg_b", &[(0, &[("default", 1, 3)])]),
        ];
        let error = check_deliveries(&messages, SECRET).expect_err("slot 0 twice");
        assert!(error.contains("already delivered"), "{error}");
    }

    #[test]
    fn a_lower_slot_after_a_higher_one_fails() {
        let messages = [
            message("msg_b", &[(5, &[("default", 10, 1)])]),
            message("msg_a", &[(2, &[("default", 1, 1)])]),
        ];
        assert!(check_deliveries(&messages, SECRET).is_err());
    }

    #[test]
    fn a_repeat_with_other_content_fails() {
        let messages = [
            message("msg_a", &[(0, &[("default", 1, 3)])]),
            message("msg_a", &[(0, &[("default", 1, 4)])]),
        ];
        let error = check_deliveries(&messages, SECRET).expect_err("changed repeat");
        assert!(error.contains("different content"), "{error}");
    }

    #[test]
    fn overlapping_or_backward_allocations_fail() {
        let overlap = [message(
            "msg_a",
            &[(0, &[("default", 1, 3)]), (1, &[("default", 3, 1)])],
        )];
        assert!(check_deliveries(&overlap, SECRET)
            .expect_err("overlap")
            .contains("not above"));
        let backward = [message(
            "msg_a",
            &[(0, &[("default", 10, 1)]), (1, &[("default", 2, 1)])],
        )];
        assert!(check_deliveries(&backward, SECRET).is_err());
        let same_slot = [message("msg_a", &[(0, &[("default", 5, 2), ("default", 1, 4)])])];
        assert!(
            check_deliveries(&same_slot, SECRET).is_ok(),
            "order inside a slot is free"
        );
    }

    #[test]
    fn a_forged_message_fails() {
        let mut forged = message("msg_a", &[(0, &[("default", 1, 3)])]);
        forged.body = forged.body.replace("\"count\":3", "\"count\":4");
        let error = check_deliveries(&[forged], SECRET).expect_err("forged");
        assert!(error.contains("bad signature"), "{error}");
    }

    #[test]
    fn log_lines_parse() {
        let line = r#"{"path":"/hook","webhook-id":"msg_x","webhook-timestamp":"1","webhook-signature":"v1,AA==","body":"{}"}"#;
        let parsed = parse_log(&format!("{line}\n\n{line}\n")).expect("parses");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].webhook_id, "msg_x");
        // The receiver's own diagnostics share the file: skipped.
        assert!(parse_log("paxid-test-subscriber listening on 127.0.0.1:1\n")
            .expect("skips")
            .is_empty());
        assert!(parse_log("{not json\n").is_err());
    }
}
