//! Delivery lag and throughput of a real learner (RocksDB in a temp dir)
//! delivering to one real webhook subscriber at a steady push rate of 500
//! slots/s for 5 s. Prints, never asserts.
//!
//! `cargo bench -p paxid-learner --bench steady_load` (the bench profile is
//! the release profile). The learner, its stub acceptor and the subscriber
//! are those of the service tests (`tests/support`).

#[path = "../tests/support/mod.rs"]
mod support;

use support::*;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(steady_load_figures());
}

/// Prints (does not assert) delivery lag and throughput at a steady push
/// rate.
async fn steady_load_figures() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner
        .subscribe(json!({"url": subscriber.url, "from_slot": 0}))
        .await;
    let rate_slots_per_s = 500u64;
    let duration = Duration::from_secs(5);
    let total = rate_slots_per_s * duration.as_secs();
    let started = Instant::now();
    let mut pushed_at = Vec::with_capacity(total as usize);
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate_slots_per_s));
    for s in 0..total {
        ticker.tick().await;
        pushed_at.push(Instant::now());
        learner
            .push(vec![slot(
                s,
                vec![alloc("default", s * 10 + 1, 10), alloc("other", s + 1, 1)],
            )])
            .await;
    }
    wait_for("everything delivered", || {
        delivered(&subscriber, &created.secret).len() as u64 == total
    })
    .await;
    let elapsed = started.elapsed();
    let mut lags: Vec<Duration> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for received in subscriber.received() {
        for s in received.slots() {
            if seen.insert(s) {
                lags.push(received.at - pushed_at[s as usize]);
            }
        }
    }
    lags.sort();
    let p = |q: f64| lags[((lags.len() as f64 - 1.0) * q) as usize];
    let allocations = total * 2;
    eprintln!(
        "steady load: {total} slots ({allocations} allocations) pushed at {rate_slots_per_s}/s; \
         {} webhook requests; delivery lag p50 {:?} p99 {:?} max {:?}; {:.0} allocations/s delivered",
        subscriber.count(),
        p(0.5),
        p(0.99),
        lags[lags.len() - 1],
        allocations as f64 / elapsed.as_secs_f64()
    );
    learner.stop().await;
}
