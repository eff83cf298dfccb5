//! Coalescing, the pure part: which waiting callers share the next call,
//! and how its answer is cut among them.

/// How many callers from the front of the queue (in arrival order) share
/// the next call: as many as fit in `count_max` IDs, and at least one.
///
/// Every count is in `1..=count_max` (checked when the caller arrives), so
/// the first caller always fits; the others wait for the next call. The
/// queue is never reordered: a caller never overtakes one that came before.
pub fn batch_len(counts: impl IntoIterator<Item = u64>, count_max: u64) -> usize {
    let mut total = 0u64;
    let mut len = 0;
    for count in counts {
        match total.checked_add(count) {
            Some(sum) if sum <= count_max || len == 0 => {
                total = sum;
                len += 1;
            }
            _ => break,
        }
    }
    len
}

/// Cuts the range `first ..` of one answer into consecutive slices of
/// `counts`, in the callers' arrival order: `(first, count)` per caller.
///
/// The caller checked that the answer holds exactly `counts.sum()` IDs, so
/// the slices are disjoint and together are the whole answer.
pub fn slices(first: u64, counts: &[u64]) -> Vec<(u64, u64)> {
    let mut next = first;
    counts
        .iter()
        .map(|&count| {
            let slice = (next, count);
            next += count;
            slice
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_share_a_call_up_to_count_max() {
        assert_eq!(batch_len([1, 1, 1], 10), 3);
        assert_eq!(batch_len([4, 4, 4], 10), 2);
        assert_eq!(batch_len([10, 1], 10), 1);
        assert_eq!(batch_len([3, 7, 1], 10), 2);
    }

    #[test]
    fn a_caller_that_does_not_fit_waits_and_no_later_one_overtakes_it() {
        // 9 fits, 5 does not; the 1 behind it could fit but must not jump
        // the queue (it would get IDs before a caller that came first,
        // which is allowed but makes the split unfair and harder to reason
        // about).
        assert_eq!(batch_len([9, 5, 1], 10), 1);
    }

    #[test]
    fn the_first_caller_always_goes_even_alone() {
        assert_eq!(batch_len([10], 10), 1);
        assert_eq!(batch_len([], 10), 0);
        // Counts that would overflow u64 stop the batch, never wrap.
        assert_eq!(batch_len([u64::MAX, 1], u64::MAX), 1);
    }

    #[test]
    fn a_queue_above_count_max_is_split_into_several_calls() {
        let mut queue: Vec<u64> = vec![400_000, 400_000, 400_000, 1, 1];
        let mut calls = Vec::new();
        while !queue.is_empty() {
            let len = batch_len(queue.iter().copied(), 1_000_000);
            calls.push(queue.drain(..len).sum::<u64>());
        }
        assert_eq!(calls, vec![800_000, 400_002]);
    }

    #[test]
    fn slices_are_consecutive_in_arrival_order() {
        assert_eq!(slices(100, &[1, 5, 2]), vec![(100, 1), (101, 5), (106, 2)]);
        assert_eq!(slices(1, &[3]), vec![(1, 3)]);
        assert!(slices(1, &[]).is_empty());
    }

    #[test]
    fn slices_cover_the_answer_without_overlap() {
        let counts = [7, 1, 1, 30, 2];
        let cut = slices(42, &counts);
        let total: u64 = counts.iter().sum();
        assert_eq!(cut.first().map(|s| s.0), Some(42));
        for pair in cut.windows(2) {
            assert_eq!(pair[0].0 + pair[0].1, pair[1].0);
        }
        let last = cut.last().expect("not empty");
        assert_eq!(last.0 + last.1, 42 + total);
    }
}
