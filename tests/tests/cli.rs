//! The `paxid` CLI against a real local cluster: 3 acceptors, 2 sequencers,
//! the learner and a real webhook receiver, all separate processes. The
//! checks themselves live with the CLI (`crates/cli/tests/support`).

// The test holds the cluster lock for its whole run on purpose.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use paxid_tests::cluster::free_port;
use paxid_tests::{serial, Cluster, ClusterSpec};

#[path = "../../crates/cli/tests/support/cluster.rs"]
mod cli_cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_id_status_and_subscribe_against_a_real_cluster() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 2,
        learner: true,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(Duration::from_secs(20)).await;
    let port = free_port();
    let receiver = cluster.spawn(
        "subscriber",
        "paxid-test-subscriber",
        port,
        vec!["--listen".into(), format!("127.0.0.1:{port}")],
    );
    let urls = cli_cluster::ClusterUrls {
        acceptors: cluster.acceptor_urls(),
        sequencers: cluster.sequencer_urls(),
        learner: cluster.learner.as_ref().expect("a learner").url(),
        webhook_url: format!("{}/hook", receiver.url()),
        cluster_token: None,
    };
    tokio::task::block_in_place(|| {
        cli_cluster::check_cli_against_cluster(&cli_cluster::paxid_binary(), &urls)
    });
}
