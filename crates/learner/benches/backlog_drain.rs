//! How fast a real learner (RocksDB in a temp dir) drains a backlog of
//! 20,000 learned slots to one real webhook subscriber. Prints, never
//! asserts.
//!
//! `cargo bench -p paxid-learner --bench backlog_drain` (the bench profile
//! is the release profile). The learner, its stub acceptor and the
//! subscriber are those of the service tests (`tests/support`).

#[path = "../tests/support/mod.rs"]
mod support;

use support::*;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(backlog_drain_figures());
}

/// Prints how fast a backlog drains: everything is learned first, then one
/// subscription starts at slot 0.
async fn backlog_drain_figures() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let total = 20_000u64;
    for chunk in (0..total).step_by(500) {
        learner.push(default_slots(chunk..chunk + 500)).await;
    }
    learner.wait_learned(total).await;
    let started = Instant::now();
    let created = learner
        .subscribe(json!({"url": subscriber.url, "from_slot": 0}))
        .await;
    wait_for("backlog drained", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.delivered_below == total)
            .unwrap_or(false)
    })
    .await;
    let elapsed = started.elapsed();
    eprintln!(
        "backlog: {total} slots in {} messages drained in {elapsed:?}: {:.0} allocations/s",
        subscriber.count(),
        total as f64 / elapsed.as_secs_f64()
    );
    learner.stop().await;
}
