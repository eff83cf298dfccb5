//! Accepts per second and fsyncs per accept of the real `paxid-acceptor`
//! binary at 1, 16 and 64 concurrent writers, each sending one-slot
//! accepts back to back over HTTP. Prints, never asserts.
//!
//! `cargo bench -p paxid-acceptor --bench accept` (the bench profile is the
//! release profile). `PAXID_BENCH_SECONDS` sets the time per level
//! (default 5); `PAXID_BENCH_DIR` the parent of the data dir (default the
//! system temp dir: put it on the disk you want to measure).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::internal::{AcceptResponse, Ballot, PrepareResponse, Proposal};
use common::{metric, value_for, Client, Process};

const CONCURRENCY_LEVELS: [u64; 3] = [1, 16, 64];

fn main() {
    let seconds: u64 = std::env::var("PAXID_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let parent = std::env::var_os("PAXID_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(parent).expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(dir.path(), Duration::from_secs(seconds)));
}

async fn bench(data_dir: &std::path::Path, duration: Duration) {
    let process = Process::start(data_dir, &[]);
    let client = Client::new(&process.url);
    let ballot = Ballot {
        epoch: 0,
        round: 1,
        node: 1,
    };
    let promised = client.prepare(ballot, 0).await.expect("prepare");
    assert!(
        matches!(promised, PrepareResponse::Promised { .. }),
        "a fresh acceptor promises"
    );
    println!("data dir: {}", data_dir.display());
    println!("| writers | accepts/s | fsyncs/accept | mean steps/fsync | mean fsync ms | p50 latency ms | p99 latency ms |");
    println!("|---|---|---|---|---|---|---|");
    let next_slot = Arc::new(AtomicU64::new(0));
    for writers in CONCURRENCY_LEVELS {
        let before = client.metrics().await.expect("metrics");
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                tokio::spawn(writer(
                    client.clone(),
                    ballot,
                    next_slot.clone(),
                    started + duration,
                ))
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("writer"));
        }
        let elapsed = started.elapsed();
        let after = client.metrics().await.expect("metrics");
        report(writers, elapsed, &mut latencies, &before, &after);
    }
    drop(process);
}

/// One-slot accepts back to back until `deadline`; returns each latency.
async fn writer(
    client: Client,
    ballot: Ballot,
    next_slot: Arc<AtomicU64>,
    deadline: Instant,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let slot = next_slot.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let reply = client
            .accept(
                ballot,
                vec![Proposal {
                    slot,
                    value: value_for(slot),
                }],
            )
            .await
            .expect("accept");
        assert!(matches!(reply, AcceptResponse::Accepted { .. }), "{reply:?}");
        latencies.push(sent.elapsed());
    }
    latencies
}

fn report(writers: u64, elapsed: Duration, latencies: &mut [Duration], before: &str, after: &str) {
    let delta = |name: &str| metric(after, name) - metric(before, name);
    let accepts = latencies.len() as f64;
    let fsyncs = delta("paxid_acceptor_fsync_seconds_count");
    let fsync_seconds = delta("paxid_acceptor_fsync_seconds_sum");
    let steps = delta("paxid_acceptor_write_batch_steps_sum");
    latencies.sort();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "| {writers} | {:.0} | {:.3} | {:.1} | {:.2} | {:.2} | {:.2} |",
        accepts / elapsed.as_secs_f64(),
        fsyncs / accepts,
        steps / fsyncs,
        fsync_seconds / fsyncs * 1000.0,
        percentile(0.5),
        percentile(0.99),
    );
}
