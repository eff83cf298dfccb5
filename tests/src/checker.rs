//! The ID specification, checked on a recorded history in O(n log n).
//!
//! A history is linearizable for paxid exactly when every ID handed out is
//! unique and, for any two calls A and B on one sequence where A completed
//! before B was invoked, B's first ID is above A's last.

use std::collections::BTreeMap;

/// One client call. Times are nanoseconds on one monotonic clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub invoked_ns: u64,
    pub completed_ns: u64,
    /// `(sequence, first, count)` when the call succeeded.
    pub result: Option<(String, u64, u64)>,
}

/// Checks uniqueness and real-time order; the error names the first
/// violation found.
pub fn check_history(ops: &[Op]) -> Result<CheckSummary, String> {
    let mut per_sequence: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if let Some((sequence, _, _)) = &op.result {
            per_sequence.entry(sequence.as_str()).or_default().push(op);
        }
    }
    let mut summary = CheckSummary::default();
    for (sequence, ops) in per_sequence {
        check_unique(sequence, &ops)?;
        check_real_time(sequence, &ops)?;
        summary.sequences += 1;
        summary.ok_ops += ops.len();
        summary.ids += ops.iter().map(|op| range(op).1 - range(op).0 + 1).sum::<u64>();
    }
    summary.failed_ops = ops.iter().filter(|op| op.result.is_none()).count();
    Ok(summary)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckSummary {
    pub sequences: usize,
    pub ok_ops: usize,
    pub failed_ops: usize,
    pub ids: u64,
}

/// `(first, last)` of a successful op.
fn range(op: &Op) -> (u64, u64) {
    let (_, first, count) = op.result.as_ref().expect("only successful ops are checked");
    (*first, first + count - 1)
}

fn check_unique(sequence: &str, ops: &[&Op]) -> Result<(), String> {
    let mut ranges: Vec<(u64, u64)> = ops.iter().map(|op| range(op)).collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if pair[1].0 <= pair[0].1 {
            return Err(format!(
                "duplicate IDs in sequence {sequence:?}: {}..={} and {}..={} overlap",
                pair[0].0, pair[0].1, pair[1].0, pair[1].1
            ));
        }
    }
    Ok(())
}

/// Sweeps calls by invocation time, keeping the highest last ID among calls
/// that completed before the current one was invoked.
fn check_real_time(sequence: &str, ops: &[&Op]) -> Result<(), String> {
    let mut by_invoke: Vec<&Op> = ops.to_vec();
    by_invoke.sort_by_key(|op| op.invoked_ns);
    let mut by_complete: Vec<&Op> = ops.to_vec();
    by_complete.sort_by_key(|op| op.completed_ns);
    let mut completed = 0;
    let mut highest: Option<&Op> = None;
    for op in by_invoke {
        while completed < by_complete.len() && by_complete[completed].completed_ns < op.invoked_ns {
            let done = by_complete[completed];
            if highest.is_none_or(|h| range(done).1 > range(h).1) {
                highest = Some(done);
            }
            completed += 1;
        }
        if let Some(before) = highest {
            if range(op).0 <= range(before).1 {
                return Err(format!(
                    "real-time order broken in sequence {sequence:?}: a call completed at {} ns with last ID {}, \
                     a call invoked later at {} ns got first ID {}",
                    before.completed_ns,
                    range(before).1,
                    op.invoked_ns,
                    range(op).0
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(invoked_ns: u64, completed_ns: u64, first: u64, count: u64) -> Op {
        Op {
            invoked_ns,
            completed_ns,
            result: Some(("default".into(), first, count)),
        }
    }

    #[test]
    fn sequential_increasing_calls_pass() {
        let ops = [op(0, 10, 1, 1), op(11, 20, 2, 5), op(21, 30, 100, 1)];
        let summary = check_history(&ops).expect("valid");
        assert_eq!(summary.ok_ops, 3);
        assert_eq!(summary.ids, 7);
    }

    #[test]
    fn concurrent_calls_may_come_back_in_any_order() {
        let ops = [op(0, 30, 5, 1), op(1, 10, 1, 1), op(2, 20, 3, 2)];
        assert!(check_history(&ops).is_ok());
    }

    #[test]
    fn overlapping_ranges_fail() {
        let ops = [op(0, 10, 1, 5), op(0, 10, 5, 1)];
        let error = check_history(&ops).expect_err("duplicate");
        assert!(error.contains("duplicate"), "{error}");
    }

    #[test]
    fn a_later_call_with_a_lower_id_fails() {
        let ops = [op(0, 10, 7, 1), op(11, 20, 3, 1)];
        let error = check_history(&ops).expect_err("reversal");
        assert!(error.contains("real-time"), "{error}");
    }

    #[test]
    fn the_reversal_is_found_behind_many_calls() {
        let mut ops: Vec<Op> = (0..1000).map(|i| op(i * 10, i * 10 + 5, i + 1000, 1)).collect();
        ops.push(op(20_000, 20_001, 999, 1));
        assert!(check_history(&ops).is_err());
    }

    #[test]
    fn sequences_are_checked_separately_and_failures_ignored() {
        let mut other = op(11, 20, 1, 1);
        other.result = Some(("other".into(), 1, 1));
        let failed = Op {
            invoked_ns: 5,
            completed_ns: 50,
            result: None,
        };
        let ops = [op(0, 10, 1, 1), other, failed];
        let summary = check_history(&ops).expect("valid");
        assert_eq!((summary.sequences, summary.failed_ops), (2, 1));
    }
}
