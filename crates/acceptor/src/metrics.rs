//! The acceptor's own Prometheus series; HTTP requests by route and status
//! come from paxid-service's middleware.

use std::time::Duration;

use paxos_core::AcceptorView;

/// Requests refused by the protocol or by a limit, by `reason`.
pub const REJECTIONS_TOTAL: &str = "paxid_acceptor_rejections_total";
/// Time of each synced RocksDB write: its count is the number of fsyncs.
pub const FSYNC_SECONDS: &str = "paxid_acceptor_fsync_seconds";
/// State-changing steps persisted by one synced write (group commit).
pub const WRITE_BATCH_STEPS: &str = "paxid_acceptor_write_batch_steps";
pub const PROMISED_ROUND: &str = "paxid_acceptor_promised_round";
/// The epoch the acceptor votes in (0 until a transition moved it).
pub const EPOCH: &str = "paxid_acceptor_epoch";
pub const VOTING: &str = "paxid_acceptor_voting";
pub const CHOSEN_BELOW: &str = "paxid_acceptor_chosen_below";
pub const COMPACTED_BELOW: &str = "paxid_acceptor_compacted_below";
pub const LOG_ENTRIES: &str = "paxid_acceptor_log_entries";
/// Times compaction moved past a registered learner's progress (forced by
/// `--retain-slots`); each learner counts once until it catches up.
pub const COMPACTION_PASSED_LEARNER_TOTAL: &str = "paxid_acceptor_compaction_passed_learner_total";

/// Registers help texts; call once the recorder is installed.
pub fn describe() {
    metrics::describe_counter!(REJECTIONS_TOTAL, "Requests the acceptor refused, by reason.");
    metrics::describe_histogram!(
        FSYNC_SECONDS,
        metrics::Unit::Seconds,
        "Duration of each synced RocksDB write batch; the count is the number of fsyncs."
    );
    metrics::describe_histogram!(
        WRITE_BATCH_STEPS,
        "State-changing steps persisted by one synced write."
    );
    metrics::describe_gauge!(PROMISED_ROUND, "Round of the promised ballot.");
    metrics::describe_gauge!(
        EPOCH,
        "Epoch of the configuration the acceptor votes in (0: the cluster as founded)."
    );
    metrics::describe_gauge!(
        VOTING,
        "1 while the acceptor votes; 0 while blank (not founded or not rebuilt) or retired."
    );
    metrics::describe_gauge!(CHOSEN_BELOW, "Every slot below this is known chosen.");
    metrics::describe_gauge!(
        COMPACTED_BELOW,
        "Slots below this were folded into the snapshot and dropped."
    );
    metrics::describe_gauge!(
        LOG_ENTRIES,
        "Votes held in the log (slots at or above the compaction point)."
    );
    metrics::describe_counter!(
        COMPACTION_PASSED_LEARNER_TOTAL,
        "Times compaction passed a registered learner's progress because of --retain-slots."
    );
    // Present from the start, so that an alert on its increase sees 0 first.
    metrics::counter!(COMPACTION_PASSED_LEARNER_TOTAL).increment(0);
}

pub fn compaction_passed_learner() {
    metrics::counter!(COMPACTION_PASSED_LEARNER_TOTAL).increment(1);
}

/// `reason` is one of a fixed set of snake_case words, never client input.
pub fn rejection(reason: &'static str) {
    metrics::counter!(REJECTIONS_TOTAL, "reason" => reason).increment(1);
}

pub fn record_write(elapsed: Duration, steps: usize) {
    metrics::histogram!(FSYNC_SECONDS).record(elapsed.as_secs_f64());
    metrics::histogram!(WRITE_BATCH_STEPS).record(steps as f64);
}

pub fn publish_state(view: &AcceptorView) {
    // Gauges are f64: exact up to 2^53, far beyond any round or slot reached.
    metrics::gauge!(PROMISED_ROUND).set(view.promised.round as f64);
    let epoch = view.configuration.as_ref().map_or(0, |c| c.epoch);
    metrics::gauge!(EPOCH).set(epoch as f64);
    metrics::gauge!(VOTING).set(if view.voting { 1.0 } else { 0.0 });
    metrics::gauge!(CHOSEN_BELOW).set(view.chosen_below.0 as f64);
    metrics::gauge!(COMPACTED_BELOW).set(view.compacted_below.0 as f64);
    metrics::gauge!(LOG_ENTRIES).set(view.log_entries as f64);
}
