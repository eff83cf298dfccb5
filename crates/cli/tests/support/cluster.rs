//! A check of the `paxid` CLI against a real, running paxid cluster, for the
//! end-to-end tests (the workspace's `tests/` crate) to call once they have
//! started one. Include it with
//!
//! ```ignore
//! #[path = "../../crates/cli/tests/support/cluster.rs"]
//! mod cli_cluster;
//! cli_cluster::check_cli_against_cluster(&cli_cluster::paxid_binary(), &urls);
//! ```
//!
//! It needs only `serde_json` and the standard library, and runs the real
//! binary, so it checks exactly what an operator types.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Where the cluster under test listens.
#[derive(Clone, Debug)]
pub struct ClusterUrls {
    pub acceptors: Vec<String>,
    pub sequencers: Vec<String>,
    pub learner: String,
    /// A receiver the learner may POST to (the learner must run with
    /// `--allow-private-webhooks` for a loopback URL).
    pub webhook_url: String,
    pub cluster_token: Option<String>,
}

/// `paxid` next to the running test binary: `<target>/<profile>/paxid` when
/// the test is `<target>/<profile>/deps/<test>`. Build it first
/// (`cargo build --release -p paxid-cli`, or `--workspace --bins`).
pub fn paxid_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary under <target>/<profile>/deps");
    let paxid = profile_dir.join("paxid");
    assert!(
        paxid.exists(),
        "{} is missing: build it with `cargo build --release -p paxid-cli`",
        paxid.display()
    );
    paxid
}

/// next-id (plain and block), status (every component up, a leader, the
/// learner), subscribe (id and whsec_ secret), then status shows the new
/// subscription. Panics with the CLI's output on any mismatch.
pub fn check_cli_against_cluster(paxid: &Path, cluster: &ClusterUrls) {
    let first = json(paxid, cluster, &["next-id"]);
    let first_id = first["id"].as_u64().expect("an id");
    assert_eq!(first["count"], 1);
    assert_eq!(first["sequence"], "default");
    let block = json(
        paxid,
        cluster,
        &["next-id", "--count", "10", "--sequence", "cli-check"],
    );
    assert_eq!(block["count"], 10);
    assert_eq!(block["sequence"], "cli-check");
    let human = run_ok(paxid, cluster, &["next-id"]);
    let later: u64 = human
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("`paxid next-id` printed {human:?}"));
    assert!(later > first_id, "IDs must increase: {first_id} then {later}");

    let status_args = status_args(cluster);
    let status = json(paxid, cluster, &strs(&status_args));
    for probe in status["acceptors"]
        .as_array()
        .expect("acceptors")
        .iter()
        .chain(status["sequencers"].as_array().expect("sequencers"))
    {
        assert_eq!(probe["up"], true, "down: {probe}");
    }
    assert!(status["leader"]["url"].is_string(), "no leader: {status}");
    assert_eq!(status["learner"]["up"], true, "learner down: {status}");

    let created = json(
        paxid,
        cluster,
        &["subscribe", &cluster.webhook_url, "--learner", &cluster.learner],
    );
    let id = created["id"].as_str().expect("a subscription id").to_owned();
    assert!(
        created["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{created}"
    );

    let table = run_ok(paxid, cluster, &strs(&status_args));
    assert!(
        table.contains(&id),
        "`paxid status` does not list subscription {id}:\n{table}"
    );
    assert!(!table.contains("down ("), "a component is down:\n{table}");
}

fn status_args(cluster: &ClusterUrls) -> Vec<String> {
    let mut args = vec![
        "status".to_owned(),
        "--acceptors".to_owned(),
        cluster.acceptors.join(","),
    ];
    args.extend(["--sequencers".to_owned(), cluster.sequencers.join(",")]);
    args.extend(["--learner".to_owned(), cluster.learner.clone()]);
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn json(paxid: &Path, cluster: &ClusterUrls, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let stdout = run_ok(paxid, cluster, &all);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("paxid {args:?} printed non-JSON ({e}): {stdout}"))
}

fn run_ok(paxid: &Path, cluster: &ClusterUrls, args: &[&str]) -> String {
    let output = run(paxid, cluster, args);
    assert!(
        output.status.success(),
        "paxid {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn run(paxid: &Path, cluster: &ClusterUrls, args: &[&str]) -> Output {
    let mut command = Command::new(paxid);
    command.arg("--url").arg(&cluster.sequencers[0]).args(args);
    // Only the flags given here count, not the environment of the test run.
    for var in [
        "PAXID_URL",
        "PAXID_JSON",
        "PAXID_ACCEPTORS",
        "PAXID_SEQUENCERS",
        "PAXID_LEARNER",
        "PAXID_COUNT",
        "PAXID_SEQUENCE",
    ] {
        command.env_remove(var);
    }
    match &cluster.cluster_token {
        Some(token) => command.env("PAXID_CLUSTER_TOKEN", token),
        None => command.env_remove("PAXID_CLUSTER_TOKEN"),
    };
    command.output().expect("paxid runs")
}
